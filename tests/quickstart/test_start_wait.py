"""A start waits as long as the machine needs (extproc/quickstart/stack.py's
`ready_or_fail`), with real processes: one that works (CPU) longer than its timeout
before it listens is waited for, saying what it waits for every few seconds; one that
does nothing and never listens fails after its timeout, naming what did not start, where
it should have listened and where its log is; TOLLGATE_START_SECONDS gives every start
longer."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc.quickstart import stack

# Works (CPU) for `seconds`, then listens on `port`.
SLOW = """
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
until = time.monotonic() + seconds
while time.monotonic() < until:
    sum(range(10000))
server = socket.create_server(("127.0.0.1", port))
print("listening", flush=True)
while True:
    server.accept()[0].close()
"""
# Says it starts, then waits for ever on nothing.
STUCK = """
import threading
print("starting, then stuck", flush=True)
threading.Event().wait()
"""


@pytest.fixture
def spawned(tmp_path: Path) -> Iterator[list[stack.Process]]:
    started: list[stack.Process] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's patience on a second's scale, so a test takes seconds: three seconds
    of nothing done is a stall (a busy process on a loaded machine may be given no CPU
    for a second); progress is told from the first second, every second."""
    monkeypatch.setattr(stack, "STALL_SECONDS", 3.0)
    monkeypatch.setattr(stack, "SAY_AFTER", 1.0)
    monkeypatch.setattr(stack, "SAY_EVERY", 1.0)
    monkeypatch.delenv(stack.START_VARIABLE, raising=False)


def test_a_process_still_working_past_its_timeout_is_waited_for_and_told(
        tmp_path: Path, spawned: list[stack.Process], quick: None) -> None:
    port = stack.free_port()
    process = stack.Process.spawn("slow", [sys.executable, "-c", SLOW, str(port), "4"],
                                  tmp_path)
    spawned.append(process)
    said: list[str] = []
    started = time.monotonic()
    with stack.telling(said.append):
        process.ready_or_fail(stack.tcp_accepts(port), 1.0, "accepting connections",
                              "the slow server", f"127.0.0.1:{port}")
    assert time.monotonic() - started >= 4
    assert stack.tcp_accepts(port)()
    assert len(said) >= 2, said
    assert said[0].startswith(f"waiting for the slow server (127.0.0.1:{port}) ... ")
    assert said[-1].endswith(" s") and said[0] != said[-1]


def test_a_process_doing_nothing_fails_naming_what_where_and_its_log(
        tmp_path: Path, spawned: list[stack.Process], quick: None) -> None:
    port = stack.free_port()
    process = stack.Process.spawn("stuck", [sys.executable, "-c", STUCK], tmp_path)
    spawned.append(process)
    with pytest.raises(stack.StackError) as failed:
        process.ready_or_fail(stack.tcp_accepts(port), 1.0, "accepting connections",
                              "the stuck server", f"127.0.0.1:{port}")
    said = str(failed.value)
    assert said.startswith(f"the stuck server (127.0.0.1:{port}) did not start: not "
                           "accepting connections after "), said
    assert f"its log: {tmp_path / 'stuck.log'}" in said
    assert "it did nothing for the last" in said
    assert "starting, then stuck" in said  # the log's tail
    assert stack.START_VARIABLE in said


def test_start_seconds_gives_every_start_longer(
        tmp_path: Path, spawned: list[stack.Process], quick: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that idles before it listens (a slow disk, a name lookup) is no stall
    to wait out: the variable waits longer."""
    port = stack.free_port()
    idle = SLOW.replace("while time.monotonic() < until:\n    sum(range(10000))",
                        "time.sleep(seconds)")
    process = stack.Process.spawn("idle", [sys.executable, "-c", idle, str(port), "3"],
                                  tmp_path)
    spawned.append(process)
    monkeypatch.setenv(stack.START_VARIABLE, "30")
    process.ready_or_fail(stack.tcp_accepts(port), 1.0, "accepting connections",
                          "the idle server", f"127.0.0.1:{port}")
    assert stack.tcp_accepts(port)()
