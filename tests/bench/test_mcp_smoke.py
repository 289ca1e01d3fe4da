"""The MCP benchmark's smoke (`python -m bench.mcp_calls` with a few calls): its three paths
still carry MCP calls as they should, ~10 s.

It checks no latency (the figures of five calls on a busy machine say nothing): that every
call answered on the server direct, through Envoy alone and through Envoy + tollgate; that
only the gateway's read_file answer is masked and only its answers carry tollgate's trace
id; and that tollgate hid the one tool the pack keeps from an agent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import run

PATHS = {"direct", "envoy", "tollgate"}
CALLS = 5


# e2e: a real Envoy (two), tollgate and the demo MCP server. Not timing: it checks what
# each path answered, no ratio, so it runs beside the other tests.
@pytest.mark.e2e
@pytest.mark.slow
def test_the_three_paths_answer_and_only_the_gateway_masks(tmp_path: Path) -> None:
    saved, _ = run("bench.mcp_calls", "--calls", str(CALLS), "--warmup", "1",
                out=tmp_path / "mcp.json")
    assert set(saved["results"]) == {"query", "read_file", "tools/list"}
    for operation, rows in saved["results"].items():
        assert set(rows) == PATHS, operation
        for path, row in rows.items():
            assert (row["calls"], row["errors"]) == (CALLS, 0), f"{operation} {path}: {row}"
    checks = saved["checks"]
    assert checks["read_file_masked"] == {"direct": False, "envoy": False, "tollgate": True}
    assert checks["trace_id_answers"]["tollgate"] > 0
    assert checks["trace_id_answers"]["direct"] == checks["trace_id_answers"]["envoy"] == 0
    assert "rotate_keys" in checks["tools_listed"]["direct"]
    assert "rotate_keys" in checks["tools_listed"]["envoy"]
    assert "rotate_keys" not in checks["tools_listed"]["tollgate"]
