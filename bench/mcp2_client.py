"""bench/mcp_generations.py's client: the MCP SDK's 2.x generation, run by .venv-mcp2's
Python (`mcp2_client.py`, its arguments one JSON object on stdin: urls by path, token,
mode, calls, warmup). `mode` is the SDK's: `auto` speaks the stateless 2026-07-28
revision, `legacy` the 2025 initialize handshake and session. Prints one JSON object:
latencies in ms by operation and path, errors, the revision each path spoke, and what
each path's read_file answered.

Not tollgate's code (it imports the 2.x SDK, which .venv does not have): a file of the
benchmark, like tests/mcp2/client.py is of the tests.
"""

import asyncio
import contextlib
import itertools
import json
import sys
import time

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

OPERATIONS = {
    "read_file": lambda c: c.call_tool("read_file", {"path": "notes.txt"}),
    "tools/list": lambda c: c.list_tools(),
}


async def _call(client, operation):
    start = time.perf_counter_ns()
    try:
        result = await OPERATIONS[operation](client)
    except Exception:  # a JSON-RPC error: a refusal, or the server's
        return (time.perf_counter_ns() - start) / 1e6, False
    return (time.perf_counter_ns() - start) / 1e6, not getattr(result, "isError", False)


async def main(asked):
    urls, mode = asked["urls"], asked["mode"]
    samples = {op: {path: [] for path in urls} for op in OPERATIONS}
    errors = {op: dict.fromkeys(urls, 0) for op in OPERATIONS}
    async with contextlib.AsyncExitStack() as cleanup:
        clients = {}
        for path, url in urls.items():
            http = await cleanup.enter_async_context(httpx2.AsyncClient(
                headers={"authorization": f"Bearer {asked['token']}"}, timeout=60))
            clients[path] = await cleanup.enter_async_context(
                Client(streamable_http_client(url, http_client=http), mode=mode))
        versions = {path: c.protocol_version for path, c in clients.items()}
        listed = {path: sorted(t.name for t in (await c.list_tools()).tools)
                  for path, c in clients.items()}
        read = {}
        for path, client in clients.items():
            result = await client.call_tool("read_file", {"path": "notes.txt"})
            read[path] = " ".join(part.text for part in result.content)
        rounds = asked["warmup"] + asked["calls"]
        for round_ in range(rounds):
            order = [*urls][round_ % len(urls):] + [*urls][:round_ % len(urls)]
            for operation, path in itertools.product(OPERATIONS, order):
                elapsed, ok = await _call(clients[path], operation)
                if round_ >= asked["warmup"]:
                    samples[operation][path].append(elapsed)
                    errors[operation][path] += not ok
    print(json.dumps({"samples": samples, "errors": errors, "versions": versions,
                      "listed": listed, "read": read}))


asyncio.run(main(json.load(sys.stdin)))
