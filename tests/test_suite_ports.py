"""The suite's ports: TOLLGATE_TEST_PORTS read and checked (extproc/quickstart/stack.py's
port_range, tests/support/suite_ports.py), split into a band per test process, and a bad
value refused before any test runs (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.quickstart import layout, stack
from tests import conftest
from tests.support.suite_ports import quickstart_ports, suite_ports, workers_of

LINUX = range(32768, 61000)  # Linux's default ephemeral ports, 32768-60999
VARIABLE = stack.PORTS_VARIABLE


def test_unset_or_empty_is_the_default_range() -> None:
    assert (stack.DEFAULT_PORTS.start, stack.DEFAULT_PORTS.stop) == (20000, 32768)
    for value in (None, "", "  "):
        assert stack.port_range(value, 4, LINUX) == stack.DEFAULT_PORTS


@pytest.mark.parametrize(("value", "ports"), [
    ("16000-19999", range(16000, 20000)),
    (" 21000 - 22999 ", range(21000, 23000)),
    ("61000-65535", range(61000, 65536)),  # above the ephemeral ports: as good as below
])
def test_a_range_is_low_to_high_inclusive(value: str, ports: range) -> None:
    assert stack.port_range(value, 4, LINUX) == ports


@pytest.mark.parametrize(("value", "problem"), [
    ("abc", "expected LOW-HIGH, e.g. TOLLGATE_TEST_PORTS=20000-32767"),
    ("20000", "expected LOW-HIGH, e.g. TOLLGATE_TEST_PORTS=20000-32767"),
    ("20000-", "expected LOW-HIGH, e.g. TOLLGATE_TEST_PORTS=20000-32767"),
    ("20000:30000", "expected LOW-HIGH, e.g. TOLLGATE_TEST_PORTS=20000-32767"),
    ("-5-30000", "expected LOW-HIGH, e.g. TOLLGATE_TEST_PORTS=20000-32767"),
    ("\uff12\uff10\uff10\uff10\uff10-30000",  # fullwidth digits: not ports
     "expected LOW-HIGH, e.g. TOLLGATE_TEST_PORTS=20000-32767"),
    ("30000-20000", "expected ports 1024-65535, LOW at most HIGH"),
    ("80-2000", "expected ports 1024-65535, LOW at most HIGH"),
    ("20000-70000", "expected ports 1024-65535, LOW at most HIGH"),
])
def test_a_value_that_is_no_range_of_ports_is_refused_naming_it(value: str, problem: str
                                                                 ) -> None:
    with pytest.raises(stack.StackError) as refused:
        stack.port_range(value, 1, LINUX)
    assert str(refused.value) == f"{VARIABLE}={value}: {problem}"


def test_a_range_reaching_into_the_ephemeral_ports_is_refused() -> None:
    with pytest.raises(stack.StackError) as refused:
        stack.port_range("30000-33000", 1, LINUX)
    assert str(refused.value) == (
        f"{VARIABLE}=30000-33000 (30000-33000) reaches into the kernel's ephemeral ports "
        "32768-60999 (/proc/sys/net/ipv4/ip_local_port_range), which outgoing connections "
        f"take: set {VARIABLE} to a range below 32768 or above 60999")
    assert stack.port_range("30000-32767", 1, LINUX) == range(30000, 32768)  # just below


def test_the_default_is_refused_too_where_the_kernel_hands_out_its_ports() -> None:
    """A machine whose ephemeral ports start lower: the default would race outgoing
    connections, and the message says to move it."""
    with pytest.raises(stack.StackError, match=(
            rf"^the suite's default ports \({VARIABLE} unset\) \(20000-32767\) reaches into "
            r"the kernel's ephemeral ports 10000-60999 ")):
        stack.port_range(None, 1, range(10000, 61000))


def test_a_range_too_small_for_the_test_processes_is_refused() -> None:
    assert stack.MIN_BAND == 100
    assert stack.port_range("21000-21399", 4, LINUX) == range(21000, 21400)
    with pytest.raises(stack.StackError) as refused:
        stack.port_range("21000-21398", 4, LINUX)
    assert str(refused.value) == (f"{VARIABLE}=21000-21398 holds 399 ports; 4 test processes "
                                  "need 100 each (400): widen it, or run fewer (-n)")


@pytest.mark.parametrize(("text", "ports"), [
    ("32768\t60999\n", range(32768, 61000)),
    ("1024 65535\n", range(1024, 65536)),
    (None, LINUX),  # no such file (not Linux): Linux's default
    ("garbled\n", LINUX),
])
def test_the_ephemeral_ports_are_read_from_the_kernels_file(
        tmp_path: Path, text: str | None, ports: range) -> None:
    path = tmp_path / "ip_local_port_range"
    if text is not None:
        path.write_text(text, encoding="ascii")
    assert stack.ephemeral_ports(path) == ports


def band(monkeypatch: pytest.MonkeyPatch, worker: str, count: str) -> range:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", count)
    return stack._Band().ports


def test_the_test_processes_split_the_range_the_variable_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "21000-21999")
    bands = [band(monkeypatch, f"gw{i}", "3") for i in range(3)]
    assert bands == [range(21000, 21333), range(21333, 21666), range(21666, 21999)]
    monkeypatch.delenv(VARIABLE)
    assert band(monkeypatch, "gw1", "2") == range(26384, 32768)  # the default's upper half


def test_a_band_takes_its_ports_only_from_the_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "21000-21199")
    assert band(monkeypatch, "gw0", "1") == range(21000, 21200)
    ports = stack._Band()
    taken = [ports.take(1) for _ in range(150)]
    assert len(set(taken)) == 150 and set(taken) <= set(range(21000, 21200))


def test_a_worker_started_again_under_a_new_number_stays_in_the_range(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """xdist names a replacement for a crashed worker after the others (gw4 of 4)."""
    monkeypatch.setenv(VARIABLE, "21000-21399")
    assert band(monkeypatch, "gw4", "4") == band(monkeypatch, "gw0", "4") == range(21000, 21100)


def test_a_band_of_a_bad_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "20000")
    with pytest.raises(stack.StackError, match=f"^{VARIABLE}=20000: expected LOW-HIGH"):
        band(monkeypatch, "gw0", "1")


def test_the_default_range_is_clear_of_the_quickstarts_ports() -> None:
    quickstart = quickstart_ports()
    assert {port.number for port in quickstart} >= {10000, 9901, 8081, 2222, 3128, 15432}
    assert suite_ports(None, 4, LINUX, quickstart) == stack.DEFAULT_PORTS


def test_a_range_holding_a_quickstart_port_is_refused_naming_it() -> None:
    quickstart = (layout.Port(10000, "the Envoy listener"), layout.Port(2222, "Envoy's SSH"))
    with pytest.raises(stack.StackError) as refused:
        suite_ports("9000-10999", 1, LINUX, quickstart)
    assert str(refused.value) == (
        f"{VARIABLE}=9000-10999 (9000-10999) holds 1 of the quickstart's own ports (10000, "
        "the Envoy listener), which the suite starts `tollgate up` on: choose a range clear "
        "of them (the default, 20000-32767, is)")
    assert suite_ports("11000-11999", 1, LINUX, quickstart) == range(11000, 12000)


def test_the_processes_sharing_the_range_are_the_workers_or_the_controllers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    assert workers_of(0) == 3  # in a worker
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT")
    assert (workers_of(4), workers_of(0)) == (4, 1)  # the controller of -n 4; no xdist


def test_the_suite_refuses_to_start_on_a_bad_range(monkeypatch: pytest.MonkeyPatch,
                                                   pytestconfig: pytest.Config) -> None:
    """The check pytest runs before any test (conftest's pytest_configure): a usage error,
    the whole message, where each test starting a server would otherwise fail alone."""
    monkeypatch.setenv(VARIABLE, "21000")
    with pytest.raises(pytest.UsageError, match=f"^{VARIABLE}=21000: expected LOW-HIGH"):
        conftest.pytest_configure(pytestconfig)
    monkeypatch.setenv(VARIABLE, "10000-19999")
    with pytest.raises(pytest.UsageError, match=r"the quickstart.s own ports \(10000, the"):
        conftest.pytest_configure(pytestconfig)
    monkeypatch.setenv(VARIABLE, "21000-25999")
    conftest.pytest_configure(pytestconfig)
