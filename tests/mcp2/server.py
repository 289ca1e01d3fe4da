"""An MCP server of the SDK's 2.x generation (MCPServer, streamable HTTP at /mcp), for
tests/e2e/test_mcp_generations_e2e.py: run by .venv-mcp2's Python, `server.py PORT`.
Its tools answer with what they were given, a card number in what read_file reads."""

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("generations")


@server.tool(description="Reads a file.")
def read_file(path: str) -> str:
    return f"contents of {path}: card 4111 1111 1111 1111"


@server.tool(description="Runs a shell command.")
def run_shell(command: str) -> str:
    return f"ran {command}"


uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
