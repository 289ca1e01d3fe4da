"""A few PostgreSQL connections for the event loop, each made by the read that needs it.

psycopg_pool's pool, used here before, reconnects in the background, backing off from
1 s and doubling: after a 0.2 s store restart its clients got no connection for about
another second, past the 0.75 s a read rides a blip out for (retry.py), and the soak
through faults (bench/soak_faults.py) saw reads refused with 503; after a longer outage
it could wait about as long again before trying. Here a read that finds no idle
connection opens one itself, at once, so the first read after the store is back gets
in; how often reads try while the store is out is retry.py's to say. A connection found
broken drops every idle one with it (a restart broke them all), so a retry connects
afresh rather than meeting the next broken one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

Connection = psycopg.AsyncConnection[Any]


class Pool:
    def __init__(self, url: str, size: int, timeout: float) -> None:
        """At most `size` connections (autocommit); a read waits at most `timeout` for
        one, to be free or to be made."""
        self._url, self._timeout = url, timeout
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection for the block; psycopg.OperationalError when none is had in time,
        or the pool is closed."""
        if self._closed:
            raise psycopg.OperationalError("the store's connections are closed")
        try:
            await asyncio.wait_for(self._slots.acquire(), self._timeout)
        except TimeoutError:
            raise psycopg.OperationalError(
                f"no store connection free within {self._timeout:g}s") from None
        try:
            connection = self._idle.pop() if self._idle else await self._connect()
            try:
                yield connection
            finally:
                await self._put_back(connection)
        finally:
            self._slots.release()

    async def _connect(self) -> Connection:
        try:
            return await asyncio.wait_for(
                psycopg.AsyncConnection.connect(self._url, autocommit=True), self._timeout)
        except TimeoutError:
            raise psycopg.OperationalError(
                f"no store connection made within {self._timeout:g}s") from None

    async def _put_back(self, connection: Connection) -> None:
        """Idle again, or closed: when broken (with every idle one), when the pool is
        closed, or when a block left it mid-statement or in a transaction (cancelled)."""
        if connection.broken:
            broken, self._idle = [connection, *self._idle], []
        elif self._closed or connection.info.transaction_status != TransactionStatus.IDLE:
            broken = [connection]
        else:
            self._idle.append(connection)
            return
        for each in broken:
            await each.close()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()
