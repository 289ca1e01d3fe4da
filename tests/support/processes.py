"""Processes the tests run: a server listening for a module's tests, and what the kernel
says of a running process, for tests of who runs what."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from extproc.quickstart import stack


@contextlib.contextmanager
def listening(argv: list[str], port: int, log: Path, what: str, timeout: float = 30,
              **popen: Any) -> Iterator[int]:
    """`argv` run (its output to `log`) until it accepts on `port`, or fails with its log
    if it exits first; stopped when the block ends. `popen`: Popen's `env`, `cwd`."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **popen)
    try:
        stack.wait_until(lambda: stack.tcp_accepts(port)() or process.poll() is not None,
                         timeout, what)
        assert process.poll() is None, log.read_text(errors="replace")
        yield port
    finally:
        process.terminate()
        process.wait(10)


def process_uid(pid: int) -> int:
    """The real user id process `pid` runs as (/proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status names no Uid")
