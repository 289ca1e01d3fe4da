"""`tollgate envoy-bootstrap`: the Envoy bootstrap a tollgate config needs, written for it,
valid for the pinned Envoy (`envoy --mode validate`), its names the ones tollgate uses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc import config, envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG, main
from extproc.quickstart import layout, stack
from tests.support.tls import write_tls_files
from tests.test_envoy_configs import assert_tollgate_clusters_guarded

WORKERS = 3


def envoy_validates(path: Path) -> None:
    """The pinned Envoy takes the bootstrap at `path` (files it names must exist)."""
    result = subprocess.run(
        [stack.envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def endpoints(cluster: dict[str, Any]) -> list[tuple[str, int]]:
    return [(e["endpoint"]["address"]["socket_address"]["address"],
             e["endpoint"]["address"]["socket_address"]["port_value"])
            for group in cluster["load_assignment"]["endpoints"] for e in group["lb_endpoints"]]


def port_of(listener: dict[str, Any]) -> tuple[str, int]:
    address = listener["address"]["socket_address"]
    return address["address"], address["port_value"]


def sorted_resources(bootstrap: dict[str, Any]) -> dict[str, Any]:
    resources = bootstrap["static_resources"]
    return {**bootstrap, "static_resources": {
        kind: sorted(resources[kind], key=lambda x: x["name"]) for kind in resources}}


def every_kind(tmp: Path, **more: Any) -> Path:
    """A config with targets of every kind (an HTTP one, anonymous; an llm and a SQL API
    one matched by cluster; two k8s ones with upstreams; postgres, mysql, ssh, egress), its
    fronts on every interface, three workers."""
    ca = write_tls_files(tmp / "tls").ca
    settings = {
        "listen": {"grpc": "0.0.0.0:50051", "workers": WORKERS},
        "targets": [
            {"name": "model", "match": {"route": "llm"}, "protocol": "llm"},
            {"name": "wiki", "match": {"route": "wiki"}, "anonymous": True},
            {"name": "db-api", "match": {"cluster": "dbapi"}, "protocol": "sql-http"},
            {"name": "cluster", "match": {"route": "k8s"}, "protocol": "k8s",
             "k8s": {"upstream": "https://kube.example.com:6443", "ca_file": str(ca)}},
            {"name": "prod", "match": {"route": "k8s-prod"}, "protocol": "k8s",
             "k8s": {"upstream": "https://10.0.0.1:6443", "ca_file": str(ca)}},
            {"name": "shop", "match": {"database": "shop"}, "protocol": "postgres",
             "postgres": {"upstream": "db.internal:5432", "user": "gateway"}},
            {"name": "orders", "match": {"database": "orders"}, "protocol": "mysql",
             "mysql": {"upstream": "mysql.internal:3306", "user": "gateway"}},
            {"name": "host", "match": {"login": "host"}, "protocol": "ssh",
             "ssh": {"upstream": "host.internal:22", "user": "ops", "key_file": "key",
                     "host_key": "ssh-ed25519 AAAA"}},
            {"name": "out", "match": {"route": "out"}, "protocol": "egress",
             "inspect": {"response": "none"}},
        ],
        "postgres": {"listen": "0.0.0.0:10200"},
        "mysql": {"listen": "0.0.0.0:10500"},
        "ssh": {"listen": "0.0.0.0:10300", "agent_port": 2200},
        "kube": {"listen": "0.0.0.0:10400"},
        **more,
    }
    path = tmp / "tollgate.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def test_the_quickstart_config_gives_the_bootstrap_tollgate_up_runs(tmp_path: Path) -> None:
    """Its routes, upstream clusters and token provider are kept from the bootstrap it
    names (identity.envoy_bootstrap, envoy/quickstart.yaml): the result is envoy/
    quickstart.yaml as `tollgate up` moves it for the config's workers."""
    quickstart = config.load(QUICKSTART_CONFIG)
    out = tmp_path / "envoy.yaml"
    assert main(["envoy-bootstrap", "--config", str(QUICKSTART_CONFIG), "--out", str(out)]) == 0
    written = yaml.safe_load(out.read_text())
    ran = envoy_bootstrap.with_ports(envoy_bootstrap.load(), layout.plan(quickstart).envoy,
                                     quickstart.listen.worker_count)
    assert sorted_resources(written) == sorted_resources(ran)
    envoy_validates(out)


def test_a_config_of_every_kind_gets_its_listeners_clusters_and_routes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path, out = every_kind(tmp_path), tmp_path / "envoy.yaml"
    assert main(["envoy-bootstrap", "--config", str(path), "--out", str(out),
                 "--upstream", "model=https://api.openai.example"]) == 0
    envoy_validates(out)
    bootstrap = envoy_bootstrap.load(out)
    listeners = by_name(envoy_bootstrap.socket_listeners(bootstrap))
    assert {x["name"] for x in envoy_bootstrap.listeners(bootstrap)} - set(listeners) == {
        envoy_bootstrap.EGRESS_INSPECT_LISTENER}
    assert {name: port_of(x) for name, x in listeners.items()} == {
        envoy_bootstrap.INGRESS_LISTENER: ("127.0.0.1", 10000),
        envoy_bootstrap.EGRESS_LISTENER: ("127.0.0.1", 3128),
        envoy_bootstrap.POSTGRES_LISTENER: ("127.0.0.1", 15432),
        envoy_bootstrap.MYSQL_LISTENER: ("127.0.0.1", 13306),
        envoy_bootstrap.SSH_LISTENER: ("127.0.0.1", 2200)}  # ssh.agent_port
    clusters = by_name(bootstrap["static_resources"]["clusters"])
    # tollgate's listeners on every interface: Envoy reaches them on 127.0.0.1, a worker
    # per port from each listen port.
    for name, first in ((envoy_bootstrap.EXT_PROC_CLUSTER, 50051),
                        (envoy_bootstrap.POSTGRES_CLUSTER, 10200),
                        (envoy_bootstrap.MYSQL_CLUSTER, 10500),
                        (envoy_bootstrap.SSH_CLUSTER, 10300),
                        (envoy_bootstrap.KUBE_CLUSTER, 10400)):
        assert endpoints(clusters[name]) == [("127.0.0.1", first + i) for i in range(WORKERS)]
    assert envoy_bootstrap.ext_proc_ports(bootstrap) == set(
        config.load(path).listen.worker_ports)
    # Each of them health-checked, with outlier detection (a dead worker taken out).
    assert assert_tollgate_clusters_guarded(bootstrap) == \
        envoy_bootstrap.TOLLGATE_CLUSTERS - envoy_bootstrap.EGRESS_CLUSTERS

    # A route per HTTP target, named as it matches, to a cluster of its own (or of the
    # name it matches); Envoy's answers on llm and k8s routes in their protocols' shape.
    routes = by_name(envoy_bootstrap.routes(bootstrap))
    assert {name: r["route"]["cluster"] for name, r in routes.items()
            if name in ("llm", "wiki", "dbapi", "k8s", "k8s-prod")} == {
        "llm": "target_model", "wiki": "target_wiki", "dbapi": "dbapi",
        "k8s": "target_cluster", "k8s-prod": "target_prod"}
    assert {name: envoy_bootstrap.route_protocol(r) for name, r in routes.items()
            if name in ("llm", "wiki", "dbapi", "k8s")} == {
        "llm": "llm", "wiki": None, "dbapi": None, "k8s": "k8s"}
    authn = routes["wiki"]["typed_per_filter_config"][envoy_bootstrap.JWT_AUTHN_FILTER]
    assert authn["requirement_name"] == "token_if_any"  # anonymous: true
    # Kubernetes streams go to the stream front, the k8s route named in x-tollgate-route.
    streams = routes["k8s_streams"]
    assert streams["route"]["cluster"] == envoy_bootstrap.KUBE_CLUSTER
    assert streams["request_headers_to_add"][0]["header"] == {
        "key": envoy_bootstrap.KUBE_ROUTE_HEADER, "value": "k8s"}
    # The egress listener's routes carry the egress target's route name.
    (egress,) = [m for m in envoy_bootstrap.connection_managers(bootstrap)
                 if m["stat_prefix"] == "egress"]
    assert {r["name"] for r in egress["route_config"]["virtual_hosts"][0]["routes"]} == {"out"}

    # Upstreams: a flag's (TLS, the system's CAs, the host's name checked), a k8s
    # target's (its CA; an address checked as an address), else a placeholder.
    assert endpoints(clusters["target_model"]) == [("api.openai.example", 443)]
    assert routes["llm"]["route"]["host_rewrite_literal"] == "api.openai.example"
    tls = clusters["target_prod"]["transport_socket"]["typed_config"]
    assert tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] \
        == [{"san_type": "IP_ADDRESS", "matcher": {"exact": "10.0.0.1"}}]
    assert endpoints(clusters["target_wiki"]) == [(envoy_bootstrap.PLACEHOLDER_HOST, 80)]
    said = capsys.readouterr().err
    text = out.read_text()
    for placeholder in ("cluster target_wiki (target wiki) is a placeholder",
                        "cluster dbapi (target db-api) is a placeholder",
                        "token provider identity_provider is a placeholder"):
        assert placeholder in said and placeholder in text.split("\nadmin:")[0]


def test_the_kept_routes_and_providers_survive_writing_it_again(tmp_path: Path) -> None:
    """A bootstrap written once, its placeholders filled in by hand and named by the
    config, is written again with those edits: only what the config says is rewritten."""
    first = tmp_path / "envoy.yaml"
    assert main(["envoy-bootstrap", "--config", str(every_kind(tmp_path)),
                 "--out", str(first)]) == 0
    edited = envoy_bootstrap.load(first)
    wiki = by_name(edited["static_resources"]["clusters"])["target_wiki"]
    wiki["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"]["address"] = "10.1.2.3"
    envoy_bootstrap.write(edited, first)
    again = every_kind(tmp_path, identity={"envoy_bootstrap": str(first)},
                       listen={"grpc": "127.0.0.1:7000", "workers": 2})
    written = envoy_bootstrap.for_config(config.load(again))
    clusters = by_name(written.bootstrap["static_resources"]["clusters"])
    assert endpoints(clusters["target_wiki"]) == [("10.1.2.3", 80)]
    assert endpoints(clusters[envoy_bootstrap.EXT_PROC_CLUSTER]) == [
        ("127.0.0.1", 7000), ("127.0.0.1", 7001)]
    assert not any("target_wiki" in item for item in written.todo)
    assert list(envoy_bootstrap.jwt_providers(written.bootstrap)) == [
        envoy_bootstrap.IDENTITY_PROVIDER]


def test_an_upstream_flag_moves_the_cluster_of_a_route_kept_from_the_named_bootstrap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The quickstart's `tools` route comes from the bootstrap its config names: given
    --upstream, its cluster is at that upstream (it was left where that bootstrap had it,
    without a word), and the file's summary says so; a cluster another route shares is
    not moved under it, said so."""
    out = tmp_path / "envoy.yaml"
    assert main(["envoy-bootstrap", "--config", str(QUICKSTART_CONFIG), "--out", str(out),
                 "--upstream", "tools=http://127.0.0.1:3901"]) == 0
    bootstrap = envoy_bootstrap.load(out)
    assert by_name(envoy_bootstrap.routes(bootstrap))["mcp"]["route"]["cluster"] == "demo_mcp"
    clusters = by_name(bootstrap["static_resources"]["clusters"])
    assert endpoints(clusters["demo_mcp"]) == [("127.0.0.1", 3901)]
    assert "Cluster demo_mcp: target tools's upstream, http://127.0.0.1:3901 (--upstream" \
        in out.read_text()  # the leading comment's summary
    envoy_validates(out)
    assert main(["envoy-bootstrap", "--config", str(QUICKSTART_CONFIG), "--out", str(out),
                 "--upstream", "demo=http://127.0.0.1:3902"]) == 2
    assert "cluster demo_upstream of route demo is another route's too" \
        in capsys.readouterr().err


def test_addresses_and_ports_come_from_the_flags(tmp_path: Path) -> None:
    path, out = every_kind(tmp_path), tmp_path / "envoy.yaml"
    assert main(["envoy-bootstrap", "--config", str(path), "--out", str(out),
                 "--listen-address", "0.0.0.0", "--tollgate-host", "tollgate",
                 "--http-port", "8000", "--egress-port", "8001", "--postgres-port", "5432",
                 "--mysql-port", "3306", "--ssh-port", "22", "--admin-port", "8002"]) == 0
    envoy_validates(out)
    bootstrap = envoy_bootstrap.load(out)
    assert {x["name"]: port_of(x) for x in envoy_bootstrap.socket_listeners(bootstrap)} == {
        "ingress": ("0.0.0.0", 8000), "egress": ("0.0.0.0", 8001),
        "postgres": ("0.0.0.0", 5432), "mysql": ("0.0.0.0", 3306), "ssh": ("0.0.0.0", 22)}
    assert bootstrap["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1", "port_value": 8002}
    ext_proc = by_name(bootstrap["static_resources"]["clusters"])["tollgate_extproc"]
    assert ext_proc["type"] == "STRICT_DNS"  # a name, looked up
    assert endpoints(ext_proc) == [("tollgate", 50051 + i) for i in range(WORKERS)]


def test_a_config_without_http_targets_has_no_http_listener(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "tollgate.yaml"
    path.write_text(yaml.safe_dump({
        "listen": {"workers": 1},
        "targets": [{"name": "shop", "match": {"database": "shop"}, "protocol": "postgres",
                     "postgres": {"upstream": "db:5432", "user": "gateway"}}],
        "postgres": {}}))
    assert main(["envoy-bootstrap", "--config", str(path)]) == 0
    written = capsys.readouterr().out
    assert written.startswith(f"# Envoy bootstrap for the tollgate config {path}")
    (tmp_path / "envoy.yaml").write_text(written)
    envoy_validates(tmp_path / "envoy.yaml")
    bootstrap = yaml.safe_load(written)
    assert [x["name"] for x in envoy_bootstrap.listeners(bootstrap)] == ["postgres"]
    assert sorted(c["name"] for c in bootstrap["static_resources"]["clusters"]) == [
        "tollgate_extproc", "tollgate_postgres"]


def test_mcp_routes_become_oauth_protected_resources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """identity.oauth_resource: each MCP route (told apart by Host here: prefix /) is the
    gateway's URL as a resource, its metadata served by Envoy without a token, its tokens
    bound to that audience; an anonymous MCP route and other routes are left alone."""
    path, out = tmp_path / "tollgate.yaml", tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump({
        "listen": {"workers": 1},
        "identity": {"oauth_resource": {"gateway_url": "https://gw.example.com",
                                        "authorization_servers": ["https://login.example"]}},
        "targets": [
            {"name": "tools", "match": {"route": "mcp"}, "protocol": "mcp"},
            {"name": "docs", "match": {"route": "mcp-docs"}, "protocol": "mcp",
             "anonymous": True},
            {"name": "model", "match": {"route": "llm"}, "protocol": "llm"}]}))
    assert main(["envoy-bootstrap", "--config", str(path), "--out", str(out)]) == 0
    envoy_validates(out)
    assert ("Route mcp: OAuth protected resource https://gw.example.com, its metadata at "
            "https://gw.example.com/.well-known/oauth-protected-resource.") in out.read_text()
    bootstrap = envoy_bootstrap.load(out)
    hosts = {host["name"]: host["routes"] for manager in
             envoy_bootstrap.connection_managers(bootstrap) if manager["stat_prefix"] == "ingress"
             for host in manager["route_config"]["virtual_hosts"]}
    metadata, mcp = hosts["mcp"]
    assert metadata["match"] == {"path": envoy_bootstrap.OAUTH_METADATA_PATH}
    assert json.loads(metadata["direct_response"]["body"]["inline_string"]) == {
        "resource": "https://gw.example.com", "authorization_servers": ["https://login.example"],
        "bearer_methods_supported": ["header"]}
    requirement = mcp["typed_per_filter_config"][envoy_bootstrap.JWT_AUTHN_FILTER][
        "requirement_name"]
    (authn,) = envoy_bootstrap.http_filters(bootstrap, envoy_bootstrap.JWT_AUTHN_TYPE)
    assert authn["typed_config"]["requirement_map"][requirement] == {"provider_and_audiences": {
        "provider_name": envoy_bootstrap.IDENTITY_PROVIDER,
        "audiences": ["https://gw.example.com"]}}
    assert [r["name"] for r in hosts["mcp-docs"]] == ["mcp-docs"]
    assert [r["name"] for r in hosts["llm"]] == ["llm"]
    assert "placeholder" in capsys.readouterr().err  # the token provider's
    # Written again from itself (its routes and providers kept), the route is protected
    # as before, once; and protecting it once more changes nothing.
    settings = yaml.safe_load(path.read_text())
    settings["identity"]["envoy_bootstrap"] = str(out)
    path.write_text(yaml.safe_dump(settings))
    again = envoy_bootstrap.for_config(config.load(path)).bootstrap
    assert [r["name"] for r in envoy_bootstrap.routes(again)][:2] == [metadata["name"], "mcp"]
    assert by_name(envoy_bootstrap.routes(again))["mcp"] == mcp
    (manager,) = [m for m in envoy_bootstrap.connection_managers(again)
                  if m["stat_prefix"] == "ingress"]
    assert [m.get("headers_to_add") for m in manager["local_reply_config"]["mappers"]
            if m.get("headers_to_add")] == [[{
                "header": {"key": "www-authenticate", "value": envoy_bootstrap.OAUTH_CHALLENGE},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]]
    oauth = config.load(path).identity.oauth_resource
    assert oauth is not None
    assert envoy_bootstrap.with_oauth_resource(again, oauth) == again


def test_two_mcp_targets_told_apart_by_host_are_not_one_resource(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "tollgate.yaml"
    path.write_text(yaml.safe_dump({
        "identity": {"oauth_resource": {"gateway_url": "https://gw.example.com",
                                        "authorization_servers": ["https://login.example"]}},
        "targets": [{"name": name, "match": {"route": name}, "protocol": "mcp"}
                    for name in ("tools", "docs")]}))
    assert main(["envoy-bootstrap", "--config", str(path)]) == 2
    assert "MCP routes tools and docs serve the same path (/), so they would be one OAuth " \
        "resource" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "said"), [
    (["--upstream", "nobody=http://x"], "--upstream nobody: the config has no such target"),
    (["--upstream", "wiki=ftp://x"], "target wiki: upstream 'ftp://x': expected "
                                     "http(s)://HOST[:PORT]"),
    (["--upstream", "wiki=https://10.0.0.9"], "cluster target_wiki: 10.0.0.9 is an address"),
])
def test_unusable_upstreams_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], said: str,
) -> None:
    out = tmp_path / "envoy.yaml"
    assert main(["envoy-bootstrap", "--config", str(every_kind(tmp_path)),
                 "--out", str(out), *argv]) == 2
    assert said in capsys.readouterr().err
    assert not out.exists()
