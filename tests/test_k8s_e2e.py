"""Kubernetes end to end: the real kubectl, through a real Envoy serving TLS, to the
Kubernetes API stand-in (tests/k8s_standin.py: no API server can run here).

kubectl holds only the agent's token; tollgate reads each call as the API server would
(verb, resource, namespace, the exec argv) and the default pack decides: no exec into
production for agents, no secrets for agents, no namespace deletion. What is allowed
reaches the stand-in with the cluster's own token, injected by tollgate.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import tokens
from tests.conftest import Gateway, module_gateway
from tests.k8s_standin import K8sStandIn, Kubectl, write_kubeconfig
from tests.tls import TlsFiles

CLUSTER_TOKEN = "cluster-admin-token-5d1e"  # the target's credential: never the agent's


@pytest.fixture(scope="module")
def cluster() -> Iterator[K8sStandIn]:
    with K8sStandIn(CLUSTER_TOKEN) as server:  # plain HTTP: Envoy terminates TLS
        yield server


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, otlp, tls: TlsFiles,  # type: ignore[no-untyped-def]
    cluster: K8sStandIn,
) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "k8s",
            targets=[{
                "name": "cluster", "match": {"route": "k8s"}, "protocol": "k8s",
                "environment": "prod",
                "k8s": {"namespace_labels": {"prod": {"environment": "production"},
                                             "staging": {"environment": "staging"}}},
                "credential": {"type": "bearer", "from_env": "CLUSTER_TOKEN"},
            }],
            routes=[{"name": "k8s", "match": {"prefix": "/"}, "route": {"cluster": "k8s"}}],
            clusters={"k8s": int(cluster.url.rsplit(":", 1)[1])},
            tls=(tls.cert, tls.key),
            env={"CLUSTER_TOKEN": CLUSTER_TOKEN},
    ) as running:
        yield running


def kubectl_as(gw: Gateway, tls: TlsFiles, work: Path, groups: list[str]) -> Kubectl:
    token = tokens.token(sub="-".join(groups), groups=groups, ttl=600)
    kubeconfig = write_kubeconfig(work / f"kubeconfig-{'-'.join(groups)}",
                                  f"https://127.0.0.1:{gw.ports.listener}", token, tls.ca)
    return Kubectl(kubeconfig, work / f"cache-{'-'.join(groups)}")


@pytest.fixture
def agent(gw: Gateway, tls: TlsFiles, tmp_path: Path) -> Kubectl:
    return kubectl_as(gw, tls, tmp_path, ["agents"])


@pytest.fixture
def sre(gw: Gateway, tls: TlsFiles, tmp_path: Path) -> Kubectl:
    return kubectl_as(gw, tls, tmp_path, ["sre"])


def test_an_agent_lists_pods_with_the_clusters_token_injected(
    gw: Gateway, agent: Kubectl, cluster: K8sStandIn
) -> None:
    result = agent("get", "pods", "-n", "prod")
    assert result.returncode == 0, result.stderr
    assert "web-1" in result.stdout
    seen = [r for r in cluster.requests if r.path == "/api/v1/namespaces/prod/pods"]
    assert seen and all(r.headers["authorization"] == f"Bearer {CLUSTER_TOKEN}" for r in seen)


def test_an_agent_may_exec_into_staging(agent: Kubectl, cluster: K8sStandIn) -> None:
    result = agent("exec", "web-1", "-n", "staging", "--", "ls", "/")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "executed: ls /\n"
    assert ("staging", "web-1", ("ls", "/")) in [
        (e.namespace, e.pod, tuple(e.command)) for e in cluster.execs
    ]


def test_kubectl_exec_rm_rf_into_production_is_refused_on_both_transports(
    gw: Gateway, agent: Kubectl, cluster: K8sStandIn
) -> None:
    before = len(cluster.requests)
    result = agent("exec", "web-1", "-n", "prod", "--", "rm", "-rf", "/")
    assert result.returncode != 0
    assert "unable to upgrade connection: tollgate refused: exec into production namespace " \
        "prod" in result.stderr, result.stderr
    # Neither the WebSocket GET nor kubectl's SPDY fallback (a POST) reached the cluster.
    reached = [r for r in cluster.requests[before:] if r.path.endswith("/exec")]
    assert reached == []
    assert not any(e.namespace == "prod" for e in cluster.execs)

    def exec_into_prod(span) -> bool:  # type: ignore[no-untyped-def]
        return (span.attributes.get("tollgate.k8s.verb") == "exec"
                and span.attributes.get("tollgate.k8s.namespace") == "prod")

    def refused_twice(spans) -> bool:  # type: ignore[no-untyped-def]
        # WebSocket first (a GET), then kubectl's SPDY fallback (a POST).
        methods = {s.attributes["http.request.method"] for s in spans if exec_into_prod(s)}
        return methods == {"GET", "POST"}

    refused = [s for s in gw.otlp.wait_for(refused_twice) if exec_into_prod(s)]
    for span in refused:
        assert span.attributes["tollgate.decision.rules"] == ("k8s.production_session",)
        assert span.attributes["tollgate.k8s.command"] == ("rm", "-rf", "/")


def test_someone_outside_agents_may_exec_into_production(
    sre: Kubectl, cluster: K8sStandIn
) -> None:
    result = sre("exec", "web-1", "-n", "prod", "--", "uptime")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "executed: uptime\n"


def test_an_agent_cannot_read_secrets(agent: Kubectl, sre: Kubectl, cluster: K8sStandIn) -> None:
    before = len(cluster.requests)
    result = agent("get", "secrets", "-n", "staging")
    assert result.returncode != 0
    assert "(Forbidden): tollgate refused: list secrets (trace " in result.stderr, result.stderr
    assert not any("/secrets" in r.path for r in cluster.requests[before:])
    allowed = sre("get", "secret", "db-credentials", "-n", "staging", "-o", "name")
    assert allowed.returncode == 0, allowed.stderr


def test_nobody_deletes_a_namespace(sre: Kubectl, cluster: K8sStandIn) -> None:
    result = sre("delete", "namespace", "staging", "--wait=false")
    assert result.returncode != 0
    assert "Error from server (Forbidden): tollgate refused: namespace deletion" in result.stderr
    assert not any(r.method == "DELETE" for r in cluster.requests)
    assert cluster.object("namespaces", "", "staging") is not None


def raw_call(gw: Gateway, tls: TlsFiles, method: str, path: str, groups: list[str],
             body: bytes | None = None, content_type: str = "application/json",
             ) -> tuple[int, dict[str, Any]]:
    """One HTTPS request as a hand-written client sends it: kubectl cleans paths and
    reads an object before it patches it, so some requests only a raw client makes."""
    context = ssl.create_default_context(cafile=str(tls.ca))
    conn = http.client.HTTPSConnection("127.0.0.1", gw.ports.listener, context=context,
                                       timeout=10)
    headers = {"authorization": f"Bearer {tokens.token(sub='raw', groups=groups, ttl=600)}"}
    if body is not None:
        headers["content-type"] = content_type
    try:
        conn.request(method, path, body=body, headers=headers)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def test_a_path_the_api_server_could_read_otherwise_is_refused(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn
) -> None:
    """`..` hidden as `%2E%2E` (kubectl would clean it before sending)."""
    before = len(cluster.requests)
    status, answer = raw_call(gw, tls, "GET", "/api/v1/namespaces/default/pods/%2E%2E/secrets",
                              ["sre"])
    assert status == 403
    assert answer["kind"] == "Status"
    assert answer["message"].startswith(
        "tollgate refused: unreadable Kubernetes request: '.' or '..' segment in path"
    ), answer
    assert len(cluster.requests) == before


def test_an_agent_cannot_read_a_secret_through_a_dry_run_patch(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn
) -> None:
    """The API server answers a patch, even a dry run, with the secret, data included."""
    before = len(cluster.requests)
    status, answer = raw_call(
        gw, tls, "PATCH", "/api/v1/namespaces/staging/secrets/db-credentials?dryRun=All",
        ["agents"], b'{"metadata": {"labels": {"x": "y"}}}', "application/merge-patch+json")
    assert status == 403
    assert answer["message"].startswith("tollgate refused: patch secrets"), answer
    assert len(cluster.requests) == before


def test_an_agent_cannot_reach_the_kubelet_through_a_nodes_proxy(
    agent: Kubectl, cluster: K8sStandIn
) -> None:
    before = len(cluster.requests)
    result = agent("get", "--raw", "/api/v1/nodes/node-1/proxy/exec/prod/web-1/app?command=sh")
    assert result.returncode != 0
    assert "tollgate refused: the kubelet API through nodes/proxy" in result.stderr, result.stderr
    assert len(cluster.requests) == before
