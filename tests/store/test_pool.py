"""The event loop's PostgreSQL connections (extproc/store/pool.py): made by the reads
that need them, so that a store back from a restart is used by the next read."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from extproc.store.pool import Pool


async def _backend(pool: Pool) -> int:
    async with pool.connection() as connection:
        return int((await (await connection.execute("SELECT pg_backend_pid()")).fetchall())[0][0])


async def test_connections_are_kept_and_a_broken_one_drops_every_idle_one(pg_url: str) -> None:
    pool = Pool(pg_url, size=3, timeout=5)
    try:
        first = await _backend(pool)
        assert await _backend(pool) == first  # kept between reads
        async with pool.connection(), pool.connection(), pool.connection():
            pass  # three idle now
        # What a restart does to every connection of the pool.
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        with pytest.raises(psycopg.OperationalError):
            await _backend(pool)
        # One failed read, not one per broken connection: the next connects afresh.
        assert await _backend(pool) != first
    finally:
        await pool.close()


async def test_a_read_cancelled_mid_statement_leaves_no_busy_connection(pg_url: str) -> None:
    pool = Pool(pg_url, size=1, timeout=5)
    try:
        async def slow() -> None:
            async with pool.connection() as connection:
                await connection.execute("SELECT pg_sleep(5)")

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(slow(), 0.2)
        assert await asyncio.wait_for(_backend(pool), 2) > 0
    finally:
        await pool.close()


async def test_no_connection_free_within_the_timeout_fails_the_read(pg_url: str) -> None:
    pool = Pool(pg_url, size=1, timeout=0.2)
    try:
        async with pool.connection():
            with pytest.raises(psycopg.OperationalError, match="no store connection free"):
                await _backend(pool)
    finally:
        await pool.close()
