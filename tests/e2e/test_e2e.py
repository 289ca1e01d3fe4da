"""End to end through a real Envoy: allow, deny, bad input, fail closed, traces, draining."""

from __future__ import annotations

import gzip
import json
import re
import secrets
import signal
import socket
from pathlib import Path

import pytest

from extproc.quickstart import stack
from tests.support import tokens
from tests.support.gateway import Gateway, GatewayFactory, route

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
# For requests written by hand: a valid agent token's header line.
AUTH = f"authorization: Bearer {tokens.token()}\r\n".encode()


def span_of(gateway: Gateway, trace_id: str):
    """The exchange's span, as the OTLP receiver got it."""
    (span,) = gateway.otlp.spans_of(trace_id)
    return span


def test_allowed_request_reaches_upstream_with_trace_header(gateway: Gateway) -> None:
    reply = gateway.request("GET", "/api/customers")
    assert reply.status == 200
    assert "customers" in reply.json()
    assert reply.trace_id and TRACE_ID.match(reply.trace_id)
    assert "/api/customers" in gateway.upstream_paths()


def test_allowed_request_exports_its_span(gateway: Gateway) -> None:
    reply = gateway.request("GET", "/echo?x=1", headers={"user-agent": "agent/1.0"})
    span = span_of(gateway, reply.trace_id)
    assert span.name == "tollgate GET demo"
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["url.path"] == "/echo"
    assert span.attributes["user_agent.original"] == "agent/1.0"
    assert span.attributes["tollgate.target"] == "demo"
    assert span.attributes["tollgate.decision.action"] == "allow"
    assert span.resource["service.name"] == "tollgate-test"
    # Decided on the request only: the target reads responses (to mask them), but the
    # default pack does not decide them for it (decides_responses: llm targets only).
    assert [e.attributes["tollgate.phase"] for e in span.events
            if e.name == "tollgate.decision"] == ["request"]


def test_incoming_traceparent_is_continued(gateway: Gateway) -> None:
    parent_trace, parent_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    reply = gateway.request(
        "GET", "/echo", headers={"traceparent": f"00-{parent_trace}-{parent_span}-01"}
    )
    assert reply.status == 200
    assert reply.trace_id == parent_trace
    assert span_of(gateway, parent_trace).parent_span_id == parent_span


def test_the_upstream_continues_tollgates_span(make_gateway: GatewayFactory) -> None:
    """The upstream gets a traceparent naming tollgate's span, so an instrumented
    upstream's spans hang under it: when tollgate read the request body (its header
    change comes with the body's answer) and when it did not, with the agent's trace
    continued or a new one. The agent's tracestate passes as it came."""
    gw = make_gateway(
        targets=[{"name": "demo", "match": {"route": "demo"}},  # reads request bodies
                 {"name": "unread", "match": {"route": "unread"},
                  "inspect": {"request_body": False}}],
        routes=[route("unread", "/unread/")],
    )
    agent_span = "b7ad6b7169203331"
    # Trace ids of their own: the OTLP receiver holds every test's spans.
    for n, (path, agent_trace) in enumerate((
        ("/echo", None), ("/echo", secrets.token_hex(16)),
        ("/unread/echo", None), ("/unread/echo", secrets.token_hex(16)),
    )):
        headers = {"traceparent": f"00-{agent_trace}-{agent_span}-01",
                   "tracestate": f"agent={n}"} if agent_trace else {}
        reply = gw.request("POST", path, {"sql": "SELECT 1"}, headers)
        assert reply.status in (200, 404), reply.body  # the demo knows no /unread/echo
        (span,) = gw.otlp.spans_of(reply.trace_id)
        received = gw.upstream.requests[-1].headers
        assert received["traceparent"] == f"00-{reply.trace_id}-{span.span_id}-01", path
        assert reply.trace_id == (agent_trace or span.trace_id)
        assert span.parent_span_id == (agent_span if agent_trace else "")
        assert received.get("tracestate") == headers.get("tracestate")


def test_drop_table_is_denied_with_reason_and_never_reaches_upstream(gateway: Gateway) -> None:
    before = len(gateway.upstream.requests)
    reply = gateway.request("POST", "/sql", {"sql": "DROP TABLE customers"})
    assert reply.status == 403
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["error"] == "denied"
    assert body["rules"] == ["sql.destructive"]
    assert any("DROP" in r for r in body["reasons"])
    assert body["trace_id"] == reply.trace_id
    assert len(gateway.upstream.requests) == before
    span = span_of(gateway, reply.trace_id)
    assert span.attributes["tollgate.decision.action"] == "deny"
    assert span.attributes["http.response.status_code"] == 403


def test_select_through_body_phase_is_allowed(gateway: Gateway) -> None:
    reply = gateway.request("POST", "/sql", {"sql": "SELECT count(*) FROM customers"})
    assert reply.status == 200, reply.body
    assert reply.json()["rows"][0][0] > 0
    assert reply.trace_id


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (b'{"sql": ', {"content-type": "application/json"}, 400, "malformed_json"),
        (b'{"sql": "\xff\xfe"}', {"content-type": "application/json"}, 400, "invalid_utf8"),
        (gzip.compress(b'{"sql": "DROP TABLE customers"}'),
         {"content-type": "application/json", "content-encoding": "gzip"},
         415, "unsupported_content_encoding"),
    ],
    ids=["malformed-json", "invalid-utf8", "gzip-body"],
)
def test_bad_bodies_get_a_defined_answer(
    gateway: Gateway, body: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    before = len(gateway.upstream.requests)
    reply = gateway.request("POST", "/sql", body, headers)
    assert reply.status == status
    assert reply.json()["error"] == error
    assert reply.json()["trace_id"] == reply.trace_id
    assert len(gateway.upstream.requests) == before
    assert span_of(gateway, reply.trace_id).attributes["tollgate.refusal"] == error


def test_declared_oversize_body_is_refused_at_the_headers(gateway: Gateway) -> None:
    before = len(gateway.upstream.requests)
    raw = gateway.send_raw(
        b"POST /sql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" + AUTH
        + b"content-length: 2097152\r\n\r\n"
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), raw[:300]
    answer = json.loads(body)
    assert answer["error"] == "payload_too_large"
    assert "2097152 bytes" in answer["message"]
    assert span_of(gateway, answer["trace_id"]).attributes["tollgate.refusal"] == (
        "payload_too_large"
    )
    assert len(gateway.upstream.requests) == before


def test_chunked_body_over_envoys_buffer_limit_gets_413_json(gateway: Gateway) -> None:
    """No length declared: Envoy's buffer limit refuses it, in tollgate's JSON shape.

    Headers and body arrive together, so Envoy refuses before tollgate answers
    and no trace id exists yet: Envoy's request id is what the answer carries.
    """
    before = len(gateway.upstream.requests)
    chunk = b"x" * 65536
    raw = gateway.send_raw(
        b"POST /sql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" + AUTH
        + b"x-request-id: oversize-chunked-1\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 20  # 1.25 MiB, left unterminated
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), raw[:300]
    assert json.loads(body) == {
        "error": "payload_too_large", "message": "Payload Too Large",
        "request_id": "oversize-chunked-1", "trace_id": None,
    }
    assert len(gateway.upstream.requests) == before


def test_route_without_target_gets_404(gateway: Gateway) -> None:
    reply = gateway.request("GET", "/unmapped/thing")
    assert reply.status == 404
    assert reply.json()["error"] == "unknown_target"
    assert "unmapped" in reply.json()["message"]
    assert "/unmapped/thing" not in gateway.upstream_paths()


# Malformed for the demo target the tests send to, and only there: a pack malformed on
# every input fails its smoke set (policy/smoke.py), and tollgate would not start.
BROKEN_POLICY = """package tollgate
import rego.v1
default decision := {"action": "allow"}
decision := {"action": "perhaps"} if input.target.name == "demo"
"""


def write_policy(directory: Path, source: str) -> Path:
    directory.mkdir()
    (directory / "policy.rego").write_text(source)
    return directory


def test_policy_error_fails_closed(tmp_path: Path, make_gateway: GatewayFactory) -> None:
    gw = make_gateway(policy_dir=write_policy(tmp_path / "broken", BROKEN_POLICY))
    reply = gw.request("GET", "/api/customers")
    assert reply.status == 403
    assert reply.json()["reasons"] == ["policy error"]
    assert gw.upstream.requests == []
    span = span_of(gw, reply.trace_id)
    assert "perhaps" in span.attributes["tollgate.policy.error"]
    assert "policy error on target demo" in gw.tollgate.tail()


def test_policy_error_on_fail_open_target_lets_request_through(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    gw = make_gateway(
        policy_dir=write_policy(tmp_path / "broken", BROKEN_POLICY),
        targets=[{"name": "demo", "match": {"route": "demo"}, "fail_mode": "open"}],
    )
    reply = gw.request("GET", "/api/customers")
    assert reply.status == 200
    span = span_of(gw, reply.trace_id)
    assert span.attributes["tollgate.fail_open"] is True


RESPONSE_POLICY = """package tollgate
import rego.v1
default decision := {"action": "allow"}
decision := {"action": "deny", "reasons": ["upstream said 404"], "rules": ["resp.404"],
             "status": 502} if {
    input.phase == "response"
    input.response.status == 404
}
decision := {"action": "deny", "reasons": ["ssn in response"], "rules": ["resp.ssn"]} if {
    input.phase == "response"
    some c in input.response.body.customers
    c.ssn
}
"""


@pytest.mark.parametrize("inspect", ["headers", "body"])
def test_response_phase_decision(
    tmp_path: Path, make_gateway: GatewayFactory, inspect: str
) -> None:
    gw = make_gateway(
        policy_dir=write_policy(tmp_path / "resp", RESPONSE_POLICY),
        targets=[{"name": "demo", "match": {"route": "demo"},
                  "inspect": {"request_body": True, "response": inspect}}],
    )
    assert gw.request("GET", "/echo").status == 200
    missing = gw.request("GET", "/no/such/path")
    assert missing.status == 502
    assert missing.json()["rules"] == ["resp.404"]
    customers = gw.request("GET", "/api/customers")
    if inspect == "body":
        assert customers.status == 403
        assert customers.json()["rules"] == ["resp.ssn"]
        assert "customers" not in customers.json()
    else:
        assert customers.status == 200


def test_tollgate_down_envoy_answers_5xx_and_upstream_sees_nothing(
    make_gateway: GatewayFactory,
) -> None:
    gw = make_gateway()
    gw.tollgate.popen.kill()
    gw.tollgate.popen.wait(10)
    reply = gw.request("GET", "/api/customers")
    assert 500 <= reply.status <= 599
    assert gw.upstream.requests == []


def test_sigterm_drains_in_flight_exchange(make_gateway: GatewayFactory) -> None:
    gw = make_gateway()
    body = b'{"sql": "SELECT 1"}'
    with socket.create_connection(("127.0.0.1", gw.ports.listener), timeout=10) as client:
        # Headers and half the body: the exchange is open in tollgate, waiting for the rest.
        client.sendall(
            b"POST /sql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" + AUTH
            + f"content-length: {len(body)}\r\n\r\n".encode() + body[:5]
        )
        # tollgate has the exchange once it has answered its headers (asking for the body):
        # a stream Envoy has only started may not have reached it before it drains.
        stack.wait_until(
            lambda: gw.envoy_stat("http.ingress.ext_proc.stream_msgs_received") >= 1,
            10, "tollgate to answer the request headers",
        )
        gw.tollgate.signal(signal.SIGTERM)
        stack.wait_until(lambda: "draining" in gw.tollgate.tail(), 10, "tollgate to drain")
        assert gw.tollgate.alive()
        client.sendall(body[5:])
        answer = client.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert gw.tollgate.popen.wait(15) == 0
    assert [r.path for r in gw.upstream.requests] == ["/sql"]


def test_an_upgrade_the_policy_wants_masked_is_refused(gateway: Gateway) -> None:
    """A WebSocket's bytes pass unread, so nothing in them could be masked: an allow that
    asks for masking (the default pack's, for agents) refuses the upgrade instead."""
    before = len(gateway.upstream.requests)
    raw = gateway.send_raw(
        b"GET /echo HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
        b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        + AUTH + b"\r\n"
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403"), raw[:300]
    answer = json.loads(body)
    assert answer["rules"] == ["tollgate.mask_unavailable"]
    assert answer["reasons"] == [
        "masking requested, but an upgraded connection (WebSocket, SPDY) cannot be masked"
    ]
    assert len(gateway.upstream.requests) == before
