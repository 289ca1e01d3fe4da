"""Real shells (bash, dash) on real pseudo-terminals, each logging the commands it runs to
a file of the test's own, for the line editor's differential and bypass tests.

bash logs with a DEBUG trap: each command's text ($BASH_COMMAND) to fd 9, opened on the
log by its rcfile; dash has no DEBUG trap, so it traces (`set -x`, PS4 `+RAN `) with its
stderr on the log (its prompt goes there too: the entries are what follows `+RAN `). The
session never names the log, so what it types cannot write there but by running.

Each shell starts from a launcher (`launch`: the sshd's ForceCommand, or run on a pty of
the test's own) with the terminal settings a host may have (`stty erase ^H` ...). No
history file: HISTFILE is empty (bash run as root with HISTFILE=/dev/null would write a
regular file over /dev/null).
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

SHELLS = ("bash", "dash")
# Terminal settings a real host may have: erase as BS or DEL, werase, eof, kill, no icanon.
STTY = ("", "stty erase ^H", "stty erase ^? werase ^W", "stty eof ^D kill ^U",
        "stty -icanon")
PROMPT = "READY> "

_RC = {
    "bash": "PS1='{prompt}'\n{stty}\nexec 9>>{log}\n"
            "trap 'printf \"%s\\n\" \"$BASH_COMMAND\" >&9' DEBUG\n",
    "dash": "PS1='{prompt}'\n{stty}\nPS4='+RAN '\nexec 2>>{log}\nset -x\n",
}
_LAUNCH = {
    "bash": "export HISTFILE= INPUTRC=/dev/null\nexec bash --noprofile --rcfile {rc} -i\n",
    "dash": "export HISTFILE= ENV={rc}\nexec dash -i\n",
}
_TRACED = re.compile(r"\+RAN ([^\n]*)")


class LoggedShell:
    """A shell's launcher, rcfile and log in `folder` (the test's own; readable by the
    account the shell runs as, `owner`)."""

    def __init__(self, folder: Path, owner: tuple[int, int] | None = None) -> None:
        self.folder, self.owner = folder, owner
        self.launch = folder / "launch"
        self.log = folder / "ran.log"
        self.shell = ""

    def prepare(self, shell: str, stty: str = "") -> None:
        """The next shell started from `launch`: `shell` with `stty`, its log empty."""
        self.shell = shell
        rc = self.folder / "rc"
        rc.write_text(_RC[shell].format(prompt=PROMPT, stty=stty, log=self.log))
        self.launch.write_text(_LAUNCH[shell].format(rc=rc))
        self.log.write_text("")
        for path in (self.folder, rc, self.launch, self.log):
            if self.owner is not None:
                os.chown(path, *self.owner)

    def ran(self) -> list[str]:
        """The commands the shell ran so far, in order, blanks made single."""
        text = self.log.read_text(errors="replace")
        found = (_TRACED.findall(text) if self.shell == "dash" else text.splitlines())
        return [" ".join(command.split()) for command in found]

    def wait_for(self, command: str, seconds: float = 10.0) -> list[str]:
        """What ran up to `command` (a sentinel typed last), once it ran."""
        deadline = time.monotonic() + seconds
        while command not in (ran := self.ran()):
            assert time.monotonic() < deadline, (
                f"{self.shell} never ran {command!r} within {seconds} s; it ran {ran}")
            time.sleep(0.02)
        return ran[:ran.index(command)]


class Pty:
    """A program run here on a pseudo-terminal of its own (its controlling terminal),
    typed into as a person's terminal is: an interactive client (psql) behaves as it
    does for a person."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self._master, slave = pty.openpty()
        self._process = subprocess.Popen(
            ["setsid", "--ctty", *argv], stdin=slave, stdout=slave, stderr=slave,
            env={"PATH": os.environ["PATH"], "TERM": "xterm", "LANG": "C.UTF-8", **env},
            cwd=cwd)
        os.close(slave)
        self.output = b""

    def type(self, keys: bytes) -> None:
        os.write(self._master, keys)

    def wait(self, condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
        """Until `condition()`, reading the terminal meanwhile (a full one would stop the
        shell); fails naming `what` after `seconds`."""
        deadline = time.monotonic() + seconds
        while not condition():
            left = deadline - time.monotonic()
            assert left > 0, f"{what} never held within {seconds} s: {self.output[-300:]!r}"
            if select.select([self._master], [], [], min(left, 0.05))[0]:
                try:
                    self.output += os.read(self._master, 65536)
                except OSError:  # the shell left: its side of the terminal is closed
                    assert condition(), f"the shell left before {what}: {self.output!r}"
                    return

    def answered(self, quiet: float = 0.05, seconds: float = 2.0) -> None:
        """As the gateway waits after a Ctrl-C or Ctrl-D it sent alone: until the shell
        printed something (past the terminal's echo, ^C), then nothing for `quiet`
        seconds (at most `seconds`)."""
        deadline = time.monotonic() + seconds
        before = len(self.output)
        heard = time.monotonic()
        while time.monotonic() < deadline:
            answer = self.output[before:].removeprefix(b"^C")
            if answer and time.monotonic() - heard >= quiet:
                return
            if select.select([self._master], [], [], quiet)[0]:
                try:
                    self.output += os.read(self._master, 65536)
                except OSError:
                    return
                heard = time.monotonic()

    def shown(self, text: str, seconds: float = 10.0) -> None:
        """Until the terminal showed `text`."""
        self.wait(lambda: text.encode() in self.output, f"{text!r} shown", seconds)

    def wait_exit(self, seconds: float = 10.0) -> int:
        return self._process.wait(seconds)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        os.close(self._master)


class PtyShell(Pty):
    """A LoggedShell's shell run here, on a pseudo-terminal of its own."""

    def __init__(self, logged: LoggedShell) -> None:
        super().__init__(["sh", str(logged.launch)], {"HOME": str(logged.folder)},
                         logged.folder)
        self.logged = logged

    def ran_until(self, sentinel: str) -> list[str]:
        """What ran before `sentinel`, typed last, ran."""
        self.wait(lambda: sentinel in self.logged.ran(), f"{sentinel!r} running")
        ran = self.logged.ran()
        return ran[:ran.index(sentinel)]
