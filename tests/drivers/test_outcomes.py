"""The comparison the driver suites' test makes (outcomes.py), on outcomes written here,
and the plugin that reports them from inside a suite (plugin/), run on a suite of two
tests written here: what fails it and what does not, without a database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.drivers import outcomes, suites
from tests.drivers.outcomes import Outcome, Refusal

PASSED, FAILED = Outcome("passed"), Outcome("failed", "boom")
ENTRY = Refusal("s", ("t.py::test_by_design[*]",), "by design", "tollgate refuses it")


def test_every_entry_of_the_list_has_its_tests_kind_and_reason() -> None:
    for suite in suites.SUITES:
        for entry in outcomes.refusals(suite):
            assert entry.tests and entry.reason and entry.kind in outcomes.KINDS


def test_a_malformed_entry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "refusals.toml"
    path.write_text('[[s]]\ntests = ["t.py::a"]\nkind = "maybe"\nreason = "why"\n')
    with pytest.raises(ValueError, match="a kind"):
        outcomes.refusals("s", path)


def test_phases_make_one_outcome() -> None:
    def line(nodeid: str, when: str, outcome: str, xfail: bool = False) -> dict[str, object]:
        return {"nodeid": nodeid, "when": when, "outcome": outcome, "xfail": xfail,
                "seconds": 0.5, "message": f"{when} {outcome}"}

    found = outcomes.outcomes([
        line("a", "setup", "passed"), line("a", "call", "passed"),
        line("a", "teardown", "failed"),
        line("b", "setup", "skipped"), line("c", "call", "skipped", xfail=True),
        line("d", "call", "passed", xfail=True), line("e", "call", "passed")])
    assert {k: v.state for k, v in found.items()} == {
        "a": "failed", "b": "skipped", "c": "xfailed", "d": "xpassed", "e": "passed"}
    assert found["a"].message == "teardown failed" and found["a"].seconds == 1.5


def test_what_passes_directly_and_not_through_is_a_regression() -> None:
    direct = {"t.py::a": PASSED, "t.py::b": PASSED, "t.py::c": PASSED, "t.py::d": FAILED}
    through = {"t.py::a": PASSED, "t.py::b": FAILED, "t.py::c": Outcome("skipped"),
               "t.py::d": FAILED}
    comparison = outcomes.compare(direct, through, [], whole_suite=False)
    assert comparison.compared == 3  # d fails either way: nothing to compare
    assert set(comparison.regressions) == {"t.py::b", "t.py::c"}  # a skip is no pass
    assert not comparison.holds


def test_a_test_the_run_through_never_reached_is_a_regression() -> None:
    comparison = outcomes.compare({"t.py::a": PASSED}, {}, [], whole_suite=False)
    assert "never reached" in outcomes.explain(comparison)


def test_a_listed_test_is_refused_with_its_reason() -> None:
    comparison = outcomes.compare({"t.py::test_by_design[x-1]": PASSED},
                                  {"t.py::test_by_design[x-1]": FAILED}, [ENTRY],
                                  whole_suite=True)
    assert comparison.holds
    assert comparison.refused == {"t.py::test_by_design[x-1]": (ENTRY, FAILED)}


def test_brackets_of_a_node_id_are_its_own() -> None:
    assert outcomes.matches("t.py::test[a]", "t.py::test[a]")
    assert not outcomes.matches("t.py::testa", "t.py::test[a]")
    assert outcomes.matches("t.py::test[update t set x = 1]", "t.py::test[update *]")


def test_an_entry_whose_tests_pass_through_now_is_stale() -> None:
    comparison = outcomes.compare({"t.py::test_by_design[1]": PASSED},
                                  {"t.py::test_by_design[1]": PASSED}, [ENTRY],
                                  whole_suite=False)
    assert not comparison.holds
    assert "passes through tollgate now" in outcomes.explain(comparison)


def test_a_fix_under_way_that_landed_is_reported_not_failed() -> None:
    fixing = Refusal("s", ("t.py::test_fixing",), "being fixed", "a change under way")
    comparison = outcomes.compare({"t.py::test_fixing": PASSED},
                                  {"t.py::test_fixing": PASSED}, [fixing], whole_suite=True)
    assert comparison.holds and comparison.fixed == [(fixing, "t.py::test_fixing")]


def test_a_racy_entry_is_never_stale() -> None:
    racy = Refusal("s", ("t.py::test_race",), "racy", "buffers against the error")
    for there in (PASSED, FAILED):
        comparison = outcomes.compare({"t.py::test_race": PASSED}, {"t.py::test_race": there},
                                      [racy], whole_suite=True)
        assert comparison.holds and not comparison.fixed


def test_an_entry_whose_tests_fail_directly_is_stale() -> None:
    comparison = outcomes.compare({"t.py::test_by_design[1]": FAILED},
                                  {"t.py::test_by_design[1]": FAILED}, [ENTRY],
                                  whole_suite=False)
    assert "no test it names passes directly" in outcomes.explain(comparison)


def test_an_entry_naming_no_test_is_stale_only_in_a_whole_run() -> None:
    direct, through = {"t.py::other": PASSED}, {"t.py::other": PASSED}
    assert outcomes.compare(direct, through, [ENTRY], whole_suite=False).holds
    whole = outcomes.compare(direct, through, [ENTRY], whole_suite=True)
    assert "names no test of the suite" in outcomes.explain(whole)


SUITE = """
import signal
import pytest

def test_passes():
    pass

def test_waits_for_what_never_comes():
    signal.pause()

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass
"""


@pytest.mark.slow
def test_the_plugin_reports_each_test_and_fails_one_past_its_deadline(
        tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    report = tmp_path / "outcomes.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suites.NOT_OURS,
         "-p", "tollgate_suite_report", "test_suite.py"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(suites.PLUGIN),
             "TOLLGATE_SUITE_REPORT": str(report), "TOLLGATE_SUITE_DEADLINE": "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    found = outcomes.outcomes(outcomes.read_lines(report))
    assert {k.split("::")[1]: v.state for k, v in found.items()} == {
        "test_passes": "passed", "test_waits_for_what_never_comes": "failed",
        "test_skipped": "skipped"}
    waited = found["test_suite.py::test_waits_for_what_never_comes"]
    assert "TestDeadline: still running after 1 s" in waited.message
    assert found["test_suite.py::test_skipped"].message == "Skipped: not here"
