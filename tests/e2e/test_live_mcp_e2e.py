"""Live sessions of the MCP front end to end: the `mcp` SDK's session (streamable HTTP)
is listed by its Mcp-Session-Id as a session of front `mcp`; ending it closes its SSE
stream in progress (a GET the client holds open) and refuses its later requests with
403 `session_ended`, naming who and why; a lock closes such a stream too.

The gateway and FastMCP servers of test_mcp_e2e.py, through real Envoy and tollgate.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from mcp import McpError

from tests.e2e import test_mcp_e2e as mcp_e2e
from tests.e2e.test_approvals_e2e import api
from tests.e2e.test_live_sessions_e2e import SECURITY, end, listed, moderation
from tests.e2e.test_mcp_sessions_e2e import ACCEPT, call, client, opened, send
from tests.support import tokens
from tests.support.gateway import Gateway

gw, server, json_server, legacy_server = (
    mcp_e2e.gw, mcp_e2e.server, mcp_e2e.json_server, mcp_e2e.legacy_server)


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                         "clientInfo": {"name": "raw", "version": "1"}}}


async def raw_session(gateway: Gateway, token: str) -> str:
    """A session opened by plain HTTP (whose GET stream the test holds itself)."""
    reply = await send(gateway, "POST", token, body=INITIALIZE)
    assert reply.status_code == 200, reply.text
    session_id = reply.headers["mcp-session-id"]
    done = await send(gateway, "POST", token, headers=(("mcp-session-id", session_id),),
                      body={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert done.status_code == 202, done.text
    return session_id


async def held_stream(gateway: Gateway, token: str, session_id: str,
                      opened_stream: asyncio.Event) -> float:
    """A GET SSE stream of the session, held open until the gateway closes it: when it
    closed (monotonic)."""
    async with client(token) as http, http.stream(
            "GET", f"http://127.0.0.1:{gateway.ports.listener}/mcp",
            headers={"accept": ACCEPT, "mcp-session-id": session_id}) as reply:
        assert reply.status_code == 200, await reply.aread()
        opened_stream.set()
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            async for _ in reply.aiter_bytes():
                pass
            raise httpx.ReadError("closed")  # a clean end counts as closed too
    return time.monotonic()


async def test_an_sdk_session_is_listed_its_stream_closed_and_its_requests_refused(
        gw: Gateway) -> None:
    sub = "svc-live-mcp"
    token = tokens.token(sub, ["agents"])
    ids: list[str] = []
    told: list[float] = []
    # The SDK's client raises the 403 of its next call, or as its context ends.
    with pytest.raises((ExceptionGroup, httpx.HTTPStatusError, McpError)):
        async with opened(gw, token) as (session, session_id, _):
            await session.list_tools()
            (found,) = await asyncio.to_thread(listed, gw, sub)
            assert (found["session_id"], found["front"], found["target"]) == \
                (session_id, "mcp", "tools"), found
            ids.append(session_id)
            asked, _ = await asyncio.to_thread(end, gw, session_id, "prompt injection")
            told.append(asked)
            await asyncio.wait_for(session.list_tools(), 10)
    print(f"\nan end reached the MCP SDK (its next call failed) in "
          f"{(time.monotonic() - told[0]) * 1000:.0f} ms")
    (session_id,) = ids
    reply = await send(gw, "POST", token, headers=(("mcp-session-id", session_id),),
                       body=call("notes.txt"))
    assert reply.status_code == 403, reply.text
    refused = reply.json()["error"]["data"]  # a JSON-RPC error, tollgate's in its data
    assert refused["error"] == "session_ended"
    assert "ended by sec-sam: prompt injection" in refused["message"]
    record = await asyncio.to_thread(moderation, gw, session_id)
    assert record["meaning"]["moderation"]["front"] == "mcp"


async def test_a_lock_closes_an_mcp_stream_in_progress(gw: Gateway) -> None:
    sub = "svc-live-mcp-lock"
    token = tokens.token(sub, ["agents"])
    session_id = await raw_session(gw, token)
    if True:
        await asyncio.to_thread(listed, gw, sub)
        streaming = asyncio.Event()
        stream = asyncio.ensure_future(held_stream(gw, token, session_id, streaming))
        await asyncio.wait_for(streaming.wait(), 10)
        asked = time.monotonic()
        status, answer = await asyncio.to_thread(
            api, gw, "POST", "/sessions/locks", SECURITY,
            {"identity": sub, "reason": "leaked token", "seconds": 600})
        assert status == 200, answer
        closed_at = await asyncio.wait_for(stream, 10)
        print(f"\na lock closed an MCP SSE stream in {(closed_at - asked) * 1000:.0f} ms")
    reply = await send(gw, "POST", token, headers=(("mcp-session-id", session_id),),
                       body=call("notes.txt"))
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["data"]["error"] == "locked", reply.text
    status, _ = await asyncio.to_thread(api, gw, "POST", f"/sessions/locks/{sub}/unlock",
                                        SECURITY, {})
    assert status == 200


async def test_an_end_closes_an_mcp_sse_stream_in_progress(gw: Gateway) -> None:
    sub = "svc-live-mcp-stream"
    token = tokens.token(sub, ["agents"])
    session_id = await raw_session(gw, token)
    await asyncio.to_thread(listed, gw, sub)
    streaming = asyncio.Event()
    stream = asyncio.ensure_future(held_stream(gw, token, session_id, streaming))
    await asyncio.wait_for(streaming.wait(), 10)
    asked, _ = await asyncio.to_thread(end, gw, session_id, "enough")
    closed_at = await asyncio.wait_for(stream, 10)
    print(f"\nan end closed an MCP SSE stream in {(closed_at - asked) * 1000:.0f} ms")
