"""Who the demo servers run as, and their private folders (extproc/quickstart/accounts.py):
never root, in a folder the account may enter even when the checkout is closed to it.

These run as root, as the suite does (the demo servers' accounts exist only to leave
root); each takes `nobody` as the account."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc.quickstart import accounts, stack
from tests.support.folders import passable_folder
from tests.support.processes import process_uid

NOBODY = accounts.Account.of(pwd.getpwnam("nobody"))


def closed_folder(parent: Path, name: str) -> Path:
    """A folder only root may enter (as a checkout in root's home)."""
    folder = parent / name
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def open_base() -> Iterator[Path]:
    with passable_folder() as base:
        yield base


def test_the_first_folder_closed_to_the_account_is_named(open_base: Path) -> None:
    inner = closed_folder(open_base, "closed") / "deeper"
    inner.mkdir()
    assert accounts.first_closed(open_base, NOBODY) is None
    assert accounts.first_closed(inner, NOBODY) == inner.parent
    # The owner's bits count for the owner, the group's for its members, the others'
    # for the rest.
    owned = open_base / "owned"
    owned.mkdir(mode=0o700)
    os.chown(owned, NOBODY.uid, NOBODY.gid)
    grouped = open_base / "grouped"
    grouped.mkdir(mode=0o710)
    os.chown(grouped, 0, NOBODY.gid)
    others = open_base / "others"
    others.mkdir(mode=0o701)
    os.chown(others, 0, 0)
    for folder in (owned, grouped, others):
        assert accounts.first_closed(folder, NOBODY) is None
    owned.chmod(0o077)
    grouped.chmod(0o701)
    others.chmod(0o770)
    for folder in (owned, grouped, others):
        assert accounts.first_closed(folder, NOBODY) == folder


def test_a_private_folder_is_the_accounts_alone_and_goes_with_what_it_holds() -> None:
    with accounts.private_folder(NOBODY, "probe") as folder:
        assert folder.parent == Path(tempfile.gettempdir())
        assert folder.name.startswith("tollgate-probe-")
        status = folder.stat()
        assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (
            NOBODY.uid, NOBODY.gid, 0o700)
        assert accounts.first_closed(folder, NOBODY) is None
        # What the account writes there, in folders of its own, goes too.
        subprocess.run(accounts.run_as(NOBODY, ["sh", "-c", "mkdir -p a/b && echo x > a/b/c"]),
                       cwd=folder, check=True, timeout=30)
    assert not folder.exists()


def test_a_temporary_folder_the_account_cannot_enter_is_refused_with_the_remedy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = closed_folder(tmp_path, "closed")
    monkeypatch.setattr(tempfile, "tempdir", str(closed))
    with pytest.raises(stack.StackError) as refused, \
            accounts.private_folder(NOBODY, "demo-postgres"):
        pass
    message = str(refused.value)
    assert message.startswith("the demo's demo-postgres runs as nobody, who may not enter ")
    assert "set TMPDIR to a folder every account may enter" in message
    assert list(closed.iterdir()) == []  # nothing left behind


def test_programs_out_of_reach_are_linked_into_the_folder_as_they_lay(tmp_path: Path) -> None:
    """A program that finds its files by its own place runs from the copy, as the
    account; within reach, the programs are used where they are."""
    installed = closed_folder(tmp_path, "checkout") / "site-packages"
    (installed / "pkg" / "bin").mkdir(parents=True)
    (installed / "pkg" / "share").mkdir()
    (installed / "pkg" / "share" / "words").write_text("found by its place\n")
    (installed / "pkg" / "bin" / "tool").write_text(
        '#!/bin/sh\ncat "$(dirname "$0")/../share/words"\n')
    (installed / "pkg" / "bin" / "tool").chmod(0o755)
    (installed / "pkg" / "bin" / "unneeded").write_text("left out\n")
    with accounts.private_folder(NOBODY, "probe") as folder:
        copy = accounts.reachable(installed, ("pkg/bin/tool", "pkg/share"), NOBODY, folder)
        assert copy.is_relative_to(folder)
        assert not (copy / "pkg" / "bin" / "unneeded").exists()
        ran = subprocess.run(accounts.run_as(NOBODY, [str(copy / "pkg" / "bin" / "tool")]),
                             capture_output=True, text=True, timeout=30, check=False)
        assert (ran.returncode, ran.stdout) == (0, "found by its place\n"), ran.stderr
        # Where the account can reach them, nothing is copied.
        assert accounts.reachable(copy, ("pkg",), NOBODY, folder) == copy
        assert accounts.reachable(installed, ("pkg",), None, folder) == installed


def test_a_server_run_as_the_account_has_no_groups_and_dies_with_its_parent() -> None:
    """The parent-death signal that stack.Process.spawn sets is cleared when the user
    changes; run_as sets it again, so a killed `tollgate up` leaves no server behind."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from extproc.quickstart import accounts, stack\n"
         "nobody = accounts.Account.of(__import__('pwd').getpwnam('nobody'))\n"
         "child = stack.Process.spawn('probe', accounts.run_as(nobody, ['sleep', '120']), None)\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        # Once both setprivs have exec'd in place, the child is the server itself.
        stack.wait_until(lambda: Path(f"/proc/{child}/comm").read_text() == "sleep\n", 10,
                         "the server to start")
        assert process_uid(child) == NOBODY.uid
        groups = next(line for line in Path(f"/proc/{child}/status").read_text().splitlines()
                      if line.startswith("Groups:"))
        assert groups.split()[1:] == []
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        stack.wait_until(lambda: not Path(f"/proc/{child}").exists()
                         or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z",
                         10, "the server to end with its parent")
    finally:
        parent.kill()
        parent.wait()


def test_a_process_that_becomes_the_account_cannot_come_back(tmp_path: Path) -> None:
    (tmp_path / "root-only").write_text("secret\n")
    ran = subprocess.run(
        [sys.executable, "-c",
         "import os, pwd, sys\n"
         "from extproc.quickstart import accounts\n"
         "accounts.become(accounts.Account.of(pwd.getpwnam('nobody')))\n"
         "print(os.getresuid(), os.getresgid(), os.getgroups())\n"
         "for attempt in (lambda: os.setuid(0), lambda: open(sys.argv[1]).read()):\n"
         "    try:\n"
         "        attempt()\n"
         "        print('allowed')\n"
         "    except PermissionError:\n"
         "        print('refused')\n",
         str(tmp_path / "root-only")],
        capture_output=True, text=True, timeout=30, check=False)
    assert ran.returncode == 0, ran.stderr
    ids = (NOBODY.uid,) * 3
    assert ran.stdout.splitlines() == [f"{ids} {(NOBODY.gid,) * 3} []", "refused", "refused"]


def test_a_server_gets_the_first_account_the_machine_has() -> None:
    assert accounts.service_account("no-such-account-here", "nobody") == NOBODY
    with pytest.raises(stack.StackError, match="no account no-such-account-here or "
                                               "another-absent one to run the demo server"):
        accounts.service_account("no-such-account-here", "another-absent one")
