"""The database servers the drivers' suites run against: a PostgreSQL 15 cluster and a
MariaDB of their own, made for one run and removed after it.

The suites create roles and databases of fixed names (asyncpg's `testdb`, `pooluser`,
PyMySQL's `test1` users), install extensions, and PyMySQL's asks for `local_infile`: on
the machine's shared servers (127.0.0.1:5432, :3306) that would change what every other
test sees, and two runs side by side (directly, and through tollgate) would trip over
each other's names. Each run gets servers of its own instead, from the same programs
(Debian's PostgreSQL 15 and MariaDB 10.11), with TLS (tests/support/tls.py's
certificate): a token travels only over TLS, so the direct run's clients use TLS too.
For the run through tollgate they log every statement they run, to be held against the
gateway's record (tests/support/statement_log.py).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from extproc.quickstart import accounts, stack
from tests.support import statement_log
from tests.support.mariadb import MariaDb, private_mariadb
from tests.support.pg_cluster import BIN, POSTGRES
from tests.support.tls import write_tls_files

SUPERUSER = "postgres"
# Every role from 127.0.0.1 without a password: the suites make roles of their own and
# log in as them (asyncpg's pool tests), and the gateway logs in as the superuser. Over
# TLS or not, as each client asks.
HBA = """\
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
"""
# The harness's own connections to the cluster name themselves so: its statement log
# tells them from the sessions that came through tollgate.
HARNESS = "tollgate-drivers-harness"


def _logging(folder: Path) -> tuple[str, ...]:
    """Every statement logged, into `folder`, as JSON lines (one file for the run)."""
    return tuple(arg for setting in (
        "log_statement=all", "logging_collector=on", "log_destination=jsonlog",
        f"log_directory={folder}", "log_rotation_size=0", "log_rotation_age=0")
        for arg in ("-c", setting))


@dataclass(frozen=True)
class Postgres:
    """A running private cluster: its port on 127.0.0.1, its folder, the CA of its
    certificate."""

    port: int
    directory: Path
    ca_file: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def logged(self) -> list[statement_log.PgLogged]:
        """The statements the cluster has logged so far (started with `log_statements`),
        but those of the harness's own connections. (A character cut at the end, being
        written, is no error: that line is left out.)"""
        (log,) = (self.directory / "log").glob("*.json")  # no rotation: one file
        logged = statement_log.pg_logged(log.read_text(encoding="utf-8", errors="replace"))
        return [entry for entry in logged if entry.application != HARNESS]

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True,
                             application_name=HARNESS) as admin:
            admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(
                psycopg.sql.Identifier(name)))


def _answers(port: int) -> bool:
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user=SUPERUSER,
                             dbname="postgres", connect_timeout=2,
                             application_name=HARNESS) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


@contextlib.contextmanager
def private_postgres(log_statements: bool = False) -> Iterator[Postgres]:
    """A PostgreSQL 15 cluster of its own, run as `postgres` (the server refuses root)
    in a private folder of that account's (extproc/quickstart/accounts.py), with TLS;
    stopped and removed after. The server is this process's child (no pg_ctl), so what
    it spent is counted with the rest of the run's. `log_statements`: every statement
    logged (`log_statement = all`), as JSON lines, each with its session's
    application_name (the harness's connections give HARNESS)."""
    with accounts.private_folder(POSTGRES, "drivers-pg") as directory:
        tls = write_tls_files(directory / "tls")
        for path in (directory / "tls", *(directory / "tls").iterdir()):
            shutil.chown(path, POSTGRES.name)
        port, data = stack.free_port(), directory / "data"
        subprocess.run(accounts.run_as(POSTGRES, [
            str(BIN / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E",
            "UTF8", "--no-sync"]), check=True, capture_output=True, timeout=120)
        (data / "pg_hba.conf").write_text(HBA)
        # max_connections: asyncpg's pool tests open dozens at once, and a run through
        # tollgate adds the gateway's own readings.
        server = stack.Process.spawn("drivers-postgres", accounts.run_as(POSTGRES, [
            str(BIN / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
            "-k", str(directory), "-c", "ssl=on", "-c", f"ssl_cert_file={tls.cert}",
            "-c", f"ssl_key_file={tls.key}", "-c", "fsync=off", "-c",
            "synchronous_commit=off", "-c", "full_page_writes=off", "-c",
            "max_connections=200", "-c", "max_prepared_transactions=10",
            *(_logging(directory / "log") if log_statements else ())]), directory)
        try:
            server.ready_or_fail(lambda: _answers(port), 60, f"queries on port {port}")
            yield Postgres(port, directory, tls.ca)
        finally:
            # SIGINT: PostgreSQL's fast shutdown (SIGTERM waits for its clients).
            server.signal(signal.SIGINT)
            server.stop(60)


@dataclass(frozen=True)
class Mariadb:
    """A running private MariaDB and the account the suites (and the gateway) log in
    as: every privilege, with GRANT OPTION (PyMySQL's tests make users of their own)."""

    server: MariaDb
    user: str = "drivers"

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ca_file(self) -> Path:
        return self.server.tls.ca

    def root(self, sql: str) -> None:
        done = self.server.root(sql)
        if done.returncode:
            raise RuntimeError(f"{sql}: {done.stderr}")

    def logged(self) -> list[tuple[str, str]]:
        """The entries (command, text) the server's general log has so far (started with
        `log_statements`) of the suites' account's connections: not root's, the
        harness's. Bytes that are no UTF-8 are kept (surrogateescape) to be hashed."""
        log = statement_log.entries(
            self.server.general_log.read_text(encoding="utf-8", errors="surrogateescape"))
        threads = statement_log.threads_of(log, self.user)
        return [(command, text) for thread, command, text in log if thread in threads]


@contextlib.contextmanager
def private_server_mariadb(log_statements: bool = False) -> Iterator[Mariadb]:
    """A MariaDB 10.11 of its own (tests/support/mariadb.py), with `local_infile` on as
    PyMySQL's CI sets it, and the suites' account. `log_statements`: its general log on
    (every command of every connection, by thread: the harness's own are root's, over
    the socket)."""
    with private_mariadb("--local-infile=1",
                         *(("--general-log=1",) if log_statements else ())) as server:
        running = Mariadb(server)
        running.root(f"CREATE USER '{running.user}'@'127.0.0.1'; GRANT ALL PRIVILEGES "
                     f"ON *.* TO '{running.user}'@'127.0.0.1' WITH GRANT OPTION")
        yield running
