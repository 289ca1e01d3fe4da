"""MCP sessions, each bound to the identity and the target that opened it.

An MCP server takes a session's id (`Mcp-Session-Id`, or the HTTP+SSE transport's
`?session_id=`) as enough to act in it: whoever learns one could list and call tools in
another agent's session, or end it. So tollgate binds each session where it learns the
id — the answer to the request that opened it (streamable HTTP's `Mcp-Session-Id`
response header) or the HTTP+SSE transport's `endpoint` event — before the client
sees it, in the store every worker and replica shares:

    opened ─► bound to (issuer, subject, target)      (a refreshed token keeps it)
    request naming a session ─► check, before the policy ─► its owner's: on to the policy
                                                        └─► anyone else's: not found
    the owner's DELETE, answered 2xx ─► ended

A request that names any session not bound to its identity on its target gets the
answer the mcp SDK's server gives for an unknown session (404), so nothing tells it the
session exists; when the session is another identity's or another target's, the alert
`mcp.session_hijack` is raised. A session tollgate never saw opened (before it started,
through a replica with another store, or idle a day and forgotten) is refused the same
way, without the alert: what tollgate cannot attribute does not pass.

Ids are kept as SHA-256 digests: the table hands no live session to its readers.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic
from urllib.parse import unquote_plus, urlsplit

from extproc.codecs.refusal import Unavailable
from extproc.codecs.sse import EventSplitter, fields
from extproc.exchange.ports import Alerts
from extproc.exchange.state import Exchange
from extproc.http.responses import Out, ResponseWire
from extproc.store import StoreError

if TYPE_CHECKING:
    from extproc.identity import Who
    from extproc.store.aio import AsyncStore, Rows

log = logging.getLogger("tollgate.mcp")

RULE = "mcp.session_hijack"
HEADER = "mcp-session-id"
REFUSAL = "mcp_session_not_found"
# What the mcp SDK's servers answer for a session they do not know (mcp 1.30.0):
# streamable HTTP on POST, GET and DELETE alike; the HTTP+SSE transport's POST endpoint.
NOT_FOUND = {
    "streamable-http": (404, b'{"jsonrpc":"2.0","id":"server-error","error":'
                             b'{"code":-32600,"message":"Session not found"}}',
                        (("content-type", "application/json"),)),
    "sse": (404, b"Could not find session", ()),
}
# A session unused this long is forgotten (the SDK's server forgets one idle 30 minutes);
# its last use is written at most this often.
IDLE_US = 24 * 3600 * 1_000_000
_TOUCH_US = 3600 * 1_000_000
# Forgotten sessions are deleted by each process at most this often.
_PRUNE_EVERY = 600.0
# The ids looked up per request: a request naming more is refused on those looked up.
_MOST_LOOKED_UP = 16
# The HTTP+SSE stream's first event is read for its endpoint within this many bytes.
_ENDPOINT_BYTES = 64 * 1024
_QUERY_SEPARATORS = re.compile(r"[&;]")


def named(headers: dict[str, str]) -> list[str]:
    """Every session id a request names, read as widely as a server may: each
    `Mcp-Session-Id` header (`mcp_session_id` too, as WSGI servers read it; repeats as
    Envoy joined them), each `session_id` query parameter (any case, `&` or `;` between
    parameters). Whichever one the server reads, all must be the caller's."""
    return _header_sessions(headers) + _query_sessions(headers.get(":path", "").partition("?")[2])


def _header_sessions(headers: dict[str, str]) -> list[str]:
    return [value for name, value in headers.items() if name.replace("_", "-") == HEADER]


def _query_sessions(query: str) -> list[str]:
    found = []
    for part in _QUERY_SEPARATORS.split(query) if query else ():
        key, _, value = part.partition("=")
        if unquote_plus(key).strip().lower() == "session_id":
            found.append(unquote_plus(value))
    return found


def announced(endpoint: str) -> list[str]:
    """The session ids an HTTP+SSE `endpoint` event's URL names (its client POSTs there)."""
    return _query_sessions(urlsplit(endpoint).query)


def canonical(session_id: str) -> str:
    """An id as loosely as a server may read it (the SDK's HTTP+SSE server takes a UUID in
    any case, with or without hyphens, braces or `urn:uuid:`): a variant of another's
    id is found by it, to alert on. Only the exact id bound passes."""
    text = session_id.strip().lower().removeprefix("urn:").removeprefix("uuid:")
    return text.strip("{}").replace("-", "")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _candidates(values: Sequence[str]) -> list[str]:
    """What to look bindings up by: each id read loosely, and each part of a header
    Envoy joined from repeats (`mine, yours`)."""
    found: dict[str, None] = {}
    for value in values:
        for text in (value, *value.split(",")):
            found[_digest(canonical(text))] = None
    return list(found)[:_MOST_LOOKED_UP]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a session belongs to: an identity, whatever token it holds now."""

    issuer: str
    subject: str

    @staticmethod
    def of(identity: Who) -> Owner:
        if not identity["authenticated"]:
            return Owner("", "anonymous")
        return Owner(identity["iss"] or "", identity["sub"])

    def __str__(self) -> str:
        return f"{self.subject} ({self.issuer})" if self.issuer else self.subject


@dataclass(frozen=True, slots=True)
class NotFound:
    """The server's own answer for an unknown session, given in its place."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    error: str = REFUSAL


@dataclass(frozen=True, slots=True)
class _Binding:
    target: str
    session_hash: str
    owner: Owner
    used_us: int
    ended: bool


class McpSessions:
    """The bindings in the store. A store that cannot answer refuses what needs them
    (503 `mcp_sessions_unavailable`): a session that cannot be checked is not used, and
    one that cannot be bound is not opened."""

    def __init__(self, store: AsyncStore, alerts: Alerts | None) -> None:
        self._store, self._alerts = store, alerts
        # Never 0.0: the monotonic clock counts from boot, so a machine up less than
        # _PRUNE_EVERY would skip a process's first prune.
        self._pruned = -math.inf

    async def check(self, exchange: Exchange) -> NotFound | None:
        """None when the request names no session, or only its identity's on its target;
        else the not-found answer to give (the exchange's outcome set, the alert raised
        when the session is someone else's)."""
        values = named(exchange.evidence.headers)
        if not values:
            return None
        target = _target(exchange)
        owner = Owner.of(exchange.identity)
        found = await self._lookup(_candidates(values))
        mine = {b.session_hash: b for b in found
                if b.target == target and b.owner == owner and not b.ended}
        if all(_digest(v) in mine for v in values):
            await self._touch([mine[_digest(v)] for v in values])
            return None
        others = [b for b in found if b.target != target or b.owner != owner]
        return self._refuse(exchange, owner, others)

    async def answered(self, exchange: Exchange, status: int,
                       headers: dict[str, str]) -> None:
        """The upstream's answer's headers, before they go on: a session it opened (an
        `Mcp-Session-Id` answering a request that named none) is bound to the caller;
        the owner's DELETE of a session, answered 2xx, ends it."""
        if not 200 <= status < 300:
            return
        request_headers = exchange.evidence.headers
        values = named(request_headers)
        if not values and HEADER in headers:
            await self._bind(exchange, headers[HEADER], "streamable-http")
        elif values and request_headers.get(":method") == "DELETE":
            await self._end(exchange, values)

    def watched(self, exchange: Exchange, status: int,
                response: ResponseWire[Out]) -> ResponseWire[Out]:
        """`response`, read for the HTTP+SSE transport's `endpoint` event when it is the
        event stream of a GET naming no session: the session the event names is bound
        before the event goes on."""
        headers = exchange.evidence.headers
        if (headers.get(":method") != "GET" or status != 200 or named(headers)
                or not response.headers.get("content-type", "").startswith(
                    "text/event-stream")):
            return response
        return _EndpointWatch(response, lambda ids: self._bind_all(exchange, ids))

    async def _bind_all(self, exchange: Exchange, ids: Iterable[str]) -> None:
        for session_id in ids:
            await self._bind(exchange, session_id, "sse")

    async def _lookup(self, hashes: list[str]) -> list[_Binding]:
        marks = ", ".join("?" * len(hashes))
        rows = await self._guarded(
            "checked", f"SELECT target, session_hash, issuer, subject, used_us, ended_us "
            f"FROM mcp_sessions WHERE canonical_hash IN ({marks})", hashes)
        return [_Binding(str(t), str(h), Owner(str(i), str(s)), int(u), e is not None)
                for t, h, i, s, u, e in rows]

    async def _touch(self, bindings: list[_Binding]) -> None:
        """Its last use, written at most hourly: what keeps a session from being forgotten."""
        at = _now_us()
        for binding in {b.session_hash: b for b in bindings}.values():
            if at - binding.used_us > _TOUCH_US:
                await self._guarded(
                    "checked", "UPDATE mcp_sessions SET used_us = ? WHERE target = ? "
                    "AND session_hash = ?", (at, binding.target, binding.session_hash))

    async def _bind(self, exchange: Exchange, session_id: str, transport: str) -> None:
        """Bound to the caller, durably, before the id reaches the client; an id already
        bound stays its first owner's (the new session is refused: 502)."""
        target, owner, at = _target(exchange), Owner.of(exchange.identity), _now_us()
        await self._prune(at)
        bound = await self._guarded(
            "bound", "INSERT INTO mcp_sessions (target, session_hash, canonical_hash, "
            "issuer, subject, transport, trace_id, bound_us, used_us, ended_us) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (target, session_hash) DO NOTHING "
            "RETURNING subject",
            (target, _digest(session_id), _digest(canonical(session_id)), owner.issuer,
             owner.subject, transport, exchange.trace_id, at, at))
        if bound:
            return
        exact = _digest(session_id)
        existing = [b for b in await self._lookup([_digest(canonical(session_id))])
                    if b.target == target and b.session_hash == exact]
        if not existing or existing[0].owner != owner or existing[0].ended:
            raise Unavailable(502, "mcp_session_conflict", f"the MCP server of target {target} "
                           "opened a session under an id it had given before; the session "
                           "is refused")

    async def _end(self, exchange: Exchange, values: list[str]) -> None:
        """The owner ended its sessions: a later use of them is not found, by anyone. A
        store that fails leaves the binding (logged): the server has ended the session."""
        owner, at = Owner.of(exchange.identity), _now_us()
        for session_id in values:
            try:
                await self._store.execute(
                    "UPDATE mcp_sessions SET ended_us = ?, used_us = ? WHERE target = ? "
                    "AND session_hash = ? AND issuer = ? AND subject = ?",
                    (at, at, _target(exchange), _digest(session_id), owner.issuer,
                     owner.subject))
            except StoreError as exc:
                log.error("trace %s: the MCP session ended could not be marked so: %s",
                          exchange.trace_id, exc)

    async def _prune(self, at: int) -> None:
        """Forget sessions idle a day, once in a while (whichever process comes first)."""
        if time.monotonic() - self._pruned < _PRUNE_EVERY:
            return
        self._pruned = time.monotonic()
        await self._guarded("bound", "DELETE FROM mcp_sessions WHERE used_us < ?",
                            (at - IDLE_US,))

    async def _guarded(self, what: str, sql: str, params: Sequence[Any]) -> Rows:
        try:
            return await self._store.execute(sql, params)
        except StoreError as exc:
            raise Unavailable(503, "mcp_sessions_unavailable", "the MCP sessions' owners cannot "
                           f"be read or written, so this session cannot be {what}: "
                           f"{exc}") from None

    def _refuse(self, exchange: Exchange, owner: Owner, others: list[_Binding]) -> NotFound:
        """The not-found answer, in the record and the span as tollgate's refusal; the
        alert when the session is someone else's (or another target's)."""
        # The transport whose server would answer: the streamable HTTP one reads the
        # header, which the HTTP+SSE transport's clients never send.
        legacy = not _header_sessions(exchange.evidence.headers)
        status, body, headers = NOT_FOUND["sse" if legacy else "streamable-http"]
        exchange.outcome.update({
            "http.response.status_code": status, "tollgate.decision.action": "deny",
            "tollgate.refusal": REFUSAL})
        exchange.evidence.response_body = exchange.kept(body)
        exchange.evidence.delivered_type = dict(headers).get("content-type")
        target = _target(exchange)
        if not others:
            log.info("trace %s: %s named an MCP session of target %s that it does not "
                     "hold: not found", exchange.trace_id, owner, target)
        elif self._alerts is not None:
            whose = sorted({f"{b.owner} on target {b.target}" for b in others})
            self._alerts.raise_soon(exchange, RULE, "critical", (
                f"{owner} named an MCP session of {', '.join(whose)} on target {target}: "
                "refused as not found (a leaked session id?)"))
        return NotFound(status, body, headers)


class _EndpointWatch(Generic[Out]):
    """A response whose first event, when it is the HTTP+SSE transport's `endpoint`,
    has its session bound (`bind`) before the handler gets it; the rest passes as is."""

    def __init__(self, response: ResponseWire[Out], bind: Any) -> None:
        self._response, self._bind = response, bind
        self.headers, self.ends = response.headers, response.ends
        self._events: EventSplitter | None = EventSplitter()
        self._read = 0

    async def chunk(self) -> tuple[bytes, bool]:
        data, last = await self._response.chunk()
        events = self._events
        if events is not None:
            self._read += len(data)
            first = (events.feed(data) + (events.finish() if last else []))[:1]
            if first or self._read > _ENDPOINT_BYTES:
                self._events = None  # only the first event can be the endpoint
            lines = fields(first[0], first=True) if first else []
            if ("event", "endpoint") in lines:
                await self._bind(announced("\n".join(v for n, v in lines if n == "data")))
        return data, last

    async def body(self) -> bytes:
        return await self._response.body()

    def proceed(self) -> Out:
        return self._response.proceed()

    def keep_body(self) -> Out:
        return self._response.keep_body()

    def replace_body(self, body: bytes) -> Out:
        return self._response.replace_body(body)

    def pass_unread(self) -> Out:
        return self._response.pass_unread()

    def stream_through(self) -> Out:
        return self._response.stream_through()

    def send_headers(self, length: int | None) -> Out:
        return self._response.send_headers(length)

    def send(self, data: bytes, last: bool) -> Iterable[Out]:
        return self._response.send(data, last)

    def refuse(self, answer: Any) -> Out:
        return self._response.refuse(answer)

    def more_time(self, seconds: int) -> Out:
        return self._response.more_time(seconds)


def _target(exchange: Exchange) -> str:
    assert exchange.target is not None
    return exchange.target.name


def _now_us() -> int:
    return int(time.time() * 1_000_000)
