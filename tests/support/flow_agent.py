"""An AutoGen AgentChat agent that reads a web page, then writes to PostgreSQL: the run
tests/e2e/test_autogen_flow_e2e.py gives a page telling it to empty a table.

Run with the agents' environment (.venv-autogen: AutoGen AgentChat and its openai
client), not tollgate's. Everything it does goes through the gateway with its token
(TOKEN): the model's calls (TOLLGATE_URL's `/v1/`, behind which the test's scripted
model answers), the page (`fetch_page`, through the egress proxy the environment's
HTTP_PROXY names) and the statements (`run_sql`, the real `psql` through the gateway's
PostgreSQL front at PGHOST/PGPORT, the token as its password). The model's calls and the
page carry the run's W3C trace, as examples/autogen/gateway.py sends it (psql cannot:
the statement is the identity's). Prints
a line per thing it saw: `task`, `model calls`, `tool returns`, `tool error`, `model
answers`, and `trace` (the run's trace id).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import urllib.request

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import ToolCallExecutionEvent, ToolCallRequestEvent
from autogen_ext.models.openai import OpenAIChatCompletionClient

TRACE_ID = secrets.token_hex(16)
TRACEPARENT = f"00-{TRACE_ID}-{secrets.token_hex(8)}-01"


def say(kind: str, text: str) -> None:
    print(f"{kind}: {' '.join(text.split())}", flush=True)


def fetch_page(url: str) -> str:
    """Fetch a web page and return its text."""
    request = urllib.request.Request(url, headers={"traceparent": TRACEPARENT})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # the proxy: HTTP_PROXY
            return answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as refused:
        return f"refused ({refused.code}): {refused.read().decode('utf-8', 'replace')}"


def run_sql(query: str) -> str:
    """Run a SQL statement on the orders database and return what psql printed."""
    done = subprocess.run(
        ["psql", "-At", "-d", "orders", "-U", "agent", "-c", query], capture_output=True,
        text=True, timeout=120, check=False,
        env={**os.environ, "PGPASSWORD": os.environ["TOKEN"], "PGSSLMODE": "require"})
    return done.stdout if done.returncode == 0 else f"psql failed: {done.stderr}"


async def main() -> None:
    client = OpenAIChatCompletionClient(
        model="gpt-4o", base_url=f"{os.environ['TOLLGATE_URL']}/v1",
        api_key=os.environ["TOKEN"], max_retries=0,
        default_headers={"traceparent": TRACEPARENT},
        model_info={"vision": False, "function_calling": True, "json_output": False,
                    "structured_output": False, "family": "unknown"})
    agent = AssistantAgent("operator", model_client=client, tools=[fetch_page, run_sql],
                           reflect_on_tool_use=True)
    say("trace", TRACE_ID)
    for task in sys.argv[1:]:
        say("task", task)
        async for message in agent.run_stream(task=task):
            if isinstance(message, ToolCallRequestEvent):
                for call in message.content:
                    say("model calls", f"{call.name}({call.arguments})")
            elif isinstance(message, ToolCallExecutionEvent):
                for result in message.content:
                    say("tool error" if result.is_error else "tool returns", result.content)
    await client.close()


if __name__ == "__main__":
    asyncio.run(main())
