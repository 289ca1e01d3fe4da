"""A client's cancel that comes while its statement's bytes are in the gateway's hands,
received but not yet read: it applies to that statement, as the database would apply
it (extproc/exchange/cancels.py), never dropped as if the session were idle.

asyncpg's own test_cancellation_03 met this under load through tollgate: the statement
sent, then 50 ms later the cancel, which the front took before it read the statement;
the statement ran, the transaction stayed good, and the test's next statement did not
fail as the cancelled one's transaction should have made it. Here the front's reading
of its client is paused (asyncio's flow control, what a session's full stream does), so
the bytes wait in the socket until the cancel has reached the front, every time: real
PostgreSQL, a real front in this process, a real asyncpg client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from extproc.config import PostgresFront
from extproc.exchange.cancels import SENT, TAKEN, in_socket
from extproc.postgres.front import Front
from extproc.quickstart import stack
from extproc.store.aio import open_store
from extproc.store.session_keys import SessionKeys
from tests.approvals.test_auth import verifier
from tests.support import tokens
from tests.support.databases import throwaway_database
from tests.support.fakes import MemoryRecorder
from tests.support.waiting import until
from tests.support.wire_session import gateway

# Everything allowed: what is tested is the cancel, not a policy.
PERMISSIVE = """package tollgate

import rego.v1

default decision := {"action": "allow", "reasons": [], "rules": []}
"""


class _Front(Front):
    """The front, keeping each connection's writer (its transport pauses the reading)."""

    writers: list[asyncio.StreamWriter]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    gone: asyncio.Event) -> None:
        self.writers.append(writer)
        await super().serve(reader, writer, gone)


@dataclass
class Gateway:
    front: _Front
    recorder: MemoryRecorder
    port: int
    connections: list[asyncpg.Connection] = field(default_factory=list)

    async def connect(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="agent", database="shop", ssl=False,
            password=tokens.token("agent", ["agents"]))
        self.connections.append(connection)
        return connection


@pytest.fixture
async def gateway_front(tmp_path: Path) -> AsyncIterator[Gateway]:
    """A PostgreSQL front in this process, before a throwaway database. regorus's engines
    are freed on the thread that made them: cycles are collected here, before and after,
    never by a collection the store's thread happens to run."""
    gc.collect()
    with throwaway_database() as url:
        target = {"name": "shop", "protocol": "postgres", "match": {"database": "shop"},
                  "postgres": {"upstream": "127.0.0.1:5432", "user": "postgres",
                               "database": url.rsplit("/", 1)[1], "sslmode": "disable",
                               "plaintext_token": True}}
        pipeline, found, _, recorder = gateway(target, PERMISSIVE)
        store = await open_store(f"sqlite:///{tmp_path}/store.db")
        port = stack.free_port()
        front = _Front(PostgresFront(listen=f"127.0.0.1:{port}"), 0, pipeline,
                       verifier(tmp_path), [found], None, lambda path: path,
                       SessionKeys(store, "postgres"))
        front.writers = []
        await front.start()
        running = Gateway(front, recorder, port)
        try:
            yield running
        finally:
            for connection in running.connections:
                connection.terminate()
            await front.stop(1.0)
            await store.close()
            del running, front, pipeline
            gc.collect()


@contextlib.asynccontextmanager
async def paused(writer: asyncio.StreamWriter) -> AsyncIterator[None]:
    """The front reads nothing of this client inside."""
    transport = writer.transport
    transport.pause_reading()
    try:
        yield
    finally:
        transport.resume_reading()


@pytest.mark.parametrize("prepared", [False, True], ids=["parse", "execute"])
async def test_a_cancel_for_a_statement_not_yet_read_applies_to_it(
        gateway_front: Gateway, prepared: bool) -> None:
    """test_cancellation_03's steps, the statement unread when the cancel comes: sent
    alone (`parse`: its Parse waits to be decided, then is refused as cancelled) or
    prepared before (`execute`: its Bind and Execute go, then the database's cancel);
    either way the transaction fails, as it would have on the database itself."""
    con = await gateway_front.connect()
    session = gateway_front.front.writers[-1]
    statement = await con.prepare("SELECT pg_sleep(20)") if prepared else None
    async with con.transaction():
        async with paused(session):
            task = asyncio.ensure_future(
                statement.fetch() if statement else con.fetch("SELECT pg_sleep(20)"))
            await until(lambda: in_socket(session),
                        "the statement in the front's socket")
            admitted = len(gateway_front.recorder.admitted)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(lambda: len(gateway_front.recorder.admitted) > admitted,
                        "the cancel at the front")
        with pytest.raises(asyncpg.InFailedSQLTransactionError):
            await con.fetch("SELECT generate_series(0, 100)")
    recorder = gateway_front.recorder
    [cancel] = await until(lambda: [e for e in recorder.submitted
                                    if e.headers[":method"] == "CANCEL"], "the cancel's record")
    assert cancel.outcome["tollgate.outcome"] == (SENT if prepared else TAKEN)
    if not prepared:
        [parse] = [e for e in recorder.submitted if e.headers[":method"] == "PARSE"
                   and e.outcome["db.query.text"] == "SELECT pg_sleep(?)"]
        assert parse.outcome["tollgate.refusal"] == "query_canceled"

