"""The store from the event loop: asynchronous, for what waits on it (approvals).

PostgreSQL through a few connections (pool.py), with LISTEN/NOTIFY so that
a change made through one replica wakes waiters on another at once; SQLite through one
connection used from worker threads (a single process owns a SQLite store, so waking
its own waiters is enough). Both speak the synchronous connection's dialect: `?`
placeholders, and StoreError for every backend error.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, Protocol

from extproc.store.connection import connect
from extproc.store.errors import StoreError

log = logging.getLogger("tollgate.store")

Rows = list[tuple[Any, ...]]


class Execute(Protocol):
    async def __call__(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...


class AsyncStore(Protocol):
    backend: str
    where: str

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...

    def transaction(self) -> Any:
        """`async with store.transaction() as execute:` — statements that commit together."""
        ...

    async def notify(self, execute: Execute, channel: str, payload: str) -> None: ...

    async def serialise(self, execute: Execute, key: str) -> None:
        """Within a transaction: wait until no other transaction holds `key`, and hold it
        until this one ends (a count then an insert, made exact across processes)."""
        ...

    def listen(self, channel: str) -> AsyncIterator[str]: ...

    async def close(self) -> None: ...


async def open_store(url: str) -> AsyncStore:
    """Open the store at `url` (tables brought up to date first) for the event loop."""
    # Migrations run on a synchronous connection, once, before anything else.
    connection = await asyncio.to_thread(connect, url)
    if connection.backend == "sqlite":
        reader = await asyncio.to_thread(connect, url, migrate=False)
        return _Sqlite(connection, reader)
    where = connection.where
    connection.close()
    # Only a PostgreSQL store imports psycopg (store/connection.py says why).
    from extproc.store.aio_postgres import AsyncPostgres

    return await AsyncPostgres.open(url, where)


class _Sqlite:
    """Two connections, each used from worker threads one statement at a time: one
    writes (transactions are serialised in the process, and BEGIN IMMEDIATE serialises
    them across processes, such as a `tollgate audit` run), the other reads. A write
    can wait out busy_timeout (5 s) for a lock another process holds (the record's
    writer frozen mid-commit); a read queued behind it on one connection waited as
    long, past Envoy's 2 s for a request's message, where WAL would have let it read
    at once."""

    backend = "sqlite"

    def __init__(self, connection: Any, reader: Any) -> None:
        self._connection, self._reader = connection, reader
        self.where = connection.where
        self._lock = asyncio.Lock()
        self._reading = asyncio.Lock()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        if _reads_only(sql):
            async with self._reading:
                return await asyncio.to_thread(self._reader.execute, sql, params)
        async with self._lock:
            return await asyncio.to_thread(self._connection.execute, sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Execute]:
        async with self._lock:
            raw = self._connection
            await asyncio.to_thread(raw.execute, "BEGIN IMMEDIATE")
            try:
                async def execute(sql: str, params: Sequence[Any] = ()) -> Rows:
                    return await asyncio.to_thread(raw.execute, sql, params)

                yield execute
            except BaseException:
                with suppress(StoreError, sqlite3.Error):
                    await asyncio.to_thread(raw.execute, "ROLLBACK")
                raise
            await asyncio.to_thread(raw.execute, "COMMIT")

    async def notify(self, execute: Execute, channel: str, payload: str) -> None:
        """Nothing to do here: other processes on the same file are told by
        approvals/wakeup.py (ApprovalStore sends its word after the commit)."""

    async def serialise(self, execute: Execute, key: str) -> None:
        """Nothing to do: BEGIN IMMEDIATE already serialises every write transaction."""

    async def listen(self, _channel: str) -> AsyncIterator[str]:
        """Nothing arrives here: other processes' decisions come by approvals/wakeup.py."""
        await asyncio.Event().wait()
        yield ""  # pragma: no cover  (never reached)

    async def close(self) -> None:
        self._connection.close()
        self._reader.close()


def _reads_only(sql: str) -> bool:
    """Whether a statement only reads (a SELECT: SQLite has no writing function a
    statement of tollgate's calls)."""
    return sql.lstrip()[:6].upper() == "SELECT"
