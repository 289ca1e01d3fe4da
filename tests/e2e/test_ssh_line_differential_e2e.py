"""Interactive sessions through the gateway against real shells: what the host ran is
exactly what the record says was allowed.

The host is a real sshd of the test's own whose sessions start, through ForceCommand, a
real `bash` or `dash` on the session's pseudo-terminal, with the terminal settings a real
host may have (line_shells.STTY: erase as BS or DEL, werase, eof, kill, no icanon); the
shell logs each command it runs to a file the session never names (line_shells). Agents
type generated keystrokes (text, erase, kill, werase, Ctrl-C and Ctrl-D on a line, keys
the gateway does not model, lines the shell would continue, history expansion) through
Envoy and the SSH front, cut in arbitrary writes, all typed ahead; then a last line of
their own, which tells when the host has run everything before it. For every sequence:
the commands the host ran are the session's LINE records whose decision is allow, in
order; so no refused line ran.

Ctrl-C on an empty line, which goes to the host, is not generated: the host's terminal
then discards what it had not read yet, so lines sent before it may not run (their
records say `sent`); test_ctrl_c_interrupts_what_runs_and_the_next_line_runs_whole shows
what it does.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.quickstart import stack
from tests.e2e.test_ssh_e2e import connect, web
from tests.support.gateway import Gateway, module_gateway
from tests.support.line_sessions import (
    CUTS,
    DIFFERENTIAL,
    END_OF_KEYS,
    KEYS,
    RecordedSession,
    cut,
)
from tests.support.line_shells import SHELLS, STTY, LoggedShell
from tests.support.sshd import Sshd, start_sshd


@pytest.fixture(scope="module")
def shells() -> Iterator[LoggedShell]:
    """The shells' launcher, rcfile and log, in a folder of the test's own that the
    sshd's account can read (pytest's tmp_path is closed to it)."""
    folder = Path(tempfile.mkdtemp(prefix="tollgate-line-differential-"))
    try:
        yield LoggedShell(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, shells: LoggedShell) -> Iterator[Sshd]:
    with start_sshd(tmp_path_factory.mktemp("sshd"),
                    extra=f"ForceCommand sh {shells.launch}\n") as server:
        owner = server.home.stat()
        shells.owner = (owner.st_uid, owner.st_gid)
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, host: Sshd) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "ssh-lines", targets=[web(host)],
                        ssh={}) as running:
        yield running


class Session(RecordedSession):
    """One interactive session through the gateway, to a shell just prepared."""

    closing = "SHELL"

    async def type(self, chunks: list[bytes], sentinel: str) -> list[str]:
        """`chunks` typed ahead, then `sentinel` as a line: what the host ran before it."""
        async with connect(self.gw) as conn:
            process = await conn.create_process(term_type="xterm", term_size=(200, 30),
                                                encoding=None)
            for chunk in chunks:
                process.stdin.write(chunk)
            process.stdin.write(b"\x15" + sentinel.encode() + b"\r")
            ran = await asyncio.to_thread(self.shells.wait_for, sentinel, 20)
            process.close()
        return ran

    def line_of(self, record: dict[str, Any]) -> str:
        return str(record["meaning"]["ssh"]["command"])


@pytest.mark.parametrize("shell", SHELLS)
@settings(DIFFERENTIAL, max_examples=45)
@given(keys=KEYS, stty=st.sampled_from(STTY), cuts=CUTS)
def test_the_host_runs_exactly_the_lines_the_record_allowed(
        gw: Gateway, shells: LoggedShell, shell: str, keys: bytes, stty: str,
        cuts: list[int]) -> None:
    shells.prepare(shell, stty)
    session = Session(gw, shells)
    ran = asyncio.run(session.type(cut(keys, cuts), END_OF_KEYS))
    allowed = session.allowed()
    assert allowed[-1] == END_OF_KEYS
    assert ran == allowed[:-1], (keys, stty)


@pytest.mark.parametrize("shell", SHELLS)
def test_ctrl_d_before_enter_sends_nothing(gw: Gateway, shells: LoggedShell, host: Sshd,
                                           shell: str) -> None:
    """The issue's case: a refused command, then Ctrl-D before Enter. Nothing of it
    reaches the host, and nothing is recorded as allowed."""
    victim = host.put("ctrl-d.txt", b"keep\n")
    shells.prepare(shell, "stty eof ^D")
    session = Session(gw, shells)
    ran = asyncio.run(session.type([f"shred {victim}\x04".encode(), b"\x04"], ": done"))
    assert ran == []
    assert session.allowed() == [": done"]
    assert victim.read_bytes() == b"keep\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_ctrl_c_interrupts_what_runs_and_the_next_line_runs_whole(
        gw: Gateway, shells: LoggedShell, shell: str) -> None:
    """Ctrl-C on an empty line goes to the host (what runs there stops); a line dropped
    with Ctrl-C never does; a line typed after the interrupt runs as it was decided."""
    shells.prepare(shell)
    session = Session(gw, shells)

    async def typed() -> list[str]:
        async with connect(gw) as conn:
            process = await conn.create_process(term_type="xterm", encoding=None)
            process.stdin.write(b"sleep 30\r")
            await asyncio.to_thread(shells.wait_for, "sleep 30", 10)
            # The shell logs a command before it runs it: a Ctrl-C sent before `sleep` is
            # the terminal's foreground process would reach the shell instead.
            await asyncio.to_thread(stack.wait_until, sleep_in_foreground, 10,
                                    "`sleep 30` in its terminal's foreground")
            process.stdin.write(b": dropped\x03\x03: after interrupt\r: done\r")
            ran = await asyncio.to_thread(shells.wait_for, ": done", 10)
            process.close()
        return ran

    ran = asyncio.run(typed())
    assert ran == ["sleep 30", ": after interrupt"]
    assert session.allowed() == ["sleep 30", ": after interrupt", ": done"]


def sleep_in_foreground() -> bool:
    """Whether a `sleep 30` runs as its terminal's foreground process group (/proc's stat:
    its process group is the terminal's)."""
    for entry in Path("/proc").iterdir():
        try:
            if (entry / "cmdline").read_bytes() != b"sleep\x0030\x00":
                continue
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[2] == fields[5]:  # pgrp == tpgid
            return True
    return False
