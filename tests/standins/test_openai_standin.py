"""The OpenAI stand-in, checked with the real `openai` client; and ChatStream on its bytes.

These also pin how the client reacts to what a gateway may answer in the model's place
(a 403 JSON refusal, an error event inside a stream).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from extproc.interpret.llm import ChatStream
from tests.standins.openai_standin import OpenAIStandIn, Reply, ToolCall, api_error

TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "run_shell", "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}},
                   "required": ["cmd"]}}}]
ASK = [{"role": "user", "content": "clean up the disk"}]
RM = ToolCall("run_shell", {"cmd": "rm -rf /"}, id="call_Jx2rZQp7Yc1mV0dLk8sT4uWb")


@pytest.fixture
def standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key="sk-test") as server:
        yield server


@pytest.fixture
def client(standin: OpenAIStandIn) -> openai.OpenAI:
    return openai.OpenAI(base_url=standin.base_url, api_key="sk-test", max_retries=0)


def test_a_text_reply(standin: OpenAIStandIn, client: openai.OpenAI) -> None:
    standin.script(Reply(text="Nothing to clean."))
    answer = client.chat.completions.create(model="gpt-4o", messages=ASK)
    assert answer.choices[0].message.content == "Nothing to clean."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.id.startswith("chatcmpl-") and answer.model == "gpt-4o"
    assert answer.system_fingerprint and answer.usage and answer.usage.total_tokens > 0
    (received,) = standin.requests
    assert (received.method, received.path) == ("POST", "/v1/chat/completions")
    assert received.headers["authorization"] == "Bearer sk-test"
    assert received.body == {"model": "gpt-4o", "messages": ASK}


def test_with_nothing_scripted_the_reply_echoes(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=ASK)
    assert answer.choices[0].message.content == "echo: clean up the disk"


def test_a_tool_call_reply(client: openai.OpenAI, standin: OpenAIStandIn) -> None:
    standin.script(Reply(tool_calls=(ToolCall("run_shell", {"cmd": "df -h"}),)))
    answer = client.chat.completions.create(model="gpt-4o", messages=ASK, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "run_shell", {"cmd": "df -h"})


def test_a_streamed_text_reply(client: openai.OpenAI, standin: OpenAIStandIn) -> None:
    standin.script(Reply(text="Disk usage is at 42 percent, nothing to do."))
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=ASK, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == (
        "Disk usage is at 42 percent, nothing to do.")
    assert len(chunks) > 10 and chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)


def test_a_streamed_tool_call_as_the_client_accumulates_it(
    client: openai.OpenAI, standin: OpenAIStandIn
) -> None:
    standin.script(Reply(text="Cleaning.", tool_calls=(RM,)))
    with client.chat.completions.stream(
        model="gpt-4o", messages=ASK, tools=TOOLS, stream_options={"include_usage": True}
    ) as stream:
        fragments = [e.arguments_delta for e in stream
                     if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    assert len(fragments) > 3  # the arguments came in pieces
    message = final.choices[0].message
    assert message.content == "Cleaning."
    (call,) = message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == (
        RM.id, "run_shell", '{"cmd": "rm -rf /"}')
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.completion_tokens > 0


def test_chat_stream_on_the_raw_bytes_assembles_what_the_client_did(
    client: openai.OpenAI, standin: OpenAIStandIn
) -> None:
    second = ToolCall("run_sql", {"query": "DROP TABLE users"}, id="call_Zq9")
    standin.script(Reply(text="On it.", tool_calls=(RM, second)))
    with client.chat.completions.stream(model="gpt-4o", messages=ASK, tools=TOOLS) as stream:
        final = stream.get_final_completion()
    by_client = [(c.id, c.function.name, json.loads(c.function.arguments))
                 for c in final.choices[0].message.tool_calls or []]

    standin.script(Reply(text="On it.", tool_calls=(RM, second)))
    reader = ChatStream()
    pieces, events = 0, []
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=ASK, tools=TOOLS, stream=True
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for piece in response.iter_bytes():
            pieces += 1
            events += reader.feed(piece)
    events += reader.finish()

    assert by_client == [(c["id"], c["name"], c["arguments"]) for c in reader.tool_calls]
    assert reader.tool_calls[0]["commands"] == [["rm", "-rf", "/"]]
    assert reader.text == final.choices[0].message.content == "On it."
    assert reader.finish_reason == "tool_calls" and reader.error is None
    assert events[-1].done and any(e.tool_delta for e in events)
    assert pieces > 1  # the events arrived as separate writes


def test_stream_usage_comes_last_with_no_choices(
    client: openai.OpenAI, standin: OpenAIStandIn
) -> None:
    standin.script(Reply(text="ok"))
    chunks = list(client.chat.completions.create(
        model="gpt-4o", messages=ASK, stream=True, stream_options={"include_usage": True}))
    assert [c.usage is None for c in chunks] == [True] * (len(chunks) - 1) + [False]
    assert chunks[-1].choices == []


def test_an_error_event_in_a_stream_raises_api_error(
    client: openai.OpenAI, standin: OpenAIStandIn
) -> None:
    error = api_error("denied: destructive command", "denied", code="denied")
    standin.script(Reply(text="Sure, running", error=error))
    received: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(model="gpt-4o", messages=ASK, stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert type(raised.value) is openai.APIError  # not an APIStatusError: no status code
    assert raised.value.message == "denied: destructive command"
    assert raised.value.body == error
    assert (raised.value.code, raised.value.type) == ("denied", "denied")
    assert "".join(received) == "Sure, running"  # what came before the error was delivered


def test_a_403_in_openai_shape_raises_permission_denied_with_its_message(
    client: openai.OpenAI, standin: OpenAIStandIn
) -> None:
    error = api_error("tool call run_shell: destructive command: rm -rf /", "denied",
                      code="denied")
    for stream in (False, True):
        standin.script(Reply(status=403, error=error))
        with pytest.raises(openai.PermissionDeniedError) as raised:
            client.chat.completions.create(model="gpt-4o", messages=ASK, stream=stream)
        assert raised.value.status_code == 403
        assert str(raised.value) == (
            "Error code: 403 - tool call run_shell: destructive command: rm -rf /")
        assert raised.value.body == error and raised.value.code == "denied"


def test_a_403_not_in_openai_shape_loses_its_reasons_from_the_message(
    client: openai.OpenAI, standin: OpenAIStandIn
) -> None:
    refusal = {"error": "denied", "reasons": ["destructive command"], "trace_id": "abc"}
    standin.script(Reply(status=403, body=refusal))
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=ASK)
    assert str(raised.value) == "Error code: 403"
    assert raised.value.body == "denied"  # the client keeps body["error"] only
    assert raised.value.response.json() == refusal


def test_requests_are_refused_as_the_api_refuses_them(standin: OpenAIStandIn) -> None:
    with httpx2.Client(base_url=standin.base_url) as http:
        assert http.post("/chat/completions", json={"model": "m"}).status_code == 401
        bearer = {"authorization": "Bearer sk-test"}
        missing = http.post("/chat/completions", json={"model": "m"}, headers=bearer)
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "missing_required_parameter"
        malformed = http.post("/chat/completions", content=b"{", headers=bearer)
        assert malformed.status_code == 400
        assert http.get("/nowhere", headers=bearer).json()["error"]["message"] == (
            "Invalid URL (GET /v1/nowhere)")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=standin.base_url, api_key="sk-wrong", max_retries=0).models.list()
    assert len(standin.wait_for_requests(5)) == 5


def test_a_chunked_request_body_is_read(standin: OpenAIStandIn) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": ASK}).encode()
    pieces = iter([body[:10], body[10:]])  # an iterator: httpx sends it chunked
    with httpx2.Client(base_url=standin.base_url) as http:
        answer = http.post("/chat/completions", content=pieces,
                           headers={"authorization": "Bearer sk-test"})
    assert answer.json()["choices"][0]["message"]["content"] == "echo: clean up the disk"
    (received,) = standin.requests
    assert received.headers["transfer-encoding"] == "chunked" and received.raw == body


def test_models_are_listed(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["gpt-4o", "gpt-4o-mini"]
