"""The egress inspect benchmark's smoke (`python -m bench.egress_inspect --smoke`): its three
paths still carry requests and handshakes as they should, ~15 s.

It checks no timing (a few operations on a busy machine say nothing). The benchmark stops
on an answer that is not a 200 and on a certificate its client does not accept: the
tunnelled path's client trusts the destination's CA alone and the inspected path's the
gateway's egress CA alone, so a saved report means the tunnel was passed unread and the
read one was ended by the gateway, for names it held a leaf of and names it had to mint
one for as the handshake waited. The test checks the report's shape and that every figure
is a time.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.bench import run


# e2e: a real Envoy, tollgate, a destination and a DNS server. Not timing: it checks no
# ratio, so it runs beside the other tests.
@pytest.mark.e2e
@pytest.mark.slow
def test_the_three_paths_carry_requests_and_handshakes(tmp_path: Path) -> None:
    saved, printed = run("bench.egress_inspect", "--smoke", out=tmp_path / "inspect.json")
    assert set(saved["request"]) == {"direct", "tunnel", "inspect"}
    assert set(saved["handshake"]) == {"direct", "tunnel", "inspect-warm", "inspect-cold"}
    for measure in ("request", "handshake"):
        for path, row in saved[measure].items():
            assert 0 < row["p50_ms"] <= row["p99_ms"], f"{measure} {path}: {row}"
            roles = set() if path == "direct" else {"envoy", "tollgate"}
            assert set(row["cpu_ms_per_op"]) == roles, f"{measure} {path}: {row}"
            assert all(math.isfinite(v) and v >= 0 for v in row["cpu_ms_per_op"].values())
    assert saved["ratios"]["added_ms_p50"] > 0  # reading is never free
    assert "inspect adds" in printed
