"""Generated command lines for the execve differentials: harmless commands mixed with the
ways to make a shell run a program its line never shows (issue 58's attack pass).

A session is a list of steps; a step is one or more lines (typed one by one into an
interactive shell; joined with newlines into one exec command). Every step is numbered
in its session and its payload carries the number, so what a line would run hidden is
explained by no other line's command (tests/support/exec_differential.py). Payloads are
harmless and programs the pack allows on their own (`/bin/echo PWNED-3`, `touch
pwned-3`): what matters is whether they run while the record shows only the route to
them. Files are relative: each session runs in a fresh folder of the account's own,
holding `notes.txt` (NOTES).

Each attack class, with what the record shows of it:

- state that runs later: `PROMPT_COMMAND=...` (an assignment), `trap '...' DEBUG` and
  `trap '...' EXIT` (a builtin and a string), `alias x='...'` then `x`, a function
  defined then called, `fc -s old=new` (history re-run, rewritten);
- a script written then run: `printf ... > f` then `sh f`, or `. ./f`;
- a program the reader does not know: a copy of /bin/echo (`cp`), a link to it (`ln -s`);
- options that run programs: tar's `--checkpoint-action=exec=...`, find's `-exec` and
  `-execdir`;
- globs: a program named by a glob (`/bin/ech?`), and file names a glob turns into
  options (tar's checkpoint options as files, then `tar cf x *`);
- `$(...)` computed words: a computed program, and an option made by a substitution
  (`find . $(printf %s -exec) ...`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st

NOTES = "notes.txt"
NOTES_TEXT = "harmless notes\n"


@dataclass(frozen=True)
class Step:
    kind: str  # "harmless", or the attack's class
    lines: tuple[str, ...]


def _echo(n: int) -> str:
    return f"/bin/echo PWNED-{n}"


def _touch(n: int) -> str:
    return f"touch pwned-{n}"


PAYLOADS = (_echo, _touch)
Builder = Callable[[int, str], tuple[str, ...]]

HARMLESS: dict[str, Builder] = {
    "echo": lambda n, _p: (f"echo hello-{n}",),
    "ls": lambda _n, _p: ("ls",),
    "ls -a": lambda _n, _p: ("ls -a .",),
    "cat": lambda _n, _p: (f"cat {NOTES}",),
    "true": lambda _n, _p: ("true",),
    "printf": lambda n, _p: (f"printf 'line-{n}\\n' > out-{n}.txt",),
    "/bin/echo": lambda n, _p: (f"/bin/echo plain-{n}",),
    "touch": lambda n, _p: (f"touch made-{n}",),
}

ATTACKS: dict[str, Builder] = {
    "PROMPT_COMMAND": lambda _n, p: (f"PROMPT_COMMAND='{p}'", "true"),
    "trap DEBUG": lambda _n, p: (f"trap '{p}' DEBUG", "true"),
    "trap EXIT": lambda _n, p: (f"trap '{p}' EXIT",),
    "alias": lambda n, p: (f"alias zz{n}='{p}'", f"zz{n}"),
    "function": lambda n, p: (f"ff{n}() {{ {p}; }}", f"ff{n}"),
    "fc -s": lambda n, _p: (f"/bin/echo safe-{n}", f"fc -s safe-{n}=PWNED-{n}"),
    "script sh": lambda n, p: (f"printf '%s\\n' '{p}' > s{n}.sh", f"sh s{n}.sh"),
    "script source": lambda n, p: (f"printf '%s\\n' '{p}' > d{n}.sh", f". ./d{n}.sh"),
    "cp program": lambda n, _p: (f"cp /bin/echo zap{n}", f"./zap{n} PWNED-{n}"),
    "ln -s program": lambda n, _p: (f"ln -s /bin/echo zl{n}", f"./zl{n} PWNED-{n}"),
    "tar checkpoint": lambda n, p: (
        f"tar cf t{n}.tar --checkpoint=1 --checkpoint-action=exec='{p}' {NOTES}",),
    "find -exec": lambda _n, p: (f"find . -maxdepth 0 -exec {p} \\;",),
    "find -execdir": lambda _n, p: (f"find . -maxdepth 0 -execdir {p} \\;",),
    "glob program": lambda n, _p: (f"/bin/ech? PWNED-{n}",),
    "glob options": lambda n, _p: (
        f"touch ./--checkpoint=1 './--checkpoint-action=exec=touch pwned-{n}'",
        f"tar cf g{n}.tar *"),
    "computed program": lambda n, _p: (f"$(printf /bin/echo) PWNED-{n}",),
    "computed option": lambda _n, p: (f"find . -maxdepth 0 $(printf %s -exec) {p} \\;",),
}


def _step(kind: str, builder: Builder, attack: bool) -> st.SearchStrategy[
        Callable[[int], Step]]:
    return st.sampled_from(PAYLOADS).map(
        lambda payload: lambda n: Step(kind if attack else "harmless",
                                       builder(n, payload(n))))


STEP = st.one_of(
    st.sampled_from(sorted(HARMLESS)).flatmap(lambda k: _step(k, HARMLESS[k], False)),
    st.sampled_from(sorted(ATTACKS)).flatmap(lambda k: _step(k, ATTACKS[k], True)))
# A session: up to four steps, numbered in order.
SESSION = st.lists(STEP, min_size=1, max_size=4).map(
    lambda made: [make(n) for n, make in enumerate(made, 1)])
