"""LLM calls end to end: the real `openai` client, through a real Envoy, to the
OpenAI-compatible stand-in (tests/openai_standin.py: no hosted model is reachable here).

tollgate reads the chat request (model, messages, tools) and the model's answer — whole
or streamed — and the default pack refuses a tool call whose arguments carry a
destructive shell command or SQL before the agent can run it: a whole answer is
replaced by the refusal; a streamed one is held from its first tool-call delta, so a
refused call never reaches the client, and a stream that is refused after text has
flowed ends with an error event, which the client raises.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests import tokens
from tests.conftest import Gateway, module_gateway
from tests.openai_standin import OpenAIStandIn, Reply, ToolCall

API_KEY = "sk-upstream-0f3c9a"  # the target's credential, injected by tollgate
TOOLS = [
    {"type": "function", "function": {"name": "run_shell", "description": "Run a command",
                                      "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "run_sql", "description": "Query the DB",
                                      "parameters": {"type": "object"}}},
]
ASK = [{"role": "user", "content": "Tidy up the server please"}]


@pytest.fixture(scope="module")
def model() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key=API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, otlp, model: OpenAIStandIn  # type: ignore[no-untyped-def]
) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "llm",
            targets=[{"name": "openai", "match": {"route": "llm"}, "protocol": "llm",
                      "credential": {"type": "bearer", "from_env": "OPENAI_KEY"}}],
            routes=[{"name": "llm", "match": {"prefix": "/v1/"}, "route": {"cluster": "llm"}}],
            clusters={"llm": model.port},
            env={"OPENAI_KEY": API_KEY},
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
    client: openai.OpenAI, model: OpenAIStandIn
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
