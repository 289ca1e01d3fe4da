"""Who attends a live session (extproc/exchange/presence.py), in a real store (SQLite and
PostgreSQL): what one process's admin API stores, the process holding the session
reads; a moderated act waits for a moderator, goes on once one attends, and is refused
when none comes, its session ends or it has no session to attend. The pipeline and
engine are real; the record and approvals are tests/support/fakes.py's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from extproc import config
from extproc.codecs.refusal import Refused
from extproc.exchange.act import Act, Opener
from extproc.exchange.live import LiveSessions, now_us
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.presence import STALE_SECONDS, AttendanceStore, AttendanceSync
from extproc.masking import Masker
from extproc.policy.embedded import EmbeddedEngine
from extproc.store.aio import AsyncStore
from extproc.telemetry import Telemetry
from tests.support.fakes import MemoryHolds, MemoryRecorder, StaticCredentials

MODERATED = ('package tollgate\n'
             'decision := {"action": "allow", "rules": ["t.allow"], "moderated": true}')
AGENT = {"sub": "agent", "groups": ["agents"]}
WAIT = 10.0  # a deadline, never a pause


def pipeline(live: LiveSessions) -> Pipeline:
    cfg = config.parse({"targets": [{"name": "demo", "match": {"route": "demo"}}]})
    return Pipeline(cfg, EmbeddedEngine([("p.rego", MODERATED)], "data.tollgate.decision"),
                    Telemetry(cfg.telemetry), StaticCredentials(), Masker(b"k" * 32),
                    MemoryRecorder(), MemoryHolds(), live=live)


class Told:
    """What the front was asked to tell its client, and an event when it was."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.event = asyncio.Event()

    def __call__(self, text: str) -> None:
        self.texts.append(text)
        self.event.set()


def session_act(pipe: Pipeline, told: Told, session_id: str = "s-1") -> Act:
    """An act of a listed session (a statement of a database session, say)."""
    opener = Opener(pipe, "postgres", pipe.target_for("demo", None), AGENT, session_id,
                    "/shop")
    if session_id not in pipe.live.open_sessions:
        opener.listed("postgres")
    else:
        opener.live = pipe.live.open_sessions[session_id]
    opener.tell = told
    act = opener("QUERY")
    act.exchange.request = {"method": "QUERY", "path": "/shop", "query": {}, "headers": {},
                            "body": None}
    act.admit("route 'demo'")
    return act


async def judged(act: Act) -> Any:
    await act.read(0)
    return await act.judge()


async def test_attendance_stored_through_one_process_is_read_by_the_one_holding_it(
        store: AsyncStore) -> None:
    attendance = AttendanceStore(store)
    live = LiveSessions()
    sync = AttendanceSync(attendance, live)
    session = live.open("s-1", "ssh", "agent", "web-1")
    session.moderated = True
    viewer = await attendance.attend("s-1", "dana", "watch", False, "replica-a")
    await sync.poll()
    assert live.attendance.moderators("s-1") == []  # a viewer is no moderator
    moderator = await attendance.attend("s-1", "sam", "join", True, "replica-a")
    await sync.poll()
    assert live.attendance.moderators("s-1") == ["sam"]
    # A row nobody beats any more (its replica gone) is nobody's.
    await store.execute("UPDATE live_attendance SET seen_us = ? WHERE attendance_id = ?",
                        (now_us() - int(STALE_SECONDS * 2_000_000), moderator.attendance_id))
    await sync.poll()
    assert live.attendance.moderators("s-1") == []
    await attendance.beat(moderator.attendance_id)
    await sync.poll()
    assert live.attendance.moderators("s-1") == ["sam"]
    await attendance.leave(moderator.attendance_id)
    await attendance.leave(viewer.attendance_id)
    await sync.poll()
    assert live.attendance.moderators("s-1") == []
    assert await attendance.present("s-1") == []


async def test_a_peers_keys_reach_the_session_that_takes_them_once_in_order(
        store: AsyncStore) -> None:
    attendance = AttendanceStore(store)
    live = LiveSessions()
    sync = AttendanceSync(attendance, live)
    taken: list[tuple[str, bytes]] = []
    live.open("s-1", "ssh", "agent", "web-1").joined = \
        lambda typist, keys: taken.append((typist, keys))
    await attendance.type("s-1", "sam", b"ls\r")
    await attendance.type("s-1", "tom", b"pwd\r")
    await attendance.type("s-other", "sam", b"id\r")  # another replica's session
    await sync.poll()
    await sync.poll()
    assert taken == [("sam", b"ls\r"), ("tom", b"pwd\r")]


async def test_a_moderated_act_waits_telling_why_and_goes_on_once_a_moderator_attends(
        store: AsyncStore) -> None:
    attendance = AttendanceStore(store)
    live = LiveSessions()
    sync = AttendanceSync(attendance, live, poll_seconds=0.05)
    await sync.start()
    try:
        told = Told()
        act = session_act(pipeline(live), told)
        waiting = asyncio.ensure_future(judged(act))
        await asyncio.wait_for(told.event.wait(), WAIT)
        assert not waiting.done()
        assert "needs a moderator present" in told.texts[0]
        assert live.open_sessions["s-1"].holds == 1  # listed as waiting
        await attendance.attend("s-1", "sam", "watch", True, "replica-b")
        assert await asyncio.wait_for(waiting, WAIT) is None  # it goes on
        assert act.exchange.outcome["tollgate.moderators"] == "sam"
        assert live.open_sessions["s-1"].holds == 0
        # While the moderator stays, the next act goes on without a word.
        again = session_act(pipeline(live), told, "s-1")
        assert await asyncio.wait_for(judged(again), WAIT) is None
        assert len(told.texts) == 1
    finally:
        await sync.stop()


async def test_a_moderated_act_is_refused_when_nobody_comes_or_its_session_ends(
        store: AsyncStore) -> None:
    live = LiveSessions()
    sync = AttendanceSync(AttendanceStore(store), live)
    await sync.start()
    try:
        exchange = session_act(pipeline(live), Told(), "s-2").exchange
        with pytest.raises(Refused) as absent:
            await live.attendance.attended(exchange, wait_seconds=0.2)
        assert absent.value.error == "moderator_absent"
        waiting = asyncio.ensure_future(live.attendance.attended(exchange))
        live.end("s-2", "enough", "sam")
        with pytest.raises(Refused) as ended:
            await asyncio.wait_for(waiting, WAIT)
        assert ended.value.error == "session_ended"
        assert "ended by sam: enough" in str(ended.value)
    finally:
        await sync.stop()


async def test_a_moderated_act_outside_a_session_is_refused_and_a_login_goes_on() -> None:
    live = LiveSessions()
    pipe = pipeline(live)
    act = pipe.act("tollgate GET demo", {":method": "GET", ":path": "/"}, {},
                   pipe.target_for("demo", None), AGENT)
    act.exchange.request = {"method": "GET", "path": "/", "query": {}, "headers": {},
                            "body": None}
    act.admit("route 'demo'")
    with pytest.raises(Refused) as refused:  # the front answers it (Act.refusal)
        await judged(act)
    assert refused.value.error == "moderator_required"
    # A connection front's login, before its session is listed: its statements wait.
    opener = Opener(pipe, "postgres", pipe.target_for("demo", None), AGENT, "s-3", "/shop")
    login = opener("CONNECT")
    login.exchange.request = {"method": "CONNECT", "path": "/shop", "query": {},
                              "headers": {}, "body": None}
    login.admit("route 'demo'")
    assert await judged(login) is None
    # Any other act of a session not listed (a Kubernetes stream's line) is refused.
    line = opener("LINE")
    line.exchange.request = {"method": "LINE", "path": "/shop", "query": {},
                             "headers": {}, "body": None}
    line.admit("route 'demo'")
    with pytest.raises(Refused) as unlisted:
        await judged(line)
    assert unlisted.value.error == "moderator_required"
