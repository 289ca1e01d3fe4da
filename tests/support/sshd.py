"""A real OpenSSH server on a free port of 127.0.0.1: the host an agent reaches through the
SSH front, for its tests and bench/. The gateway's key (client_key_file) is authorized, the
host key is new each time (host_key_line is what a target pins), and everything sshd logs
is kept (log_file), so a test can show what reached the host and what did not.

sshd never runs as root, since the issue forbids root logins: when the tests run as root it
runs as the account `tollgate-ssh` (tests/system-deps.sh creates it), otherwise as the
current user; an unprivileged sshd can log in only the account it runs as. Its own files
live in a directory of their own under /tmp, owned by that account, because pytest's
tmp_path (/tmp/pytest-of-root/…) is closed to it; the test's directory gets the gateway's
key and the log.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from extproc.quickstart import stack

SSHD = Path("/usr/sbin/sshd")  # sshd re-executes itself, so it must be named by full path
ACCOUNT = "tollgate-ssh"
SETUP = "run `bash tests/system-deps.sh` as root (`make test` does)"

# StrictModes would refuse files under /tmp, which others may write to; PAM would need
# root; without a pid file nothing is left behind; the message of the day and last-login
# lines are left out so that an interactive session's screen starts with the prompt.
CONFIG = """\
ListenAddress 127.0.0.1
HostKey {host_key}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
PrintMotd no
PrintLastLog no
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    user: str  # the account commands run as (their working directory is its own home)
    host_key_line: str  # "ssh-ed25519 AAAA…": the server's public host key
    client_key_file: Path  # the gateway's key (ed25519, OpenSSH format, no passphrase)
    log_file: Path
    home: Path  # a directory of this server's own that `user` owns, for tests' files

    def log(self) -> str:
        """Everything sshd has logged so far: connections, keys accepted, sessions."""
        return self.log_file.read_text(errors="replace")

    @property
    def known_hosts(self) -> str:
        """The server's known_hosts line (OpenSSH's, asyncssh's and paramiko's format)."""
        return f"[{self.host}]:{self.port} {self.host_key_line}\n"

    def put(self, name: str, data: bytes) -> Path:
        """A file in `home` owned by `user`, so that the host may change or remove it too."""
        path = self.home / name
        path.write_bytes(data)
        owner = self.home.stat()
        os.chown(path, owner.st_uid, owner.st_gid)
        return path


@contextlib.contextmanager
def start_sshd(tmp: Path, timeout: float = 10.0, extra: str = "",
               wrap: Sequence[str] = ()) -> Iterator[Sshd]:
    """A running sshd, stopped afterwards with every session it started, its files removed
    (the gateway's key and the log stay in `tmp`); `extra`: more sshd_config lines;
    `wrap`: a prefix sshd runs under (strace: tests/support/execve_log.strace_prefix),
    as root, before it becomes its account."""
    if not SSHD.exists():
        raise RuntimeError(f"no {SSHD}: install Debian's openssh-server ({SETUP})")
    account = _account()
    port = stack.free_port()
    client_side = tmp / f"sshd-{port}"
    client_side.mkdir()
    server_side = Path(tempfile.mkdtemp(prefix="tollgate-sshd-"))
    try:
        home = server_side / "home"
        home.mkdir()
        host_key = server_side / "host_ed25519"
        authorized_keys = server_side / "authorized_keys"
        config = server_side / "sshd_config"
        client_key = client_side / "gateway_ed25519"
        host_key_line = _new_key(host_key)
        authorized_keys.write_text(_new_key(client_key) + "\n")
        config.write_text(CONFIG.format(host_key=host_key, authorized_keys=authorized_keys)
                          + extra)
        for path in (server_side, home, host_key, authorized_keys, config):
            os.chown(path, account.pw_uid, account.pw_gid)
        log_file = client_side / "sshd.log"  # Process.spawn's: stdout and stderr (-e)
        process = stack.Process.spawn(
            "sshd", [*wrap, *_as_account(account), str(SSHD), "-D", "-e", "-f", str(config),
                     "-p", str(port)], client_side)
        try:
            # Its own word rather than a probe connection, which it would log.
            listening = f"Server listening on 127.0.0.1 port {port}."
            process.ready_or_fail(lambda: listening in log_file.read_text(errors="replace"),
                                  timeout, f"listening on port {port}")
            yield Sshd("127.0.0.1", port, account.pw_name, host_key_line, client_key,
                       log_file, home)
        finally:
            _stop(process)
    finally:
        shutil.rmtree(server_side, ignore_errors=True)


def _account() -> pwd.struct_passwd:
    """The account sshd runs as and logs in: never root."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(ACCOUNT)
    except KeyError:
        raise RuntimeError(f"no account {ACCOUNT!r} for sshd to run as: {SETUP}") from None


def _as_account(account: pwd.struct_passwd) -> list[str]:
    """The prefix that runs sshd as `account`. A session's pty is given to the tty group,
    which only a member may do. The parent-death signal is set again because changing the
    user clears the one Process.spawn set."""
    if account.pw_uid == os.geteuid():
        return []
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
            "--groups=tty", "--pdeathsig=TERM", "--"]


def _new_key(private: Path) -> str:
    """Write a new ed25519 private key in OpenSSH's format, unencrypted and readable by its
    owner only (OpenSSH refuses others); return its public line."""
    key = ed25519.Ed25519PrivateKey.generate()
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    private.chmod(0o600)
    return key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def _stop(process: stack.Process) -> None:
    """SIGTERM to sshd and to everything its sessions run: a command still running when
    its connection closed would outlive sshd otherwise."""
    for pid in _descendants(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    process.stop()


def _descendants(pid: int) -> set[int]:
    parents = {child: int(fields[1]) for child, fields in stack.process_stats().items()}
    tree = {pid}
    while more := {child for child, parent in parents.items() if parent in tree} - tree:
        tree |= more
    return tree - {pid}
