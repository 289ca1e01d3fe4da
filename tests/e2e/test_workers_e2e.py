"""`listen.workers: 2` end to end: one `tollgate serve` supervising two worker processes,
a real Envoy balancing exchanges between them as two endpoints, one SQLite store.

Both workers answer (their records carry two writers); a decision made through worker
0's admin API wakes a request held by worker 1 at once (polling is set to a minute);
SIGTERM drains both and every answer has its record; a killed worker is restarted while
Envoy answers through the other.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc import workers
from extproc.quickstart import stack
from extproc.recording import anchors
from extproc.recording.chain import Checkpoint
from extproc.recording.store import chain_rows
from extproc.store import connect
from tests.e2e.test_approvals_e2e import AGENT, DBA, Held, api, sql
from tests.support.gateway import Gateway, GatewayFactory, module_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WORKERS = {"recording": {"writer_id": "gw", "checkpoint_seconds": 0.5},
           # Only a word from the deciding worker can wake a held request within a minute.
           "approvals": {"poll_seconds": 60, "max_hold_seconds": 30}}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    with module_gateway(tmp_path_factory, otlp, "workers", workers=2,
                        settings=WORKERS) as running:
        yield running


def writers_of(gw: Gateway) -> dict[str, str]:
    """Trace id -> the writer (worker) that recorded its exchange."""
    connection = connect(gw.store_url)
    try:
        return {row.trace_id: row.writer for row in chain_rows(connection)
                if row.kind == "exchange"}
    finally:
        connection.close()


def worker_pids(supervisor: stack.Process) -> dict[int, int]:
    """Worker number -> pid, of the supervisor's children now, by their process names
    (workers.worker_name: a forked worker's command line is its supervisor's)."""
    found = {}
    for pid in supervisor.children():
        with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
            name = comm.read().strip()
        for worker in range(8):
            if name == workers.worker_name(worker):
                found[worker] = pid
    return found


def test_both_workers_answer_each_with_a_chain_of_its_own(gw: Gateway) -> None:
    traces = []
    for _ in range(20):
        reply = gw.request("GET", "/echo")
        assert reply.status == 200 and reply.trace_id
        traces.append(reply.trace_id)

    def recorded() -> bool:
        return set(traces) <= set(writers_of(gw))

    stack.wait_until(recorded, 10, "the 20 exchanges' records")
    by_writer = {writers_of(gw)[t] for t in traces}
    assert by_writer == {"gw-w0", "gw-w1"}


def test_a_decision_through_worker_0_wakes_a_request_held_by_worker_1_at_once(
        gw: Gateway) -> None:
    held: list[tuple[str, Held, str, str]] = []  # (worker's writer, request, id, SQL)
    for _ in range(6):  # Envoy alternates: one of the first two lands on worker 1
        text = scratch_delete()
        request = Held(lambda text=text: sql(gw, text, AGENT))
        approval = pending(gw, text)
        held.append((str(approval["held_by"]), request, str(approval["id"]), text))
        if held[-1][0] == "gw-w1":
            break
    by, request, approval_id, text = held.pop()
    assert by == "gw-w1", f"no request held by worker 1 in {len(held) + 1}"
    decided_at = time.monotonic()
    status, _ = api(gw, "POST", f"/approvals/{approval_id}/approve", DBA, {"reason": "ok"})
    assert status == 200
    reply = request.result(10)
    # Polling is every 60 s: only the word from worker 0 can have woken it this soon.
    assert time.monotonic() - decided_at < 3.0
    assert reply.status != 403, reply.body
    assert {"sql": text} in [json.loads(r.body) for r in gw.upstream.requests if r.body]
    for _, other, other_id, _ in held:  # held by worker 0: let them go
        api(gw, "POST", f"/approvals/{other_id}/deny", DBA, {"reason": "test"})
        assert other.result(10).status == 403


def scratch_delete() -> str:
    """A DELETE of a table of its own, named in letters: the approvals API shows the
    request masked, and a name of 13 digits or more is a card number one time in a
    hundred (`scratch_4053351752550` was), which the listing then never matched."""
    unique = str(time.monotonic_ns()).translate(str.maketrans("0123456789", "abcdefghij"))
    return f"DELETE FROM scratch_{unique}"


def pending(gw: Gateway, text: str) -> dict[str, object]:
    found: list[dict[str, object]] = []

    def exists() -> bool:
        _, answer = api(gw, "GET", "/approvals?status=pending", DBA)
        found[:] = [a for a in answer["approvals"] if a["request"]["body"] == {"sql": text}]
        return bool(found)

    stack.wait_until(exists, 15, f"the pending approval of {text!r}")
    return found[0]


class Load:
    """Requests sent one after another from a few threads until stopped: each answer's
    status and trace id."""

    def __init__(self, gw: Gateway, threads: int = 4) -> None:
        self.answers: list[tuple[int, str | None]] = []
        self._gw, self._stop = gw, threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reply = self._gw.request("GET", "/echo", timeout=10)
            except OSError:  # Envoy itself is fine: only tollgate stops
                continue
            self.answers.append((reply.status, reply.trace_id))

    def until(self, count: int) -> None:
        stack.wait_until(lambda: len(self.answers) >= count, 30, f"{count} answers")

    def stop(self) -> list[tuple[int, str | None]]:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        return self.answers


def test_sigterm_drains_both_workers_and_every_answer_has_its_record(
        make_gateway: GatewayFactory) -> None:
    gw = make_gateway(workers=2, settings=WORKERS)
    load = Load(gw)
    load.until(100)
    assert gw.tollgate.stop(30) == 0  # the supervisor: both workers drained cleanly
    answers = load.stop()
    answered = {trace for status, trace in answers if status == 200 and trace}
    assert len(answered) == sum(status == 200 for status, _ in answers) >= 100
    recorded = writers_of(gw)
    assert answered <= set(recorded), f"{len(answered - set(recorded))} answers unrecorded"
    assert set(recorded.values()) == {"gw-w0", "gw-w1"}
    log = gw.tollgate.tail(100)
    assert all(f"tollgate.server[w{i}]: stopped" in log for i in (0, 1))
    assert "2 workers drained" in log
    verified = subprocess.run(
        [sys.executable, "-m", "extproc", "audit", "verify", "--config", str(gw.config_path),
         "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["intact"] and len(report["chains"]) == 2


def test_a_killed_worker_is_restarted_and_envoy_answers_through_the_other_meanwhile(
        make_gateway: GatewayFactory) -> None:
    gw = make_gateway(workers=2, settings=WORKERS)
    before = worker_pids(gw.tollgate)
    assert sorted(before) == [0, 1]
    os.kill(before[1], signal.SIGKILL)
    port = gw.ports.ext_proc + 1
    stack.wait_until(lambda: not stack.grpc_serving(port)(), 10, "worker 1 gone")
    # Envoy's health check, every second even before any traffic (no_traffic_interval:
    # its default, a minute, once left a dead worker in the balancing until its restart),
    # finds it gone. No request has been sent yet.
    stack.wait_until(lambda: gw.envoy_stat(
        "cluster.tollgate_extproc.health_check.network_failure") >= 1, 10,
        "Envoy's health check to find worker 1 gone")
    # Meanwhile (its restart waits a second), what Envoy sends to worker 1 is refused
    # (fail closed: nothing passes undecided); once the check took it out, worker 0
    # answers everything.
    def only_worker_0_answers() -> bool:
        replies = [gw.request("GET", "/echo") for _ in range(6)]
        for reply in replies:
            assert reply.status == 200 or (
                reply.status == 503 and reply.json()["error"] == "tollgate_unavailable")
        return all(r.status == 200 for r in replies)

    # Six in a row, round robin over two endpoints: worker 1 is out of the balancing.
    stack.wait_until(only_worker_0_answers, 10, "worker 0 to answer everything")
    stack.wait_until(stack.grpc_serving(port), 30, "worker 1 restarted")
    after = worker_pids(gw.tollgate)
    assert after[0] == before[0] and after[1] != before[1]
    assert f"worker 1 (pid {before[1]}) exited with status -9; restarting it" \
        in gw.tollgate.tail(200)
    # Envoy's health check finds it again, and it answers its share.
    restarted_at = time.time_ns() // 1000

    traces: set[str | None] = set()  # every request's since the restart: records land
    # a few ms after their answers, so a later look finds an earlier request's

    def worker_1_answers() -> bool:
        traces.update(gw.request("GET", "/echo").trace_id for _ in range(4))
        connection = connect(gw.store_url)
        try:
            return any(row.writer == "gw-w1" and row.started_us > restarted_at
                       and row.trace_id in traces for row in chain_rows(connection))
        finally:
            connection.close()

    stack.wait_until(worker_1_answers, 30, "the restarted worker 1 answering")


def test_anchor_lines_of_several_writers_never_interleave(tmp_path: Path) -> None:
    """Workers share the anchor log: each append is whole lines (O_APPEND), even a batch
    larger than a write buffer, from four processes at once."""
    log = tmp_path / "anchors.jsonl"
    writers = [subprocess.Popen(
        [sys.executable, "-c", "import sys; from tests.e2e.test_workers_e2e import append_many;"
         "append_many(sys.argv[1], sys.argv[2])", f"w{n}", str(log)]) for n in range(4)]
    assert [w.wait(120) for w in writers] == [0] * 4
    found = anchors.read(log)  # raises AnchorLogError on a line that is no statement
    assert found.cut_line is None
    assert len(found.statements) == 4 * APPENDS * BATCH
    for n in range(4):
        assert [s.seq for s in found.statements if s.writer == f"w{n}"] == list(
            range(APPENDS * BATCH))


APPENDS, BATCH = 100, 40  # 40 statements: ~12 KiB a write, beyond an 8 KiB buffer


def append_many(writer: str, path: str) -> None:
    for n in range(APPENDS):
        anchors.append(Path(path), [
            Checkpoint(writer, n * BATCH + i, "checkpoint", "ab" * 32, time.time_ns() // 1000,
                       "key", "cd" * 64) for i in range(BATCH)])
