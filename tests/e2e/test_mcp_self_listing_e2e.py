"""A stateless MCP agent (2026-07-28) that calls a tool it never listed, through a real
Envoy and tollgate: tollgate lists the server's tools itself first (from where the
Envoy bootstrap it serves sends the route), pins them, and judges the call as any other;
a tool the server does not list stays unknown, refused before the server. On a target
whose credential is traded for each agent's token (token_exchange, with the development
OpenID provider), the listing goes with the token the caller's own is traded for.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc import envoy_bootstrap
from extproc.quickstart import stack
from tests.e2e.test_mcp_e2e import mcp_route
from tests.e2e.test_mcp_generations_e2e import CARD, PYTHON, SCRIPTS
from tests.e2e.test_token_exchange_e2e import CLIENT, claims_of, exchanging_provider, target
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.processes import listening

pytestmark = [pytest.mark.e2e]

AGENT = "svc-stateless"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """The 2.x server, and the log of the messages it received, in order."""
    assert PYTHON.exists(), f"{PYTHON} is missing: `make test` makes .venv-mcp2"
    folder = tmp_path_factory.mktemp("mcp2-self-listing")
    port, log = stack.free_port(), folder / "received.jsonl"
    with listening([str(PYTHON), str(SCRIPTS / "server.py"), str(port), str(log)], port,
                   folder / "server.log", "the 2.x MCP server listening") as listening_port:
        yield listening_port, log


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str, str]]:
    with exchanging_provider(tmp_path_factory.mktemp("exchanging-provider")) as running:
        yield running


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, server: tuple[int, Path],
       provider: tuple[int, str, str]) -> Iterator[Gateway]:
    """`tools` at /mcp, and `traded` (the same server, at /traded) reached with a token
    the provider trades each agent's for."""
    port, resource, secret = provider
    traded = {**target(f"http://127.0.0.1:{port}/token", resource),
              "name": "traded", "match": {"route": "traded"}, "protocol": "mcp"}
    with module_gateway(tmp_path_factory, otlp, "mcp-self-listing",
                        targets=[{"name": "tools", "match": {"route": "mcp"},
                                  "protocol": "mcp", "mcp": {"shell_tools": ["run_shell"]}},
                                 traded],
                        routes=[mcp_route("mcp", "/mcp", "mcp"),
                                mcp_route("traded", "/traded", "mcp")],
                        clusters={"mcp": server[0]}, env={"TG_CLIENT_SECRET": secret},
                        envoy=envoy_bootstrap.with_verified_token_kept) as running:
        yield running


def received(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_tool_never_listed_is_listed_by_tollgate_then_called_and_masked(
        gw: Gateway, server: tuple[int, Path]) -> None:
    _, log = server
    run = subprocess.run([str(PYTHON), str(SCRIPTS / "call_unlisted.py"),
                          f"http://127.0.0.1:{gw.ports.listener}/mcp",
                          tokens.token(AGENT, ["agents"]), "read_file", "delete_everything"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["version"] == "2026-07-28"
    # The call passed, its answer masked.
    read = seen["read_file"]
    assert "refused" not in read, read
    assert read["text"].startswith("contents of notes.txt: card ") and CARD not in read["text"]
    # The server saw tollgate's own listing before the call (the agent never listed).
    messages = received(log)
    order = [(m["method"], m["name"]) for m in messages]
    own = next(i for i, m in enumerate(messages)
               if m["method"] == "tools/list" and str(m["id"]).startswith("tollgate-listing-"))
    assert own < order.index(("tools/call", "read_file")), order
    assert ("tools/list", None) not in order[:own], order
    # A tool the server does not list stays unknown: refused, never sent on.
    refused = seen["delete_everything"].get("refused", "")
    assert "delete_everything is unknown" in refused, seen
    assert "the gateway's own listing of the server's tools (2) does not name it" in refused
    assert ("tools/call", "delete_everything") not in order
    # The record and the span say tollgate listed the tools for the call.
    stack.wait_until(lambda: call_record(gw, "read_file") is not None, 15,
                     "the call recorded")
    record = call_record(gw, "read_file")
    assert record is not None
    assert record["meaning"]["mcp"]["tool"]["self_listing"] == {"tools": 2}
    (span,) = gw.otlp.spans_of(record["trace_id"])
    assert span.attributes["tollgate.mcp.self_listed"] == 2


def call_record(gw: Gateway, tool: str) -> dict[str, Any] | None:
    """The record of the call to `tool` (None: not recorded yet)."""
    for record in gw.records():
        meaning = ((record.get("meaning") or {}).get("mcp") or {})
        if meaning.get("method") == "tools/call" and (meaning.get("tool") or {}).get(
                "name") == tool:
            return record
    return None


def test_a_traded_targets_listing_goes_with_the_token_the_callers_is_traded_for(
        gw: Gateway, server: tuple[int, Path], provider: tuple[int, str, str]) -> None:
    _, log = server
    _, resource, _ = provider
    before = len(received(log))
    agent = tokens.token("svc-traded", ["agents"])
    run = subprocess.run([str(PYTHON), str(SCRIPTS / "call_unlisted.py"),
                          f"http://127.0.0.1:{gw.ports.listener}/traded", agent, "read_file"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert "refused" not in seen["read_file"], seen
    messages = received(log)[before:]
    listing = next(m for m in messages if str(m["id"]).startswith("tollgate-listing-"))
    called = next(m for m in messages if m["method"] == "tools/call")
    # tollgate's listing and the agent's call went with the same traded token: made for
    # the server, acting for this agent, never the agent's own.
    assert listing["authorization"] == called["authorization"]
    traded = listing["authorization"].removeprefix("Bearer ")
    assert traded != agent and agent not in json.dumps(messages)
    claims = claims_of(traded)
    assert claims["sub"] == "svc-traded" and claims["aud"] == resource
    assert claims["act"] == {"sub": CLIENT}
