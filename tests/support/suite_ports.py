"""The ports the suite gives its servers (extproc/quickstart/stack.py: 20000-32767, or
TOLLGATE_TEST_PORTS=LOW-HIGH), checked before any test runs (tests/conftest.py): what
stack.port_range checks (a LOW-HIGH, clear of the kernel's ephemeral ports, a band of
stack.MIN_BAND for each test process), and clear of the quickstart's own ports, which
tests/quickstart/test_up.py starts `tollgate up` on."""

from __future__ import annotations

import os
from collections.abc import Iterable

from extproc import config
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import layout, stack


def quickstart_ports() -> tuple[layout.Port, ...]:
    """Every port `tollgate up` takes, unmoved, on this machine (one run per core)."""
    return layout.plan(config.load(QUICKSTART_CONFIG)).ports


def suite_ports(value: str | None, workers: int, ephemeral: range,
                quickstart: Iterable[layout.Port]) -> range:
    """The range TOLLGATE_TEST_PORTS's `value` names, for `workers` test processes;
    stack.StackError, saying what to change, where it will not do."""
    ports = stack.port_range(value, workers, ephemeral)
    clash = [port for port in quickstart if port.number in ports]
    if clash:
        taken = "; ".join([f"{p.number}, {p.role}" for p in clash[:3]]
                          + (["..."] if len(clash) > 3 else []))
        default = f"{stack.DEFAULT_PORTS.start}-{stack.DEFAULT_PORTS.stop - 1}"
        raise stack.StackError(
            f"{stack.PORTS_VARIABLE}={value} ({ports.start}-{ports.stop - 1}) holds "
            f"{len(clash)} of the quickstart's own ports ({taken}), which the suite starts "
            f"`tollgate up` on: choose a range clear of them (the default, {default}, is)")
    return ports


def workers_of(controller_processes: int) -> int:
    """How many test processes share the range: a worker's PYTEST_XDIST_WORKER_COUNT, or
    the processes the controller is to start (1: none, the tests run in it)."""
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0) or controller_processes or 1
