"""`tollgate up` run as a user runs it, for the tests of the README's first command: its
printed lines read as they come, until it says it is up; stopped as a user stops it."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO


@dataclass
class Up:
    process: subprocess.Popen[str]
    output: list[str]  # what it printed until "Ctrl-C stops everything"

    def exported(self, name: str) -> str:
        """The value of the one printed `export NAME=...` line."""
        (value,) = [line.split(f"export {name}=", 1)[1].strip()
                    for line in self.output if f"export {name}=" in line]
        return value

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C in `up`'s terminal; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


@contextmanager
def running_up(*args: str, env: dict[str, str] | None = None) -> Iterator[Up]:
    """`python -m extproc up ARGS`, once it printed that it is up. However the block ends,
    it is stopped with SIGTERM, which stops its children, killed only after 30 s."""
    process = subprocess.Popen([sys.executable, "-m", "extproc", "up", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        output = _wait_for_line(lines, "Tollgate is up", 60)
        output += _wait_for_line(lines, "Ctrl-C stops everything", 5)
        yield Up(process, output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)


def _wait_for_line(lines: queue.Queue[str], needle: str, timeout: float) -> list[str]:
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
        seen.append(line)
        if needle in line:
            return seen
