"""The MySQL benchmark's smoke (`python -m bench.mysql` for 0.3 s a path and workload):
the read loops still run on their three paths, ~7 s.

It checks no ratio (a second of a busy machine says nothing): that the clients completed
statements of the three workloads directly, through Envoy alone and through Envoy + tollgate
(whose path needs the agent's token: a login tollgate did not check would not have been
accepted, and the benchmark refuses to time a path that masks otherwise than it should),
and that tollgate's CPU per statement was measured.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.bench import run


# e2e: a real Envoy (two), tollgate and the machine's MariaDB. Not timing: it checks that
# every path ran and was measured, no ratio, so it runs beside the other tests.
@pytest.mark.e2e
@pytest.mark.slow
def test_the_read_loops_run_on_the_three_paths(tmp_path: Path) -> None:
    saved, printed = run("bench.mysql", "--seconds", "0.3", "--rounds", "1", "--rows", "1000",
                         "--clients", "2", out=tmp_path / "mysql.json")
    assert set(saved["paths"]) == {"direct", "envoy", "tollgate"}
    for path, row in saved["paths"].items():
        for workload in ("point", "rows", "write"):
            assert row[f"{workload}_statements"] > 0 and row[f"{workload}_qps"] > 0, \
                f"{path}: {row}"
    for workload in ("point", "rows", "write"):
        cpu = saved[workload]["tollgate_cpu_us_per_statement"]
        assert math.isfinite(cpu) and cpu > 0
    assert "tollgate CPU per statement" in printed
    # The cost ledger of each workload (bench/ledger.py), the rows' masking among it.
    for workload in ("point", "rows", "write"):
        found = saved["ledger"][workload]
        assert found["front"] == "mysql" and found["exchanges"] > 0
        assert found["stages"]["decide"] > 0 and found["stages"]["record"] > 0, found
    assert saved["ledger"]["rows"]["stages"]["mask"] > 0
    assert printed.count("cost ledger, mysql: µs per exchange") == 3
