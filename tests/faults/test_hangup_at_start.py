"""A SIGHUP while tollgate starts is kept and reloads once it serves, never fatal (it
used to end the workers it reached, restarted a second later and serving again up to
90 s after)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from extproc import hangups, workers
from extproc.quickstart import stack
from tests.test_workers import write_config

pytestmark = pytest.mark.slow


def test_a_sighup_while_the_workers_start_is_kept_for_them_not_fatal(tmp_path: Path) -> None:
    """`kill -HUP` of the supervisor as soon as both workers are forked, while they
    import and load their policies: neither dies of it (it used to end them, restarted a
    second later), and each reloads once its loop takes the signal over."""
    port = stack.free_ports(2)
    process = stack.Process.spawn(
        "tollgate", [sys.executable, "-m", "extproc", "serve", "--config",
                     str(write_config(tmp_path, port))], tmp_path)
    try:
        stack.wait_until(lambda: "worker 1 started" in process.tail(200), 60,
                         "both workers forked")
        process.signal(signal.SIGHUP)
        for serving_port in (port, port + 1):
            process.ready_or_fail(stack.grpc_serving(serving_port), 60, "gRPC health SERVING")
        stack.wait_until(lambda: all(
            f"tollgate.policy[w{i}]: policies reloaded (SIGHUP)" in process.tail(400)
            for i in (0, 1)), 20, "both workers reloading")
        log = process.tail(400)
        assert "exited with status" not in log and "worker 0 started" in log
        assert log.count(" started (pid ") == 2  # neither restarted
    finally:
        process.stop()


def test_a_sighup_before_a_forked_child_s_loop_handles_it_is_kept_and_run_once() -> None:
    """The mechanism alone, in a real forked child (as the supervisor forks its workers):
    a SIGHUP delivered before its loop takes the signal over is remembered, not fatal,
    and runs the loop's reload once when it does."""
    def command(_argv: list[str]) -> int:
        os.kill(os.getpid(), signal.SIGHUP)  # before any loop: start-up
        reloads: list[str] = []
        loop = asyncio.new_event_loop()
        try:
            hangups.handle(loop, lambda: reloads.append("SIGHUP"))
        finally:
            loop.close()
        return 3 if reloads == ["SIGHUP"] else 4

    pid = os.fork()
    if pid == 0:
        workers.run_forked(command, [], dict(os.environ))
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 3
