"""The same agent in AG2 (the AutoGen fork, imported as `autogen`), through Tollgate.

With the quickstart up (`make run` in another shell): `make ag2`. By hand, with the
token `tollgate up` printed exported as TOKEN:

    .venv-autogen/bin/python examples/autogen/ag2_agent.py

An assistant proposes the tool calls (the demo's scripted model, through the gateway's
`llm` route) and a user proxy runs them (through the gateway too): the customers come
back masked, and the model's call to drop their table is refused before it is run.
"""

from __future__ import annotations

import openai
from autogen import ConversableAgent, register_function

import gateway


def main() -> None:
    gateway.require_gateway()
    gateway.announce_trace()
    llm_config = {"config_list": [{
        "model": gateway.MODEL, "base_url": f"{gateway.URL}/v1",
        "api_key": gateway.token(),  # the gateway's token, never a model provider's key
        "price": [0, 0],  # not one of OpenAI's models: no cost table, no warning
        "max_retries": 0,  # a refusal is an answer, not an outage to retry
        "default_headers": gateway.trace_headers(),  # each call in the run's trace
    }], "cache_seed": None}
    assistant = ConversableAgent("analyst", llm_config=llm_config)
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER")
    register_function(gateway.list_customers, caller=assistant, executor=user,
                      description="List the customers of the shop, as JSON.")
    register_function(gateway.run_sql, caller=assistant, executor=user,
                      description="Run one SQL statement on the shop's database.")
    for task in gateway.TASKS:
        gateway.say("task", task)
        try:
            # Two turns: the model's tool call and its run, the model's answer.
            result = user.initiate_chat(assistant, message=task, max_turns=2, silent=True)
        except openai.APIError as refused:
            gateway.say("gateway refuses", gateway.refusal(refused))
            continue
        for message in result.chat_history[1:]:  # the first is the task itself
            for call in message.get("tool_calls") or ():
                function = call["function"]
                gateway.say("model calls", f"{function['name']}({function['arguments']})")
            if message.get("role") == "tool":
                gateway.say("tool returns", message["content"])
            elif message.get("content"):
                gateway.say("model answers", message["content"])


if __name__ == "__main__":
    main()
