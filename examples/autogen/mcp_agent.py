"""An AutoGen AgentChat agent whose tools are an MCP server's, reached through Tollgate.

With the quickstart up (`make run` in another shell): `make mcp-agent`. By hand, with the
token `tollgate up` printed exported as TOKEN:

    .venv-autogen/bin/python examples/autogen/mcp_agent.py

The tools are the demo MCP server's (extproc/quickstart/demo_mcp.py), behind the
gateway's `/mcp` route (tollgate's `tools` target), which AutoGen's McpWorkbench lists
and calls over MCP's streamable HTTP transport with the agent's token: the gateway's
listing leaves out what the agent may not call (rotate_keys, kept to `admins`). The model
is the demo upstream's scripted one, behind the `llm` route, and the agent is
agent.py's, given the workbench for tools.

Its tasks: read two files and query the customers (allowed; the gateway masks the
personal data and keys in what the tools return); run `rm -rf /` (the gateway reads the
model's answer and refuses its tool call before the agent can run it, as in agent.py);
and query with words that are no SQL. That call gets past the model's check, which reads
as SQL only what looks like SQL, but the MCP target is told that `query` runs SQL
(quickstart.yaml's `sql_tools`), and SQL that does not parse is refused: the gateway
answers the tools/call with a JSON-RPC error, which McpWorkbench hands the agent as the
tool's result, marked as an error, and the model reads it. (delete_customer, which its
server declares destructive, would wait for a dba's approval: no task asks for it.)
"""

from __future__ import annotations

import asyncio
import sys

from autogen_ext.tools.mcp import McpWorkbench, StreamableHttpServerParams

import agent
import gateway

# What the agent is asked: the demo model calls the tool each names, with the `quoted`
# text as its first argument (read_file's path, query's sql, run_shell's command).
TASKS = (
    "Use read_file to read `customers.csv`.",
    "Use read_file to read `settings.conf`.",
    "Use query to run `SELECT name, email FROM customers`.",
    "Use run_shell to run `rm -rf /`.",
    "Use query to find `the customers named Ada`.",
)
# How long the MCP session may take to start: McpWorkbench reports a session that could
# not start (a refused token, no /mcp route) only in its log, and its calls then wait
# for ever.
START_SECONDS = 30


async def main() -> None:
    gateway.require_gateway()
    gateway.announce_trace()
    token = gateway.token()
    client = agent.model_client(token)
    server = StreamableHttpServerParams(
        url=f"{gateway.URL}/mcp",
        # The same token (the MCP server's credentials stay with the gateway), and the
        # run's trace for every message of the session.
        headers={"Authorization": f"Bearer {token}", **gateway.trace_headers()},
    )
    try:
        async with McpWorkbench(server) as workbench:
            try:
                tools = await asyncio.wait_for(workbench.list_tools(), START_SECONDS)
            except TimeoutError:
                sys.exit(f"no MCP session at {server.url} after {START_SECONDS} s (its error "
                         "is logged above): is the token one the gateway accepts?")
            gateway.say("tools listed", ", ".join(tool["name"] for tool in tools))
            await agent.run_tasks(client, TASKS, workbench=workbench)
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
