"""An MCP event stream resumed through tollgate (Last-Event-ID), on whichever replica the
reconnection reaches: a real Envoy, two tollgate replicas sharing a PostgreSQL store, and
the SDK's server keeping its events (tests/support/mcp_server.py, `resumable`).

A client that lost a call's answer stream reconnects with a GET naming the last event it
got; the server replays what followed. What must hold: the priming event's id reaches the
client as the server wrote it (else there is nothing to resume from), the replayed answer
is read and masked as the first one was, and the session's owner is checked on the
replica that serves the GET, which knows the session only from the shared store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from extproc.quickstart import stack
from extproc.store import connect
from tests.e2e.test_mcp_e2e import mcp_route
from tests.support import tokens
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.mcp_server import CARD, McpServer

pytestmark = [pytest.mark.e2e]

VERSION = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
RECONNECTIONS = 8


def events(text: str) -> list[dict[str, str]]:
    """An event stream's events, each its fields (a field given twice: the last)."""
    found = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
                      for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            found.append(fields)
    return found


@pytest.fixture
def server() -> Iterator[McpServer]:
    with McpServer(resumable=True) as running:
        yield running


@pytest.fixture
def pair(make_gateway: GatewayFactory, pg_url: str, server: McpServer) -> Gateway:
    return make_gateway(replicas=2, settings={"store": {"url": pg_url}},
                        targets=[{"name": "tools", "match": {"route": "mcp"},
                                  "protocol": "mcp"}],
                        routes=[mcp_route("mcp", "/mcp", "mcp")],
                        clusters={"mcp": server.port})


def post(client: httpx.Client, headers: dict[str, str], message: dict[str, Any]
         ) -> httpx.Response:
    return client.post("/mcp", headers={**headers, "accept": ACCEPT}, json=message)


def test_a_call_s_stream_resumes_on_either_replica_masked_as_at_first(
        pair: Gateway, server: McpServer) -> None:
    token = tokens.token("svc-resume", ["agents"])
    with httpx.Client(base_url=f"http://127.0.0.1:{pair.ports.listener}", timeout=15,
                      headers={"authorization": f"Bearer {token}"}) as client:
        opened = post(client, {}, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                   "params": {"protocolVersion": VERSION, "capabilities": {},
                                              "clientInfo": {"name": "t", "version": "1"}}})
        assert opened.status_code == 200, opened.text
        session = {"mcp-session-id": opened.headers["mcp-session-id"],
                   "mcp-protocol-version": VERSION}
        post(client, session, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        post(client, session, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        called = post(client, session, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                        "params": {"name": "read_file",
                                                   "arguments": {"path": "notes.txt"}}})
        priming, answer = events(called.text)
        assert priming == {"id": priming["id"], "data": ""}  # passed as the server wrote it
        first = json.loads(answer["data"])
        assert CARD not in called.text and "[REDACTED:CREDIT_CARD]" in called.text
        # The answer's stream lost: the client resumes after the priming event, again and
        # again, each GET served by whichever replica Envoy picks.
        for _ in range(RECONNECTIONS):
            with client.stream("GET", "/mcp", headers={
                    **session, "accept": "text/event-stream",
                    "last-event-id": priming["id"]}) as resumed:
                assert resumed.status_code == 200
                text = ""
                for chunk in resumed.iter_text():
                    text += chunk
                    if "\n\n" in text.replace("\r\n", "\n") and "data: {" in text:
                        break
            [replayed] = [e for e in events(text) if e.get("data")]
            assert replayed["id"] == answer["id"]
            assert json.loads(replayed["data"]) == first
            assert CARD not in text
    assert [name for name, _ in server.calls] == ["read_file"]  # replayed, not run again
    connection = connect(pair.store_url)
    try:
        def resumers() -> set[str]:
            rows = connection.execute("SELECT writer, content FROM records")
            return {str(writer) for writer, content in rows
                    if (json.loads(content).get("request") or {}).get("method") == "GET"}
        stack.wait_until(lambda: resumers() == {"replica-0", "replica-1"}, 20,
                         "resumptions served by both replicas")
    finally:
        connection.close()
