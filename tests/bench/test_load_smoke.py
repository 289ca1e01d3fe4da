"""The load benchmark's smoke (`python -m bench.load --smoke`): no gross regression unseen.

It runs tollgate's three set-ups of issue 17's goals (headers-only decision, 2 KB body
with SQL parsed, masked 2 KB JSON answer) at maximum throughput, each beside the
do-nothing ext_proc asked for the same phases (its floor), three short rounds in turn,
pooled: ~25 s in all. It checks two ratios per set-up against its floor, measured in the
same run, so the machine's speed cancels out: throughput at max, and CPU per request of
every process tollgate runs (workers and recorder included).

The thresholds are not the goals (`make bench` judges those on 10 s phases): they are
today's ratios (2026-11-23, 2-core machine at load average 5 from other test runs:
throughput 0.47 / 0.34-0.41 / 0.25-0.28 of the floor, CPU 2.6-2.8 / 3.2-3.4 / 4.1-4.4x
the floor's) loosened by ~1.5x, which short phases on a busy machine need, and no more,
so that a change that halves throughput or doubles CPU per request crosses them. When
issue 17's work lands, tighten them toward half the goals' ratios. On a quiet machine the
floor costs less and the ratios are higher (2026-11-25, load average under 1, before that
day's changes: CPU 3.8 / 3.8 / 4.9x the floor's; after: 3.7-4.2 / 3.8-4.5 / 5.1-5.4x), so
headers-only CPU's bound is 5.0, where 4.2 had left a quiet run no room.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import run

# set-up: (throughput at max at least, CPU per request at most), as ratios to its floor.
# The masked answer's bound rose from 6.5 to 7.5 when masking grew from 16 detectors to 31
# (national phones and ids, gitleaks' rules, generic secrets): 6.1-6.5x measured since.
# By 2026-11-28 it measured 7.3-8.4x on a quiet machine, alike at that day's first commit
# and its last (8.11x at the first; 7.84, 7.93 and 8.39x at the last), so 7.5 failed
# runs that changed nothing: 10.0 keeps the ~1.2x room the others have over their
# spread, and a doubling of CPU per request still crosses it.
THRESHOLDS = {
    "tollgate-headers": (0.3, 5.0),
    "tollgate-body": (0.22, 5.0),
    "tollgate-masked": (0.16, 10.0),
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
