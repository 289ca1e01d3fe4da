"""A stateless agent of the SDK's 2.x generation that calls tools it never listed, for
tests/e2e/test_mcp_self_listing_e2e.py: run by .venv-mcp2's Python, `call_unlisted.py
URL TOKEN TOOL...`. It speaks 2026-07-28 and calls each TOOL (with a `path`) without a
tools/list first, printing what each answered or why it was refused as one JSON line."""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, token: str, tools: list[str]) -> None:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30)
    seen = {}
    async with http, Client(streamable_http_client(url, http_client=http), mode="auto") as agent:
        seen["version"] = agent.protocol_version
        for name in tools:
            try:
                answered = await agent.call_tool(name, {"path": "notes.txt"})
                seen[name] = {"text": " ".join(c.text for c in answered.content),
                              "error": answered.is_error}
            except Exception as exc:  # the refusal, as this SDK raises it
                seen[name] = {"refused": str(exc)}
    print(json.dumps(seen))


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
