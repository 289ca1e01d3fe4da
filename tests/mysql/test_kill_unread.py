"""A KILL QUERY that comes while its session's command is not yet on the server: its
bytes unread, or the command being decided. It applies to that command, as the server
would have applied it (extproc/mysql/killing.py, extproc/exchange/cancels.py): MariaDB
drops a KILL QUERY that reaches an idle thread, and the command sent next runs whole,
so the front must neither send it then nor drop it as if the session were idle.

Each window is held open, never raced: the front's reading of the client is paused
(asyncio's flow control, what a session's full stream does) until the KILL has reached
the session it names; a strict target's record, which the decision waits on, is held
until the KILL is done. Real MariaDB (127.0.0.1:3306), a real front in this process,
real PyMySQL clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from extproc.config import MysqlFront
from extproc.exchange.cancels import in_socket
from extproc.mysql.front import Front
from extproc.mysql.session import Session
from extproc.quickstart import stack
from extproc.recording import Evidence
from extproc.store.aio import open_store
from extproc.store.session_keys import SessionKeys
from tests.approvals.test_auth import verifier
from tests.postgres.test_cancel_unread import PERMISSIVE, paused
from tests.support import tokens
from tests.support.fakes import MemoryRecorder
from tests.support.mysql_shop import as_root
from tests.support.waiting import until
from tests.support.wire_session import gateway

TOKEN = tokens.token("agent", ["agents"])
# Long enough that a statement run whole is told from one interrupted.
SLEEP = "SELECT SLEEP(5)"
INTERRUPTED = 1317  # ER_QUERY_INTERRUPTED


class _Front(Front):
    """The front, keeping each session by its connection id."""

    sessions: dict[int, Session]

    async def _relay(self, session: Session) -> None:
        self.sessions[session.connection_id] = session
        await super()._relay(session)


class HeldRecorder(MemoryRecorder):
    """Once `holding`, holds the strict record of a statement that sleeps until `release`
    is set: its decision waits on that record, so the statement is being decided
    meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.reached, self.release = asyncio.Event(), asyncio.Event()

    async def commit(self, evidence: Evidence, who: str | None = None) -> None:
        if self.holding and "SLEEP(" in body(evidence):
            self.reached.set()
            await self.release.wait()
        await super().commit(evidence, who)


@dataclass
class Gateway:
    front: _Front
    recorder: HeldRecorder
    port: int

    async def connect(self) -> pymysql.Connection[pymysql.cursors.Cursor]:
        return await asyncio.to_thread(
            pymysql.connect, host="127.0.0.1", port=self.port, user="agent",
            password=TOKEN, database="shop", connect_timeout=10, read_timeout=30)

    def session(self, connection: pymysql.Connection[pymysql.cursors.Cursor]) -> Session:
        return self.front.sessions[connection.thread_id()]


@pytest.fixture
async def my_gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    """A MySQL front in this process before a throwaway database, reached as root (no
    password: the test pipeline's credentials give none); every record strict."""
    gc.collect()
    database = f"tollgate_kill_{secrets.token_hex(4)}"
    as_root(f"CREATE DATABASE {database}")
    try:
        target = {"name": "shop", "protocol": "mysql", "match": {"database": "shop"},
                  "record": "strict",
                  "mysql": {"upstream": "127.0.0.1:3306", "user": "root",
                            "database": database, "tls": "disable",
                            "plaintext_token": True}}
        pipeline, found, _, _ = gateway(target, PERMISSIVE)
        recorder = pipeline.recorder = HeldRecorder()
        store = await open_store(f"sqlite:///{tmp_path}/store.db")
        port = stack.free_port()
        front = _Front(MysqlFront(listen=f"127.0.0.1:{port}"), 0, pipeline,
                       verifier(tmp_path), [found], None, lambda path: path,
                       SessionKeys(store, "mysql"))
        front.sessions = {}
        await front.start()
        try:
            yield Gateway(front, recorder, port)
        finally:
            recorder.release.set()
            await front.stop(1.0)
            await store.close()
            del front, pipeline
            gc.collect()
    finally:
        as_root(f"DROP DATABASE IF EXISTS {database}")


async def query(connection: pymysql.Connection[pymysql.cursors.Cursor],
                sql: str) -> object:
    def run() -> object:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    return await asyncio.to_thread(run)


async def closed(gateway: Gateway, running: list[asyncio.Future[object]],
                 *connections: pymysql.Connection[pymysql.cursors.Cursor]) -> None:
    """The statements still running let end, then each connection closed, off the loop
    (the front answers on it)."""
    gateway.recorder.release.set()
    await asyncio.gather(*running, return_exceptions=True)
    for connection in connections:
        await asyncio.to_thread(connection.close)


def body(evidence: Evidence) -> str:
    """The statement an evidence records."""
    return str(evidence.request.get("body")) if evidence.request else ""


def kill_records(recorder: MemoryRecorder) -> list[Evidence]:
    return [e for e in recorder.submitted
            if body(e).startswith("KILL QUERY")]


async def interrupted(statement: Awaitable[object]) -> None:
    """The statement fails as the server's KILL QUERY makes it fail."""
    with pytest.raises(pymysql.err.OperationalError) as failed:
        await statement
    assert failed.value.args[0] == INTERRUPTED, failed.value.args


@contextlib.asynccontextmanager
async def reached(session: Session, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[
        Callable[[], bool]]:
    """Inside: whether a KILL has reached `session` (its count of the client's bytes
    taken then, before anything else of the loop ran)."""
    came: list[bool] = []
    killed = session.killed

    async def counted(query: bool, by: str) -> str:
        came.append(query)
        return await killed(query, by)

    monkeypatch.setattr(session, "killed", counted)
    yield lambda: bool(came)


async def test_a_kill_for_a_statement_not_yet_read_interrupts_it(
        my_gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statement sent, then the KILL while its bytes wait in the front's socket: the
    statement is interrupted (ERR 1317) and the session goes on; the KILL's record says
    the statement it came for took it."""
    victim, killer = await my_gateway.connect(), await my_gateway.connect()
    running: list[asyncio.Future[object]] = []
    try:
        session = my_gateway.session(victim)
        async with reached(session, monkeypatch) as came, paused(session.wire.client):
            statement = asyncio.ensure_future(query(victim, SLEEP))
            running.append(statement)
            await until(lambda: in_socket(session.wire.client), "the statement unread")
            kill = asyncio.ensure_future(query(killer, f"KILL QUERY {victim.thread_id()}"))
            running.append(kill)
            await until(came, "the KILL at the session")
        await interrupted(statement)
        await kill  # answered OK
        assert await query(victim, "SELECT 7") == ((7,),)
    finally:
        await closed(my_gateway, running, victim, killer)
    [record] = await until(lambda: kill_records(my_gateway.recorder), "the KILL's record")
    assert "KILL QUERY taken" in str(record.outcome), record.outcome


async def test_a_kill_for_a_statement_being_decided_interrupts_it(
        my_gateway: Gateway) -> None:
    """The KILL while the statement is decided (its strict record held): the statement
    is refused as interrupted, never sent to the server's thread, which the KILL would
    have found idle."""
    victim, killer = await my_gateway.connect(), await my_gateway.connect()
    recorder = my_gateway.recorder
    running: list[asyncio.Future[object]] = []
    recorder.holding = True
    try:
        statement = asyncio.ensure_future(query(victim, SLEEP))
        running.append(statement)
        await recorder.reached.wait()
        await query(killer, f"KILL QUERY {victim.thread_id()}")  # answered OK
        recorder.release.set()
        await interrupted(statement)
        assert await query(victim, "SELECT 8") == ((8,),)
    finally:
        await closed(my_gateway, running, victim, killer)
    [record] = await until(lambda: kill_records(recorder), "the KILL's record")
    assert "KILL QUERY taken" in str(record.outcome), record.outcome
    [refused] = [e for e in recorder.submitted
                 if body(e) == SLEEP]
    assert refused.outcome.get("tollgate.refusal") == "interrupted", refused.outcome
