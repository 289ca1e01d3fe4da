"""The pack-cost benchmark's smoke (`python -m bench.pack_cost` on two corpus files, one
batch a case): both programs decide every case alike and each is timed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import run


@pytest.mark.slow
def test_pack_cost_times_both_programs_alike(tmp_path: Path) -> None:
    saved, printed = run("bench.pack_cost", "--batches", "1", "--files", "http.json",
                         "postgres.json", out=tmp_path / "cost.json")
    assert saved["differing"] == []
    assert set(saved["files"]) == {"http.json", "postgres.json"}
    for row in saved["files"].values():
        assert row["cases"] > 0 and row["ungated_us"] > 0 and row["gated_us"] > 0
    assert "| all |" in printed and "decisions that differ: 0" in printed
