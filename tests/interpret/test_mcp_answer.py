"""An MCP server's answers without gRPC: tools/list filtered by probes, results masked,
server requests decided (a listed response in, the handler's answers out)."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from extproc import config
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.state import Exchange
from extproc.http.responses import handler_for
from extproc.interpret.mcp_answer import ANSWER
from extproc.masking import Masker
from extproc.policy.embedded import EmbeddedEngine
from extproc.telemetry import Telemetry
from tests.support.fakes import (
    ListedResponse,
    MemoryHolds,
    MemoryPins,
    MemoryRecorder,
    StaticCredentials,
)

POLICY = """package tollgate
import rego.v1
default decision := {"action": "allow", "mask": {"detectors": ["all"]}}
decision := {"action": "deny", "reasons": sort([r | some r in refused]), "rules": ["t.mcp"]} if {
    count(refused) > 0
}
refused contains "secret is for admins" if input.mcp.tool.name == "secret"
refused contains "changed" if input.mcp.tool.pin.status == "changed"
refused contains "no sampling" if {
    input.mcp.from == "server"
    input.mcp.method == "sampling/createMessage"
}
"""
CARD = "4111 1111 1111 1111"
TOOLS = [{"name": "read_file", "description": "reads", "inputSchema": {"type": "object"}},
         {"name": "secret", "description": "admins only", "inputSchema": {"type": "object"}},
         {"name": "drifted", "description": "now evil", "inputSchema": {"type": "object"}},
         {"description": "no name"}]


def mcp_pipeline(pins: MemoryPins) -> Pipeline:
    cfg = config.parse({"targets": [{"name": "tools", "match": {"route": "mcp"},
                                     "protocol": "mcp"}]})
    return Pipeline(
        cfg, EmbeddedEngine([("p.rego", POLICY)], "data.tollgate.decision"),
        Telemetry(cfg.telemetry, InMemorySpanExporter()), StaticCredentials(),
        Masker(b"k" * 32), MemoryRecorder(), MemoryHolds(), pins)


async def answered(pipe: Pipeline, message: Any, response: ListedResponse,
                   method: str = "POST") -> tuple[Exchange, list[Any]]:
    exchange = pipe.open("t", {":method": method, ":path": "/mcp"}, {},
                         pipe.target_for("mcp", None), {"sub": "agent"})
    exchange.request = {"method": method, "path": "/mcp", "query": {},
                        "headers": {"mcp-session-id": "s-1"}, "body": message}
    await pipe.interpret(exchange, 0)
    handler = handler_for(exchange)
    assert handler is ANSWER
    await pipe.decide(exchange, "request")
    exchange.responded(200, response.headers, response.headers.get("content-type", ""), 1.0)
    return exchange, [answer async for answer in handler.run(pipe, exchange, response)]


def events(answers: list[Any]) -> list[Any]:
    sent = b"".join(a[1] for a in answers if a[0] == "send").decode()
    return [json.loads(line[6:]) for line in sent.splitlines() if line.startswith("data: ")]


LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
LISTED = {"jsonrpc": "2.0", "id": 2, "result": {"tools": TOOLS}}


async def test_a_listing_shows_only_the_tools_a_call_to_which_would_pass() -> None:
    pins = MemoryPins({"read_file": "pinned", "secret": "pinned", "drifted": "changed"})
    pipe = mcp_pipeline(pins)
    exchange, answers = await answered(pipe, LIST, ListedResponse(
        {"content-type": "application/json"}, buffered=json.dumps(LISTED).encode()))
    assert answers[0] == ("proceed",) and answers[1][0] == "replace_body"
    shown = json.loads(answers[1][1])
    assert shown["id"] == 2 and [t["name"] for t in shown["result"]["tools"]] == ["read_file"]
    assert pins.listings == [["read_file", "secret", "drifted"]]
    assert exchange.outcome["tollgate.mcp.hidden_tools"] == ("secret", "drifted", "(unnamed)")
    assert exchange.outcome["tollgate.mcp.changed_tools"] == ("drifted",)


async def test_a_listing_in_an_event_stream_is_filtered_too() -> None:
    pipe = mcp_pipeline(MemoryPins({"read_file": "pinned", "drifted": "changed"}))
    event = f"event: message\ndata: {json.dumps(LISTED)}\n\n".encode()
    _, answers = await answered(pipe, LIST, ListedResponse(
        {"content-type": "text/event-stream"}, [event[:40], event[40:]]))
    assert answers[0] == ("stream_through",)
    [shown] = events(answers)
    assert [t["name"] for t in shown["result"]["tools"]] == ["read_file"]
    assert b"event: message" in b"".join(a[1] for a in answers if a[0] == "send")


async def test_a_tool_result_is_masked_and_its_id_is_not() -> None:
    pipe = mcp_pipeline(MemoryPins({"read_file": "pinned"}))
    result = {"jsonrpc": "2.0", "id": 4111111111111111, "result": {
        "content": [{"type": "text", "text": f"card {CARD}"}],
        "structuredContent": {"card": CARD}, "isError": False}}
    exchange, answers = await answered(
        pipe, {"jsonrpc": "2.0", "id": 4111111111111111, "method": "tools/call",
               "params": {"name": "read_file", "arguments": {"path": "a"}}},
        ListedResponse({"content-type": "text/event-stream"},
                       [f"data: {json.dumps(result)}\n\n".encode()]))
    [out] = events(answers)
    assert out["id"] == 4111111111111111
    assert CARD not in json.dumps(out["result"])
    assert exchange.masked["credit_card"] == 2


async def test_a_refused_server_request_answers_the_clients_call_and_ends_the_answer() -> None:
    pipe = mcp_pipeline(MemoryPins({"ask": "pinned"}))
    sampling = {"jsonrpc": "2.0", "id": 0, "method": "sampling/createMessage",
                "params": {"messages": []}}
    later = {"jsonrpc": "2.0", "id": 9, "result": {"content": []}}
    exchange, answers = await answered(
        pipe, {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
               "params": {"name": "ask", "arguments": {}}},
        ListedResponse({"content-type": "text/event-stream"},
                       [f"data: {json.dumps(sampling)}\n\n".encode(),
                        f"data: {json.dumps(later)}\n\n".encode()]))
    [out] = events(answers)
    assert out["id"] == 9 and "sampling/createMessage" in out["error"]["message"]
    assert exchange.trace_id in out["error"]["message"]
    assert exchange.outcome["tollgate.mcp.refused_server_requests"] == (
        "sampling/createMessage",)
    assert answers[-1][2] is True  # the stream still ends for the client


async def test_a_server_request_on_its_own_stream_is_dropped_and_an_allowed_one_passes() -> None:
    pipe = mcp_pipeline(MemoryPins())
    sampling = {"jsonrpc": "2.0", "id": 0, "method": "sampling/createMessage", "params": {}}
    roots = {"jsonrpc": "2.0", "id": 1, "method": "roots/list", "params": {}}
    _, answers = await answered(pipe, None, ListedResponse(
        {"content-type": "text/event-stream"},
        [f"data: {json.dumps(sampling)}\n\n: ping\n\n".encode(),
         f"data: {json.dumps(roots)}\n\n".encode()]), method="GET")
    assert [m["method"] for m in events(answers)] == ["roots/list"]
    assert b": ping" in b"".join(a[1] for a in answers if a[0] == "send")


def blob_result(content: list[Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 5, "result": {"content": content}}).encode()


async def test_base64_text_is_masked_as_the_text_it_holds_and_binary_is_refused() -> None:
    import base64

    pipe = mcp_pipeline(MemoryPins({"read_file": "pinned"}))
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "read_file", "arguments": {"path": "a"}}}
    text = base64.b64encode(f"card {CARD}".encode()).decode()
    _, answers = await answered(pipe, call, ListedResponse(
        {"content-type": "application/json"}, buffered=blob_result([
            {"type": "resource", "resource": {"uri": "file:///a", "blob": text}}])))
    [blob] = [json.loads(answers[1][1])["result"]["content"][0]["resource"]["blob"]]
    decoded = base64.b64decode(blob).decode()
    assert decoded.startswith("card ") and CARD not in decoded

    png = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\xff").decode()
    exchange, answers = await answered(pipe, call, ListedResponse(
        {"content-type": "application/json"}, buffered=blob_result([
            {"type": "image", "data": png, "mimeType": "image/png"}])))
    refused = json.loads(answers[1][1])
    assert refused["id"] == 5 and "image/png" in refused["error"]["message"]
    assert png not in answers[1][1].decode()
    assert exchange.outcome["tollgate.outcome"] == "unmaskable_content"


async def test_the_http_sse_endpoint_event_passes_as_it_is_however_spelled() -> None:
    """Its data is a path with a session id, no message: masked as text, a session id that
    looks like a key would break the transport."""
    pipe = mcp_pipeline(MemoryPins())
    endpoint = "/messages/?session_id=AKIAIOSFODNN7EXAMPLE"
    events = [f"event: endpoint\r\ndata: {endpoint}\r\n\r\n".encode(),
              f"event:endpoint\ndata: {endpoint}\n\n".encode()]
    _, answers = await answered(pipe, None, ListedResponse(
        {"content-type": "text/event-stream"}, events), method="GET")
    assert b"".join(a[1] for a in answers if a[0] == "send") == b"".join(events)
