"""The real kubectl 1.37 against the Kubernetes API stand-in, directly, over TLS.

The tests also read every request the stand-in recorded during their kubectl runs with the
interpreter (`extproc.interpret.k8s`), which proves it reads what kubectl really sends:
discovery is non-resource, the rest the verb, resource, namespace and name each test names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc.interpret.k8s import k8s_request
from tests.standins.k8s_standin import Exec, K8sStandIn, Kubectl, write_kubeconfig
from tests.support.tls import TlsFiles

TOKEN = "standin-token-7f3a"
DISCOVERY_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
LOGIN = "error: You must be logged in to the server"


@pytest.fixture
def standin(tls: TlsFiles) -> Iterator[K8sStandIn]:
    with K8sStandIn(TOKEN, tls) as server:
        yield server


def kubectl_for(server: K8sStandIn, directory: Path, token: str, tls: TlsFiles | None) -> Kubectl:
    kubeconfig = write_kubeconfig(directory / f"kubeconfig-{token}", server.url, token,
                                  tls.ca if tls else None)
    return Kubectl(kubeconfig, directory / "cache")


@pytest.fixture
def kubectl(standin: K8sStandIn, tmp_path: Path, tls: TlsFiles) -> Kubectl:
    return kubectl_for(standin, tmp_path, TOKEN, tls)


def resource_requests(server: K8sStandIn) -> list[tuple[Any, ...]]:
    """(verb, resource, namespace, name, status) of each resource request recorded, after
    checking that every other request was discovery, read as a non-resource get."""
    found = []
    for request in server.requests:
        meaning = k8s_request(request.method, request.path, request.query, request.headers)
        assert meaning["error"] is None
        if meaning["resource_request"]:
            found.append((meaning["verb"], meaning["resource"], meaning["namespace"],
                          meaning["name"], request.status))
        else:
            assert (meaning["verb"], meaning["path"]) in {("get", "/api"), ("get", "/apis")}
    return found


def test_discovery_is_aggregated_and_the_legacy_lists_are_served(
    standin: K8sStandIn, kubectl: Kubectl
) -> None:
    result = kubectl("api-resources", "--no-headers")
    assert result.returncode == 0, result.stderr
    names = {line.split()[0] for line in result.stdout.splitlines()}
    assert {"pods", "namespaces", "secrets", "configmaps", "services", "deployments"} <= names
    # Two requests: deployments came in the aggregated answer for /apis, not /apis/apps/v1.
    assert [(r.method, r.path, r.headers["accept"], r.status) for r in standin.requests] == [
        ("GET", "/api", f"{DISCOVERY_ACCEPT},application/json", 200),
        ("GET", "/apis", f"{DISCOVERY_ACCEPT},application/json", 200),
    ]
    raw = kubectl("get", "--raw", "/api/v1")
    resources = {r["name"]: r for r in json.loads(raw.stdout)["resources"]}
    assert {"pods/exec", "pods/log", "pods/attach", "pods/portforward"} <= set(resources)
    assert resources["pods/exec"]["kind"] == "PodExecOptions"
    assert json.loads(kubectl("get", "--raw", "/apis/apps/v1").stdout)["resources"][0][
        "name"] == "deployments"


def test_get_pods_prints_kube_table(standin: K8sStandIn, kubectl: Kubectl) -> None:
    result = kubectl("get", "pods", "-n", "prod")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert row.split()[:4] == ["web-1", "1/1", "Running", "0"]
    assert resource_requests(standin) == [("list", "pods", "prod", None, 200)]


def test_get_pod_as_json_is_the_stored_pod(standin: K8sStandIn, kubectl: Kubectl) -> None:
    result = kubectl("get", "pod", "web-1", "-n", "prod", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == standin.object("pods", "prod", "web-1")
    assert resource_requests(standin) == [("get", "pods", "prod", "web-1", 200)]


def test_get_namespaces_lists_the_seeded_three(standin: K8sStandIn, kubectl: Kubectl) -> None:
    result = kubectl("get", "namespaces")
    assert result.returncode == 0, result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines()[1:]] == [
        ["default", "Active"], ["prod", "Active"], ["staging", "Active"]]
    assert resource_requests(standin) == [("list", "namespaces", None, None, 200)]


def test_namespace_labels_are_readable(standin: K8sStandIn, kubectl: Kubectl) -> None:
    result = kubectl("get", "ns", "prod", "-o", "json")
    assert json.loads(result.stdout)["metadata"]["labels"]["environment"] == "production"
    selected = kubectl("get", "ns", "-l", "environment=staging", "-o", "name")
    assert selected.stdout == "namespace/staging\n"
    assert resource_requests(standin) == [
        ("get", "namespaces", "prod", "prod", 200), ("list", "namespaces", None, None, 200)]


def test_get_secrets_lists_them(standin: K8sStandIn, kubectl: Kubectl) -> None:
    result = kubectl("get", "secrets", "-n", "prod")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:3] == ["db-credentials", "Opaque", "2"]
    assert resource_requests(standin) == [("list", "secrets", "prod", None, 200)]


def test_delete_namespace_takes_it_and_what_it_held(
    standin: K8sStandIn, kubectl: Kubectl
) -> None:
    result = kubectl("delete", "namespace", "staging")
    assert (result.returncode, result.stdout) == (0, 'namespace "staging" deleted\n')
    assert standin.object("namespaces", "", "staging") is None
    assert standin.object("pods", "staging", "web-1") is None
    assert standin.object("pods", "prod", "web-1") is not None
    # kubectl waits for the namespace to be gone: a get answered 404
    assert resource_requests(standin) == [
        ("delete", "namespaces", "staging", "staging", 200),
        ("get", "namespaces", "staging", "staging", 404),
    ]


def test_create_stores_what_kubectl_sends_in_protobuf_or_json(
    standin: K8sStandIn, kubectl: Kubectl, tmp_path: Path
) -> None:
    created = kubectl("create", "configmap", "settings", "-n", "prod", "--from-literal=a=b")
    assert (created.returncode, created.stdout) == (0, "configmap/settings created\n"), created
    stored = standin.object("configmaps", "prod", "settings")
    assert (stored["data"], stored["metadata"]["namespace"]) == ({"a": "b"}, "prod")
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "x", "namespace": "staging"}, "spec": {"containers": [
            {"name": "x", "image": "busybox"}]}}))
    applied = kubectl("apply", "-f", str(manifest), "--validate=false")  # no OpenAPI here
    assert (applied.returncode, applied.stdout) == (0, "pod/x created\n"), applied.stderr
    assert standin.object("pods", "staging", "x")["spec"]["containers"][0]["image"] == "busybox"
    again = kubectl("create", "configmap", "settings", "-n", "prod")
    assert 'configmaps "settings" already exists' in again.stderr
    posts = [(r.headers["content-type"], r.status) for r in standin.requests if r.method == "POST"]
    assert posts == [("application/vnd.kubernetes.protobuf", 201), ("application/json", 201),
                     ("application/vnd.kubernetes.protobuf", 409)]


def test_delete_answers_the_namespace_terminating(kubectl: Kubectl) -> None:
    result = kubectl("delete", "--raw", "/api/v1/namespaces/prod")
    answered = json.loads(result.stdout)
    assert answered["status"]["phase"] == "Terminating"
    assert answered["metadata"]["deletionTimestamp"]


def test_exec_runs_over_websocket(standin: K8sStandIn, kubectl: Kubectl) -> None:
    result = kubectl("exec", "web-1", "-n", "prod", "--", "ls", "/")
    assert (result.returncode, result.stdout, result.stderr) == (0, "executed: ls /\n", "")
    assert standin.execs == [Exec("prod", "web-1", "app", ["ls", "/"], "websocket")]
    assert resource_requests(standin) == [
        ("get", "pods", "prod", "web-1", 200), ("exec", "pods", "prod", "web-1", 101)]
    upgrade = standin.requests[-1]
    assert upgrade.headers["sec-websocket-protocol"] == "v5.channel.k8s.io"
    exec_meaning = k8s_request(upgrade.method, upgrade.path, upgrade.query, upgrade.headers)
    assert exec_meaning["exec"] == {
        "command": ["ls", "/"], "commands": [["ls", "/"]], "opaque": [], "writes": [],
        "container": "app", "stdin": False,
        "stdout": True, "stderr": True, "tty": False, "transport": "websocket"}


@pytest.mark.parametrize(
    ("args", "stdin", "output", "subresource", "command"),
    [
        (("exec", "-i", "web-1", "-n", "prod", "--", "cat"), "hello\n", "executed: cat\n",
         "exec", ["cat"]),
        (("attach", "web-1", "-n", "prod"), None, "attached: app\n", "attach", []),
    ],
    ids=["exec-stdin", "attach"],
)
def test_exec_with_stdin_and_attach_stream_over_websocket(
    standin: K8sStandIn, kubectl: Kubectl, args: tuple[str, ...], stdin: str | None,
    output: str, subresource: str, command: list[str],
) -> None:
    result = kubectl(*args, stdin=stdin)
    assert (result.returncode, result.stdout) == (0, output)
    assert resource_requests(standin)[-1] == (subresource, "pods", "prod", "web-1", 101)
    upgrade = standin.requests[-1]
    streams = k8s_request(upgrade.method, upgrade.path, upgrade.query, upgrade.headers)["exec"]
    assert (streams["command"], streams["stdin"], streams["transport"]) == (
        command, stdin is not None, "websocket")


def test_exec_with_a_wrong_token_is_refused_at_discovery(
    standin: K8sStandIn, tmp_path: Path, tls: TlsFiles
) -> None:
    result = kubectl_for(standin, tmp_path, "not-the-token", tls)(
        "exec", "web-1", "-n", "prod", "--", "ls")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"{LOGIN} (the server has asked for the client to provide credentials)")
    assert standin.execs == []
    assert resource_requests(standin) == []  # client-go retried /api, then gave up
    assert {r.status for r in standin.requests} == {401}


def test_exec_with_a_wrong_token_and_cached_discovery_is_unauthorized(
    standin: K8sStandIn, kubectl: Kubectl, tmp_path: Path, tls: TlsFiles
) -> None:
    assert kubectl("get", "pods", "-n", "prod").returncode == 0  # caches discovery
    # the same cache directory (tmp_path / "cache"), another token
    result = kubectl_for(standin, tmp_path, "not-the-token", tls)(
        "exec", "web-1", "-n", "prod", "--", "ls")
    assert (result.returncode, result.stderr) == (1, f"{LOGIN} (Unauthorized)\n")
    assert standin.execs == []
    assert resource_requests(standin)[-1] == ("get", "pods", "prod", "web-1", 401)


def test_kubectl_sends_no_token_over_plain_http(tmp_path: Path) -> None:
    with K8sStandIn(TOKEN) as server:
        result = kubectl_for(server, tmp_path, TOKEN, None)("get", "pods", "-n", "prod")
        requests = server.requests
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(LOGIN)
    assert requests and all("authorization" not in r.headers for r in requests)


def test_refused_websocket_exec_falls_back_to_spdy(tmp_path: Path, tls: TlsFiles) -> None:
    """A 403 (with a JSON body) on the WebSocket upgrade makes kubectl retry over SPDY;
    what it prints is the SPDY answer's `error` field."""
    with K8sStandIn(TOKEN, tls, refuse_exec=True) as server:
        result = kubectl_for(server, tmp_path, TOKEN, tls)(
            "exec", "web-1", "-n", "prod", "--", "ls")
        requests = server.requests
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "error: unable to upgrade connection: denied\n"
    websocket, spdy = requests[-2:]
    assert (websocket.method, websocket.headers["upgrade"], websocket.status) == (
        "GET", "websocket", 403)
    assert (spdy.method, spdy.headers["upgrade"], spdy.status) == ("POST", "SPDY/3.1", 403)
    assert [k8s_request(r.method, r.path, r.query, r.headers)["exec"]["transport"]
            for r in (websocket, spdy)] == ["websocket", "spdy"]


def test_spdy_exec_is_recorded_and_refused(standin: K8sStandIn, kubectl: Kubectl) -> None:
    result = kubectl("exec", "web-1", "-n", "prod", "--", "ls",
                     env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"})
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: unable to upgrade connection: the Kubernetes stand-in does not implement SPDY")
    assert standin.execs == [Exec("prod", "web-1", "app", ["ls"], "spdy", refused=True)]
    assert resource_requests(standin) == [
        ("get", "pods", "prod", "web-1", 200), ("exec", "pods", "prod", "web-1", 400)]
    spdy = standin.requests[-1]
    assert spdy.method == "POST"
    assert spdy.headers["x-stream-protocol-version"].startswith("v5.channel.k8s.io")
