"""Envoy bootstraps: what tollgate reads in one, and copies for other ports or set-ups.

`tollgate up`, the end-to-end tests and the benchmark all start Envoy from
`envoy/quickstart.yaml`; this module moves its listener, admin and cluster
endpoints to the ports asked for, so the file users read is the file that runs.

A real bootstrap has several listeners (a plain one and a TLS one for kubectl, say),
each with filter chains and HTTP connection managers: every reader here goes over
all of them, and one that needs exactly one of something names what it found when
there are several. Filters are recognised by their config's type, as Envoy does (a
filter's `name` is free text).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

QUICKSTART = Path(__file__).resolve().parent.parent / "envoy" / "quickstart.yaml"
# Envoy's PostgreSQL listener, and the cluster of tollgate's PostgreSQL front behind it.
POSTGRES_LISTENER = "postgres"
# The forward proxy agents' outbound traffic takes, and the cluster it connects through
# (the addresses tollgate pins).
EGRESS_LISTENER = "egress"
EGRESS_CLUSTER = "egress_destinations"
POSTGRES_CLUSTER = "tollgate_postgres"
# Envoy's SSH listener, and the cluster of tollgate's SSH front behind it.
SSH_LISTENER = "ssh"
SSH_CLUSTER = "tollgate_ssh"
# tollgate's Kubernetes stream front, and the header its stream routes name their k8s
# route in (extproc/kube/front.py's ROUTE_HEADER).
KUBE_CLUSTER = "tollgate_k8s"
KUBE_ROUTE_HEADER = "x-tollgate-route"
# jwt_authn's filter name, for per-route configs (`typed_per_filter_config` is keyed by it).
JWT_AUTHN_FILTER = "envoy.filters.http.jwt_authn"

_TYPE = "type.googleapis.com/envoy.extensions.filters."
CONNECTION_MANAGER_TYPE = (
    f"{_TYPE}network.http_connection_manager.v3.HttpConnectionManager")
JWT_AUTHN_TYPE = f"{_TYPE}http.jwt_authn.v3.JwtAuthentication"
EXT_PROC_TYPE = f"{_TYPE}http.ext_proc.v3.ExternalProcessor"
EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
# The clusters `with_ports` moves, by name: the rest are left as they are.
EXT_PROC_CLUSTER = "tollgate_extproc"
DEMO_CLUSTER = "demo_upstream"
DEMO_MCP_CLUSTER = "demo_mcp"


class BootstrapError(ValueError):
    """The bootstrap does not hold what a reader needs, or holds it ambiguously (the
    message names what it found)."""


@dataclass(frozen=True)
class Ports:
    listener: int = 10000
    admin: int = 9901
    ext_proc: int = 10100  # and the next ones, one per worker
    upstream: int = 10080  # the demo upstream's (cluster demo_upstream)
    mcp: int = 10081  # the demo MCP server's (cluster demo_mcp)
    # Envoy's PostgreSQL listener (None: the bootstrap's is left out), and tollgate's
    # PostgreSQL front behind it (cluster tollgate_postgres, one endpoint per worker
    # from this port).
    postgres: int | None = None
    postgres_front: int = 10200
    # Envoy's egress listener (None: it is left out, with its cluster).
    egress: int | None = None
    # Envoy's SSH listener (None: left out), and tollgate's SSH front behind it (cluster
    # tollgate_ssh, one endpoint per worker from this port).
    ssh: int | None = None
    ssh_front: int = 10300


def load(path: Path = QUICKSTART) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def listeners(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    return bootstrap["static_resources"].get("listeners") or []


def http_listeners(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    """The listeners with an HTTP connection manager (not PostgreSQL's tcp_proxy)."""
    names = {name for name, _ in _managers(bootstrap)}
    return [x for x in listeners(bootstrap) if x.get("name", "(unnamed)") in names]


def _managers(bootstrap: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every HTTP connection manager's config, with the listener it is in: over all
    listeners and all their filter chains (the default one included)."""
    for listener in listeners(bootstrap):
        chains = [*listener.get("filter_chains", ()),
                  *([listener["default_filter_chain"]] if "default_filter_chain" in listener
                    else [])]
        for chain in chains:
            for network_filter in chain.get("filters", ()):
                config = network_filter.get("typed_config") or {}
                if config.get("@type") == CONNECTION_MANAGER_TYPE:
                    yield listener.get("name", "(unnamed)"), config


def connection_managers(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    """Every HTTP connection manager's config, in every listener and filter chain."""
    return [manager for _, manager in _managers(bootstrap)]


def _filters(bootstrap: dict[str, Any], type_url: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every HTTP filter whose config is of `type_url`, with the listener it is in."""
    for listener, manager in _managers(bootstrap):
        for http_filter in manager.get("http_filters", ()):
            if (http_filter.get("typed_config") or {}).get("@type") == type_url:
                yield listener, http_filter


def http_filters(bootstrap: dict[str, Any], type_url: str) -> list[dict[str, Any]]:
    """Every HTTP filter whose config is of `type_url`, in every connection manager."""
    return [http_filter for _, http_filter in _filters(bootstrap, type_url)]


def routes(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    """Every route of every connection manager's inline route config (RDS ones are not
    in the bootstrap)."""
    return [route for manager in connection_managers(bootstrap)
            for host in (manager.get("route_config") or {}).get("virtual_hosts", ())
            for route in host.get("routes", ())]


def route_protocol(route: dict[str, Any]) -> str | None:
    """The protocol a route's metadata names (`filter_metadata: {tollgate: {protocol:
    llm}}`), which gives Envoy's own answers on it that protocol's shape."""
    tollgate = ((route.get("metadata") or {}).get("filter_metadata") or {}).get("tollgate")
    return (tollgate or {}).get("protocol")


def _one(found: list[Any], what: str, names: list[str]) -> Any:
    """The single item of `found`; else a BootstrapError naming every one."""
    if len(found) != 1:
        listed = f": {', '.join(names)}" if names else ""
        raise BootstrapError(f"expected one {what}, the bootstrap has {len(found)}{listed}")
    return found[0]


def _the_listener(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """The HTTP listener targets are reached on: the only one with an HTTP connection
    manager, the egress listener (agents' way out) aside."""
    found = [x for x in http_listeners(bootstrap) if x.get("name") != EGRESS_LISTENER]
    return _one(found, "listener", [x.get("name", "(unnamed)") for x in found])


def jwt_providers(bootstrap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The token providers of every jwt_authn filter, by name (none without the filter).

    Listeners often share a provider, repeated in each: the same name with the same
    config is one provider. The same name with another config is an error, as a token
    would then verify or not depending on the listener it came through.
    """
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for listener, authn in _filters(bootstrap, JWT_AUTHN_TYPE):
        for name, provider in (authn["typed_config"].get("providers") or {}).items():
            first, known = found.setdefault(name, (listener, provider))
            if known != provider:
                raise BootstrapError(
                    f"jwt_authn provider {name!r} is configured differently in listener "
                    f"{first} and listener {listener}: give them different names, or the "
                    "same config")
    return {name: provider for name, (_, provider) in found.items()}


def jwt_provider(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """The bootstrap's only jwt_authn token provider."""
    providers = jwt_providers(bootstrap)
    return _one(list(providers.values()), "jwt_authn provider", list(providers))


def with_ports(bootstrap: dict[str, Any], ports: Ports, workers: int = 1) -> dict[str, Any]:
    """A copy of a bootstrap listening and connecting on `ports`: its HTTP listener,
    admin, the cluster demo_upstream, the cluster demo_mcp (when it has one), and the
    cluster tollgate_extproc with one endpoint per tollgate worker (ports.ext_proc, and
    the ports after it); and Envoy's PostgreSQL listener on `ports.postgres` with the
    cluster of tollgate's PostgreSQL front, one endpoint per worker from
    `ports.postgres_front` (both left out when `ports.postgres` is None: nothing
    serves PostgreSQL); the same for SSH (`ports.ssh`, `ports.ssh_front`); and the egress
    listener on `ports.egress` (left out, with its cluster, when None)."""
    config = copy.deepcopy(bootstrap)
    _front(config, POSTGRES_LISTENER, POSTGRES_CLUSTER, ports.postgres,
           [ports.postgres_front + i for i in range(workers)])
    _front(config, SSH_LISTENER, SSH_CLUSTER, ports.ssh,
           [ports.ssh_front + i for i in range(workers)])
    _egress(config, ports.egress)
    config["admin"]["address"]["socket_address"]["port_value"] = ports.admin
    _the_listener(config)["address"]["socket_address"]["port_value"] = ports.listener
    moved = [(_cluster(config, DEMO_CLUSTER), ports.upstream)]
    if any(c["name"] == DEMO_MCP_CLUSTER for c in config["static_resources"]["clusters"]):
        moved.append((_cluster(config, DEMO_MCP_CLUSTER), ports.mcp))
    for cluster, port in moved:
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                endpoint["endpoint"]["address"]["socket_address"]["port_value"] = port
    return with_ext_proc_ports(config, [ports.ext_proc + i for i in range(workers)])


def _front(config: dict[str, Any], listener: str, cluster: str, port: int | None,
           fronts: list[int]) -> None:
    """A listener whose tcp_proxy hands connections to one of tollgate's own protocol
    fronts (one endpoint per worker), or neither when nothing serves it."""
    if _optional(config, listener, cluster, port):
        _spread(_cluster(config, cluster), fronts)


def _egress(config: dict[str, Any], port: int | None) -> None:
    _optional(config, EGRESS_LISTENER, EGRESS_CLUSTER, port)


def _optional(config: dict[str, Any], listener: str, cluster: str, port: int | None) -> bool:
    """Move listener `listener` to `port`; or, with no port (or no such listener), leave
    it out with its cluster `cluster`. Whether it stays."""
    resources = config["static_resources"]
    found = [x for x in resources["listeners"] if x.get("name") == listener]
    if port is None or not found:
        resources["listeners"] = [x for x in resources["listeners"] if x not in found]
        resources["clusters"] = [c for c in resources["clusters"] if c.get("name") != cluster]
        return False
    found[0]["address"]["socket_address"]["port_value"] = port
    return True


def with_ext_proc_ports(bootstrap: dict[str, Any], ports: list[int]) -> dict[str, Any]:
    """A copy whose ext_proc cluster balances between tollgate processes (workers or
    replicas) on `ports` of its first endpoint's address: one endpoint each, as
    SO_REUSEPORT would pin Envoy's few long-lived HTTP/2 connections to one process."""
    return with_cluster_ports(bootstrap, EXT_PROC_CLUSTER, ports)


def with_cluster_ports(bootstrap: dict[str, Any], name: str, ports: list[int]) -> dict[str, Any]:
    """A copy whose cluster `name` has one endpoint per port, on its first endpoint's
    address (tollgate's processes: replicas and their workers)."""
    config = copy.deepcopy(bootstrap)
    _spread(_cluster(config, name), ports)
    return config


def _spread(cluster: dict[str, Any], ports: list[int]) -> None:
    """One endpoint of `cluster` per port, on its first endpoint's address."""
    first = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    endpoints = []
    for port in ports:
        endpoint = copy.deepcopy(first)
        endpoint["endpoint"]["address"]["socket_address"]["port_value"] = port
        endpoints.append(endpoint)
    cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": endpoints}]


def ext_proc_ports(bootstrap: dict[str, Any]) -> set[int]:
    """The ports the ext_proc cluster's endpoints name (whatever their addresses)."""
    return {endpoint["endpoint"]["address"]["socket_address"]["port_value"]
            for group in _cluster(bootstrap, EXT_PROC_CLUSTER)["load_assignment"]["endpoints"]
            for endpoint in group.get("lb_endpoints", ())}


def _cluster(bootstrap: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in bootstrap["static_resources"].get("clusters") or []
             if c["name"] == name]
    return _one(found, f"cluster {name}", [name] * len(found))


def with_jwt_issuer(
    bootstrap: dict[str, Any], issuer: str, audiences: list[str], jwks: str
) -> dict[str, Any]:
    """A copy whose (only) token provider trusts another issuer, its keys inline as
    local_jwks, in every jwt_authn filter that has it."""
    config = copy.deepcopy(bootstrap)
    names = list(jwt_providers(config))
    name = _one(names, "jwt_authn provider", names)
    for authn in http_filters(config, JWT_AUTHN_TYPE):
        provider = authn["typed_config"]["providers"].get(name)
        if provider is not None:
            provider.update({"issuer": issuer, "audiences": audiences,
                             "local_jwks": {"inline_string": jwks}})
    return config


def with_routes(bootstrap: dict[str, Any], routes: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy with `routes` ahead of the others in each connection manager's first
    virtual host (the quickstart's only route matches every path)."""
    config = copy.deepcopy(bootstrap)
    for manager in connection_managers(config):
        manager["route_config"]["virtual_hosts"][0]["routes"][:0] = copy.deepcopy(routes)
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


def stream_route(route: dict[str, Any], cluster: str = KUBE_CLUSTER) -> dict[str, Any]:
    """The route that sends a k8s route's WebSocket upgrades (kubectl exec, attach, cp,
    port-forward) to tollgate's Kubernetes stream front, to go ahead of `route`: the same
    match with an `Upgrade: websocket` header; ext_proc off (the front decides the stream
    itself, and reads it), jwt_authn off so that the token reaches the front, which
    verifies it as Envoy would; the k8s route's name in KUBE_ROUTE_HEADER, replacing any
    the client sent; no timeout (a session lasts as long as it is used)."""
    match = {**copy.deepcopy(route["match"]), "headers": [
        {"name": "upgrade", "string_match": {"exact": "websocket", "ignore_case": True}}]}
    return {
        "name": f"{route['name']}_streams", "match": match,
        "route": {"cluster": cluster, "timeout": "0s"},
        "metadata": copy.deepcopy(route.get("metadata", {})),
        "request_headers_to_add": [{
            "header": {"key": KUBE_ROUTE_HEADER, "value": route["name"]},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
        "typed_per_filter_config": {
            EXT_PROC_FILTER: {
                "@type": f"{_TYPE}http.ext_proc.v3.ExtProcPerRoute", "disabled": True},
            JWT_AUTHN_FILTER: {
                "@type": f"{_TYPE}http.jwt_authn.v3.PerRouteConfig", "disabled": True},
        },
    }


def with_stream_front(bootstrap: dict[str, Any], ports: list[int]) -> dict[str, Any]:
    """A copy with tollgate's Kubernetes stream front as cluster KUBE_CLUSTER (one
    endpoint per worker on `ports`, plain HTTP/1.1 on 127.0.0.1), and a stream route ahead
    of every route whose protocol is k8s."""
    config = with_clusters(bootstrap, {KUBE_CLUSTER: ports[0]})
    _spread(_cluster(config, KUBE_CLUSTER), ports)
    for manager in connection_managers(config):
        for host in manager["route_config"]["virtual_hosts"]:
            routes = host["routes"]
            host["routes"] = [r for route in routes
                              for r in ([stream_route(route), route]
                                        if route_protocol(route) == "k8s" else [route])]
    return config


# How long a client of a TLS listener `with_tls` adds may take over its handshake.
TLS_HANDSHAKE_TIMEOUT = "10s"


def with_tls(bootstrap: dict[str, Any], cert: Path, key: Path, port: int) -> dict[str, Any]:
    """A copy with a second listener on `port`: the (only) listener's twin, serving TLS
    with this certificate (kubectl, for one, sends its bearer token only over TLS)."""
    config = copy.deepcopy(bootstrap)
    plain = _the_listener(config)
    twin = copy.deepcopy(plain)
    twin["name"] = f"{plain['name']}_tls"
    twin["address"]["socket_address"]["port_value"] = port
    for chain in twin["filter_chains"]:
        # A client that stalls in its TLS handshake is closed, as one slow with its
        # headers is (request_headers_timeout only counts once TLS is up).
        chain["transport_socket_connect_timeout"] = TLS_HANDSHAKE_TIMEOUT
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
    listeners(config).append(twin)
    return config


def without_ext_proc(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """A copy with the ext_proc filter removed: Envoy alone, the benchmark's baseline."""
    return without_http_filters(bootstrap, EXT_PROC_TYPE)


def without_http_filters(bootstrap: dict[str, Any], type_url: str) -> dict[str, Any]:
    """A copy with the HTTP filters of `type_url` removed from every connection manager."""
    config = copy.deepcopy(bootstrap)
    for manager in connection_managers(config):
        manager["http_filters"] = [
            f for f in manager.get("http_filters", ())
            if (f.get("typed_config") or {}).get("@type") != type_url]
    return config


SET_FILTER_STATE_TYPE = f"{_TYPE}http.set_filter_state.v3.Config"


def egress_alone(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """A copy whose egress listener is Envoy's dynamic forward proxy alone, the egress
    benchmark's baseline: no ext_proc, no pin (set_filter_state), no access log to
    tollgate, no header of tollgate's metadata, and routes that send every CONNECT and
    request to the destinations' cluster without asking for a pin (the refusing routes
    go). Envoy then resolves each request's host itself: never a way to run agents."""
    config = copy.deepcopy(bootstrap)
    managers = [m for listener, m in _managers(config) if listener == EGRESS_LISTENER]
    if not managers:
        raise BootstrapError(f"no {EGRESS_LISTENER} listener with an HTTP connection manager")
    removed = {EXT_PROC_TYPE, SET_FILTER_STATE_TYPE}
    for manager in managers:
        manager.pop("access_log", None)
        manager["http_filters"] = [
            f for f in manager.get("http_filters", ())
            if (f.get("typed_config") or {}).get("@type") not in removed]
        for host in (manager.get("route_config") or {}).get("virtual_hosts", ()):
            host.pop("response_headers_to_add", None)
            host["routes"] = [route for route in host.get("routes", ()) if "route" in route]
            for route in host["routes"]:
                route["match"].pop("dynamic_metadata", None)
    return config


def write(bootstrap: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(bootstrap, sort_keys=False), encoding="utf-8")
    return path
