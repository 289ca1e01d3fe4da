"""An AutoGen AgentChat agent whose model calls and tool calls all go through Tollgate.

With the quickstart up (`make run` in another shell): `make autogen`. By hand, with the
token `tollgate up` printed exported as TOKEN:

    .venv-autogen/bin/python examples/autogen/agent.py

The model is the demo upstream's scripted one, behind the gateway's `llm` route: it
calls the tool a task names, then answers with what the tool returned. The agent is
given three tasks: to list the customers and to query their table (allowed; the gateway
masks their personal data on the way back), and to drop the table (the gateway refuses
the model's tool call before the agent can run it, and says why).
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
)
from autogen_ext.models.openai import OpenAIChatCompletionClient

import gateway


def one_line(text: str) -> str:
    """A tool's text (a file, say) on one line, its line breaks shown as \\n."""
    return text.strip().replace("\n", "\\n")


def show(message: BaseAgentEvent | BaseChatMessage) -> None:
    """What the agent saw, a line each: the model's tool calls, the tools' results (an
    error among them: a refusal of the gateway's on the tool's side), the model's answer."""
    if isinstance(message, ToolCallRequestEvent):
        for call in message.content:
            gateway.say("model calls", f"{call.name}({call.arguments})")
    elif isinstance(message, ToolCallExecutionEvent):
        for result in message.content:
            gateway.say("tool error" if result.is_error else "tool returns",
                        one_line(result.content))
    else:
        gateway.say("model answers", one_line(message.to_text()))


def model_client(token: str) -> OpenAIChatCompletionClient:
    """The demo's scripted model, behind the gateway's `llm` route."""
    return OpenAIChatCompletionClient(
        model=gateway.MODEL, base_url=f"{gateway.URL}/v1",
        api_key=token,  # the gateway's token, never a model provider's key
        max_retries=0,  # a refusal is an answer, not an outage to retry
        default_headers=gateway.trace_headers(),  # each call in the run's trace
        # Not one of OpenAI's model names, so AutoGen is told what it can do.
        model_info={"vision": False, "function_calling": True, "json_output": False,
                    "structured_output": False, "family": "unknown"},
    )


async def run_tasks(client: OpenAIChatCompletionClient, tasks: tuple[str, ...],
                    **tools: Any) -> None:
    """Each task given to an analyst with `tools` (its `tools` or its `workbench`), what
    it saw printed."""
    agent = AssistantAgent(
        "analyst", model_client=client, **tools,
        reflect_on_tool_use=True,  # after the tool, the model answers in words
        model_client_stream=True,  # and its answers stream (SSE) through the gateway
    )
    for task in tasks:
        gateway.say("task", task)
        try:
            result = await agent.run(task=task)
        except openai.APIError as refused:
            # The gateway answered in the model's place, in OpenAI's error shape.
            gateway.say("gateway refuses", gateway.refusal(refused))
            continue
        for message in result.messages[1:]:  # the first is the task itself
            show(message)


async def main() -> None:
    gateway.require_gateway()
    gateway.announce_trace()
    client = model_client(gateway.token())
    try:
        await run_tasks(client, gateway.TASKS,
                        tools=[gateway.list_customers, gateway.run_sql])
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
