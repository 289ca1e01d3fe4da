"""The benchmarks' smoke tests; `run` starts one as `make bench` would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run(module: str, *args: str, out: Path, timeout: float = 120) -> tuple[Any, str]:
    """`python -m <module> <args> --json-out <out>` from the repository root: what it
    saved, and what it printed. Fails the test, with the latter, when it exits with an
    error."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args, "--json-out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text(encoding="utf-8")), done.stdout
