"""A private MariaDB server for tests that need what the machine's own (127.0.0.1:3306)
must not be changed for: TLS, a general log, accounts of every kind; and, on the
machine's own, a throwaway database with the gateway's account on it (`machine_shop`).

Debian's mariadb-server (10.11) is on every machine of this kind: `mariadb-install-db`
makes a data folder in under a second and `mariadbd` serves it on a free port. As root
it runs as `mysql`, which cannot pass through pytest's 0700 folders, so its folder is
one of tempfile's, removed afterwards (as tests/support/pg_cluster.py's).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extproc.quickstart import stack
from tests.support.tls import TlsFiles, write_tls_files

_STARTUP_SECONDS = 60


@dataclass(frozen=True)
class MariaDb:
    """A running private server: its port on 127.0.0.1, its socket, its folder (the
    general log is `general.log` there) and its TLS files."""

    port: int
    socket: Path
    directory: Path
    tls: TlsFiles

    @property
    def general_log(self) -> Path:
        return self.directory / "general.log"

    def root(self, sql: str) -> subprocess.CompletedProcess[str]:
        """`sql` run as root over the socket (-N -B: tab-separated, no headers)."""
        return subprocess.run(["mariadb", "--no-defaults", "-S", str(self.socket), "-uroot",
                               "-N", "-B", "-e", sql],
                              capture_output=True, text=True, timeout=30, check=False)


def _started(process: subprocess.Popen[bytes], server: MariaDb, log: Path) -> None:
    """Returns once the server takes a login; raises with its log if it exits or takes
    none in time (each wait for the process is the pause between attempts)."""
    deadline = time.monotonic() + _STARTUP_SECONDS
    while server.root("SELECT 1").returncode:
        try:
            process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            if time.monotonic() < deadline:
                continue
            raise RuntimeError(f"mariadbd took no login within {_STARTUP_SECONDS} s:\n"
                               f"{log.read_text()}") from None
        raise RuntimeError(f"mariadbd exited with {process.returncode}:\n{log.read_text()}")


@contextlib.contextmanager
def private_mariadb(*options: str, prepare: Sequence[Path] = ()) -> Iterator[MariaDb]:
    """A private MariaDB 10.11 on a free port with TLS (a certificate for 127.0.0.1 and
    localhost) and `options` added to mariadbd's; `prepare`: more files it must read,
    handed to its user."""
    owner = "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    directory = Path(tempfile.mkdtemp(prefix="tollgate-mariadb-"))
    try:
        tls = write_tls_files(directory / "tls")
        for path in (directory, directory / "tls", *(directory / "tls").iterdir(), *prepare):
            shutil.chown(path, owner)
        data, unix_socket, log = directory / "data", directory / "sock", directory / "error.log"
        small = "--innodb-log-file-size=4M"  # 96 MiB by default
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}",
                        f"--user={owner}", "--auth-root-authentication-method=normal",
                        "--skip-test-db", small], check=True, capture_output=True, timeout=120)
        server = MariaDb(stack.free_port(), unix_socket, directory, tls)
        process = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={data}", f"--user={owner}",
             f"--port={server.port}", "--bind-address=127.0.0.1", f"--socket={unix_socket}",
             "--skip-log-bin", "--skip-name-resolve", small, f"--tmpdir={directory}",
             f"--ssl-cert={tls.cert}", f"--ssl-key={tls.key}", f"--ssl-ca={tls.ca}",
             f"--pid-file={directory / 'pid'}", f"--log-error={log}",
             f"--general-log-file={server.general_log}", *options],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _started(process, server, log)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# The machine's own server: its root logs in over TCP without a password.
MACHINE_ROOT = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", "3306", "-uroot"]
CUSTOMERS = [
    (1, "Ada Lovelace", "ada@example.com", "078-05-1120"),
    (2, "Alan Turing", "alan@example.org", "219-09-9999"),
]


def as_root(sql: str, database: str | None = None) -> str:
    """`sql` run by the machine's server's root account: what it printed (-N -B)."""
    done = subprocess.run([*MACHINE_ROOT, *(["-D", database] if database else []), "-N",
                           "-B", "-e", sql], capture_output=True, text=True, timeout=30,
                          check=True)
    return done.stdout


@dataclass(frozen=True)
class Shop:
    """A throwaway database on the machine's server and the gateway's own account on it."""

    database: str
    user: str
    password: str

    def target(self, name: str = "shop-my", match: str = "shop") -> dict[str, Any]:
        """A mysql target serving it to clients asking for `match`; its credential from
        the environment's SHOP_MY_PASSWORD (`env`)."""
        return {"name": name, "protocol": "mysql", "match": {"database": match},
                "environment": "test",
                "mysql": {"upstream": "127.0.0.1:3306", "user": self.user,
                          "database": self.database, "tls": "disable"},
                "credential": {"type": "password", "from_env": "SHOP_MY_PASSWORD"}}

    @property
    def env(self) -> dict[str, str]:
        return {"SHOP_MY_PASSWORD": self.password}


@contextlib.contextmanager
def machine_shop() -> Iterator[Shop]:
    """A throwaway database with `customers` (CUSTOMERS) and an empty `scratch`, and an
    account with every right on it alone; both dropped on leaving."""
    suffix = secrets.token_hex(4)
    shop = Shop(f"tollgate_my_{suffix}", f"tollgate_gw_{suffix}", secrets.token_hex(12))
    as_root(f"CREATE DATABASE {shop.database}; "
            f"CREATE USER '{shop.user}'@'127.0.0.1' IDENTIFIED BY '{shop.password}'; "
            f"GRANT ALL ON {shop.database}.* TO '{shop.user}'@'127.0.0.1'")
    try:
        rows = ", ".join(f"({i}, '{n}', '{e}', '{s}')" for i, n, e, s in CUSTOMERS)
        as_root("CREATE TABLE customers (id int PRIMARY KEY, name text, email text, "
                f"ssn text); INSERT INTO customers VALUES {rows}; "
                "CREATE TABLE scratch (id int)", shop.database)
        yield shop
    finally:
        as_root(f"DROP DATABASE IF EXISTS {shop.database}; "
                f"DROP USER IF EXISTS '{shop.user}'@'127.0.0.1'")
