"""Each test's outcome in a run of a driver's suite, and the comparison of the run
through tollgate with the run straight to the database.

What fails the comparison: a test that passed directly and did not pass through tollgate
(failed, skipped, or never reached), unless refusals.toml lists it, with the reason; and
an entry of refusals.toml that no longer holds: a pattern whose tests all pass through
tollgate now (or none of which passes directly), or, in a run of the whole suite, one
that names no test at all. Two kinds of entry are spared that: a `being fixed` one whose
tests pass now is reported as fixed (the fix and the list's change may land in either
order), and a `racy` one names tests that pass or not by a race its reason says.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REFUSALS = Path(__file__).resolve().parent / "refusals.toml"
PASSING = frozenset({"passed", "xpassed"})
State = Literal["passed", "failed", "skipped", "xfailed", "xpassed"]
Kind = Literal["by design", "being fixed", "open", "racy"]
KINDS = ("by design", "being fixed", "open", "racy")


@dataclass(frozen=True)
class Outcome:
    state: State
    message: str = ""  # the failure's own line, or the skip's reason
    seconds: float = 0.0

    @property
    def passing(self) -> bool:
        return self.state in PASSING


def read_lines(report: Path) -> list[dict[str, object]]:
    """The plugin's lines (plugin/tollgate_suite_report.py), none if it wrote none."""
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]


def outcomes(lines: Iterable[Mapping[str, object]]) -> dict[str, Outcome]:
    """Each test's outcome from the plugin's lines (one per phase): failed if any phase
    failed, else xfailed or skipped if one was skipped, else passed (xpassed when it was
    expected to fail and did not)."""
    phases: dict[str, list[Mapping[str, object]]] = {}
    for line in lines:
        phases.setdefault(str(line["nodeid"]), []).append(line)
    found = {}
    for nodeid, reported in phases.items():
        seconds = sum(float(str(line["seconds"])) for line in reported)
        failed = [line for line in reported if line["outcome"] == "failed"]
        skipped = [line for line in reported if line["outcome"] == "skipped"]
        state: State
        if failed:
            state, why = "failed", failed[0]
        elif skipped:
            state, why = ("xfailed" if skipped[0]["xfail"] else "skipped"), skipped[0]
        else:
            state = "xpassed" if any(line["xfail"] for line in reported) else "passed"
            why = reported[0]
        found[nodeid] = Outcome(state, str(why["message"]), round(seconds, 3))
    return found


@dataclass(frozen=True)
class Refusal:
    """Tests of one suite that pass directly and not through tollgate: on purpose (`by
    design`), until a change under way lands (`being fixed`), found and not yet decided
    (`open`), or at times only (`racy`: a race between the client, the gateway and the
    server, which the reason names)."""

    suite: str
    tests: tuple[str, ...]  # node ids, where `*` stands for any text
    kind: Kind
    reason: str

    def names(self, nodeid: str) -> str | None:
        """The first of `tests` matching `nodeid`."""
        return next((p for p in self.tests if matches(nodeid, p)), None)


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def matches(nodeid: str, pattern: str) -> bool:
    """Whether `pattern` names `nodeid`: the same text, where each `*` of the pattern
    stands for any (a node id's brackets are its own: no other wildcard)."""
    return _pattern(pattern).fullmatch(nodeid) is not None


def refusals(suite: str, path: Path = REFUSALS) -> list[Refusal]:
    """refusals.toml's entries for `suite`: each has its tests, its kind and its reason."""
    entries = []
    for entry in tomllib.loads(path.read_text(encoding="utf-8")).get(suite, []):
        if set(entry) != {"tests", "kind", "reason"} or not entry["tests"] or \
                entry["kind"] not in KINDS or not entry["reason"]:
            raise ValueError(f"{path}: [[{suite}]] needs tests, a kind (one of {KINDS}) "
                             f"and a reason, and nothing else: {entry}")
        entries.append(Refusal(suite, tuple(entry["tests"]), entry["kind"], entry["reason"]))
    return entries


@dataclass(frozen=True)
class Comparison:
    compared: int  # tests that passed directly
    # Passed directly, not through tollgate, and listed nowhere: (direct, through).
    regressions: dict[str, tuple[Outcome, Outcome | None]]
    # Passed directly, not through tollgate, and listed: the entry that lists it.
    refused: dict[str, tuple[Refusal, Outcome | None]]
    # Patterns of the list that no longer hold, and why.
    stale: list[tuple[Refusal, str, str]]
    # Patterns of `being fixed` entries whose tests pass through tollgate now.
    fixed: list[tuple[Refusal, str]]

    @property
    def holds(self) -> bool:
        return not self.regressions and not self.stale


def compare(direct: Mapping[str, Outcome], through: Mapping[str, Outcome],
            listed: Iterable[Refusal], whole_suite: bool) -> Comparison:
    """The run through tollgate against the direct one (`whole_suite`: the run was of
    the suite's every test, so a pattern that names none is stale)."""
    listed = list(listed)
    regressions: dict[str, tuple[Outcome, Outcome | None]] = {}
    refused: dict[str, tuple[Refusal, Outcome | None]] = {}
    compared = [nodeid for nodeid, outcome in direct.items() if outcome.passing]
    for nodeid in compared:
        there = through.get(nodeid)
        if there is not None and there.passing:
            continue
        entry = next((r for r in listed if r.names(nodeid)), None)
        if entry is None:
            regressions[nodeid] = (direct[nodeid], there)
        else:
            refused[nodeid] = (entry, there)
    stale: list[tuple[Refusal, str, str]] = []
    fixed: list[tuple[Refusal, str]] = []
    for entry in listed:
        for pattern in entry.tests:
            named = [n for n in direct if matches(n, pattern)]
            if not named:
                if whole_suite:
                    stale.append((entry, pattern, "names no test of the suite"))
                continue
            if entry.kind == "racy" or any(refused[n][0] is entry for n in named
                                           if n in refused):
                continue
            if any(direct[n].passing for n in named):
                if entry.kind == "being fixed":
                    fixed.append((entry, pattern))
                else:
                    stale.append((entry, pattern,
                                  "every test it names passes through tollgate now"))
            else:
                stale.append((entry, pattern, "no test it names passes directly"))
    return Comparison(len(compared), regressions, refused, stale, fixed)


def explain(comparison: Comparison) -> str:
    """What fails the comparison, test by test and entry by entry."""
    lines = []
    for nodeid, (direct, there) in sorted(comparison.regressions.items()):
        lines.append(f"passes directly ({direct.seconds:g} s), not through tollgate: "
                     f"{nodeid}\n    {_said(there)}")
    for entry, pattern, why in comparison.stale:
        lines.append(f"refusals.toml [[{entry.suite}]] {pattern!r} ({entry.kind}): {why}")
    return "\n".join(lines)


def _said(outcome: Outcome | None) -> str:
    if outcome is None:
        return "never reached: the run through tollgate ended before it"
    return f"{outcome.state}: {outcome.message.splitlines()[0] if outcome.message else ''}"
