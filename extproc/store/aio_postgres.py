"""The store from the event loop on PostgreSQL (aio.py's other backend): a few connections
(pool.py), and LISTEN/NOTIFY so that a change made through one replica wakes waiters on
another at once. Imported only for a PostgreSQL store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import psycopg

from extproc.store.connection import one_line, postgres_sql
from extproc.store.errors import StoreError
from extproc.store.pool import Pool

if TYPE_CHECKING:  # aio.py imports this module
    from extproc.store.aio import Execute, Rows

log = logging.getLogger("tollgate.store")


class AsyncPostgres:
    backend = "postgresql"

    def __init__(self, url: str, where: str, pool: Pool) -> None:
        self._url, self.where, self._pool = url, where, pool

    @classmethod
    async def open(cls, url: str, where: str) -> AsyncPostgres:
        """Connected once (that connection kept), or StoreError."""
        pool = Pool(url, size=8, timeout=5.0)
        try:
            async with pool.connection():
                pass
        except (psycopg.Error, OSError) as exc:
            await pool.close()
            raise StoreError(f"{where}: cannot connect: {one_line(exc)}") from None
        return cls(url, where, pool)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        try:
            async with self._pool.connection() as connection:
                cursor = await connection.execute(postgres_sql(sql), params)
                return await cursor.fetchall() if cursor.description else []
        except (psycopg.Error, OSError) as exc:  # no connection in time included
            raise StoreError(f"{self.where}: {one_line(exc)}") from None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Execute]:
        try:
            async with self._pool.connection() as connection, connection.transaction():
                async def execute(sql: str, params: Sequence[Any] = ()) -> Rows:
                    cursor = await connection.execute(postgres_sql(sql), params)
                    return await cursor.fetchall() if cursor.description else []

                yield execute
        except (psycopg.Error, OSError) as exc:
            raise StoreError(f"{self.where}: {one_line(exc)}") from None

    async def notify(self, execute: Execute, channel: str, payload: str) -> None:
        """Sent when the transaction commits: a waiter woken before the change is visible
        would read the old state."""
        await execute("SELECT pg_notify(?, ?)", (channel, payload))

    async def serialise(self, execute: Execute, key: str) -> None:
        """A transaction-scoped advisory lock on the key's hash (two keys sharing a hash
        only wait for each other)."""
        await execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))

    async def listen(self, channel: str) -> AsyncIterator[str]:
        """Payloads NOTIFYed on `channel`, from a connection of its own; reconnects after a
        failure (a change missed meanwhile is found by the waiters' own polling)."""
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                async with connection:
                    await connection.execute(f"LISTEN {channel}")
                    async for notice in connection.notifies():
                        yield notice.payload
            except (psycopg.Error, OSError) as exc:
                log.error("store: listening on %s failed (%s); again in 1 s", self.where,
                          one_line(exc))
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        await self._pool.close()

