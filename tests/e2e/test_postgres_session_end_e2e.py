"""A PostgreSQL session the database ends, end to end: psycopg through a real Envoy and
the front to the machine's PostgreSQL, by way of a relay the test can cut.

A backend ended by `pg_terminate_backend` (or a shutdown) sends its FATAL error (57P01)
and closes: the client gets that error through the gateway, as it would directly
(psycopg raises AdminShutdown), whether it waited for an answer or sat idle, and the
record says how the session ended. A connection cut without a word gets tollgate's own
"the database closed the connection" (08006).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import Held
from tests.e2e.test_postgres_e2e import customers_database, shop, upstream, url
from tests.support.gateway import Gateway, module_gateway

TERMINATED = "terminating connection due to administrator command"


class Relay:
    """A TCP relay from the gateway to the machine's PostgreSQL, which the test cuts
    without a word (as a network or a proxy in between may)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self._listener.accept()
            except OSError:
                return  # closed
            far = socket.create_connection(("127.0.0.1", 5432))
            with self._lock:
                self._open += (near, far)
            for source, sink in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Every relayed connection closed at both ends, nothing said."""
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def close(self) -> None:
        self._listener.close()
        self.cut()


@pytest.fixture(scope="module")
def upstream_db() -> Iterator[str]:
    with customers_database("tollgate_end", "CREATE TABLE scratch (id int)",
                            "INSERT INTO scratch VALUES (1)") as url_:
        yield url_


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    running = Relay()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, upstream_db: str,
       relay: Relay) -> Iterator[Gateway]:
    target = shop(upstream_db)
    target["postgres"]["upstream"] = f"127.0.0.1:{relay.port}"
    # The same database, its idle transactions ended by the server after a second.
    idle = {**target, "name": "idle", "match": {"database": "idle"},
            "postgres": {**target["postgres"], "idle_in_transaction_seconds": 1}}
    with module_gateway(tmp_path_factory, otlp, "session-end", targets=[target, idle],
                        postgres={}, settings={"approvals": {"max_hold_seconds": 1}}
                        ) as running:
        yield running


def session_of(gw: Gateway, conn: psycopg.Connection[Any], mark: str) -> str:
    """The record's session id of `conn`, found by a statement run to mark it."""
    conn.execute(f"SELECT '{mark}'")
    return str(gw.record_of(f"SELECT '{mark}'")["session_id"])


def ended(gw: Gateway, session: str) -> dict[str, Any]:
    """The record of how the session ended, once it is written."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in gw.records()
                    if r["session_id"] == session and r["request"]["method"] == "END"]
        return bool(found)

    stack.wait_until(written, 10, f"the end of session {session}")
    (record,) = found
    return record


def terminate(upstream_db: str, pid: int) -> None:
    """The backend ended as an administrator ends it, from a session of the database's
    own."""
    assert upstream(upstream_db, f"SELECT pg_terminate_backend({pid})") == [(True,)]


def test_an_idle_session_ended_by_an_administrator_gets_the_databases_error(
        gw: Gateway, upstream_db: str) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        session = session_of(gw, conn, "idle")
        terminate(upstream_db, conn.info.backend_pid)
        record = ended(gw, session)
        with pytest.raises(psycopg.errors.AdminShutdown, match=TERMINATED):
            conn.execute("SELECT 1")
    assert record["outcome"]["action"] == "none"
    assert record["outcome"]["detail"] == (
        f"the database ended the session: FATAL 57P01: {TERMINATED}")


@pytest.mark.parametrize("sql", [
    "SELECT pg_sleep(60)",
    # A measured write: its answers wait for a verdict that never comes.
    "UPDATE scratch SET id = 2 WHERE id = 1 AND pg_sleep(60) IS NOT NULL",
], ids=["read", "measured-write"])
def test_a_statement_ended_by_an_administrator_gets_the_databases_error(
        gw: Gateway, upstream_db: str, sql: str) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        session = session_of(gw, conn, sql)
        running = Held(lambda: conn.execute(sql))

        def on_its_backend() -> bool:
            return upstream(upstream_db, "SELECT count(*) FROM pg_stat_activity WHERE "
                            f"pid = {conn.info.backend_pid} AND state = 'active' "
                            "AND query LIKE '%pg_sleep(60)%'") == [(1,)]

        stack.wait_until(on_its_backend, 15, "the statement on its backend")
        terminate(upstream_db, conn.info.backend_pid)
        with pytest.raises(psycopg.errors.AdminShutdown, match=TERMINATED):
            running.result(15)
    assert ended(gw, session)["outcome"]["detail"].endswith(TERMINATED)
    statement = gw.record_of(sql)  # written as the session's last exchanges end
    assert statement["session_id"] == session
    assert statement["outcome"]["detail"].endswith(TERMINATED)
    assert upstream(upstream_db, "SELECT id FROM scratch") == [(1,)]


def test_an_idle_transaction_ended_by_the_server_gets_its_timeout(gw: Gateway) -> None:
    with psycopg.connect(url(gw).replace("/shop?", "/idle?")) as conn:  # a transaction
        session = session_of(gw, conn, "idle in transaction")
        record = ended(gw, session)
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            conn.execute("SELECT 1")
    assert "FATAL 25P03: terminating connection due to idle-in-transaction timeout" in (
        record["outcome"]["detail"])


def test_a_connection_closed_without_a_word_gets_tollgates_error(
        gw: Gateway, relay: Relay) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        session = session_of(gw, conn, "cut")
        relay.cut()
        record = ended(gw, session)
        with pytest.raises(psycopg.errors.ConnectionFailure,
                           match="tollgate: the database closed the connection"):
            conn.execute("SELECT 1")
    assert record["outcome"]["detail"] == "the database closed the connection"
