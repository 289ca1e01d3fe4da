"""The live counts on a PostgreSQL store (live.py's other backend). Imported only for a
PostgreSQL store: psycopg's import is not paid by a process on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import psycopg

from extproc.store import StoreError, connect
from extproc.store.connection import one_line, postgres_sql
from extproc.store.pool import Pool

Rows = list[tuple[Any, ...]]


class LivePostgres:
    """A small pool on the event loop (store/pool.py): a reading is one statement (its
    upsert of the token's values a CTE of it), so one round trip."""

    def __init__(self, url: str, timeout: float, seen_upsert: str) -> None:
        self._url = url
        # No connection within the live timeout: the store is as good as down.
        self._pool = Pool(url, size=4, timeout=timeout)
        self._seen_upsert = seen_upsert  # live.py's upsert of a token's values

    async def open(self) -> None:
        """Tables brought up to date; the first reading connects: a store down at the
        start makes the first readings unknown, not the start fail."""
        with contextlib.suppress(StoreError):
            (await asyncio.to_thread(connect, self._url)).close()

    async def read(self, select: str, params: Sequence[Any],
                   seen: list[tuple[str, str, int]]) -> Rows:
        if seen:
            rows = ", ".join(["(?, ?, ?)"] * len(seen))
            select = f"WITH seen_now AS ({self._seen_upsert.format(rows=rows)}) {select}"
            params = [*(v for row in seen for v in row), *params]
        try:
            async with self._pool.connection() as connection:
                cursor = await connection.execute(postgres_sql(select), params)
                return await cursor.fetchall()
        except (psycopg.Error, OSError) as exc:  # no connection in time included
            raise StoreError(f"PostgreSQL store: {one_line(exc)}") from None

    async def write(self, sql: str, rows: Sequence[Sequence[Any]]) -> Rows:
        try:
            async with self._pool.connection() as connection:
                if len(rows) == 1:
                    cursor = await connection.execute(postgres_sql(sql), rows[0])
                    return await cursor.fetchall() if cursor.description else []
                async with connection.transaction(), connection.cursor() as cursor:
                    await cursor.executemany(postgres_sql(sql), rows)
                return []
        except (psycopg.Error, OSError) as exc:
            raise StoreError(f"PostgreSQL store: {one_line(exc)}") from None

    async def close(self) -> None:
        await self._pool.close()
