"""tollgate's spans follow OpenTelemetry's semantic conventions: every attribute name
outside `tollgate.*` is one of the `opentelemetry-semantic-conventions` package the SDK
pins (its incubating modules hold the database, GenAI and MCP ones), and each kind of
exchange carries the conventions' attributes with the values they define.

docs/telemetry.md's tables are held to the package here (tests/support/semconv.py reads
it); tests/test_telemetry_docs.py holds what the servicer emits to those tables and to
the package, and each kind of exchange it plays to the values the conventions define.
The values each protocol's reading gives are checked on the interpreters themselves
here, and a streamed model answer and an upstream's failure through the real servicer
(`play`, as the docs test plays its exchanges).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from opentelemetry.semconv._incubating.attributes.db_attributes import DbSystemNameValues
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
    GenAiProviderNameValues,
)
from opentelemetry.semconv.schemas import Schemas

from extproc import config
from extproc.codecs.message import Request
from extproc.codecs.sql_dialects import DIALECTS
from extproc.interpret import (
    GEN_AI_PROVIDER,
    Llm,
    Mcp,
    answer_attributes,
    read_sql,
    sql_attributes,
)
from extproc.interpret import sql as sql_reader
from extproc.interpret.llm import chat_request, responses_request
from extproc.interpret.mcp import read_request
from extproc.interpret.query_text import query_text, sanitized
from extproc.telemetry import SCHEMA_URL
from tests.http.test_front import body, get
from tests.policy.test_contract import CHAT_REQUEST, chunk, upstream_headers
from tests.support.semconv import LEGACY, conventions, not_conventions
from tests.test_telemetry_docs import DOCUMENTED, Envoy, play, request

# -- the page and the package --

def test_every_documented_attribute_outside_tollgate_is_a_current_convention() -> None:
    rows = [*DOCUMENTED.resource, *DOCUMENTED.span, *DOCUMENTED.approver,
            *(row for rows in DOCUMENTED.events.values() for row in rows)]
    documented = {row.name for row in rows}
    assert not not_conventions(documented)
    names, _ = conventions()
    for legacy, replacement in LEGACY.items():
        assert legacy in documented and names[legacy], f"{legacy} is current again: drop it"
        assert replacement is None or replacement in documented, replacement


def test_the_check_knows_a_wrong_name_from_a_right_one() -> None:
    """The package read as the test reads it: current names pass, deprecated and made-up
    ones do not (so the checks above can fail)."""
    assert not not_conventions(["db.system.name", "gen_ai.usage.input_tokens",
                                "mcp.method.name", "http.request.method", "error.type",
                                "http.request.header.x-tollgate"])
    assert [w.split(":")[0] for w in not_conventions(
        ["gen_ai.system", "db.statement", "gen_ai.usage.prompt_tokens", "rpc.system",
         "tollgate_like.name"])] == ["db.statement", "gen_ai.system",
                                     "gen_ai.usage.prompt_tokens", "rpc.system",
                                     "tollgate_like.name"]


def test_the_scopes_schema_url_is_the_packages_conventions_version() -> None:
    latest = max(Schemas, key=lambda s: tuple(int(n) for n in s.value.rsplit("/")[-1].split(".")))
    assert latest.value == SCHEMA_URL


def test_enumerated_values_are_the_conventions_own() -> None:
    operations = {v.value for v in GenAiOperationNameValues}
    assert {"chat", "embeddings", "text_completion", "execute_tool"} <= operations
    assert GEN_AI_PROVIDER in {v.value for v in GenAiProviderNameValues}
    well_known = {v.value for v in DbSystemNameValues}
    systems = {dialect: sql_attributes({"dialect": dialect, "statements": [], "error": None,
                                        "multiple": False, "unread_write": False},
                                       query_text)["db.system.name"] for dialect in DIALECTS}
    assert {d: systems[d] for d in ("postgres", "mysql", "sqlite", "tsql", "oracle",
                                    "redshift", "clickhouse", "trino", "teradata", "hive")} == {
        "postgres": "postgresql", "mysql": "mysql", "sqlite": "sqlite",
        "tsql": "microsoft.sql_server", "oracle": "oracle.db", "redshift": "aws.redshift",
        "clickhouse": "clickhouse", "trino": "trino", "teradata": "teradata", "hive": "hive"}
    for dialect, system in systems.items():
        # A DBMS the conventions do not list: its own name, in lower case.
        assert system in well_known or re.fullmatch(r"[a-z][a-z0-9_]*", system), dialect


# -- SQL: db.* --

def sql_span(text: str, dialect: str = "postgres") -> dict[str, Any]:
    sql_reader.load(dialect)
    return sql_attributes(read_sql([text], config.Sql(dialect=dialect), sql_reader.analyze),
                          query_text)


def test_a_statement_is_named_summarised_and_its_text_sanitized() -> None:
    found = sql_span("SELECT id, ssn FROM customers WHERE email = 'ada@example.com' AND id = 7")
    assert {k: v for k, v in found.items() if k.startswith("db.")} == {
        "db.system.name": "postgresql", "db.operation.name": "SELECT",
        "db.collection.name": "customers", "db.query.summary": "SELECT customers",
        "db.query.text": "SELECT id, ssn FROM customers WHERE email = ? AND id = ?"}
    assert found["tollgate.sql.kinds"] == ("select",)  # tollgate's own stay


@pytest.mark.parametrize(("text", "dialect", "expected"), [
    # Every kind of literal, comments dropped, parameters kept.
    ("SELECT 'it''s', E'a\\'b', $tag$ body $tag$, U&'d\\0061t', x'ff', b'01', 1.5e3, -2, "
     "TRUE /* note: sk-live-1 */ FROM t -- ssn 078-05-1120\n WHERE a = $1",
     "postgres", "SELECT ?, ?, ?, ?, ?, ?, ?, -?, ? FROM t WHERE a = $1"),
    ("INSERT INTO \"Orders\" (note) VALUES ('call 555-0100')", "postgres",
     'INSERT INTO "Orders" (note) VALUES (?)'),
    ("ALTER ROLE app PASSWORD 'hunter2'", "postgres", "ALTER ROLE app PASSWORD ?"),
    ("SELECT `id`, \"ada\" FROM t # trailing\nWHERE x = 'y'", "mysql",
     "SELECT `id`, ? FROM t WHERE x = ?"),
    # SQLite reads a double-quoted name that is no column as a string.
    ('SELECT "078-05-1120" FROM t', "sqlite", "SELECT ? FROM t"),
    ("SELECT [id] FROM t WHERE n = N'Ada'", "tsql", "SELECT [id] FROM t WHERE n = ?"),
    # A backslash in a quoted string: a server may end the string elsewhere.
    ("SELECT 'a\\' AS x, 'secret' FROM t", "postgres", "SELECT ?"),
    ("SELECT 'a\\'b', ssn FROM t", "mysql", "SELECT ?"),
])
def test_literals_and_comments_never_reach_the_text(
        text: str, dialect: str, expected: str) -> None:
    assert sanitized(text, dialect) == expected


def test_what_cannot_be_lexed_gives_no_text() -> None:
    assert sanitized("SELECT 'cut off", "postgres") is None
    assert sanitized("SELECT 1 /* cut off", "postgres") is None
    assert sanitized("SELECT 'cut off", "mysql") is None


def test_a_batch_is_named_as_one() -> None:
    same = sql_span("SELECT 1; SELECT name FROM a")
    assert (same["db.operation.name"], same["db.query.summary"], same["db.query.text"]) == (
        "BATCH SELECT", "SELECT SELECT a", "SELECT ?; SELECT name FROM a")
    assert "db.collection.name" not in same
    mixed = sql_span("BEGIN; DELETE FROM a WHERE id = 3; COMMIT")
    assert (mixed["db.operation.name"], mixed["db.query.summary"]) == (
        "BATCH", "BEGIN DELETE a COMMIT")


@pytest.mark.parametrize(("text", "operation"), [
    ("WITH gone AS (DELETE FROM a RETURNING id) SELECT * FROM gone", "SELECT"),
    ("begin", "BEGIN"), ("COMMIT", "COMMIT"), ("DROP TABLE a", "DROP"),
    ("/* hint */ CHECKPOINT", "CHECKPOINT"),
])
def test_the_operation_is_the_statements_kind_or_first_word(text: str, operation: str) -> None:
    assert sql_span(text)["db.operation.name"] == operation


def test_the_text_stays_within_the_statements_bound() -> None:
    long_literals = "; ".join(f"SELECT '{'x' * 1500}'" for _ in range(60))
    found = sql_span(long_literals)
    # Read no further than its bound: a few statements' text, not a hundred.
    assert found["db.query.text"].startswith("SELECT ?; SELECT ?")
    assert found["db.query.text"].count("SELECT") < 5
    many = sql_span("; ".join(f"SELECT c{i} FROM t" for i in range(200)))
    assert len(many["db.query.text"]) == sql_reader.MAX_TEXT
    assert len(many["db.query.summary"]) <= 255


def test_sql_that_cannot_be_read_names_only_the_database() -> None:
    found = sql_span("SELEC * FROM users")
    assert {k for k in found if k.startswith("db.")} == {"db.system.name"}


# -- model calls: gen_ai.* --

def model_call(path: str, payload: Any, method: str = "POST") -> Request:
    return {"method": method, "path": path, "query": {}, "headers": {}, "body": payload}


def test_a_chat_is_named_with_its_model_and_the_one_tool_call_asked_for() -> None:
    llm = Llm()
    reading = chat_request(CHAT_REQUEST)
    found = llm.attributes(reading, model_call("/v1/chat/completions", CHAT_REQUEST))
    assert {k: v for k, v in found.items() if k.startswith("gen_ai.")} == {
        "gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat",
        "gen_ai.request.model": CHAT_REQUEST["model"]}
    one = {**reading, "finish_reason": "tool_calls", "tool_calls": [
        {"id": "call_9", "name": "run_shell"}]}
    found = llm.attributes(one, None)  # type: ignore[arg-type]
    assert (found["gen_ai.tool.name"], found["gen_ai.tool.call.id"],
            found["gen_ai.response.finish_reasons"]) == ("run_shell", "call_9", ("tool_calls",))
    two = {**one, "tool_calls": [{"id": "a", "name": "x"}, {"id": "b", "name": "y"}]}
    found = llm.attributes(two, None)  # type: ignore[arg-type]
    assert "gen_ai.tool.name" not in found and found["tollgate.llm.tool_calls"] == ("x", "y")
    responses = responses_request({"model": "gpt-4.1", "input": "hi"})
    assert llm.attributes(responses, None)["gen_ai.operation.name"] == "chat"


def test_model_calls_tollgate_does_not_read_are_named_all_the_same() -> None:
    llm = Llm()
    embeddings = model_call("/v1/embeddings", {"model": "text-embedding-3-small"})
    assert llm.attributes(llm.request(embeddings), embeddings) == {
        "gen_ai.provider.name": "openai", "gen_ai.operation.name": "embeddings",
        "gen_ai.request.model": "text-embedding-3-small"}
    legacy = model_call("/v1/completions", {"model": "gpt-3.5-turbo-instruct"})
    assert llm.attributes(None, legacy)["gen_ai.operation.name"] == "text_completion"
    assert llm.attributes(None, model_call("/v1/models", None, "GET")) == {}


def test_the_answer_tells_its_model_id_and_token_usage() -> None:
    whole: dict[str, Any] = {}
    answer_attributes({"id": "chatcmpl-7", "model": "gpt-4o-2024-08-06", "choices": [],
                       "usage": {"prompt_tokens": 12, "completion_tokens": 3}}, whole)
    assert whole == {"gen_ai.response.model": "gpt-4o-2024-08-06",
                     "gen_ai.response.id": "chatcmpl-7", "gen_ai.usage.input_tokens": 12,
                     "gen_ai.usage.output_tokens": 3}
    streamed: dict[str, Any] = {}
    chunks: list[dict[str, Any]] = [
        {"id": "c-1", "model": "m-1", "choices": [{"delta": {"content": "a"}}], "usage": None},
        {"id": "c-1", "model": "m-1", "choices": [{"delta": {"content": "b"}}]},
        {"id": "c-1", "model": "m-1", "choices": [], "usage": {
            "prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
    ]
    for event in chunks:
        answer_attributes(event, streamed)
    assert streamed == {"gen_ai.response.model": "m-1", "gen_ai.response.id": "c-1",
                        "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 2}
    responses: dict[str, Any] = {}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-4.1"}},
        {"type": "response.output_text.delta", "delta": "hi"},
        {"type": "response.completed", "response": {
            "id": "resp_1", "model": "gpt-4.1", "usage": {"input_tokens": 9,
                                                          "output_tokens": 1}}},
    ]
    for event in events:
        answer_attributes(event, responses)
    assert responses == {"gen_ai.response.model": "gpt-4.1", "gen_ai.response.id": "resp_1",
                         "gen_ai.usage.input_tokens": 9, "gen_ai.usage.output_tokens": 1}
    nothings: tuple[Any, ...] = (None, [], "text", {"usage": {"prompt_tokens": True}})
    for nothing in nothings:
        untouched: dict[str, Any] = {}
        answer_attributes(nothing, untouched)
        assert untouched == {}


# -- MCP: mcp.*, jsonrpc.*, gen_ai.* --

def mcp_attributes(message: Any, **headers: str) -> dict[str, Any]:
    mcp = Mcp(config.Mcp(), "tools", None)
    request = {"method": "POST", "path": "/mcp", "query": {}, "body": message,
               "headers": {"mcp-session-id": "s-1", **headers}}
    return mcp.attributes(read_request("POST", {}, request["headers"], message),
                          request)  # type: ignore[arg-type]


def test_mcp_messages_carry_the_mcp_conventions() -> None:
    call = mcp_attributes({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                           "params": {"name": "drop_all", "arguments": {}}},
                          **{"mcp-protocol-version": "2025-06-18"})
    assert {k: v for k, v in call.items() if not k.startswith("tollgate.")} == {
        "mcp.method.name": "tools/call", "mcp.session.id": "s-1", "jsonrpc.request.id": "3",
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "drop_all",
        "mcp.protocol.version": "2025-06-18"}
    prompt = mcp_attributes({"jsonrpc": "2.0", "id": "p", "method": "prompts/get",
                             "params": {"name": "code_review"}})
    assert (prompt["gen_ai.prompt.name"], prompt["jsonrpc.request.id"]) == ("code_review", "p")
    assert "gen_ai.operation.name" not in prompt
    note = mcp_attributes({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert "jsonrpc.request.id" not in note and note["mcp.method.name"] == (
        "notifications/initialized")
    answer = mcp_attributes({"jsonrpc": "2.0", "id": 0, "result": {}})
    assert answer["jsonrpc.request.id"] == "0" and "mcp.method.name" not in answer


# -- through the servicer: a streamed answer, an upstream's failure --

async def streamed_chat(envoy: Envoy) -> None:
    """A chat answered as an event stream, its usage in the last chunk."""
    await envoy.send(request("POST", "/v1/chat/completions", "openai"))
    await envoy.send(body({**CHAT_REQUEST, "stream": True,
                           "stream_options": {"include_usage": True}}))
    await envoy.tell(upstream_headers({":status": "200", "content-type": "text/event-stream"},
                                      False))
    events = [
        {"id": "c-2", "model": "gpt-4o-mini-2024-07-18",
         "choices": [{"index": 0, "delta": {"content": "Hello"}}], "usage": None},
        {"id": "c-2", "model": "gpt-4o-mini-2024-07-18",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None},
        {"id": "c-2", "model": "gpt-4o-mini-2024-07-18", "choices": [],
         "usage": {"prompt_tokens": 31, "completion_tokens": 2, "total_tokens": 33}},
    ]
    data = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
    await envoy.tell(chunk(data + b"data: [DONE]\n\n", True))
    await envoy.closed()


async def upstream_failed(envoy: Envoy) -> None:
    await envoy.send(request("GET", "/orders/1", "web"))
    await envoy.send(upstream_headers({":status": "503"}, True))
    await envoy.closed()


async def unknown_target(envoy: Envoy) -> None:
    await envoy.send(get("/x", route="nowhere"))
    await envoy.closed()


@pytest.fixture(scope="module")
def played() -> dict[str, dict[str, Any]]:
    exchanges = play({"streamed-chat": streamed_chat, "upstream-failed": upstream_failed,
                      "unknown-target": unknown_target})
    return {name: dict(exchange.span.attributes or {}) for name, exchange in exchanges.items()}


def test_a_streamed_answer_tells_its_usage_on_the_span(played: dict[str, dict[str, Any]]) -> None:
    span = played["streamed-chat"]
    assert {k: v for k, v in span.items() if k.startswith("gen_ai.")} == {
        "gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat",
        "gen_ai.request.model": CHAT_REQUEST["model"],
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.response.id": "c-2",
        "gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.input_tokens": 31,
        "gen_ai.usage.output_tokens": 2}
    assert "error.type" not in span


def test_an_upstreams_failure_and_a_refusal_are_error_types(
        played: dict[str, dict[str, Any]]) -> None:
    assert played["upstream-failed"]["error.type"] == "503"
    assert played["upstream-failed"]["tollgate.decision.action"] == "allow"
    assert played["unknown-target"]["error.type"] == "unknown_target"
    assert not not_conventions(k for span in played.values() for k in span)
