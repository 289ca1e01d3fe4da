"""Kubernetes end to end: the real kubectl, through a real Envoy serving TLS, to the
Kubernetes API stand-in (tests/standins/k8s_standin.py: no API server can run here).

Envoy has two listeners, a plain one and a TLS one (kubectl sends its token only over
TLS), as real bootstraps do; tollgate reads approvers' token providers from them both.

kubectl holds only the agent's token; tollgate reads each call as the API server would
(verb, resource, namespace, the exec argv) and the default pack decides: no exec into
production for agents, no secrets for agents, no namespace deletion. What is allowed
reaches the stand-in with the cluster's own token, injected by tollgate.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_approvals_e2e import api
from tests.standins.k8s_standin import K8sStandIn, Kubectl, gateway_options, write_kubeconfig
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.tls import TlsFiles

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
            **gateway_options(cluster, CLUSTER_TOKEN), tls=(tls.cert, tls.key),
            settings={"approvals": {"max_hold_seconds": 1}},  # a held call waits 1 s
    ) as running:
        yield running


def kubectl_as(gw: Gateway, tls: TlsFiles, work: Path, groups: list[str],
               token: str | None = None) -> Kubectl:
    token = token or tokens.token(sub="-".join(groups), groups=groups, ttl=600)
    kubeconfig = write_kubeconfig(work / f"kubeconfig-{'-'.join(groups)}",
                                  f"https://127.0.0.1:{gw.tls_port}", token, tls.ca)
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
    assert "unable to upgrade connection: tollgate refused: destructive command in exec: " \
        "rm -rf /; exec into production namespace prod (trace " in result.stderr, result.stderr
    # Neither the WebSocket GET nor kubectl's SPDY fallback (a POST) reached the cluster.
    reached = [r for r in cluster.requests[before:] if r.path.endswith("/exec")]
    assert reached == []
    assert not any(e.namespace == "prod" for e in cluster.execs)

    def exec_into_prod(span) -> bool:  # type: ignore[no-untyped-def]
        # The agent's own: an sre's `rm -rf /` into prod (another test, the same gateway)
        # is refused by k8s.destructive_exec alone.
        return (span.attributes.get("tollgate.k8s.verb") == "exec"
                and span.attributes.get("tollgate.k8s.namespace") == "prod"
                and span.attributes.get("enduser.id") == "agents")

    def refused_twice(spans) -> bool:  # type: ignore[no-untyped-def]
        # WebSocket first (a GET), then kubectl's SPDY fallback (a POST).
        methods = {s.attributes["http.request.method"] for s in spans if exec_into_prod(s)}
        return methods == {"GET", "POST"}

    refused = [s for s in gw.otlp.wait_for(refused_twice) if exec_into_prod(s)]
    for span in refused:
        assert span.attributes["tollgate.decision.rules"] == (
            "k8s.destructive_exec", "k8s.production_session")
        assert span.attributes["tollgate.k8s.command"] == ("rm", "-rf", "/")


@pytest.mark.parametrize(("who", "namespace", "command"), [
    ("agent", "staging", ["rm", "-rf", "/"]),
    ("sre", "prod", ["sh", "-c", "cd /tmp && rm -rf /"]),
], ids=["agent-rm-outside-production", "sre-sh-c-in-production"])
def test_a_destructive_exec_is_refused_by_meaning_in_any_namespace(
    request: pytest.FixtureRequest, cluster: K8sStandIn, who: str, namespace: str,
    command: list[str],
) -> None:
    """The exec's argv goes through the shell reader that judges a model's tool calls:
    `rm -rf /` is refused wherever it runs and whoever asks, `sh -c` unwrapped."""
    kubectl: Kubectl = request.getfixturevalue(who)
    before = len(cluster.requests)
    result = kubectl("exec", "web-1", "-n", namespace, "--", *command)
    assert result.returncode != 0
    assert "unable to upgrade connection: tollgate refused: destructive command in exec: " \
        "rm -rf / (trace " in result.stderr, result.stderr
    assert not [r for r in cluster.requests[before:] if r.path.endswith("/exec")]
    assert not any(e.command == command for e in cluster.execs)


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


SECRET_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: reader
  namespace: staging
spec:
  containers:
  - name: reader
    image: busybox
    command: [cat, /s/password]
    volumeMounts: [{name: s, mountPath: /s}]
  volumes:
  - name: s
    secret: {secretName: db-credentials}
"""


def test_an_agent_cannot_run_a_pod_in_production(agent: Kubectl, cluster: K8sStandIn) -> None:
    """`kubectl run -- sh` is exec by another name: decided on the pod spec it sends."""
    before = len(cluster.requests)
    result = agent("run", "x", "--image=busybox", "-n", "prod", "--restart=Never", "--", "sh")
    assert result.returncode != 0
    assert ("(Forbidden): tollgate refused: create of Pod x in production namespace prod "
            "(trace ") in result.stderr, result.stderr
    assert not any(r.method == "POST" for r in cluster.requests[before:])
    assert cluster.object("pods", "prod", "x") is None


def test_an_agent_cannot_apply_a_pod_mounting_a_secret(
    agent: Kubectl, cluster: K8sStandIn, tmp_path: Path
) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(SECRET_POD)
    before = len(cluster.requests)
    # --validate=false: kubectl validates against OpenAPI, which the stand-in does not serve.
    result = agent("apply", "-f", str(manifest), "--validate=false")
    assert result.returncode != 0
    assert ("tollgate refused: Pod reader mounts secret db-credentials (trace "
            in result.stderr), result.stderr
    assert not any(r.method == "POST" for r in cluster.requests[before:])
    assert cluster.object("pods", "staging", "reader") is None


# Ways out of a pod onto its node, or into what its service account may do, outside
# production: each waits for a cluster admin.
ESCAPES = {
    "host-root": ("volumes: [{name: root, hostPath: {path: /}}]\n", "host path /"),
    "privileged": ("", "a privileged container"),
    "host-pid": ("hostPID: true\n", "the host's processes"),
    "admin-account": ("serviceAccount: cluster-admin-sa\n",
                      "service account cluster-admin-sa"),
}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_an_agent_s_pod_reaching_its_node_waits_for_a_cluster_admin(
    agent: Kubectl, gw: Gateway, cluster: K8sStandIn, tmp_path: Path, escape: str
) -> None:
    spec, reason = ESCAPES[escape]
    context = "true" if escape == "privileged" else "false"
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {escape}, namespace: staging}}\n"
        f"spec:\n  containers:\n  - {{name: c, image: busybox, "
        f"securityContext: {{privileged: {context}}}}}\n"
        + "".join(f"  {line}\n" for line in spec.splitlines()))
    before = len(cluster.requests)
    result = agent("apply", "-f", str(manifest), "--validate=false")
    assert result.returncode != 0
    assert result.stderr.startswith("Error from server (Forbidden): "), result.stderr
    assert ("tollgate: this request needs an approval by group:cluster-admins; approval "
            "ap-") in result.stderr, result.stderr
    assert f"is pending: retry once it is approved (create of Pod {escape} in namespace " \
           f"staging: {reason}) (trace " in result.stderr, result.stderr
    assert not any(r.method == "POST" for r in cluster.requests[before:])
    assert cluster.object("pods", "staging", escape) is None
    _, listed = api(gw, "GET", "/approvals?status=pending",
                    tokens.token("carol", ["cluster-admins"]))
    pending = listed["approvals"]
    assert any(a["rules"] == ["k8s.privileged_pod"] and a["reasons"] == [
        f"create of Pod {escape} in namespace staging: {reason}"] for a in pending), pending


def test_an_agent_may_create_a_configmap(agent: Kubectl, cluster: K8sStandIn) -> None:
    result = agent("create", "configmap", "settings", "-n", "prod", "--from-literal=a=b")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "configmap/settings created\n"
    assert cluster.object("configmaps", "prod", "settings")["data"] == {"a": "b"}


def test_a_workload_sent_in_protobuf_is_refused_unread_to_agents(
    agent: Kubectl, sre: Kubectl, cluster: K8sStandIn,
) -> None:
    """`kubectl create deployment` sends protobuf, whose pod spec tollgate does not read: an
    agent's is refused rather than passed unjudged; a person's goes to the cluster (no rule
    for people needs the pod spec)."""
    before = len(cluster.requests)
    result = agent("create", "deployment", "web", "--image=busybox", "-n", "staging")
    assert result.returncode != 0
    assert ("tollgate refused: create of deployments: what it puts in the pod cannot be "
            "read: a create of deployments sent as application/vnd.kubernetes.protobuf is not "
            "read") in result.stderr, result.stderr
    assert not any(r.method == "POST" for r in cluster.requests[before:])
    sre("create", "deployment", "web", "--image=busybox", "-n", "staging")
    assert [r.path for r in cluster.requests[before:] if r.method == "POST"] == [
        "/apis/apps/v1/namespaces/staging/deployments"]


def raw_call(gw: Gateway, tls: TlsFiles, method: str, path: str, groups: list[str],
             body: bytes | None = None, content_type: str = "application/json",
             token: str | None = None, secure: bool = True) -> tuple[int, dict[str, Any]]:
    """One request as a hand-written client sends it (over TLS unless not `secure`):
    kubectl cleans paths and reads an object before it patches it, so some requests
    only a raw client makes."""
    conn = (http.client.HTTPSConnection(
        "127.0.0.1", gw.tls_port, context=ssl.create_default_context(cafile=str(tls.ca)),
        timeout=10) if secure else http.client.HTTPConnection(
        "127.0.0.1", gw.ports.listener, timeout=10))
    token = token or tokens.token(sub="raw", groups=groups, ttl=600)
    headers = {"authorization": f"Bearer {token}"}
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


# -- two listeners, and Envoy's own answers as a Kubernetes Status ----------------------


def test_a_token_works_on_either_listener_and_approvers_tokens_verify(
    gw: Gateway, tls: TlsFiles, cluster: K8sStandIn
) -> None:
    """tollgate started with this two-listener bootstrap (its approvers' token providers
    read from both), and Envoy verifies agents' tokens on each listener."""
    for secure in (True, False):
        status, answer = raw_call(gw, tls, "GET", "/api/v1/namespaces/prod/pods", ["agents"],
                                  secure=secure)
        assert status == 200, answer
        assert answer["kind"] == "PodList"
    request = urllib.request.Request(f"{gw.admin_url}/approvals", headers={
        "authorization": f"Bearer {tokens.token('dana', ['dba'], ttl=600)}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200
        assert json.loads(reply.read())["approvals"] == []


def test_kubectl_with_an_expired_token_is_told_why(
    gw: Gateway, tls: TlsFiles, tmp_path: Path, cluster: K8sStandIn
) -> None:
    """Envoy refuses the token itself (tollgate is never asked), and says so as the API
    server would: a Status, whose message kubectl prints. (`kubectl get pods` would fail
    first in discovery, where client-go shows its own words for any 401.)"""
    before = len(cluster.requests)
    expired = kubectl_as(gw, tls, tmp_path, ["agents"], tokens.token(ttl=-300))
    result = expired("get", "--raw", "/api/v1/namespaces/prod/pods")
    assert result.returncode != 0
    said = "the token has expired: get a new one (Envoy: Jwt is expired)"
    assert f"error: You must be logged in to the server ({said})" in result.stderr, \
        result.stderr
    status, answer = raw_call(gw, tls, "GET", "/api/v1/namespaces/prod/pods", ["agents"],
                              token=tokens.token(ttl=-300))
    assert status == 401
    assert {k: answer[k] for k in ("kind", "apiVersion", "status", "reason", "code",
                                   "message", "error", "trace_id")} == {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Unauthorized",
        "code": 401, "message": said, "error": "unauthenticated", "trace_id": None}
    assert answer["request_id"]
    assert len(cluster.requests) == before
