"""The PostgreSQL benchmark's smoke (`python -m bench.postgres` for a second a path):
pgbench's select-only script and a script of one-row UPDATEs still run on the four
paths, ~30 s.

It checks no ratio (a second of a busy machine says nothing): that pgbench completed
statements directly, through Envoy alone, through Envoy and the do-nothing relay front
(bench/pg_relay.py, the floor) and through Envoy + tollgate (whose path needs the agent's
token: a login tollgate did not check would not have been accepted), and that the CPU
per statement of tollgate and of the relay was measured.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.bench import run


# e2e: a real Envoy (two), tollgate and the machine's PostgreSQL. Not timing: it checks
# that every path ran and was measured, no ratio, so it runs beside the other tests.
@pytest.mark.e2e
@pytest.mark.slow
def test_pgbench_runs_on_the_four_paths(tmp_path: Path) -> None:
    saved, printed = run("bench.postgres", "--seconds", "1", "--rounds", "1", "--scale", "1",
                         out=tmp_path / "postgres.json", timeout=240)
    assert set(saved["paths"]) == {"direct", "envoy", "relay", "tollgate"}
    for path, row in saved["paths"].items():
        assert row["statements"] > 0 and row["tps"] > 0, f"{path}: {row}"
    for cpu in (saved["tollgate_cpu_us_per_statement"], saved["relay_cpu_us_per_statement"]):
        assert math.isfinite(cpu) and cpu > 0
    assert "tollgate CPU per statement" in printed and "the relay floor: " in printed
    # The writes, apart: every path ran them too (through tollgate each is measured).
    writes = saved["writes"]
    for path, row in writes["paths"].items():
        assert row["statements"] > 0 and row["tps"] > 0, f"writes, {path}: {row}"
    assert math.isfinite(writes["tollgate_cpu_us_per_statement"])
    assert "an UPDATE of one account (the effect measured)" in printed
    # The cost ledger (bench/ledger.py) of each: every stage of an act timed, and the
    # writer's share, beside the CPU.
    for kind in ("reads", "writes"):
        found = saved["ledger"][kind]
        assert found["front"] == "postgres" and found["exchanges"] > 0
        assert all(found["stages"][s] > 0 for s in ("open", "interpret", "decide", "span",
                                                     "record")), found
        assert found["writer"]["chain"] > 0 and found["cpu_us"] > 0
    assert printed.count("cost ledger, postgres: µs per exchange") == 2
