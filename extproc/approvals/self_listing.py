"""tollgate's own `tools/list` of an MCP target's server, for a call to a tool it has no
pin for.

MCP's 2026-07-28 revision is stateless: a client may call a tool it listed on another
connection or replica, or from a cached list, or never. tollgate pins a target's tools
from the listings it sees (approvals/pins.py); a call to a tool with no pin has the
server's tools listed here first, sent where the call would go, in the protocol the
call speaks (its `MCP-Protocol-Version`, `Mcp-Method: tools/list` from 2026-07-28, its
`_meta` envelope, its `Mcp-Session-Id` in the 2025 session form), with the credential
the call would carry, and pinned exactly as a client's listing is: trusted only as the
target's first listing, a tool new since then waiting for its approvers.

Where the server is: the Envoy bootstrap tollgate is configured with, the one Envoy
serves (`identity.envoy_bootstrap`): the target's route, its cluster, the cluster's
first endpoint, plain HTTP or TLS as its transport socket says
(`envoy_bootstrap.upstream_of`), read anew for each listing. The bootstrap is the one
picture of the upstream; tollgate keeps none of its own. Sending the listing back
through Envoy instead would need the agent's token (jwt_authn removes it before
tollgate sees it), Envoy's listener address as tollgate reaches it (a second
picture), and would come back to tollgate as an exchange of the agent's, decided,
counted and recorded as if the agent had asked. The limits: only what the bootstrap
holds inline (no RDS, CDS, EDS or SDS); a route that rewrites the path otherwise than
by prefix_rewrite, or spreads over several clusters, and a TLS cluster with a client
certificate or a validation context other than a CA file or the system's CAs, are not
listed (the reason says which); of a cluster's endpoints the first is asked;
route-level headers Envoy adds are not added; the HTTP+SSE transport answers on the
client's stream, so it is not listed. A target whose credential is traded for each
agent's token (token_exchange) is listed with the token the call's own token is traded
for: the server shows that agent the tools it shows it, and nobody's listing is another's.

Bounded: at most MAX_PAGES pages (`nextCursor`), all within SECONDS; the calls that
wait for one target (for token_exchange, one target and agent token) share one listing,
and for AGAIN_AFTER seconds after it ends its outcome answers the same calls too (an
agent calling made-up tool names would otherwise have the server listed once per call).
A listing that fails lists nothing: the call stays unknown, its refusal saying why.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import yaml

from extproc import envoy_bootstrap
from extproc.codecs.sse import EventSplitter, event_data
from extproc.interpret import mcp
from extproc.interpret.mcp import ListingFailed
from extproc.token_exchange import TokenUnavailable

if TYPE_CHECKING:
    from extproc.config import Config, Target
    from extproc.credentials import CredentialStore, Injection
    from extproc.interpret.mcp import McpReading, ToolPins
    from extproc.token_exchange import Subject

log = logging.getLogger("tollgate.mcp")

MAX_PAGES = 10
SECONDS = 5.0
AGAIN_AFTER = 10.0
MAX_PAGE_BYTES = 4 * 1024 * 1024
# The `_meta` keys of a 2026-07-28 request that say who asks in which revision (its
# envelope): a listing repeats the call's.
_ENVELOPE = ("io.modelcontextprotocol/protocolVersion",
             "io.modelcontextprotocol/clientCapabilities", "io.modelcontextprotocol/clientInfo")
_METHOD_HEADER_FROM = "2026-07-28"  # the revision whose requests name their method


def self_lister(config: Config, credentials: CredentialStore, pins: ToolPins | None
                ) -> SelfLister | None:
    """What lists MCP servers' tools for the pipeline's interpreters: None without the
    pins, or without the Envoy bootstrap that says where the servers are."""
    if pins is None or config.identity.envoy_bootstrap is None:
        return None
    return SelfLister(config, credentials, pins)


class SelfLister:
    """Lists MCP targets' tools from their servers and pins them (interpret.mcp's
    ToolLister), one listing at a time per target."""

    def __init__(self, config: Config, credentials: CredentialStore, pins: ToolPins,
                 pages: int = MAX_PAGES, seconds: float = SECONDS,
                 again_after: float = AGAIN_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._targets = {t.name: t for t in config.targets if t.mcp is not None}
        bootstrap = config.identity.envoy_bootstrap
        self._bootstrap = config.resolve(bootstrap) if bootstrap is not None else None
        self._credentials, self._pins = credentials, pins
        self._pages, self._seconds = pages, seconds
        self._flights: dict[tuple[str, str], asyncio.Future[int]] = {}
        # Each target's (and agent token's) last listing, ended: when, and its outcome
        # (a done future).
        self._landed_at: dict[tuple[str, str], tuple[float, asyncio.Future[int]]] = {}
        self._again_after, self._clock = again_after, clock

    async def listed(self, target: str, call: McpReading, headers: dict[str, str],
                     asker: Any, subject: Subject | None = None) -> int:
        """How many tools the server listed, all given to the pins; ListingFailed with
        why not (`subject`: the agent's verified token, traded for the server's on a
        token_exchange target). A listing under way for `target` (and `subject`) is
        waited for, not asked again (a caller that leaves does not end it for the
        others); one that ended less than `again_after` seconds ago answers as it did."""
        key = (target, subject.token if subject is not None else "")
        landed = self._landed_at.get(key)
        if landed is not None and self._clock() - landed[0] < self._again_after:
            return await landed[1]
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._listed(target, call, headers, asker, subject))
            self._flights[key] = flight
            flight.add_done_callback(functools.partial(self._landed, key))
        return await asyncio.shield(flight)

    def _landed(self, key: tuple[str, str], flight: asyncio.Future[int]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved, should every caller have left
            now = self._clock()
            # Outcomes past answering go (one per agent token on a token_exchange target).
            for old in [k for k, (at, _) in self._landed_at.items()
                        if now - at >= self._again_after]:
                del self._landed_at[old]
            self._landed_at[key] = (now, flight)

    async def _listed(self, name: str, call: McpReading, headers: dict[str, str],
                      asker: Any, subject: Subject | None) -> int:
        target = self._targets[name]
        assert target.mcp is not None
        # The upstream continues the call's span, as the call itself does.
        trace = getattr(asker, "trace_id", None), getattr(asker, "span_id", None)
        traceparent = f"00-{trace[0]}-{trace[1]}-01" if all(trace) else None
        tools = await self._tools(target, call, headers, traceparent, subject)
        named = [entry for tool in tools if (entry := mcp.declared_of(tool)) is not None]
        await self._pins.listed(name, target.mcp.pin_approvers, named, asker)
        log.info("trace %s: MCP target %s: the gateway listed the server's %d tools itself",
                 getattr(asker, "trace_id", "-"), name, len(tools))
        return len(tools)

    async def _tools(self, target: Target, call: McpReading, headers: dict[str, str],
                     traceparent: str | None, subject: Subject | None) -> list[Any]:
        """The tools the target's server lists to a request like `call` (its pages
        joined); ListingFailed with why there is no list."""
        if call["transport"] == "sse":
            raise ListingFailed("the HTTP+SSE transport answers on the client's event "
                                "stream, where the gateway cannot ask")
        upstream = await self._upstream(target, headers.get(":path") or "/")
        try:
            injection = await self._credentials.upstream(target.name, subject)
        except TokenUnavailable as exc:
            raise ListingFailed(f"the upstream's credential cannot be obtained: {exc}") from None
        host = f"[{upstream.host}]" if ":" in upstream.host else upstream.host
        url = (f"{upstream.scheme}://{host}:{upstream.port}"
               f"{upstream.path(headers.get(':path') or '/')}")
        asking = _request_headers(headers, injection, upstream.authority)
        if traceparent is not None:
            asking["traceparent"] = traceparent
        envelope = {key: value for key, value in
                    (((call.get("params") or {}).get("_meta")) or {}).items() if key in _ENVELOPE}
        tls = _tls(upstream) if upstream.scheme == "https" else None
        try:
            async with asyncio.timeout(self._seconds), aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self._seconds)) as session:
                listing = _Listing(session, url, asking, tls, upstream.server_name)
                return await listing.pages(envelope, self._pages)
        except TimeoutError:
            raise ListingFailed(f"the server at {url} did not list its tools within "
                                f"{self._seconds:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ListingFailed(f"the server at {url} cannot be reached: "
                                f"{str(exc) or type(exc).__name__}") from None

    async def _upstream(self, target: Target, path: str) -> envoy_bootstrap.Upstream:
        """Where Envoy sends the target's requests to `path`, as the bootstrap says now."""
        source = self._bootstrap
        if source is None:
            raise ListingFailed(mcp.NO_LISTER)
        try:
            bootstrap = await asyncio.to_thread(envoy_bootstrap.load, source)
            return envoy_bootstrap.upstream_of(bootstrap, target.match.route,
                                               target.match.cluster, path)
        except (OSError, yaml.YAMLError, ValueError, LookupError, TypeError,
                AttributeError) as exc:
            raise ListingFailed(f"the Envoy bootstrap {source} does not say where target "
                                f"{target.name}'s server is: {exc}") from None


class _Listing:
    """One listing's requests to one server, page after page."""

    def __init__(self, session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                 tls: ssl.SSLContext | None, server_name: str | None) -> None:
        self._session, self._url, self._headers = session, url, headers
        self._tls, self._server_name = tls, server_name

    async def pages(self, envelope: dict[str, Any], most: int) -> list[Any]:
        tools: list[Any] = []
        cursor: str | None = None
        for page in range(most):
            params: dict[str, Any] = {"_meta": envelope} if envelope else {}
            if cursor is not None:
                params["cursor"] = cursor
            result = await self._page({"jsonrpc": "2.0", "id": f"tollgate-listing-{page}",
                                       "method": "tools/list", "params": params})
            tools += result["tools"]
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                return tools
        raise ListingFailed(f"the server's tools run past {most} pages")

    async def _page(self, message: dict[str, Any]) -> dict[str, Any]:
        async with self._session.post(
                self._url, data=orjson.dumps(message), headers=self._headers,
                ssl=self._tls if self._tls is not None else True,
                server_hostname=self._server_name) as response:
            kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
            if kind == "text/event-stream" and response.status == 200:
                answer = await _streamed(response, message["id"])
            else:
                body = await _body(response)
                answer = _json(body) if kind == "application/json" else None
                if response.status != 200:
                    raise ListingFailed(f"the server answered HTTP {response.status}"
                                        + _rpc_error(answer))
                if kind != "application/json":
                    raise ListingFailed(f"the server answered {kind or 'no content type'}, "
                                        "neither JSON nor an event stream")
        return _result(answer, message["id"])


async def _body(response: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_PAGE_BYTES:
            raise ListingFailed(f"a page of the server's tools is over {MAX_PAGE_BYTES} bytes")
    return bytes(body)


async def _streamed(response: aiohttp.ClientResponse, rpc_id: str) -> Any:
    """The answer to `rpc_id` among the messages of an event stream (a server may send
    notifications or requests of its own first)."""
    events, read = EventSplitter(), 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        read += len(chunk)
        if read > MAX_PAGE_BYTES:
            raise ListingFailed(f"a page of the server's tools is over {MAX_PAGE_BYTES} bytes")
        for raw in events.feed(chunk):
            data, _ = event_data(raw)
            message = _json(data) if data else None
            if isinstance(message, dict) and message.get("id") == rpc_id:
                return message
    raise ListingFailed("the server's event stream ended without an answer to the listing")


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _rpc_error(answer: Any) -> str:
    """What a JSON-RPC error says, as the end of a sentence ("" for no error)."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return ""
    return f" ({error.get('code')}: {str(error.get('message'))[:200]})"


def _result(answer: Any, rpc_id: str) -> dict[str, Any]:
    """A listing page's result; ListingFailed unless it is a JSON-RPC answer to
    `rpc_id` with a tools array."""
    if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0" \
            or answer.get("id") != rpc_id:
        raise ListingFailed("the server's answer is no JSON-RPC answer to the listing")
    if "error" in answer:
        raise ListingFailed("the server answered the listing with an error"
                            + _rpc_error(answer))
    if mcp.listed_tools(answer) is None:
        raise ListingFailed("the server's answer to the listing has no tools array")
    return dict(answer["result"])


def _request_headers(client: dict[str, str], injection: Injection,
                     authority: str | None) -> dict[str, str]:
    """A listing's headers: the call's protocol revision and session, the Host Envoy
    would send, the credential the call would carry (never the client's)."""
    version = client.get("mcp-protocol-version", "").strip()
    found = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if version:
        found["mcp-protocol-version"] = version
        if version >= _METHOD_HEADER_FROM:
            found["mcp-method"] = "tools/list"
    if session := client.get("mcp-session-id"):
        found["mcp-session-id"] = session
    if host := authority or client.get(":authority"):
        found["host"] = host
    if injection.header is not None:
        found[injection.header] = injection.value.decode("latin-1")
    return found


def _tls(upstream: envoy_bootstrap.Upstream) -> ssl.SSLContext:
    """A context that checks the server's certificate as the cluster's does: chained to
    its CA file (else the system's CAs), naming its server name."""
    return ssl.create_default_context(cafile=upstream.ca_file)
