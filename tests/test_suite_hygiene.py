"""The suite's own guard: a run that leaves a device other than it found it, or changes
the machine outside its temporary folders, fails (tests/conftest.py checks at the
session's start and end)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import conftest
from tests.support import footprint


def test_the_machines_devices_are_character_devices() -> None:
    assert conftest.broken_devices() == []


def test_a_regular_file_where_a_device_should_be_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    impostor = tmp_path / "null"
    impostor.write_bytes(b"")
    monkeypatch.setattr(conftest, "DEVICES", ("/dev/null", str(impostor)))
    assert conftest.broken_devices() == [str(impostor)]


def test_a_name_left_in_the_home_folder_or_a_file_changed_in_etc_is_named(
        tmp_path: Path) -> None:
    """The suite's footprint outside its temporary folders (tests/support/footprint.py):
    a new dotfile in the home folder, a key in ~/.ssh, a tool's folder in ~/.config, a
    file under /etc changed or made;
    ~/.tollgate, the quickstart's documented place, is allowed."""
    home, etc = tmp_path / "home", tmp_path / "etc"
    (home / ".ssh").mkdir(parents=True)
    (etc / "ssh").mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (etc / "ssh" / "sshd_config").write_text("Port 22\n")
    before = footprint.take(home, etc)
    assert footprint.changes(before, footprint.take(home, etc), home) == []
    (home / ".tollgate").mkdir()
    (home / ".bash_history").write_text("rm -rf *\n")
    (home / ".ssh" / "known_hosts").write_text("[127.0.0.1]:2222 ssh-ed25519 AAAA\n")
    (home / ".config" / "chromium").mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\nextra:x:1:1::/:/bin/sh\n")
    os.utime(etc / "passwd", ns=(1, 1))  # a rewrite, whatever its time
    (etc / "ssh" / "sshd_config").unlink()
    (etc / "hosts").write_text("127.0.0.1 example.com\n")
    assert footprint.changes(before, footprint.take(home, etc), home) == [
        f"{home}/.bash_history appeared", f"{home}/.config appeared",
        f"{home}/.ssh/known_hosts appeared", f"{home}/.config/chromium appeared",
        f"{etc}/hosts appeared", f"{etc}/passwd changed", f"{etc}/ssh/sshd_config went"]
