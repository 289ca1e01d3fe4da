"""What the kernel says of a running process, for tests of who runs what."""

from __future__ import annotations

from pathlib import Path


def process_uid(pid: int) -> int:
    """The real user id process `pid` runs as (/proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status names no Uid")
