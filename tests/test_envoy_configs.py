"""Every Envoy bootstrap users start from is valid for the pinned Envoy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from extproc import config, envoy_bootstrap, stack

REPO = Path(__file__).resolve().parent.parent
ENVOY_DIR = REPO / "envoy"
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


SHIPPED = [(ENVOY_DIR / "quickstart.yaml", REPO / "extproc" / "quickstart.yaml"),
           (ENVOY_DIR / "deploy.yaml", REPO / "deploy" / "tollgate.yaml")]


@pytest.mark.parametrize(("bootstrap", "settings"), SHIPPED, ids=[b.name for b, _ in SHIPPED])
def test_routes_name_the_protocol_of_their_target(bootstrap: Path, settings: Path) -> None:
    """Envoy's own answers on a route (a refused token...) take the shape of the protocol
    its metadata names: the route of every llm and k8s target names it, no other does."""
    protocols = {t.match.route: t.protocol for t in config.load(settings).targets}
    found = {r["name"]: envoy_bootstrap.route_protocol(r)
             for r in envoy_bootstrap.routes(envoy_bootstrap.load(bootstrap))}
    assert found == {name: protocols.get(name) if protocols.get(name) in ("llm", "k8s")
                     else None for name in found}
    assert "llm" in found.values()
