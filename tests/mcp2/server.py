"""An MCP server of the SDK's 2.x generation (MCPServer, streamable HTTP at /mcp), for
tests/e2e/test_mcp_generations_e2e.py: run by .venv-mcp2's Python, `server.py PORT
[LOG]`. Its tools are served_tools.py's. With LOG, each message POSTed is written there
as it arrives, one JSON line ({"method", "id", "name", "authorization"}), so a test sees
what reached the server, in which order, and with which credential."""

import json
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from served_tools import TOOLS

server = MCPServer("generations")
for tool, description in TOOLS:
    server.tool(description=description)(tool)


class Logged:
    """The app, each POSTed message appended to `path` before the app reads it."""

    def __init__(self, app, path):
        self.app, self.path = app, path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        received, body = [], b""
        while not received or received[-1].get("more_body", False):
            received.append(await receive())
            body += received[-1].get("body", b"")
        try:
            message = json.loads(body)
            line = {"method": message.get("method"), "id": message.get("id"),
                    "name": (message.get("params") or {}).get("name")}
        except (ValueError, AttributeError):
            line = {"method": None, "id": None, "name": None}
        line["authorization"] = dict(scope["headers"]).get(b"authorization", b"").decode()
        self.write(line)

        async def replayed():
            return received.pop(0) if received else await receive()

        return await self.app(scope, replayed, send)

    def write(self, line):
        """One line, written before the message is handled (a few bytes: at once)."""
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")


app = server.streamable_http_app()
uvicorn.run(Logged(app, sys.argv[2]) if len(sys.argv) > 2 else app, host="127.0.0.1",
            port=int(sys.argv[1]), log_level="warning")
