"""An MCP server built with FastMCP (the standalone framework, 4.x, on the SDK's 2.x
generation), streamable HTTP at /mcp, for tests/e2e/test_mcp_frameworks_e2e.py: run by
.venv-mcp2's Python, `fastmcp_server.py PORT`. Its tools are server.py's."""

import sys

import uvicorn
from fastmcp import FastMCP

server = FastMCP("frameworks")


@server.tool(description="Reads a file.")
def read_file(path: str) -> str:
    return f"contents of {path}: card 4111 1111 1111 1111"


@server.tool(description="Runs a shell command.")
def run_shell(command: str) -> str:
    return f"ran {command}"


uvicorn.run(server.http_app(path="/mcp"), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
