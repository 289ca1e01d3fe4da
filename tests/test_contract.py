"""The policy contract's schemas agree with the code that sends inputs and reads decisions.

policies/input.schema.json and policies/decision.schema.json are what a Rego
author reads; these tests keep them true: the inputs a running servicer sends
(over real gRPC, decided by the real pack) validate, and the decision schema
accepts exactly what `Decision.parse` accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HttpBody,
    HttpHeaders,
    ProcessingRequest,
)
from jsonschema import Draft202012Validator

from extproc.policy import Decision, MalformedDecision, Modules
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules
from tests.test_servicer import Stream, get, headers, run

REPO = Path(__file__).resolve().parent.parent
INPUT_SCHEMA = json.loads((REPO / "policies" / "input.schema.json").read_text())
DECISION_SCHEMA = json.loads((REPO / "policies" / "decision.schema.json").read_text())
INPUT = Draft202012Validator(INPUT_SCHEMA)
DECISION = Draft202012Validator(DECISION_SCHEMA)
REDACTED = re.compile(r"<redacted:[0-9a-f]{12}>")


class RecordingEngine:
    """The embedded engine, keeping every input it is asked to decide."""

    def __init__(self, modules: Modules) -> None:
        self._inner = EmbeddedEngine(modules, "data.tollgate.decision")
        self.revision = self._inner.revision
        self.inputs: list[dict[str, Any]] = []

    async def decide(self, input_json: str) -> Decision:
        self.inputs.append(json.loads(input_json))
        return await self._inner.decide(input_json)

    async def load(self, modules: Modules) -> None:
        await self._inner.load(modules)

    async def close(self) -> None:
        await self._inner.close()


def raw_body(data: bytes) -> ProcessingRequest:
    return ProcessingRequest(request_body=HttpBody(body=data, end_of_stream=True))


def upstream_headers(pairs: dict[str, str], end_of_stream: bool) -> ProcessingRequest:
    return ProcessingRequest(response_headers=HttpHeaders(
        headers=HeaderMap(
            headers=[HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
        ),
        end_of_stream=end_of_stream,
    ))


def upstream_body(data: bytes) -> ProcessingRequest:
    return ProcessingRequest(response_body=HttpBody(body=data, end_of_stream=True))


def post(content_type: str) -> ProcessingRequest:
    return headers({":method": "POST", ":path": "/query", "content-type": content_type}, False)


async def get_with_query_and_secrets(stream: Stream) -> None:
    await stream.send(get(
        "/items?id=1&id=2&q=&sql=select%201&flag", authorization="Bearer s3cret",
        cookie="sid=abc", **{"x-api-key": "k-123", "user-agent": "agent/1.0"},
    ))


async def json_post(stream: Stream) -> None:
    await stream.send(post("application/json"))
    await stream.send(raw_body(b'{"sql": "SELECT 1", "n": [1, 2.5, true, null]}'))


async def json_array_post(stream: Stream) -> None:
    await stream.send(post("application/vnd.api+json"))
    await stream.send(raw_body(b'[{"id": 1}]'))


async def text_post(stream: Stream) -> None:
    await stream.send(post("text/plain; charset=utf-8"))
    await stream.send(raw_body("SELECT name FROM customers -- café".encode()))


async def binary_post(stream: Stream) -> None:
    await stream.send(post("application/octet-stream"))
    await stream.send(raw_body(b"\xff\xfe\x00binary"))


async def unread_post(stream: Stream) -> None:
    await stream.send(post("application/json"))


async def json_response(stream: Stream) -> None:
    await stream.send(get("/api/customers"))
    await stream.send(upstream_headers({
        ":status": "200", "content-type": "application/json", "set-cookie": "sid=xyz",
    }, False))
    await stream.send(upstream_body(b'{"customers": [{"name": "Ada", "ssn": "078-05-1120"}]}'))


async def text_response(stream: Stream) -> None:
    await stream.send(get("/health"))
    await stream.send(upstream_headers({":status": "503", "content-type": "text/plain"}, False))
    await stream.send(upstream_body(b"upstream unavailable"))


async def response_headers_only(stream: Stream) -> None:
    await stream.send(get("/api/customers/1"))
    await stream.send(upstream_headers({":status": "204"}, True))


Scenario = Callable[[Stream], Awaitable[None]]
# The pack masks what passes, which needs response bodies read: scenarios that do not
# read them run on a target labelled masking off (the pack then asks for no mask).
UNMASKED = {"labels": {"masking": "off"}}
SCENARIOS: dict[str, tuple[Scenario, dict[str, Any]]] = {
    "get-query-secrets": (get_with_query_and_secrets, UNMASKED),
    "json-post": (json_post, UNMASKED),
    "json-array-post": (json_array_post, UNMASKED),
    "text-post": (text_post, UNMASKED),
    "binary-post": (binary_post, UNMASKED),
    "body-not-inspected": (unread_post, {"inspect": {"request_body": False}, **UNMASKED}),
    "json-response": (json_response, {
        "inspect": {"response": "body"}, "environment": "prod",
        "labels": {"team": "billing", "access": "read-only"},
    }),
    "text-response": (text_response, {"inspect": {"response": "body"}}),
    "response-headers": (response_headers_only, {"inspect": {"response": "headers"}, **UNMASKED}),
}


@pytest.fixture(scope="module")
def captured() -> dict[str, list[dict[str, Any]]]:
    """Every input the servicer built, per scenario, decided by the real policy pack."""
    modules = read_modules(REPO / "policies")
    inputs = {}
    for name, (scenario, target) in SCENARIOS.items():
        engine = RecordingEngine(modules)
        run(scenario, engine=engine, **target)
        inputs[name] = engine.inputs
    return inputs


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_inputs_the_servicer_sends_match_the_schema(
    scenario: str, captured: dict[str, list[dict[str, Any]]]
) -> None:
    assert captured[scenario], "the servicer asked for no decision"
    for policy_input in captured[scenario]:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in INPUT.iter_errors(policy_input)]
        assert not errors, errors


def test_the_captured_inputs_cover_the_contract(
    captured: dict[str, list[dict[str, Any]]]
) -> None:
    """Guards the capture itself: each part of the schema was exercised with real values."""
    (query_get,) = captured["get-query-secrets"]
    request = query_get["request"]
    assert request["query"] == {
        "id": ["1", "2"], "q": [""], "sql": ["select 1"], "flag": [""]
    }
    assert request["path"] == "/items"
    for secret in ("authorization", "cookie", "x-api-key"):
        assert REDACTED.fullmatch(request["headers"][secret]), secret
    assert request["headers"]["user-agent"] == "agent/1.0"

    bodies = {name: captured[name][0]["request"]["body"] for name in (
        "json-post", "json-array-post", "text-post", "binary-post", "body-not-inspected"
    )}
    assert bodies == {
        "json-post": {"sql": "SELECT 1", "n": [1, 2.5, True, None]},
        "json-array-post": [{"id": 1}],
        "text-post": "SELECT name FROM customers -- café",
        "binary-post": None,
        "body-not-inspected": None,
    }

    request_phase, response_phase = captured["json-response"]
    assert (request_phase["phase"], request_phase["response"]) == ("request", None)
    assert response_phase["phase"] == "response"
    assert response_phase["request"] == request_phase["request"]
    response = response_phase["response"]
    assert response["status"] == 200
    assert response["body"] == {"customers": [{"name": "Ada", "ssn": "078-05-1120"}]}
    assert REDACTED.fullmatch(response["headers"]["set-cookie"])
    assert response_phase["target"] == {
        "name": "demo", "protocol": "http", "environment": "prod",
        "labels": {"team": "billing", "access": "read-only"},
    }
    assert captured["text-response"][1]["response"]["body"] == "upstream unavailable"
    assert captured["response-headers"][1]["response"] == {
        "status": 204, "headers": {}, "body": None
    }


def _changed(path: list[str], value: Any) -> dict[str, Any]:
    """A valid input with one value replaced (or, with value ..., removed)."""
    policy_input: dict[str, Any] = json.loads(json.dumps(VALID_INPUT))
    node = policy_input
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return policy_input


VALID_INPUT: dict[str, Any] = {
    "phase": "request",
    "identity": {"authenticated": False},
    "target": {"name": "demo", "protocol": "http", "environment": "dev", "labels": {}},
    "request": {"method": "GET", "path": "/", "query": {}, "headers": {}, "body": None},
    "response": None, "sql": None, "k8s": None, "llm": None, "approval": None,
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["phase"], "resp"),
        (["stats"], {}),
        (["approval"], ...),
        (["identity", "sub"], "svc-autogen"),
        (["target", "protocol"], "sql"),
        (["target", "labels"], {"tier": 1}),
        (["request", "query"], {"id": "1"}),
        (["request", "headers"], {":path": "/"}),
        (["request", "headers"], {"x-count": 1}),
        (["request", "cookies"], {}),
        (["response"], {"status": 200, "headers": {}}),
        (["response"], {"status": "200", "headers": {}, "body": None}),
        (["sql"], {"statements": []}),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, list) else None,
)
def test_input_schema_rejects_what_the_servicer_never_sends(path: list[str], value: Any) -> None:
    assert INPUT.is_valid(VALID_INPUT)
    assert not INPUT.is_valid(_changed(path, value))


VALID_DECISIONS: list[dict[str, Any]] = [
    {"action": "allow"},
    {"action": "allow", "reasons": [], "rules": []},
    {"action": "deny", "reasons": ["destructive SQL: DROP"], "rules": ["sql.destructive"]},
    {"action": "deny", "status": 400},
    {"action": "deny", "status": 429, "reasons": ["rate limited"]},
    {"action": "deny", "status": 599},
    {"action": "hold", "reasons": ["exec in prod"], "rules": ["k8s.exec"],
     "approvers": ["group:dba", "user:alice"], "hold_seconds": 300},
    {"action": "allow", "mask": {"fields": ["ssn"], "detectors": ["credit_card"]}},
    {"action": "allow", "mask": {}},
    {"action": "allow", "mask": {"detectors": ["all"], "strategy": "hash"}},
    {"action": "allow", "mask": {"fields": ["salary"], "strategy": "partial"}},
]

INVALID_DECISIONS: dict[str, Any] = {
    "not-an-object": "allow",
    "a-list": [{"action": "allow"}],
    "null": None,
    "no-action": {"reasons": ["x"]},
    "bad-action": {"action": "maybe"},
    "action-case": {"action": "ALLOW"},
    "extra-key": {"action": "allow", "extra": 1},
    "mask-unknown-key": {"action": "allow", "mask": {"headers": ["x-internal"]}},
    "mask-strategy-a-list": {"action": "allow", "mask": {"strategy": ["hash"]}},
    "misspelt-key": {"action": "deny", "reason": ["x"]},
    "status-200": {"action": "deny", "status": 200},
    "status-600": {"action": "deny", "status": 600},
    "status-string": {"action": "deny", "status": "403"},
    "status-bool": {"action": "deny", "status": True},
    "status-fraction": {"action": "deny", "status": 403.5},
    "rules-not-a-list": {"action": "deny", "rules": "sql.destructive"},
    "rules-with-a-number": {"action": "deny", "rules": [1]},
    "reasons-null": {"action": "deny", "reasons": None},
    "mask-not-an-object": {"action": "allow", "mask": ["ssn"]},
    "mask-fields-a-string": {"action": "allow", "mask": {"fields": "ssn"}},
    "mask-other-key-numbers": {"action": "allow", "mask": {"headers": [1]}},
    "approvers-a-string": {"action": "hold", "approvers": "group:dba"},
    "approvers-with-a-number": {"action": "hold", "approvers": [1]},
    "hold-seconds-a-string": {"action": "hold", "hold_seconds": "300"},
    "hold-seconds-zero": {"action": "hold", "hold_seconds": 0},
}



@pytest.mark.parametrize("decision", VALID_DECISIONS, ids=lambda d: json.dumps(d)[:60])
def test_valid_decisions_pass_the_schema_and_the_parser(decision: dict[str, Any]) -> None:
    errors = [e.message for e in DECISION.iter_errors(decision)]
    assert not errors, errors
    Decision.parse(decision)


@pytest.mark.parametrize(
    "decision", list(INVALID_DECISIONS.values()), ids=list(INVALID_DECISIONS),
)
def test_invalid_decisions_fail_the_schema(decision: Any) -> None:
    assert not DECISION.is_valid(decision)


@pytest.mark.parametrize(
    "decision", list(INVALID_DECISIONS.values()), ids=list(INVALID_DECISIONS),
)
def test_invalid_decisions_fail_the_parser(decision: Any) -> None:
    with pytest.raises(MalformedDecision):
        Decision.parse(decision)


@pytest.mark.parametrize("schema", [INPUT_SCHEMA, DECISION_SCHEMA], ids=["input", "decision"])
def test_schemas_are_valid_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("schema", [INPUT_SCHEMA, DECISION_SCHEMA], ids=["input", "decision"])
def test_every_property_is_described(schema: dict[str, Any]) -> None:
    """The schemas are what a Rego author reads: no field without its meaning."""
    undescribed = [path for path, node in _named_nodes(schema, "") if not node.get("description")]
    assert not undescribed


def _named_nodes(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each property and definition of a schema, with its path."""
    if not isinstance(node, dict):
        return
    for group in ("properties", "$defs"):
        for name, child in node.get(group, {}).items():
            yield f"{path}/{group}/{name}", child
            yield from _named_nodes(child, f"{path}/{group}/{name}")


def _doc_examples() -> list[Any]:
    text = (REPO / "docs" / "policies.md").read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]


def test_the_documented_examples_follow_the_schemas() -> None:
    inputs = [e for e in _doc_examples() if isinstance(e, dict) and "phase" in e]
    decisions = [e for e in _doc_examples() if isinstance(e, dict) and "action" in e]
    assert len(inputs) >= 2 and len(decisions) >= 4
    for example in inputs:
        assert INPUT.is_valid(example), [e.message for e in INPUT.iter_errors(example)]
    for example in decisions:
        assert DECISION.is_valid(example), [e.message for e in DECISION.iter_errors(example)]
        Decision.parse(example)
