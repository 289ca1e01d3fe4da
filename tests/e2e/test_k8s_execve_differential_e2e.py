"""What a pod actually executed, against what the record allowed: the execve differential
of test_ssh_execve_differential_e2e through the Kubernetes stream front.

The cluster is the API stand-in running real processes in the pod's folder
(tests/standins/k8s_pods.py), each started under its own strace (the stand-in's `wrap`,
tests/support/execve_log.py), which logs every successful execve of the process and of
everything it forks to a log of its own. The pod processes run unprivileged (as nobody
when the tests run as root; the stand-in does not isolate them further: no container),
in the pod's folder, emptied before each session but for notes.txt. strace runs as the
pod's account too (the stand-in switches before the wrap, so each log's first exec is the
pod's command), and so writes its logs in a folder made for that account: a pod command
could rewrite them, which the steps, the test's own, do not. The real kubectl goes
through Envoy (TLS) and the stream front as a member of `agents` (whose opaque lines the
pack holds; a human's exec is judged as typed, k8s.opaque_exec):

- `kubectl exec web-1 -- SHELL -c STEP` for each step (its lines joined with newlines);
- `kubectl exec -i web-1 -- SHELL`, the lines on stdin, then `exit`;
- `kubectl exec -it web-1 -- SHELL -i` (bash with --norc --noprofile) on a real
  terminal, the lines typed, then `exit`;
- `kubectl attach -i web-1`: the pod's container process, `sh` (dash) reading its stdin,
  the lines, then `exit` (the container ends; the next attach starts a new one).

What the session ran: in each log a session started (one per process the stand-in
started), the first exec is the command the exec asked for (or the container's `sh`),
its startup; every exec after it is the session's. The logs are read once the session's
records are in and each logged tree has exited. The rule is the SSH differential's
(tests/support/exec_differential.py), against the session's allowed records: the exec's
own (input.k8s.exec: the argv it asked for, read) and each LINE.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from extproc.quickstart import stack
from extproc.quickstart.accounts import private_folder, service_account
from tests.e2e.test_k8s_streams_e2e import kubectl_as
from tests.e2e.test_ssh_execve_differential_e2e import EXAMPLES
from tests.standins.k8s_pods import ACCOUNT
from tests.standins.k8s_standin import K8sStandIn, Kubectl, KubectlTerminal, gateway_options
from tests.support.attack_lines import NOTES, NOTES_TEXT, SESSION, Step
from tests.support.echo import upper_echo
from tests.support.exec_differential import differences
from tests.support.execve_log import Exec, read_log, strace_prefix
from tests.support.gateway import Gateway, module_gateway
from tests.support.tls import TlsFiles

CLUSTER_TOKEN = "cluster-admin-token-5e1d"
SHELLS = ("bash", "dash")
SHELL = {"bash": ("bash", "--norc", "--noprofile"), "dash": ("dash",)}
POD = ("web-1", "-n", "staging")
# Seven tests of one gateway in the suite's 40 s: fewer sessions each than over SSH.
FEW = settings(EXAMPLES, max_examples=3)


class Traces:
    """One strace log per process the stand-in starts, numbered in order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._count = itertools.count(1)
        self.made = 0

    def wrap(self) -> list[str]:
        self.made = next(self._count)
        return strace_prefix(self.folder / f"process-{self.made}.log")

    def logs(self, after: int) -> list[Path]:
        return [self.folder / f"process-{n}.log" for n in range(after + 1, self.made + 1)]


@pytest.fixture(scope="module")
def traces() -> Iterator[Traces]:
    with private_folder(service_account(ACCOUNT), "k8s-execve") as folder:
        yield Traces(folder)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, traces: Traces
            ) -> Iterator[K8sStandIn]:
    with upper_echo() as port, K8sStandIn(
            CLUSTER_TOKEN, pods=tmp_path_factory.mktemp("pods"), ports={80: port},
            wrap=traces.wrap) as server:
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, tls: TlsFiles,
       cluster: K8sStandIn) -> Iterator[Gateway]:
    with module_gateway(
            tmp_path_factory, otlp, "k8s-execve",
            **gateway_options(cluster, CLUSTER_TOKEN), tls=(tls.cert, tls.key),
            settings={"approvals": {"max_hold_seconds": 1,
                                    "max_pending_per_identity": 10000}},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def agent(gw: Gateway, tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return kubectl_as(gw, tls, tmp_path_factory.mktemp("kubectl"), ["agents"])


def reading(record: dict[str, Any]) -> dict[str, Any]:
    """What the pack read of a record's exec or line (input.k8s.exec); {} for none."""
    return dict(((record.get("meaning") or {}).get("k8s") or {}).get("exec") or {})


class Session:
    """kubectl sessions into the pod, from a folder emptied for them: their records and
    what the pod ran for them."""

    def __init__(self, gw: Gateway, cluster: K8sStandIn, traces: Traces) -> None:
        self.gw, self.traces = gw, traces
        self.pod = cluster.pod_root("staging", "web-1")
        for entry in self.pod.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        (self.pod / NOTES).write_text(NOTES_TEXT)
        self.known = {r["session_id"] for r in gw.records()}
        self.started = traces.made

    def records(self, streams: int) -> list[dict[str, Any]]:
        """The session's exchange records once `streams` exec or attach records are in
        (not a held one's decision record, written as it began to wait)."""
        found: list[dict[str, Any]] = []

        def written() -> bool:
            found[:] = [r for r in self.gw.records("exchange")
                        if r["session_id"] not in self.known]
            return sum(r["request"]["method"] == "GET" and bool(reading(r))
                       for r in found) >= streams

        stack.wait_until(written, 20, f"the session's {streams} stream records")
        return found

    def ran(self) -> list[Exec]:
        """Every exec after the first of each process started since, once each has
        exited with all it forked."""
        logs = self.traces.logs(self.started)

        def ended() -> bool:
            read = [read_log(log) for log in logs]
            return all(r.execs and r.ended(r.execs[0].pid) for r in read)

        stack.wait_until(ended, 20, f"the pod's processes {logs} exited")
        return [e for log in logs for e in read_log(log).execs[1:]]


def check(session: Session, steps: list[Step], streams: int) -> None:
    records = session.records(streams)
    found = differences(steps, records, reading, session.ran(), [], session.pod)
    assert not found, found


def lines(steps: list[Step]) -> list[str]:
    return [line for step in steps for line in step.lines]


@pytest.mark.parametrize("shell", SHELLS)
@FEW
@given(steps=SESSION)
def test_an_exec_runs_only_what_its_record_allowed(
        gw: Gateway, cluster: K8sStandIn, traces: Traces, agent: Kubectl, shell: str,
        steps: list[Step]) -> None:
    session = Session(gw, cluster, traces)
    for step in steps:
        agent("exec", *POD, "--", *SHELL[shell], "-c", "\n".join(step.lines))
    check(session, steps, len(steps))


@pytest.mark.parametrize("shell", SHELLS)
@FEW
@given(steps=SESSION)
def test_an_exec_with_stdin_runs_only_the_lines_its_record_allowed(
        gw: Gateway, cluster: K8sStandIn, traces: Traces, agent: Kubectl, shell: str,
        steps: list[Step]) -> None:
    session = Session(gw, cluster, traces)
    agent("exec", "-i", *POD, "--", *SHELL[shell], stdin="\n".join([*lines(steps), "exit"]))
    check(session, steps, 1)


@pytest.mark.parametrize("shell", SHELLS)
@FEW
@given(steps=SESSION)
def test_an_exec_with_a_terminal_runs_only_the_lines_its_record_allowed(
        gw: Gateway, cluster: K8sStandIn, traces: Traces, agent: Kubectl, shell: str,
        steps: list[Step]) -> None:
    session = Session(gw, cluster, traces)
    with KubectlTerminal(agent, "exec", "-it", *POD, "--", *SHELL[shell], "-i") as terminal:
        for line in [*lines(steps), "exit"]:
            terminal.write(line + "\r")
        terminal.close()
    check(session, steps, 1)


@FEW
@given(steps=SESSION)
def test_an_attach_runs_only_the_lines_its_record_allowed(
        gw: Gateway, cluster: K8sStandIn, traces: Traces, agent: Kubectl, steps: list[Step]
        ) -> None:
    session = Session(gw, cluster, traces)
    agent("attach", "-i", *POD, stdin="\n".join([*lines(steps), "exit"]) + "\n")
    # Lines typed behind a held one leave with the client (`exit` among them), and the
    # container outlives an attach: once the records are in, it is restarted, so that
    # its log ends.
    session.records(1)
    assert cluster.pods is not None
    cluster.pods.restart("staging", "web-1")
    check(session, steps, 1)
