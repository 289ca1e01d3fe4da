"""A pytest plugin loaded into a driver's own suite (`-p tollgate_suite_report`, from this
folder on PYTHONPATH: the suites have a `tests` package of their own, so nothing of
tollgate's may be importable there by that name).

It writes each test's outcome as it is known, one JSON object a line, to the file
$TOLLGATE_SUITE_REPORT: a run cut short (a crash, the harness's own time limit) still
says what it ran. And it gives each phase of a test (setup, call, teardown)
$TOLLGATE_SUITE_DEADLINE seconds: a test that would wait forever on an answer that
never comes fails with TestDeadline instead, and the suite goes on to the next.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Generator, Iterator
from types import FrameType
from typing import Any

import pytest

_REPORT = os.environ.get("TOLLGATE_SUITE_REPORT")
_DEADLINE = float(os.environ.get("TOLLGATE_SUITE_DEADLINE") or 0)


class TestDeadline(Exception):
    """A phase of a test ran past the harness's deadline."""

    __test__ = False


def _expired(signum: int, frame: FrameType | None) -> None:
    raise TestDeadline(f"still running after {_DEADLINE:g} s (the harness's deadline)")


@contextlib.contextmanager
def _deadline() -> Iterator[None]:
    if not _DEADLINE:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, _DEADLINE)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    with _deadline():
        return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    with _deadline():
        return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    with _deadline():
        return (yield)


def _message(report: pytest.TestReport) -> str:
    """The failure's own line (the exception and its message), or the skip's reason."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        return str(report.longrepr[2])
    return str(report.longrepr or "")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _REPORT:
        return
    line = {"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
            "xfail": hasattr(report, "wasxfail"), "seconds": round(report.duration, 3),
            "message": _message(report)[:500] if report.outcome != "passed" else ""}
    with open(_REPORT, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A module the suite could not import is a failure of every test in it: said."""
    if _REPORT and report.failed:
        with open(_REPORT, "a", encoding="utf-8") as out:
            out.write(json.dumps({"nodeid": report.nodeid, "when": "collect",
                                  "outcome": "failed", "xfail": False, "seconds": 0,
                                  "message": str(report.longrepr)[-500:]}) + "\n")
