"""The suite's own measurement (tests/support/suite_report.py): a run given
`--suite-report=DIR` leaves in DIR what each test and fixture cost, and the report made
from it names the slowest tests with why they are slow, failures included."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import suite_report

REPO = Path(__file__).resolve().parents[1]
# Each test reads a pytest run of its own (~7 s of CPU).
pytestmark = pytest.mark.slow

MEASURED = '''
import subprocess
import sys
import time

import pytest


@pytest.fixture(scope="module")
def slow_set_up():
    time.sleep(0.3)


def test_sleeps(slow_set_up):
    time.sleep(0.6)


def test_waits_on_a_command():
    subprocess.run([sys.executable, "-c", "import time; time.sleep(0.6)"], check=True)


def test_fails():
    assert False


@pytest.mark.xfail(strict=True)
def test_expected_to_fail():
    assert False
'''


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of one measured run of MEASURED (a pytest process of its own)."""
    tmp_path = tmp_path_factory.mktemp("measured")
    (tmp_path / "test_measured.py").write_text(MEASURED)
    folder = tmp_path / "report"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.suite_report", "-q",
         "-p", "no:cacheprovider", f"--suite-report={folder}", "test_measured.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    return folder


def test_a_run_leaves_each_test_s_cost_and_a_report_naming_why_it_was_slow(
        measured: Path) -> None:
    folder = measured
    lines = [json.loads(line) for path in folder.glob("*.jsonl")
             for line in path.read_text().splitlines()]
    tests = {line["id"].split("::")[1]: line for line in lines if line["kind"] == "test"}
    assert set(tests) == {"test_sleeps", "test_waits_on_a_command", "test_fails",
                          "test_expected_to_fail"}
    assert tests["test_sleeps"]["sleeping"] >= 0.85  # the fixture's 0.3 s and its own 0.6 s
    assert tests["test_sleeps"]["phases"]["setup"] >= 0.3
    waited = tests["test_waits_on_a_command"]
    assert 0.6 <= waited["commands"] <= waited["wall"]  # subprocess.run's wait counted once
    assert tests["test_fails"]["outcome"] == "failed in call"
    assert tests["test_expected_to_fail"]["outcome"] == "xfailed in call"
    fixtures = [line for line in lines if line["kind"] == "fixture"]
    assert any(f["name"] == "slow_set_up" and f["wall"] >= 0.3 for f in fixtures)
    report = (folder / "report.md").read_text()  # written though a test failed
    rows = [row for row in report.splitlines() if row.startswith("| test_measured.py::")]
    assert any("test_sleeps" in row and "sleeping" in row for row in rows)
    assert any("test_waits_on_a_command" in row and "waiting on commands" in row for row in rows)
    assert "runs (wall): main" in report
    # The machine's speed read as the run began and as it ended.
    (run,) = [line for line in lines if line["kind"] == "run"]
    assert all(0 < speed < 5 for speed in run["speed"])
    assert re.search(r"speed .*: main \d\.\d{3} s at its start, \d\.\d{3} s at its end",
                     report)


def test_the_command_writes_the_report_of_a_folder_and_says_when_it_holds_none(
        measured: Path, tmp_path: Path) -> None:
    assert suite_report.main([str(tmp_path)]) == 1
    for path in measured.glob("*.jsonl"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    assert suite_report.main([str(tmp_path)]) == 0
    assert (tmp_path / "report.md").read_text() == (measured / "report.md").read_text()


def test_why_names_each_reason_that_took_a_quarter_of_the_test_largest_first() -> None:
    test = {"wall": 10.0, "cpu": 1.0, "children": 3.0, "starting": 4.0,
            "started": {"gateway": 1, "sshd": 2}, "sleeping": 0.5, "commands": 0.0,
            "hypothesis": False}
    assert suite_report.why(test) == ("blocked 4.5 s (on sockets, servers or a lock); "
                                      "starting servers 4.0 s (gateway, sshd x2); CPU in its "
                                      "servers 3.0 s")
