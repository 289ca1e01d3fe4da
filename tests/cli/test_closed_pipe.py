"""`tollgate` into a pipe whose reader leaves (`| head -1`), run as the command it is:
the output stops, nothing is said on stderr (no traceback), and the status is the one a
shell gives a command SIGPIPE ended (141), whichever command it was and wherever its
write met the closed pipe (while it ran, or flushing at its end)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from extproc.cli.common import READER_LEFT
from extproc.recording.chain import Signer
from tests.cli.test_audit_cli import REPO, write_config
from tests.recording.conftest import evidence, record

pytestmark = pytest.mark.e2e  # `tollgate` run as a process

RECORDS = 800
# Every session id this long: each listing of them is over 100 kB, more than a pipe
# holds (64 kB) and `head` reads before it leaves.
SESSION = "agent-run-with-a-long-session-id-as-frameworks-make-them-{:05d}"
# Standard output buffered, as a shell gives it to a command (not PYTHONUNBUFFERED).
BUFFERED = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RECORDS exchanges, each its own session, in a SQLite store."""
    tmp_path = tmp_path_factory.mktemp("closed-pipe")
    url = f"sqlite:///{tmp_path}/store.db"
    now = time.time()
    asyncio.run(record(url, Signer.from_file(tmp_path / "audit.key", create=True), [
        evidence(n, session=SESSION.format(n), started=now - RECORDS + n)
        for n in range(RECORDS)], queue_size=RECORDS + 1))
    return write_config(tmp_path, url)


@pytest.mark.parametrize("command", [
    ["audit", "search", "--kind", "exchange", "--limit", str(RECORDS)],
    ["audit", "search", "--kind", "exchange", "--json", "--limit", str(RECORDS)],
    ["audit", "sessions", "--limit", str(RECORDS)],
])
def test_a_listing_into_head_ends_quietly(config: Path, command: list[str]) -> None:
    """(The exchanges alone: each run is a look at the record, recorded, which the next
    run's full listing would show first.)"""
    whole = subprocess.run([sys.executable, "-m", "extproc", *command, "--config",
                            str(config)], capture_output=True, cwd=REPO, timeout=120,
                           env=BUFFERED)
    assert whole.returncode == 0 and len(whole.stdout) > 100_000, whole.stderr
    piped = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" | head -1', "piped", sys.executable, "-m",
         "extproc", *command, "--config", str(config)],
        capture_output=True, cwd=REPO, timeout=120, env=BUFFERED)
    assert piped.stderr == b""
    assert piped.stdout == whole.stdout.split(b"\n", 1)[0] + b"\n"
    assert piped.returncode == READER_LEFT == 141


@pytest.mark.parametrize("command", [
    ["--help"],
    ["audit", "sessions"],
    ["audit", "search", "--json", "--limit", "1"],
    ["audit", "replay", "--session", SESSION.format(1)],
    ["audit", "verify"],
])
def test_output_to_a_reader_already_gone_ends_quietly(config: Path,
                                                      command: list[str]) -> None:
    """A short output is written once the command is done, as Python flushes it on
    exit, where a closed pipe used to print `Exception ignored ... BrokenPipeError`."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "extproc", *command,
             *([] if command == ["--help"] else ["--config", str(config)])],
            stdout=write, stderr=subprocess.PIPE, cwd=REPO, timeout=120, env=BUFFERED)
    finally:
        os.close(write)
    assert result.stderr == b""
    assert result.returncode == READER_LEFT
