"""What the target's shell actually executed, against what the record allowed: every
program a session ran is one its records allowed (issue 58).

The host is a real sshd of the test's own (tests/support/sshd.py: it runs as the
unprivileged account `tollgate-ssh`, never root, and so does everything its sessions
run), started under strace (tests/support/execve_log.py), which logs every successful
execve of sshd and of everything it forks, with its full argv, to a log in the test's
tmp_path: dash's commands, programs run by programs (tar's checkpoint actions, find's
-exec), scripts, all. Its ForceCommand is a launcher of the test's own that goes to a
fresh folder of the account's own (holding notes.txt) and starts a real bash or dash:
`bash --norc --noprofile -c "$SSH_ORIGINAL_COMMAND"` / `dash -c ...` for an exec, an
interactive `bash --rcfile RC -i` / `dash -i` (ENV=RC) for a shell, whose RC sets the
prompt and, last, runs the marker `/bin/true tollgate-session-begins`.

Hypothesis generates sessions (tests/support/attack_lines.py: harmless commands mixed
with the issue's attack classes, each payload harmless, numbered, and a program the pack
allows on its own) and runs each through Envoy and the SSH front, as exec commands (one
exec per step, its lines joined with newlines, on one connection) or as lines typed into
a terminal (then `exit`). Held lines are approved by nobody: the gateway's longest hold
is 1 s, after which they are refused.

What the session ran. From the log's lines after the connection started: each shell the
launcher started (the exec whose argv is the shell's, with the exact command the record
allowed) is a session's root; its executed programs are the execs in that process's
tree (itself and everything it forked) that come after its boundary, which is the shell's
own exec for an exec, the marker for an interactive shell. Every other exec of the
connection must be sshd's own startup, named exactly: sshd re-executing itself, the
account's login shell running the ForceCommand (`bash -c "sh LAUNCH"`), the launcher
(`sh LAUNCH`), the shells, the marker; anything else fails the test. The log is read once
the session's records are in and every root's tree has exited (strace logs each exit):
nothing more of the session can come, with no sleep.

The rule: every program the session ran is explained by a command of a record of the
session that was allowed (tests/support/exec_differential.py: the same program, as the
file the kernel ran and as the installed program the command names; the same arguments,
with words the shell expands standing for what they expanded to). So nothing of a
refused or held line ran (its payload's number is its own), and nothing ran that only
the target knew of (an alias's text, a trap's string, a program the session made).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from extproc.quickstart import stack
from tests.e2e.test_ssh_e2e import connect, web
from tests.support.attack_lines import NOTES, NOTES_TEXT, SESSION, Step
from tests.support.exec_differential import differences
from tests.support.execve_log import Exec, ExecveLog, read_log, strace_prefix
from tests.support.gateway import Gateway, module_gateway
from tests.support.sshd import Sshd, start_sshd

SHELLS = ("bash", "dash")
MARKER = ("/bin/true", "tollgate-session-begins")
# Each example starts real shells through a real gateway, some lines held for a second.
EXAMPLES = settings(deadline=None, max_examples=6,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

LAUNCH = """\
cd {work} || exit 1
if [ -n "$SSH_ORIGINAL_COMMAND" ]; then exec {command} "$SSH_ORIGINAL_COMMAND"; fi
export HISTFILE= ENV={rc}
exec {interactive}
"""
RC = f"PS1='$ '\n{' '.join(MARKER)}\n"
COMMAND = {"bash": ("bash", "--norc", "--noprofile", "-c"), "dash": ("dash", "-c")}
INTERACTIVE = {"bash": ("bash", "--noprofile", "--rcfile", "{rc}", "-i"),
               "dash": ("dash", "-i")}


class Launcher:
    """The sshd's ForceCommand and its rcfile, in a folder the account owns; each
    session's working folder beside them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.launch, self.rc = folder / "launch", folder / "rc"
        self.owner = (0, 0)
        self.sessions = 0

    def prepare(self, shell: str) -> Path:
        """The next session's shell, in a fresh folder (returned) holding NOTES."""
        self.sessions += 1
        work = self.folder / f"work-{self.sessions}"
        work.mkdir()
        (work / NOTES).write_text(NOTES_TEXT)
        self.rc.write_text(RC)
        self.launch.write_text(LAUNCH.format(
            work=work, rc=self.rc, command=" ".join(COMMAND[shell]),
            interactive=" ".join(self.interactive(shell))))
        for path in (self.folder, work, work / NOTES, self.rc, self.launch):
            os.chown(path, *self.owner)
        return work

    def interactive(self, shell: str) -> tuple[str, ...]:
        return tuple(word.format(rc=self.rc) for word in INTERACTIVE[shell])

    def startup(self, argv: tuple[str, ...]) -> bool:
        """Whether an exec is sshd's own for a connection or a session, before the
        launcher starts the shell: sshd re-executing itself, the account's login shell
        running the ForceCommand, the launcher."""
        return (bool(argv) and os.path.basename(argv[0]) == "sshd") or argv in {
            ("bash", "-c", f"sh {self.launch}"), ("sh", str(self.launch))}


@dataclass(frozen=True)
class Traced:
    sshd: Sshd
    log: Path


@pytest.fixture(scope="module")
def launcher() -> Iterator[Launcher]:
    folder = Path(tempfile.mkdtemp(prefix="tollgate-execve-differential-"))
    try:
        yield Launcher(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, launcher: Launcher) -> Iterator[Traced]:
    tmp = tmp_path_factory.mktemp("sshd-traced")
    log = tmp / "execve.log"
    with start_sshd(tmp, extra=f"ForceCommand sh {launcher.launch}\n",
                    wrap=strace_prefix(log)) as server:
        owner = server.home.stat()
        assert owner.st_uid != 0, "the sessions' account is root"
        launcher.owner = (owner.st_uid, owner.st_gid)
        yield Traced(server, log)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, host: Traced
       ) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "ssh-execve", targets=[web(host.sshd)],
                        ssh={}, settings={"approvals": {
                            "max_hold_seconds": 1, "max_pending_per_identity": 10000}}
                        ) as running:
        yield running


class Session:
    """One connection through the gateway: its records and what the host ran for it."""

    def __init__(self, gw: Gateway, host: Traced, launcher: Launcher, shell: str) -> None:
        self.gw, self.host, self.launcher, self.shell = gw, host, launcher, shell
        self.work = launcher.prepare(shell)
        self.known = {r["session_id"] for r in gw.records()}
        self.start = read_log(host.log).lines

    async def execs(self, commands: list[str]) -> None:
        async with connect(self.gw) as conn:
            for command in commands:
                await conn.run(command, check=False)

    async def typed(self, lines: list[str]) -> None:
        async with connect(self.gw) as conn:
            process = await conn.create_process(term_type="xterm", term_size=(200, 30),
                                                encoding=None)
            for line in [*lines, "exit"]:
                process.stdin.write(line.encode() + b"\r")
            await asyncio.wait_for(process.wait_closed(), 30)

    def records(self, closing: str, count: int) -> list[dict[str, Any]]:
        """The session's exchange records once `count` records of method `closing` are
        in (not a held line's decision record, written as it began to wait)."""
        found: list[dict[str, Any]] = []

        def written() -> bool:
            found[:] = [r for r in self.gw.records("exchange")
                        if r["session_id"] not in self.known]
            return sum(r["request"]["method"] == closing for r in found) >= count

        stack.wait_until(written, 20, f"the session's {count} {closing} records")
        return found

    def ran(self, shells: list[tuple[str, ...]]) -> tuple[list[Exec], list[Exec]]:
        """What the sessions of the shells started with argvs `shells` executed (each
        once the shell and all it forked exited), and the execs of the connection that
        are neither a session's nor its startup."""
        log = ExecveLog()

        def ended() -> bool:
            nonlocal log
            log = read_log(self.host.log)
            roots = self._roots(log, shells)
            return len(roots) == len(shells) and all(log.ended(r.pid) for r in roots)

        stack.wait_until(ended, 20, f"{shells} run and exited in {self.host.log}")
        mine: list[Exec] = []
        starts: list[Exec] = []  # the shells, and the markers that end their startup
        for root in self._roots(log, shells):
            tree = log.tree(root.pid)
            boundary = root
            if root.argv == self.launcher.interactive(self.shell):
                boundary = next(e for e in log.since(root.index) if e.pid in tree
                                and e.argv == MARKER)
            starts += {root, boundary}
            mine += [e for e in log.since(boundary.index + 1) if e.pid in tree]
        others = [e for e in log.since(self.start) if e not in mine and e not in starts
                  and not self.launcher.startup(e.argv)]
        return mine, others

    def _roots(self, log: ExecveLog, shells: list[tuple[str, ...]]) -> list[Exec]:
        left = list(shells)
        roots = []
        for e in log.since(self.start):
            if e.argv in left:
                left.remove(e.argv)
                roots.append(e)
        return roots


def reading(record: dict[str, Any]) -> dict[str, Any]:
    """What the pack read of a record's request (input.ssh); {} for none."""
    return dict((record.get("meaning") or {}).get("ssh") or {})


@pytest.mark.parametrize("shell", SHELLS)
@EXAMPLES
@given(steps=SESSION)
def test_an_exec_runs_only_what_its_record_allowed(
        gw: Gateway, host: Traced, launcher: Launcher, shell: str, steps: list[Step]
        ) -> None:
    session = Session(gw, host, launcher, shell)
    commands = ["\n".join(step.lines) for step in steps]
    asyncio.run(session.execs(commands))
    records = session.records("EXEC", len(commands))
    allowed = [r["meaning"]["ssh"]["command"] for r in records
               if r["request"]["method"] == "EXEC" and r["outcome"]["action"] == "allow"]
    ran, others = session.ran([(*COMMAND[shell], command) for command in allowed])
    assert not (found := differences(steps, records, reading, ran, others, session.work)), found


@pytest.mark.parametrize("shell", SHELLS)
@EXAMPLES
@given(steps=SESSION)
def test_a_shell_runs_only_the_lines_its_record_allowed(
        gw: Gateway, host: Traced, launcher: Launcher, shell: str, steps: list[Step]
        ) -> None:
    session = Session(gw, host, launcher, shell)
    asyncio.run(session.typed([line for step in steps for line in step.lines]))
    records = session.records("SHELL", 1)
    opened = [r for r in records if r["request"]["method"] == "SHELL"]
    assert [r["outcome"]["action"] for r in opened] == ["allow"]
    ran, others = session.ran([launcher.interactive(shell)])
    assert not (found := differences(steps, records, reading, ran, others, session.work)), found
