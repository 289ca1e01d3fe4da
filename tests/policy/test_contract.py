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
from tests.http.test_front import Stream, get, headers, run

REPO = Path(__file__).resolve().parents[2]
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

    def decides_responses(self, _target_json: str) -> bool:
        return True  # every phase's input is what these tests look at

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


def chunk(data: bytes, end_of_stream: bool) -> ProcessingRequest:
    return ProcessingRequest(response_body=HttpBody(body=data, end_of_stream=end_of_stream))


async def sql_in_json_field(stream: Stream) -> None:
    await stream.send(post("application/json"))
    await stream.send(raw_body(json.dumps({"sql": (
        "WITH gone AS (DELETE FROM sessions WHERE expires < now() RETURNING user_id) "
        "SELECT count(*) FROM gone; DROP TABLE audit_log"
    )}).encode()))


async def sql_in_query_parameter(stream: Stream) -> None:
    await stream.send(get("/fixtures.json?sql=select+title%2C+upper(body)+from+posts+limit+5"))


async def sql_unparseable(stream: Stream) -> None:
    await stream.send(post("text/plain"))
    await stream.send(raw_body(b"SELEC * FROM users"))


async def sql_field_not_text(stream: Stream) -> None:
    await stream.send(post("application/json"))
    await stream.send(raw_body(b'{"sql": ["DROP TABLE users"]}'))


async def k8s_pod_list(stream: Stream) -> None:
    await stream.send(get("/api/v1/namespaces/payments/pods?labelSelector=app%3Dweb&limit=50"))
    await stream.send(upstream_headers({":status": "200", "content-type": "application/json"},
                                       False))
    await stream.send(upstream_body(b'{"kind": "PodList", "apiVersion": "v1", "items": []}'))


async def k8s_websocket_exec(stream: Stream) -> None:
    await stream.send(get(
        "/api/v1/namespaces/payments/pods/web-1/exec?command=sh&command=-c"
        "&command=rm%20-rf%20%2Fdata&container=app&stdin=true&stdout=true&tty=true",
        connection="Upgrade", upgrade="websocket",
        **{"sec-websocket-protocol": "v5.channel.k8s.io"},
    ))


CHAT_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You run maintenance tasks."},
        {"role": "user", "content": [{"type": "text", "text": "Free some disk space."}]},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_0", "type": "function",
            "function": {"name": "run_sql", "arguments": json.dumps(
                {"query": "SELECT pg_size_pretty(pg_database_size(current_database()))"}
            )},
        }]},
        {"role": "tool", "tool_call_id": "call_0", "content": "48 GB"},
    ],
    "tools": [
        {"type": "function", "function": {"name": "run_shell", "description": "Run a shell command",
                                          "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "run_sql", "parameters": {"type": "object"}}},
    ],
}
SHELL_CALL = '{"command": "sudo rm -rf /var/log/*", "reason": "logs"}'


def chat_post(stream_answer: bool) -> list[ProcessingRequest]:
    body = {**CHAT_REQUEST, "stream": True} if stream_answer else CHAT_REQUEST
    return [
        headers({":method": "POST", ":path": "/v1/chat/completions",
                 "content-type": "application/json", "authorization": "Bearer sk-agent"}, False),
        raw_body(json.dumps(body).encode()),
    ]


async def llm_tool_call_answer(stream: Stream) -> None:
    for message in chat_post(stream_answer=False):
        await stream.send(message)
    await stream.tell(upstream_headers({":status": "200", "content-type": "application/json"},
                                        False))
    await stream.send(chunk(json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "run_shell", "arguments": SHELL_CALL},
            }],
        }}],
    }).encode(), True))


def _event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


async def llm_streamed_tool_call(stream: Stream) -> None:
    for message in chat_post(stream_answer=True):
        await stream.send(message)
    await stream.tell(upstream_headers(
        {":status": "200", "content-type": "text/event-stream; charset=utf-8"}, False
    ))
    events = b"".join([
        _event({"role": "assistant", "content": None, "tool_calls": [{
            "index": 0, "id": "call_2", "type": "function",
            "function": {"name": "run_sql", "arguments": ""},
        }]}),
        _event({"tool_calls": [{"index": 0, "function": {"arguments": '{"query": "TRUNCATE '}}]}),
        _event({"tool_calls": [{"index": 0, "function": {"arguments": 'orders"}'}}]}),
        _event({}, "tool_calls"),
        b"data: [DONE]\n\n",
    ])
    middle = len(events) // 2  # an event cut in two, as the network may cut it
    await stream.tell(chunk(events[:middle], False))
    await stream.send(chunk(events[middle:], True))


async def llm_not_a_chat(stream: Stream) -> None:
    await stream.send(get("/v1/models"))


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
    "sql-json-field": (sql_in_json_field, {"protocol": "sql-http", **UNMASKED}),
    "sql-query-parameter": (sql_in_query_parameter, {
        "protocol": "sql-http", "sql": {"dialect": "sqlite", "json_field": None}, **UNMASKED,
    }),
    "sql-unparseable": (sql_unparseable, {
        "protocol": "sql-http", "sql": {"raw_body": True}, **UNMASKED,
    }),
    "sql-field-not-text": (sql_field_not_text, {"protocol": "sql-http", **UNMASKED}),
    "k8s-pod-list": (k8s_pod_list, {
        "protocol": "k8s", "inspect": {"response": "body"}, "environment": "prod",
        "k8s": {"namespace_labels": {"payments": {"environment": "production", "team": "pay"}}},
    }),
    "k8s-websocket-exec": (k8s_websocket_exec, {
        "protocol": "k8s", "inspect": {"response": "body"},
        "k8s": {"namespace_labels": {"payments": {"environment": "production"}}},
    }),
    "llm-tool-call": (llm_tool_call_answer, {"protocol": "llm", "inspect": {"response": "body"}}),
    "llm-streamed-tool-call": (llm_streamed_tool_call, {
        "protocol": "llm", "inspect": {"response": "body"},
    }),
    "llm-not-a-chat": (llm_not_a_chat, {"protocol": "llm", **UNMASKED}),
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


@pytest.mark.slow
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

    # Each protocol fills its own key, and only that one.
    protocols = {"sql": "sql-http", "k8s": "k8s", "llm": "llm", "mcp": "mcp"}
    for name, inputs in captured.items():
        for policy_input in inputs:
            protocol = policy_input["target"]["protocol"]
            assert protocol == next((p for k, p in protocols.items() if name.startswith(k)),
                                    "http"), name
            for key, owner in protocols.items():
                if protocol != owner:
                    assert policy_input[key] is None, (name, key)
                elif name != "llm-not-a-chat":
                    assert isinstance(policy_input[key], dict), (name, key)


def _statements(policy_input: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(s["kind"], s["nested"], s["tables"], s["has_where"])
            for s in policy_input["sql"]["statements"]]


def test_the_captured_sql_inputs_cover_the_contract(
    captured: dict[str, list[dict[str, Any]]]
) -> None:
    (stacked,) = captured["sql-json-field"]
    sql = stacked["sql"]
    assert (sql["dialect"], sql["multiple"], sql["error"]) == ("postgres", True, None)
    # The DELETE inside the CTE is listed under its SELECT; the stacked DROP after them.
    assert _statements(stacked) == [
        ("select", False, ["sessions"], None),
        ("delete", True, ["sessions"], True),
        ("drop", False, ["audit_log"], None),
    ]
    select, delete, drop = sql["statements"]
    assert select["functions"] == ["count", "now"] and delete["functions"] == ["now"]
    assert delete["text"] == select["text"]  # a nested statement carries its parent's text
    assert (drop["object"], drop["text"]) == ("table", "DROP TABLE audit_log")
    assert select["object"] is None and select["program"] is None
    assert all(s["alter_actions"] == [] for s in sql["statements"])

    (datasette,) = captured["sql-query-parameter"]
    assert datasette["sql"] == {
        "dialect": "sqlite", "multiple": False, "error": None, "unread_write": False,
        "statements": [{
            "kind": "select", "object": None,
            "text": "select title, upper(body) from posts limit 5", "tables": ["posts"],
            "has_where": None, "functions": ["upper"], "nested": False,
            "program": None, "alter_actions": [], "settings": [], "effects": ["read"],
            "bounded": None,
            "columns": [
                {"name": "title", "sources": ["title"], "plain": True, "known": True},
                {"name": None, "sources": ["body"], "plain": False, "known": True}],
            "stores": None,
        }],
    }

    (unparseable,) = captured["sql-unparseable"]
    assert unparseable["sql"]["statements"] == []
    assert unparseable["sql"]["error"].startswith('syntax error at or near "SELEC"')
    (not_text,) = captured["sql-field-not-text"]
    assert (not_text["sql"]["statements"], not_text["sql"]["error"]) == (
        [], "the body's sql field is a JSON array, not a string"
    )


def test_the_captured_k8s_inputs_cover_the_contract(
    captured: dict[str, list[dict[str, Any]]]
) -> None:
    request_phase, response_phase = captured["k8s-pod-list"]
    assert response_phase["k8s"] == request_phase["k8s"]
    assert request_phase["k8s"] == {
        "verb": "list", "api_group": "", "api_version": "v1", "resource": "pods",
        "subresource": None, "namespace": "payments", "name": None,
        "path": "/api/v1/namespaces/payments/pods", "resource_request": True, "exec": None,
        "label_selector": "app=web", "field_selector": None, "dry_run": False,
        "effects": ["read"], "scope": "collection", "error": None,
        "namespace_labels": {"environment": "production", "team": "pay"}, "object": None,
    }

    (session,) = captured["k8s-websocket-exec"]
    k8s = session["k8s"]
    assert (k8s["verb"], k8s["resource"], k8s["subresource"], k8s["namespace"], k8s["name"]) == (
        "exec", "pods", "exec", "payments", "web-1"
    )
    assert k8s["exec"] == {
        "command": ["sh", "-c", "rm -rf /data"],
        "commands": [["sh", "-c", "rm -rf /data"], ["rm", "-rf", "/data"]],
        "opaque": [], "writes": [],
        "container": "app", "stdin": True,
        "stdout": True, "stderr": False, "tty": True, "transport": "websocket",
        "line": None, "readable": True, "unreadable": None, "file": None,
    }
    assert k8s["namespace_labels"] == {"environment": "production"}


def test_the_captured_llm_inputs_cover_the_contract(
    captured: dict[str, list[dict[str, Any]]]
) -> None:
    asked, answered = captured["llm-tool-call"]
    llm = asked["llm"]
    assert (llm["api"], llm["model"], llm["stream"], llm["error"]) == (
        "chat.completions", "gpt-4o-mini", False, None
    )
    assert (llm["tool_calls"], llm["finish_reason"]) == ([], None)  # a request asks no call
    assert [(m["role"], m["text"]) for m in llm["messages"]] == [
        ("system", "You run maintenance tasks."), ("user", "Free some disk space."),
        ("assistant", ""), ("tool", "48 GB"),
    ]
    (history,) = llm["messages"][2]["tool_calls"]  # already run: the history's
    assert (history["id"], history["name"]) == ("call_0", "run_sql")
    assert [(s["kind"], s["functions"]) for s in history["sql"]] == [
        ("select", ["current_database", "pg_database_size", "pg_size_pretty"])
    ]
    assert llm["tools"] == [
        {"name": "run_shell", "description": "Run a shell command"},
        {"name": "run_sql", "description": ""},
    ]

    # The answer adds the model's tool calls to what the request meant.
    added = ("tool_calls", "finish_reason")
    assert {k: v for k, v in answered["llm"].items() if k not in added} == (
        {k: v for k, v in llm.items() if k not in added}
    )
    assert answered["llm"]["finish_reason"] == "tool_calls"
    (call,) = answered["llm"]["tool_calls"]
    assert call == {
        "id": "call_1", "name": "run_shell",
        "arguments": {"command": "sudo rm -rf /var/log/*", "reason": "logs"},
        "arguments_text": SHELL_CALL, "texts": ["sudo rm -rf /var/log/*", "logs"],
        "commands": [["sudo", "rm", "-rf", "/var/log/*"], ["rm", "-rf", "/var/log/*"], ["logs"]],
        "opaque": [], "writes": [], "sql": [], "error": None,
    }

    asked, answered = captured["llm-streamed-tool-call"]
    assert asked["llm"]["stream"] is True and asked["llm"]["tool_calls"] == []
    (call,) = answered["llm"]["tool_calls"]  # assembled from deltas cut mid-event
    assert (call["id"], call["name"], call["arguments"]) == (
        "call_2", "run_sql", {"query": "TRUNCATE orders"}
    )
    assert [(s["kind"], s["object"], s["tables"]) for s in call["sql"]] == [
        ("truncate", "table", ["orders"])
    ]
    assert answered["llm"]["finish_reason"] == "tool_calls"

    (models,) = captured["llm-not-a-chat"]
    assert models["target"]["protocol"] == "llm" and models["llm"] is None


def _changed(
    path: list[str | int], value: Any, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A valid input (VALID_INPUT unless `base`) with one value replaced (or, with value
    ..., removed)."""
    policy_input: dict[str, Any] = json.loads(json.dumps(VALID_INPUT if base is None else base))
    node: Any = policy_input
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
    "response": None, "sql": None, "k8s": None, "llm": None, "mcp": None, "postgres": None,
    "approval": None,
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


DELETE_ALL = {
    "kind": "delete", "object": None, "text": "DELETE FROM users", "tables": ["users"],
    "has_where": False, "functions": [], "nested": False, "program": None, "alter_actions": [],
    "effects": ["write"], "bounded": False,
}
VALID_SQL_INPUT: dict[str, Any] = {
    **VALID_INPUT,
    "target": {"name": "orders-sql", "protocol": "sql-http", "environment": "prod", "labels": {}},
    "sql": {"dialect": "postgres", "statements": [DELETE_ALL], "multiple": False, "error": None,
            "unread_write": False},
}
EXEC = {"command": ["sh"], "commands": [["sh"]], "opaque": [], "writes": [], "container": None,
        "stdin": True, "stdout": True, "stderr": False, "tty": True, "transport": "websocket",
        "line": None, "readable": True, "unreadable": None, "file": None}
VALID_K8S_INPUT: dict[str, Any] = {
    **VALID_INPUT,
    "target": {"name": "cluster", "protocol": "k8s", "environment": "prod", "labels": {}},
    "k8s": {
        "verb": "exec", "api_group": "", "api_version": "v1", "resource": "pods",
        "subresource": "exec", "namespace": "payments", "name": "web-1",
        "path": "/api/v1/namespaces/payments/pods/web-1/exec", "resource_request": True,
        "exec": EXEC, "label_selector": None, "field_selector": None, "dry_run": False,
        "effects": ["runs_code"], "scope": "object", "error": None,
        "namespace_labels": {"environment": "production"}, "object": None,
    },
}
K8S_OBJECT = {"kind": "Pod", "namespace": None, "name": "x", "patch": None,
              "effects": ["runs_code"], "grants": None, "pod": {
    "containers": [{"name": "x", "image": "busybox", "command": None, "args": ["sh"]}],
    "secrets": ["db"], "service_account": None, "host_network": False, "host_pid": False,
    "host_ipc": False, "host_paths": [], "privileged": False, "capabilities": []}}
TOOL_CALL = {
    "id": "call_1", "name": "run_shell", "arguments": {"command": "ls"},
    "arguments_text": '{"command": "ls"}', "texts": ["ls"], "commands": [["ls"]], "opaque": [],
    "writes": [], "sql": [], "error": None,
}
VALID_LLM_INPUT: dict[str, Any] = {
    **VALID_INPUT,
    "phase": "response",
    "target": {"name": "openai", "protocol": "llm", "environment": "prod", "labels": {}},
    "request": {"method": "POST", "path": "/v1/chat/completions", "query": {}, "headers": {},
                "body": None},
    "response": {"status": 200, "headers": {}, "body": None},
    "llm": {
        "api": "chat.completions", "model": "gpt-4o-mini", "stream": False,
        "messages": [{"role": "user", "text": "list the files", "tool_calls": []}],
        "tools": [{"name": "run_shell", "description": ""}], "tool_calls": [TOOL_CALL],
        "finish_reason": "tool_calls", "error": None,
    },
}
FINGERPRINT = "3f" * 32
MCP_TOOL = {
    "name": "run_shell", "arguments": {"command": "ls"}, "kind": "shell",
    "declared": {"title": None, "description": "Run a shell command",
                 "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
                 "annotations": {"destructiveHint": True}},
    "pin": {"status": "pinned", "fingerprint": FINGERPRINT, "pinned": FINGERPRINT,
            "renamed_from": None},
}
VALID_MCP_INPUT: dict[str, Any] = {
    **VALID_INPUT,
    "target": {"name": "tools", "protocol": "mcp", "environment": "dev", "labels": {}},
    "request": {"method": "POST", "path": "/mcp", "query": {},
                "headers": {"mcp-session-id": "s-1"}, "body": None},
    "mcp": {
        "transport": "streamable-http", "from": "client", "session": "s-1", "kind": "request",
        "method": "tools/call", "id": 3, "params": {"name": "run_shell",
                                                    "arguments": {"command": "ls"}},
        "tool": MCP_TOOL, "call": {**TOOL_CALL, "id": None}, "resource": None,
        "prompt": None, "probe": False, "error": None,
    },
}
VALID_BASES = {"sql": VALID_SQL_INPUT, "k8s": VALID_K8S_INPUT, "llm": VALID_LLM_INPUT,
               "mcp": VALID_MCP_INPUT}


@pytest.mark.parametrize(
    ("base", "path", "value"),
    [
        ("llm", ["llm"], None),  # a request to an llm target that is no chat completion
        ("llm", ["llm", "tool_calls", 0, "sql"], [{"kind": "unparsed", "text": "DROP",
                                                   "error": "syntax error at end of input"}]),
        ("llm", ["llm", "tool_calls", 0, "arguments"], None),
        ("mcp", ["mcp", "id"], "req-1"),
        ("mcp", ["mcp", "tool", "declared"], None),
        ("mcp", ["mcp", "tool", "pin"], {"status": "unknown", "fingerprint": None,
                                         "pinned": None, "renamed_from": None}),
        ("mcp", ["mcp", "tool", "pin", "pinned"], "0" * 64),
        ("mcp", ["mcp", "tool", "pin", "status"], "renamed"),
        ("mcp", ["mcp", "tool", "pin", "renamed_from"], "read_file"),
        ("mcp", ["mcp", "tool", "kind"], None),
        ("mcp", ["mcp", "probe"], True),
        ("mcp", ["mcp", "from"], "server"),
        ("mcp", ["mcp", "transport"], "sse"),
        ("mcp", ["mcp", "resource"], {"uri": "file:///srv/docs/README.md"}),
        ("mcp", ["mcp", "prompt"], {"name": "summarise", "arguments": None}),
        ("sql", ["sql", "statements"], []),
        ("sql", ["sql", "statements", 0, "has_where"], True),
        ("sql", ["sql", "error"], None),
        ("k8s", ["k8s", "namespace_labels"], {}),
        ("k8s", ["k8s", "exec", "transport"], None),
        ("k8s", ["k8s", "object"], K8S_OBJECT),
        ("k8s", ["k8s", "object"], {**K8S_OBJECT, "patch": "json", "pod": None}),
    ],
    ids=lambda v: ".".join(map(str, v)) if isinstance(v, list) else repr(v)[:30],
)
def test_input_schema_accepts_what_the_interpreters_send(
    base: str, path: list[str | int], value: Any
) -> None:
    policy_input = _changed(path, value, VALID_BASES.get(base))
    assert not (errors := [e.message for e in INPUT.iter_errors(policy_input)]), errors


@pytest.mark.parametrize(
    ("base", "path", "value"),
    [
        # Each interpreted key belongs to its protocol: present there, null elsewhere.
        ("sql", ["sql"], None),
        ("sql", ["target", "protocol"], "http"),
        ("http", ["sql"], VALID_SQL_INPUT["sql"]),
        ("k8s", ["k8s"], None),
        ("k8s", ["target", "protocol"], "llm"),
        ("llm", ["target", "protocol"], "http"),
        ("http", ["llm"], VALID_LLM_INPUT["llm"]),
        ("mcp", ["mcp"], None),
        ("mcp", ["target", "protocol"], "http"),
        ("http", ["mcp"], VALID_MCP_INPUT["mcp"]),
        ("http", ["mcp"], ...),
        # input.mcp
        ("mcp", ["mcp", "kind"], "batch"),
        ("mcp", ["mcp", "from"], "upstream"),
        ("mcp", ["mcp", "probe"], None),
        ("mcp", ["mcp", "tool", "pin", "status"], "approved"),
        ("mcp", ["mcp", "tool", "pin", "fingerprint"], "sha256:abc"),
        ("mcp", ["mcp", "tool", "pin", "renamed_from"], ...),
        ("mcp", ["mcp", "tool", "kind"], "python"),
        ("mcp", ["mcp", "tool", "name"], None),
        ("mcp", ["mcp", "call", "commands"], ["ls"]),
        ("mcp", ["mcp", "params"], [1, 2]),
        # input.sql
        ("sql", ["sql", "statements"], ...),
        ("sql", ["sql", "rows"], 10),
        ("sql", ["sql", "error"], "syntax error at or near \"DR\""),  # statements left
        ("sql", ["sql", "statements", 0, "kind"], "DELETE"),
        ("sql", ["sql", "statements", 0, "kind"], "unparsed"),
        ("sql", ["sql", "statements", 0, "where"], False),
        ("sql", ["sql", "statements", 0, "has_where"], None),
        ("sql", ["sql", "statements", 0, "kind"], "select"),  # has_where false on a select
        ("sql", ["sql", "statements", 0, "program"], "rm -rf /"),  # a program, not a copy
        ("sql", ["sql", "statements", 0, "tables"], "users"),
        ("sql", ["sql", "statements", 0, "text"], "x" * 2001),
        # input.k8s
        ("k8s", ["k8s", "namespace_labels"], ...),
        ("k8s", ["k8s", "namespace_labels"], {"tier": 1}),
        ("k8s", ["k8s", "verb"], "get"),  # a get carries no exec session
        ("k8s", ["k8s", "error"], "empty segment in path"),  # with a verb
        ("k8s", ["k8s", "resource_request"], False),  # with a resource
        ("k8s", ["k8s", "exec", "command"], "sh -c ls"),
        ("k8s", ["k8s", "exec", "transport"], "http2"),
        # input.llm
        ("llm", ["phase"], "request"),  # a request carries no new tool call
        ("llm", ["llm", "api"], "embeddings"),
        ("llm", ["llm", "messages", 0, "content"], "list the files"),
        ("llm", ["llm", "tool_calls", 0, "commands"], ["ls"]),
        ("llm", ["llm", "tool_calls", 0, "sql"], [{"kind": "unparsed", "text": "DROP"}]),
        ("llm", ["llm", "tool_calls", 0, "texts"], ["x"] * 1025),
        ("llm", ["llm", "tool_calls", 0, "opaque"], [{"argv": ["sh"], "why": "unknown"}]),
    ],
    ids=lambda v: ".".join(map(str, v)) if isinstance(v, list) else repr(v)[:30],
)
def test_input_schema_rejects_interpreted_inputs_the_servicer_never_sends(
    base: str, path: list[str | int], value: Any
) -> None:
    assert INPUT.is_valid(VALID_BASES.get(base, VALID_INPUT))
    assert not INPUT.is_valid(_changed(path, value, VALID_BASES.get(base)))


VALID_DECISIONS: list[dict[str, Any]] = [
    {"action": "allow"},
    {"action": "allow", "reasons": [], "rules": []},
    {"action": "deny", "reasons": ["destructive SQL: DROP"], "rules": ["sql.destructive"]},
    {"action": "deny", "status": 400},
    {"action": "deny", "status": 429, "reasons": ["rate limited"]},
    {"action": "deny", "status": 599},
    {"action": "hold", "reasons": ["exec in prod"], "rules": ["k8s.exec"],
     "approvers": ["group:dba", "user:alice"], "hold_seconds": 300},
    {"action": "hold", "approvers": ["group:dba"], "grant": "once"},
    {"action": "hold", "approvers": ["group:sre"], "grant": "window", "grant_minutes": 30},
    {"action": "hold", "approvers": ["group:sre"], "grant": "window", "grant_minutes": 1440},
    {"action": "hold", "approvers": ["group:dba"], "approvals_needed": 2},
    {"action": "allow", "approvals_needed": 1},
    {"action": "allow", "moderated": True},
    {"action": "hold", "approvers": ["group:dba"], "moderated": True},
    {"action": "deny", "moderated": False},
    {"action": "allow", "mask": {"fields": ["ssn"], "detectors": ["credit_card"]}},
    {"action": "allow", "mask": {}},
    {"action": "allow", "mask": {"detectors": ["all"], "strategy": "hash"}},
    {"action": "allow", "mask": {"fields": ["salary"], "strategy": "partial"}},
    {"action": "allow", "mask": {"detectors": ["all"], "actions": ["credit_card", "jwt"]}},
    {"action": "allow", "mask": {"actions": []}},
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
    "mask-actions-a-string": {"action": "allow", "mask": {"actions": "credit_card"}},
    "mask-other-key-numbers": {"action": "allow", "mask": {"headers": [1]}},
    "approvers-a-string": {"action": "hold", "approvers": "group:dba"},
    "approvers-with-a-number": {"action": "hold", "approvers": [1]},
    "hold-seconds-a-string": {"action": "hold", "hold_seconds": "300"},
    "hold-seconds-zero": {"action": "hold", "hold_seconds": 0},
    "grant-unknown": {"action": "hold", "grant": "forever"},
    "window-without-minutes": {"action": "hold", "grant": "window"},
    "minutes-without-window": {"action": "hold", "grant_minutes": 5},
    "minutes-with-once": {"action": "hold", "grant": "once", "grant_minutes": 5},
    "minutes-zero": {"action": "hold", "grant": "window", "grant_minutes": 0},
    "minutes-over-a-day": {"action": "hold", "grant": "window", "grant_minutes": 1441},
    "minutes-fraction": {"action": "hold", "grant": "window", "grant_minutes": 2.5},
    "two-approvers-of-an-allow": {"action": "allow", "approvals_needed": 2},
    "approvals-needed-zero": {"action": "hold", "approvals_needed": 0},
    "approvals-needed-six": {"action": "hold", "approvals_needed": 6},
    "approvals-needed-a-string": {"action": "hold", "approvals_needed": "2"},
    "approvals-needed-bool": {"action": "hold", "approvals_needed": True},
    "a-moderated-deny": {"action": "deny", "moderated": True},
    "moderated-a-string": {"action": "allow", "moderated": "true"},
    "moderated-a-number": {"action": "allow", "moderated": 1},
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
