"""Every Envoy bootstrap users start from is valid for the pinned Envoy."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from extproc import config, envoy_bootstrap
from extproc.quickstart import stack

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


SHIPPED = [(ENVOY_DIR / "quickstart.yaml", REPO / "extproc" / "quickstart" / "quickstart.yaml"),
           (ENVOY_DIR / "deploy.yaml", REPO / "deploy" / "tollgate.yaml")]


@pytest.mark.parametrize(("bootstrap", "settings"), SHIPPED, ids=[b.name for b, _ in SHIPPED])
def test_routes_name_the_protocol_of_their_target(bootstrap: Path, settings: Path) -> None:
    """Envoy's own answers on a route (a refused token...) take the shape of the protocol
    its metadata names: the route of every llm, k8s and mcp target names it, no other
    does."""
    protocols = {t.match.route: t.protocol for t in config.load(settings).targets}
    found = {r["name"]: envoy_bootstrap.route_protocol(r)
             for r in envoy_bootstrap.routes(envoy_bootstrap.load(bootstrap))}
    assert found == {name: protocols.get(name) if protocols.get(name) in ("llm", "k8s", "mcp")
                     else None for name in found}
    assert {"llm", "mcp"} <= set(found.values())


BOOTSTRAPS = [ENVOY_DIR / "quickstart.yaml", ENVOY_DIR / "deploy.yaml"]


def _seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


@pytest.mark.parametrize(("bootstrap", "settings"), SHIPPED, ids=[b.name for b, _ in SHIPPED])
def test_tokens_must_expire_and_slow_clients_are_cut_off_but_holds_are_not(
    bootstrap: Path, settings: Path,
) -> None:
    """Every token provider requires `exp`, at most 7 days ahead. Request headers must
    arrive within seconds; the whole request, a hold included, within a bound above the
    longest hold (tollgate's max_hold_seconds + 5 <= ext_proc's max_message_timeout <
    request_timeout <= stream_idle_timeout). Envoy caps its client connections."""
    loaded = envoy_bootstrap.load(bootstrap)
    for provider in envoy_bootstrap.jwt_providers(loaded).values():
        assert provider["require_expiration"] is True
        assert _seconds(provider["max_lifetime"]) <= 7 * 86400
    hold = config.load(settings).approvals.max_hold_seconds
    ext_procs = envoy_bootstrap.http_filters(loaded, envoy_bootstrap.EXT_PROC_TYPE)
    longest_hold = min(_seconds(f["typed_config"]["max_message_timeout"]) for f in ext_procs)
    assert hold + 5 <= longest_hold
    for manager in envoy_bootstrap.connection_managers(loaded):
        assert _seconds(manager["request_headers_timeout"]) <= 30
        assert longest_hold < _seconds(manager["request_timeout"]) <= _seconds(
            manager["stream_idle_timeout"])
        assert manager["http2_protocol_options"]["max_concurrent_streams"] <= 1000
    (monitor,) = loaded["overload_manager"]["resource_monitors"]
    assert monitor["name"] == "envoy.resource_monitors.global_downstream_max_connections"
    assert monitor["typed_config"]["max_active_downstream_connections"] > 0


def assert_tollgate_clusters_guarded(bootstrap: dict[str, Any]) -> set[str]:
    """Every cluster whose endpoints are tollgate's is health-checked every second or two,
    before any traffic too, a dead endpoint out after at most two failed checks, and has
    outlier detection ejecting an endpoint that refuses connections. The names checked."""
    names = set()
    for cluster in bootstrap["static_resources"]["clusters"]:
        if cluster["name"] not in envoy_bootstrap.TOLLGATE_CLUSTERS \
                - envoy_bootstrap.EGRESS_CLUSTERS:
            continue
        names.add(cluster["name"])
        (check,) = cluster.get("health_checks") or [None]
        assert check is not None, f"{cluster['name']}: no health check"
        assert _seconds(check["interval"]) <= 2 and _seconds(check["timeout"]) <= 2
        assert _seconds(check["no_traffic_interval"]) <= 2
        assert check["unhealthy_threshold"] <= 2 and check["healthy_threshold"] <= 2
        assert {"tcp_health_check", "grpc_health_check"} & set(check)
        outliers = cluster.get("outlier_detection")
        assert outliers is not None, f"{cluster['name']}: no outlier detection"
        assert outliers["split_external_local_origin_errors"] is True
        assert outliers["consecutive_local_origin_failure"] <= 3
        assert outliers["enforcing_consecutive_local_origin_failure"] == 100
    return names


@pytest.mark.parametrize("bootstrap", BOOTSTRAPS, ids=[b.name for b in BOOTSTRAPS])
def test_every_cluster_of_tollgate_is_health_checked_with_outlier_detection(
        bootstrap: Path, tmp_path: Path) -> None:
    """As shipped, and moved to every front (MySQL's made from PostgreSQL's, the
    Kubernetes stream front's added) as `tollgate up` and the tests run it."""
    loaded = envoy_bootstrap.load(bootstrap)
    assert assert_tollgate_clusters_guarded(loaded) == {
        envoy_bootstrap.EXT_PROC_CLUSTER, envoy_bootstrap.SDS_CLUSTER,
        envoy_bootstrap.POSTGRES_CLUSTER,
        envoy_bootstrap.SSH_CLUSTER}
    moved = envoy_bootstrap.with_stream_front(envoy_bootstrap.with_ports(
        loaded, envoy_bootstrap.Ports(postgres=15432, mysql=13306, ssh=2222), workers=2),
        [10400, 10401])
    # No egress listener here: nor its secret service's cluster.
    assert assert_tollgate_clusters_guarded(moved) == \
        envoy_bootstrap.TOLLGATE_CLUSTERS - envoy_bootstrap.EGRESS_CLUSTERS \
        - {envoy_bootstrap.SDS_CLUSTER}
    result = subprocess.run(
        [stack.envoy_binary(), "--mode", "validate", "-c",
         str(envoy_bootstrap.write(moved, tmp_path / "envoy.yaml")), "--disable-hot-restart"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
