"""The ports tests and benchmarks give their servers (extproc/quickstart/stack.py): free,
below the kernel's ephemeral range (no outgoing connection takes one before its bind),
and never offered to two workers of the suite."""

from __future__ import annotations

import socket

import pytest

from extproc.quickstart import stack


def band(monkeypatch: pytest.MonkeyPatch, worker: str, count: str) -> range:
    """The band of `worker` of `count`, in the suite's default range (whatever range this
    run was given)."""
    monkeypatch.delenv(stack.PORTS_VARIABLE, raising=False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", count)
    return stack._Band().ports


def test_workers_get_disjoint_bands_below_the_ephemeral_range(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bands = [band(monkeypatch, f"gw{i}", "4") for i in range(4)]
    for i, one in enumerate(bands):
        assert one.start >= 20000 and one.stop <= 32768
        assert all(set(one).isdisjoint(other) for other in bands[i + 1:])


def test_ports_are_not_offered_twice_and_a_held_one_is_skipped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(stack.PORTS_VARIABLE, raising=False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "64")  # a small band: 199 ports
    ports = stack._Band()
    first = ports.take(1)
    with socket.socket() as held:
        held.bind(("127.0.0.1", first + 1))
        held.listen()
        second = ports.take(1)
        assert second not in (first, first + 1)
    run = ports.take(3)
    assert {run, run + 1, run + 2}.isdisjoint({first, second})
    # The walk itself: the band is shared with this suite's real worker gw0, whose
    # listeners would be skipped (and the pass wrap early), so none is seen as held here.
    monkeypatch.setattr(stack, "port_in_use", lambda *_: False)
    taken = [ports.take(1) for _ in range(len(ports.ports) - 10)]
    assert len(set(taken)) == len(taken)  # a whole pass before any port comes again
