"""Whether a program a target executed is one a record allowed: the comparison rule of the
execve differentials (tests/e2e/test_ssh_execve_differential_e2e.py, ..._k8s_...).

An exec (tests/support/execve_log.Exec: the file run and its argv) is *explained* by an
allowed command (an argv of the shell reader's `commands`, or of its `opaque`, in a
record whose decision is allow) when both hold:

- the same program: argv[0]'s basename is the command's program, and the file the
  kernel ran (relative paths taken in the session's working folder, symlinks followed)
  is the file that name finds on the system's PATH (`SYSTEM_PATH`), symlinks followed.
  `/bin/echo x` and `echo x` are the same program; `./zap` (a copy of, or a link to,
  /bin/echo) is not `zap`, since no program of that name is installed: what it is only
  the target knew, and the record cannot show it;
- the same arguments: each of the command's words is the exec's argument at its place,
  except a word the shell expands when it runs, which stands for whatever it expanded
  to: one with `$` or a backquote (a substitution or a variable: any arguments, none
  included), one with a glob character `*`, `?` or `[` (any arguments it matches as a
  pattern, none included, or itself unexpanded). The reader removes quotes, so a quoted
  `'*'` is taken as a pattern too: the rule errs towards explaining.

The comparison is per session, not per line: what a line allowed may run later in the
same session (a function's body the reader read when it was defined runs when it is
called). Generated sessions give each payload a number of its own (`PWNED-3`), so what a
refused or held line would have run is explained by no allowed command of another line.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.support.attack_lines import Step
from tests.support.execve_log import Exec

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_GLOB = frozenset("*?[")


def allowed_commands(readings: Iterable[dict[str, Any]]) -> list[list[str]]:
    """The argvs of the readings (a record's `commands` and `opaque` beside the argv the
    pack read: input.ssh, input.k8s.exec) of records that were allowed."""
    found: list[list[str]] = []
    for reading in readings:
        found += [list(argv) for argv in reading.get("commands") or []]
        found += [list(o["argv"]) for o in reading.get("opaque") or []]
    return found


def unexplained(execs: Sequence[Exec], commands: Sequence[Sequence[str]], cwd: Path
                ) -> list[Exec]:
    """The execs no command of `commands` explains (the module's rule); `cwd`: where a
    relative path the shell ran is found."""
    return [e for e in execs if not any(explains(c, e, cwd) for c in commands)]


def explains(command: Sequence[str], ran: Exec, cwd: Path) -> bool:
    if not command or not ran.argv or command[0] != ran.program:
        return False
    return same_file(ran.path, command[0], cwd) and _arguments(
        tuple(command[1:]), tuple(ran.argv[1:]))


def same_file(path: str, program: str, cwd: Path) -> bool:
    """Whether `path` (as execve got it) is the file `program` names on SYSTEM_PATH."""
    installed = shutil.which(program, path=SYSTEM_PATH)
    if installed is None:
        return False
    ran = Path(path) if os.path.isabs(path) else cwd / path
    return os.path.realpath(ran) == os.path.realpath(installed)


@functools.lru_cache(maxsize=4096)
def _arguments(words: tuple[str, ...], args: tuple[str, ...]) -> bool:
    if not words:
        return not args
    word, rest = words[0], words[1:]
    if "$" in word or "`" in word:
        return any(_arguments(rest, args[i:]) for i in range(len(args) + 1))
    if _GLOB & set(word):
        if args and args[0] == word and _arguments(rest, args[1:]):
            return True
        for i in range(len(args) + 1):
            if i and not fnmatch.fnmatchcase(args[i - 1], word):
                break
            if _arguments(rest, args[i:]):
                return True
        return False
    return bool(args) and args[0] == word and _arguments(rest, args[1:])


def differences(steps: Sequence[Step], records: Sequence[dict[str, Any]],
                reading: Callable[[dict[str, Any]], dict[str, Any]], ran: Sequence[Exec],
                others: Sequence[Exec], cwd: Path) -> str:
    """'' when every exec of `ran` is explained by the allowed `records` of a session (what
    the pack read of each: `reading`) and `others` (execs that are neither a session's
    nor its startup) is empty; else what ran that no allowed record shows, the steps
    and the records."""
    readings = [reading(r) for r in records if r["outcome"]["action"] == "allow"]
    bad = [*unexplained(ran, allowed_commands(readings), cwd), *others]
    if not bad:
        return ""
    shown = [f"  {r['request']['method']} {r['outcome']['action']}: "
             f"{reading(r).get('command')!r} {reading(r).get('line')!r} -> "
             f"{reading(r).get('commands')} opaque {reading(r).get('opaque')}"
             for r in records]
    return "\n".join([
        "the target executed what no allowed record shows:",
        *(f"  {e}" for e in bad), "steps:", *(f"  {s.kind}: {s.lines}" for s in steps),
        "records:", *shown])
