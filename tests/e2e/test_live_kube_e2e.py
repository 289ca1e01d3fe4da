"""Live sessions of the Kubernetes front end to end: a `kubectl exec` stream is listed as
a session of front `kubernetes`; ending it, or locking its identity, closes the stream
with a Status naming who and why, which kubectl prints before exiting 1.

The real kubectl through real Envoy to tollgate's stream front, and the API stand-in of
test_k8s_streams_e2e.py (no API server can run here).
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e import test_k8s_streams_e2e as k8s
from tests.e2e.test_approvals_e2e import api
from tests.e2e.test_live_attach_e2e import Watch
from tests.e2e.test_live_sessions_e2e import (
    SECURITY,
    Timed,
    end,
    listed,
    moderation,
    reached,
)
from tests.standins.k8s_standin import KubectlTerminal, write_kubeconfig
from tests.support import tokens
from tests.support.gateway import Gateway
from tests.support.tls import TlsFiles

# The gateway and cluster stand-in of test_k8s_streams_e2e.py, started for this module.
cluster, gw = k8s.cluster, k8s.gw


def test_an_exec_stream_is_listed_and_ended_with_a_status(
        gw: Gateway, tls: TlsFiles, tmp_path: Path) -> None:
    sub = "svc-live-kube"
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{gw.tls_port}",
                                  tokens.token(sub, ["agents"], ttl=600), tls.ca)
    kubectl = k8s.Kubectl(kubeconfig, tmp_path / "cache")
    client = Timed(kubectl.argv("exec", "web-1", "-n", "staging", "--", "sleep", "30"),
                   env=kubectl.env())
    (session,) = listed(gw, sub)
    assert (session["front"], session["target"]) == ("kubernetes", "cluster"), session
    asked, answer = end(gw, session["session_id"], "not now")
    reached("kubectl exec", asked, client)
    assert answer["ended"] is True, answer
    assert client.process.returncode == 1
    assert "tollgate: this session was ended by sec-sam: not now" in client.err, client.err
    record = moderation(gw, session["session_id"])
    assert record["meaning"]["moderation"]["front"] == "kubernetes"
    listed(gw, sub, 0)


def test_a_lock_ends_an_exec_stream_in_progress(
        gw: Gateway, tls: TlsFiles, tmp_path: Path) -> None:
    sub = "svc-live-kube-lock"
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{gw.tls_port}",
                                  tokens.token(sub, ["agents"], ttl=600), tls.ca)
    kubectl = k8s.Kubectl(kubeconfig, tmp_path / "cache")
    client = Timed(kubectl.argv("exec", "web-1", "-n", "staging", "--", "sleep", "30"),
                   env=kubectl.env())
    listed(gw, sub)
    asked = time.monotonic()
    status, answer = api(gw, "POST", "/sessions/locks", SECURITY,
                         {"identity": sub, "reason": "leaked token", "seconds": 600})
    assert status == 200, answer
    reached("kubectl exec, by a lock", asked, client)
    assert client.process.returncode == 1
    assert f"identity {sub} is locked until" in client.err, client.err
    assert "leaked token" in client.err
    again = kubectl("exec", "web-1", "-n", "staging", "--", "true")
    assert again.returncode != 0 and "is locked until" in again.stderr, again.stderr
    status, _ = api(gw, "POST", f"/sessions/locks/{sub}/unlock", SECURITY, {})
    assert status == 200


def test_a_moderator_joins_a_kubectl_exec_shell_and_types_lines_decided_as_theirs(
        gw: Gateway, tls: TlsFiles, tmp_path: Path) -> None:
    """`kubectl exec -it` is a terminal as an SSH shell is: a moderator who joins types
    lines into it, each edited apart from the agent's, decided and recorded naming the
    typist, its output on the agent's screen; a refused one is refused there."""
    sub = "svc-live-kube-join"
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{gw.tls_port}",
                                  tokens.token(sub, ["sre"], ttl=600), tls.ca)
    terminal = KubectlTerminal(k8s.Kubectl(kubeconfig, tmp_path / "cache"), "exec", "-it",
                               "web-1", "-n", "staging", "--", "env", "PS1=pod> ", "sh", "-i")
    try:
        terminal.read_until("pod> ")
        (session,) = listed(gw, sub)
        peer = Watch(gw, session["session_id"], command="join")
        peer.event("session", lambda e: e["role"] == "join")
        peer.type("echo joined-$((6*7))")
        terminal.read_until("joined-42")
        peer.type("rm -rf /")
        terminal.read_until("destructive")
        terminal.write("exit 0\r")
        peer.event("ended")
        assert peer.done() == 0
    finally:
        terminal.close()
    lines = {r["request"]["body"]["value"]: r for r in gw.records("exchange")
             if r["session_id"] == session["session_id"] and r["request"]["method"] == "LINE"}
    assert lines["echo joined-$((6*7))"]["request"]["headers"]["x-tollgate-typist"] == "sec-sam"
    assert lines["echo joined-$((6*7))"]["outcome"]["action"] == "allow"
    assert lines["rm -rf /"]["request"]["headers"]["x-tollgate-typist"] == "sec-sam"
    assert lines["rm -rf /"]["outcome"]["action"] == "deny"
