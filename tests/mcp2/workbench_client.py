"""AutoGen AgentChat's McpWorkbench as an MCP client (the SDK's 1.x generation: the 2025
session form), for tests/e2e/test_mcp_generations_e2e.py: run by .venv-autogen's Python,
`workbench_client.py URL TOKEN`. It lists the tools, reads a file, asks for `rm -rf /`,
and prints what it saw as one JSON line (a refused call is a result marked as an error,
as McpWorkbench hands it to an agent)."""

import asyncio
import json
import sys

from autogen_ext.tools.mcp import McpWorkbench, StreamableHttpServerParams

# McpWorkbench reports a session that could not start only in its log, and its calls
# then wait for ever.
START_SECONDS = 30


def text(result) -> str:
    return " ".join(str(part.content) for part in result.result)


async def main(url: str, token: str) -> None:
    server = StreamableHttpServerParams(url=url, headers={"Authorization": f"Bearer {token}"})
    async with McpWorkbench(server) as workbench:
        tools = await asyncio.wait_for(workbench.list_tools(), START_SECONDS)
        read = await workbench.call_tool("read_file", {"path": "notes.txt"})
        shell = await workbench.call_tool("run_shell", {"command": "rm -rf /"})
        print(json.dumps({"tools": sorted(t["name"] for t in tools), "read": text(read),
                          "read_error": read.is_error, "shell": text(shell),
                          "shell_error": shell.is_error}))


asyncio.run(main(*sys.argv[1:3]))
