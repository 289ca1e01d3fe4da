"""Every program a process tree executes, as strace logs it: what an execve differential
compares with what a record allowed.

`strace_prefix(log)` is the command prefix that runs a program under strace following
every fork (`-f`), logging each execve and each new process (fork, vfork, clone) to
`log`, every string in full as hex escapes (`-xx -s 65536`, so nothing an argument holds
can confuse the reading). `--seccomp-bpf` stops the tracees only at those system calls:
what runs under it runs at nearly full speed. `read_log(log)` reads the log back: the
successful execs, in the log's order, with each process's parent and whether it has
exited. A failed execve (dash tries each folder of PATH in turn) ran nothing and is not
kept.

strace prints a call the scheduler interrupted in two lines (`<unfinished ...>`, then
`<... execve resumed>`), and a child's first exec may come before its parent's fork
returns in the log: the reading joins the halves per process and builds the tree from
the whole log.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

STRACE = "/usr/bin/strace"
_TRACED = "execve,execveat,fork,vfork,clone,clone3"
_FORKS = frozenset({"fork", "vfork", "clone", "clone3"})

_LINE = re.compile(r"(?P<pid>\d+) +(?P<rest>.*)")
_UNFINISHED = " <unfinished ...>"
_RESUMED = re.compile(r"<\.\.\. (?P<call>\w+) resumed>(?P<rest>.*)")
_CALL = re.compile(r"(?P<call>\w+)\((?P<rest>.*)")
_RESULT = re.compile(r"\)\s+= (?P<value>-?\d+|\?)(?: .*)?$")
_STRING = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')
_EXITED = re.compile(r"\+\+\+ (?:exited with \d+|killed by \w+(?: \(core dumped\))?) \+\+\+")


def strace_prefix(log: Path) -> list[str]:
    """What to put before a command to run it traced into `log` (written anew)."""
    return [STRACE, "-f", "--seccomp-bpf", "-q", "-xx", "-s", "65536",
            "-e", f"trace={_TRACED}", "-o", str(log), "--"]


@dataclass(frozen=True)
class Exec:
    """One successful execve: its place in the log, the process, the file and the argv."""

    index: int
    pid: int
    path: str
    argv: tuple[str, ...]

    @property
    def program(self) -> str:
        """argv[0]'s basename, as the shell reader names a program."""
        return os.path.basename(self.argv[0]) if self.argv else ""

    def __str__(self) -> str:
        shown = " ".join(self.argv)
        return f"[{self.pid}] {self.path}: {shown}"


@dataclass
class ExecveLog:
    execs: list[Exec] = field(default_factory=list)
    parents: dict[int, int] = field(default_factory=dict)  # child -> the process it forked
    exited: set[int] = field(default_factory=set)
    lines: int = 0  # the log's lines read; an Exec's index counts them

    def tree(self, root: int) -> set[int]:
        """`root` and every process it forked, transitively."""
        tree = {root}
        children: dict[int, list[int]] = {}
        for child, parent in self.parents.items():
            children.setdefault(parent, []).append(child)
        todo = [root]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in tree:
                    tree.add(child)
                    todo.append(child)
        return tree

    def ended(self, root: int) -> bool:
        """Whether `root` and everything it forked have exited: nothing more of that
        tree can come into the log."""
        return self.tree(root) <= self.exited

    def since(self, lines: int) -> list[Exec]:
        """The execs logged after the log's first `lines` lines."""
        return [e for e in self.execs if e.index >= lines]


def read_log(log: Path) -> ExecveLog:
    """`log` as strace_prefix's strace wrote it so far (a last line it is still writing is
    left for the next reading)."""
    text = log.read_bytes().decode("ascii", errors="replace") if log.exists() else ""
    lines = text.split("\n")[:-1]  # whole lines only
    found = ExecveLog(lines=len(lines))
    pending: dict[int, str] = {}  # pid -> its unfinished call's text
    for index, line in enumerate(lines):
        match = _LINE.fullmatch(line)
        if match is None:
            continue
        pid, rest = int(match["pid"]), match["rest"]
        if _EXITED.fullmatch(rest):
            found.exited.add(pid)
            continue
        if rest.endswith(_UNFINISHED):
            pending[pid] = rest.removesuffix(_UNFINISHED)
            continue
        resumed = _RESUMED.match(rest)
        if resumed is not None:
            rest = pending.pop(pid, resumed["call"] + "(") + resumed["rest"]
        _call(found, index, pid, rest)
    return found


def _call(found: ExecveLog, index: int, pid: int, text: str) -> None:
    call, result = _CALL.match(text), _RESULT.search(text)
    if call is None or result is None or result["value"] == "?":
        return
    name, value = call["call"], int(result["value"])
    if name in _FORKS and value > 0:
        found.parents[value] = pid
    elif name in ("execve", "execveat") and value == 0:
        strings = [_decode(s) for s in _STRING.findall(call["rest"])]
        argv_text = call["rest"][call["rest"].index("["):call["rest"].index("]") + 1]
        argv = tuple(_decode(s) for s in _STRING.findall(argv_text))
        found.execs.append(Exec(index, pid, strings[0] if strings else "", argv))


def _decode(escaped: str) -> str:
    return bytes.fromhex(escaped.replace("\\x", "")).decode("utf-8", errors="surrogateescape")
