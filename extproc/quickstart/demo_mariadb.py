"""The quickstart's demo MariaDB: the server behind the `demo-mysql` target that
`tollgate up` serves, so the `mariadb` and `mysql` clients have something to reach.

No wheel carries a MariaDB or MySQL server (PyPI has clients and drivers only; checked
2026-11-26), so the server is Debian's `mariadb-server` (10.11: `mariadbd` and
`mariadb-install-db`, with the `mariadb` client), which the machines tollgate is built
and tested on have. Where it is missing, `tollgate up` serves everything else and says
how to add it (`missing`). Each `up` makes a new data folder in a private folder of the
server's account (under a second), seeded with the demo upstream's customers, listening
on 127.0.0.1 only. The gateway logs in as its own account (`tollgate_demo`, by
mysql_native_password, MariaDB's default) with the password of the quickstart config's
demo-mysql target; agents never see it. Under root the server runs as `mysql`
(accounts.py), never as root.

The tests' private servers (tests/support/mariadb.py) are made by the same two steps,
`install` and `server_argv`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from extproc import grants
from extproc.quickstart import accounts, stack
from extproc.quickstart.demo_upstream import CUSTOMERS

ACCOUNT = "tollgate_demo"  # the gateway's own account on the demo server
# The roles the quickstart's demo-mysql sessions run as (its `roles`), as on demo-db.
ROLES = tuple(grants.RoleGrants(role, read=("customers",), write=("customers",),
                                dump=role == "tollgate_dba")  # a dba's dump reads all
              for role in ("tollgate_agent", "tollgate_dba"))
DATABASE = "shop"
# The role the measurement reads the catalog as (the target's `catalog_role`).
CATALOG_ROLE = "tollgate_catalog"
COLUMNS = ("id", "name", "email", "ssn", "card_number", "phone")
# The server's programs: Debian installs mariadbd in /usr/sbin, which a user's PATH may
# leave out.
_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
_SMALL_LOG = "--innodb-log-file-size=4M"  # 96 MiB by default, written at install


def program(name: str) -> str | None:
    """Where a MariaDB program is (None: not installed)."""
    return shutil.which(name, path=_PATH)


def missing() -> str | None:
    """Why this machine cannot run the demo server, said as the remedy (None: it can)."""
    absent = [name for name in ("mariadbd", "mariadb-install-db", "mariadb")
              if program(name) is None]
    if not absent:
        return None
    return (f"no {', '.join(absent)} on this machine (Debian: apt-get install "
            "mariadb-server mariadb-client)")


# Who runs the server under root, which mariadbd refuses (accounts.py).
ACCOUNTS = ("mysql",)


def install(data: Path, user: str, timeout: float = 120.0) -> None:
    """A new data folder (system tables, root with no password over the socket), its
    temporary files beside it: $TMPDIR may be one the server's user cannot write."""
    done = subprocess.run([_need("mariadb-install-db"), "--no-defaults", f"--datadir={data}",
                           f"--user={user}", "--auth-root-authentication-method=normal",
                           "--skip-test-db", _SMALL_LOG, f"--tmpdir={data.parent}"],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise stack.StackError(f"mariadb-install-db failed:\n{done.stderr[-2000:]}")


def server_argv(data: Path, user: str, port: int, unix_socket: Path, folder: Path,
                options: Sequence[str] = ()) -> list[str]:
    """mariadbd serving `data` on 127.0.0.1:`port` and `unix_socket`, its temporary
    files and pid file in `folder`, no binary log, its errors on stderr; `options`
    added."""
    return [_need("mariadbd"), "--no-defaults", f"--datadir={data}", f"--user={user}",
            f"--port={port}", "--bind-address=127.0.0.1", f"--socket={unix_socket}",
            "--skip-log-bin", "--skip-name-resolve", _SMALL_LOG, f"--tmpdir={folder}",
            f"--pid-file={folder / 'pid'}", *options]


def root(unix_socket: Path, sql: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`sql` run as the server's root over its socket (-N -B: tab-separated, no headers)."""
    return subprocess.run([_need("mariadb"), "--no-defaults", "-S", str(unix_socket), "-uroot",
                           "-N", "-B", "-e", sql],
                          capture_output=True, text=True, timeout=timeout, check=False)


def start(port: int, folder: Path, account: accounts.Account | None, password: str,
          log_dir: Path | None, timeout: float = 60.0) -> stack.Process:
    """A new server in `folder` (a private folder of `account`'s: accounts.py), run as
    `account` (None: as this user) on 127.0.0.1:`port`, seeded, the gateway's account
    given `password`; ready once it takes a login."""
    user = accounts.owner(account)
    data, unix_socket = folder / "data", folder / "sock"
    install(data, user, timeout)
    server = stack.Process.spawn("demo-mariadb", accounts.run_as(account, server_argv(
        data, user, port, unix_socket, folder)), log_dir)
    server.ready_or_fail(lambda: root(unix_socket, "SELECT 1").returncode == 0, timeout,
                         "taking logins", "the demo MariaDB", f"127.0.0.1:{port}")
    done = root(unix_socket, seed_sql(password))
    if done.returncode != 0:
        server.stop()
        raise stack.StackError(f"seeding the demo MariaDB failed:\n{done.stderr[-2000:]}")
    return server


def seed_sql(password: str) -> str:
    """The shop database with the demo's customers; the gateway's account, which holds
    no privilege of its own, the roles its sessions run as and its catalog role
    (grants.py)."""
    rows = ", ".join("(" + ", ".join(grants.mysql_literal(str(c[k])) for k in COLUMNS) + ")"
                     for c in CUSTOMERS)
    return "; ".join([
        f"CREATE DATABASE {DATABASE}",
        f"CREATE TABLE {DATABASE}.customers (id varchar(16) PRIMARY KEY, name text, "
        "email text, ssn text, card_number text, phone text) CHARACTER SET utf8mb4",
        f"INSERT INTO {DATABASE}.customers VALUES {rows}",
        *grants.mysql(ACCOUNT, "127.0.0.1", DATABASE, ROLES, password, CATALOG_ROLE)])


def _need(name: str) -> str:
    found = program(name)
    if found is None:
        raise stack.StackError(f"the demo MariaDB needs {name}: {missing()}")
    return found
