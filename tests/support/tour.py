"""The commands `tollgate up` prints, read as a user reads them and run as a user pastes
them, one after another, into one shell: the `export` and `unset` lines printed before
a command hold for it, and nothing else does.

A printed command is a line indented by two spaces (continued by a trailing backslash on
the lines under it), or a heredoc flush left (`... <<'EOF'` to `EOF`); the lines of `#`
under it are what it says it does. `Tour.take` hands out each command once, by a pattern,
and `Tour.untaken` names those no test has run, so that a command printed and never
tried fails the tour's test.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Printed:
    """One printed command: its text as pasted (its continuation lines and heredoc body
    included), what the lines beside and under it say, and where it was printed."""

    index: int
    text: str
    says: str

    @property
    def sets_state(self) -> bool:
        """An `export` or `unset` line: it changes the shell the later commands run in."""
        return self.text.startswith(("export ", "unset "))


def printed_commands(output: list[str]) -> list[Printed]:
    commands: list[Printed] = []
    lines = iter(output)
    text, says = "", ""

    def close() -> None:
        nonlocal text, says
        if text:
            commands.append(Printed(len(commands), text, says.strip()))
        text, says = "", ""

    for line in lines:
        stripped = line.strip()
        if line.endswith("<<'EOF'\n") and not line[0].isspace():
            close()
            body = [line]
            for more in lines:
                body.append(more)
                if more == "EOF\n":
                    break
            text = "".join(body)
            close()
        elif text and text.rstrip().endswith("\\"):
            text += line
        elif text and stripped.startswith("#"):
            says += " " + stripped.lstrip("#").strip()
        elif re.match(r"  [^\s#(]", line):
            close()
            command, _, comment = line.partition("  # ")
            text, says = command.strip() + "\n", comment
        else:
            close()
    close()
    return commands


@dataclass
class Tour:
    """The printed commands of one `tollgate up`, run in `cwd` with `env`."""

    commands: list[Printed]
    env: dict[str, str]
    cwd: Path
    taken: set[int] = field(default_factory=set)

    def take(self, pattern: str) -> Printed:
        """The one command not yet taken whose text matches `pattern` (re.search)."""
        found = [c for c in self.commands
                 if c.index not in self.taken and re.search(pattern, c.text)]
        assert len(found) == 1, (f"{len(found)} printed commands match {pattern!r}: "
                                 f"{[c.text for c in found]}")
        self.taken.add(found[0].index)
        return found[0]

    def untaken(self) -> list[str]:
        return [c.text for c in self.commands if c.index not in self.taken]

    def script(self, command: Printed, text: str | None = None) -> str:
        """What the shell runs for `command` (or `text` in its place): the export and
        unset lines printed before it, then it."""
        before = [c.text for c in self.commands if c.sets_state and c.index < command.index]
        return "".join(before) + (text if text is not None else command.text)

    def run(self, command: Printed, stdin: str = "", timeout: float = 60,
            text: str | None = None) -> subprocess.CompletedProcess[str]:
        """`command` run to its end in bash, `stdin` its input."""
        return subprocess.run(["bash", "-c", self.script(command, text)], input=stdin,
                              capture_output=True, text=True, env=self.env, cwd=self.cwd,
                              timeout=timeout, check=False)

    def start(self, command: Printed) -> subprocess.Popen[str]:
        """`command` started in bash, left running (its output in pipes)."""
        return subprocess.Popen(["bash", "-c", self.script(command)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env, cwd=self.cwd)

    def terminal(self, command: Printed) -> Terminal:
        """`command` started in bash on a terminal of its own, to be typed into."""
        return Terminal(["bash", "-c", self.script(command)], self.env, self.cwd)


class Terminal:
    """A command on a pseudo-terminal (its controlling terminal), as a user types into it."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self._master, slave = pty.openpty()
        self._process = subprocess.Popen(["setsid", "--ctty", *argv], stdin=slave,
                                         stdout=slave, stderr=slave, env=env, cwd=cwd)
        os.close(slave)
        self.output = ""

    def type(self, keys: str) -> None:
        os.write(self._master, keys.encode())

    def wait_for(self, text: str, seconds: float = 30.0) -> str:
        """Everything shown until `text` appears after what was read before; fails after
        `seconds` with what was shown."""
        start = len(self.output)
        deadline = time.monotonic() + seconds
        while text not in self.output[start:]:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not shown within {seconds} s: {self.output[-500:]!r}"
            if select.select([self._master], [], [], min(left, 0.1))[0]:
                try:
                    self.output += os.read(self._master, 65536).decode(errors="replace")
                except OSError:  # the program left: its side of the terminal is closed
                    assert text in self.output[start:], (
                        f"the program left before showing {text!r}: {self.output[-500:]!r}")
        return self.output[start:]

    def wait(self, seconds: float = 30.0) -> int:
        """The exit status, reading what it still shows meanwhile."""
        deadline = time.monotonic() + seconds
        while self._process.poll() is None:
            assert time.monotonic() < deadline, f"still running: {self.output[-500:]!r}"
            if select.select([self._master], [], [], 0.1)[0]:
                try:
                    self.output += os.read(self._master, 65536).decode(errors="replace")
                except OSError:  # its side of the terminal is closed: it is ending
                    break
        return self._process.wait(max(deadline - time.monotonic(), 1))

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        os.close(self._master)
