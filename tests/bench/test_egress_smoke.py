"""The egress benchmark's smoke (`python -m bench.egress --smoke`): its four paths still carry
CONNECTs, plain requests and a download as they should, ~15 s.

It checks no timing (a few operations on a busy machine say nothing): the benchmark stops
on any answer that is not a 200, on a download short of its size, and on an answer through
tollgate without tollgate's trace id (or one through Envoy alone with it), so a saved
report means every path worked; the test checks the report's shape, that every measurement
counted its operations on every path, and that the name case was resolved by tollgate
through the benchmark's DNS server (Envoy asks no DNS server: only tollgate knows it).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.bench import run

LATENCY_PATHS = {"direct", "envoy", "tollgate", "tollgate-name"}
DOWNLOAD_PATHS = {"direct", "envoy", "tollgate"}
ROUNDS, OPERATIONS = 2, 10  # --smoke's


# e2e: real Envoys (two), tollgate, destinations and a DNS server. Not timing: it checks
# no ratio (above), so it runs beside the other tests.
@pytest.mark.e2e
@pytest.mark.slow
def test_the_four_paths_carry_connects_requests_and_a_download(tmp_path: Path) -> None:
    saved, printed = run("bench.egress", "--smoke", out=tmp_path / "egress.json")
    for measure in ("connect", "http"):
        assert set(saved[measure]) == LATENCY_PATHS, measure
        for path, row in saved[measure].items():
            assert row["rounds"] == ROUNDS and row["operations"] == ROUNDS * OPERATIONS, row
            assert 0 < row["p50_ms"] <= row["p99_ms"], f"{measure} {path}: {row}"
            roles = {"envoy", "tollgate"} if path.startswith("tollgate") else (
                {"envoy"} if path == "envoy" else set())
            assert set(row["cpu_us"]) == roles, f"{measure} {path}: {row}"
            assert all(math.isfinite(v) and v >= 0 for v in row["cpu_us"].values()), row
    assert set(saved["download"]) == DOWNLOAD_PATHS
    for path, row in saved["download"].items():
        assert row["rounds"] == ROUNDS and row["mb_per_s"] > 0, f"download {path}: {row}"
    # Every CONNECT and GET through tollgate was answered 200 with its trace id.
    answered = saved["checks"]["answered_200"]
    assert answered["connect"]["tollgate"] == answered["http"]["tollgate"] == ROUNDS * OPERATIONS
    assert saved["checks"]["dns_queries_for_name"] > 0
    assert set(saved["added_ms"]["connect"]) >= {"tollgate - envoy", "tollgate-name - tollgate"}
    assert "tollgate adds over Envoy alone" in printed
