"""Every Envoy bootstrap users start from is valid for the pinned Envoy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from extproc import stack

ENVOY_DIR = Path(__file__).resolve().parent.parent / "envoy"
CONFIGS = sorted(ENVOY_DIR.rglob("*.yaml"))


def test_there_are_configs_to_validate() -> None:
    assert ENVOY_DIR / "quickstart.yaml" in CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_envoy_validates(path: Path) -> None:
    result = subprocess.run(
        [stack.envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "configuration" in result.stdout and "OK" in result.stdout
