"""Reading and deriving Envoy bootstraps with several listeners, filter chains and
connection managers, as real ones have (the quickstart has one of each)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from extproc import envoy_bootstrap as eb
from extproc.config import OAuthResource

CERT, KEY = Path("/etc/tls/server.pem"), Path("/etc/tls/server-key.pem")


def two_listeners() -> dict[str, Any]:
    """The quickstart's ingress listener and its TLS twin (its egress listener left out)."""
    return eb.with_tls(eb.with_ports(eb.load(), eb.Ports(postgres=15432)), CERT, KEY, 10443)


def test_a_tls_twin_serves_the_same_routes_and_filters_on_its_own_port() -> None:
    plain, secure = eb.http_listeners(two_listeners())
    assert (plain["name"], secure["name"]) == ("ingress", "ingress_tls")
    assert secure["address"]["socket_address"]["port_value"] == 10443
    assert "transport_socket" not in plain["filter_chains"][0]
    (chain,) = secure["filter_chains"]
    context = chain.pop("transport_socket")["typed_config"]["common_tls_context"]
    assert context["tls_certificates"][0]["certificate_chain"] == {"filename": str(CERT)}
    assert chain.pop("transport_socket_connect_timeout") == eb.TLS_HANDSHAKE_TIMEOUT
    assert chain == plain["filter_chains"][0]


def test_readers_go_over_every_listener_and_filter_chain() -> None:
    config = two_listeners()
    _, secure = eb.http_listeners(config)
    # A listener whose second filter chain, and default one, hold connection managers.
    secure["filter_chains"].append(copy.deepcopy(secure["filter_chains"][0]))
    secure["default_filter_chain"] = copy.deepcopy(secure["filter_chains"][0])
    assert len(eb.connection_managers(config)) == 4
    assert len(eb.http_filters(config, eb.EXT_PROC_TYPE)) == 4
    assert list(eb.jwt_providers(config)) == ["tollgate-dev"]
    baseline = eb.without_ext_proc(config)
    assert eb.http_filters(baseline, eb.EXT_PROC_TYPE) == []
    assert len(eb.http_filters(baseline, eb.JWT_AUTHN_TYPE)) == 4


def test_filters_are_recognised_by_their_type_not_their_name() -> None:
    config = eb.load()
    (authn,) = eb.http_filters(config, eb.JWT_AUTHN_TYPE)
    authn["name"] = "verify-agent-tokens"
    assert list(eb.jwt_providers(config)) == ["tollgate-dev"]


def test_providers_of_different_names_are_gathered_from_every_listener() -> None:
    config = two_listeners()
    _, authn = eb.http_filters(config, eb.JWT_AUTHN_TYPE)
    providers = authn["typed_config"]["providers"]
    providers["partners"] = {**providers.pop("tollgate-dev"), "issuer": "https://p.example"}
    assert sorted(eb.jwt_providers(config)) == ["partners", "tollgate-dev"]
    with pytest.raises(eb.BootstrapError) as error:
        eb.jwt_provider(config)
    assert str(error.value) == (
        "expected one jwt_authn provider, the bootstrap has 2: tollgate-dev, partners")


def test_one_provider_name_configured_two_ways_is_an_error_naming_the_listeners() -> None:
    config = two_listeners()
    _, authn = eb.http_filters(config, eb.JWT_AUTHN_TYPE)
    authn["typed_config"]["providers"]["tollgate-dev"]["clock_skew_seconds"] = 300
    with pytest.raises(eb.BootstrapError) as error:
        eb.jwt_providers(config)
    assert "'tollgate-dev' is configured differently in listener ingress and listener " \
        "ingress_tls" in str(error.value)


def test_functions_for_one_listener_name_every_listener_they_found() -> None:
    for derive in (lambda c: eb.with_ports(c, eb.Ports()),
                   lambda c: eb.with_tls(c, CERT, KEY, 10444)):
        with pytest.raises(eb.BootstrapError) as error:
            derive(two_listeners())
        assert str(error.value) == (
            "expected one listener, the bootstrap has 2: ingress, ingress_tls")


def test_with_jwt_issuer_changes_the_provider_in_every_listener() -> None:
    config = eb.with_jwt_issuer(two_listeners(), "https://test.example", ["t"], '{"keys": []}')
    providers = [f["typed_config"]["providers"]["tollgate-dev"]
                 for f in eb.http_filters(config, eb.JWT_AUTHN_TYPE)]
    assert len(providers) == 2
    assert all(p["issuer"] == "https://test.example" for p in providers)
    assert eb.jwt_provider(config)["local_jwks"] == {"inline_string": '{"keys": []}'}


def _cluster_ports(bootstrap: dict[str, Any]) -> dict[str, int]:
    def port(cluster: dict[str, Any]) -> int:
        (group,) = cluster["load_assignment"]["endpoints"]
        (endpoint,) = group["lb_endpoints"]
        return endpoint["endpoint"]["address"]["socket_address"]["port_value"]

    return {c["name"]: port(c) for c in bootstrap["static_resources"]["clusters"]}


def test_with_ports_moves_tollgate_and_the_demo_upstreams_and_leaves_other_clusters() -> None:
    config = eb.with_clusters(eb.load(), {"model": 8443})
    moved = eb.with_ports(config, eb.Ports(listener=1, admin=2, ext_proc=3, upstream=4, mcp=5))
    assert _cluster_ports(moved) == {
        "tollgate_extproc": 3, "demo_upstream": 4, "demo_mcp": 5, "model": 8443}
    (listener,) = eb.listeners(moved)
    assert listener["address"]["socket_address"]["port_value"] == 1
    assert moved["admin"]["address"]["socket_address"]["port_value"] == 2


def test_with_ports_on_a_bootstrap_without_the_demo_mcp_server() -> None:
    config = eb.load()
    config["static_resources"]["clusters"] = [
        c for c in config["static_resources"]["clusters"] if c["name"] != eb.DEMO_MCP_CLUSTER]
    moved = eb.with_ports(config, eb.Ports(listener=1, admin=2, ext_proc=3, upstream=4, mcp=5))
    assert _cluster_ports(moved) == {"tollgate_extproc": 3, "demo_upstream": 4}


def test_with_ports_lists_one_ext_proc_endpoint_per_worker_at_the_same_address() -> None:
    moved = eb.with_ports(eb.load(), eb.Ports(ext_proc=7000), workers=3)
    (cluster,) = [c for c in moved["static_resources"]["clusters"]
                  if c["name"] == eb.EXT_PROC_CLUSTER]
    (group,) = cluster["load_assignment"]["endpoints"]
    assert [e["endpoint"]["address"]["socket_address"] for e in group["lb_endpoints"]] == [
        {"address": "127.0.0.1", "port_value": port} for port in (7000, 7001, 7002)]
    assert eb.ext_proc_ports(moved) == {7000, 7001, 7002}
    assert eb.ext_proc_ports(eb.load()) == {10100}


def test_a_bootstrap_without_the_ext_proc_cluster_is_named() -> None:
    config = eb.load()
    config["static_resources"]["clusters"] = [
        c for c in config["static_resources"]["clusters"] if c["name"] != eb.EXT_PROC_CLUSTER]
    with pytest.raises(eb.BootstrapError) as error:
        eb.ext_proc_ports(config)
    assert str(error.value) == "expected one cluster tollgate_extproc, the bootstrap has 0"


def test_with_routes_adds_the_routes_to_every_connection_manager() -> None:
    route = {"name": "extra", "match": {"prefix": "/extra/"}, "route": {"cluster": "x"}}
    config = eb.with_routes(two_listeners(), [route])
    for manager in eb.connection_managers(config):
        assert manager["route_config"]["virtual_hosts"][0]["routes"][0] == route


def test_with_ports_serves_postgresql_only_when_asked() -> None:
    """The PostgreSQL listener and the front's cluster (one endpoint per worker) where
    tollgate serves PostgreSQL; neither where it does not, so no listener hands
    clients to a front that is not there."""
    served = eb.with_ports(eb.load(), eb.Ports(postgres=7, postgres_front=20), workers=3)
    by_name = {x["name"]: x for x in eb.listeners(served)}
    assert by_name[eb.POSTGRES_LISTENER]["address"]["socket_address"]["port_value"] == 7
    (cluster,) = [c for c in served["static_resources"]["clusters"]
                  if c["name"] == eb.POSTGRES_CLUSTER]
    (group,) = cluster["load_assignment"]["endpoints"]
    assert [e["endpoint"]["address"]["socket_address"]["port_value"]
            for e in group["lb_endpoints"]] == [20, 21, 22]
    unserved = eb.with_ports(eb.load(), eb.Ports())
    assert [x["name"] for x in eb.listeners(unserved)] == ["ingress"]
    assert eb.POSTGRES_CLUSTER not in {c["name"] for c in unserved["static_resources"]["clusters"]}


OAUTH = OAuthResource("https://gw.example.com", ("https://login.example",))


def test_an_mcp_route_is_protected_in_every_listener_with_envoy_s_mcp_body() -> None:
    """The quickstart's /mcp route, in its listener and the TLS twin: metadata routes first,
    the route bound to its resource, and the challenge mapper after the one that leaves
    tollgate's refusals alone, in the body of the MCP routes' 401 mapper."""
    config = eb.with_oauth_resource(two_listeners(), OAUTH)
    for manager in eb.connection_managers(config):
        (host,) = manager["route_config"]["virtual_hosts"]
        assert [(r["name"], r["match"]) for r in host["routes"][:3]] == [
            ("mcp_oauth_resource", {"path": "/.well-known/oauth-protected-resource/mcp"}),
            ("mcp_oauth_resource", {"path": "/.well-known/oauth-protected-resource"}),
            ("llm", {"prefix": "/v1/"})]
        mcp = next(r for r in host["routes"] if r["name"] == "mcp")
        assert mcp["metadata"]["filter_metadata"]["tollgate"][eb.RESOURCE_METADATA_KEY] == \
            "https://gw.example.com/.well-known/oauth-protected-resource/mcp"
        mappers = manager["local_reply_config"]["mappers"]
        assert set(mappers[0]) == {"filter"} and "headers_to_add" in mappers[1]
        shaped = next(m for m in mappers[2:] if m.get("status_code") == 401
                      and "== 'mcp'" in str(m["filter"]))
        assert mappers[1]["body_format_override"] == shaped["body_format_override"]


def test_each_provider_may_sign_a_protected_route_s_token() -> None:
    config = copy.deepcopy(two_listeners())
    for authn in eb.http_filters(config, eb.JWT_AUTHN_TYPE):
        providers = authn["typed_config"]["providers"]
        providers["second"] = copy.deepcopy(providers["tollgate-dev"])
    for authn in eb.http_filters(eb.with_oauth_resource(config, OAUTH), eb.JWT_AUTHN_TYPE):
        assert authn["typed_config"]["requirement_map"]["oauth_resource:mcp"] == {
            "requires_any": {"requirements": [
                {"provider_and_audiences": {"provider_name": name,
                                            "audiences": ["https://gw.example.com/mcp"]}}
                for name in ("tollgate-dev", "second")]}}


def test_an_mcp_route_without_a_path_or_a_provider_is_named() -> None:
    regex = eb.with_routes(two_listeners(), [{
        "name": "tools", "match": {"safe_regex": {"regex": "/t.*"}}, "route": {"cluster": "x"},
        "metadata": {"filter_metadata": {"tollgate": {"protocol": "mcp"}}}}])
    with pytest.raises(eb.BootstrapError, match="MCP route tools is matched by neither"):
        eb.with_oauth_resource(regex, OAUTH)
    with pytest.raises(eb.BootstrapError, match="listener ingress has MCP routes but no "
                                                "jwt_authn provider"):
        eb.with_oauth_resource(eb.without_http_filters(two_listeners(), eb.JWT_AUTHN_TYPE),
                               OAUTH)


def test_two_mcp_routes_at_one_path_would_be_one_resource() -> None:
    twin = eb.with_routes(two_listeners(), [{
        "name": "tools", "match": {"prefix": "/mcp/"}, "route": {"cluster": "x"},
        "metadata": {"filter_metadata": {"tollgate": {"protocol": "mcp"}}}}])
    with pytest.raises(eb.BootstrapError, match="MCP routes tools and mcp serve the same path "
                                                r"\(/mcp\)"):
        eb.with_oauth_resource(twin, OAUTH)


# -- where a route's requests go (upstream_of) ------------------------------------------


def mcp_bootstrap(upstream: str) -> dict[str, Any]:
    """The bootstrap `tollgate envoy-bootstrap` writes for an MCP target at `upstream`."""
    from extproc import config

    parsed = config.parse({"policy": {"dir": "."}, "targets": [
        {"name": "tools", "protocol": "mcp", "match": {"route": "mcp"}}]})
    return eb.for_config(parsed, upstreams={"tools": upstream}).bootstrap


def test_a_routes_upstream_is_its_clusters_endpoint_plain_or_tls_as_written() -> None:
    plain = eb.upstream_of(mcp_bootstrap("http://127.0.0.1:8931"), "mcp", None)
    assert plain == eb.Upstream("http", "127.0.0.1", 8931)
    tls = eb.upstream_of(mcp_bootstrap("https://mcp.example.com"), "mcp", None)
    # The route sends the server's name as Host; its certificate must name it, by the
    # system's CAs.
    assert tls == eb.Upstream("https", "mcp.example.com", 443, "mcp.example.com", None,
                              "mcp.example.com")
    by_cluster = eb.upstream_of(mcp_bootstrap("http://127.0.0.1:8931"), None, "target_tools")
    assert by_cluster == plain


def test_a_prefix_rewrite_is_applied_as_envoy_applies_it() -> None:
    bootstrap = mcp_bootstrap("http://127.0.0.1:8931")
    (route,) = [r for r in eb.routes(bootstrap) if r.get("name") == "mcp"]
    route["match"], route["route"]["prefix_rewrite"] = {"prefix": "/tools/"}, "/mcp/"
    assert eb.upstream_of(bootstrap, "mcp", None).path("/tools/x?a=1") == "/mcp/x?a=1"
    route["match"] = {"path": "/tools"}
    assert eb.upstream_of(bootstrap, "mcp", None).path("/tools?a=1") == "/mcp/?a=1"
    assert eb.upstream_of(mcp_bootstrap("http://127.0.0.1:8931"), "mcp", None).path(
        "/tools/x") == "/tools/x"


def test_of_routes_sharing_a_name_the_first_matching_the_path_is_taken() -> None:
    bootstrap = mcp_bootstrap("http://127.0.0.1:8931")
    bootstrap = eb.with_clusters(bootstrap, {"other": 9000, "shadowing": 9001})
    shadowing = {"name": "mcp", "match": {"prefix": "/tools"}, "route": {"cluster": "other"}}
    first = {"name": "mcp", "match": {"path": "/mcp"}, "route": {"cluster": "shadowing"}}
    bootstrap = eb.with_routes(bootstrap, [shadowing, first])
    assert eb.upstream_of(bootstrap, "mcp", None, "/tools/x").port == 9000
    assert eb.upstream_of(bootstrap, "mcp", None, "/mcp?x=1").port == 9001
    assert eb.upstream_of(bootstrap, "mcp", None, "/mcp/x").port == 8931


def test_a_tls_clusters_ca_file_is_what_the_certificate_must_chain_to() -> None:
    bootstrap = mcp_bootstrap("https://mcp.example.com:8443")
    (cluster,) = [c for c in bootstrap["static_resources"]["clusters"]
                  if c["name"] == "target_tools"]
    context = cluster["transport_socket"]["typed_config"]["common_tls_context"]
    context["validation_context"] = {"trusted_ca": {"filename": "/etc/mcp/ca.pem"}}
    found = eb.upstream_of(bootstrap, "mcp", None)
    assert (found.scheme, found.port, found.ca_file) == ("https", 8443, "/etc/mcp/ca.pem")


def broken(how: str) -> dict[str, Any]:
    """An MCP target's bootstrap changed `how` into one tollgate cannot follow."""
    bootstrap = mcp_bootstrap("http://127.0.0.1:8931")
    (route,) = [r for r in eb.routes(bootstrap) if r.get("name") == "mcp"]
    clusters = bootstrap["static_resources"]["clusters"]
    (cluster,) = [c for c in clusters if c["name"] == "target_tools"]
    if how == "rewrite":
        route["route"]["regex_rewrite"] = {"pattern": {"regex": ".*"}, "substitution": "/"}
    elif how == "weighted":
        route["route"]["weighted_clusters"] = {"clusters": []}
        del route["route"]["cluster"]
    elif how == "eds":
        cluster["load_assignment"]["endpoints"] = []
    elif how == "gone":
        clusters.remove(cluster)
    else:
        common = {"client certificate": {"tls_certificates": [{}]},
                  "inline CA": {"validation_context": {"trusted_ca": {"inline_string": "P"}}}}
        cluster["transport_socket"] = {"typed_config": {"@type": eb._TLS,
                                                        "common_tls_context": common[how]}}
    return bootstrap


@pytest.mark.parametrize(("how", "reason"), [
    ("rewrite", "route mcp has regex_rewrite, which tollgate does not reproduce"),
    ("weighted", "route mcp sends to no single cluster"),
    ("eds", "cluster target_tools lists no endpoint address inline"),
    ("gone", "expected one cluster target_tools, the bootstrap has 0"),
    ("client certificate", "cluster target_tools's TLS context has tls_certificates"),
    ("inline CA", "neither a CA file (trusted_ca.filename) nor the system's CAs"),
])
def test_an_upstream_tollgate_could_not_reach_as_envoy_does_is_refused(
        how: str, reason: str) -> None:
    bootstrap = broken(how)
    with pytest.raises(eb.BootstrapError) as refused:
        eb.upstream_of(bootstrap, "mcp", None)
    assert reason in str(refused.value)
    with pytest.raises(eb.BootstrapError, match="expected one route absent"):
        eb.upstream_of(bootstrap, "absent", None)
