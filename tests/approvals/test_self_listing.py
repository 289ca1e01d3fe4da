"""tollgate's own tools/list of an MCP server (approvals/self_listing.py), against a real
HTTP server in this process: the pages it asks for and how (the call's protocol
revision, envelope and session, the target's credential, the Host the route sets), where
(the Envoy bootstrap's route, cluster and endpoint), one listing for concurrent calls,
the tools pinned as a first listing in the store, and why a listing fails."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from extproc import config, envoy_bootstrap
from extproc.approvals.hold import Holds
from extproc.approvals.pins import StoredPins
from extproc.approvals.self_listing import AGAIN_AFTER, SelfLister, self_lister
from extproc.credentials import CredentialStore
from extproc.interpret import mcp
from extproc.interpret.mcp import ListingFailed
from extproc.masking import Masker
from extproc.quickstart import stack
from extproc.recording import Evidence
from extproc.token_exchange import Subject
from tests.approvals.conftest import IDENTITY, opened
from tests.support.fakes import MemoryPins
from tests.support.tls import write_stranger_ca, write_tls_files

ASKER = Evidence("exchange", 0.0, "ab" * 16, "cd" * 8, {}, IDENTITY)  # type: ignore[arg-type]
STATELESS = "2026-07-28"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "agent", "version": "1"}}


def tool(name: str) -> dict[str, Any]:
    return {"name": name, "description": f"{name}, as declared",
            "inputSchema": {"type": "object"}}


Answer = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]


class Server:
    """An MCP server's tools/list: `pages` of tools, answered as JSON (or an event
    stream, `streamed`); `answer` replaces it whole. Keeps every request it got."""

    def __init__(self) -> None:
        self.pages: list[list[dict[str, Any]]] = [[tool("read_file"), tool("run_shell")]]
        self.streamed = False
        self.answer: Answer | None = None
        self.requests: list[tuple[Mapping[str, str], dict[str, Any]]] = []
        self.traded: list[str] = []  # the subject tokens its token endpoint was sent
        self.port = 0

    async def token(self, request: web.Request) -> web.Response:
        """An RFC 8693 token endpoint: each subject token traded for one naming it."""
        subject = str((await request.post())["subject_token"])
        self.traded.append(subject)
        return web.json_response({"access_token": f"traded-{subject}",
                                  "token_type": "Bearer", "expires_in": 300})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        message = orjson.loads(await request.read())
        self.requests.append((request.headers.copy(), message))  # case-insensitive
        if self.answer is not None:
            return await self.answer(request, message)
        cursor = (message.get("params") or {}).get("cursor")
        page = int(cursor) if cursor else 0
        result: dict[str, Any] = {"tools": self.pages[page]}
        if page + 1 < len(self.pages):
            result["nextCursor"] = str(page + 1)
        answer = {"jsonrpc": "2.0", "id": message["id"], "result": result}
        if not self.streamed:
            return web.json_response(answer)
        stream = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await stream.prepare(request)
        # A notification of the server's own first, then the answer.
        await stream.write(b'event: message\ndata: {"jsonrpc": "2.0", "method": '
                           b'"notifications/message", "params": {}}\n\n')
        await stream.write(b"event: message\ndata: " + orjson.dumps(answer) + b"\n\n")
        await stream.write_eof()
        return stream


@contextlib.asynccontextmanager
async def serving(tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    """A Server on a free port of 127.0.0.1, over TLS with `tls`."""
    found = Server()
    app = web.Application()
    app.router.add_post("/mcp", found.handle)
    app.router.add_post("/token", found.token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    found.port = runner.addresses[0][1]
    try:
        yield found
    finally:
        await runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with serving() as found:
        yield found


def configured(tmp_path: Path, port: int, credential: dict[str, Any] | None = None,
               bootstrap: bool = True, ca_file: Path | None = None) -> config.Config:
    """A config with one MCP target whose route Envoy's bootstrap (written as `tollgate
    envoy-bootstrap` writes it) sends to 127.0.0.1:`port`; with `ca_file`, to
    https://localhost:`port`, whose certificate must chain to it."""
    target: dict[str, Any] = {"name": "tools", "protocol": "mcp", "match": {"route": "mcp"}}
    if credential is not None:
        target["credential"] = credential
    data = {"policy": {"dir": "."}, "targets": [target]}
    path = tmp_path / "envoy.yaml"
    url = f"https://localhost:{port}" if ca_file else f"http://127.0.0.1:{port}"
    written = envoy_bootstrap.for_config(config.parse(data), upstreams={"tools": url})
    for cluster in written.bootstrap["static_resources"]["clusters"]:
        if ca_file is not None and cluster["name"] == "target_tools":
            cluster["transport_socket"]["typed_config"]["common_tls_context"][
                "validation_context"] = {"trusted_ca": {"filename": str(ca_file)}}
    envoy_bootstrap.write(written.bootstrap, path)
    if bootstrap:
        data["identity"] = {"envoy_bootstrap": str(path)}
    return config.parse(data, source=tmp_path / "tollgate.yaml")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lister(cfg: config.Config, pins: Any, seconds: float = 5.0,
           clock: Clock | None = None) -> SelfLister:
    return SelfLister(cfg, CredentialStore.from_config(cfg), pins, seconds=seconds,
                      clock=clock or Clock())


def call(name: str = "read_file", envelope: dict[str, Any] | None = None) -> Any:
    params: dict[str, Any] = {"name": name, "arguments": {}}
    if envelope is not None:
        params["_meta"] = {**envelope, "progressToken": 7}
    return mcp.message_reading({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                "params": params}, "streamable-http", "client", None)


STATELESS_HEADERS = {":path": "/mcp", ":authority": "gateway.test",
                     "mcp-protocol-version": STATELESS, "mcp-method": "tools/call",
                     "mcp-name": "read_file", "authorization": "Bearer agents-token"}


async def test_a_stateless_calls_listing_repeats_its_revision_with_the_targets_credential(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLS_TOKEN", "upstream-secret")
    cfg = configured(tmp_path, server.port, {"type": "bearer", "from_env": "TOOLS_TOKEN"})
    pins = MemoryPins()
    count = await lister(cfg, pins).listed("tools", call(envelope=ENVELOPE),
                                           STATELESS_HEADERS, ASKER)
    assert count == 2 and pins.listings == [["read_file", "run_shell"]]
    [(headers, message)] = server.requests
    assert message["method"] == "tools/list"
    # The envelope the call carried, nothing else of its _meta.
    assert message["params"] == {"_meta": ENVELOPE}
    assert headers["MCP-Protocol-Version"] == STATELESS
    assert headers["Mcp-Method"] == "tools/list" and "Mcp-Name" not in headers
    # The target's credential, never the agent's; the Host Envoy forwards.
    assert headers["Authorization"] == "Bearer upstream-secret"
    assert headers["Host"] == "gateway.test"
    # The server continues the call's span.
    assert headers["traceparent"] == f"00-{ASKER.trace_id}-{ASKER.span_id}-01"


async def test_a_session_calls_listing_names_its_session_and_no_method_header(
        tmp_path: Path, server: Server) -> None:
    server.streamed = True  # answered on an event stream, after a notification
    headers = {":path": "/mcp", "mcp-protocol-version": "2025-11-25",
               "mcp-session-id": "s-42"}
    count = await lister(configured(tmp_path, server.port), MemoryPins()).listed(
        "tools", call(), headers, ASKER)
    assert count == 2
    [(sent, message)] = server.requests
    assert sent["Mcp-Session-Id"] == "s-42" and sent["MCP-Protocol-Version"] == "2025-11-25"
    assert "Mcp-Method" not in sent and "Authorization" not in sent
    assert message["params"] == {}


async def test_every_page_is_listed_then_pinned_as_one_listing(
        tmp_path: Path, server: Server) -> None:
    server.pages = [[tool("a")], [tool("b")], [tool("c")]]
    pins = MemoryPins()
    count = await lister(configured(tmp_path, server.port), pins).listed(
        "tools", call(), STATELESS_HEADERS, ASKER)
    assert count == 3 and pins.listings == [["a", "b", "c"]]
    assert [m["params"].get("cursor") for _, m in server.requests] == [None, "1", "2"]


async def test_a_listing_past_its_pages_fails_and_pins_nothing(
        tmp_path: Path, server: Server) -> None:
    server.pages = [[tool(f"t{n}")] for n in range(3)]
    pins = MemoryPins()
    listing = SelfLister(configured(tmp_path, server.port),
                         CredentialStore.from_config(configured(tmp_path, server.port)),
                         pins, pages=2)
    with pytest.raises(ListingFailed, match="the server's tools run past 2 pages"):
        await listing.listed("tools", call(), STATELESS_HEADERS, ASKER)
    assert pins.listings == [] and len(server.requests) == 2


def held_listing(server: Server) -> tuple[asyncio.Event, asyncio.Event]:
    """The server answers a listing (read_file alone) only once released: whether one
    arrived, and what releases it."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def held(_request: web.Request, message: dict[str, Any]) -> web.StreamResponse:
        arrived.set()
        await release.wait()
        return web.json_response({"jsonrpc": "2.0", "id": message["id"],
                                  "result": {"tools": [tool("read_file")]}})

    server.answer = held
    return arrived, release


async def test_concurrent_calls_share_one_listing(tmp_path: Path, server: Server) -> None:
    arrived, release = held_listing(server)
    pins, clock = MemoryPins(), Clock()
    listing = lister(configured(tmp_path, server.port), pins, clock=clock)
    first = asyncio.ensure_future(listing.listed("tools", call(), STATELESS_HEADERS, ASKER))
    await arrived.wait()
    # Joins the listing under way (its first step runs before the server is released).
    second = asyncio.ensure_future(listing.listed("tools", call("run_shell"),
                                                  STATELESS_HEADERS, ASKER))
    release.set()
    assert await asyncio.gather(first, second) == [1, 1]
    assert len(server.requests) == 1 and pins.listings == [["read_file"]]
    # Once done, its outcome answers the target's calls for a while (a made-up tool name
    # per call cannot have the server listed per call); after that, a call lists anew.
    clock.now += AGAIN_AFTER - 0.5
    assert await listing.listed("tools", call("made_up"), STATELESS_HEADERS, ASKER) == 1
    assert len(server.requests) == 1
    clock.now += 1
    await listing.listed("tools", call(), STATELESS_HEADERS, ASKER)
    assert len(server.requests) == 2


async def test_a_caller_that_leaves_does_not_end_the_listing_for_the_others(
        tmp_path: Path, server: Server) -> None:
    arrived, release = held_listing(server)
    pins = MemoryPins()
    listing = lister(configured(tmp_path, server.port), pins)
    leaving = asyncio.ensure_future(listing.listed("tools", call(), STATELESS_HEADERS, ASKER))
    await arrived.wait()
    staying = asyncio.ensure_future(listing.listed("tools", call(), STATELESS_HEADERS, ASKER))
    leaving.cancel()
    release.set()
    assert await staying == 1 and pins.listings == [["read_file"]]
    assert leaving.cancelled()


async def test_what_the_gateway_lists_is_pinned_only_as_the_targets_first_listing(
        tmp_path: Path, server: Server, store_url: str) -> None:
    async with opened(store_url) as store:
        holds = Holds(store, None, Masker(b"k" * 32), config.Approvals(),
                      "http://approvals.test", "self-listing-test")
        pins, clock = StoredPins(holds), Clock()
        listing = lister(configured(tmp_path, server.port), pins, clock=clock)
        await listing.listed("tools", call(), STATELESS_HEADERS, ASKER)
        _, first = await pins.declared("tools", "read_file")
        server.pages = [[tool("read_file"), tool("run_shell"), tool("exfiltrate")]]
        clock.now += AGAIN_AFTER
        await listing.listed("tools", call("exfiltrate"), STATELESS_HEADERS, ASKER)
        _, later = await pins.declared("tools", "exfiltrate")
        pending = await store.list("pending")
    assert first["status"] == "pinned"
    # A tool new since the first listing waits for its approvers, as from a client's.
    assert later["status"] == "new"
    assert [a.rules for a in pending] == [("mcp.tool_definition_new",)]


async def answer_with(status: int, body: bytes, content_type: str) -> Answer:
    async def answer(_request: web.Request, _message: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type=content_type)
    return answer


@pytest.mark.parametrize(("status", "body", "content_type", "reason"), [
    (503, b"busy", "text/plain", "the server answered HTTP 503"),
    (400, b'{"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "no envelope"}}',
     "application/json", "the server answered HTTP 400 (-32602: no envelope)"),
    (200, b"<html>", "text/html", "the server answered text/html, neither JSON nor"),
    (200, b"not json", "application/json", "no JSON-RPC answer to the listing"),
    (200, b'{"jsonrpc": "2.0", "id": "tollgate-listing-0", "result": {}}',
     "application/json", "the server's answer to the listing has no tools array"),
    (200, b'{"jsonrpc": "2.0", "id": "tollgate-listing-0", "error": {"code": -32601, '
          b'"message": "Method not found"}}', "application/json",
     "answered the listing with an error (-32601: Method not found)"),
    (200, b'{"jsonrpc": "2.0", "id": "other", "result": {"tools": []}}',
     "application/json", "no JSON-RPC answer to the listing"),
])
async def test_a_listing_the_server_does_not_give_fails_with_why(
        tmp_path: Path, server: Server, status: int, body: bytes, content_type: str,
        reason: str) -> None:
    server.answer = await answer_with(status, body, content_type)
    pins = MemoryPins()
    with pytest.raises(ListingFailed) as failed:
        await lister(configured(tmp_path, server.port), pins).listed(
            "tools", call(), STATELESS_HEADERS, ASKER)
    assert reason in str(failed.value) and pins.listings == []


async def test_a_server_that_does_not_answer_in_time_fails_the_listing(
        tmp_path: Path, server: Server) -> None:
    given_up = asyncio.Event()

    async def silent(_request: web.Request, _message: dict[str, Any]) -> web.StreamResponse:
        await given_up.wait()  # answers only once the listing has failed
        return web.json_response({})

    server.answer = silent
    with pytest.raises(ListingFailed, match=r"did not list its tools within 0\.2 s"):
        await lister(configured(tmp_path, server.port), MemoryPins(), seconds=0.2).listed(
            "tools", call(), STATELESS_HEADERS, ASKER)
    given_up.set()


async def test_a_tls_cluster_is_listed_only_from_a_server_its_ca_vouches_for(
        tmp_path: Path) -> None:
    files = write_tls_files(tmp_path / "tls")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(files.cert, files.key)
    async with serving(tls) as found:
        trusted = configured(tmp_path, found.port, ca_file=files.ca)
        assert await lister(trusted, MemoryPins()).listed(
            "tools", call(), STATELESS_HEADERS, ASKER) == 2
        [(headers, _)] = found.requests
        assert headers["Host"] == "localhost"  # the route's Host rewrite, as Envoy sends
        stranger = configured(tmp_path, found.port,
                              ca_file=write_stranger_ca(tmp_path / "stranger.pem"))
        with pytest.raises(ListingFailed, match="certificate verify failed"):
            await lister(stranger, MemoryPins()).listed("tools", call(), STATELESS_HEADERS,
                                                        ASKER)
        assert len(found.requests) == 1


async def test_an_unreachable_server_fails_the_listing(tmp_path: Path) -> None:
    cfg = configured(tmp_path, stack.free_port())  # nothing listens there
    with pytest.raises(ListingFailed, match=r"the server at http://127\.0\.0\.1:\d+/mcp "
                                            "cannot be reached"):
        await lister(cfg, MemoryPins()).listed("tools", call(), STATELESS_HEADERS, ASKER)


def test_a_lister_is_made_only_with_the_pins_and_the_bootstrap(tmp_path: Path) -> None:
    cfg = configured(tmp_path, 8931)
    credentials = CredentialStore.from_config(cfg)
    assert isinstance(self_lister(cfg, credentials, MemoryPins()), SelfLister)
    assert self_lister(cfg, credentials, None) is None
    assert self_lister(configured(tmp_path, 8931, bootstrap=False), credentials,
                       MemoryPins()) is None


async def test_without_a_bootstrap_or_with_what_it_cannot_follow_nothing_is_asked(
        tmp_path: Path, server: Server) -> None:
    unconfigured = configured(tmp_path, server.port, bootstrap=False)
    with pytest.raises(ListingFailed, match=r"identity\.envoy_bootstrap"):
        await lister(unconfigured, MemoryPins()).listed("tools", call(), STATELESS_HEADERS,
                                                       ASKER)
    cfg = configured(tmp_path, server.port)
    path = tmp_path / "envoy.yaml"
    bootstrap = envoy_bootstrap.load(path)
    (route,) = [r for r in envoy_bootstrap.routes(bootstrap) if r.get("name") == "mcp"]
    route["route"]["regex_rewrite"] = {"pattern": {"regex": ".*"}, "substitution": "/"}
    envoy_bootstrap.write(bootstrap, path)
    with pytest.raises(ListingFailed, match="route mcp has regex_rewrite"):
        await lister(cfg, MemoryPins()).listed("tools", call(), STATELESS_HEADERS, ASKER)
    legacy = mcp.message_reading({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                  "params": {"name": "read_file"}}, "sse", "client", "s")
    with pytest.raises(ListingFailed, match="HTTP\\+SSE transport"):
        await lister(cfg, MemoryPins()).listed("tools", legacy, STATELESS_HEADERS, ASKER)
    assert server.requests == []


async def test_a_token_exchange_target_is_listed_with_the_token_the_calls_is_traded_for(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each agent's listing goes with the token its own is traded for (the server shows
    that agent its tools), never with the agent's token; one agent's outcome answers
    that agent's next calls, not another's; a call with no verified token lists nothing."""
    monkeypatch.setenv("CLIENT_SECRET", "s3cret")
    cfg = configured(tmp_path, server.port, {
        "type": "token_exchange", "from_env": "CLIENT_SECRET",
        "token_url": f"http://127.0.0.1:{server.port}/token", "client_id": "tollgate",
        "audience": "tools"})
    listing = lister(cfg, MemoryPins())
    for agent in ("agent-a", "agent-b", "agent-a"):
        assert await listing.listed("tools", call(), STATELESS_HEADERS, ASKER,
                                    Subject(agent, None)) == 2
    assert server.traded == ["agent-a", "agent-b"]
    assert [h["Authorization"] for h, _ in server.requests] == [
        "Bearer traded-agent-a", "Bearer traded-agent-b"]
    with pytest.raises(ListingFailed, match="exchanges the agent's token for its own, "
                                            "and this request carries none"):
        await listing.listed("tools", call(), STATELESS_HEADERS, ASKER)
    assert len(server.requests) == 2
