"""What one identity's database sessions may take from everyone else, end to end: how
many it may hold open on a target (max_sessions_per_identity), and how long one may sit
idle inside a transaction (idle_in_transaction_seconds) before the server ends it.

The machine's PostgreSQL (a throwaway database) and MariaDB (tests/support/mysql_shop.py),
each through a real Envoy and its front, with the default pack.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql
import pytest

from extproc.quickstart import stack
from tests.support import tokens
from tests.support.databases import PG_ADMIN, throwaway_database
from tests.support.gateway import Gateway, module_gateway
from tests.support.mysql_shop import Account, as_root, shop_account, unverified_tls

pytestmark = [pytest.mark.e2e]

AGENT = tokens.token("svc-sessions-agent", ["agents"])
OTHER = tokens.token("svc-sessions-other", ["agents"])
MOST = 3
IDLE = 1  # second: the idle transaction's test waits for it


@pytest.fixture(scope="module")
def maria() -> Iterator[Account]:
    with shop_account("tollgate_sessions") as account:
        yield account


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       maria: Account) -> Iterator[Gateway]:
    limits = {"max_sessions_per_identity": MOST, "idle_in_transaction_seconds": IDLE}
    with throwaway_database("tollgate_sessions") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE customers (id int PRIMARY KEY, email text)")
        my = maria.target()
        targets = [
            {"name": "shop-pg", "protocol": "postgres", "match": {"database": "shop"},
             "environment": "test",
             "postgres": {"upstream": "127.0.0.1:5432", "user": "postgres",
                          "database": url.rsplit("/", 1)[1], "sslmode": "disable",
                          **limits}},
            {**my, "match": {"database": "shop-my"}, "mysql": {**my["mysql"], **limits}},
            # The same database, where only a transaction that locked rows is bounded
            # short (lock_idle_seconds), the others by the default minute.
            {"name": "shop-pg-locks", "protocol": "postgres",
             "match": {"database": "shop-locks"}, "environment": "test",
             "postgres": {"upstream": "127.0.0.1:5432", "user": "postgres",
                          "database": url.rsplit("/", 1)[1], "sslmode": "disable",
                          "lock_idle_seconds": IDLE}},
            {**my, "name": "shop-my-locks", "match": {"database": "shop-my-locks"},
             "mysql": {**my["mysql"], "lock_idle_seconds": IDLE}}]
        with module_gateway(tmp_path_factory, otlp, "sessions", targets=targets,
                            postgres={}, mysql={}, env=maria.env) as running:
            yield running


def pg(gw: Gateway, token: str = AGENT, database: str = "shop") -> psycopg.Connection[Any]:
    return psycopg.connect(f"postgresql://agent:{token}@127.0.0.1:{gw.ports.postgres}/"
                           f"{database}?sslmode=require", autocommit=True,
                           connect_timeout=10)


def maria_session(gw: Gateway, token: str = AGENT,
                  database: str = "shop-my") -> pymysql.Connection[Any]:
    assert gw.ports.mysql is not None
    return pymysql.connect(host="127.0.0.1", port=gw.ports.mysql, user="agent",
                           password=token, database=database, ssl=unverified_tls(),
                           connect_timeout=10)


def maria_sessions_end(maria: Account, what: str) -> None:
    """Wait until the gateway's account has no session on MariaDB: MariaDB closes an
    idle session without a word, so its process list is where it is seen gone."""
    stack.wait_until(lambda: as_root(
        "SELECT COUNT(*) FROM information_schema.processlist "
        f"WHERE USER = '{maria.user}'").strip() == "0", 10, what)


def backend_alive(pid: int) -> bool:
    """Whether the machine's PostgreSQL still runs the session of backend `pid`."""
    with psycopg.connect(PG_ADMIN) as admin:
        return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                             (pid,)).fetchone() == (1,)


def test_one_identity_holds_at_most_its_postgres_sessions(gw: Gateway) -> None:
    with contextlib.ExitStack() as open_ones:
        first = [open_ones.enter_context(pg(gw)) for _ in range(MOST)]
        with pytest.raises(psycopg.OperationalError,
                           match="max_sessions_per_identity") as refused:
            pg(gw)
        assert "53400" in str(refused.value) or refused.value.sqlstate in (None, "53400")
        with pg(gw, OTHER) as other:  # another identity is not locked out
            assert other.execute("SELECT 1").fetchone() == (1,)
        first[0].close()

        def reconnects() -> bool:
            with contextlib.suppress(psycopg.OperationalError), pg(gw):
                return True
            return False

        # The slot comes back once the front has seen the session end.
        stack.wait_until(reconnects, 10, "a session slot given back")


def test_one_identity_holds_at_most_its_mariadb_sessions(gw: Gateway) -> None:
    first = [maria_session(gw) for _ in range(MOST)]
    try:
        with pytest.raises(pymysql.err.OperationalError, match="max_sessions_per_identity"):
            maria_session(gw)
        with maria_session(gw, OTHER) as other, other.cursor() as cursor:
            cursor.execute("SELECT 1")
        first.pop().close()

        def reconnects() -> bool:
            with contextlib.suppress(pymysql.err.OperationalError), maria_session(gw):
                return True
            return False

        stack.wait_until(reconnects, 10, "a session slot given back")
    finally:
        for conn in first:
            conn.close()


def test_an_idle_postgres_transaction_is_ended_and_the_client_cannot_stop_it(
        gw: Gateway) -> None:
    conn = pg(gw)
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match="the gateway sets it for every session"):
            conn.execute("SET idle_in_transaction_session_timeout = 0")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT set_config('idle_in_transaction_session_timeout', '0', "
                         "false)")
        conn.execute("RESET ALL")  # back to the value the gateway gave it at startup
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone() == (
            f"{IDLE}s",)
        conn.execute("BEGIN")
        conn.execute("SELECT email FROM customers FOR UPDATE")
        (backend,) = conn.execute("SELECT pg_backend_pid()").fetchone()
        # Nothing is sent meanwhile (a statement would make it busy again): the server
        # ends the session, seen in its own activity view, the lock freed with it.
        stack.wait_until(lambda: not backend_alive(backend), 10,
                         "the idle transaction ended by the server")
    finally:
        conn.close()  # no COMMIT: the session is gone (a context's exit would send one)


def test_an_idle_mariadb_transaction_is_ended_and_the_client_cannot_stop_it(
        gw: Gateway, maria: Account) -> None:
    with maria_session(gw) as conn, conn.cursor() as cursor:
        with pytest.raises(pymysql.err.OperationalError,
                           match="the gateway sets it for every session"):
            cursor.execute("SET SESSION idle_transaction_timeout = 0")
        cursor.execute("SELECT @@idle_transaction_timeout")
        assert cursor.fetchone() == (IDLE,)
        cursor.execute("BEGIN")
        cursor.execute("SELECT email FROM customers FOR UPDATE")
        maria_sessions_end(maria, "the idle transaction ended by the server")
        with pytest.raises(pymysql.err.OperationalError):
            cursor.execute("SELECT 1")


@pytest.mark.parametrize("texts", [
    ("BEGIN", "SELECT email FROM customers FOR UPDATE"),
    ("BEGIN; SELECT email FROM customers FOR NO KEY UPDATE",),
    ("BEGIN", "INSERT INTO customers VALUES (7, 'x')"),
], ids=["for-update", "one-text", "write"])
def test_an_agents_transaction_that_locked_rows_is_ended_sooner(
        gw: Gateway, texts: tuple[str, ...]) -> None:
    """Once a statement may have locked rows, the transaction may idle lock_idle_seconds
    (the front's SET LOCAL), not the minute every other one may: a dba's UPDATE of those
    rows waits that long at most."""
    conn = pg(gw, database="shop-locks")
    try:
        conn.execute("BEGIN")
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone() == (
            "1min",)  # a transaction that locked nothing keeps the target's bound
        conn.execute("ROLLBACK")
        for text in texts:
            conn.execute(text)
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone() == (
            f"{IDLE}s",)
        (backend,) = conn.execute("SELECT pg_backend_pid()").fetchone()
        stack.wait_until(lambda: not backend_alive(backend), 10,
                         "the idle transaction that locked rows ended by the server")
    finally:
        conn.close()
    with pg(gw, database="shop-locks") as again:  # the next transaction starts unbounded
        again.execute("BEGIN")
        assert again.execute("SHOW idle_in_transaction_session_timeout").fetchone() == (
            "1min",)
        again.execute("ROLLBACK")


def test_an_agents_mariadb_transaction_that_wrote_is_ended_sooner(
        gw: Gateway, maria: Account) -> None:
    """MariaDB's idle_write_transaction_timeout, lock_idle_seconds, for an agent's session:
    a transaction that only read keeps the minute."""
    with maria_session(gw, database="shop-my-locks") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT @@idle_transaction_timeout, @@idle_write_transaction_timeout")
        assert cursor.fetchone() == (60, IDLE)
        with pytest.raises(pymysql.err.OperationalError,
                           match="the gateway sets it for every session"):
            cursor.execute("SET SESSION idle_write_transaction_timeout = 0")
        cursor.execute("BEGIN")
        cursor.execute("INSERT INTO customers (id, name) VALUES (7, 'x')")
        maria_sessions_end(maria, "the idle transaction that wrote ended by the server")
    assert as_root("SELECT COUNT(*) FROM customers WHERE id = 7",
                   maria.database).strip() == "0"  # rolled back


def test_an_agents_mariadb_transaction_that_locked_rows_by_reading_is_ended_sooner(
        gw: Gateway, maria: Account) -> None:
    """`SELECT ... FOR UPDATE` locks as a write does: for its transaction the front lowers
    idle_transaction_timeout to lock_idle_seconds, and sets it back once it has ended; a
    dba's UPDATE of the locked row waits that long at most, then runs."""
    with maria_session(gw, database="shop-my-locks") as conn, conn.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT name FROM customers WHERE id = 1")
        cursor.execute("SELECT @@idle_transaction_timeout")
        assert cursor.fetchone() == (60,)  # a plain read locks nothing
        cursor.execute("COMMIT")
        cursor.execute("BEGIN")
        cursor.execute("SELECT name FROM customers WHERE id = 1 FOR UPDATE")
        cursor.execute("SELECT @@idle_transaction_timeout")
        assert cursor.fetchone() == (IDLE,)
        cursor.execute("COMMIT")
        cursor.execute("SELECT @@idle_transaction_timeout")
        assert cursor.fetchone() == (60,)  # the next transaction starts unbounded
        cursor.execute("BEGIN")
        cursor.execute("SELECT name FROM customers WHERE id = 1 LOCK IN SHARE MODE")
        # Blocks on the agent's lock until the server ends the idle session.
        as_root("SET SESSION innodb_lock_wait_timeout = 20; "
                "UPDATE customers SET name = 'dba' WHERE id = 1", maria.database)
        maria_sessions_end(maria, "the idle transaction that locked rows ended by the server")
    assert as_root("SELECT name FROM customers WHERE id = 1", maria.database).strip() == "dba"
