"""The instruction reader's bench (`python -m bench.instructions --smoke`): its own labelled
set, every spelling of every injection found in every carrier, no ordinary answer taken
for one (the held-out sets are `make bench`'s: they are fetched from PyPI)."""

from __future__ import annotations

from pathlib import Path

from bench.instructions import SPELLINGS
from tests.bench import run


def test_the_own_set_is_read_whole_and_no_ordinary_answer_flagged(tmp_path: Path) -> None:
    saved, printed = run("bench.instructions", "--smoke", out=tmp_path / "table.json")
    results = {row["class"]: row["result"] for row in saved}
    for spelling in SPELLINGS:
        found, total = results[f"{spelling} (found)"].split(" ")[0].split("/")
        assert found == total, (spelling, results)
    assert results["ordinary (false positives)"].startswith("0/"), results
    assert float(results["µs per KB"]) > 0 and "µs per KB" in printed
