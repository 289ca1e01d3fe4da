"""The live sessions of the request fronts (HTTP, LLM, MCP, egress, and Kubernetes API
requests): no connection marks where such a session begins and ends, so one is what its
exchanges name.

    the agent's x-session-id header     ─► that session (as the record groups it)
    else its MCP session (Mcp-Session-Id) ─► that session
    else (HTTP, LLM, egress) its token's id (jti), else its subject
                                          ─► "token:JTI" / "identity:SUB"

A session opens in this process with its first exchange here, counts every exchange,
and closes once none is in flight and none came for `idle_seconds` (the record's
session gap). The same session may be open in several processes at once (Envoy spreads
requests): an end therefore travels as an id refused everywhere (live_store.py's
`ended_sessions`), not as one process's duty. An ended session's exchanges in flight
stop (`until_ended`: a held request, a streamed answer, an SSE stream), and each later
one is refused `session_ended`, on every replica, for as long as the store keeps the
end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TypeVar

from extproc.codecs.refusal import Refused
from extproc.exchange.live import LiveSession, LiveSessions
from extproc.exchange.reads import Ended, read_next, stopped
from extproc.exchange.state import Exchange

_T = TypeVar("_T")
# The list names a target's protocol as the operator knows the front.
FRONTS = {"http": "http", "llm": "llm", "mcp": "mcp", "egress": "egress",
          "k8s": "kubernetes"}
_NAMED_ONLY = frozenset({"mcp", "k8s"})  # listed only when the exchange names its session
_SWEEP_SECONDS = 5.0
_ID_CHARS = 128  # as much of a session id as the record keeps


def session_key(exchange: Exchange) -> str | None:
    """The live session an exchange belongs to (None: it names none, and is not grouped
    by its token: it has no verified identity, or its target's sessions are others: an
    MCP request before its session (initialize), a Kubernetes API request beside its
    streams, which the stream front lists)."""
    headers = exchange.evidence.headers
    if named := headers.get("x-session-id", "").strip():
        return named[:_ID_CHARS]
    if named := headers.get("mcp-session-id", "").strip():
        return named[:_ID_CHARS]
    identity, target = exchange.identity, exchange.target
    if (identity is None or not identity["authenticated"]
            or (target is not None and target.protocol in _NAMED_ONLY)):
        return None
    if jti := identity["jti"]:
        return f"token:{jti}"[:_ID_CHARS]
    return f"identity:{identity['sub']}"[:_ID_CHARS]


class RequestSessions:
    """This process's open sessions of the request fronts, in the process's registry."""

    def __init__(self, live: LiveSessions, idle_seconds: float) -> None:
        self._live, self._idle = live, idle_seconds
        self._in_flight: dict[str, int] = {}
        self._watches: dict[str, asyncio.Future[None]] = {}

    def join(self, exchange: Exchange, front: str) -> LiveSession | None:
        """The exchange's session, opened here if it is not yet, its exchange counted
        into it and in flight until `leave`; None: nothing to leave (the exchange names
        no session, or a connection front's)."""
        key = session_key(exchange)
        if key is None:
            return None
        session = self._live.open_sessions.get(key)
        if session is not None and session.front not in _REQUEST_FRONTS:
            exchange.live = session  # a connection front's id: refused when it ends
            return None
        if session is None:
            target = exchange.target
            session = self._live.open(key, front, exchange.who,
                                      target.name if target is not None else None)
            watch = asyncio.ensure_future(self._close_when_ended(session))
            self._watches[key] = watch
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        exchange.live = session
        return session

    def leave(self, session: LiveSession) -> None:
        """One of its exchanges ended; an ended session with none left closes."""
        key = session.session_id
        left = self._in_flight.get(key, 1) - 1
        if left > 0:
            self._in_flight[key] = left
            return
        self._in_flight.pop(key, None)
        if session.ended.is_set():
            self._live.close(session)
            if (watch := self._watches.pop(key, None)) is not None:
                watch.cancel()

    def sweep(self) -> None:
        """Close the sessions idle past the gap, and the ended ones with nothing in
        flight (their rows go, the API sees the end done)."""
        idle_before = int((time.time() - self._idle) * 1_000_000)
        for key, session in list(self._live.open_sessions.items()):
            if session.front not in _REQUEST_FRONTS or self._in_flight.get(key):
                continue
            if session.ended.is_set() or session.active_us < idle_before:
                self._live.close(session)
                if (watch := self._watches.pop(key, None)) is not None:
                    watch.cancel()

    async def run(self, every: float = _SWEEP_SECONDS) -> None:
        """Sweep every `every` seconds."""
        while True:
            await asyncio.sleep(every)
            self.sweep()

    async def _close_when_ended(self, session: LiveSession) -> None:
        """An ended session with nothing in flight closes at once (its row goes, and
        the API sees the end done); one in flight closes as its last exchange ends."""
        await session.ended.wait()
        if not self._in_flight.get(session.session_id):
            self._live.close(session)


_REQUEST_FRONTS = frozenset(FRONTS.values())


async def until_ended(answers: AsyncGenerator[_T, None], session: LiveSession | None
                      ) -> AsyncGenerator[_T, None]:
    """`answers` as they come, until the session is ended: then they stop (what was
    waiting is cancelled: a hold, the upstream's next chunk) and `session_ended` is
    raised, for the front to close the stream with."""
    if session is None:
        async with aclosing(answers):  # closed first, whatever closes this
            async for answer in answers:
                yield answer
        return
    ended = asyncio.ensure_future(session.ended.wait())
    following: asyncio.Task[_T | Ended] | None = None
    try:
        while True:
            following = read_next(answers)
            await asyncio.wait({following, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                raise Refused(403, "session_ended", session.why())
            read = following.result()
            if isinstance(read, Ended):
                return
            yield read
    finally:
        ended.cancel()
        # The next answer still being read (the session ended, or this stream was
        # cancelled: the client or Envoy gave up) stops first, and what it ended with is
        # taken (reads.py): the answers' generator is closed next.
        if following is not None:
            await stopped(following)
        await answers.aclose()
