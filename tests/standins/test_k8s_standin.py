"""The real kubectl 1.37 against the Kubernetes API stand-in, directly, over TLS.

The tests also read every request the stand-in recorded during their kubectl runs with the
interpreter (`extproc.interpret.k8s`), which proves it reads what kubectl really sends:
discovery is non-resource, the rest the verb, resource, namespace and name each test names.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus

from extproc.interpret.k8s import k8s_request
from tests.standins.k8s_exec import RECORD_LIMIT, Transcript
from tests.standins.k8s_standin import (
    Exec,
    K8sStandIn,
    Kubectl,
    KubectlTerminal,
    write_kubeconfig,
)
from tests.support.echo import upper_echo
from tests.support.tls import TlsFiles
from tests.support.websocket import WebSocket

# The real kubectl, run as a command.
pytestmark = pytest.mark.e2e

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
    assert standin.execs == [Exec("prod", "web-1", "app", ["ls", "/"], "websocket",
                                  stdout=True, stderr=True)]
    assert resource_requests(standin) == [
        ("get", "pods", "prod", "web-1", 200), ("exec", "pods", "prod", "web-1", 101)]
    upgrade = standin.requests[-1]
    assert upgrade.headers["sec-websocket-protocol"] == "v5.channel.k8s.io"
    exec_meaning = k8s_request(upgrade.method, upgrade.path, upgrade.query, upgrade.headers)
    assert exec_meaning["exec"] == {
        "command": ["ls", "/"], "commands": [["ls", "/"]], "opaque": [], "writes": [],
        "container": "app", "stdin": False,
        "stdout": True, "stderr": True, "tty": False, "transport": "websocket",
        "line": None, "readable": True, "unreadable": None, "file": None}


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
    assert streams is not None
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
    execs = [k8s_request(r.method, r.path, r.query, r.headers)["exec"] for r in (websocket, spdy)]
    assert [e and e["transport"] for e in execs] == ["websocket", "spdy"]


def test_spdy_exec_is_recorded_and_refused(standin: K8sStandIn, kubectl: Kubectl) -> None:
    result = kubectl("exec", "web-1", "-n", "prod", "--", "ls",
                     env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"})
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: unable to upgrade connection: the Kubernetes stand-in does not implement SPDY")
    assert standin.execs == [Exec("prod", "web-1", "app", ["ls"], "spdy", refused=True,
                                  stdout=True, stderr=True)]
    assert resource_requests(standin) == [
        ("get", "pods", "prod", "web-1", 200), ("exec", "pods", "prod", "web-1", 400)]
    spdy = standin.requests[-1]
    assert spdy.method == "POST"
    assert spdy.headers["x-stream-protocol-version"].startswith("v5.channel.k8s.io")


# -- real processes: exec, attach, cp, port-forward -----------------------------------
#
# With `pods=`, every pod has a folder of its own under tmp_path and what kubectl (or the
# Python client, or a bare WebSocket) asks for runs there as a real process.


@pytest.fixture
def echo_port() -> Iterator[int]:
    with upper_echo() as port:
        yield port


@pytest.fixture
def pods(tls: TlsFiles, tmp_path: Path, echo_port: int) -> Iterator[K8sStandIn]:
    with K8sStandIn(TOKEN, tls, pods=tmp_path / "pods", ports={80: echo_port}) as server:
        yield server


@pytest.fixture
def pod_kubectl(pods: K8sStandIn, tmp_path: Path, tls: TlsFiles) -> Kubectl:
    return kubectl_for(pods, tmp_path, TOKEN, tls)


def last_session(server: K8sStandIn) -> tuple[Exec, Transcript]:
    record = server.execs[-1]
    return record, record.transcript.wait()


def test_exec_runs_the_command_with_its_streams_and_exit_code(
    pods: K8sStandIn, pod_kubectl: Kubectl
) -> None:
    result = pod_kubectl("exec", "web-1", "-n", "prod", "--",
                         "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (
        3, "out\n", "err\ncommand terminated with exit code 3\n")
    record, transcript = last_session(pods)
    assert (record.command, record.stdin, record.tty) == (
        ["sh", "-c", "echo out; echo err >&2; exit 3"], False, False)
    assert (transcript.subprotocol, transcript.exit_code) == ("v5.channel.k8s.io", 3)
    assert (transcript.text(1), transcript.text(2)) == ("out\n", "err\n")
    assert transcript.status == {  # what the API server's stream translator sends
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: command terminated with "
                   "exit code 3",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
    assert (transcript.close, transcript.ignored) == ((1000, ""), [])


def test_exec_runs_in_the_pod_root_with_a_container_environment(
    pods: K8sStandIn, pod_kubectl: Kubectl
) -> None:
    result = pod_kubectl("exec", "web-1", "-n", "staging", "--", "sh", "-c", "pwd; env")
    assert result.returncode == 0, result.stderr
    root = pods.pod_root("staging", "web-1")
    cwd, *env = result.stdout.splitlines()
    assert cwd == str(root)
    assert dict(line.split("=", 1) for line in env) == {
        "HOME": str(root), "HOSTNAME": "web-1", "PWD": str(root),
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    assert pods.execs[-1].transcript.wait().status == {"metadata": {}, "status": "Success"}


def test_a_pod_runs_its_commands_unprivileged(pods: K8sStandIn, pod_kubectl: Kubectl) -> None:
    """Never as root (issue 58): under root, as nobody, with no supplementary groups."""
    result = pod_kubectl("exec", "web-1", "-n", "prod", "--", "id")
    assert result.returncode == 0, result.stderr
    ids = dict(part.split("=", 1) for part in result.stdout.split())
    assert not ids["uid"].startswith("0(") and not ids["gid"].startswith("0(")
    if os.geteuid() == 0:
        assert ids["groups"] == ids["gid"]  # no supplementary groups
    assert pods.pod_root("prod", "web-1").stat().st_uid == int(ids["uid"].split("(")[0])


@pytest.mark.skipif(os.geteuid() != 0, reason="pods run as the tests' own user")
def test_a_pod_writes_in_its_folder_and_nowhere_else(
    pods: K8sStandIn, pod_kubectl: Kubectl, tmp_path: Path
) -> None:
    """Its own folder, yes, and what a test put there; the test's folder or the pods'
    namespace folder, no. The pods' folders are in one made for their account, closed
    to others (the test's tmp_path is closed to nobody)."""
    root = pods.pod_root("prod", "web-1")
    (root / "given").mkdir()
    (root / "given" / "note.txt").write_text("from the test\n")
    (tmp_path / "outside.txt").write_text("the test's\n")
    script = ("echo mine > mine.txt && echo more >> given/note.txt && touch given/new; "
              f"for target in {tmp_path}/outside.txt {tmp_path}/new.txt ../outside.txt; "
              "do if (echo x >> $target) 2>/dev/null; then echo wrote $target; fi; done")
    result = pod_kubectl("exec", "web-1", "-n", "prod", "--", "sh", "-c", script)
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    assert (root / "mine.txt").read_text() == "mine\n"
    assert (root / "given" / "note.txt").read_text() == "from the test\nmore\n"
    assert (root / "given" / "new").exists()
    assert (tmp_path / "outside.txt").read_text() == "the test's\n"
    assert not (tmp_path / "new.txt").exists()
    assert not (root.parent / "outside.txt").exists()
    folder = root.parent.parent.stat()
    assert (stat.S_IMODE(folder.st_mode), folder.st_uid) == (0o700, root.stat().st_uid)


def test_exec_of_a_missing_command_is_an_internal_error(
    pods: K8sStandIn, pod_kubectl: Kubectl
) -> None:
    result = pod_kubectl("exec", "web-1", "-n", "prod", "--", "no-such-tool", "-x")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "error: Internal error occurred: Internal error occurred: error executing command "
        'in container: exec: "no-such-tool": executable file not found in $PATH\n')
    assert last_session(pods)[1].exit_code is None  # nothing ran


def test_exec_with_stdin_feeds_the_process_and_closes_it(
    pods: K8sStandIn, pod_kubectl: Kubectl
) -> None:
    result = pod_kubectl("exec", "-i", "web-1", "-n", "prod", "--",
                         "sh", "-c", "cat > note.txt; wc -c < note.txt", stdin="hello\n")
    assert (result.returncode, result.stdout.strip()) == (0, "6"), result.stderr
    assert (pods.pod_root("prod", "web-1") / "note.txt").read_text() == "hello\n"
    record, transcript = last_session(pods)
    assert record.stdin
    assert transcript.text(0, sent=False) == "hello\n"
    assert transcript.closed == [0]  # v5: kubectl closes stdin at EOF


def test_exec_tty_runs_under_a_terminal_of_kubectls_size(
    pods: K8sStandIn, tmp_path: Path, tls: TlsFiles
) -> None:
    """kubectl exec -it, its stdin a real terminal: a shell prompt, the terminal's size,
    stderr merged into stdout, the exit code."""
    with KubectlTerminal(kubectl_for(pods, tmp_path, TOKEN, tls), "exec", "-it", "web-1",
                         "-n", "prod", "--", "env", "PS1=pod> ", "sh", "-i") as terminal:
        terminal.read_until("pod> ")
        terminal.write("stty size; echo oops >&2\r")
        screen = terminal.read_until("pod> ")
        assert "30 100\r\n" in screen and "oops\r\n" in screen
        terminal.write("exit 7\r")
        assert terminal.close() == 7
    record, transcript = last_session(pods)
    assert (record.stdin, record.stdout, record.stderr, record.tty) == (True, True, False, True)
    assert transcript.resizes[0] == (100, 30)
    assert 2 not in transcript.sent  # one stream: the terminal
    assert transcript.exit_code == 7


def test_kubectl_cp_copies_both_ways_through_tar(
    pods: K8sStandIn, pod_kubectl: Kubectl, tmp_path: Path
) -> None:
    root = pods.pod_root("prod", "web-1")
    (root / "data").mkdir()
    local = tmp_path / "report.txt"
    local.write_text("quarterly numbers\n")
    upload = pod_kubectl("cp", str(local), "prod/web-1:data/report.txt")
    assert upload.returncode == 0, upload.stderr
    assert (root / "data" / "report.txt").read_text() == "quarterly numbers\n"
    (root / "data" / "answer.txt").write_text("from the pod\n")
    download = pod_kubectl("cp", "prod/web-1:data/answer.txt", str(tmp_path / "answer.txt"))
    assert download.returncode == 0, download.stderr
    assert (tmp_path / "answer.txt").read_text() == "from the pod\n"
    assert [(e.command, e.stdin) for e in pods.execs] == [
        (["test", "-d", "data/report.txt"], False),
        (["tar", "-xmf", "-", "-C", "data"], True),
        (["tar", "cf", "-", "data/answer.txt"], False),
    ]
    untar = pods.execs[1].transcript.wait()
    assert b"quarterly numbers" in untar.received[0]  # the tar stream kubectl sent


def test_kubectl_cp_into_a_missing_folder_fails_as_tar_fails(
    pods: K8sStandIn, pod_kubectl: Kubectl, tmp_path: Path
) -> None:
    local = tmp_path / "x.txt"
    local.write_text("x")
    result = pod_kubectl("cp", str(local), "prod/web-1:nowhere/x.txt")
    assert result.returncode != 0
    assert "command terminated with exit code 2" in result.stderr
    assert not (pods.pod_root("prod", "web-1") / "nowhere").exists()


def test_attach_relays_the_container_process_from_the_moment_of_attaching(
    pods: K8sStandIn,
) -> None:
    """Two clients attach to the pod's long-running `sh`: the second sees only what the
    container printed after it joined; the container's exit ends both sessions."""
    first = RawClient(pods, "attach", {"stdin": "true", "stdout": "true"})
    first.send(0, b"echo before\n")
    assert first.read_until(1, b"before\n") == b"before\n"
    second = RawClient(pods, "attach", {"stdout": "true"})
    assert second.message() == (1, b"")  # the session is up: joined
    first.send(0, b"echo after; exit 0\n")
    assert second.read_until(1, b"after\n") == b"after\n"
    for client in (first, second):
        assert client.finish() == {"metadata": {}, "status": "Success"}
    assert [e.subresource for e in pods.execs] == ["attach", "attach"]
    assert pods.execs[0].transcript.wait().text(1) == "before\nafter\n"
    assert pods.execs[1].transcript.wait().text(1) == "after\n"


def test_kubectl_attach_with_stdin(pods: K8sStandIn, pod_kubectl: Kubectl) -> None:
    result = pod_kubectl("attach", "-i", "web-1", "-n", "prod", stdin="echo hello; exit 0\n")
    assert (result.returncode, result.stdout) == (0, "hello\n"), result.stderr
    record, transcript = last_session(pods)
    assert (record.subresource, record.stdin, transcript.closed) == ("attach", True, [0])


class RawClient:
    """A bare WebSocket client of the stand-in's pod subresources, reading messages as they
    come (tests/support/websocket.py: one thread reads and writes its TLS connection, where
    websockets' sync client used two, which OpenSSL does not allow)."""

    def __init__(self, server: K8sStandIn, subresource: str, query: dict[str, Any],
                 protocols: tuple[str, ...] = ("v5.channel.k8s.io",), pod: str = "web-1",
                 namespace: str = "prod") -> None:
        url = server.url.replace("http", "ws", 1) + (
            f"/api/v1/namespaces/{namespace}/pods/{pod}/{subresource}?"
            f"{urlencode(query, doseq=True)}")
        self.ws = WebSocket(url, ca=server.tls.ca if server.tls else None,
                            subprotocols=protocols,
                            headers=[("Authorization", f"Bearer {TOKEN}")], timeout=30)
        self.base64 = "base64" in (self.ws.subprotocol or "")
        self.received: dict[int, bytes] = {}

    def send(self, channel: int, payload: bytes) -> None:
        if self.base64:
            self.ws.send(f"{channel}{base64.b64encode(payload).decode()}")
        else:
            self.ws.send(bytes((channel,)) + payload)

    def message(self) -> tuple[int, bytes]:
        raw = self.ws.recv(timeout=30)
        if isinstance(raw, str):
            return int(raw[0]), base64.b64decode(raw[1:])
        return raw[0], raw[1:]

    def read_until(self, channel: int, wanted: bytes) -> bytes:
        while wanted not in self.received.get(channel, b""):
            got, payload = self.message()
            self.received[got] = self.received.get(got, b"") + payload
        return self.received[channel]

    def finish(self) -> Any:
        """Read to the server's close; what the error channel carried (JSON when it is)."""
        try:
            while True:
                got, payload = self.message()
                self.received[got] = self.received.get(got, b"") + payload
        except ConnectionClosedOK:
            pass
        error = self.received.get(3, b"")
        return json.loads(error) if error.startswith(b"{") else error.decode()


def test_python_client_negotiates_v5_and_reads_the_channels(
    pods: K8sStandIn, tls: TlsFiles
) -> None:
    import kubernetes
    from kubernetes.stream import stream

    api = python_client(kubernetes, pods, tls)
    response = stream(api.connect_get_namespaced_pod_exec, "web-1", "prod",
                      command=["sh", "-c", "read line; echo got $line; echo oops >&2; exit 4"],
                      stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    assert response.subprotocol == "v5.channel.k8s.io"
    response.write_stdin("hi\n")
    response.close_channel(0)
    response.run_forever(timeout=30)
    assert (response.read_stdout(), response.read_stderr()) == ("got hi\n", "oops\n")
    assert response.returncode == 4
    transcript = pods.execs[-1].transcript.wait()
    assert (transcript.closed, transcript.exit_code) == ([0], 4)


def test_python_client_resize_reaches_the_terminal(pods: K8sStandIn, tls: TlsFiles) -> None:
    import kubernetes
    from kubernetes.stream import stream

    api = python_client(kubernetes, pods, tls)
    response = stream(api.connect_get_namespaced_pod_exec, "web-1", "prod",
                      command=["sh", "-c", "read a; stty size; read b; stty size"],
                      stdin=True, stdout=True, stderr=True, tty=True, _preload_content=False)
    output = ""
    for width, height in ((120, 40), (81, 25)):
        # resize then a line, in this order on the connection: `stty size` sees the size
        response.write_channel(4, json.dumps({"Width": width, "Height": height}))
        response.write_stdin("\n")
        deadline = time.monotonic() + 30
        while f"{height} {width}\r\n" not in output and time.monotonic() < deadline:
            response.update(timeout=deadline - time.monotonic())
            output += response.read_stdout(timeout=0) or ""
    response.run_forever(timeout=30)
    assert [line for line in output.split("\r\n") if line] == ["40 120", "25 81"]
    assert response.returncode == 0
    transcript = pods.execs[-1].transcript.wait()
    assert (pods.execs[-1].stderr, transcript.resizes) == (False, [(120, 40), (81, 25)])


def test_python_client_port_forward_reaches_the_mapped_port(
    pods: K8sStandIn, tls: TlsFiles
) -> None:
    import kubernetes
    from kubernetes.stream import portforward

    api = python_client(kubernetes, pods, tls)
    forward = portforward(api.connect_get_namespaced_pod_portforward, "web-1", "prod",
                          ports="80,81")
    sock = forward.socket(80)
    sock.settimeout(30)
    sock.sendall(b"ping")
    assert sock.recv(1024) == b"PING"
    assert forward.error(80) is None
    refused = forward.socket(81)
    refused.settimeout(30)
    assert refused.recv(1024) == b""  # the client closes it when the error comes
    assert forward.error(81).startswith("error forwarding port 81 to pod web-1, uid ")
    forward.close()
    record = pods.execs[-1]
    assert (record.subresource, record.ports) == ("portforward", (80, 81))
    transcript = record.transcript.wait()
    assert transcript.subprotocol == "v4.channel.k8s.io"  # the kubelet's: v5 is exec's
    assert transcript.text(0, sent=False) == "ping"
    assert bytes(transcript.sent[0]) == b"P\x00PING"  # the port (80, little-endian) first


def test_kubectl_port_forward_is_refused_clearly(
    pods: K8sStandIn, pod_kubectl: Kubectl
) -> None:
    result = pod_kubectl("port-forward", "web-1", "-n", "prod", "0:80")
    assert result.returncode == 1
    assert "the Kubernetes stand-in does not implement SPDY streaming" in result.stderr
    tunnel, spdy = pods.requests[-2:]
    assert (tunnel.headers["sec-websocket-protocol"], tunnel.status) == (
        "SPDY/3.1+portforward.k8s.io", 400)
    assert (spdy.method, spdy.status) == ("POST", 400)


def python_client(kubernetes: Any, server: K8sStandIn, tls: TlsFiles) -> Any:
    configuration = kubernetes.client.Configuration()
    configuration.host = server.url
    configuration.ssl_ca_cert = str(tls.ca)
    configuration.api_key = {"authorization": TOKEN}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))


EXIT_2 = {"query": {"command": ["sh", "-c", "echo hi; exit 2"], "stdout": "true"}}


@pytest.mark.parametrize(("offer", "negotiated", "status"), [
    (("v4.channel.k8s.io", "channel.k8s.io"), "v4.channel.k8s.io", {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: error executing command "
                   "[sh -c echo hi; exit 2], exit code 2",
        "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}}),
    (("v4.base64.channel.k8s.io",), "v4.base64.channel.k8s.io", {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: error executing command "
                   "[sh -c echo hi; exit 2], exit code 2",
        "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}}),
    (("base64.channel.k8s.io",), "base64.channel.k8s.io",
     "command terminated with non-zero exit code: error executing command "
     "[sh -c echo hi; exit 2], exit code 2"),
    (("channel.k8s.io", "v5.channel.k8s.io"), "v5.channel.k8s.io", {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: command terminated with "
                   "exit code 2",
        "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}}),
    ((), None, "command terminated with non-zero exit code: error executing command "
     "[sh -c echo hi; exit 2], exit code 2"),
], ids=["v4", "v4-base64", "base64", "v5-wins", "none"])
def test_subprotocols_are_negotiated_and_framed_as_kube_does(
    pods: K8sStandIn, offer: tuple[str, ...], negotiated: str | None, status: Any
) -> None:
    client = RawClient(pods, "exec", EXIT_2["query"], protocols=offer)
    assert client.ws.subprotocol == negotiated
    assert client.message() == (1, b"")  # kube's "the session is up"
    assert client.finish() == status
    assert client.received[1] == b"hi\n"
    assert pods.execs[-1].transcript.wait().subprotocol == (negotiated or "")


def test_an_offer_of_nothing_kube_speaks_is_refused(pods: K8sStandIn) -> None:
    with pytest.raises(InvalidStatus) as refused:
        RawClient(pods, "exec", EXIT_2["query"], protocols=("v9.channel.k8s.io",))
    assert refused.value.response.status_code == 403
    assert b"requested protocol(s) are not supported" in refused.value.response.body
    assert pods.execs[-1].transcript.wait().subprotocol is None


def test_frames_kube_ignores_are_ignored_and_recorded(pods: K8sStandIn) -> None:
    client = RawClient(pods, "exec", {"command": ["cat"], "stdin": "true", "stdout": "true"})
    client.ws.send(b"")  # no channel byte
    client.send(9, b"nowhere")  # no such channel
    client.send(1, b"to stdout?")  # a channel the client does not write
    client.send(0, b"kept\n")
    client.send(255, b"\x00")  # v5: stdin closed
    client.send(0, b"after close\n")
    assert client.finish() == {"metadata": {}, "status": "Success"}
    assert client.received[1] == b"kept\n"
    transcript = pods.execs[-1].transcript.wait()
    assert transcript.ignored == [
        "empty message", "message for channel 9, which does not exist",
        "channel 1 is not read from the client", "stdin data after the client closed stdin"]


@pytest.mark.parametrize(("message", "reason"), [
    (b"\xff", "a close signal is one channel byte, not 0"),
    (b"\xff\x00\x01", "a close signal is one channel byte, not 2"),
    (b"\xff\x07", "close signal for channel 7, which does not exist"),
])
def test_a_malformed_close_signal_ends_the_session(
    pods: K8sStandIn, message: bytes, reason: str
) -> None:
    client = RawClient(pods, "exec", {"command": ["cat"], "stdin": "true", "stdout": "true"})
    assert client.message() == (1, b"")
    client.ws.send(message)
    with pytest.raises(ConnectionClosedError) as closed:
        client.message()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1002, reason)
    transcript = pods.execs[-1].transcript.wait()
    assert transcript.close == (1002, reason)
    assert transcript.exit_code == 137  # cat was killed


def test_a_truncated_websocket_frame_ends_the_session(pods: K8sStandIn) -> None:
    client = RawClient(pods, "exec", {"command": ["cat"], "stdin": "true", "stdout": "true"})
    assert client.message() == (1, b"")
    # A masked binary frame announcing 100 bytes, of which 3 come before the client leaves.
    client.ws.socket.sendall(bytes((0x82, 0x80 | 100)) + b"\x00\x00\x00\x00" + b"\x00ab")
    client.ws.socket.shutdown(socket.SHUT_WR)
    transcript = pods.execs[-1].transcript.wait()
    assert transcript.exit_code == 137
    assert transcript.received_bytes[0] == 0
    client.ws.close()


def test_the_record_is_bounded_but_counts_everything(pods: K8sStandIn) -> None:
    client = RawClient(pods, "exec", {
        "command": ["sh", "-c", "yes | head -c 200000"], "stdout": "true"})
    assert client.finish() == {"metadata": {}, "status": "Success"}
    assert len(client.received[1]) == 200000
    transcript = pods.execs[-1].transcript.wait()
    assert (len(transcript.sent[1]), transcript.sent_bytes[1]) == (RECORD_LIMIT, 200000)


def test_exec_needs_a_stream(pods: K8sStandIn) -> None:
    with pytest.raises(InvalidStatus) as refused:
        RawClient(pods, "exec", {"command": ["true"]})
    assert refused.value.response.status_code == 400
    assert b"you must specify at least 1 of stdin, stdout, stderr" in (
        refused.value.response.body)


def test_stopping_the_stand_in_ends_running_sessions(tls: TlsFiles, tmp_path: Path) -> None:
    with K8sStandIn(TOKEN, tls, pods=tmp_path / "pods") as server:
        client = RawClient(server, "exec", {
            "command": ["sleep", "600"], "stdout": "true"})
        assert client.message() == (1, b"")
    assert server.execs[-1].transcript.wait().exit_code == 137
    client.ws.close()
