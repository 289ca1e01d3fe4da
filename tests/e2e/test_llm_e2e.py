"""LLM calls end to end: the real `openai` client, through a real Envoy, to the
OpenAI-compatible stand-in (tests/standins/openai_standin.py: no hosted model is reachable here).

tollgate reads the chat request (model, messages, tools) and the model's answer — whole
or streamed — and the default pack refuses a tool call whose arguments carry a
destructive shell command or SQL before the agent can run it: a whole answer is
replaced by the refusal; a streamed one is held from its first tool-call delta, so a
refused call never reaches the client, and a stream that is refused after text has
flowed ends with an error event, which the client raises.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from extproc.store import connect
from tests.e2e.test_recording_e2e import record_of
from tests.standins.openai_standin import OpenAIStandIn, Reply, ToolCall
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.http_server import LocalServer

API_KEY = "sk-upstream-0f3c9a"  # the target's credential, injected by tollgate
TOOLS = [
    {"type": "function", "function": {"name": "run_shell", "description": "Run a command",
                                      "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "run_sql", "description": "Query the DB",
                                      "parameters": {"type": "object"}}},
]
ASK = [{"role": "user", "content": "Tidy up the server please"}]
SSN = "078-05-1120"  # in a refused tool call's arguments: the record masks it


@pytest.fixture(scope="module")
def model() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key=API_KEY) as server:
        yield server


class Served:
    """An upstream that serves each answer as scripted, bytes and declared Content-Type as
    they come: a hostile or broken model server (the stand-in serves only what the API
    does). What a client reads from it is shown beside each test that refuses it."""

    def __init__(self) -> None:
        self.replies: list[tuple[str, bytes]] = []
        self._server = LocalServer(self._answer)
        self.port = self._server.port

    def _answer(self, _method: str, _path: str, _body: bytes) -> tuple[int, bytes, str]:
        content_type, body = self.replies.pop(0)
        return 200, body, content_type

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    upstream = Served()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, otlp, model: OpenAIStandIn,  # type: ignore[no-untyped-def]
    served: Served,
) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "llm",
            targets=[{"name": "openai", "match": {"route": "llm"}, "protocol": "llm",
                      "credential": {"type": "bearer", "from_env": "OPENAI_KEY"}},
                     {"name": "served", "match": {"route": "served"}, "protocol": "llm"}],
            routes=[{"name": "llm", "match": {"prefix": "/v1/"}, "route": {"cluster": "llm"}},
                    {"name": "served", "match": {"prefix": "/served/v1/"},
                     "route": {"cluster": "served"}}],
            clusters={"llm": model.port, "served": served.port},
            env={"OPENAI_KEY": API_KEY},
            # A streamed answer of a few hundred events is kept whole in the record.
            settings={"recording": {"max_body_bytes": 1024 * 1024}},
    ) as running:
        yield running


@pytest.fixture
def client(gw: Gateway) -> openai.OpenAI:
    """The agent's client: it holds the gateway's token, never the model's key."""
    return openai.OpenAI(base_url=f"http://127.0.0.1:{gw.ports.listener}/v1",
                         api_key=tokens.token(), max_retries=0, timeout=10)


def shell(command: str) -> ToolCall:
    return ToolCall("run_shell", {"command": command})


def chat(client: openai.OpenAI, **extra):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(model="gpt-4o", messages=ASK, tools=TOOLS, **extra)


def test_a_harmless_tool_call_reaches_the_agent(
    client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    model.script(Reply(tool_calls=(shell("ls -la /var/log"),)))
    answer = chat(client)
    (call,) = answer.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == (
        "run_shell", '{"command": "ls -la /var/log"}')
    assert model.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"


def test_rm_rf_in_a_whole_answer_is_replaced_by_the_refusal(
    gw: Gateway, client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    model.script(Reply(tool_calls=(shell("sudo rm -rf /"),)))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(client)
    error = refused.value.body
    assert error["code"] == "denied"
    assert error["rules"] == ["llm.destructive_tool_call"]
    assert error["reasons"] == ["tool call run_shell: destructive command: rm -rf /"]
    (span,) = gw.otlp.spans_of(refused.value.response.headers["x-tollgate-trace-id"])
    assert span.attributes["tollgate.llm.tool_calls"] == ("run_shell",)
    assert span.attributes["tollgate.llm.model"] == "gpt-4o"


def test_drop_table_in_a_streamed_tool_call_never_reaches_the_agent(
    client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    model.script(Reply(tool_calls=(ToolCall("run_sql", {"query": "DROP TABLE customers"}),)))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        list(chat(client, stream=True))
    assert refused.value.body["reasons"] == ["tool call run_sql: destructive SQL: DROP"]


def audit(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    """`tollgate audit ...` on this gateway's store and key, as an investigator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "extproc", "audit", *args, "--config", str(gw.config_path)],
        capture_output=True, text=True, timeout=60, check=False)


def streamed_calls(events: str) -> list[tuple[str, str]]:
    """The tool calls a recorded event stream carries, assembled: (name, arguments)."""
    calls: dict[int, tuple[str, str]] = {}
    for line in events.splitlines():
        if not line.startswith("data: {"):
            continue
        for choice in json.loads(line.removeprefix("data: ")).get("choices") or ():
            for call in choice["delta"].get("tool_calls") or ():
                name, arguments = calls.get(call["index"], ("", ""))
                function = call.get("function") or {}
                calls[call["index"]] = (name + (function.get("name") or ""),
                                        arguments + (function.get("arguments") or ""))
    return list(calls.values())


def check_refused_answer(record: dict[str, Any], name: str, arguments: str,
                         error: openai.APIStatusError) -> None:
    """The record of a model's answer refused whole: the interpreter's reading lists the
    refused call; `upstream_body` holds the answer masked; `body`, the refusal the agent
    got; the upstream's own status beside the 403 the agent got."""
    (called,) = record["meaning"]["llm"]["tool_calls"]
    assert (called["name"], called["arguments_text"]) == (name, arguments)
    assert record["decisions"][0]["meaning"]["llm"]["tool_calls"] == []  # the request's
    response = record["response"]
    assert (response["status"], record["outcome"]["status"]) == (200, 403)
    assert response["body"]["media_type"] == "application/json"
    assert response["body"]["value"]["error"] == error.body
    assert SSN not in json.dumps(record)


def test_a_refused_answer_is_recorded_beside_the_refusal_the_agent_got(
    gw: Gateway, client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    model.script(Reply(tool_calls=(shell(f"rm -rf / # ssn {SSN}"),)))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(client)
    trace_id = refused.value.response.headers["x-tollgate-trace-id"]
    record = record_of(gw, trace_id)
    check_refused_answer(record, "run_shell", '{"command": "rm -rf / # ssn [REDACTED:US_SSN]"}',
                         refused.value)
    upstream = record["response"]["upstream_body"]
    assert upstream["media_type"] == "application/json"
    (call,) = upstream["value"]["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "run_shell",
                                "arguments": '{"command": "rm -rf / # ssn [REDACTED:US_SSN]"}'}

    replay = audit(gw, "replay", trace_id)
    assert replay.returncode == 0, replay.stderr
    shown = replay.stdout
    assert "  response  200 from upstream, refused by tollgate\n" in shown
    assert ('            tool calls: run_shell({"command": "rm -rf / # ssn '
            '[REDACTED:US_SSN]"})\n') in shown
    assert '            upstream sent: application/json, ' in shown
    assert ('            client got: application/json, '
            f'{record["response"]["body"]["size"]} bytes: {{"error": {{"code": "denied", '
            '"message": "tollgate refused: tool call run_shell: destructive command: rm -rf /'
            ) in shown


def test_a_refused_streamed_answer_is_recorded_whole_with_its_held_tool_call(
    gw: Gateway, client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    """The tool-call deltas were held, then refused: the agent got a 403, and the record
    still has every event the model sent, the SSN masked though it came cut over events."""
    query = f"DROP TABLE customers -- ssn {SSN}"
    model.script(Reply(tool_calls=(ToolCall("run_sql", {"query": query}),)))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        list(chat(client, stream=True))
    trace_id = refused.value.response.headers["x-tollgate-trace-id"]
    record = record_of(gw, trace_id)
    masked = '{"query": "DROP TABLE customers -- ssn [REDACTED:US_SSN]"}'
    check_refused_answer(record, "run_sql", masked, refused.value)
    upstream = record["response"]["upstream_body"]
    assert upstream["media_type"] == "text/event-stream"
    assert streamed_calls(upstream["value"]) == [("run_sql", masked)]
    assert upstream["value"].endswith("data: [DONE]\n\n")

    replay = audit(gw, "replay", trace_id)
    assert replay.returncode == 0, replay.stderr
    assert "            upstream sent: text/event-stream, " in replay.stdout
    assert "            client got: application/json, " in replay.stdout
    assert f"            tool calls: run_sql({masked})\n" in replay.stdout


def test_the_chain_covers_what_the_model_answered(
    gw: Gateway, client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    """`verify` passes with a refused answer's record in the chain, and names that record
    once its `upstream_body` is edited."""
    model.script(Reply(tool_calls=(shell("rm -rf /srv"),)))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(client)
    record = record_of(gw, refused.value.response.headers["x-tollgate-trace-id"])
    assert audit(gw, "verify").returncode == 0
    connection = connect(gw.store_url)
    (content,) = connection.execute("SELECT content FROM records WHERE id = ?",
                                    (record["id"],))[0]
    edited = json.loads(content)
    edited["response"]["upstream_body"]["value"]["choices"] = []
    try:
        connection.execute("UPDATE records SET content = ? WHERE id = ?",
                           (json.dumps(edited), record["id"]))
        broken = audit(gw, "verify")
        assert broken.returncode == 1, broken.stdout
        assert f"{record['id']}: " in broken.stdout
    finally:
        connection.execute("UPDATE records SET content = ? WHERE id = ?",
                           (content, record["id"]))
        connection.close()
    assert audit(gw, "verify").returncode == 0


def test_a_streamed_harmless_tool_call_is_assembled_by_the_client(
    client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    model.script(Reply(tool_calls=(ToolCall("run_sql", {"query": "SELECT count(*) FROM t"}),)))
    arguments = "".join(
        chunk.choices[0].delta.tool_calls[0].function.arguments or ""
        for chunk in chat(client, stream=True)
        if chunk.choices and chunk.choices[0].delta.tool_calls
    )
    assert arguments == '{"query": "SELECT count(*) FROM t"}'


def test_text_streams_as_it_comes_and_a_later_refused_call_ends_the_stream(
    gw: Gateway, client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    # Masking holds the last few hundred characters back (a secret may still be arriving
    # cut over events), so what flows before the refusal is the text less that tail.
    said = "Sure, let me look at what is taking the space on this machine first. " * 40
    model.script(Reply(text=said, tool_calls=(shell("rm -rf ~"),)))
    text = []
    with pytest.raises(openai.APIError) as refused:
        for chunk in chat(client, stream=True):
            assert not (chunk.choices and chunk.choices[0].delta.tool_calls)
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
    flowed = "".join(text)
    assert said.startswith(flowed)
    assert len(flowed) > len(said) - 1000
    assert not isinstance(refused.value, openai.APIStatusError)  # an error event, not a 403
    assert "tool call run_shell: destructive command: rm -rf ~" in refused.value.message
    # The record: what flowed and the error event (what the agent got), beside every
    # event the model sent, the held tool call among them.
    trace = re.search(r"\(trace ([0-9a-f]{32})\)", refused.value.message)
    record = record_of(gw, trace and trace[1])
    assert record["outcome"]["detail"] == "stream_refused"
    delivered, upstream = record["response"]["body"], record["response"]["upstream_body"]
    assert delivered["value"].endswith(f'"trace_id":"{record["trace_id"]}"}}\n\n')
    assert streamed_calls(delivered["value"]) == []
    assert streamed_calls(upstream["value"]) == [("run_shell", '{"command": "rm -rf ~"}')]
    assert [c["name"] for c in record["meaning"]["llm"]["tool_calls"]] == ["run_shell"]


def test_a_streamed_answer_is_masked_as_it_flows(
    client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    model.script(Reply(text="Her SSN is 078-05-1120, call her."))
    text = "".join(c.choices[0].delta.content or "" for c in chat(client, stream=True)
                   if c.choices)
    assert "078-05-1120" not in text
    assert text.startswith("Her SSN is ") and text.endswith(", call her.")


def test_the_prompt_reaches_the_model_masked(
    client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    model.script(Reply(text="ok"))
    client.chat.completions.create(model="gpt-4o", messages=[
        {"role": "user", "content": "My card is 4111 1111 1111 1111, book it"}])
    prompt = model.requests[-1].body["messages"][0]["content"]
    assert "4111 1111 1111 1111" not in prompt


def test_a_model_error_passes_as_the_model_said_it(
    client: openai.OpenAI, model: OpenAIStandIn
) -> None:
    model.script(Reply(status=429, error={"message": "Rate limit reached", "type": "requests",
                                          "param": None, "code": "rate_limit_exceeded"}))
    with pytest.raises(openai.RateLimitError) as limited:
        chat(client)
    assert limited.value.body["code"] == "rate_limit_exceeded"


# -- answers served so that only their bytes say what they are -----------------------------

RM = json.dumps({"command": "rm -rf /"})
LS = json.dumps({"command": "ls"})


def completion(arguments: str) -> bytes:
    call = {"id": "c0", "type": "function",
            "function": {"name": "run_shell", "arguments": arguments}}
    return json.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                       "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                           "role": "assistant", "content": None, "tool_calls": [call]}}]}
                      ).encode()


def chunks(arguments: str) -> bytes:
    delta = {"tool_calls": [{"index": 0, "id": "c0", "type": "function",
                             "function": {"name": "run_shell", "arguments": arguments}}]}
    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": delta, "finish_reason": "tool_calls"}]}
    return f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()


def function_call(arguments: str) -> bytes:
    return json.dumps({
        "id": "resp_1", "object": "response", "created_at": 1, "model": "m",
        "status": "completed", "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "output": [{"type": "function_call", "id": "fc_1", "call_id": "c0",
                    "name": "run_shell", "arguments": arguments, "status": "completed"}],
    }).encode()


@pytest.fixture
def agent(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{gw.ports.listener}/served/v1",
                         api_key=tokens.token(), max_retries=0, timeout=10)


def test_an_answer_served_as_text_plain_is_read_as_the_client_reads_it(
    agent: openai.OpenAI, served: Served
) -> None:
    served.replies += [("text/plain", completion(LS)), ("text/plain", completion(RM))]
    (call,) = chat(agent).choices[0].message.tool_calls  # the client parses it as JSON
    assert call.function.arguments == LS
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(agent)
    assert refused.value.body["reasons"] == ["tool call run_shell: destructive command: rm -rf /"]


def test_a_stream_served_as_application_json_is_read_as_a_stream(
    agent: openai.OpenAI, served: Served
) -> None:
    served.replies += [("application/json", chunks(LS)), ("application/json", chunks(RM))]
    (chunk,) = list(chat(agent, stream=True))  # the client reads events, whatever the type
    assert chunk.choices[0].delta.tool_calls[0].function.arguments == LS
    with pytest.raises(openai.PermissionDeniedError) as refused:
        list(chat(agent, stream=True))
    assert refused.value.body["reasons"] == ["tool call run_shell: destructive command: rm -rf /"]


def test_a_responses_api_function_call_is_judged_as_a_chat_tool_call(
    agent: openai.OpenAI, served: Served
) -> None:
    served.replies += [("application/json", function_call(LS)),
                       ("application/json", function_call(RM))]
    tools = [{"type": "function", "name": "run_shell", "parameters": {"type": "object"}}]
    (call,) = agent.responses.create(model="m", input="Tidy up", tools=tools).output
    assert (call.type, call.arguments) == ("function_call", LS)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        agent.responses.create(model="m", input="Tidy up", tools=tools)
    assert refused.value.body["reasons"] == ["tool call run_shell: destructive command: rm -rf /"]


def test_an_answer_no_client_could_judge_is_refused_to_an_agent(
    agent: openai.OpenAI, served: Served
) -> None:
    served.replies.append(("text/html", b"<html>upstream busy</html>"))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(agent)
    assert refused.value.body["rules"] == ["llm.unreadable"]


def test_an_opaque_tool_call_is_refused_as_no_approval_can_come_in_time(
    agent: openai.OpenAI, served: Served
) -> None:
    served.replies.append(("application/json", completion(json.dumps(
        {"command": "python3 -c 'import shutil; shutil.rmtree(\"/srv/data\")'"}))))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(agent)
    assert refused.value.body["rules"] == ["llm.opaque_tool_call", "tollgate.hold_too_late"]
    assert "runs what cannot be read (inline_code)" in refused.value.body["reasons"][1]
