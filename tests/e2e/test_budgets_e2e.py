"""Budgets end to end (extproc/activity/budgets.py): real Envoy and tollgate.

- Two replicas sharing a PostgreSQL store, a burst of concurrent requests that Envoy
  spreads over both: exactly the budget's calls reach the upstream, every other is
  refused with 429 naming the budget and when it renews.
- The `mcp` SDK's client: a tool's calls past its budget are refused before the server.
- The `openai` client against the OpenAI-compatible stand-in (no hosted model is
  reachable here): a call reserves its estimate and is settled at the tokens the model
  reported, priced by the config's table; a call whose estimate does not fit is refused
  before it costs anything.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from mcp import McpError

from extproc.quickstart import stack
from extproc.store import connect
from tests.e2e.test_mcp_e2e import mcp_route, session
from tests.standins.openai_standin import OpenAIStandIn, Reply
from tests.support import tokens
from tests.support.gateway import POLICIES, Gateway, GatewayFactory, module_gateway
from tests.support.mcp_server import McpServer

WAIT = 15.0  # a deadline, never a pause


def usage(gw: Gateway, budget: str) -> list[tuple[str, int, int, int]]:
    """Each key's calls, tokens and cost (millionths) in `budget`, as the store has them."""
    connection = connect(gw.store_url)
    try:
        return [tuple(row) for row in connection.execute(  # type: ignore[misc]
            "SELECT subject, calls, tokens, cost_micros FROM budget_usage WHERE budget = ? "
            "ORDER BY subject", (budget,))]
    finally:
        connection.close()


def test_two_replicas_never_let_more_calls_through_than_the_budget(
        make_gateway: GatewayFactory, pg_url: str) -> None:
    pair = make_gateway(POLICIES, replicas=2, settings={
        "store": {"url": pg_url},
        "budgets": {"limits": [{"name": "demo-calls", "window": "1h", "calls": 6,
                                "targets": ["demo"]}]}})
    token = tokens.token("svc-budget", ["agents"])
    with ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(
            lambda n: pair.request("GET", f"/echo?burst={n}", token=token), range(40)))
    assert Counter(r.status for r in replies) == {200: 6, 429: 34}
    assert pair.upstream_paths().count("/echo") == 6  # the path, without its query
    refused = next(r for r in replies if r.status == 429).json()
    assert refused["rules"] == ["budget.exceeded"]
    [reason] = refused["reasons"]
    assert reason.startswith("budget demo-calls (identity=svc-budget) is spent: calls 6 of 6 "
                             "used, 1 more asked in the 1h window; it renews at ")
    # Both replicas took part in the race.
    connection = connect(pair.store_url)
    try:
        def writers() -> set[str]:
            rows = connection.execute(
                "SELECT DISTINCT writer FROM records WHERE status = 429")
            return {str(w) for (w,) in rows}
        stack.wait_until(lambda: writers() == {"replica-0", "replica-1"}, WAIT,
                         "refusals recorded by both replicas")
    finally:
        connection.close()
    # Settled: the six calls stay counted, the refused ones took nothing.
    stack.wait_until(lambda: usage(pair, "demo-calls") == [("identity=svc-budget", 6, 0, 0)],
                     WAIT, "the calls settled")
    # Another identity has a budget of its own.
    assert pair.request("GET", "/echo?other=1",
                        token=tokens.token("svc-other", ["agents"])).status == 200


@pytest.fixture(scope="module")
def model() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key="sk-upstream") as server:
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, model: OpenAIStandIn
       ) -> Iterator[Gateway]:
    with module_gateway(
            tmp_path_factory, otlp, "budgets",
            targets=[{"name": "openai", "match": {"route": "llm"}, "protocol": "llm",
                      "credential": {"type": "bearer", "from_env": "OPENAI_KEY"}}],
            routes=[{"name": "llm", "match": {"prefix": "/v1/"}, "route": {"cluster": "llm"}}],
            clusters={"llm": model.port}, env={"OPENAI_KEY": "sk-upstream"},
            settings={"budgets": {
                "limits": [{"name": "model-spend", "window": "1d", "tokens": 400,
                            "cost": 0.01, "per": ["identity"]}],
                "prices": {"gpt-4o*": {"input": 2.5, "output": 10.0}}}}) as running:
        yield running


def client_of(gw: Gateway, who: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{gw.ports.listener}/v1",
                         api_key=tokens.token(who, ["agents"]), max_retries=0, timeout=10)


def counted(text: str) -> int:
    """Tokens as tollgate counts them: UTF-8 bytes over three (budgeted.py)."""
    return math.ceil(len(text.encode()) / 3)


def test_an_llm_call_is_settled_at_the_tokens_it_used(gw: Gateway) -> None:
    """Each of input and output at the larger of the model's report and tollgate's own
    count of what was relayed."""
    client = client_of(gw, "svc-spender")
    ask = [{"role": "user", "content": "Summarise the incident in one line"}]
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=ask, max_tokens=60)
    assert answer.usage is not None and answer.choices[0].message.content
    spent = (max(answer.usage.prompt_tokens, counted(ask[0]["content"])),
             max(answer.usage.completion_tokens, counted(answer.choices[0].message.content)))
    cost = round(spent[0] * 2.5 + spent[1] * 10.0)
    expected = [("identity=svc-spender", 1, sum(spent), cost)]
    stack.wait_until(lambda: usage(gw, "model-spend") == expected, WAIT,
                     "the call settled at what it used")
    # An estimate past what is left (the prompt's count, plus the output it allows) is
    # refused before it reaches the model, saying which budget.
    asked = counted(ask[0]["content"]) + 500
    assert sum(spent) + asked > 400
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=ask, max_tokens=500)
    message = str(refused.value)
    assert "budget model-spend (identity=svc-spender) is spent: tokens" in message
    assert f"{asked} more asked in the 1d window" in message
    assert usage(gw, "model-spend") == expected  # the refused call took nothing


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_model_that_under_reports_spends_the_budget_all_the_same(
        gw: Gateway, model: OpenAIStandIn, stream: bool) -> None:
    """An upstream reporting 1 + 1 tokens for a long answer: the answer relayed is
    counted, and the next call no longer fits."""
    who = f"svc-liar-{'streamed' if stream else 'whole'}"
    client = client_of(gw, who)
    page = "incident summary line, " * 40  # 920 bytes: ~307 tokens counted
    model.script(Reply(text=page, usage=(1, 1)))
    ask = [{"role": "user", "content": "go"}]
    if stream:
        chunks = client.chat.completions.create(model="gpt-4o-mini", messages=ask,
                                                max_tokens=30, stream=True)
        said = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        said = client.chat.completions.create(model="gpt-4o-mini", messages=ask,
                                              max_tokens=30).choices[0].message.content
    assert said == page
    spent = counted("go") + counted(page)
    stack.wait_until(lambda: [row[:3] for row in usage(gw, "model-spend")
                              if row[0] == f"identity={who}"]
                     == [(f"identity={who}", 1, spent)], WAIT, "the call settled as counted")
    with pytest.raises(openai.RateLimitError, match="budget model-spend"):
        client.chat.completions.create(model="gpt-4o-mini", messages=ask, max_tokens=100)


def test_every_answer_asked_for_is_reserved(gw: Gateway) -> None:
    """`n` answers of `max_tokens` each: 4 x 120 does not fit a budget of 400."""
    with pytest.raises(openai.RateLimitError, match=r"481 more asked in the 1d window"):
        client_of(gw, "svc-many").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "go"}],
            max_tokens=120, n=4)


@pytest.fixture(scope="module")
def tools() -> Iterator[McpServer]:
    with McpServer() as running:
        yield running


def test_an_mcp_tool_call_past_its_budget_is_refused_before_the_server(
        tmp_path_factory: pytest.TempPathFactory, otlp: Any, tools: McpServer) -> None:
    budget = {"name": "reads", "window": "1h", "per": ["identity", "tool"],
              "tools": ["read_file"], "calls": 2}
    with module_gateway(tmp_path_factory, otlp, "mcp-budgets",
                        targets=[{"name": "tools", "match": {"route": "mcp"},
                                  "protocol": "mcp"}],
                        routes=[mcp_route("mcp", "/mcp", "mcp")], clusters={"mcp": tools.port},
                        settings={"budgets": {"limits": [budget]}}) as gw:
        async def main() -> str:
            async with session(gw) as agent:
                await agent.list_tools()  # not a call of read_file: uncounted
                for n in range(2):
                    await agent.call_tool("read_file", {"path": f"notes-{n}.txt"})
                await agent.call_tool("run_shell", {"command": "ls"})  # another tool
                with pytest.raises(McpError) as refused:
                    await agent.call_tool("read_file", {"path": "notes-2.txt"})
            return str(refused.value)

        refused = asyncio.run(main())
    assert "budget reads (identity=svc-autogen,tool=read_file) is spent: calls 2 of 2" \
        in refused
    assert [c for c in tools.calls if c[0] == "read_file"] == [
        ("read_file", {"path": "notes-0.txt"}), ("read_file", {"path": "notes-1.txt"})]
