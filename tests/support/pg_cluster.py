"""A PostgreSQL cluster of the test's own, for what the machine's shared server
(trust auth, no TLS, no statement log) cannot show: the gateway's SCRAM-SHA-256 with
channel binding, MD5 and client-certificate logins, and a statement log to search
for the agent's token.

The machine's PostgreSQL 15 binaries run it as the OS user `postgres` (the server
refuses to run as root), on a free port, with TLS (tests/support/tls.py's
certificate) and `log_statement = all`, in text and as JSON lines.
"""

from __future__ import annotations

import contextlib
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from extproc.quickstart import accounts, stack
from tests.support import statement_log
from tests.support.tls import write_client_files, write_tls_files

BIN = Path("/usr/lib/postgresql/15/bin")
POSTGRES = accounts.Account.of(pwd.getpwnam("postgres"))  # never root: the server refuses
# The gateway's roles, one per way of logging in (pg_hba.conf below).
PASSWORD = "gateway-secret-9"
HBA = """\
local   all             all                                     trust
hostssl all             gateway_scram   127.0.0.1/32            scram-sha-256
host    all             gateway_md5     127.0.0.1/32            md5
hostssl all             gateway_cert    127.0.0.1/32            cert
host    all             postgres        127.0.0.1/32            trust
"""


@dataclass(frozen=True)
class Cluster:
    port: int
    directory: Path
    ca_file: Path
    client_cert: Path  # gateway_cert's certificate and key
    client_key: Path

    @property
    def log(self) -> str:
        """Everything the server has logged so far (connections and statements)."""
        return "".join(p.read_text(errors="replace")
                       for p in sorted((self.directory / "log").glob("*.log")))

    def logged(self) -> list[statement_log.PgLogged]:
        """The statements client backends ran so far, by session, from the same log
        written as JSON lines (its texts whole, whatever lines they span)."""
        return [entry for p in sorted((self.directory / "log").glob("*.json"))
                for entry in statement_log.pg_logged(
                    p.read_text(encoding="utf-8", errors="replace"))]

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    # For real faults (tests/faults/, bench/soak_faults.py): pg_ctl's fast mode ends the
    # sessions, as a failover or an upgrade does; each returns once the server has.
    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("start", "-l", str(self.directory / "startup.log"))

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "restart", "-l", str(self.directory / "startup.log"))

    def _pg_ctl(self, *argv: str) -> None:
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-w", "-t", "60",
                     *argv)


def _as_postgres(*argv: str, check: bool = True) -> None:
    subprocess.run(accounts.run_as(POSTGRES, list(argv)), check=check, capture_output=True,
                   timeout=60)


@contextlib.contextmanager
def cluster(log_statements: bool = True) -> Iterator[Cluster]:
    """A running cluster with the roles of HBA and a `shop` database, in a private folder
    of `postgres`'s (extproc/quickstart/accounts.py); removed after. `log_statements`
    False: none logged (a soak's thousands a minute would take a share of the cores)."""
    with accounts.private_folder(POSTGRES, "pg") as directory:
        tls = write_tls_files(directory / "tls")
        cert, key = write_client_files(directory / "client", "gateway_cert")
        for path in (directory / "tls").iterdir():
            shutil.chown(path, "postgres")
        port = stack.free_port()
        data = directory / "data"
        # UTF8 whatever the machine's locale (SQL_ASCII under C would convert nothing).
        _as_postgres(str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                     "-E", "UTF8", "--locale=C", "--no-sync")
        (data / "pg_hba.conf").write_text(HBA)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{directory}'\nssl = on\n"
                       f"ssl_cert_file = '{tls.cert}'\nssl_key_file = '{tls.key}'\n"
                       f"ssl_ca_file = '{tls.ca}'\n"
                       f"log_statement = '{'all' if log_statements else 'none'}'\n"
                       "log_connections = on\nlogging_collector = on\n"
                       "log_destination = 'stderr,jsonlog'\n"
                       f"log_directory = '{directory / 'log'}'\nfsync = off\n")
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "start",
                     "-l", str(directory / "startup.log"))
        running = Cluster(port, directory, tls.ca, cert, key)
        try:
            with psycopg.connect(running.admin_url, autocommit=True) as admin:
                admin.execute(f"CREATE ROLE gateway_scram LOGIN PASSWORD '{PASSWORD}'")
                admin.execute("SET password_encryption = 'md5'")
                admin.execute(f"CREATE ROLE gateway_md5 LOGIN PASSWORD '{PASSWORD}'")
                admin.execute("CREATE ROLE gateway_cert LOGIN")
                admin.execute("CREATE DATABASE shop")
            with psycopg.connect(running.admin_url.rsplit("/", 1)[0] + "/shop",
                                 autocommit=True) as shop:
                shop.execute("CREATE TABLE customers (id int PRIMARY KEY, email text)")
                shop.execute("INSERT INTO customers VALUES (1, 'ada@example.com')")
                shop.execute("GRANT SELECT ON customers TO gateway_scram, gateway_md5, "
                             "gateway_cert")
            yield running
        finally:
            _as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop",
                         check=False)
