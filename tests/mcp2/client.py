"""An agent of the MCP SDK's 2.x generation, for tests/e2e/test_mcp_generations_e2e.py:
run by .venv-mcp2's Python, `client.py URL TOKEN MODE` (MODE: `auto`, which prefers the
stateless 2026-07-28 revision, or `legacy`, the 2025 initialize handshake). It lists the
tools, reads a file, asks for `rm -rf /`, and prints what it saw as one JSON line."""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, token: str, mode: str) -> None:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30)
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as agent:
        seen = {"version": agent.protocol_version,
                "tools": sorted(t.name for t in (await agent.list_tools()).tools)}
        read = await agent.call_tool("read_file", {"path": "notes.txt"})
        seen["read"] = " ".join(c.text for c in read.content)
        try:
            ran = await agent.call_tool("run_shell", {"command": "rm -rf /"})
            seen["shell"] = " ".join(c.text for c in ran.content)
        except Exception as exc:  # the refusal, as this SDK raises it
            seen["refused"] = str(exc)
        print(json.dumps(seen))


asyncio.run(main(*sys.argv[1:4]))
