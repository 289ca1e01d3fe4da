"""An MCP server built with FastMCP (the standalone framework, 4.x, on the SDK's 2.x
generation), streamable HTTP at /mcp, for tests/e2e/test_mcp_generations_e2e.py: run by
.venv-mcp2's Python, `fastmcp_server.py PORT`. Its tools are served_tools.py's."""

import sys

import uvicorn
from fastmcp import FastMCP
from served_tools import TOOLS

server = FastMCP("frameworks")
for tool, description in TOOLS:
    server.tool(description=description)(tool)

uvicorn.run(server.http_app(path="/mcp"), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
