"""An MCP session belongs to the identity that opened it, end to end: the `mcp` SDK's
client and raw HTTP through a real Envoy and tollgate to the SDK's FastMCP servers (the
gateway and servers of test_mcp_e2e.py, both transports).

Another identity that learns a session's id gets the server's own answer for an unknown
session (404) on POST, GET and DELETE alike, and the SDK raises its session error; the
server never sees the request; an `mcp.session_hijack` alert is recorded. The owner keeps
its session across a token refresh (a new token, the same issuer and subject), and its
DELETE ends it for everyone. Each place a server may read a session id from is held to
it: header name variants, the id in the query beside a header, a repeated header or
parameter, the id's case.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcp import ClientSession, McpError
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from extproc.http.mcp_sessions import RULE
from extproc.quickstart import stack
from tests.e2e import test_mcp_e2e as mcp_e2e
from tests.e2e.test_mcp_e2e import AGENT, names, text_of
from tests.support import tokens
from tests.support.gateway import Gateway
from tests.support.mcp_server import McpServer

ACCEPT = "application/json, text/event-stream"
# The gateway and MCP servers of test_mcp_e2e.py, started for this module too.
gw, server, json_server, legacy_server = (
    mcp_e2e.gw, mcp_e2e.server, mcp_e2e.json_server, mcp_e2e.legacy_server)


def call(path: str) -> dict[str, Any]:
    """A tools/call that, if it ran, the server would list in its `calls`."""
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "read_file", "arguments": {"path": path}}}


def client(token: str, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(headers={"authorization": f"Bearer {token}"},
                             timeout=httpx.Timeout(30, read=300), **options)


@asynccontextmanager
async def opened(gateway: Gateway, token: str = AGENT, **options: Any
                 ) -> AsyncIterator[tuple[ClientSession, str, httpx.AsyncClient]]:
    """An initialized SDK session over streamable HTTP: the client, its Mcp-Session-Id,
    and its HTTP client (whose token a test may refresh)."""
    url = f"http://127.0.0.1:{gateway.ports.listener}/mcp"
    async with client(token, **options) as http, \
            streamable_http_client(url, http_client=http) as (read, write, session_id), \
            ClientSession(read, write) as session:
        await session.initialize()
        found = session_id()
        assert found
        yield session, found, http


async def send(gateway: Gateway, method: str, token: str, path: str = "/mcp",
               headers: tuple[tuple[str, str], ...] = (),
               body: dict[str, Any] | None = None) -> httpx.Response:
    """One request as any HTTP client may send it (header names and repeats as given)."""
    async with client(token) as http:
        return await http.request(
            method, f"http://127.0.0.1:{gateway.ports.listener}{path}",
            headers=[("accept", ACCEPT), ("content-type", "application/json"), *headers],
            content=json.dumps(body).encode() if body is not None else None)


def sent_raw(gateway: Gateway, token: str, path: str, headers: tuple[tuple[str, str], ...],
             body: dict[str, Any]) -> tuple[int, bytes]:
    """A POST written byte for byte (header names, repeats and padding as given, which
    HTTP client libraries tidy): its status and body."""
    content = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", f"authorization: Bearer {token}",
            f"accept: {ACCEPT}", "content-type: application/json",
            f"content-length: {len(content)}", "connection: close",
            *(f"{name}: {value}" for name, value in headers)]
    reply = gateway.send_raw("\r\n".join([*head, "", ""]).encode() + content)
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def unknown_session_answer(url: str) -> httpx.Response:
    """What the server itself answers a POST naming a session it does not know (`url`
    with `{}` where the HTTP+SSE transport's id goes)."""
    session = uuid.uuid4().hex
    return httpx.post(url.format(session), headers={"mcp-session-id": session, "accept": ACCEPT,
                                                    "content-type": "application/json"},
                      content=json.dumps(call("x")).encode())


def hijack_alerts(gateway: Gateway, who: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def raised() -> bool:
        found[:] = [r["meaning"]["alert"] for r in gateway.records() if r["kind"] == "alert"
                    and r["meaning"]["alert"]["rule"] == RULE
                    and r["meaning"]["alert"]["identity"] == who]
        return bool(found)

    stack.wait_until(raised, 10, f"the {RULE} alert about {who}")
    return found


def refusals(gateway: Gateway, who: str, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in gateway.records() if r["kind"] == "exchange"
                    and (r.get("identity") or {}).get("sub") == who
                    and r["outcome"]["refusal"] == "mcp_session_not_found"]
        return len(found) >= count

    stack.wait_until(recorded, 10, f"{count} refused exchanges of {who}")
    return found


def test_another_identity_gets_not_found_on_post_get_and_delete(
        gw: Gateway, server: McpServer) -> None:
    mallory = tokens.token("mallory-streamable")
    expected = unknown_session_answer(f"{server.url}/mcp")

    def rewrite(session_id: str) -> Any:
        async def hook(request: httpx.Request) -> None:
            if "mcp-session-id" in request.headers:
                request.headers["mcp-session-id"] = session_id
        return hook

    async def main() -> tuple[dict[str, httpx.Response], str, list[str]]:
        async with opened(gw) as (owner, session_id, _):
            answers = {m: await send(gw, m, mallory, headers=(("mcp-session-id", session_id),),
                                     body=call("stolen-post") if m == "POST" else None)
                       for m in ("POST", "GET", "DELETE")}
            # The SDK's own client, its requests pointed at the owner's session.
            async with opened(gw, mallory,
                              event_hooks={"request": [rewrite(session_id)]}) as (thief, _, _):
                with pytest.raises(McpError) as refused:
                    await thief.call_tool("read_file", {"path": "stolen-sdk"})
            return answers, str(refused.value), names(await owner.list_tools())

    answers, sdk_error, still = asyncio.run(main())
    assert expected.status_code == 404
    for method, answer in answers.items():
        assert (answer.status_code, answer.content) == (404, expected.content), method
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["x-tollgate-trace-id"]
    assert "Session terminated" in sdk_error
    assert "read_file" in still  # the owner's session survived the DELETE
    assert not {c for c in server.calls if c[1].get("path", "").startswith("stolen")}
    (alert, *_) = hijack_alerts(gw, "mallory-streamable")
    assert alert["severity"] == "critical" and alert["target"] == "tools"
    assert "svc-autogen (https://issuer.test) on target tools" in alert["message"]
    refused_records = refusals(gw, "mallory-streamable", 4)
    assert {r["outcome"]["status"] for r in refused_records} == {404}
    assert {r["request"]["method"] for r in refused_records} == {"POST", "GET", "DELETE"}


def test_the_owner_keeps_its_session_across_a_token_refresh(
        gw: Gateway, server: McpServer) -> None:
    async def main() -> tuple[str, str]:
        async with opened(gw) as (owner, session_id, http):
            await owner.list_tools()
            http.headers["authorization"] = f"Bearer {tokens.token('svc-autogen')}"
            result = text_of(await owner.call_tool("read_file", {"path": "after-refresh"}))
            return session_id, result

    session_id, result = asyncio.run(main())
    assert "contents of after-refresh" in result
    records: list[dict[str, Any]] = []

    def recorded() -> bool:
        records[:] = [r for r in gw.records() if r["kind"] == "exchange"
                      and ((r.get("meaning") or {}).get("mcp") or {}).get("session")
                      == session_id]
        return len({r["identity"]["jti"] for r in records}) == 2

    stack.wait_until(recorded, 10, "the session's exchanges under both tokens")
    assert all(r["outcome"]["refusal"] is None for r in records)


def test_the_owners_delete_ends_the_session_for_everyone(gw: Gateway) -> None:
    mallory = tokens.token("mallory-after-delete")

    async def main() -> list[int]:
        async with opened(gw) as (_, session_id, _):
            header = (("mcp-session-id", session_id),)
            ended = await send(gw, "DELETE", AGENT, headers=header)
            return [ended.status_code,
                    (await send(gw, "POST", AGENT, headers=header, body=call("x"))).status_code,
                    (await send(gw, "POST", mallory, headers=header,
                                body=call("x"))).status_code]

    assert asyncio.run(main()) == [200, 404, 404]
    hijack_alerts(gw, "mallory-after-delete")


VARIANTS = {
    "upper-case-header-name": lambda _own, theirs: ("/mcp", (("MCP-SESSION-ID", theirs),)),
    "padded-value": lambda _own, theirs: ("/mcp", (("Mcp-Session-Id", f"  {theirs}\t"),)),
    "upper-case-id": lambda _own, theirs: ("/mcp", (("mcp-session-id", theirs.upper()),)),
    "underscore-header": lambda own, theirs: (
        "/mcp", (("mcp-session-id", own), ("mcp_session_id", theirs))),
    "repeated-header": lambda own, theirs: (
        "/mcp", (("mcp-session-id", own), ("mcp-session-id", theirs))),
    "query-beside-own-header": lambda own, theirs: (
        f"/mcp?session_id={theirs}", (("mcp-session-id", own),)),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_place_a_session_id_is_read_from_is_held_to_its_owner(
        gw: Gateway, server: McpServer, variant: str) -> None:
    thief = f"mallory-{variant}"

    async def main() -> tuple[int, bytes]:
        async with opened(gw) as (owner, theirs, _), \
                opened(gw, tokens.token(thief)) as (_, own, _):
            path, headers = VARIANTS[variant](own, theirs)
            answer = await asyncio.to_thread(sent_raw, gw, tokens.token(thief), path, headers,
                                             call(f"stolen-{variant}"))
            await owner.list_tools()  # the owner's session goes on
            return answer

    status, body = asyncio.run(main())
    assert status == 404 and b"Session not found" in body
    assert ("read_file", {"path": f"stolen-{variant}"}) not in server.calls
    hijack_alerts(gw, thief)


@asynccontextmanager
async def legacy(gateway: Gateway, token: str = AGENT) -> AsyncIterator[tuple[ClientSession, str]]:
    """An initialized SDK session over the HTTP+SSE transport, and its session id."""
    created: list[str] = []
    async with sse_client(f"http://127.0.0.1:{gateway.ports.listener}/sse",
                          headers={"authorization": f"Bearer {token}"},
                          on_session_created=created.append) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session, created[0]


@pytest.mark.parametrize("where", ["own", "repeated", "semicolon"])
def test_the_http_sse_transports_sessions_are_their_openers(
        gw: Gateway, legacy_server: McpServer, where: str) -> None:
    thief = f"mallory-legacy-{where}"
    expected = unknown_session_answer(legacy_server.url + "/messages/?session_id={}")

    async def main() -> tuple[dict[str, httpx.Response], str]:
        async with legacy(gw) as (owner, theirs), legacy(gw, tokens.token(thief)) as (_, own):
            query = {"own": f"session_id={theirs}",
                     "repeated": f"session_id={own}&session_id={theirs}",
                     "semicolon": f"session_id={own};session_id={theirs}"}[where]
            answers = {m: await send(gw, m, tokens.token(thief), f"/messages/?{query}",
                                     body=call(f"stolen-{where}") if m == "POST" else None)
                       for m in ("POST", "GET", "DELETE")}
            await owner.list_tools()
            return answers, text_of(await owner.call_tool("read_file", {"path": "mine"}))

    answers, mine = asyncio.run(main())
    assert (expected.status_code, expected.content) == (404, b"Could not find session")
    for method, answer in answers.items():
        assert (answer.status_code, answer.content) == (404, expected.content), method
    assert "contents of mine" in mine
    assert ("read_file", {"path": f"stolen-{where}"}) not in legacy_server.calls
    hijack_alerts(gw, thief)
