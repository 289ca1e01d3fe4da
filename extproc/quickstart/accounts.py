"""Who the demo servers run as under root, and the private folder each is given.

No demo server runs as root: PostgreSQL and MariaDB refuse to, and the demo SSH host runs
agents' commands, which as root could write anywhere on the machine (a `mv x /dev/null`
through it once replaced the machine's /dev/null). Under root each runs as an account
of its kind (`postgres`, `mysql`, `nobody`); otherwise as whoever runs `tollgate up`.

Such an account may not enter the folders of whoever runs `tollgate up`: a clone in
root's home (mode 700) hides the checkout, its venv and the programs in it. So each
server's data, sockets and home live in a folder made for it under the system's
temporary folder, owned by its account and closed to every other (mode 700); programs it
cannot reach are linked (or copied) into that folder. Where the account cannot enter
even that folder (a TMPDIR that only root may enter), `private_folder` says so and how
to move it, before anything starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from extproc.quickstart.stack import StackError

# prctl(2)'s option that asks for a signal when the parent dies.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Account:
    """A local account: its name and ids (its supplementary groups are never kept)."""

    name: str
    uid: int
    gid: int

    @classmethod
    def of(cls, entry: pwd.struct_passwd) -> Account:
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)


def service_account(*names: str) -> Account | None:
    """Under root, the first of `names` this machine has (StackError naming them when it
    has none); otherwise None: the servers run as whoever runs `tollgate up`."""
    if os.geteuid() != 0:
        return None
    for name in names:
        try:
            return Account.of(pwd.getpwnam(name))
        except KeyError:
            continue
    raise StackError(f"running as root, and no account {' or '.join(names)} to run the "
                     "demo server as (root never runs it)")


def owner(account: Account | None) -> str:
    """The name of who runs a server: `account`, or (None) this process's user."""
    return account.name if account is not None else pwd.getpwuid(os.geteuid()).pw_name


@contextlib.contextmanager
def private_folder(account: Account | None, name: str) -> Iterator[Path]:
    """A new folder `tollgate-NAME-…` under the system's temporary folder, owned by
    `account` (None: by this user) and closed to everyone else; removed afterwards with
    whatever its server left in it. StackError, with the remedy, when `account` could
    not enter it."""
    folder = Path(tempfile.mkdtemp(prefix=f"tollgate-{name}-"))
    try:
        if account is not None:
            os.chown(folder, account.uid, account.gid)
            closed = first_closed(folder, account)
            if closed is not None:
                raise StackError(
                    f"the demo's {name} runs as {account.name}, who may not enter {closed} "
                    f"(mode {stat.filemode(closed.stat().st_mode)}), where its folder would "
                    "be: set TMPDIR to a folder every account may enter (e.g. TMPDIR=/tmp)")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def first_closed(path: Path, account: Account) -> Path | None:
    """The first folder on the way to `path` (itself included) that `account`, with no
    supplementary groups, may not pass through; None when it may reach `path`."""
    for folder in (*reversed(path.parents), path):
        mode = folder.stat()
        if mode.st_uid == account.uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid == account.gid:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def reachable(programs: Path, parts: Iterable[str], account: Account | None,
              folder: Path) -> Path:
    """`programs` (a folder), or where `account` cannot reach it, a copy of its `parts`
    (paths under it, kept where they are in it, as programs find their libraries by
    their own place) in `folder`, hard-linked where the file system allows: the folder
    to run them from."""
    if account is None or first_closed(programs, account) is None:
        return programs
    copy = folder / "programs"
    for part in parts:
        source, target = programs / part, copy / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(source), str(target))
    # The folders keep their modes (copytree), which an install under umask 077 leaves
    # closed to others: the account owns them, so that it may pass through.
    for path in (copy, *copy.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            os.chown(path, account.uid, account.gid)
    return copy


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def run_as(account: Account | None, argv: list[str]) -> list[str]:
    """argv run as `account` (None: as this user), with no supplementary groups, still
    ended when its parent dies: changing the user clears the parent-death signal that
    stack.Process.spawn set, so it is set again (util-linux's setpriv execs in place, so
    signals reach the server itself)."""
    if account is None:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise StackError("running as root needs util-linux's setpriv to start the demo "
                         "servers as other accounts")
    return [setpriv, f"--reuid={account.uid}", f"--regid={account.gid}", "--clear-groups",
            "--pdeathsig=TERM", "--", *argv]


def become(account: Account) -> None:
    """This process becomes `account` for good (no supplementary groups, no way back),
    still ended by SIGTERM when its parent dies. For a server that must read what only
    root may (its key, its interpreter under a closed folder) before it serves: everything
    it will import must be imported first."""
    os.setgroups([])
    os.setresgid(account.gid, account.gid, account.gid)
    os.setresuid(account.uid, account.uid, account.uid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
