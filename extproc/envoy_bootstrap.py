"""Envoy bootstraps: what tollgate reads in one, and copies for other ports or set-ups.

`tollgate up`, the end-to-end tests and the benchmark all start Envoy from
`envoy/quickstart.yaml`; this module moves its listener, admin and cluster
endpoints to the ports asked for, so the file users read is the file that runs.
`tollgate envoy-bootstrap` writes one from it for any tollgate config (`for_config`).

A real bootstrap has several listeners (a plain one and a TLS one for kubectl, say),
each with filter chains and HTTP connection managers: every reader here goes over
all of them, and one that needs exactly one of something names what it found when
there are several. Filters are recognised by their config's type, as Envoy does (a
filter's `name` is free text).
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from extproc.codecs import yaml_text
from extproc.config import INSPECTED_ROUTE_SUFFIX, Config, OAuthResource, Target

QUICKSTART = Path(__file__).resolve().parent.parent / "envoy" / "quickstart.yaml"
# Envoy's PostgreSQL listener, and the cluster of tollgate's PostgreSQL front behind it.
POSTGRES_LISTENER = "postgres"
# The forward proxy agents' outbound traffic takes, and the cluster it connects through
# (the addresses tollgate pins).
EGRESS_LISTENER = "egress"
EGRESS_CLUSTER = "egress_destinations"
# The internal listener that ends inspected tunnels' TLS, the cluster the egress listener
# reaches it by, and the cluster of what is read there (TLS to the destination).
EGRESS_INSPECT_LISTENER = EGRESS_INSPECT_CLUSTER = "egress_inspect"
EGRESS_TLS_CLUSTER = "egress_tls_destinations"
# The listeners of agents' way out, which verify no token and serve no target's route,
# and their clusters (to destinations and to Envoy's own inspect listener: none of them
# tollgate's processes).
EGRESS_LISTENERS = (EGRESS_LISTENER, EGRESS_INSPECT_LISTENER)
EGRESS_CLUSTERS = frozenset({EGRESS_CLUSTER, EGRESS_INSPECT_CLUSTER, EGRESS_TLS_CLUSTER})
POSTGRES_CLUSTER = "tollgate_postgres"
MYSQL_LISTENER = "mysql"
MYSQL_CLUSTER = "tollgate_mysql"
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
# tollgate's secret service for the egress inspect listener: the same processes as
# EXT_PROC_CLUSTER, on a cluster of its own (its streams, one per certificate name a
# client asks for, must not use up the ext_proc cluster's concurrent requests).
SDS_CLUSTER = "tollgate_sds"
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
    # The same for MySQL (cluster tollgate_mysql).
    mysql: int | None = None
    mysql_front: int = 10500
    # Envoy's egress listener (None: it is left out, with its cluster).
    egress: int | None = None
    # Envoy's SSH listener (None: left out), and tollgate's SSH front behind it (cluster
    # tollgate_ssh, one endpoint per worker from this port).
    ssh: int | None = None
    ssh_front: int = 10300


def load(path: Path = QUICKSTART) -> dict[str, Any]:
    return yaml_text.load(path.read_text(encoding="utf-8"))


def listeners(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    return bootstrap["static_resources"].get("listeners") or []


def socket_listeners(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    """The listeners on a network address (not the internal ones: the egress inspect
    listener is reached from the egress listener only)."""
    return [x for x in listeners(bootstrap) if "internal_listener" not in x]


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


def keep_verified_token(provider: dict[str, Any]) -> None:
    """A jwt_authn provider that leaves the verified token in its header (`forward`), for
    tollgate to exchange (RFC 8693) for a target's own; tollgate removes `authorization`
    from every request going upstream, so the agent's token still never reaches one."""
    provider["forward"] = True


def with_verified_token_kept(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """A copy whose every jwt_authn provider keeps the verified token (keep_verified_token)."""
    bootstrap = copy.deepcopy(bootstrap)
    for authn in http_filters(bootstrap, JWT_AUTHN_TYPE):
        for provider in authn["typed_config"].get("providers", {}).values():
            keep_verified_token(provider)
    return bootstrap


def exchanges_tokens(config: Config) -> bool:
    """Whether a target trades the agent's verified token for its own (token_exchange):
    jwt_authn must then leave that token in its header."""
    return any(t.credential is not None and t.credential.type == "token_exchange"
               for t in config.targets)


def with_identity_of(bootstrap: dict[str, Any], config: Config) -> dict[str, Any]:
    """A copy with what `config` asks of Envoy's token checks beyond its ports (what `tollgate
    up` serves the quickstart's bootstrap with): the verified token kept for a target
    that exchanges it, and MCP routes' OAuth discovery and audience (identity.
    oauth_resource). Left out, either would be configured and silently not served."""
    if exchanges_tokens(config):
        bootstrap = with_verified_token_kept(bootstrap)
    oauth = config.identity.oauth_resource
    return bootstrap if oauth is None else with_oauth_resource(bootstrap, oauth)


def with_settings_of(bootstrap: dict[str, Any], config: Config) -> dict[str, Any]:
    """A copy with everything `config` asks of Envoy beyond its ports: its token checks
    (with_identity_of) and the roots inspected destinations are verified against."""
    return with_egress_trust(with_identity_of(bootstrap, config), egress_trust(config))


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


@dataclass(frozen=True)
class Upstream:
    """Where Envoy sends a route's requests, as its bootstrap says: what tollgate reaches
    itself when it must ask a target's server something (an MCP server's tools)."""

    scheme: str  # http, or https (the cluster's transport socket is TLS)
    host: str  # the first endpoint's address or DNS name
    port: int
    # The name the server's certificate must carry (the TLS context's `sni`, else `host`),
    # and the CA file it must chain to (None: the system's CAs).
    server_name: str | None = None
    ca_file: str | None = None
    # The Host the route sets (host_rewrite_literal, or the endpoint's name with
    # auto_host_rewrite); None: the client's, as Envoy forwards it.
    authority: str | None = None
    # The route's prefix_rewrite: what its match's prefix (or whole path) becomes.
    rewrite: tuple[str, str] | None = None

    def path(self, path: str) -> str:
        """A request's path as the route sends it upstream."""
        if self.rewrite is None:
            return path
        matched, replacement = self.rewrite
        if not matched:  # a `path` match: the whole path, the query kept
            return replacement + path[len(path.partition("?")[0]):]
        return replacement + path[len(matched):] if path.startswith(matched) else path


# What a route may do to a request that tollgate, reaching the cluster itself, would not.
_REWRITES = ("regex_rewrite", "path_rewrite_policy", "host_rewrite_header",
             "host_rewrite_path_regex", "weighted_clusters", "cluster_header",
             "cluster_specifier_plugin", "inline_cluster_specifier_plugin")


def upstream_of(bootstrap: dict[str, Any], route: str | None, cluster: str | None,
                path: str = "/") -> Upstream:
    """The upstream of the route named `route` (else of the cluster named `cluster`):
    its cluster's first endpoint, plain or TLS as its transport socket says. Of several
    routes of that name, the first in the bootstrap's order whose prefix or path matches
    `path` (the request's), as Envoy's router picks within a virtual host. Only what
    the bootstrap holds inline is read (no RDS, CDS, EDS or SDS); a route or cluster
    tollgate could not reproduce (a regex rewrite, weighted clusters, a client
    certificate, a validation context other than a CA file or the system's) is a
    BootstrapError naming it, never a guess."""
    authority, rewrite, auto_host = None, None, False
    if route is not None:
        cluster, authority, rewrite, auto_host = _route_action(bootstrap, route, path)
    elif cluster is None:
        raise BootstrapError("the target names neither a route nor a cluster")
    found = [c for c in bootstrap.get("static_resources", {}).get("clusters") or []
             if c.get("name") == cluster]
    config = _one(found, f"cluster {cluster}", [cluster] * len(found))
    endpoints = [lb["endpoint"]["address"]["socket_address"]
                 for group in (config.get("load_assignment") or {}).get("endpoints") or []
                 for lb in group.get("lb_endpoints") or []
                 if "socket_address" in ((lb.get("endpoint") or {}).get("address") or {})]
    if not endpoints:
        raise BootstrapError(f"cluster {cluster} lists no endpoint address inline "
                             "(load_assignment)")
    host, port = str(endpoints[0]["address"]), int(endpoints[0]["port_value"])
    if auto_host:
        authority = host
    socket = config.get("transport_socket")
    if socket is None:
        return Upstream("http", host, port, authority=authority, rewrite=rewrite)
    server_name, ca_file = _tls_trust(cluster, socket.get("typed_config") or {})
    return Upstream("https", host, port, server_name or host, ca_file, authority, rewrite)


def _route_action(bootstrap: dict[str, Any], route: str, path: str
                  ) -> tuple[str, str | None, tuple[str, str] | None, bool]:
    """The cluster a route sends `path` to, the Host it sets, its prefix rewrite, and
    whether it sets the Host to the endpoint's name."""
    found = [r for r in routes(bootstrap) if r.get("name") == route]
    if len(found) > 1:
        found = [r for r in found if _matches(r.get("match") or {}, path)][:1]
    config = _one(found, f"route {route}", [route] * len(found))
    action = config.get("route")
    if not isinstance(action, dict) or not isinstance(action.get("cluster"), str):
        raise BootstrapError(f"route {route} sends to no single cluster")
    if rewrites := [key for key in _REWRITES if key in action]:
        raise BootstrapError(f"route {route} has {', '.join(rewrites)}, which tollgate "
                             "does not reproduce")
    rewrite = (_prefix_rewrite(route, config.get("match") or {}, action)
               if "prefix_rewrite" in action else None)
    return (action["cluster"], action.get("host_rewrite_literal"), rewrite,
            action.get("auto_host_rewrite") is True)


def _tls_trust(cluster: str, tls: dict[str, Any]) -> tuple[str | None, str | None]:
    """The name a TLS cluster's server must be (its `sni`; None: the host), and the CA
    file its certificate must chain to (None: the system's CAs)."""
    if tls.get("@type") != _TLS:
        raise BootstrapError(f"cluster {cluster}'s transport socket is no TLS context")
    common = tls.get("common_tls_context") or {}
    if extra := sorted(set(common) - {"validation_context", "alpn_protocols", "tls_params"}):
        raise BootstrapError(f"cluster {cluster}'s TLS context has {', '.join(extra)}, "
                             "which tollgate does not reproduce (a CA file or the system's "
                             "CAs only)")
    trust = common.get("validation_context") or {}
    if set(trust) - {"trusted_ca", "system_root_certs", "match_typed_subject_alt_names"} \
            or set(trust.get("trusted_ca") or {}) - {"filename"}:
        raise BootstrapError(f"cluster {cluster}'s TLS validation context is neither a CA "
                             "file (trusted_ca.filename) nor the system's CAs")
    return tls.get("sni"), (trust.get("trusted_ca") or {}).get("filename")


def _matches(match: dict[str, Any], path: str) -> bool:
    """Whether a route's match takes `path` (by prefix or whole path; other matchers:
    not judged here, so not taken)."""
    bare = path.partition("?")[0]
    if isinstance(match.get("prefix"), str):
        return bare.startswith(match["prefix"])
    if isinstance(match.get("path_separated_prefix"), str):
        prefix = match["path_separated_prefix"]
        return bare == prefix or bare.startswith(prefix + "/")
    return isinstance(match.get("path"), str) and bare == match["path"]


def _prefix_rewrite(route: str, match: dict[str, Any], action: dict[str, Any]
                    ) -> tuple[str, str]:
    """(the prefix a route's prefix_rewrite replaces, "" for its whole path; what
    replaces it), as Envoy rewrites a prefix or path match."""
    for key in ("prefix", "path_separated_prefix"):
        if isinstance(match.get(key), str):
            return match[key], str(action["prefix_rewrite"])
    if isinstance(match.get("path"), str):
        return "", str(action["prefix_rewrite"])
    raise BootstrapError(f"route {route} rewrites a path it matches neither by prefix nor "
                         "whole, which tollgate does not reproduce")


def _one(found: list[Any], what: str, names: list[str]) -> Any:
    """The single item of `found`; else a BootstrapError naming every one."""
    if len(found) != 1:
        listed = f": {', '.join(names)}" if names else ""
        raise BootstrapError(f"expected one {what}, the bootstrap has {len(found)}{listed}")
    return found[0]


def _the_listener(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """The HTTP listener targets are reached on: the only one with an HTTP connection
    manager, the egress listeners (agents' way out) aside."""
    found = [x for x in http_listeners(bootstrap) if x.get("name") not in EGRESS_LISTENERS]
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


def _with_mysql(config: dict[str, Any]) -> None:
    """The MySQL listener and its front's cluster, made from the PostgreSQL ones where
    the bootstrap has none: the same tcp_proxy to one of tollgate's fronts, so the
    template (envoy/quickstart.yaml, deploy/) holds it once."""
    resources = config["static_resources"]
    if any(x.get("name") == MYSQL_LISTENER for x in resources["listeners"]):
        return
    listener = next((x for x in resources["listeners"] if x.get("name") == POSTGRES_LISTENER),
                    None)
    cluster = next((c for c in resources["clusters"] if c.get("name") == POSTGRES_CLUSTER),
                   None)
    if listener is None or cluster is None:
        return
    text = json.dumps(listener).replace(f'"{POSTGRES_CLUSTER}"', f'"{MYSQL_CLUSTER}"')
    made = json.loads(text.replace('"stat_prefix": "postgres"', '"stat_prefix": "mysql"')
                      .replace("] postgres %", "] mysql %"))
    made["name"] = MYSQL_LISTENER
    resources["listeners"].append(made)
    resources["clusters"].append(json.loads(json.dumps(cluster).replace(
        f'"{POSTGRES_CLUSTER}"', f'"{MYSQL_CLUSTER}"')))


def with_ports(bootstrap: dict[str, Any], ports: Ports, workers: int = 1) -> dict[str, Any]:
    """A copy of a bootstrap listening and connecting on `ports`: its HTTP listener,
    admin, the cluster demo_upstream, the cluster demo_mcp (when it has one), and the
    cluster tollgate_extproc with one endpoint per tollgate worker (ports.ext_proc, and
    the ports after it); and Envoy's PostgreSQL listener on `ports.postgres` with the
    cluster of tollgate's PostgreSQL front, one endpoint per worker from
    `ports.postgres_front` (both left out when `ports.postgres` is None: nothing
    serves PostgreSQL); the same for MySQL (`ports.mysql`, `ports.mysql_front`) and SSH
    (`ports.ssh`, `ports.ssh_front`); and the egress
    listener on `ports.egress` (left out, with its cluster, when None)."""
    config = copy.deepcopy(bootstrap)
    _with_mysql(config)
    _front(config, POSTGRES_LISTENER, POSTGRES_CLUSTER, ports.postgres,
           [ports.postgres_front + i for i in range(workers)])
    _front(config, MYSQL_LISTENER, MYSQL_CLUSTER, ports.mysql,
           [ports.mysql_front + i for i in range(workers)])
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
    """The egress listener on `port`; or, with None, neither it nor the inspect listener
    and their clusters."""
    if not _optional(config, EGRESS_LISTENER, EGRESS_CLUSTER, port):
        resources = config["static_resources"]
        resources["listeners"] = [x for x in resources["listeners"]
                                  if x.get("name") != EGRESS_INSPECT_LISTENER]
        resources["clusters"] = [c for c in resources["clusters"]
                                 if c.get("name") not in EGRESS_CLUSTERS | {SDS_CLUSTER}]


def egress_trust(config: Config) -> Path:
    """The roots an inspected destination's certificate must chain to: the (first)
    egress target's `egress.trusted_ca`, else the system's bundle."""
    for target in config.targets:
        if target.egress is not None and target.egress.trusted_ca is not None:
            return config.resolve(target.egress.trusted_ca)
    paths = ssl.get_default_verify_paths()
    return Path(paths.cafile or paths.openssl_cafile)


def with_egress_trust(bootstrap: dict[str, Any], roots: Path) -> dict[str, Any]:
    """A copy whose inspected destinations must show certificates chaining to `roots`
    (a PEM bundle); unchanged without an egress listener."""
    config = copy.deepcopy(bootstrap)
    for cluster in config["static_resources"].get("clusters") or []:
        if cluster.get("name") == EGRESS_TLS_CLUSTER:
            context = cluster["transport_socket"]["typed_config"]["common_tls_context"]
            context["validation_context"]["trusted_ca"] = {"filename": str(roots)}
    return config


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
    """A copy whose ext_proc cluster (and secret service's, when it has one) balances
    between tollgate processes (workers or replicas) on `ports` of its first endpoint's
    address: one endpoint each, as SO_REUSEPORT would pin Envoy's few long-lived HTTP/2
    connections to one process."""
    config = with_cluster_ports(bootstrap, EXT_PROC_CLUSTER, ports)
    if any(c.get("name") == SDS_CLUSTER for c in config["static_resources"]["clusters"]):
        _spread(_cluster(config, SDS_CLUSTER), ports)
    return config


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


# What takes a dead endpoint of tollgate's out of Envoy's balancing: its health checks
# and its outlier detection.
GUARDS = ("health_checks", "outlier_detection")


def front_guards() -> dict[str, Any]:
    """The health checks and outlier detection of a cluster of tollgate's protocol fronts,
    as envoy/quickstart.yaml gives PostgreSQL's (where it says why): for the clusters
    made here."""
    return copy.deepcopy(_front_guards())


@functools.cache
def _front_guards() -> dict[str, Any]:
    cluster = _cluster(load(), POSTGRES_CLUSTER)
    return {key: cluster[key] for key in GUARDS}


def with_stream_front(bootstrap: dict[str, Any], ports: list[int]) -> dict[str, Any]:
    """A copy with tollgate's Kubernetes stream front as cluster KUBE_CLUSTER (one
    endpoint per worker on `ports`, plain HTTP/1.1 on 127.0.0.1, health-checked as the
    other fronts), and a stream route ahead of every route whose protocol is k8s."""
    config = with_clusters(bootstrap, {KUBE_CLUSTER: ports[0]})
    _spread(_cluster(config, KUBE_CLUSTER), ports)
    _cluster(config, KUBE_CLUSTER).update(front_guards())
    for manager in connection_managers(config):
        for host in manager["route_config"]["virtual_hosts"]:
            routes = host["routes"]
            host["routes"] = [r for route in routes
                              for r in ([stream_route(route), route]
                                        if route_protocol(route) == "k8s" else [route])]
    return config


# RFC 9728's well-known path: a resource's metadata is served at it followed by the
# resource's own path (/.well-known/oauth-protected-resource/mcp for .../mcp).
OAUTH_METADATA_PATH = "/.well-known/oauth-protected-resource"
# The key of a protected MCP route's tollgate metadata naming its metadata's URL, which
# Envoy's 401 on it reads.
RESOURCE_METADATA_KEY = "resource_metadata"
# Envoy's 401 on a protected MCP route (RFC 9728 section 5.1), with RFC 6750's
# invalid_token when a token came and was refused (none came: no error code).
OAUTH_CHALLENGE = (
    f'Bearer resource_metadata="%METADATA(ROUTE:tollgate:{RESOURCE_METADATA_KEY})%"'
    "%CEL(response.code_details.endsWith('{Jwt_is_missing}') ? ''"
    " : ', error=\"invalid_token\"')%")
_EXT_PROC_PER_ROUTE = f"{_TYPE}http.ext_proc.v3.ExtProcPerRoute"


def with_oauth_resource(bootstrap: dict[str, Any], oauth: OAuthResource) -> dict[str, Any]:
    """A copy whose MCP routes are OAuth protected resources, as MCP's authorization asks.

    Each route's resource is `oauth.gateway_url` and its path. Envoy serves its metadata
    (RFC 9728) at the well-known path with that path after it, and at the bare one too
    when the route is its virtual host's only MCP route; without a token, as clients read
    it before they have one. The route takes only tokens whose audience is its resource
    (RFC 8707), of any of the listener's providers, so a token got for another resource
    is refused; and Envoy's refusal of a token on it names the metadata
    (WWW-Authenticate), which is how an MCP client finds where to get one. Routes that
    configure jwt_authn otherwise (anonymous ones, streams) are left as they are.

    What an earlier call wrote is written anew (a bootstrap written again from one that
    had it: its MCP routes kept, with their requirement; the metadata routes and the
    mapper made again), so that the result is the same however often it is applied."""
    config = copy.deepcopy(bootstrap)
    for listener, manager in _managers(config):
        if listener in EGRESS_LISTENERS:
            continue
        hosts = (manager.get("route_config") or {}).get("virtual_hosts", ())
        for host in hosts:
            host["routes"] = [r for r in host.get("routes", ()) if not _metadata_served(r)]
        protected = [(host, route) for host in hosts for route in host["routes"]
                     if _protectable(route)]
        if not protected:
            continue
        authns = [f["typed_config"] for f in manager.get("http_filters", ())
                  if (f.get("typed_config") or {}).get("@type") == JWT_AUTHN_TYPE]
        providers = [name for authn in authns for name in authn.get("providers") or {}]
        if not providers:
            raise BootstrapError(f"listener {listener} has MCP routes but no jwt_authn "
                                 "provider to bind their tokens to the resource")
        _distinct_resources(protected)
        served: dict[int, set[str]] = {}  # virtual host (id) -> the metadata paths it serves
        for host, route in protected:
            path = _route_path(route)
            resource = oauth.gateway_url + path
            metadata_path = OAUTH_METADATA_PATH + path
            paths = {_route_path(r) for h, r in protected if h is host}
            at = {metadata_path, *([OAUTH_METADATA_PATH] if len(paths) == 1 else [])}
            at -= served.setdefault(id(host), set())
            served[id(host)] |= at
            host["routes"][:0] = [_metadata_route(route["name"], each, resource, oauth)
                                  for each in sorted(at, reverse=True)]
            route["metadata"]["filter_metadata"]["tollgate"][RESOURCE_METADATA_KEY] = \
                oauth.gateway_url + metadata_path
            requirement = _requirement(route)
            bound = [{"provider_and_audiences": {"provider_name": name, "audiences": [resource]}}
                     for name in dict.fromkeys(providers)]
            for authn in authns:
                authn.setdefault("requirement_map", {})[requirement] = (
                    bound[0] if len(bound) == 1 else {"requires_any": {"requirements": bound}})
            route.setdefault("typed_per_filter_config", {})[JWT_AUTHN_FILTER] = {
                "@type": _JWT_PER_ROUTE, "requirement_name": requirement}
        _with_challenge(manager)
    return config


def _distinct_resources(protected: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Two MCP routes at one path (told apart by Host) would be one resource: a token got
    for one would be taken by the other. Refused, naming them."""
    by_path: dict[str, str] = {}
    for _, route in protected:
        first = by_path.setdefault(_route_path(route), route["name"])
        if first != route["name"]:
            raise BootstrapError(
                f"MCP routes {first} and {route['name']} serve the same path "
                f"({_route_path(route) or '/'}), so they would be one OAuth resource: give "
                "each a path of its own (match: {prefix: /NAME}) in identity.envoy_bootstrap")


def _requirement(route: dict[str, Any]) -> str:
    """The name of the jwt_authn requirement binding a protected MCP route's tokens."""
    return f"oauth_resource:{route['name']}"


def _protectable(route: dict[str, Any]) -> bool:
    """An MCP route whose token jwt_authn's rules require (it has no jwt_authn config of
    its own), or one with_oauth_resource bound to its resource before."""
    if route_protocol(route) != "mcp":
        return False
    own = (route.get("typed_per_filter_config") or {}).get(JWT_AUTHN_FILTER)
    return own is None or own.get("requirement_name") == _requirement(route)


def _metadata_served(route: dict[str, Any]) -> bool:
    """A route answering protected resource metadata (with_oauth_resource's)."""
    return "direct_response" in route and str(
        (route.get("match") or {}).get("path", "")).startswith(OAUTH_METADATA_PATH)


def _route_path(route: dict[str, Any]) -> str:
    """The path an MCP route serves (its prefix or path, no trailing slash): its
    resource's path."""
    match = route.get("match") or {}
    path = match.get("prefix", match.get("path", match.get("path_separated_prefix")))
    if path is None:
        raise BootstrapError(f"MCP route {route.get('name')} is matched by neither prefix nor "
                             "path: its resource URL (the gateway's and its path) is unknown")
    return str(path).rstrip("/")


def _metadata_route(name: str, path: str, resource: str, oauth: OAuthResource
                    ) -> dict[str, Any]:
    """The route answering an MCP route's protected resource metadata (RFC 9728) at
    `path`: Envoy's own answer, read by anyone (no token, tollgate not asked)."""
    document = {"resource": resource, "authorization_servers": list(oauth.authorization_servers),
                **({"scopes_supported": list(oauth.scopes)} if oauth.scopes else {}),
                "bearer_methods_supported": ["header"]}
    return {
        "name": f"{name}_oauth_resource", "match": {"path": path},
        "direct_response": {"status": 200, "body": {"inline_string": json.dumps(document)}},
        # Public, and read by browser-based clients too.
        "response_headers_to_add": [
            {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for key, value in (("content-type", "application/json"),
                               ("access-control-allow-origin", "*"))],
        "typed_per_filter_config": {
            EXT_PROC_FILTER: {"@type": _EXT_PROC_PER_ROUTE, "disabled": True},
            JWT_AUTHN_FILTER: {"@type": _JWT_PER_ROUTE, "disabled": True}},
    }


def _with_challenge(manager: dict[str, Any]) -> None:
    """A local reply mapper giving jwt_authn's refusals on protected MCP routes (401, or
    403 for another audience) status 401 and the WWW-Authenticate header naming the
    route's metadata; in the body of the manager's mapper for an MCP route's 401, when it
    has one. It goes ahead of every mapper but those that leave replies as they are
    (tollgate's own refusals)."""
    mappers = manager.setdefault("local_reply_config", {}).setdefault("mappers", [])
    mappers[:] = [m for m in mappers if not any(
        added.get("header", {}).get("value") == OAUTH_CHALLENGE
        for added in m.get("headers_to_add", ()))]
    shaped: dict[str, Any] = next((m for m in mappers if m.get("status_code") == 401
                                   and "== 'mcp'" in json.dumps(m.get("filter"))), {})
    mapper = {
        "filter": {"extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3."
                         "ExpressionFilter",
                "expression": (f"xds.route_metadata.filter_metadata['tollgate']"
                               f"['{RESOURCE_METADATA_KEY}'] != '' && response.code_details"
                               ".startsWith('jwt_authn_access_denied')")}}},
        "status_code": 401,
        "headers_to_add": [{"header": {"key": "www-authenticate", "value": OAUTH_CHALLENGE},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
        **({"body_format_override": copy.deepcopy(shaped["body_format_override"])}
           if "body_format_override" in shaped else {}),
    }
    first = next((i for i, m in enumerate(mappers) if set(m) != {"filter"}), len(mappers))
    mappers.insert(first, mapper)


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
            # The routes that answer (not a direct response), but for tunnels tollgate
            # reads: without ext_proc none is read.
            host["routes"] = [route for route in host.get("routes", ()) if "route" in route
                              and route["route"].get("cluster") != EGRESS_INSPECT_CLUSTER]
            for route in host["routes"]:
                route["match"].pop("dynamic_metadata", None)
    return config


def write(bootstrap: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml_text.dump(bootstrap, sort_keys=False), encoding="utf-8")
    return path


# -- A bootstrap written for a tollgate config (`tollgate envoy-bootstrap`) -----------

# The HTTP listener targets are reached on (envoy/quickstart.yaml's).
INGRESS_LISTENER = "ingress"
# The cluster of a target matched by route: `target_<name>` (one matched by cluster
# name is sent to a cluster of that name).
TARGET_CLUSTER = "target_{}"
# The token provider and its keys' cluster written where no bootstrap gives one.
IDENTITY_PROVIDER = "identity_provider"
# The address of every cluster whose upstream neither the config nor a flag gives.
PLACEHOLDER_HOST = "placeholder.invalid"
# tollgate's own clusters and the egress proxy's: written from the config, never a
# target's.
TOLLGATE_CLUSTERS = frozenset({EXT_PROC_CLUSTER, SDS_CLUSTER, POSTGRES_CLUSTER, MYSQL_CLUSTER,
                               SSH_CLUSTER, KUBE_CLUSTER}) | EGRESS_CLUSTERS
# Routes of these protocols keep a request open as long as it lasts (an event stream, a
# watch): no route timeout. A model's answer may take minutes: the OpenAI client's 10.
_ROUTE_TIMEOUTS = {"llm": "600s", "mcp": "0s", "k8s": "0s"}
# The protocols whose routes name them, for Envoy's own answers' shape (local_reply_config).
_NAMED_PROTOCOLS = frozenset({"llm", "mcp", "k8s"})
_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_JWT_PER_ROUTE = f"{_TYPE}http.jwt_authn.v3.PerRouteConfig"


@dataclass(frozen=True)
class Listeners:
    """Where a bootstrap written for a tollgate config has Envoy listen (its admin on
    127.0.0.1 only), and where Envoy reaches tollgate."""

    address: str = "127.0.0.1"
    http: int = 10000
    admin: int = 9901
    egress: int = 3128
    postgres: int = 15432
    mysql: int = 13306
    # None: the config's ssh.agent_port (the port `tollgate ssh login` prints), else 2222.
    ssh: int | None = None
    # The host Envoy reaches every tollgate listener on; None: each listen address's own
    # (127.0.0.1 for a wildcard one, 0.0.0.0 or ::).
    tollgate_host: str | None = None


@dataclass(frozen=True)
class Written:
    """A bootstrap for a config, what it holds (`summary`: names and addresses) and what
    is left to the operator (`todo`: placeholders, guesses)."""

    bootstrap: dict[str, Any]
    summary: list[str]
    todo: list[str]

    def text(self, source: Path) -> str:
        """The bootstrap as YAML, its summary and to-do list as a leading comment."""
        lines = [f"Envoy bootstrap for the tollgate config {source}, written by",
                 "`tollgate envoy-bootstrap`: envoy/quickstart.yaml says why each setting is",
                 "what it is.", "", *self.summary]
        if self.todo:
            lines += ["", "To do before it serves:", *(f"- {item}" for item in self.todo)]
        header = "".join(f"# {line}".rstrip() + "\n" for line in lines)
        return header + yaml.dump(self.bootstrap, Dumper=_Plain, sort_keys=False)


class _Plain(yaml.SafeDumper):
    """YAML without anchors: the template's shared pieces written out where used."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 - every datum alike
        return True


def for_config(config: Config, listeners: Listeners = Listeners(),
               upstreams: dict[str, str] | None = None) -> Written:
    """An Envoy bootstrap serving `config`, from envoy/quickstart.yaml's settings.

    Listeners: `ingress` (HTTP, when a target is matched by route or cluster), `egress`
    (an egress target), `postgres`, `mysql` and `ssh` (the config's fronts). Clusters:
    tollgate's (tollgate_extproc, tollgate_postgres, tollgate_mysql, tollgate_ssh,
    tollgate_k8s: one endpoint per
    worker, each listen port + i), and one per HTTP target (`target_<name>`, or its
    match.cluster) at its upstream: `upstreams` (target name -> http(s)://HOST[:PORT]),
    a k8s target's k8s.upstream, else PLACEHOLDER_HOST. The routes and token providers
    of the bootstrap the config names (identity.envoy_bootstrap) are kept, by name."""
    written = _Writer(config, listeners, upstreams or {})
    kinds = ["Listener", "Admin", "Route", "Cluster", "Token"]
    doors = [INGRESS_LISTENER, EGRESS_LISTENER, POSTGRES_LISTENER, MYSQL_LISTENER, SSH_LISTENER]
    summary = sorted(written.summary, key=lambda line: (
        kinds.index(line.split()[0].rstrip(":")),
        doors.index(line.split()[1].rstrip(":")) if line.startswith("Listener") else 0))
    return Written(written.bootstrap, summary, written.todo)


class _Writer:
    """One bootstrap being written (see for_config)."""

    def __init__(self, config: Config, listeners: Listeners, upstreams: dict[str, str]) -> None:
        unknown = sorted(set(upstreams) - {t.name for t in config.targets})
        if unknown:
            raise BootstrapError(f"--upstream {unknown[0]}: the config has no such target")
        self.config, self.listeners, self.upstreams = config, listeners, upstreams
        self.summary: list[str] = []
        self.todo: list[str] = []
        self.named = self._named()
        self.bootstrap = load()
        _with_mysql(self.bootstrap)
        self.bootstrap["admin"]["address"]["socket_address"].update(
            address="127.0.0.1", port_value=listeners.admin)
        self.summary.append(f"Admin: Envoy's admin interface, 127.0.0.1:{listeners.admin}.")
        self.bootstrap["static_resources"]["clusters"] = [
            c for c in self.bootstrap["static_resources"]["clusters"]
            if c["name"] in TOLLGATE_CLUSTERS]
        self._tollgate(EXT_PROC_CLUSTER, config.listen.grpc, config.listen.worker_count,
                       "ext_proc (listen.grpc)")
        if config.listen.workers == "auto":
            self.todo.append(f"listen.workers is auto: {config.listen.worker_count} endpoints "
                             "per tollgate cluster, this machine's cores; set listen.workers "
                             "to the gateway's and write this again")
        self._fronts()
        self._egress()
        self._http()

    def _named(self) -> dict[str, Any] | None:
        """The bootstrap the config names, whose routes and providers are kept."""
        name = self.config.identity.envoy_bootstrap
        if name is None:
            return None
        path = self.config.resolve(name)
        try:
            named = load(path)
            listeners(named)
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else f"not a bootstrap: {exc}"
            self.todo.append(f"identity.envoy_bootstrap {path} cannot be read ({reason}): "
                             "no route or token provider was taken from it")
            return None
        return named

    def _host(self, listen: str) -> str:
        """Where Envoy reaches a tollgate listener on `listen` (HOST:PORT)."""
        if self.listeners.tollgate_host is not None:
            return self.listeners.tollgate_host
        host = listen.rpartition(":")[0].strip("[]")
        return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host

    def _tollgate(self, name: str, listen: str, workers: int, what: str) -> None:
        """tollgate's cluster `name`: an endpoint per worker, from `listen`'s port."""
        host, port = self._host(listen), int(listen.rpartition(":")[2])
        _point(_cluster(self.bootstrap, name), host, [port + i for i in range(workers)])
        last = f"-{port + workers - 1}" if workers > 1 else ""
        self.summary.append(f"Cluster {name}: tollgate's {what}, {host}:{port}{last} "
                            f"({workers} worker{'s' if workers > 1 else ''}: port + i).")

    def _listener(self, name: str, port: int, what: str) -> None:
        (found,) = [x for x in listeners(self.bootstrap) if x.get("name") == name]
        found["address"]["socket_address"].update(address=self.listeners.address,
                                                   port_value=port)
        self.summary.append(f"Listener {name}: {what}, {self.listeners.address}:{port}.")

    def _fronts(self) -> None:
        """The PostgreSQL, MySQL and SSH listeners, and their fronts' clusters, where the
        config has those fronts (left out otherwise)."""
        config, workers = self.config, self.config.listen.worker_count
        for front, listener, cluster, port, name in (
                (config.postgres, POSTGRES_LISTENER, POSTGRES_CLUSTER,
                 self.listeners.postgres, "PostgreSQL"),
                (config.mysql, MYSQL_LISTENER, MYSQL_CLUSTER, self.listeners.mysql, "MySQL")):
            _optional(self.bootstrap, listener, cluster, port if front else None)
            if front is not None:
                self._listener(listener, port, f"{name} clients")
                self._tollgate(cluster, front.listen, workers,
                               f"{name} front ({listener}.listen)")
        ssh = config.ssh
        port = self.listeners.ssh or (ssh.agent_port if ssh else None) or 2222
        _optional(self.bootstrap, SSH_LISTENER, SSH_CLUSTER, port if ssh else None)
        if ssh is not None:
            self._listener(SSH_LISTENER, port, "SSH clients")
            self._tollgate(SSH_CLUSTER, ssh.listen, workers, "SSH front (ssh.listen)")
            if ssh.agent_port != port:
                self.todo.append(f"ssh.agent_port is {ssh.agent_port}: set it to {port}, the "
                                 "port `tollgate ssh login` tells agents to use")

    def _egress(self) -> None:
        """The egress listener, its routes named as the (first) egress target matches."""
        proxies = [t for t in self.config.targets if t.protocol == "egress"]
        _egress(self.bootstrap, self.listeners.egress if proxies else None)
        if not proxies:
            return
        if proxies[0].match.route is None:
            raise BootstrapError(f"target {proxies[0].name}: an egress target is matched by "
                                 "the egress listener's route here (match: {route: egress})")
        route = proxies[0].match.route
        if len(proxies) > 1:
            self.todo.append(f"{len(proxies)} egress targets: the egress listener's routes "
                             f"are named {route}, target {proxies[0].name}'s")
        for listener, manager in _managers(self.bootstrap):
            if listener in (EGRESS_LISTENER, EGRESS_INSPECT_LISTENER):
                suffix = INSPECTED_ROUTE_SUFFIX if listener == EGRESS_INSPECT_LISTENER else ""
                for host in manager["route_config"]["virtual_hosts"]:
                    for each in host["routes"]:
                        each["name"] = route + suffix
        self.bootstrap = with_egress_trust(self.bootstrap, egress_trust(self.config))
        self._tollgate(SDS_CLUSTER, self.config.listen.grpc, self.config.listen.worker_count,
                       "secret service of the egress inspect listener (listen.grpc)")
        self._listener(EGRESS_LISTENER, self.listeners.egress,
                       f"agents' forward proxy (routes {route}, cluster {EGRESS_CLUSTER})")

    def _http(self) -> None:
        """The ingress listener: a route per HTTP target, the Kubernetes stream front's
        routes, the token providers; left out when no target is reached over HTTP."""
        targets = [t for t in self.config.targets
                   if t.protocol not in ("postgres", "mysql", "ssh", "egress")
                   and (t.match.route or t.match.cluster)]
        resources = self.bootstrap["static_resources"]
        if not targets:
            resources["listeners"] = [x for x in resources["listeners"]
                                      if x.get("name") != INGRESS_LISTENER]
            return
        kept = self._kept_routes({t.match.route: t for t in targets if t.match.route})
        made = [self._route(t) for t in targets if t.match.route not in {r["name"] for r in kept}]
        (manager,) = [m for name, m in _managers(self.bootstrap) if name == INGRESS_LISTENER]
        (prototype,) = manager["route_config"]["virtual_hosts"]
        hosts = [{**copy.deepcopy(prototype), "routes": kept}] if kept else []
        if len(made) == 1 and not kept:
            hosts.append({**copy.deepcopy(prototype), "routes": made})
        else:
            hosts += [{**copy.deepcopy(prototype), "name": r["name"],
                       "domains": [r["name"], f"{r['name']}:*", f"{r['name']}.*"],
                       "routes": [r]} for r in made]
            if made:
                self.todo.append("routes " + ", ".join(r["name"] for r in made) + " are "
                                 "told apart by the Host header (a virtual host each: "
                                 "ROUTE, ROUTE:PORT, ROUTE.DOMAIN); match them by path "
                                 "instead if their upstreams' paths differ")
        manager["route_config"]["virtual_hosts"] = hosts
        self._listener(INGRESS_LISTENER, self.listeners.http, "HTTP targets")
        matched = {t.match.route or t.match.cluster: t.name for t in targets}
        for route, how in [*((r, " (as in identity.envoy_bootstrap)") for r in kept),
                           *((r, "") for r in made)]:
            self.summary.append(
                f"Route {route['name']} -> cluster "
                f"{route.get('route', {}).get('cluster', '(see the route)')}: target "
                f"{matched[route['name']]}{how}.")
        if self.config.kube is not None:
            self.bootstrap = with_stream_front(self.bootstrap, [0])
            self._tollgate(KUBE_CLUSTER, self.config.kube.listen,
                           self.config.listen.worker_count, "Kubernetes stream front (kube.listen)")
            for route in (*kept, *made):
                if route_protocol(route) == "k8s":
                    self.summary.append(
                        f"Route {route['name']}_streams -> cluster {KUBE_CLUSTER}: route "
                        f"{route['name']}'s WebSocket upgrades (exec, attach, cp, "
                        f"port-forward), with {KUBE_ROUTE_HEADER}: {route['name']}.")
        self._providers()
        oauth = self.config.identity.oauth_resource
        if oauth is not None:
            self.bootstrap = with_oauth_resource(self.bootstrap, oauth)
            self.summary += [
                f"Route {route['name']}: OAuth protected resource "
                f"{oauth.gateway_url}{_route_path(route)}, its metadata at "
                f"{route['metadata']['filter_metadata']['tollgate'][RESOURCE_METADATA_KEY]}."
                for route in routes(self.bootstrap) if route_protocol(route) == "mcp"
                and RESOURCE_METADATA_KEY in route["metadata"]["filter_metadata"]["tollgate"]]

    def _kept_routes(self, targets: dict[str, Target]) -> list[dict[str, Any]]:
        """The named bootstrap's routes of these names (route -> its target), in its
        order, with the clusters they send to: as that bootstrap has them, or, for a
        target given --upstream, at that upstream."""
        if self.named is None:
            return []
        kept: list[dict[str, Any]] = []
        for listener, manager in _managers(self.named):
            for host in (manager.get("route_config") or {}).get("virtual_hosts", ()):
                for route in host.get("routes", ()):
                    if (listener not in EGRESS_LISTENERS and route.get("name") in targets
                            and route["name"] not in {r["name"] for r in kept}):
                        kept.append(copy.deepcopy(route))
        for route in kept:
            action = route.get("route") or {}
            names = [name for name in [action.get("cluster"), *(
                c.get("name") for c in (action.get("weighted_clusters") or {}).get(
                    "clusters", ()))] if name is not None]
            target = targets[route["name"]]
            if target.name in self.upstreams:
                self._moved_cluster(names, route, target)
                continue
            for name in names:
                self._keep_cluster(name, f"route {route['name']}")
        return kept

    def _moved_cluster(self, names: list[str], route: dict[str, Any], target: Target) -> None:
        """The one cluster a kept route sends to, at the upstream --upstream gives its
        target instead of where identity.envoy_bootstrap has it."""
        flag = f"--upstream {target.name}"
        if len(names) != 1:
            raise BootstrapError(
                f"{flag}: route {route['name']} (from identity.envoy_bootstrap) sends to "
                f"{len(names)} clusters; give their addresses in that bootstrap instead")
        (name,) = names
        if name in TOLLGATE_CLUSTERS:
            raise BootstrapError(f"route {route['name']} sends to {name}, tollgate's own cluster")
        if any(c["name"] == name for c in self.bootstrap["static_resources"]["clusters"]):
            raise BootstrapError(
                f"{flag}: cluster {name} of route {route['name']} is another route's too; "
                "give routes that share a cluster their address in identity.envoy_bootstrap")
        self._upstream(name, target, self.upstreams[target.name], route["route"],
                       " (--upstream, in place of identity.envoy_bootstrap's cluster)")

    def _keep_cluster(self, name: str, user: str) -> None:
        """The named bootstrap's cluster `name` (a placeholder when it has none)."""
        clusters = self.bootstrap["static_resources"]["clusters"]
        if any(c["name"] == name for c in clusters):
            return
        if name in TOLLGATE_CLUSTERS:
            raise BootstrapError(f"{user} sends to {name}, tollgate's own cluster")
        found = [c for c in (self.named or {}).get("static_resources", {}).get("clusters", ())
                 if c.get("name") == name]
        if found:
            clusters.append(copy.deepcopy(found[0]))
            self.summary.append(f"Cluster {name}: as in identity.envoy_bootstrap ({user}).")
        else:
            clusters.append(_upstream_cluster(name, "http", PLACEHOLDER_HOST, 80, None))
            self.todo.append(f"cluster {name} ({user}) is a placeholder: set its address")

    def _route(self, target: Target) -> dict[str, Any]:
        """A route for `target` to a cluster of its own, at its upstream."""
        name = target.match.route or target.match.cluster or target.name
        cluster = target.match.cluster or TARGET_CLUSTER.format(target.name)
        if cluster in TOLLGATE_CLUSTERS:
            raise BootstrapError(f"target {target.name}: match.cluster {cluster} is "
                                 "tollgate's own cluster")
        action: dict[str, Any] = {"cluster": cluster}
        if target.protocol in _ROUTE_TIMEOUTS:
            action["timeout"] = _ROUTE_TIMEOUTS[target.protocol]
        route: dict[str, Any] = {"name": name, "match": {"prefix": "/"}, "route": action}
        if target.protocol in _NAMED_PROTOCOLS:
            route["metadata"] = {"filter_metadata": {"tollgate": {"protocol": target.protocol}}}
        if target.anonymous:
            route["typed_per_filter_config"] = {JWT_AUTHN_FILTER: {
                "@type": _JWT_PER_ROUTE, "requirement_name": "token_if_any"}}
        url = self.upstreams.get(target.name) or (target.k8s.upstream if target.k8s else None)
        ca_file = self.config.resolve(target.k8s.ca_file) \
            if target.k8s and target.k8s.ca_file and target.name not in self.upstreams else None
        if url is None:
            upstream = _upstream_cluster(cluster, "http", PLACEHOLDER_HOST, 80, None)
            self.todo.append(f"cluster {cluster} (target {target.name}) is a placeholder: set "
                             f"its address, or write this again with --upstream "
                             f"{target.name}=URL")
            self.bootstrap["static_resources"]["clusters"].append(upstream)
        else:
            self._upstream(cluster, target, url, action, "", ca_file)
        return route

    def _upstream(self, cluster: str, target: Target, url: str, action: dict[str, Any],
                  how: str, ca_file: Path | None = None) -> None:
        """Cluster `cluster` at `target`'s upstream `url`, its route's `action` sending
        the upstream's name where it is reached by TLS at a name."""
        scheme, host, port = _url(url, target.name)
        self.bootstrap["static_resources"]["clusters"].append(
            _upstream_cluster(cluster, scheme, host, port, ca_file))
        self.summary.append(f"Cluster {cluster}: target {target.name}'s upstream, "
                            f"{scheme}://{host}:{port}{how}.")
        if scheme == "https" and not _is_ip(host):
            action["host_rewrite_literal"] = host

    def _providers(self) -> None:
        """The named bootstrap's token providers (their keys' clusters too), else a
        placeholder one; each puts the verified claims where identity.payload_key says."""
        providers = jwt_providers(self.named) if self.named is not None else {}
        # Requirements routes of the named bootstrap may name (token_if_any is written).
        required_by_name = {name: requirement for authn in http_filters(
            self.named or {"static_resources": {}}, JWT_AUTHN_TYPE)
            for name, requirement in (authn["typed_config"].get("requirement_map")
                                      or {}).items()}
        if providers:
            self.summary.append("Token providers: " + ", ".join(providers)
                                + " (as in identity.envoy_bootstrap).")
        else:
            self.bootstrap["static_resources"]["clusters"].append(
                _upstream_cluster(IDENTITY_PROVIDER, "https", PLACEHOLDER_HOST, 443, None))
            providers = {IDENTITY_PROVIDER: {
                "issuer": f"https://{PLACEHOLDER_HOST}", "audiences": ["tollgate"],
                "require_expiration": True, "max_lifetime": "604800s",
                "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
                "forward": False, "clock_skew_seconds": 30,
                "remote_jwks": {
                    "http_uri": {"uri": f"https://{PLACEHOLDER_HOST}/jwks",
                                 "cluster": IDENTITY_PROVIDER, "timeout": "2s"},
                    "cache_duration": "300s", "async_fetch": {}}}}
            self.todo.append(f"token provider {IDENTITY_PROVIDER} is a placeholder "
                             "(identity.envoy_bootstrap gives none): set its issuer, "
                             f"audiences and JWKS, and cluster {IDENTITY_PROVIDER}'s address; "
                             "until then every token is refused")
        providers = copy.deepcopy(providers)
        exchanges = exchanges_tokens(self.config)
        for provider in providers.values():
            provider["payload_in_metadata"] = self.config.identity.payload_key
            if exchanges:
                keep_verified_token(provider)
            jwks = (provider.get("remote_jwks") or {}).get("http_uri") or {}
            if "cluster" in jwks:
                self._keep_cluster(jwks["cluster"], "the token provider's keys")
        names = [{"provider_name": name} for name in providers]
        required = names[0] if len(names) == 1 else {"requires_any": {"requirements": names}}
        for authn in http_filters(self.bootstrap, JWT_AUTHN_TYPE):
            authn["typed_config"].update(
                providers=providers, rules=[{"match": {"prefix": "/"}, "requires": required}],
                requirement_map={**required_by_name, "token_if_any": {"requires_any": {
                    "requirements": [*names, {"allow_missing": {}}]}}})


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _url(url: str, target: str) -> tuple[str, str, int]:
    """An upstream's scheme, host and port, from http(s)://HOST[:PORT]."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
        parts = parts._replace(scheme="")
    if parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.path not in ("", "/") or parts.query:
        raise BootstrapError(f"target {target}: upstream {url!r}: expected "
                             "http(s)://HOST[:PORT]")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _point(cluster: dict[str, Any], host: str, ports: list[int]) -> None:
    """`cluster`'s endpoints: `host` on each port (a name is looked up: STRICT_DNS)."""
    endpoints = [{"endpoint": {"address": {"socket_address": {
        "address": host, "port_value": port}}}} for port in ports]
    cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": endpoints}]
    cluster["type"] = "STATIC" if _is_ip(host) else "STRICT_DNS"
    if not _is_ip(host):
        cluster["dns_lookup_family"] = "V4_PREFERRED"


def _upstream_cluster(name: str, scheme: str, host: str, port: int,
                      ca_file: Path | None) -> dict[str, Any]:
    """A target's upstream: plain HTTP/1.1, or TLS whose certificate must chain to
    `ca_file` (else the system's CAs) and name the host (a DNS name: the Host header
    the route rewrites to it; an address: with `ca_file` only)."""
    cluster: dict[str, Any] = {"name": name, "connect_timeout": "5s",
                               "load_assignment": {"cluster_name": name, "endpoints": []}}
    _point(cluster, host, [port])
    if scheme == "https":
        trust: dict[str, Any] = ({"trusted_ca": {"filename": str(ca_file)}} if ca_file
                                 else {"system_root_certs": {}})
        http: dict[str, Any] = {"explicit_http_config": {"http_protocol_options": {}}}
        if _is_ip(host):
            if ca_file is None:
                raise BootstrapError(f"cluster {name}: {host} is an address: Envoy checks "
                                     "it against its certificate only with the CA that "
                                     "signs it (k8s.ca_file), or use a DNS name")
            trust["match_typed_subject_alt_names"] = [
                {"san_type": "IP_ADDRESS", "matcher": {"exact": host}}]
        else:
            http["upstream_http_protocol_options"] = {"auto_sni": True,
                                                      "auto_san_validation": True}
        cluster["typed_extension_protocol_options"] = {
            _HTTP_OPTIONS: {"@type": f"type.googleapis.com/{_HTTP_OPTIONS}", **http}}
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {"@type": _TLS, **({} if _is_ip(host) else {"sni": host}),
                             "common_tls_context": {"validation_context": trust}}}
    return cluster
