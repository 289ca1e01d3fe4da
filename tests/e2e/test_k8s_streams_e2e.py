"""Kubernetes exec, attach, cp and port-forward through the stream front, end to end: the
real kubectl and the `kubernetes` Python client, a real Envoy serving TLS (its stream
route sends WebSocket upgrades to tollgate's Kubernetes front), and the API stand-in
running real processes in each pod's folder (tests/standins/k8s_standin.py: no API server
can run here).

What the pod did (the stand-in's transcript: what each process received) is compared
with what the record says was allowed.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from playwright.sync_api import Page, expect

from extproc.admin.recordings.api import PLAYER_FILES
from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import api, left_while_held
from tests.e2e.test_approvals_page import WAIT_MS
from tests.e2e.test_recordings_page import READER, open_page, terminal_of
from tests.recordings.test_sessions import VENDOR
from tests.standins.k8s_standin import (
    K8sStandIn,
    Kubectl,
    KubectlTerminal,
    gateway_options,
    write_kubeconfig,
)
from tests.support import tokens
from tests.support.echo import upper_echo
from tests.support.gateway import Gateway, module_gateway
from tests.support.tls import TlsFiles

CLUSTER_TOKEN = "cluster-admin-token-7c2a"
SECRET = "AKIAIOSFODNN7EXAMPLE"  # an AWS access key id: masked wherever it shows


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sStandIn]:
    with upper_echo() as port, K8sStandIn(CLUSTER_TOKEN, pods=tmp_path_factory.mktemp("pods"),
                                         ports={80: port}) as server:
        yield server


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, otlp, tls: TlsFiles,  # type: ignore[no-untyped-def]
    cluster: K8sStandIn,
) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "k8s-streams",
            **gateway_options(cluster, CLUSTER_TOKEN), tls=(tls.cert, tls.key),
    ) as running:
        yield running


def kubectl_as(gw: Gateway, tls: TlsFiles, work: Path, groups: list[str]) -> Kubectl:
    token = tokens.token(sub="-".join(groups), groups=groups, ttl=600)
    kubeconfig = write_kubeconfig(work / f"kubeconfig-{'-'.join(groups)}",
                                  f"https://127.0.0.1:{gw.tls_port}", token, tls.ca)
    return Kubectl(kubeconfig, work / f"cache-{'-'.join(groups)}")


@pytest.fixture
def agent(gw: Gateway, tls: TlsFiles, tmp_path: Path) -> Kubectl:
    return kubectl_as(gw, tls, tmp_path, ["agents"])


@pytest.fixture
def sre(gw: Gateway, tls: TlsFiles, tmp_path: Path) -> Kubectl:
    return kubectl_as(gw, tls, tmp_path, ["sre"])


def pod(cluster: K8sStandIn, namespace: str = "staging") -> Path:
    return cluster.pod_root(namespace, "web-1")


def test_exec_output_is_masked_as_it_streams(agent: Kubectl, cluster: K8sStandIn) -> None:
    (pod(cluster) / "app.conf").write_text(f"region=eu\naws_key={SECRET}\n")
    result = agent("exec", "web-1", "-n", "staging", "--", "cat", "app.conf")
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout
    assert result.stdout.startswith("region=eu\naws_key=")


def test_exec_output_is_byte_exact_where_nothing_matches(
    agent: Kubectl, cluster: K8sStandIn
) -> None:
    data = bytes(range(256)) * 64
    (pod(cluster) / "blob.bin").write_bytes(data)
    result = subprocess.run([*agent.argv(), "exec", "web-1", "-n", "staging", "--",
                             "cat", "blob.bin"], capture_output=True, timeout=60, check=False,
                            env=agent.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


def test_exec_output_a_privileged_identity_reads_unmasked_is_kept_for_the_flow(
        gw: Gateway, tls: TlsFiles, cluster: K8sStandIn, tmp_path: Path) -> None:
    """Output that reaches the client with protected values unmasked is read for the
    flow's fingerprints as it streams (exchange/streamed.py), kept before it goes on:
    the exec's record counts the two addresses kept."""
    emails = ["ada.lovelace@analytical.example", "charles.babbage@engines.example"]
    (pod(cluster) / "contacts.txt").write_text("".join(f"{e}\n" for e in emails))
    dba = kubectl_as(gw, tls, tmp_path, ["agents", "privileged"])
    result = dba("exec", "web-1", "-n", "staging", "--", "cat", "contacts.txt")
    assert (result.returncode, result.stdout.split()) == (0, emails), result.stderr
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in gw.records("exchange") if r["identity"]["sub"]
                    == "agents-privileged" and r["outcome"].get("kept")]
        return bool(found)

    stack.wait_until(recorded, 15, "the exec's record, its values kept")
    assert found[0]["outcome"]["kept"] == 2


def test_exit_status_and_stderr_pass(agent: Kubectl) -> None:
    result = agent("exec", "web-1", "-n", "staging", "--",
                   "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout) == (3, "out\n")
    assert result.stderr.startswith("err\n")


def test_a_destructive_exec_never_reaches_the_pod(agent: Kubectl, cluster: K8sStandIn) -> None:
    before = len(cluster.execs)
    result = agent("exec", "web-1", "-n", "staging", "--", "rm", "-rf", "/")
    assert result.returncode != 0
    assert "tollgate refused: destructive command in exec: rm -rf / (trace " in result.stderr
    assert len(cluster.execs) == before


def test_an_interactive_session_decides_each_line(sre: Kubectl, cluster: K8sStandIn) -> None:
    marker = pod(cluster) / "gone"
    marker.write_text("x")
    terminal = KubectlTerminal(sre, "exec", "-it", "web-1", "-n", "staging", "--",
                        "env", "PS1=pod> ", "sh", "-i")
    try:
        terminal.read_until("pod> ")
        terminal.write("echo hello-$((6*7))\r")
        assert "hello-42" in terminal.read_until("pod> ")
        terminal.write("rm -rf /\r")
        shown = terminal.read_until("destructive command")
        assert "tollgate: refused:" in shown
        terminal.write("echo still-here\r")
        assert "still-here" in terminal.read_until("pod> ")
        terminal.write("exit 5\r")
    finally:
        status = terminal.close()
    assert status == 5
    session = cluster.execs[-1].transcript.wait()
    typed = bytes(session.received.get(0, b""))
    assert b"echo hello" in typed and b"rm -rf" not in typed


def test_kubectl_cp_masks_a_downloaded_file_and_leaves_out_a_credential(
    agent: Kubectl, cluster: K8sStandIn, tmp_path: Path
) -> None:
    data = pod(cluster) / "export"
    data.mkdir()
    (data / "report.txt").write_text(f"total=12\nkey={SECRET}\n")
    (data / ".env").write_text("DATABASE_PASSWORD=hunter2\n")
    (data / "notes.txt").write_text("nothing to hide\n")
    result = agent("cp", "staging/web-1:export", str(tmp_path / "out"))
    # The pod's stderr, where tollgate says what it left out: kubectl cp prints it.
    assert "kubectl cp download of export/.env: a credential" in result.stdout, result
    out = tmp_path / "out"
    assert (out / "notes.txt").read_text() == "nothing to hide\n"
    report = (out / "report.txt").read_text()
    assert SECRET not in report and report.startswith("total=12\nkey=")
    assert len(report) == len(f"total=12\nkey={SECRET}\n")  # masked in place, same size
    assert not (out / ".env").exists()


def test_kubectl_cp_upload_is_decided_file_by_file(
    sre: Kubectl, cluster: K8sStandIn, tmp_path: Path
) -> None:
    (pod(cluster) / "in").mkdir()
    local = tmp_path / "report.txt"
    local.write_text("quarterly numbers\n")
    result = sre("cp", str(local), "staging/web-1:in/report.txt")
    assert result.returncode == 0, result.stderr
    assert (pod(cluster) / "in" / "report.txt").read_text() == "quarterly numbers\n"


def test_a_refused_upload_file_fails_the_copy_with_the_reason(
    sre: Kubectl, cluster: K8sStandIn, tmp_path: Path
) -> None:
    """The files allowed land, the refused one does not; kubectl exits non-zero, the
    reason on its stderr, rather than reporting a whole copy."""
    (pod(cluster) / "up").mkdir()
    local = tmp_path / "up"
    local.mkdir()
    (local / "report.txt").write_text("quarterly numbers\n")
    (local / ".env").write_text("TOKEN=x\n")
    result = sre("cp", str(local), "staging/web-1:up/")
    assert result.returncode != 0
    assert "tollgate left 1 file of the upload out: " in result.stderr, result.stderr
    assert "an environment file" in result.stderr, result.stderr
    copied = pod(cluster) / "up"
    assert sorted(str(p.relative_to(copied)) for p in copied.rglob("*")) == [
        "up", "up/report.txt"]  # no .env


def test_a_compressed_archive_is_refused_unread(agent: Kubectl, cluster: K8sStandIn) -> None:
    before = len(cluster.execs)
    result = agent("exec", "web-1", "-n", "staging", "--", "tar", "czf", "-", ".")
    assert result.returncode != 0
    # Refused in the stream, after the upgrade: kubectl prints the Status and does not
    # retry over SPDY.
    assert "a compressed archive cannot be read" in result.stderr, result.stderr
    assert len(cluster.execs) == before


def test_the_api_servers_own_refusal_is_what_kubectl_prints(agent: Kubectl) -> None:
    result = agent("exec", "no-such-pod", "-n", "staging", "--", "ls")
    assert result.returncode != 0
    assert 'pods "no-such-pod" not found' in result.stderr, result.stderr


def python_api(gw: Gateway, tls: TlsFiles, groups: list[str]) -> Any:
    import kubernetes

    configuration = kubernetes.client.Configuration()
    configuration.host = f"https://127.0.0.1:{gw.tls_port}"
    configuration.ssl_ca_cert = str(tls.ca)
    configuration.api_key = {"authorization": tokens.token(sub="py-" + "-".join(groups),
                                                           groups=groups, ttl=600)}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))


def test_the_python_clients_stream_reads_masked_channels(gw: Gateway, tls: TlsFiles) -> None:
    from kubernetes.stream import stream

    api = python_api(gw, tls, ["agents"])
    response = stream(api.connect_get_namespaced_pod_exec, "web-1", "staging",
                      command=["sh", "-c", f"read line; echo got $line {SECRET}; "
                                           "echo oops >&2; exit 4"],
                      stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    assert response.subprotocol == "v5.channel.k8s.io"
    response.write_stdin("hi\n")
    response.close_channel(0)
    response.run_forever(timeout=30)
    out = response.read_stdout()
    assert out.startswith("got hi ") and SECRET not in out
    assert response.read_stderr() == "oops\n"
    assert response.returncode == 4


def test_port_forward_passes_unread_and_the_record_says_so(
    gw: Gateway, tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from kubernetes.stream import portforward

    api = python_api(gw, tls, ["sre"])
    forward = portforward(api.connect_get_namespaced_pod_portforward, "web-1", "staging",
                          ports="80")
    sock = forward.socket(80)
    sock.settimeout(30)
    sock.sendall(b"ping")
    reply = sock.recv(1024)
    forward.close()
    assert reply == b"PING"  # the pod's port 80 answered through the unread tunnel
    ended = gw.otlp.wait_for(lambda spans: any(
        s.attributes.get("tollgate.k8s.verb") == "portforward"
        and s.attributes.get("tollgate.k8s.unread") for s in spans))
    span = next(s for s in ended if s.attributes.get("tollgate.k8s.unread"))
    assert "not read" in span.attributes["tollgate.outcome"]


def test_attach_with_stdin_is_a_session_whose_lines_are_decided(
    agent: Kubectl, cluster: K8sStandIn
) -> None:
    result = agent("attach", "-i", "web-1", "-n", "staging",
                   stdin="echo hello-attach\nrm -rf /\necho after; exit 0\n")
    assert "hello-attach\n" in result.stdout, result
    assert "after\n" in result.stdout
    assert "destructive command" in result.stderr + result.stdout
    received = bytes(cluster.execs[-1].transcript.wait().received.get(0, b""))
    assert b"echo hello-attach" in received and b"rm -rf" not in received


def read_until(stream: IO[bytes], marker: bytes, timeout: float = 30) -> bytes:
    """What a pipe gave, up to and including `marker` (a deadline, no sleeps)."""
    seen, deadline = b"", time.monotonic() + timeout
    while marker not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
            raise AssertionError(f"no {marker!r} in {seen!r}")
        data = os.read(stream.fileno(), 4096)
        if not data:
            raise AssertionError(f"no {marker!r} in {seen!r}: the stream ended")
        seen += data
    return seen


def test_a_slow_exec_shows_its_output_before_it_ends(agent: Kubectl) -> None:
    """`kubectl exec` without a terminal, of a command that prints, then waits for the
    client: its line arrives while it waits, as does all but a key's possible start,
    which is masked whole once the rest comes."""
    command = ("echo first-line; printf 'key AKIAIOSF'; read go; "
               "printf 'ODNN7EXAMPLE\\n'; echo end-$go")
    process = subprocess.Popen([*agent.argv("exec", "-i", "web-1", "-n", "staging", "--",
                                            "sh", "-c", command)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=agent.env())
    assert process.stdin is not None and process.stdout is not None
    try:
        seen = read_until(process.stdout, b"key ")
        assert seen == b"first-line\nkey "  # the line, and all but a key's possible start
        process.stdin.write(b"now\n")
        process.stdin.close()
        rest = process.stdout.read()
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
    assert rest == b"[REDACTED:AWS_ACCESS_KEY_ID]\nend-now\n"


def test_a_stream_the_api_server_drops_is_no_success(
    gw: Gateway, agent: Kubectl, cluster: K8sStandIn
) -> None:
    """The API server's connection cut mid-command (no Status): kubectl is told the end
    is unknown and exits non-zero, never 0 as if the command had succeeded, and the
    record says why."""
    process = subprocess.Popen([*agent.argv("exec", "-i", "web-1", "-n", "staging", "--",
                                            "sh", "-c", "echo dropped-run; read x")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=agent.env())
    assert process.stdout is not None and process.stderr is not None
    try:
        read_until(process.stdout, b"dropped-run\n")
        assert cluster.cut_streams() >= 1
        status = process.wait(timeout=30)
        told = process.stderr.read().decode()
    finally:
        process.kill()
        process.wait()
    assert status != 0
    assert "ended the stream without its status" in told, told

    def recorded() -> list[dict[str, Any]]:
        return [r for r in gw.records("exchange") if "dropped-run" in str(r["request"])]

    stack.wait_until(lambda: bool(recorded()), 10, "the dropped exec's record")
    (record,) = recorded()
    assert record["outcome"]["detail"] == "the API server ended the stream without its status"


def test_attach_with_a_terminal_shows_the_containers_output(agent: Kubectl) -> None:
    """`kubectl attach -it` to a container without a terminal of its own (kubectl goes on
    without one): each line's output shows while the container's shell runs on."""
    with KubectlTerminal(agent, "attach", "-it", "web-1", "-n", "staging") as terminal:
        terminal.read_until("If you don't see a command prompt")
        terminal.write(f"echo attached-$((40+2)) {SECRET}\r")  # kubectl's terminal echoes it
        terminal.read_until("attached-42")
        shown = terminal.read_until("\n")
        terminal.process.kill()
    assert shown == " [REDACTED:AWS_ACCESS_KEY_ID]\r\n"


@dataclass
class ExecSession:
    session: str
    lines: list[dict[str, Any]]  # the three typed lines' records, oldest first


@pytest.fixture(scope="module")
def exec_session(gw: Gateway, tls: TlsFiles, cluster: K8sStandIn,
                 tmp_path_factory: pytest.TempPathFactory) -> ExecSession:
    """An SRE's `kubectl exec -it` shell: two lines (one prints a credential), then
    `exit`; its records written."""
    sre = kubectl_as(gw, tls, tmp_path_factory.mktemp("exec-it"), ["sre"])
    (pod(cluster) / "creds.txt").write_text(f"key={SECRET}\n")
    terminal = KubectlTerminal(sre, "exec", "-it", "web-1", "-n", "staging", "--",
                        "env", "PS1=pod> ", "sh", "-i")
    try:
        terminal.read_until("pod> ")
        terminal.write("echo ready-$((40+2))\r")
        terminal.read_until("ready-42")
        terminal.write("cat creds.txt; echo after-$((1+1))\r")
        shown = terminal.read_until("after-2")
        assert SECRET not in shown and "key=" in shown
        terminal.write("exit 0\r")
    finally:
        terminal.close()
    lines = gw.terminal_lines(
        lambda r: (r["meaning"] or {}).get("k8s", {}).get("exec", {}).get("line")
        == "echo ready-$((40+2))", 3, "GET", timeout=10)
    return ExecSession(lines[0]["session_id"], lines)


def test_a_session_is_recorded_and_replayable(gw: Gateway, exec_session: ExecSession) -> None:
    replay = subprocess.run(
        [sys.executable, "-m", "extproc", "audit", "replay", "--session", exec_session.session,
         "--no-wait", "--config", str(gw.config_path)], capture_output=True, text=True,
        timeout=60, check=False)
    assert replay.returncode == 0, replay.stderr
    assert "verified" in replay.stdout and "DOES NOT MATCH" not in replay.stdout
    assert "ready-42" in replay.stdout and "after-2" in replay.stdout
    assert SECRET not in replay.stdout


def test_an_exec_session_plays_in_the_recordings_page(
        gw: Gateway, exec_session: ExecSession, page: Page) -> None:
    """The exec shell's recording plays in a real browser as an SSH one does
    (tests/e2e/test_recordings_page.py): checked against its record, labelled as the
    Kubernetes stream it is, a marker per typed line that leads to its decision, played
    to its end with the credential masked."""
    for name in PLAYER_FILES:  # else the page says the player is missing, and hides Play
        if not (VENDOR / name).is_file():
            pytest.fail(f"no {VENDOR / name}: `make` installs it from the npm registry")
    open_page(page, gw, READER, f"#session={exec_session.session}")
    terminal = terminal_of(page)
    expect(page.locator("#session-rule")).to_contain_text(
        "one Kubernetes exec, attach or cp stream")
    markers = terminal.locator("ol.markers button")
    expect(markers).to_have_count(3)
    expect(markers.nth(0)).to_have_text(re.compile(r"^0:0\d\.\d allow: .*echo ready-"))
    expect(markers.nth(1)).to_contain_text("cat creds.txt; echo after-$((1+1))")
    play, screen = terminal.locator("button.play"), terminal.locator(".screen")
    terminal.locator("select.speed").select_option("8")
    play.click()
    expect(screen).to_contain_text("after-2", timeout=WAIT_MS)
    expect(play).to_have_text("Play", timeout=WAIT_MS)
    assert SECRET not in screen.inner_text()
    markers.nth(1).click()
    expect(page.locator("#timeline li.entry:focus")).to_have_attribute(
        "data-id", exec_session.lines[1]["id"], timeout=WAIT_MS)
    expect(screen).to_contain_text("ready-42", timeout=WAIT_MS)
    expect(screen).not_to_contain_text("after-2")


DBA = tokens.token("dora", ["dba"])


def held_line(gw: Gateway, terminal: KubectlTerminal, line: str) -> dict[str, Any]:
    """`line` typed at the session's prompt and held: the client told who decides, and
    its approval, pending with the line's request waiting on it."""
    terminal.read_until("pod> ")
    terminal.write(line + "\r")
    assert "by group:dba" in terminal.read_until("[trace ")
    found: list[dict[str, Any]] = []

    def pending() -> bool:
        _, answer = api(gw, "GET", "/approvals?status=pending", DBA)
        found[:] = [a for a in answer["approvals"] if a["request"]["method"] == "LINE"
                    and (a["request"]["body"] or {}).get("command") == line]
        return bool(found) and bool(found[0]["waiting"])

    stack.wait_until(pending, 15, "the line's approval, waited on")
    return found[0]


def test_a_held_line_waits_in_the_session_then_runs(
    gw: Gateway, agent: Kubectl, cluster: K8sStandIn
) -> None:
    """A line the pack holds (an agent's script computed at run time) is shown as waiting,
    in the session; approved, it runs, and the session goes on."""
    marker = pod(cluster) / "held.txt"
    terminal = KubectlTerminal(agent, "exec", "-it", "web-1", "-n", "staging", "--",
                        "env", "PS1=pod> ", "sh", "-i")
    # A script computed by printf: a double-quoted `$(echo ...)` of literal words is read
    # as those words (extproc/interpret/shell.py), and would not be held.
    line = 'sh -c "$(printf \'echo approved\')" > held.txt; echo done-$((2+3))'
    try:
        approval = held_line(gw, terminal, line)
        assert not marker.exists()  # nothing ran while it waited
        status, _ = api(gw, "POST", f"/approvals/{approval['id']}/approve", DBA,
                        {"reason": "looked at it"})
        assert status == 200
        terminal.read_until("done-5")
        terminal.write("exit 0\r")
    finally:
        terminal.close()
    assert marker.read_text() == "approved\n"


def test_a_held_line_whose_client_leaves_stops_waiting(
    gw: Gateway, agent: Kubectl, cluster: K8sStandIn
) -> None:
    """kubectl killed while its typed line waits for approval: the hold ends at once (the
    front sees the connection go), the approval shows nobody waiting and its request
    answered as left, and nothing ran."""
    marker = pod(cluster) / "left.txt"
    terminal = KubectlTerminal(agent, "exec", "-it", "web-1", "-n", "staging", "--",
                               "env", "PS1=pod> ", "sh", "-i")
    line = 'sh -c "$(printf \'echo never\')" > left.txt'
    try:
        approval = held_line(gw, terminal, line)
        terminal.process.kill()
    finally:
        terminal.close()
    shown = left_while_held(gw, approval["id"], DBA)
    assert shown["wait"]["answered"]["client_left"] is True
    assert not marker.exists()

