"""`tollgate up` (or `make run`) run as a user runs it, for the tests of the README's first
command: its printed lines read as they come, until it says it is up; stopped as a user
stops it, with Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# A shell starts a foreground job with Ctrl-C's signal at its default action, whatever its
# own parent ignored: a suite run in the background (`make test &`) ignores SIGINT, every
# process it starts inherits that, and `make` then outlived the Ctrl-C this stops it with.
AS_A_TERMINAL_STARTS_IT = [
    sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, "
    "signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])"]


@dataclass
class Up:
    process: subprocess.Popen[str]
    output: list[str]  # what it printed until "Ctrl-C stops everything"

    def stop(self) -> int:
        """Ctrl-C in its terminal: SIGINT to its whole process group; its exit status."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(30)


@contextmanager
def started_up(argv: list[str], cwd: Path | None, env: dict[str, str] | None,
               timeout: float) -> Iterator[Up]:
    """`argv` (`tollgate up`, or `make run`) in a terminal session of its own, once it
    printed that it is up, within `timeout` s. However the block ends, it is stopped as
    Ctrl-C stops it (SIGINT to its process group), killed only after 30 s."""
    process = subprocess.Popen([*AS_A_TERMINAL_STARTS_IT, *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env,
                               start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        output = _wait_for_line(lines, "Tollgate is up", timeout)
        output += _wait_for_line(lines, "Ctrl-C stops everything", 5)
        yield Up(process, output)
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Each line as it comes, then None: the output has ended."""
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


def _wait_for_line(lines: queue.Queue[str | None], needle: str, timeout: float) -> list[str]:
    """The lines up to the first holding `needle`; fails, with them, after `timeout` s
    or as soon as the output ends without one."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no line with {needle!r} in {timeout}s; got:\n{''.join(seen)}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError(f"the output ended with no line with {needle!r}:\n"
                                 f"{''.join(seen)}")
        seen.append(line)
        if needle in line:
            return seen
