"""PostgreSQL drivers work unchanged through the front: real clients, a real Envoy, the
machine's real PostgreSQL (127.0.0.1:5432), the default pack, as an agent.

asyncpg introspects every type it has no codec for (an array, an enum, a composite, a
domain) with its own statements, turning `jit` off first with set_config (an enum or a
composite it then asks for in binary, which the front cannot mask yet: a strict xfail),
and its pool
resets a connection it takes back (CLOSE ALL, UNLISTEN *, RESET ALL); psql's backslash
commands are catalog reads. All pass. A setting that changes what the policy saw
(search_path, role, a client encoding other than the session's) is refused with the
setting named and why, with the trace id, and the session goes on.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import psycopg
import pytest
import sqlalchemy

from extproc.quickstart import stack
from tests.e2e.test_postgres_e2e import AGENT, DATABASE, shop, url
from tests.support.databases import throwaway_database
from tests.support.gateway import Gateway, module_gateway, request_text

TYPES = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE address AS (street text, city text);
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TABLE things (id int PRIMARY KEY, tags text[], moods mood[], mood mood,
                     home address, n positive);
INSERT INTO things VALUES (1, '{a,b}', '{sad,ok}', 'happy', ROW('Main St', 'Paris'), 5);
"""


@contextmanager
def typed_database(name: str) -> Iterator[str]:
    """A throwaway database whose table holds an array, an enum, a composite and a domain."""
    with throwaway_database(name) as db:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(TYPES)
        yield db


@pytest.fixture(scope="module")
def typed_db() -> Iterator[str]:
    with typed_database("tollgate_drivers") as db:
        yield db


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       typed_db: str) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "postgres-drivers",
                        targets=[shop(typed_db)], postgres={}) as running:
        yield running


def _asyncpg_dsn(gw: Gateway) -> str:
    return f"postgresql://svc-pg-agent@127.0.0.1:{gw.ports.postgres}/{DATABASE}"


def asyncpg_fetchrow(gw: Gateway, query: str) -> asyncpg.Record:
    """`query`'s first row, read by asyncpg through the gateway as the agent."""
    async def run() -> asyncpg.Record:
        conn = await asyncpg.connect(_asyncpg_dsn(gw), password=AGENT, timeout=10)
        try:
            return await conn.fetchrow(query)
        finally:
            await conn.close()

    return asyncio.run(run())


def _asyncpg_row(gw: Gateway, columns: str) -> asyncpg.Record:
    return asyncpg_fetchrow(gw, f"SELECT {columns} FROM things")


def test_asyncpg_introspects_and_reads_an_array_and_a_domain(gw: Gateway) -> None:
    row = _asyncpg_row(gw, "tags, n, mood::text, home::text")
    assert row["tags"] == ["a", "b"] and row["n"] == 5
    assert (row["mood"], row["home"]) == ("happy", '("Main St",Paris)')


@pytest.mark.xfail(strict=True, raises=asyncpg.exceptions.InsufficientPrivilegeError,
                   reason="the front cannot read an enum or a composite in binary to mask it "
                          "(extproc/postgres), and asyncpg asks for them in binary")
def test_asyncpg_reads_an_enum_and_a_composite_in_binary(gw: Gateway) -> None:
    row = _asyncpg_row(gw, "moods, mood, home")
    assert row["moods"] == ["sad", "ok"] and row["mood"] == "happy"
    assert tuple(row["home"]) == ("Main St", "Paris")


def test_an_asyncpg_pool_takes_its_connections_back(gw: Gateway) -> None:
    """Releasing a connection sends the pool's reset (CLOSE ALL, UNLISTEN *, RESET ALL):
    refused, the pool would close the connection and the next acquire open another."""

    async def run() -> tuple[int, ...]:
        pool = await asyncpg.create_pool(_asyncpg_dsn(gw), password=AGENT, min_size=1,
                                         max_size=1, timeout=10)
        try:
            pids = []
            for _ in range(2):
                async with pool.acquire() as conn:
                    assert await conn.fetchval("SELECT tags FROM things") == ["a", "b"]
                    pids.append(await conn.fetchval("SELECT pg_backend_pid()"))
            return tuple(pids)
        finally:
            await pool.close()

    first, second = asyncio.run(run())
    assert first == second  # the same connection, reset and reused


@pytest.mark.parametrize("command", [r"\d", r"\dt", r"\d things", r"\d+ things", r"\df",
                                     r"\dn", r"\l", r"\dT", r"\dD"])
def test_psql_describes_through_the_front(gw: Gateway, command: str) -> None:
    psql = shutil.which("psql")
    assert psql, "tests/system-deps.sh installs postgresql-client"
    done = subprocess.run([psql, "-X", url(gw), "-c", command], capture_output=True,
                          text=True, timeout=30, check=False,
                          env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    assert done.returncode == 0, done.stderr
    assert "tollgate" not in done.stderr
    assert done.stdout.strip()


def test_sqlalchemy_reflects_the_schema_through_the_front(gw: Gateway) -> None:
    engine = sqlalchemy.create_engine(url(gw).replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            columns = [c["name"] for c in sqlalchemy.inspect(conn).get_columns("things")]
    finally:
        engine.dispose()
    assert columns == ["id", "tags", "moods", "mood", "home", "n"]


@pytest.mark.parametrize(("statement", "says"), [
    ("SET search_path = evil, public",
     "changing search_path is refused: table and function names would resolve to other "
     "schemas than the ones the policy read"),
    ("SELECT set_config('search_path', 'evil', false)", "changing search_path is refused"),
    ("SET LOCAL ROLE postgres",
     "changing role is refused: later statements would run as another role than the "
     "gateway's"),
    ("SET client_encoding = 'SJIS'",
     "changing client_encoding to 'SJIS' is not read by tollgate: a client-only encoding"),
], ids=["set-search-path", "set-config-search-path", "set-local-role", "client-encoding"])
def test_a_setting_that_changes_what_the_policy_saw_is_refused_by_name(
        gw: Gateway, statement: str, says: str) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute(statement)
        assert says in str(refused.value)
        assert "trace id" in (refused.value.diag.message_detail or "")
        # Nothing changed, and the session goes on.
        assert conn.execute("SHOW search_path").fetchone() == ('"$user", public',)
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)


def test_neutral_settings_pass_and_take_effect(gw: Gateway) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '5s'")
        conn.execute("SELECT set_config('jit', 'off', false)")
        conn.execute("SET client_encoding = 'UTF8'")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
        assert conn.execute("SHOW jit").fetchone() == ("off",)


def test_the_pid_a_client_holds_is_its_backends(gw: Gateway) -> None:
    """psycopg's backend_pid and asyncpg's server pid are the ones pg_backend_pid(),
    pg_stat_activity and NOTIFY's sender name: a client ends or recognises its own
    backend by it. Its Ctrl+C still goes through the front (the secret is tollgate's)."""
    with psycopg.connect(url(gw), autocommit=True) as conn:
        (backend,) = conn.execute("SELECT pg_backend_pid()").fetchone() or (None,)
        assert conn.info.backend_pid == backend
        conn.execute("LISTEN tollgate_pids")
        conn.execute("NOTIFY tollgate_pids")
        (notice,) = list(conn.notifies(timeout=10, stop_after=1))
        assert notice.pid == backend

    async def run() -> tuple[int, int]:
        conn = await asyncpg.connect(_asyncpg_dsn(gw), password=AGENT, timeout=10,
                                     ssl="require")
        try:
            return conn.get_server_pid(), await conn.fetchval("SELECT pg_backend_pid()")
        finally:
            await conn.close()

    held, server = asyncio.run(run())
    assert held == server


def test_a_search_path_asked_for_at_login_is_refused(gw: Gateway) -> None:
    """A search_path among the startup parameters (asyncpg's server_settings) would decide
    where names resolve before any statement is read: decided with the login as the SET
    it stands for, and refused to an agent as that SET is after."""
    async def run() -> None:
        await asyncpg.connect(_asyncpg_dsn(gw), password=AGENT, timeout=10, ssl="require",
                              server_settings={"search_path": "evil, public"})

    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError) as refused:
        asyncio.run(run())
    assert "changing search_path is refused" in str(refused.value)
    assert "sql.setting" in str(refused.value)


def test_a_harmless_setting_asked_for_at_login_is_the_sessions(gw: Gateway) -> None:
    """asyncpg's server_settings as its users pass them: each decided as its SET, passed to
    the database as a startup parameter (so RESET goes back to it), and the login's
    record says what was asked. `options` stays refused: it sets anything, in words only
    the server parses."""
    async def run() -> tuple[str, str]:
        conn = await asyncpg.connect(
            _asyncpg_dsn(gw), password=AGENT, timeout=10, ssl="require",
            server_settings={"client_min_messages": "warning", "lock_timeout": "2s"})
        try:
            await conn.execute("SET client_min_messages = 'error'")
            await conn.execute("RESET client_min_messages")
            return (await conn.fetchval("SHOW client_min_messages"),
                    await conn.fetchval("SHOW lock_timeout"))
        finally:
            await conn.close()

    assert asyncio.run(run()) == ("warning", "2s")
    asked = "SET client_min_messages TO 'warning'; SET lock_timeout TO '2s'"
    stack.wait_until(lambda: any(
        r["request"]["method"] == "CONNECT" and request_text(r) == asked
        for r in gw.records()), 10, "the login's record")

    async def login(settings: dict[str, str]) -> None:
        await asyncpg.connect(_asyncpg_dsn(gw), password=AGENT, timeout=10, ssl="require",
                              server_settings=settings)

    with pytest.raises(asyncpg.exceptions.FeatureNotSupportedError,
                       match="startup parameter options is not passed"):
        asyncio.run(login({"options": "-c role=postgres"}))
    # The gateway's own: an agent's statement timeout, which it may only lower.
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError,
                       match="statement_timeout"):
        asyncio.run(login({"statement_timeout": "0"}))
