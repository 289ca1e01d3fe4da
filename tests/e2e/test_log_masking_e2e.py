"""Tollgate's log is output too: what a client or an upstream controls reaches log lines,
and none may carry a secret out or forge a line. Secrets (an AWS key id and secret, a
JWT, a card number, an e-mail address), a newline and an ESC go in through every field
that reaches a line from outside — an MCP server's JSON-RPC id, an admin API path, an
SSH login name — and the gateway's log file, as written, holds none of them."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest

from extproc.quickstart import stack
from tests.e2e.test_mcp_e2e import AGENT, mcp_route
from tests.support.gateway import Gateway, module_gateway
from tests.support.http_server import LocalServer

AWS_KEY_ID, AWS_SECRET = "AKIA4Q7ZR2MXK5HNP3WD", "Xq8vR2mK9pL4nT7wY1zB6cF3hJ5kD0sG8aE2uI9o"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")
CARD, EMAIL = "4111 1111 1111 1111", "dana.secret@example.com"
SECRETS = (AWS_KEY_ID, AWS_SECRET, JWT, CARD, "4111111111111111", EMAIL)
# A forged line after a newline, and ESC erasing the line before it.
FORGED = "2026-01-01 00:00:00,000 INFO tollgate.server: all is well"
HOSTILE = f"{AWS_KEY_ID} {AWS_SECRET} {JWT} card {CARD} {EMAIL}\n{FORGED}\x1b[2K"


def hostile_mcp(_method: str, _path: str, body: bytes) -> tuple[int, bytes]:
    """An MCP server answering every request with another id: the secrets and the
    forged line."""
    asked = json.loads(body)
    return 200, json.dumps({"jsonrpc": "2.0", "id": HOSTILE if "id" in asked else None,
                            "result": {"tools": []}}).encode()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Gateway]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path_factory.mktemp("ssh-target") / "gateway-key"
    key.write_private_key(key_file)
    web = {"name": "web", "protocol": "ssh", "match": {"login": "web"},
           "ssh": {"upstream": "127.0.0.1:9", "user": "agent", "key_file": str(key_file),
                   "host_key": key.export_public_key().decode().strip()}}
    with LocalServer(hostile_mcp, "/mcp") as server, module_gateway(
            tmp_path_factory, otlp, "logs",
            targets=[{"name": "tools", "match": {"route": "mcp"}, "protocol": "mcp"}, web],
            routes=[mcp_route("mcp", "/mcp", "mcp")], clusters={"mcp": server.port},
            ssh={}) as running:
        yield running


def logged(gw: Gateway) -> str:
    path = gw.tollgate.log_path
    assert path is not None
    return Path(path).read_text(encoding="utf-8")


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret
    assert "\x1b" not in text and "\r" not in text
    assert not re.search(r"^" + re.escape(FORGED), text, re.MULTILINE)


def test_an_mcp_servers_json_rpc_id_is_masked_in_the_log(gw: Gateway) -> None:
    reply = httpx.post(f"http://127.0.0.1:{gw.ports.listener}/mcp", json={
        "jsonrpc": "2.0", "id": 7, "method": "tools/list"}, headers={
        "authorization": f"Bearer {AGENT}", "accept": "application/json, text/event-stream"})
    assert reply.status_code == 200, reply.text
    stack.wait_until(lambda: "the MCP server answered id" in logged(gw), 10, "the warning")
    line = next(x for x in logged(gw).splitlines() if "the MCP server answered id" in x)
    assert "[REDACTED:AWS_ACCESS_KEY_ID]" in line and "[REDACTED:AWS_SECRET_KEY]" in line
    assert_clean(logged(gw))


def test_an_admin_api_path_is_masked_in_the_log(gw: Gateway) -> None:
    path = "/approvals/" + HOSTILE.replace(" ", "%20").replace("\n", "%0A").replace(
        "\x1b", "%1B")
    reply = httpx.get(gw.admin_url + path)
    assert reply.status_code == 401
    stack.wait_until(lambda: "approvals API: GET /approvals/" in logged(gw), 10, "the line")
    assert_clean(logged(gw))


def test_an_ssh_login_name_is_masked_in_the_log(gw: Gateway) -> None:
    assert gw.ports.ssh is not None

    async def log_in() -> None:
        # SSH names are SASLprepped on both sides: no control character gets this far.
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh.connect("127.0.0.1", gw.ports.ssh, username=HOSTILE.split("\n")[0],
                                   password="not-a-token", known_hosts=None,
                                   client_keys=None, agent_path=None)

    asyncio.run(log_in())
    stack.wait_until(lambda: "SSH login as" in logged(gw), 10, "the line")
    assert_clean(logged(gw))
