"""The benchmark of both MCP generations' smoke (`python -m bench.mcp_generations` with a
few calls): its paths still carry each revision's calls as they should, ~15 s.

No latency is checked (five calls on a busy machine say nothing). The benchmark itself
stops when a path spoke another revision than asked, or when tollgate's read_file answer
holds the card number or another path's lacks it; this checks that it ran every call of
both revisions on all three paths without an error, each in the revision it names.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import run

PATHS = {"direct", "envoy", "tollgate"}
CALLS = 5


@pytest.mark.e2e
@pytest.mark.slow
def test_both_revisions_pass_every_path_and_only_the_gateway_masks(tmp_path: Path) -> None:
    saved, printed = run("bench.mcp_generations", "--calls", str(CALLS), "--warmup", "1",
                         out=tmp_path / "generations.json")
    assert saved["versions"]["2026-07-28"] == dict.fromkeys(PATHS, "2026-07-28")
    assert set(saved["versions"]["2025 session"].values()) <= {"2025-06-18", "2025-11-25"}
    for revision, operations in saved["results"].items():
        assert set(operations) == {"read_file", "tools/list"}, revision
        for operation, rows in operations.items():
            assert set(rows) == PATHS, (revision, operation)
            for path, row in rows.items():
                assert (row["calls"], row["errors"]) == (CALLS, 0), (revision, operation, path)
    assert "tollgate adds per read_file call (masked) over Envoy alone" in printed
