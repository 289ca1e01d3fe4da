"""A private MariaDB server for tests that need what the machine's own (127.0.0.1:3306)
must not be changed for: TLS, a general log, accounts of every kind.

Debian's mariadb-server (10.11) is on every machine of this kind: `mariadb-install-db`
makes a data folder in under a second and `mariadbd` serves it on a free port. As root
it runs as `mysql`, which cannot pass through pytest's 0700 folders, so its folder is a
private one of that account's (extproc/quickstart/accounts.py), removed afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from extproc.quickstart import accounts, demo_mariadb, stack
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
        return demo_mariadb.root(self.socket, sql)


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
    account = accounts.service_account(*demo_mariadb.ACCOUNTS)
    owner = accounts.owner(account)
    with accounts.private_folder(account, "mariadb") as directory:
        tls = write_tls_files(directory / "tls")
        for path in (directory / "tls", *(directory / "tls").iterdir(), *prepare):
            shutil.chown(path, owner)
        data, log = directory / "data", directory / "error.log"
        demo_mariadb.install(data, owner)
        server = MariaDb(stack.free_port(), directory / "sock", directory, tls)
        process = subprocess.Popen(
            demo_mariadb.server_argv(data, owner, server.port, server.socket, directory, [
                f"--ssl-cert={tls.cert}", f"--ssl-key={tls.key}", f"--ssl-ca={tls.ca}",
                f"--log-error={log}", f"--general-log-file={server.general_log}",
                *options]),
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
