"""Envoy bootstraps derived from the ones in `envoy/`, for other ports or set-ups.

`tollgate up`, the end-to-end tests and the benchmark all start Envoy from
`envoy/quickstart.yaml`; this module moves its listener, admin and cluster
endpoints to the ports asked for, so the file users read is the file that runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

QUICKSTART = Path(__file__).resolve().parent.parent / "envoy" / "quickstart.yaml"
EXT_PROC_FILTER = "envoy.filters.http.ext_proc"


@dataclass(frozen=True)
class Ports:
    listener: int = 10000
    admin: int = 9901
    ext_proc: int = 50051
    upstream: int = 10080


def load(path: Path = QUICKSTART) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def with_ports(bootstrap: dict[str, Any], ports: Ports) -> dict[str, Any]:
    """A copy listening and connecting on `ports` (the cluster roles: ext_proc, upstream)."""
    config = copy.deepcopy(bootstrap)
    config["admin"]["address"]["socket_address"]["port_value"] = ports.admin
    resources = config["static_resources"]
    (listener,) = resources["listeners"]
    listener["address"]["socket_address"]["port_value"] = ports.listener
    for cluster in resources["clusters"]:
        port = ports.ext_proc if cluster["name"] == "tollgate_extproc" else ports.upstream
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                endpoint["endpoint"]["address"]["socket_address"]["port_value"] = port
    return config


def with_ext_proc_ports(bootstrap: dict[str, Any], ports: list[int]) -> dict[str, Any]:
    """A copy whose ext_proc cluster balances between tollgate replicas on `ports` of
    127.0.0.1 (round robin: one endpoint each, as SO_REUSEPORT would pin Envoy's
    long-lived HTTP/2 connections to one process)."""
    config = copy.deepcopy(bootstrap)
    (cluster,) = [c for c in config["static_resources"]["clusters"]
                  if c["name"] == "tollgate_extproc"]
    cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                     "port_value": port}}}}
        for port in ports]}]
    return config


JWT_AUTHN_FILTER = "envoy.filters.http.jwt_authn"


def _connection_manager(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """The (single) listener's HTTP connection manager config."""
    (listener,) = bootstrap["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (manager,) = chain["filters"]
    return manager["typed_config"]


def http_filters(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    """The HTTP filters of the (single) listener's connection manager."""
    return _connection_manager(bootstrap)["http_filters"]


def jwt_providers(bootstrap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The jwt_authn filter's token providers, by name (none without the filter)."""
    authn = [f for f in http_filters(bootstrap) if f["name"] == JWT_AUTHN_FILTER]
    return dict(authn[0]["typed_config"]["providers"]) if authn else {}


def jwt_provider(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """The jwt_authn filter's (single) token provider."""
    (provider,) = jwt_providers(bootstrap).values()
    return provider


def with_jwt_issuer(
    bootstrap: dict[str, Any], issuer: str, audiences: list[str], jwks: str
) -> dict[str, Any]:
    """A copy whose token provider trusts another issuer: its keys inline, as local_jwks."""
    config = copy.deepcopy(bootstrap)
    jwt_provider(config).update({"issuer": issuer, "audiences": audiences,
                                 "local_jwks": {"inline_string": jwks}})
    return config


def with_routes(bootstrap: dict[str, Any], routes: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy with `routes` ahead of the others (the quickstart's matches every path)."""
    config = copy.deepcopy(bootstrap)
    _connection_manager(config)["route_config"]["virtual_hosts"][0]["routes"][:0] = routes
    return config


def with_clusters(bootstrap: dict[str, Any], clusters: dict[str, int]) -> dict[str, Any]:
    """A copy with more upstream clusters: name -> a port on 127.0.0.1 (plain HTTP/1.1)."""
    config = copy.deepcopy(bootstrap)
    config["static_resources"]["clusters"] += [
        {"name": name, "type": "STATIC", "connect_timeout": "1s",
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
             {"endpoint": {"address": {"socket_address": {
                 "address": "127.0.0.1", "port_value": port}}}}]}]}}
        for name, port in clusters.items()
    ]
    return config


def with_tls(bootstrap: dict[str, Any], cert: Path, key: Path) -> dict[str, Any]:
    """A copy whose listener serves TLS with this certificate (kubectl, for one, sends
    its bearer token only over TLS)."""
    config = copy.deepcopy(bootstrap)
    (listener,) = config["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    chain["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                     "DownstreamTlsContext",
            "common_tls_context": {"tls_certificates": [{
                "certificate_chain": {"filename": str(cert)},
                "private_key": {"filename": str(key)},
            }]},
        },
    }
    return config


def without_ext_proc(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """A copy with the ext_proc filter removed: Envoy alone, the benchmark's baseline."""
    config = copy.deepcopy(bootstrap)
    manager = _connection_manager(config)
    manager["http_filters"] = [f for f in manager["http_filters"] if f["name"] != EXT_PROC_FILTER]
    return config


def write(bootstrap: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(bootstrap, sort_keys=False), encoding="utf-8")
    return path
