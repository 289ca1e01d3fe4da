"""Soak test: minutes of mixed traffic through Envoy into tollgate, then every record counted.

Run from the repository root: `python -m bench.soak` (not part of CI).

What it measures, and why: tollgate promises that every exchange it answers leaves
exactly one record in the audit store, written off the request path, and that the
store's chains verify. A unit test shows that for a handful of exchanges; this shows
it for tens of thousands, at a fixed rate, for long enough that a slow store, a
growing queue or a leak would show. The traffic is a realistic mix, each kind taking
its own path through tollgate and leaving its own kind of record:

    get         40%  GET /api/customers, allowed on the request headers
    sql         25%  POST /sql whose SELECT the SQL interpreter parses, allowed
    sql-denied  10%  POST /sql with DROP TABLE, which the default pack denies (403)
    masked      20%  GET through a target whose answers tollgate reads and masks
    malformed    5%  POST /sql whose body is not JSON, refused before any policy (400)

It starts the same processes as bench/load.py (the demo upstream, Envoy, tollgate
exporting spans to a real OTLP receiver), with tollgate's store chosen by `--store`: a
SQLite file in a temporary folder by default, or a PostgreSQL server, on which a
throwaway database is created and dropped after. load.py's generator drives it: its
own process, threads on raw keep-alive sockets, requests on a fixed timetable (open
loop, latency counted from the scheduled send). Once a second it also reads how far
the writer's chain has got, so the record queue's backlog (answered - recorded) can be
followed over the run.

At the end tollgate is stopped with SIGTERM (its shutdown drains the record queue) and
the store is read back: every answer that carries tollgate's trace id must have
exactly one record with that trace id ("lost" and "extra" must both be 0), and
`verify` must find the store intact. Also reported: answers by status, records by
action and status, latency by kind and by minute, the recorder's write rate and
backlog, the store's size on disk, and CPU per request by process (as load.py does).
Exits 1 when a record is lost or verification fails.

bench/soak_faults.py runs the same soak on two replicas while it restarts their store
and kills one of them (`run`'s `during`): the pieces here take several replicas and
chains for it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import multiprocessing
import os
import platform
import random
import re
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import psycopg
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from psycopg import sql as pgsql

from bench import load
from bench.load import GENERATOR, Connection, Timetable, cpu_seconds, http_request, percentile
from extproc import envoy_bootstrap
from extproc.quickstart import stack
from extproc.recording import store
from extproc.recording.chain import Signer
from extproc.recording.verify import Report, verify
from extproc.store import Connection as StoreConnection
from extproc.store import StoreError, connect
from tests.standins.otlp_receiver import OtlpReceiver

TRACE_ID = re.compile(rb"\r\nx-tollgate-trace-id: ([0-9a-f]{32})\r\n", re.IGNORECASE)
# Envoy closes the connection after some answers (tollgate's 400 refusals): load.py's
# Connection does not look, so the request after one would meet a closed socket.
CLOSE = re.compile(rb"\r\nconnection: *close\r\n", re.IGNORECASE)
SAMPLE_SECONDS = 1.0  # how often the generator reads how far the chain has got
STOP_TIMEOUT = 60.0  # SIGTERM, then this long for the drain before SIGKILL


# ---- The mix ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    request: bytes
    expected: int  # the status this kind should get
    weight: int  # out of the mix's total


MIX = (
    Kind("get", load.GET, 200, 8),
    Kind("sql", load.POST, 200, 5),
    Kind("sql-denied", http_request("POST", "/sql", b'{"sql": "DROP TABLE customers"}'), 403, 2),
    Kind("masked", load.MASKED_GET, 200, 4),
    Kind("malformed", http_request("POST", "/sql", b'{"sql": "SELECT 1"'), 400, 1),
)
KINDS = {kind.name: kind for kind in MIX}


def mix_order() -> list[str]:
    """One cycle of the mix, its kinds interleaved (always the same order)."""
    order = [kind.name for kind in MIX for _ in range(kind.weight)]
    random.Random(0).shuffle(order)
    return order


# ---- The load generator: runs in its own process ---------------------------------------------


class Answer(NamedTuple):
    """One request: when it was due, sent and done (perf_counter ns), and what came back."""

    kind: str
    due: int
    sent: int
    done: int
    status: int | None  # None: no answer (see error)
    error: str | None  # "timeout" or the exception's name
    trace_id: str | None  # tollgate's, from the answer's x-tollgate-trace-id


@dataclass(frozen=True)
class Soak:
    """What the generator runs, and where it reads the chain's progress."""

    port: int
    seconds: float
    rate: float
    connections: int
    pids: dict[str, int]
    store_url: str
    writers: tuple[str, ...]  # the chains of the run (one per replica, and per restart)


@dataclass(frozen=True)
class Driven:
    start: int  # perf_counter ns of the timetable's start
    seconds: float  # from the start until the last answer (longer than asked when overloaded)
    answers: list[Answer]
    samples: list[tuple[float, int, int]]  # (seconds in, requests done, records written)
    cpu_seconds: dict[str, float]  # by role, of the processes still running at the end
    rss_mb: dict[str, tuple[float, float]]  # resident memory by role, at start and at end


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc/PID/status."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def exchange(connection: Connection, kind: Kind, due: int) -> Answer:
    """Send one request of `kind` and note what came back."""
    sent = time.perf_counter_ns()
    status = error = trace_id = None
    try:
        head = connection.exchange(kind.request)
    except TimeoutError:
        error = "timeout"
    except OSError as exc:
        error = type(exc).__name__
    else:
        status = int(head[9:12])
        found = TRACE_ID.search(head + b"\r\n")
        trace_id = found.group(1).decode() if found else None
        if CLOSE.search(head + b"\r\n"):
            connection.close()  # as a client must: the next request opens a new one
    return Answer(kind.name, due, sent, time.perf_counter_ns(), status, error, trace_id)


def _send_until_over(
    connection: Connection, timetable: Timetable, kinds: Iterator[str], answers: list[Answer]
) -> None:
    """One connection's loop: the next kind of the mix, each time one is due."""
    while (due := timetable.next_due()) is not None:
        answers.append(exchange(connection, KINDS[next(kinds)], due))  # atomic under the GIL
    connection.close()


def written(connection: StoreConnection, writers: tuple[str, ...]) -> int:
    """The records the writers' chains hold: each chain's last number (a chain is
    numbered from 1 without gaps)."""
    return sum(last[0] for writer in writers if (last := store.last_of(connection, writer)))


def _follow_chain(soak: Soak, start: int, answers: list[Answer], stop: threading.Event,
                  samples: list[tuple[float, int, int]]) -> None:
    """Every second: requests done so far, and records written. A store that went away
    (bench/soak_faults.py restarts it) is connected to again; its seconds have no sample."""
    connection: StoreConnection | None = None
    try:
        while not stop.wait(SAMPLE_SECONDS):
            try:
                connection = connection or connect(soak.store_url, migrate=False)
                records = written(connection, soak.writers)
            except StoreError:
                if connection is not None:
                    connection.close()
                connection = None
                continue
            samples.append(((time.perf_counter_ns() - start) / 1e9, len(answers), records))
    finally:
        if connection is not None:
            connection.close()


def drive(soak: Soak) -> Driven:
    """Run the mix on its timetable (in the generator process) and measure the whole run."""
    pids = {**soak.pids, GENERATOR: os.getpid()}
    start = time.perf_counter_ns()
    timetable = Timetable(start, start + int(soak.seconds * 1e9), soak.rate)
    kinds = itertools.cycle(mix_order())
    answers: list[Answer] = []
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()
    follower = threading.Thread(target=_follow_chain,
                                args=(soak, start, answers, stop, samples))
    senders = [threading.Thread(target=_send_until_over,
                                args=(Connection(soak.port), timetable, kinds, answers))
               for _ in range(soak.connections)]
    before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    memory = {role: rss_mb(pid) for role, pid in pids.items()}
    for thread in (follower, *senders):
        thread.start()
    for thread in senders:
        thread.join()
    # A process killed meanwhile (bench/soak_faults.py kills a replica) is left out.
    running = {role: pid for role, pid in pids.items() if Path(f"/proc/{pid}").exists()}
    after = {role: cpu_seconds(pid) for role, pid in running.items()}
    seconds = (time.perf_counter_ns() - start) / 1e9
    stop.set()
    follower.join()
    return Driven(start, seconds, answers, samples,
                  {role: after[role] - before[role] for role in running},
                  {role: (memory[role], rss_mb(pid)) for role, pid in running.items()})


# ---- The processes under test ----------------------------------------------------------------


class SpanCounter(OtlpReceiver):
    """load.py's OTLP receiver, counting spans instead of keeping them: the tests' receiver
    holds every span, decoded, in this process, which over a soak grows without bound and
    takes a share of the cores being measured."""

    def __init__(self) -> None:
        super().__init__()
        self._counts: list[int] = []  # appended by the server's threads (atomic)

    def Export(self, request: Any, _context: Any) -> Any:
        self._counts.append(sum(len(scope.spans) for resource in request.resource_spans
                                for scope in resource.scope_spans))
        return trace_service_pb2.ExportTraceServiceResponse()

    @property
    def received(self) -> int:
        return sum(self._counts)


@contextlib.contextmanager
def throwaway_store(choice: str | None, work: Path) -> Iterator[str]:
    """The store's URL: a SQLite file in `work` (no choice), the SQLite URL given, or a
    new database on the PostgreSQL server of the URL given, dropped afterwards."""
    if choice is None:
        yield f"sqlite:///{work / 'soak.db'}"
        return
    if not choice.startswith(("postgresql://", "postgres://")):
        yield choice
        return
    name = f"tollgate_soak_{secrets.token_hex(4)}"
    with psycopg.connect(choice, autocommit=True) as admin:
        admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    try:
        yield urlsplit(choice)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(choice, autocommit=True) as admin:
            admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                pgsql.Identifier(name)))


@dataclass(frozen=True)
class Recording:
    """What every replica's configuration shares: the work folder (configs, logs,
    spools), where spans go, the store and the audit key (the first replica makes it)."""

    work: Path
    otlp_endpoint: str
    store_url: str
    signing_key: Path


@dataclass(frozen=True)
class Gateway:
    port: int  # Envoy's listener
    recording: Recording
    grpc_ports: list[int]  # each replica's
    # Every tollgate process started, in order (a replica started again is appended).
    tollgates: list[stack.Process]
    pids: dict[str, int]  # by role, for CPU figures

    def start_replica(self, replica: int, writer: str,
                      starting: Callable[[stack.Process], None] | None = None
                      ) -> stack.Process:
        """Replica `replica` (again, once it is gone), recording as `writer`; `starting`
        called while it starts."""
        process = start_replica(self.recording, replica, self.grpc_ports[replica], writer,
                                starting)
        self.tollgates.append(process)
        return process


def soak_config(grpc_port: int, recording: Recording, replica: int, writer: str
                ) -> dict[str, Any]:
    """load.py's tollgate configuration, recording into the store as `writer`, what it
    cannot write when stopping spooled (and journaled) in the replica's own folder,
    which a restarted replica finds again as a restarted pod does its volume."""
    return {**load.tollgate_config(grpc_port, recording.otlp_endpoint, workers=1),
            "store": {"url": recording.store_url},
            "recording": {"writer_id": writer, "signing_key_file": str(recording.signing_key),
                          "spool_dir": str(recording.work / "spool" / f"replica-{replica}")}}


def start_replica(recording: Recording, replica: int, grpc_port: int, writer: str,
                  starting: Callable[[stack.Process], None] | None = None) -> stack.Process:
    config = recording.work / f"tollgate-{writer}.yaml"
    config.write_text(yaml.safe_dump(soak_config(grpc_port, recording, replica, writer)),
                      encoding="utf-8")
    return stack.start_tollgate(config, grpc_port, recording.work, name=f"tollgate-{writer}",
                                starting=starting)


def start_gateway(recording: Recording, cleanup: contextlib.ExitStack,
                  writers: list[str]) -> Gateway:
    """The demo upstream, a tollgate replica per writer and Envoy balancing between them,
    as load.py's tollgate set-up starts them.

    (Not load.start_stacks: its tollgate configuration has no store to choose, and it
    keeps the tollgate process to itself, where this must SIGTERM it and wait.)
    """
    work = recording.work
    grpc_ports = [stack.free_port() for _ in writers]
    ports = envoy_bootstrap.Ports(listener=stack.free_port(), admin=stack.free_port(),
                                  ext_proc=grpc_ports[0], upstream=stack.free_port())
    upstream = stack.start_upstream(ports.upstream, work)
    cleanup.callback(upstream.stop)
    gateway = Gateway(ports.listener, recording, grpc_ports, [], {"upstream": upstream.pid})

    @cleanup.callback
    def stop_replicas() -> None:
        for process in gateway.tollgates:
            process.stop()

    for replica, writer in enumerate(writers):
        role = load.EXT_PROC if replica == 0 else f"{load.EXT_PROC}-{replica}"
        gateway.pids[role] = gateway.start_replica(replica, writer).pid
    bootstrap = envoy_bootstrap.with_ext_proc_ports(envoy_bootstrap.with_routes(
        envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports), [load.MASKED_ROUTE]),
        grpc_ports)
    envoy = stack.start_envoy(envoy_bootstrap.write(bootstrap, work / "envoy.yaml"),
                              ports.admin, work)
    cleanup.callback(envoy.stop)
    gateway.pids["envoy"] = envoy.pid
    return gateway


def probe(port: int) -> list[Answer]:
    """One request of each kind first: a mix that does not answer as expected is not run."""
    connection = Connection(port)
    try:
        answers = [exchange(connection, kind, time.perf_counter_ns()) for kind in MIX]
    finally:
        connection.close()
    for kind, answer in zip(MIX, answers, strict=True):
        if answer.status != kind.expected or answer.trace_id is None:
            raise SystemExit(f"{kind.name}: expected {kind.expected} from tollgate, got "
                             f"{answer.status or answer.error} (trace id {answer.trace_id})")
    return answers


def recorded_so_far(store_url: str, writers: tuple[str, ...]) -> int:
    connection = connect(store_url, migrate=False)
    try:
        return written(connection, writers)
    finally:
        connection.close()


REFUSED = re.compile(r"trace ([0-9a-f]{32}): refused: (.*)")
STOPPED = re.compile(r"stopped \((\d+) exchanges recorded\)")


def stop_tollgates(tollgates: list[stack.Process]) -> dict[str, Any]:
    """SIGTERM each still running, in turn (tollgate drains: in-flight exchanges, then
    the record queue); how long it took, how each ended, and what their logs say about
    recording."""
    started = time.perf_counter()
    statuses = {tollgate.name: tollgate.stop(STOP_TIMEOUT) for tollgate in tollgates}
    logs = [tollgate.log_path.read_text(encoding="utf-8", errors="replace")
            for tollgate in tollgates if tollgate.log_path]
    stopped = [int(found.group(1)) for log in logs if (found := STOPPED.search(log))]
    return {
        "exit_status": statuses,
        "stop_seconds": time.perf_counter() - started,
        "logged_recorded": sum(stopped) if stopped else None,
        # Refusals because the record could not be taken (503): by design, never recorded.
        "refused_unrecorded": {trace: why for log in logs for trace, why in REFUSED.findall(log)},
        "log_errors": [line for log in logs for line in log.splitlines()
                       if " ERROR " in line][:20],
    }


# ---- Reading the store back ------------------------------------------------------------------


def store_bytes(store_url: str) -> dict[str, int]:
    """The store's size on disk: SQLite's files, or PostgreSQL's tables with their indexes
    (and the whole database, which carries ~7 MB of catalog besides)."""
    if store_url.startswith("sqlite:///"):
        path = Path(store_url.removeprefix("sqlite:///"))
        files = [path, path.with_name(f"{path.name}-wal")]
        return {"store": sum(f.stat().st_size for f in files if f.exists())}
    connection = connect(store_url, migrate=False)
    try:
        ((tables, database),) = connection.execute(
            "SELECT pg_total_relation_size('records') + pg_total_relation_size('checkpoints'),"
            " pg_database_size(current_database())")
    finally:
        connection.close()
    return {"store": tables, "database": database}


class Recorded(NamedTuple):
    """Of a trace's record: which chain, when its exchange began, what was done."""

    writer: str
    started_us: int
    action: str
    status: int | None


@dataclass
class Stored:
    """The writers' records: how many per trace id, and by action, status and detail
    (`stream_ended`: Envoy closed the stream before tollgate's answer reached it)."""

    per_trace: Counter[str]
    by_outcome: Counter[tuple[str, int | None, str | None]]
    report: Report
    recorded: dict[str, Recorded]  # by trace id (its last record)


def read_store(store_url: str, writers: tuple[str, ...], signing_key: Path) -> Stored:
    """Tally this run's records (its writers' chains), then verify the whole store."""
    connection = connect(store_url, migrate=False)
    try:
        per_trace: Counter[str] = Counter()
        by_outcome: Counter[tuple[str, int | None, str | None]] = Counter()
        recorded: dict[str, Recorded] = {}
        for row in store.chain_rows(connection):
            if row.writer not in writers or row.kind == "policy":  # not the policy loads
                continue
            by_outcome[(row.action, row.status, row.document()["outcome"]["detail"])] += 1
            if row.kind != "alert":  # an alert is a record of its own, on a trace it is about
                per_trace[row.trace_id] += 1
                recorded[row.trace_id] = Recorded(row.writer, row.started_us, row.action,
                                                  row.status)
        report = verify(connection, Signer.from_file(signing_key).public)
    finally:
        connection.close()
    return Stored(per_trace, by_outcome, report, recorded)


def accounting(answers: list[Answer], stored: Stored, refused: dict[str, str]) -> dict[str, Any]:
    """Answers against records, by trace id. An answer with tollgate's trace id is an
    exchange tollgate handled: it must have exactly one record, unless tollgate refused it
    because the record could not be taken (503 recording_unavailable, logged)."""
    traced = [a.trace_id for a in answers if a.trace_id is not None]
    expected = set(traced) - refused.keys()
    matched = expected & stored.per_trace.keys()
    records = sum(stored.per_trace.values())
    return {
        "answered_by_tollgate": len(traced),
        "answered_by_envoy_alone": sum(a.status is not None and a.trace_id is None
                                       for a in answers),
        "refused_unrecorded": len(refused),
        "records": records,
        "lost": len(expected - matched),
        "extra": records - len(matched),
        "duplicated": sum(n > 1 for n in stored.per_trace.values()),
        "records_by_outcome": {
            f"{action} {status if status is not None else '-'}"
            + (f" ({detail})" if detail else ""): n
            for (action, status, detail), n in sorted(stored.by_outcome.items(),
                                                      key=lambda kv: -kv[1])},
    }


def verification(report: Report, writers: tuple[str, ...]) -> dict[str, Any]:
    chains = [chain for writer in writers if (chain := report.chains.get(writer))]
    return {
        "intact": report.intact,
        "problems": [str(p) for p in report.problems[:10]],
        "chains": len(report.chains),
        "checkpoints": report.checkpoints,
        "chain_records": sum(chain.records for chain in chains),
        # The final checkpoint, signed at shutdown, should cover the whole chain (not a
        # killed replica's: nothing signs after SIGKILL).
        "checkpointed_to_end": {chain.writer: chain.checkpointed_to == chain.last
                                for chain in chains},
        # Records a stop could not wait for, written on a later start (spool.py).
        "spooled": sum(spooled.records for spooled in report.spooled()),
    }


# ---- Figures ---------------------------------------------------------------------------------


def by_status(answers: list[Answer]) -> dict[str, int]:
    counted = Counter(str(a.status) if a.status is not None else a.error for a in answers)
    return dict(sorted(counted.items()))


def unexpected(answers: list[Answer]) -> int:
    return sum(a.status != KINDS[a.kind].expected for a in answers)


def latency(answers: list[Answer]) -> dict[str, float]:
    """p50/p99 ms from the scheduled send, and how late the sends left (p99 ms)."""
    waited = [(a.done - a.due) / 1e6 for a in answers]
    lag = [(a.sent - a.due) / 1e6 for a in answers]
    return {"p50_ms": percentile(waited, 50), "p99_ms": percentile(waited, 99),
            "max_ms": max(waited, default=float("nan")),
            "send_lag_p99_ms": percentile(lag, 99)}


def per_kind(answers: list[Answer]) -> dict[str, dict[str, Any]]:
    rows = {}
    for kind in MIX:
        mine = [a for a in answers if a.kind == kind.name]
        rows[kind.name] = {"sent": len(mine), "expected": kind.expected,
                           "statuses": by_status(mine), "unexpected": unexpected(mine),
                           **latency(mine)}
    return rows


def per_interval(driven: Driven, seconds: float) -> list[dict[str, Any]]:
    """Latency, errors and the record backlog interval by interval (by due time): by the
    minute, drift shows; by the second, a stall shows when it happened."""
    buckets: dict[int, list[Answer]] = {}
    for answer in driven.answers:
        buckets.setdefault(int((answer.due - driven.start) / 1e9 / seconds), []).append(answer)
    rows = []
    for index, answers in sorted(buckets.items()):
        samples = [s for s in driven.samples if index <= s[0] / seconds < index + 1]
        rows.append({"from_s": index * seconds, "requests": len(answers),
                     "unexpected": unexpected(answers), **latency(answers),
                     "backlog_max": max((done - rec for _, done, rec in samples), default=0)})
    return rows


def recorder_figures(driven: Driven, recorded_at_stop: int, records: int,
                     stopped: dict[str, Any]) -> dict[str, Any]:
    """The writer's pace: records/s over the run and its best second, the backlog
    (requests done - records written) at its largest and at SIGTERM, and the drain."""
    samples = [(0.0, 0, 0), *driven.samples]
    paces = [(r1 - r0) / (t1 - t0) for (t0, _, r0), (t1, _, r1) in itertools.pairwise(samples)
             if t1 > t0]
    return {
        "records_per_s": recorded_at_stop / driven.seconds,
        "best_second_records_per_s": max(paces, default=0.0),
        "backlog_max": max((done - rec for _, done, rec in driven.samples), default=0),
        "backlog_at_sigterm": len(driven.answers) - recorded_at_stop,
        "written_by_the_drain": records - recorded_at_stop,
        "stop_seconds": stopped["stop_seconds"],
    }


def cpu_figures(driven: Driven) -> dict[str, Any]:
    """load.py's CPU figures (µs per request by process, core share), over the whole run."""
    answers = driven.answers
    measured = load.Measured(
        requests=len(answers), errors=unexpected(answers), seconds=driven.seconds,
        latencies_ms=[], send_lag_ms=[], cpu_seconds=driven.cpu_seconds)
    summary = load.figures(measured)
    return {"rps": summary["rps"], "cpu_us_per_request": summary["cpu_us_per_request"],
            "cpu_core_share": summary["cpu_core_share"]}


# ---- Report ----------------------------------------------------------------------------------


def markdown(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = [f"| {' | '.join(header)} |", f"|{'|'.join('---' for _ in header)}|"]
    lines += [f"| {' | '.join(str(cell) for cell in row)} |" for row in rows]
    return "\n".join(lines)


def slowest(seconds: list[dict[str, Any]]) -> str:
    worst = max(seconds, key=lambda row: row["max_ms"])
    return (f"from {worst['from_s']:g} s: max {worst['max_ms']:.1f} ms, p99 "
            f"{worst['p99_ms']:.1f} ms, send lag p99 {worst['send_lag_p99_ms']:.1f} ms, "
            f"backlog max {worst['backlog_max']}")


def headline(result: dict[str, Any]) -> str:
    """The figures that decide the run, one per row."""
    acc, rec, ver, cpu = (result[k] for k in ("accounting", "recorder", "verify", "cpu"))
    stopped, size = result["stopped"], result["store_bytes"]
    us = cpu["cpu_us_per_request"]
    rows = [
        ("store", result["store"]),
        ("requests sent (run + probes)", f"{result['sent']} + {len(MIX)}"),
        ("achieved rate", f"{cpu['rps']:.1f}/s over {result['seconds_run']:.1f} s (asked "
         f"{result['args']['rate']:g}/s for {result['args']['minutes'] * 60:g} s)"),
        ("answers by status", ", ".join(f"{s}: {n}" for s, n in result["statuses"].items())),
        ("unexpected status or no answer", result["unexpected"]),
        ("answered by tollgate / by Envoy alone",
         f"{acc['answered_by_tollgate']} / {acc['answered_by_envoy_alone']}"),
        ("refused unrecorded (503 recording_unavailable)", acc["refused_unrecorded"]),
        ("records (this run's chains)", acc["records"]),
        ("**lost** (answered, no record)", f"**{acc['lost']}**"),
        ("extra records (no answer, or duplicates)", acc["extra"]),
        ("verify", f"{'intact' if ver['intact'] else 'BROKEN'}: {ver['chains']} chain(s), "
                   f"{ver['checkpoints']} checkpoints, last checkpoint at chain end: "
                   + ", ".join(f"{writer} {'yes' if at_end else 'no'}"
                               for writer, at_end in ver["checkpointed_to_end"].items())),
        ("spooled records (written on a later start)", ver["spooled"]),
        ("latency p50 / p99 / max ms", "{p50_ms:.2f} / {p99_ms:.2f} / {max_ms:.1f}".format(
            **result["latency"])),
        ("send lag p99 ms (left late: connections busy, or no core)",
         f"{result['latency']['send_lag_p99_ms']:.2f}"),
        ("slowest second (by max latency)", slowest(result["seconds"])),
        ("recorder: records/s (mean / best second)",
         f"{rec['records_per_s']:.1f} / {rec['best_second_records_per_s']:.0f}"),
        ("recorder: backlog max / at SIGTERM", f"{rec['backlog_max']} / "
                                               f"{rec['backlog_at_sigterm']}"),
        ("SIGTERM: exit, seconds, written by the drain",
         ", ".join(f"{name} {status}" for name, status in stopped["exit_status"].items())
         + f"; {stopped['stop_seconds']:.2f} s, "
         f"{rec['written_by_the_drain']}"),
        ("tollgate log: recorded / ERROR lines",
         f"{stopped['logged_recorded']} / {len(stopped['log_errors'])}"),
        ("store size", ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in size.items())
         + f" ({size['store'] / max(acc['records'], 1):.0f} B/record)"),
        ("CPU µs/request: tollgate / envoy / upstream / generator",
         " / ".join(f"{us[r]:.0f}" for r in (load.EXT_PROC, "envoy", "upstream", GENERATOR))),
        ("tollgate core share", f"{cpu['cpu_core_share'][load.EXT_PROC]:.0%}"),
        ("resident MB at start -> end: tollgate / envoy",
         " / ".join("{:.0f} -> {:.0f}".format(*result["rss_mb"][r])
                    for r in (load.EXT_PROC, "envoy"))),
        ("spans exported (OTLP) / exchanges", f"{stopped['spans_exported']} / "
                                              f"{acc['answered_by_tollgate']}"),
    ]
    return markdown(("figure", "value"), rows)


def report(result: dict[str, Any]) -> str:
    kinds = [(name, r["sent"], r["expected"], ", ".join(f"{s}: {n}" for s, n in
              r["statuses"].items()), r["unexpected"], f"{r['p50_ms']:.2f}",
              f"{r['p99_ms']:.2f}") for name, r in result["kinds"].items()]
    outcomes = list(result["accounting"]["records_by_outcome"].items())
    minutes = [(f"{m['from_s'] / 60:g}", m["requests"], m["unexpected"], f"{m['p50_ms']:.2f}",
                f"{m['p99_ms']:.2f}", f"{m['max_ms']:.1f}", m["backlog_max"])
               for m in result["minutes"]]
    sections = [
        headline(result),
        markdown(("kind", "sent", "expected", "statuses", "unexpected", "p50 ms", "p99 ms"),
                 kinds),
        markdown(("record: action status (detail)", "records"), outcomes),
        markdown(("from minute", "requests", "unexpected", "p50 ms", "p99 ms", "max ms",
                  "backlog max"), minutes),
    ]
    problems = result["verify"]["problems"] + result["stopped"]["log_errors"]
    if problems:
        sections.append("\n".join(["problems:", *(f"  {p}" for p in problems)]))
    return "\n\n".join(sections)


# ---- Orchestration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """What one soak leaves, before it is summed up."""

    store_url: str
    writers: tuple[str, ...]
    probes: list[Answer]
    driven: Driven
    recorded_at_stop: int  # the run's records written when the last answer came
    stopped: dict[str, Any]
    size: dict[str, int]
    stored: Stored


# What runs in this process while the generator sends: given the gateway and when the
# run began (perf_counter ns), it may break things (bench/soak_faults.py).
During = Callable[[Gateway, int], None]


def run(args: argparse.Namespace, work: Path, store_url: str, writers: tuple[str, ...],
        replicas: int = 1, during: During | None = None) -> Ran:
    """Start the stack, a replica for each of the first `replicas` of `writers` (the
    others name the chains of replicas `during` starts), soak it, stop tollgate, read the
    store back (also on error, stop all)."""
    with contextlib.ExitStack() as cleanup:
        generator = cleanup.enter_context(ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=load.prioritise))
        # The generator's process started and this module imported there first: the run
        # begins as it is submitted.
        generator.submit(rss_mb, os.getpid()).result()
        otlp = cleanup.enter_context(SpanCounter())
        gateway = start_gateway(Recording(work, otlp.endpoint, store_url,
                                          work / "audit-signing.key"),
                                cleanup, list(writers[:replicas]))
        probes = probe(gateway.port)
        print(f"  soaking {args.minutes:g} min at {args.rate:g}/s ...", file=sys.stderr,
              flush=True)
        start = time.perf_counter_ns()
        driving = generator.submit(drive, Soak(
            gateway.port, args.minutes * 60, args.rate, args.connections, gateway.pids,
            store_url, writers))
        if during is not None:
            during(gateway, start)
        driven = without_probes(driving.result(), len(probes))
        recorded_at_stop = recorded_so_far(store_url, writers) - len(probes)
        stopped = {**stop_tollgates(gateway.tollgates), "spans_exported": otlp.received}
        return Ran(store_url, writers, probes, driven, recorded_at_stop, stopped,
                   store_bytes(store_url),
                   read_store(store_url, writers, gateway.recording.signing_key))


def summary(args: argparse.Namespace, ran: Ran) -> dict[str, Any]:
    """Every figure of the run, as the report and the JSON result show them."""
    answers = ran.driven.answers
    acc = accounting(ran.probes + answers, ran.stored, ran.stopped["refused_unrecorded"])
    where = "SQLite" if ran.store_url.startswith("sqlite") else "PostgreSQL"
    return {
        "store": f"{where} ({ran.store_url})", "writers": ran.writers,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "sent": len(answers), "seconds_run": ran.driven.seconds,
        "statuses": by_status(answers), "unexpected": unexpected(answers),
        "latency": latency(answers), "kinds": per_kind(answers),
        "minutes": per_interval(ran.driven, 60), "seconds": per_interval(ran.driven, 1),
        "accounting": acc, "verify": verification(ran.stored.report, ran.writers),
        "recorder": recorder_figures(ran.driven, ran.recorded_at_stop,
                                     acc["records"] - len(ran.probes), ran.stopped),
        "stopped": ran.stopped, "store_bytes": ran.size, "cpu": cpu_figures(ran.driven),
        "rss_mb": ran.driven.rss_mb, "samples": ran.driven.samples,
    }


def without_probes(driven: Driven, probes: int) -> Driven:
    """The chain's progress counted from the run's first record (the probes' come first)."""
    samples = [(t, done, max(recorded - probes, 0)) for t, done, recorded in driven.samples]
    return dataclasses.replace(driven, samples=samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="how long to soak")
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument(
        "--store", help="sqlite:///PATH, or postgresql://USER@HOST:PORT/DB: a throwaway "
        "database is made on that server and dropped after (default: SQLite in a temp dir)")
    parser.add_argument("--json-out", type=Path,
                        help="default: bench/results/soak-<timestamp>.json")
    args = parser.parse_args(argv)

    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="tollgate-soak-") as work, \
            throwaway_store(args.store, Path(work)) as store_url:
        result = summary(args, run(args, Path(work), store_url,
                                   (f"soak-{secrets.token_hex(3)}",)))
    print(report(result))
    finish(result, args.json_out or load.RESULTS / f"soak-{started:%Y%m%dT%H%M%SZ}.json",
           started)


def finish(result: dict[str, Any], out: Path, started: datetime) -> None:
    """Write the result as JSON to `out`, and exit 1 when a record is lost or the store
    does not verify."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "started": started.isoformat(), "machine": platform.node(), "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "mix": {k.name: {"weight": k.weight, "expected": k.expected,
                         "request": k.request.decode()} for k in MIX},
        **result,
    }, indent=2), encoding="utf-8")
    print(f"\nresults: {out}")
    failed = result["accounting"]["lost"] or not result["verify"]["intact"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
