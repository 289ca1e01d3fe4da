"""Envoy's own answers, through a real Envoy, in the shape each route's clients read.

A token jwt_authn refuses, a body over the buffer limit, tollgate or the upstream out of
reach: Envoy answers these itself, and envoy/quickstart.yaml's local_reply_config gives
each the shape tollgate's own refusals have on that route. An OpenAI error on a route of
protocol llm (the real `openai` client raises it with Envoy's reason), a Kubernetes
Status on protocol k8s, a JSON-RPC error on protocol mcp, tollgate's JSON elsewhere;
tollgate's own refusals pass as they are. The llm and k8s routes lead to the demo
upstream: these answers never reach one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.support import tokens
from tests.support.gateway import Gateway, GatewayFactory, module_gateway, route
from tests.support.http_server import refusing_port

ASK = [{"role": "user", "content": "How big is the disk?"}]
EXPIRED = tokens.token(ttl=-300)  # past jwt_authn's 30 s of clock skew
# jwt_authn's reason for it, in a sentence (local_reply_config), Envoy's words after it.
EXPIRED_SAID = "the token has expired: get a new one (Envoy: Jwt is expired)"


def tagged(name: str, prefix: str, protocol: str, cluster: str = "demo_upstream",
           **jwt_per_route: Any) -> dict[str, Any]:
    """A route whose metadata names its target's protocol (the quickstart's one line)."""
    return {**route(name, prefix, **jwt_per_route), "route": {"cluster": cluster},
            "metadata": {"filter_metadata": {"tollgate": {"protocol": protocol}}}}


@pytest.fixture(scope="module")
def nowhere() -> Iterator[int]:
    """A port where nothing listens: an upstream out of reach."""
    with refusing_port() as port:
        yield port


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp,  # type: ignore[no-untyped-def]
       nowhere: int) -> Iterator[Gateway]:
    with module_gateway(
        tmp_path_factory, otlp, "answers",
        targets=[
            {"name": "demo", "match": {"route": "demo"}},
            {"name": "model", "match": {"route": "llm"}, "protocol": "llm"},
            {"name": "model-unguarded", "match": {"route": "llm-unguarded"}, "protocol": "llm"},
            {"name": "model-down", "match": {"route": "llm-down"}, "protocol": "llm"},
            {"name": "cluster", "match": {"route": "k8s"}, "protocol": "k8s"},
            {"name": "cluster-unguarded", "match": {"route": "k8s-unguarded"},
             "protocol": "k8s"},
        ],
        routes=[
            tagged("llm", "/v1/", "llm"),
            # Routes Envoy checks no token on: tollgate refuses with its own 401.
            tagged("llm-unguarded", "/unguarded/v1/", "llm", disabled=True),
            tagged("k8s-unguarded", "/unguarded/api/", "k8s", disabled=True),
            tagged("llm-down", "/down/v1/", "llm", cluster="nowhere"),
            tagged("k8s", "/api/", "k8s"),
        ],
        clusters={"nowhere": nowhere},
    ) as running:
        yield running


def client(gw: Gateway, token: str, path: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{gw.ports.listener}{path}",
                         api_key=token, max_retries=0, timeout=10)


@pytest.mark.parametrize(("token", "reason"), [
    (EXPIRED, EXPIRED_SAID),
    (tokens.token(aud="someone-else"), "the token is for another audience (aud) than this "
                                       "gateway (Envoy: Audiences in Jwt are not allowed)"),
], ids=["expired", "other-audience"])
def test_a_refused_token_reaches_the_openai_client_with_its_reason(
    gw: Gateway, token: str, reason: str
) -> None:
    before = len(gw.upstream.requests)
    with pytest.raises(openai.AuthenticationError) as refused:
        client(gw, token).chat.completions.create(model="gpt-4o", messages=ASK)
    error = refused.value
    assert error.status_code == 401
    assert str(error) == f"Error code: 401 - {reason}"
    assert (error.code, error.type) == ("unauthenticated", "unauthenticated")
    assert error.body["trace_id"] is None  # tollgate never saw it
    assert error.body["request_id"]  # Envoy's x-request-id
    assert len(gw.upstream.requests) == before


def test_one_refusal_in_each_routes_shape(gw: Gateway) -> None:
    def refused(path: str) -> dict[str, Any]:
        reply = gw.request("GET", path, token=EXPIRED)
        assert reply.status == 401, reply.body
        assert reply.headers["content-type"] == "application/json"
        answer = reply.json()
        inner = answer["error"] if isinstance(answer.get("error"), dict) else answer
        inner = inner.get("data", inner)  # a JSON-RPC error's: tollgate's JSON
        assert inner.pop("request_id")  # Envoy's x-request-id
        return answer

    assert refused("/v1/models") == {"error": {
        "message": EXPIRED_SAID, "type": "unauthenticated", "code": "unauthenticated",
        "param": None, "trace_id": None}}
    assert refused("/api/v1/namespaces/prod/pods") == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": EXPIRED_SAID, "reason": "Unauthorized", "code": 401,
        "error": "unauthenticated", "trace_id": None}
    # The quickstart's mcp route (its own, in every test gateway): a JSON-RPC error, of
    # no request id (Envoy reads no body).
    assert refused("/mcp") == {"jsonrpc": "2.0", "id": None, "error": {
        "code": -32001, "message": EXPIRED_SAID, "data": {
            "error": "unauthenticated", "message": EXPIRED_SAID, "trace_id": None}}}
    assert refused("/echo") == {
        "error": "unauthenticated", "message": EXPIRED_SAID, "trace_id": None}


def test_tollgates_own_refusals_keep_their_shape(gw: Gateway) -> None:
    """tollgate's 401 on a route Envoy does not guard: the mappers leave it alone (they
    would otherwise take its body for Envoy's reason), so it has tollgate's words and
    its trace id."""
    with pytest.raises(openai.AuthenticationError) as refused:
        client(gw, tokens.token(), "/unguarded/v1").chat.completions.create(
            model="gpt-4o", messages=ASK)
    error = refused.value
    trace_id = error.response.headers["x-tollgate-trace-id"]
    assert str(error) == (
        "Error code: 401 - tollgate refused: target model-unguarded needs a verified token "
        f"(Authorization: Bearer ...) (trace {trace_id})")
    assert error.body["code"] == "unauthenticated"
    reply = gw.request("GET", "/unguarded/api/v1/pods", token=None)
    answer = reply.json()
    assert (reply.status, answer["kind"], answer["reason"]) == (401, "Status", "Unauthorized")
    assert answer["message"].startswith("tollgate refused: target cluster-unguarded needs")
    assert answer["trace_id"] == reply.trace_id


def test_an_upstream_out_of_reach_is_an_openai_error_with_the_trace_id(gw: Gateway) -> None:
    """tollgate let the request through, so the answer names the exchange's trace."""
    with pytest.raises(openai.InternalServerError) as failed:
        client(gw, tokens.token(), "/down/v1").chat.completions.create(
            model="gpt-4o", messages=ASK)
    error = failed.value
    assert error.status_code == 503
    assert str(error).startswith(
        "Error code: 503 - upstream connect error or disconnect/reset before headers")
    assert error.code == "upstream_unavailable"
    trace_id = error.response.headers["x-tollgate-trace-id"]
    assert error.body["trace_id"] == trace_id
    (span,) = gw.otlp.spans_of(trace_id)
    assert span.attributes["tollgate.target"] == "model-down"


def test_a_body_over_envoys_buffer_limit_on_an_llm_route(gw: Gateway) -> None:
    chunk = b"x" * 65536
    raw = gw.send_raw(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {tokens.token()}\r\n".encode()
        + b"x-request-id: big-llm-1\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 20  # 1.25 MiB, left unterminated
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), raw[:300]
    assert openai_error(body) == {
        "message": "Payload Too Large", "type": "payload_too_large",
        "code": "payload_too_large", "param": None, "trace_id": None,
        "request_id": "big-llm-1"}


def openai_error(body: bytes) -> dict[str, Any]:
    answer = json.loads(body)
    assert list(answer) == ["error"]
    return answer["error"]


def test_tollgate_out_of_reach_answers_503_in_each_shape(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(
        targets=[{"name": "demo", "match": {"route": "demo"}},
                 {"name": "model", "match": {"route": "llm"}, "protocol": "llm"},
                 {"name": "cluster", "match": {"route": "k8s"}, "protocol": "k8s"}],
        routes=[tagged("llm", "/v1/", "llm"), tagged("k8s", "/api/", "k8s")],
    )
    gw.tollgate.popen.kill()
    gw.tollgate.popen.wait(10)
    with pytest.raises(openai.InternalServerError) as failed:
        client(gw, tokens.token()).chat.completions.create(model="gpt-4o", messages=ASK)
    assert str(failed.value) == "Error code: 503 - refused: tollgate is unreachable or failed"
    assert failed.value.code == "tollgate_unavailable"
    cluster = gw.request("GET", "/api/v1/pods")
    assert (cluster.status, cluster.json()["kind"], cluster.json()["reason"]) == (
        503, "Status", "ServiceUnavailable")
    plain = gw.request("GET", "/echo")
    assert (plain.status, plain.json()["error"], plain.json()["message"]) == (
        503, "tollgate_unavailable", "refused: tollgate is unreachable or failed")
    assert gw.upstream.requests == []
