"""The request fronts' live sessions (exchange/live_requests.py): which session an
exchange names; a session open while its exchanges are in flight or recent, closed
once ended with none in flight; an end asked through one process refused by another
(the store's ended_sessions, SQLite and PostgreSQL) for as long as it is kept; and an
answer in flight stopped by an end."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

from extproc.codecs.refusal import Refused
from extproc.config import Match, Target
from extproc.exchange.live import LiveSessions, now_us
from extproc.exchange.live_requests import RequestSessions, session_key, until_ended
from extproc.exchange.live_store import LiveStore, LiveSync
from extproc.exchange.state import Exchange
from extproc.store.aio import AsyncStore
from tests.exchange.test_live_store import beat

WEB = Target(name="web", match=Match(route="web"), protocol="http")
TOOLS = Target(name="tools", match=Match(route="tools"), protocol="mcp")
CLUSTER = Target(name="cluster", match=Match(route="k8s"), protocol="k8s")


def exchange(headers: dict[str, str] | None = None, sub: str | None = "ada",
             jti: str | None = "j-1", target: Target = WEB) -> Exchange:
    """What session_key and RequestSessions read of an exchange."""
    identity = None if sub is None else {"authenticated": True, "sub": sub, "jti": jti}
    return cast(Exchange, SimpleNamespace(
        evidence=SimpleNamespace(headers=headers or {}), identity=identity, target=target,
        who=sub or "anonymous", live=None))


def said(refused: Refused | None) -> tuple[int, str, str] | None:
    return None if refused is None else (refused.status, refused.error, refused.message)


def test_the_session_an_exchange_names() -> None:
    assert session_key(exchange({"x-session-id": " run-1 ", "mcp-session-id": "m"})) == "run-1"
    assert session_key(exchange({"mcp-session-id": "m-7"}, target=TOOLS)) == "m-7"
    assert session_key(exchange()) == "token:j-1"
    assert session_key(exchange(jti=None)) == "identity:ada"
    assert session_key(exchange({"x-session-id": "x" * 500})) == "x" * 128
    # Nobody to group by; an MCP request before its session; a Kubernetes API request.
    assert session_key(exchange(sub=None)) is None
    assert session_key(exchange(target=TOOLS)) is None
    assert session_key(exchange(target=CLUSTER)) is None
    assert session_key(exchange({"x-session-id": "k"}, target=CLUSTER)) == "k"


async def test_a_session_lives_while_in_flight_and_closes_once_ended() -> None:
    live = LiveSessions()
    sessions = RequestSessions(live, idle_seconds=3600)
    first, second = exchange({"x-session-id": "run-1"}), exchange({"x-session-id": "run-1"})
    one = sessions.join(first, "http")
    two = sessions.join(second, "http")
    assert one is two is live.open_sessions["run-1"] and first.live is one
    assert (one.front, one.identity, one.target) == ("http", "ada", "web")
    live.end("run-1", "enough", "sam")
    await asyncio.sleep(0)  # the watcher runs: two exchanges still in flight
    assert "run-1" in live.open_sessions
    assert said(live.refusal("ada", one)) == (
        403, "session_ended", "this session was ended by sam: enough")
    sessions.leave(one)
    assert "run-1" in live.open_sessions
    sessions.leave(two)
    assert "run-1" not in live.open_sessions and live.closed == {"run-1"}
    # Back on this process: ended as it opens (it is remembered here at once).
    again = sessions.join(exchange({"x-session-id": "run-1"}), "http")
    assert again is not None and again.ended.is_set()


async def test_an_idle_session_closes_at_once_when_ended_and_at_the_gap_when_not() -> None:
    live = LiveSessions()
    sessions = RequestSessions(live, idle_seconds=3600)
    idle = sessions.join(exchange({"x-session-id": "idle"}), "http")
    busy = sessions.join(exchange({"x-session-id": "busy"}), "llm")
    assert idle is not None and busy is not None
    sessions.leave(idle)
    live.end("idle", "stop", "sam")
    await asyncio.sleep(0)
    assert set(live.open_sessions) == {"busy"}
    sessions.sweep()
    assert set(live.open_sessions) == {"busy"}  # in flight, and recent
    sessions.leave(busy)
    RequestSessions(live, idle_seconds=3600).sweep()
    assert set(live.open_sessions) == {"busy"}
    busy.active_us = now_us() - 3601 * 1_000_000
    sessions.sweep()
    assert live.open_sessions == {}


async def test_a_connection_fronts_id_is_not_taken_over() -> None:
    live = LiveSessions()
    held = live.open("pg-1", "postgres", "ada", "shop")
    named = exchange({"x-session-id": "pg-1"})
    assert RequestSessions(live, 60).join(named, "http") is None
    assert named.live is held  # its end refuses the request too
    assert held.front == "postgres" and live.open_sessions["pg-1"] is held


async def test_an_end_asked_through_one_process_is_refused_by_another(
        store: AsyncStore) -> None:
    here, there = LiveSessions(), LiveSessions()
    here_sync = LiveSync(LiveStore(store, 60), here, "replica-a")
    there_sync = LiveSync(LiveStore(store, 60), there, "replica-b")
    await beat(store, "replica-a", now_us())
    held = RequestSessions(here, 60).join(exchange({"x-session-id": "run-9"}), "http")
    assert held is not None
    await here_sync.write()
    assert await LiveStore(store, 60).ask_end("run-9", "exfiltration", "sam") is not None
    # The other process never held it: it refuses it from its next poll on.
    await there_sync.poll()
    there_sessions = RequestSessions(there, 60)
    later = there_sessions.join(exchange({"x-session-id": "run-9"}), "http")
    assert later is not None
    assert said(there.refusal("ada", later)) == (
        403, "session_ended", "this session was ended by sam: exfiltration")
    await here_sync.poll()
    assert held.ended.is_set()
    # Kept no longer than its store keeps it.
    assert await LiveStore(store, 60).ended() == [("run-9", "exfiltration", "sam")]
    await store.execute("UPDATE ended_sessions SET until_us = ?", (now_us() - 1,))
    await LiveStore(store, 60).prune()
    assert await LiveStore(store, 60).ended() == []
    there_sessions.leave(later)  # refused, it closes
    await there_sync.poll()
    anew = there_sessions.join(exchange({"x-session-id": "run-9"}), "http")
    assert anew is not None and not anew.ended.is_set()


async def test_an_answer_in_flight_stops_when_its_session_ends() -> None:
    live = LiveSessions()
    session = live.open("s", "mcp", "ada", "tools")
    closed = asyncio.Event()

    async def answers() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.Event().wait()  # the upstream's next chunk, never coming
            yield 2
        finally:
            closed.set()

    seen: list[Any] = []

    async def read() -> None:
        async for answer in until_ended(answers(), session):
            seen.append(answer)
            session.end("enough", "sam")

    with pytest.raises(Refused) as refused:
        await asyncio.wait_for(read(), 5)
    assert (refused.value.error, refused.value.message) == (
        "session_ended", "this session was ended by sam: enough")
    assert seen == [1] and closed.is_set()
    # No session: the answers pass as they are.
    assert [a async for a in until_ended(_count(3), None)] == [0, 1, 2]
    assert [a async for a in until_ended(_count(2), live.open("t", "http", "bo", None))] \
        == [0, 1]


async def test_a_stream_cancelled_while_it_waits_closes_what_it_read_cleanly() -> None:
    """Envoy cancels a request whose client left while its next answer is awaited: the
    answers' generator is stopped, then closed, with no error (closing it while its
    next answer was still being read raised 'aclose(): … already running')."""
    session = LiveSessions().open("s", "mcp", "ada", "tools")
    waiting, closed = asyncio.Event(), asyncio.Event()

    async def answers() -> AsyncIterator[int]:
        try:
            yield 1
            waiting.set()
            await asyncio.Event().wait()
            yield 2
        finally:
            closed.set()

    async def read() -> list[int]:
        return [answer async for answer in until_ended(answers(), session)]

    reading = asyncio.ensure_future(read())
    await asyncio.wait_for(waiting.wait(), 5)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert closed.is_set()


async def test_a_stream_cancelled_as_its_answers_end_leaves_no_error_to_log() -> None:
    """The usual end of a headers-only exchange: its answers end (their last read done)
    as Envoy closes the stream, which cancels the front while it waits. That read's end
    is taken: left unread, each such exchange logged 'Task exception was never
    retrieved' with a traceback (a fifth of the HTTP front's CPU, profiled)."""
    loop = asyncio.get_running_loop()
    logged: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: logged.append(context))
    try:
        session = LiveSessions().open("s", "http", "ada", "web")
        stream = until_ended(_count(1), session)
        assert await anext(stream) == 0
        reading = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)  # it asks the answers for the next: a task of its own
        await asyncio.sleep(0)  # which ends (there are no more) before it is told
        assert not reading.done()
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        await stream.aclose()
        del stream, reading
        gc.collect()
        await asyncio.sleep(0)  # what the collection found is told on the loop's turn
    finally:
        loop.set_exception_handler(None)
    assert logged == []


async def _count(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i
