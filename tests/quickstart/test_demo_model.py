"""The demo upstream's scripted model, as the real `openai` client sees it (no gateway:
tests/e2e/test_autogen_e2e.py runs agents on it through the quickstart)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from extproc.quickstart.demo_upstream import DEMO_MODEL, DemoUpstream

TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "list_customers", "parameters": {
        "type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "run_sql", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}},
]
ASK = {"role": "user", "content": "Use run_sql to run `SELECT 1`, then list_customers"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[DemoUpstream]:
    server = DemoUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def client(upstream: DemoUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{upstream.port}/v1", api_key="unused",
                         max_retries=0)


def test_it_calls_the_tool_named_first_with_the_quoted_text(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model=DEMO_MODEL, messages=[ASK], tools=TOOLS)
    assert answer.choices[0].finish_reason == "tool_calls"
    (call,) = answer.choices[0].message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "run_sql", {"query": "SELECT 1"})


def test_streamed_the_same_call_is_assembled(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model=DEMO_MODEL, messages=[ASK], tools=TOOLS) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert (call.function.name, call.function.arguments) == ("run_sql", '{"query": "SELECT 1"}')


def test_once_the_tool_answered_it_answers_in_text(client: openai.OpenAI) -> None:
    called = {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "run_sql", "arguments": '{"query": "SELECT 1"}'}}]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": '{"rows": [[1]]}'}
    for stream in (False, True):
        answer = client.chat.completions.create(
            model=DEMO_MODEL, messages=[ASK, called, result], tools=TOOLS, stream=stream)
        text = ("".join(c.choices[0].delta.content or "" for c in answer if c.choices)
                if stream else answer.choices[0].message.content)
        assert text == 'run_sql returned: {"rows": [[1]]}'


def test_naming_no_tool_it_says_which_it_has(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=DEMO_MODEL, messages=[{"role": "user", "content": "hello"}], tools=TOOLS)
    assert answer.choices[0].message.content == (
        "I am tollgate's demo model. Name one of the tools I was offered "
        "(list_customers, run_sql) and I will call it.")


def test_it_is_listed_and_refuses_what_the_api_refuses(
    client: openai.OpenAI, upstream: DemoUpstream
) -> None:
    assert [m.id for m in client.models.list()] == [DEMO_MODEL]
    with httpx2.Client(base_url=f"http://127.0.0.1:{upstream.port}/v1") as http:
        missing = http.post("/chat/completions", json={"model": DEMO_MODEL})
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "missing_required_parameter"
        # A chunked body (as Envoy forwards a prompt it masked) is read whole.
        body = json.dumps({"model": DEMO_MODEL, "messages": [ASK], "tools": TOOLS}).encode()
        answer = http.post("/chat/completions", content=iter([body[:7], body[7:]]))
    assert answer.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == (
        "run_sql")
    assert upstream.requests[-1].headers["Transfer-Encoding"] == "chunked"
