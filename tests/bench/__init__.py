"""The benchmarks' smoke tests; `run` starts one as `make bench` would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run(module: str, *args: str, out: Path, timeout: float = 120) -> tuple[Any, str]:
    """`python -m <module> <args> --json-out <out>` from the repository root: what it
    saved, and what it printed. Fails the test, with the latter, when it exits with an
    error, or leaves anything of its own in its temporary folder (one of the test's own,
    with a short name: a Unix socket's path, multiprocessing's forkserver's there, holds
    108 bytes at most): every process it started is stopped before what they wrote
    goes, and a worker takes its multiprocessing folder with it."""
    with tempfile.TemporaryDirectory(prefix="tb-") as temporary:
        done = subprocess.run(
            [sys.executable, "-m", module, *args, "--json-out", str(out)],
            cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, "TMPDIR": temporary},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        # Kept: the approvals' wake-up sockets' folder, tollgate-UID, which the processes
        # of one host share across runs (extproc/approvals/wakeup.py).
        left = sorted(p.name for p in Path(temporary).iterdir()
                      if not re.fullmatch(r"tollgate-\d+", p.name))
    assert left == [], f"{module} left {left} in its temporary folder"
    return json.loads(out.read_text(encoding="utf-8")), done.stdout
