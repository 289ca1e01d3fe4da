"""The load benchmark's smoke (`python -m bench.load --smoke`): no gross regression unseen.

It runs tollgate's three set-ups of issue 17's goals (headers-only decision, 2 KB body
with SQL parsed, masked 2 KB JSON answer) at maximum throughput, each beside the
do-nothing ext_proc asked for the same phases (its floor), three short rounds in turn,
pooled: ~25 s in all. It checks two ratios per set-up against its floor, measured in the
same run, so the machine's speed cancels out: throughput at max, and CPU per request of
every process tollgate runs (workers and recorder included).

The thresholds are not the goals (`make bench` judges those on 10 s phases): they sit
between the ratios' spread over quiet and busy runs and what a regression does (a halving
of throughput, a doubling of CPU per request), so that the floor's own noise does not
cross them and such a change does; THRESHOLDS says from which figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import run

# set-up: (throughput at max at least, CPU per request at most), as ratios to its floor.
# The ratios' spread comes mostly from the floor: the do-nothing ext_proc's CPU per
# request moves by ~15% between runs (486-660 us for the same phases on 2026-11-28's
# quiet machine), as the two cores are shared differently among the load generator,
# Envoy and the upstream. Six quiet runs that day, at the session's first commit and at
# its last alike: throughput 0.35-0.41 / 0.39-0.46 / 0.16-0.21, CPU 3.97-4.69 /
# 3.95-4.55 / 7.45-8.71x; CI had measured the body's CPU at 5.01x, over the 5.0 bound
# then kept, on a commit that had not changed the path. Each bound now sits between the
# spread (with ~1.3x room below and above it) and what a regression does: a halving of
# throughput (0.19 / 0.21 / 0.10) or a doubling of CPU per request (8.6 / 8.5 / 16)
# still crosses it.
THRESHOLDS = {
    "tollgate-headers": (0.26, 6.0),
    "tollgate-body": (0.26, 6.0),
    "tollgate-masked": (0.13, 11.5),
}


# e2e: real Envoys, tollgate and the do-nothing ext_proc; timing: `make test` runs it
# alone, after the rest, as a busy CPU would blur the ratios.
@pytest.mark.e2e
@pytest.mark.timing
@pytest.mark.slow
def test_smoke_ratios_against_the_floors_show_no_gross_regression(tmp_path: Path) -> None:
    saved, printed = run("bench.load", "--smoke", out=tmp_path / "smoke.json")
    assert {row["setup"] for row in saved["goals"]} == set(THRESHOLDS)
    for label, phases in saved["results"].items():
        assert phases["max"]["errors"] == 0, f"{label}: {phases['max']['errors']} errors"
    figures = {row["setup"]: (row["checks"]["throughput at max"]["value"],
                              row["checks"]["CPU per request"]["value"])
               for row in saved["goals"]}
    regressed = {
        setup: f"throughput {throughput:.2f}x the floor's (>= {minimum}), "
               f"CPU {cpu:.2f}x (<= {maximum})"
        for setup, (minimum, maximum) in THRESHOLDS.items()
        for throughput, cpu in [figures[setup]]
        if throughput < minimum or cpu > maximum
    }
    assert not regressed, f"{regressed}\n{printed}"
