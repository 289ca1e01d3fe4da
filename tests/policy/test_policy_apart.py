"""A reload's smoke set runs apart (extproc/policy/apart.py): in one process for all the
workers that ask at once, and never longer than someone awaits it. Real processes, real
regorus, Rego tests that take ~1 s of CPU each (tests/faults/test_policy_push.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from extproc.policy import apart
from extproc.policy.sources import read_pack
from extproc.quickstart import stack
from tests.faults.test_policy_push import revision, slow_tests
from tests.policy.test_policy_reload import QUERY
from tests.support.waiting import until

pytestmark = pytest.mark.slow


def slow_pack(tmp_path: Path, tests: int) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "policy.rego").write_text(revision("v1"))
    (directory / "slow_test.rego").write_text(slow_tests(tests))
    return directory


def checkers(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The processes the checks logged running apart, in order."""
    return [int(pid) for pid in re.findall(r"runs apart \(process (\d+)\)", caplog.text)]


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command's name (the state first); none: gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return []


def running(pid: int) -> bool:
    """Whether `pid` runs (not gone, nor a zombie nobody reaped yet)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def checking(pid: int) -> bool:
    """Whether the checking process `pid` is past its start (its imports take ~0.2 s of
    CPU; reading its request, nothing): into the Rego tests, which take seconds."""
    fields = _stat(pid)
    return bool(fields) and int(fields[11]) / os.sysconf("SC_CLK_TCK") > 1.0  # utime


async def test_checks_of_one_pack_at_once_run_its_smoke_set_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """As two workers asked by one SIGHUP: the first process checks, the other waits for
    it and reads its verdict."""
    directory = slow_pack(tmp_path, 2)
    with caplog.at_level(logging.INFO, "tollgate.policy"):
        first, second = await asyncio.gather(
            apart.check(directory, read_pack(directory), QUERY),
            apart.check(directory, read_pack(directory), QUERY))
    assert first == second and first.tests == 2 and first.failed is None
    assert first.checked_by in checkers(caplog) and len(checkers(caplog)) == 2


async def test_a_check_cancelled_as_its_worker_drains_ends_its_process(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = slow_pack(tmp_path, 30)
    with caplog.at_level(logging.INFO, "tollgate.policy"):
        task = asyncio.create_task(apart.check(directory, read_pack(directory), QUERY))
        (pid,) = await until(lambda: checkers(caplog))
        await until(lambda: checking(pid), "the check to be under way", 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await until(lambda: not running(pid))


def test_a_check_ends_with_the_worker_that_asked_even_killed(tmp_path: Path) -> None:
    """SIGKILL gives the worker no chance to end it: the kernel does (PR_SET_PDEATHSIG)."""
    directory = slow_pack(tmp_path, 30)
    worker = subprocess.Popen([sys.executable, "-c", (
        "import asyncio, logging, sys\n"
        "from pathlib import Path\n"
        "from extproc.policy import apart\n"
        "from extproc.policy.sources import read_pack\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
        f"pack = Path({str(directory)!r})\n"
        f"asyncio.run(apart.check(pack, read_pack(pack), {QUERY!r}))\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        said = worker.stdout.readline()  # its first line, once it has spawned the check
        pid = int(re.findall(r"runs apart \(process (\d+)\)", said)[0])
        stack.wait_until(lambda: checking(pid), 60, "the check to be under way")
    finally:
        worker.kill()
        worker.wait()
    stack.wait_until(lambda: not running(pid), 10, "the check to end with its worker")
