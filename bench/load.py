"""Load benchmark: what tollgate adds to Envoy, as ratios against Envoy alone in the same run.

Run from the repository root: `python -m bench.load` (`make bench` does).

Absolute figures drift on these shared 2-core machines, so every set-up runs in
one invocation against the same upstream, and each is compared with Envoy alone
carrying the same request (docs/architecture.md, "Performance budget"):

    direct            client ─► demo upstream
    envoy             client ─► Envoy ─► upstream                      (the baseline)
    passthrough-headers  client ─► Envoy ─ext_proc─► a do-nothing Python ext_proc ─► upstream
    tollgate-headers  client ─► Envoy ─ext_proc─► tollgate, headers-only decision ─► upstream
    envoy-body        Envoy alone with the POST of a 2 KB JSON body    (baseline of the next)
    passthrough-body  the same POST through the do-nothing ext_proc, body included
    tollgate-body     the same POST, tollgate deciding on the body
    passthrough-masked  a GET of a ~2 KB JSON answer through the do-nothing ext_proc asked,
                      as tollgate asks for a target it masks, for the buffered response body
    tollgate-masked   the same GET, its answer read and masked by tollgate (the default
                      pack masks every detector for an agent), against Envoy alone's GET

The do-nothing ext_proc (bench/passthrough_extproc.py) is the floor any Python
ext_proc pays here, asked for the same phases as the tollgate set-up it is
compared with; tollgate exports its spans to a real OTLP receiver, as it would
in production, so its CPU includes the export. The goals of issue 17 (GOALS)
are ratios against these floors, printed MET / NOT MET at the end.

`--workers 1,2` runs tollgate's set-ups with 1 and then 2 ext_proc processes
(listen.workers; Envoy balances them as endpoints); the goals are judged on the
first count, the others add their throughput at max. `--smoke` is the few-second
check CI runs (tests/bench/test_load_smoke.py): max phases of the floors and of
tollgate's set-ups only, ratios only.

Each set-up gets two phases: a fixed rate (open loop: requests leave on a fixed
timetable and latency counts from the scheduled send, so a stall cannot hide by
delaying the requests behind it) and maximum throughput (closed loop, keep-alive
connections). CPU per request comes from /proc/PID/stat of each process and
all its descendants (tollgate's workers and recorder processes).

How it scales beyond this machine: each tollgate worker is a process of its own (its
gRPC server, policy engine, recorder and writer process), sharing only the store, which
takes one transaction per writer every 50 ms, and the approvals wake-up; Envoy balances
the workers as endpoints, round robin. So throughput at max grows by about the
one-worker figure per core given to a worker, until Envoy (one worker thread here, as
in the quickstart: `--envoy-threads`) or the store is the limit. On these 2-core
machines Envoy, the load generator, the upstream and tollgate's processes already share
both cores, so `--workers 1,2` shows the machine's limit, not the design's; where cores
are spare, `--workers 1,2,4 --envoy-threads 2` shows the slope.

The load generator is its own process: threads on raw keep-alive HTTP/1.1
sockets, because a blocking sleep wakes within ~0.1 ms of its due time where an
event loop's timers round to 1 ms. It reports its own CPU, since it shares the
two cores with what it measures.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import itertools
import json
import multiprocessing
import os
import platform
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.ledger import Ledger, kept_in
from bench.ledger import median as ledger_median
from bench.ledger import settle as ledger_settle
from bench.ledger import table as ledger_table
from bench.passthrough_extproc import read_count
from extproc import config, envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import dev_tokens, stack
from tests.standins.otlp_receiver import OtlpReceiver
from tests.support.packs import pack_with_limits

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
TICK_SECONDS = 1 / os.sysconf("SC_CLK_TCK")
TRACE_ID = re.compile(rb"\r\nx-tollgate-trace-id: [0-9a-f]{32}\r\n", re.IGNORECASE)
CHUNKED = re.compile(rb"\r\ntransfer-encoding: *chunked", re.IGNORECASE)
GENERATOR = "generator"
EXT_PROC = "ext_proc"  # the role of tollgate, or of the do-nothing ext_proc, in CPU figures
GENERATOR_NICE = -10


# Every set-up's Envoy verifies the agent's token (jwt_authn), Envoy alone included: what
# tollgate adds is measured against a gateway that checks tokens too.
TOKEN = dev_tokens.mint(config.load(QUICKSTART_CONFIG), "svc-bench", ["agents"], 4 * 3600)


def http_request(method: str, path: str, body: bytes = b"", token: str = TOKEN) -> bytes:
    """One raw HTTP/1.1 keep-alive request, built once and sent as is (`token`: another
    gateway's key, for bench/peers.py)."""
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n"
    if body:
        head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return f"{head}\r\n".encode() + body


# What an agent asks a database: parsed by the SQL interpreter on every request (the
# same text each time, as an agent repeating a query sends it; the parse cache serves it).
SQL = "SELECT id, name, email FROM customers WHERE id > 0 ORDER BY name LIMIT 10"


def sql_body(size: int = 2048) -> bytes:
    """A JSON body of exactly `size` bytes whose SQL the demo upstream runs on SQLite."""
    empty = json.dumps({"sql": SQL, "pad": ""}).encode()
    return json.dumps({"sql": SQL, "pad": "x" * (size - len(empty))}).encode()


# The GET answers ~1 KB of JSON: the same bytes whichever way it travels.
GET = http_request("GET", "/api/customers")
# The same records twice (~2 KB of JSON), through the route of a target whose answers
# tollgate reads and masks.
MASKED_GET = http_request("GET", "/masked/api/customers?repeat=2")
POST = http_request("POST", "/sql", sql_body())


@dataclass(frozen=True)
class SetUp:
    name: str
    stack: str  # which processes serve it: "upstream", "envoy", "passthrough",
    # PASSTHROUGH_RESPONSE or "tollgate" (with each worker count: tollgate_stack)
    request: bytes
    baseline: str  # the Envoy-alone set-up it is compared with


# The do-nothing ext_proc asked for the buffered response body, as tollgate is for `masked`.
PASSTHROUGH_RESPONSE = "passthrough-response"
SETUPS = {
    s.name: s
    for s in (
        SetUp("direct", "upstream", GET, "envoy"),
        SetUp("envoy", "envoy", GET, "envoy"),
        SetUp("passthrough-headers", "passthrough", GET, "envoy"),
        SetUp("tollgate-headers", "tollgate", GET, "envoy"),
        SetUp("envoy-body", "envoy", POST, "envoy-body"),
        SetUp("passthrough-body", "passthrough", POST, "envoy-body"),
        SetUp("tollgate-body", "tollgate", POST, "envoy-body"),
        SetUp("passthrough-masked", PASSTHROUGH_RESPONSE, MASKED_GET, "envoy"),
        SetUp("tollgate-masked", "tollgate", MASKED_GET, "envoy"),
    )
}


@dataclass(frozen=True)
class Goal:
    """One line of issue 17's goals: tollgate against the floor of the same phases."""

    setup: str
    floor: str
    title: str
    throughput: float  # tollgate's max req/s at least this times the floor's
    cpu: float  # tollgate's CPU per request at max at most this times the floor's
    added_p99_ms: float  # at the fixed rate, over Envoy alone carrying the same request


GOALS = (
    Goal("tollgate-headers", "passthrough-headers", "headers-only decision", 0.85, 1.25, 5),
    Goal("tollgate-body", "passthrough-body", "2 KB body, SQL parsed", 0.75, 1.5, 8),
    Goal("tollgate-masked", "passthrough-masked", "masked 2 KB JSON answer", 0.6, 2, 10),
)


# ---- The load generator: runs in its own process --------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One measurement the generator makes: a warm-up, then the measured window."""

    port: int
    request: bytes
    connections: int
    warmup: float
    seconds: float
    rate: float | None  # requests per second on a timetable, or None for as fast as possible
    pids: dict[str, int]  # processes whose CPU to account, by role


@dataclass(frozen=True)
class Measured:
    """What one phase measured, window only; latencies in ms, CPU in seconds by role."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    send_lag_ms: list[float]  # how late each request left: all connections busy, or no core
    cpu_seconds: dict[str, float]
    # tollgate's cost ledger over the phase, warm-up included (bench/ledger.py).
    ledger: Ledger | None = None

    @staticmethod
    def pooled(rounds: list[Measured]) -> Measured:
        """Several rounds of one phase as one window: set-ups measured in turn, round after
        round, see the same drift of a shared machine's load."""
        return Measured(
            requests=sum(m.requests for m in rounds), errors=sum(m.errors for m in rounds),
            seconds=sum(m.seconds for m in rounds),
            latencies_ms=[v for m in rounds for v in m.latencies_ms],
            send_lag_ms=[v for m in rounds for v in m.send_lag_ms],
            cpu_seconds={role: sum(m.cpu_seconds[role] for m in rounds)
                         for role in rounds[0].cpu_seconds},
            ledger=ledger_median([m.ledger for m in rounds if m.ledger is not None]
                                 ) if rounds[0].ledger is not None else None,
        )


class Connection:
    """A keep-alive HTTP/1.1 client connection that reads responses by content-length."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._sock: socket.socket | None = None
        self._buffer = b""

    def exchange(self, request: bytes) -> bytes:
        """Send `request` and return the response head (the body is read and dropped)."""
        if self._sock is None:
            self._sock = socket.create_connection(("127.0.0.1", self._port), timeout=10)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer = b""
        try:
            self._sock.sendall(request)
            while (end := self._buffer.find(b"\r\n\r\n")) < 0:
                self._receive()
            head = self._buffer[:end]
            length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
            if length is not None:
                total = end + 4 + int(length.group(1))
            elif CHUNKED.search(head):
                total = self._chunked_end(end + 4)
            else:
                raise ConnectionError("response without content-length or chunked body")
            while len(self._buffer) < total:
                self._receive()
            self._buffer = self._buffer[total:]
            return head
        except BaseException:
            self.close()
            raise

    def _chunked_end(self, at: int) -> int:
        """Where a chunked body starting at `at` in the buffer ends (trailers not expected:
        the last chunk's blank line ends it), receiving until it is all there."""
        while True:
            while (line := self._buffer.find(b"\r\n", at)) < 0:
                self._receive()
            size = int(self._buffer[at:line].split(b";")[0], 16)
            at = line + 2 + size + 2  # the chunk and its CRLF
            if size == 0:
                return at
            while len(self._buffer) < at:
                self._receive()

    def _receive(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self._buffer += chunk

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def cpu_seconds(pid: int) -> float:
    """The CPU of a process and all its descendants, all threads, from /proc.

    tollgate runs worker and recorder processes (children, grandchildren): each
    live one counts its utime + stime, and cutime + cstime, which hold its
    children that ended and were waited for. (No /proc/PID/task/TID/children
    here: that needs CONFIG_PROC_CHILDREN, so the tree comes from every stat's ppid.)
    """
    stats = stack.process_stats()
    children: dict[int, list[int]] = {}
    for child, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(child)
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        if current in stats:  # else it ended meanwhile
            total += sum(int(f) for f in stats[current][11:15])
            pending += children.get(current, [])
    return total * TICK_SECONDS


# How long tollgate's CPU must stand still before a measurement counts as over.
SETTLED_SECONDS = 0.3


def settle(processes: dict[str, stack.Process]) -> None:
    """Wait until tollgate's CPU (role `tollgate`, if there is one) has stopped moving (its
    record written): what it does after the answers counts."""
    if "tollgate" not in processes:
        return
    pid = processes["tollgate"].pid
    last = [cpu_seconds(pid), time.monotonic()]  # the CPU, and since when it is that

    def still() -> bool:
        now, cpu = time.monotonic(), cpu_seconds(pid)
        if cpu != last[0]:
            last[:] = [cpu, now]
        return now - last[1] >= SETTLED_SECONDS

    with contextlib.suppress(stack.StackError):  # never still: count what was seen
        stack.wait_until(still, 5, "tollgate's CPU to settle")


async def measured(processes: dict[str, stack.Process],
                   job: Awaitable[list[float] | float]) -> dict[str, Any]:
    """One measurement of one path: what `job` gives, and each process's CPU seconds over
    it (and over what tollgate did after it)."""
    before = {role: cpu_seconds(p.pid) for role, p in processes.items()}
    result = await job
    settle(processes)
    return {"result": result, "cpu_seconds": {role: cpu_seconds(p.pid) - before[role]
                                              for role, p in processes.items()}}


def cpu_cell(row: dict[str, Any], key: str, role: str, form: str) -> str:
    """A table's cell: a role's figure, formatted, or - where the path has no such role."""
    value = row[key].get(role)
    return "-" if value is None else format(value, form)


def _sleep_until(deadline_ns: int) -> None:
    if (delay := deadline_ns - time.perf_counter_ns()) > 0:
        time.sleep(delay / 1e9)


class Timetable:
    """When each next request is due: on a fixed schedule, or now (closed loop)."""

    def __init__(self, start_ns: int, end_ns: int, rate: float | None) -> None:
        self._start, self._end = start_ns, end_ns
        self._interval = 1e9 / rate if rate else None
        self._index = itertools.count()  # next() on it is atomic under the GIL

    def next_due(self) -> int | None:
        """Wait until the next request is due and return its due time; None when over."""
        if self._interval is None:
            now = time.perf_counter_ns()
            return now if now < self._end else None
        due = self._start + int(next(self._index) * self._interval)
        if due >= self._end:
            return None
        _sleep_until(due)
        return due


def _send_until_over(
    connection: Connection, request: bytes, timetable: Timetable,
    records: list[tuple[int, int, int, bool]],
) -> None:
    """One connection's loop; records (due, sent, done, ok) per request."""
    while (due := timetable.next_due()) is not None:
        sent = time.perf_counter_ns()
        try:
            ok = connection.exchange(request)[9:10] == b"2"
        except OSError:
            ok = False
        records.append((due, sent, time.perf_counter_ns(), ok))
    connection.close()


def prioritise() -> None:
    """Let the generator preempt what it measures, so that it sends on time (needs root).

    On two shared cores, a generator waiting for a core would add its own delay to
    the latencies of the busiest set-ups; it uses a few % of a core, so the servers
    hardly notice. The threads it starts inherit the priority.
    """
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, GENERATOR_NICE)


def drive(phase: Phase) -> Measured:
    """Run one phase (in the generator process) and measure its window."""
    pids = {**phase.pids, GENERATOR: os.getpid()}
    start = time.perf_counter_ns()
    window_start = start + int(phase.warmup * 1e9)
    end = window_start + int(phase.seconds * 1e9)
    timetable = Timetable(start, end, phase.rate)
    records: list[tuple[int, int, int, bool]] = []
    threads = [
        threading.Thread(
            target=_send_until_over,
            args=(Connection(phase.port), phase.request, timetable, records),
        )
        for _ in range(phase.connections)
    ]
    for thread in threads:
        thread.start()
    _sleep_until(window_start)
    before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    _sleep_until(end)
    after = {role: cpu_seconds(pid) for role, pid in pids.items()}
    for thread in threads:
        thread.join()
    window = [r for r in records if r[0] >= window_start]
    return Measured(
        requests=len(window),
        errors=sum(not ok for *_, ok in window),
        seconds=phase.seconds,
        latencies_ms=[(done - due) / 1e6 for due, _, done, _ in window],
        send_lag_ms=[(sent - due) / 1e6 for due, sent, _, _ in window],
        cpu_seconds={role: after[role] - before[role] for role in pids},
    )


# ---- The processes under test ----------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where a stack takes requests, its processes by role, and for the do-nothing
    ext_proc asked for response bodies, the file where it counts them."""

    port: int
    pids: dict[str, int]
    response_bodies: Path | None = None
    ledger: Path | None = None  # tollgate's cost ledger (bench/ledger.py)


def tollgate_stack(workers: int) -> str:
    """The name of the stack of tollgate with `workers` ext_proc processes."""
    return f"tollgate-{workers}w"


def _stop_on_exit(process: stack.Process, cleanup: contextlib.ExitStack) -> stack.Process:
    cleanup.callback(process.stop)
    return process


def start_stacks(
    kinds: set[str], work: Path, cleanup: contextlib.ExitStack, otlp_endpoint: str,
    envoy_threads: int = 1, activity: bool = True,
) -> dict[str, Endpoint]:
    """Start the upstream and the Envoys (alone, or with an ext_proc) that `kinds` name."""
    upstream_port = stack.free_port()
    upstream = _stop_on_exit(stack.start_upstream(upstream_port, work), cleanup)
    endpoints = {"upstream": Endpoint(upstream_port, {"upstream": upstream.pid})}
    for kind in sorted(kinds - {"upstream"}):
        workers = int(kind.removeprefix("tollgate-").removesuffix("w")) \
            if kind.startswith("tollgate-") else 1
        ports = envoy_bootstrap.Ports(
            listener=stack.free_port(), admin=stack.free_port(),
            ext_proc=stack.free_ports(workers), upstream=upstream_port,
        )
        logs = work / kind
        logs.mkdir()
        bootstrap = envoy_bootstrap.with_routes(
            envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports, workers), [MASKED_ROUTE]
        )
        pids = {"upstream": upstream.pid}
        response_bodies = None
        if kind == "envoy":
            bootstrap = envoy_bootstrap.without_ext_proc(bootstrap)
        elif kind.startswith("tollgate-"):
            tollgate_yaml = logs / "tollgate.yaml"
            tollgate_yaml.write_text(yaml.safe_dump(
                tollgate_config(ports.ext_proc, otlp_endpoint, workers, activity)),
                encoding="utf-8")
            ledger_folder, counting = kept_in(logs)
            tollgate = stack.start_tollgate(tollgate_yaml, ports.ext_proc, logs, workers=workers,
                                            env=counting)
            pids[EXT_PROC] = _stop_on_exit(tollgate, cleanup).pid
        else:
            argv = [sys.executable, str(REPO / "bench" / "passthrough_extproc.py"),
                    "--listen", f"127.0.0.1:{ports.ext_proc}"]
            if kind == PASSTHROUGH_RESPONSE:
                response_bodies = logs / "response-bodies"
                argv += ["--response-body", str(response_bodies)]
            floor = stack.Process.spawn(kind, argv, logs)
            _stop_on_exit(floor, cleanup).ready_or_fail(
                stack.grpc_serving(ports.ext_proc), 20, "gRPC health SERVING"
            )
            pids[EXT_PROC] = floor.pid
        envoy_path = envoy_bootstrap.write(bootstrap, logs / "envoy.yaml")
        envoy = stack.start_envoy(envoy_path, ports.admin, logs, concurrency=envoy_threads)
        pids["envoy"] = _stop_on_exit(envoy, cleanup).pid
        endpoints[kind] = Endpoint(ports.listener, pids, response_bodies,
                                   ledger_folder if kind.startswith("tollgate-") else None)
    return endpoints


MASKED_ROUTE = {"name": "masked", "match": {"prefix": "/masked/"},
                "route": {"cluster": "demo_upstream", "prefix_rewrite": "/"}}


@functools.cache
def bench_pack() -> Path:
    """The default pack, but for the limit on personal values an identity may read an
    hour: the load generator is one identity reading masked customers thousands of
    times a second, which the pack would rightly hold for approval after 500 values."""
    where = Path(tempfile.mkdtemp(prefix="tollgate-bench-pack-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    return pack_with_limits(where / "policies", personal_values_per_hour=10**12,
                            personal_values_per_hour_per_target=10**12,
                            personal_values_per_hour_per_group=10**12)


def recorded_config(grpc_port: int, workers: int, bootstrap: Path, otlp_endpoint: str,
                    work: Path, pack: Path | None = None) -> dict[str, Any]:
    """What a benchmark's tollgate shares with a real one beside its targets: `workers`
    from `grpc_port`, the pack (the default one, its activity limit raised), agents'
    tokens verified with `bootstrap`'s issuer, spans exported, the record in SQLite and
    signed, under `work`."""
    return {
        "listen": {"grpc": f"127.0.0.1:{grpc_port}", "drain_seconds": 5, "workers": workers},
        "policy": {"engine": "embedded", "dir": str(pack or bench_pack())},
        "identity": {"envoy_bootstrap": str(bootstrap)},
        "telemetry": {"service_name": "tollgate-bench", "otlp_endpoint": otlp_endpoint},
        "store": {"url": f"sqlite:///{work / 'record.db'}"},
        "recording": {"signing_key_file": str(work / "signing.key"),
                      "checkpoint_file": str(work / "anchors.jsonl")},
    }


def tollgate_config(grpc_port: int, otlp_endpoint: str, workers: int,
                    activity: bool = True) -> dict[str, Any]:
    """`workers` ext_proc processes from `grpc_port` on, and two targets: `demo` decides
    on requests only, its SQL parsed (its label turns the pack's masking off, so no
    response phase is needed), `masked` reads and masks its answers. `activity`: counted
    for the policy (bench/activity.py compares it off)."""
    return {
        "listen": {"grpc": f"127.0.0.1:{grpc_port}", "drain_seconds": 5, "workers": workers},
        "activity": {"enabled": activity},
        "policy": {"engine": "embedded", "dir": str(bench_pack())},
        "telemetry": {"service_name": "tollgate-bench", "otlp_endpoint": otlp_endpoint},
        "targets": [
            {"name": "demo", "match": {"route": "demo"}, "environment": "bench",
             "protocol": "sql-http", "sql": {"dialect": "postgres"},
             "labels": {"masking": "off"},
             "inspect": {"request_body": True, "response": "none"}},
            {"name": "masked", "match": {"route": "masked"}, "environment": "bench",
             "inspect": {"request_body": True, "response": "body"}},
        ],
    }


def probe(setup: SetUp, endpoint: Endpoint) -> None:
    """One request first: a set-up that does not answer 200 (through tollgate) is not measured."""
    connection = Connection(endpoint.port)
    try:
        head = connection.exchange(setup.request)
    finally:
        connection.close()
    if head[9:12] != b"200":
        raise SystemExit(f"{setup.name}: expected 200, got {head.decode(errors='replace')}")
    if setup.stack == "tollgate" and not TRACE_ID.search(head + b"\r\n"):
        raise SystemExit(f"{setup.name}: no tollgate trace id on the response: {head!r}")


# ---- Figures, table, budget ------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN when there is nothing to rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def figures(measured: Measured) -> dict[str, Any]:
    """The summary of one phase: rate, latency percentiles, CPU µs per request by role."""
    per_request = max(measured.requests, 1)
    cpu_us = {role: s * 1e6 / per_request for role, s in measured.cpu_seconds.items()}
    gateway = [cpu_us[r] for r in ("envoy", EXT_PROC) if r in cpu_us]
    return {
        "requests": measured.requests,
        "errors": measured.errors,
        "rps": measured.requests / measured.seconds,
        "p50_ms": percentile(measured.latencies_ms, 50),
        "p99_ms": percentile(measured.latencies_ms, 99),
        "send_lag_p50_ms": percentile(measured.send_lag_ms, 50),
        "send_lag_p99_ms": percentile(measured.send_lag_ms, 99),
        "cpu_us_per_request": {**cpu_us, "gateway": sum(gateway) if gateway else None},
        "cpu_core_share": {r: s / measured.seconds for r, s in measured.cpu_seconds.items()},
        **({"ledger": measured.ledger.as_json()} if measured.ledger else {}),
    }


def setup_of(label: str) -> SetUp:
    """The set-up a row of results measured: `tollgate-body`, or `tollgate-body@2w`
    (with 2 workers)."""
    return SETUPS[label.partition("@")[0]]


def add_comparisons(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Add each figure's ratio, and the added latency, against the set-up's Envoy-alone run
    (when that ran the same phase: a smoke runs no Envoy alone).

    CPU ratios are all against Envoy alone's own CPU per request: the budget's
    reference machine puts that at ~34 µs, which makes the budget's 250 µs ~7x.
    """
    for name, phases in results.items():
        baseline = setup_of(name).baseline
        for phase, row in phases.items():
            if phase not in results.get(baseline, {}):
                continue
            base = results[baseline][phase]
            envoy_alone = base["cpu_us_per_request"]["envoy"]
            row["vs"] = baseline
            row["added_p50_ms"] = row["p50_ms"] - base["p50_ms"]
            row["added_p99_ms"] = row["p99_ms"] - base["p99_ms"]
            row["ratio"] = {key: row[key] / base[key] for key in ("rps", "p50_ms", "p99_ms")}
            row["ratio"]["cpu_vs_envoy_alone"] = {
                role: row["cpu_us_per_request"][role] / envoy_alone
                for role in (EXT_PROC, "envoy", "gateway")
                if row["cpu_us_per_request"].get(role) is not None
            }


def _cell(value: float | None, digits: int, ratio: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" + (f" ({ratio:.2f}x)" if ratio is not None else "")


COLUMNS = (  # title, width; the first three are left-aligned
    ("set-up", 19), ("load", 5), ("vs", 10), ("req/s", 13), ("p50 ms", 13), ("p99 ms", 14),
    ("+p50", 6), ("+p99", 6), ("err", 3), (EXT_PROC, 13), ("envoy", 12), ("gateway", 13),
    ("upstream", 8), ("gen", 5),
)


def _line(cells: tuple[str, ...]) -> str:
    return " ".join(
        f"{cell:<{width}}" if i < 3 else f"{cell:>{width}}"
        for i, (cell, (_, width)) in enumerate(zip(cells, COLUMNS, strict=True))
    )


def table(results: dict[str, dict[str, dict[str, Any]]], rate: float) -> str:
    """One row per set-up and phase; (Nx) is the ratio against the Envoy-alone set-up in `vs`."""
    lines = [_line(tuple(title for title, _ in COLUMNS))]
    for name, phases in results.items():
        for phase, row in phases.items():
            # A baseline's ratios against itself are all 1: show its figures alone.
            vs = row.get("vs", "-")
            ratio = {} if name == vs else row.get("ratio", {})
            cpu, cpu_ratio = row["cpu_us_per_request"], ratio.get("cpu_vs_envoy_alone", {})
            lines.append(_line((
                name, f"{rate:g}/s" if phase == "fixed_rate" else "max",
                "=" if name == vs else vs,
                _cell(row["rps"], 0, ratio.get("rps")),
                _cell(row["p50_ms"], 2, ratio.get("p50_ms")),
                _cell(row["p99_ms"], 2, ratio.get("p99_ms")),
                _cell(row["added_p50_ms"] if ratio else None, 2),
                _cell(row["added_p99_ms"] if ratio else None, 2),
                str(row["errors"]),
                *(_cell(cpu.get(role), 0, cpu_ratio.get(role))
                  for role in (EXT_PROC, "envoy", "gateway")),
                _cell(cpu["upstream"], 0), _cell(cpu[GENERATOR], 0),
            )))
    return "\n".join(lines)


# The budget (docs/architecture.md) as (set-up, phase, figure, limit); decisions/s is a
# floor, the rest ceilings.
BUDGET = (
    ("tollgate-headers", "fixed_rate", "tollgate CPU µs/request", 250),
    ("tollgate-headers", "max", "tollgate CPU µs/request", 250),
    ("tollgate-headers", "fixed_rate", "added p50 ms", 1.5),
    ("tollgate-headers", "fixed_rate", "added p99 ms", 5),
    ("tollgate-headers", "max", "decisions/s", 3000),
    ("tollgate-masked", "fixed_rate", "tollgate CPU µs/request", 450),
    ("tollgate-masked", "max", "tollgate CPU µs/request", 450),
    ("tollgate-masked", "fixed_rate", "added p50 ms", 2.5),
)
# The budget's reference machine, where the budget's absolute figures were set: a
# do-nothing Python ext_proc costs ~250 µs CPU per request there, and Envoy alone
# answers at p50 ~0.7 ms at 200 req/s.
FLOOR = "passthrough-headers"
REFERENCE_FLOOR_CPU_US = 250.0
REFERENCE_ENVOY_P50_MS = 0.7


def budget(results: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The budget lines the set-ups that ran can check, each with two verdicts.

    `met` holds the absolute figure to the letter. `met_scaled` first scales the
    limit by how this machine compares with the reference one: CPU and rates by the
    do-nothing ext_proc's CPU per request (the same Python and gRPC work, so it
    scales the way tollgate's does), latencies by Envoy alone's p50.
    """
    verdicts = []
    for name, phase, figure, limit in BUDGET:
        if name not in results:
            continue
        row = results[name][phase]
        base = results[SETUPS[name].baseline]["fixed_rate"]
        floor = results[FLOOR][phase]["cpu_us_per_request"][EXT_PROC]
        cpu_scale = floor / REFERENCE_FLOOR_CPU_US
        value, scaled = {
            "tollgate CPU µs/request": (row["cpu_us_per_request"][EXT_PROC], limit * cpu_scale),
            "added p50 ms": (row["added_p50_ms"],
                             limit * base["p50_ms"] / REFERENCE_ENVOY_P50_MS),
            "added p99 ms": (row["added_p99_ms"],
                             limit * base["p50_ms"] / REFERENCE_ENVOY_P50_MS),
            "decisions/s": (row["rps"], limit / cpu_scale),
        }[figure]
        at_least = figure == "decisions/s"
        verdicts.append({
            "setup": name, "phase": phase, "figure": figure, "value": value, "limit": limit,
            "met": value >= limit if at_least else value <= limit,
            "scaled_limit": scaled,
            "met_scaled": value >= scaled if at_least else value <= scaled,
            "op": ">=" if at_least else "<=",
        })
    return verdicts


def goals(results: dict[str, dict[str, dict[str, Any]]],
          workers: list[int]) -> list[dict[str, Any]]:
    """Issue 17's goals for the tollgate set-ups that ran, with `workers[0]` workers: each
    figure with its limit and verdict (None when its phase did not run), and the
    throughput at max with every worker count, as a ratio against the floor too."""
    lines = []
    for goal in GOALS:
        if goal.setup not in results:
            continue
        row, floor = results[goal.setup], results[goal.floor]["max"]
        checks = {
            "throughput at max": (row["max"]["rps"] / floor["rps"], ">=", goal.throughput),
            "CPU per request": (
                row["max"]["cpu_us_per_request"][EXT_PROC]
                / floor["cpu_us_per_request"][EXT_PROC], "<=", goal.cpu),
            "added p99 at the fixed rate": (
                row.get("fixed_rate", {}).get("added_p99_ms"), "<=", goal.added_p99_ms),
        }
        lines.append({
            "goal": goal.title, "setup": goal.setup, "floor": goal.floor,
            "workers": workers[0],
            "checks": {
                figure: {"value": value, "op": op, "limit": limit,
                         "met": None if value is None
                         else value >= limit if op == ">=" else value <= limit}
                for figure, (value, op, limit) in checks.items()
            },
            "throughput_by_workers": {
                n: {"rps": results[label]["max"]["rps"],
                    "vs_floor": results[label]["max"]["rps"] / floor["rps"]}
                for n in workers
                if (label := run_label(goal.setup, n, workers)) in results
            },
        })
    return lines


def goals_table(lines: list[dict[str, Any]], rate: float) -> str:
    """The goals as a table: ratio (or ms) against its limit, MET / NOT MET."""
    verdict = {True: "MET", False: "NOT MET", None: "not run"}
    units = {"throughput at max": "x", "CPU per request": "x", "added p99 at the fixed rate": " ms"}
    out = [f"goals (issue 17): tollgate with {lines[0]['workers']} worker(s) against the "
           "do-nothing ext_proc asked for the same phases (floor); CPU per request at max, "
           f"every process tollgate runs; added p99 at {rate:g} req/s over Envoy alone",
           f"  {'set-up':<25}" + "".join(f"{figure:<32}" for figure in units)]
    for line in lines:
        cells = []
        for figure, check in line["checks"].items():
            value = "-" if check["value"] is None else f"{check['value']:.2f}{units[figure]}"
            cells.append(f"{value} {check['op']} {check['limit']:g}  {verdict[check['met']]}")
        out.append(f"  {line['goal']:<25}" + "".join(f"{cell:<32}" for cell in cells))
    out.append("throughput at max by workers (req/s, and against the floor's):")
    for line in lines:
        out.append(f"  {line['goal']:<25}" + ", ".join(
            f"{n} worker(s) {t['rps']:.0f} ({t['vs_floor']:.2f}x)"
            for n, t in line["throughput_by_workers"].items()))
    return "\n".join(out)


# ---- Orchestration ---------------------------------------------------------------------------


def run_label(name: str, workers: int, counts: list[int]) -> str:
    """A tollgate set-up's row: its name with the first worker count, `name@Nw` with others."""
    return name if workers == counts[0] else f"{name}@{workers}w"


@dataclass(frozen=True)
class Run:
    """One set-up to measure: its row in the results, the stack serving it, its phases."""

    label: str
    setup: SetUp
    stack: str
    phases: tuple[str, ...]


def plan(args: argparse.Namespace) -> list[Run]:
    """What to measure, in order: each tollgate set-up right after its floor (and, in a
    full run, their Envoy-alone baselines), with each worker count; a smoke runs max
    phases only, and other worker counts than the first add their max phase."""
    phases = ("max",) if args.smoke else ("fixed_rate", "max")
    floors = {goal.setup: goal.floor for goal in GOALS}
    wanted = {*args.only, *(floors[n] for n in args.only if n in floors)}
    if not args.smoke:  # baselines, and the do-nothing ext_proc the budget is scaled by
        wanted |= {SETUPS[n].baseline for n in wanted}
        if any(SETUPS[n].stack == "tollgate" for n in wanted):
            wanted.add(FLOOR)
    runs = []
    for name, setup in SETUPS.items():
        if name not in wanted:
            continue
        if setup.stack != "tollgate":
            runs.append(Run(name, setup, setup.stack, phases))
            continue
        runs += [Run(run_label(name, n, args.workers), setup, tollgate_stack(n),
                     phases if n == args.workers[0] else ("max",)) for n in args.workers]
    return runs


def measure(run_: Run, endpoint: Endpoint, phase: str, args: argparse.Namespace,
            generator: ProcessPoolExecutor) -> Measured:
    """One phase of one set-up; the do-nothing ext_proc asked for response bodies must
    have been sent one for each request (else its floor would be the headers' one)."""
    counted = read_count(endpoint.response_bodies) if endpoint.response_bodies else 0
    before = ledger_settle(endpoint.ledger) if endpoint.ledger else None
    measured = generator.submit(drive, Phase(
        endpoint.port, run_.setup.request, args.connections, args.warmup, args.seconds,
        args.rate if phase == "fixed_rate" else None, endpoint.pids,
    )).result()
    if endpoint.ledger and before is not None:
        cpu = measured.cpu_seconds[EXT_PROC] * 1e6 / max(measured.requests, 1)
        measured = replace(measured, ledger=Ledger.between(
            before, ledger_settle(endpoint.ledger), None, cpu))
    if endpoint.response_bodies:
        bodies = read_count(endpoint.response_bodies) - counted
        if not 0 < measured.requests <= bodies:
            raise SystemExit(
                f"{run_.label}: the do-nothing ext_proc was sent {bodies} response bodies "
                f"for {measured.requests} requests: it is not asked for them")
    return measured


def run(args: argparse.Namespace, work: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Start what the planned set-ups need, measure each, stop everything (also on error)."""
    runs = plan(args)
    rounds: dict[str, dict[str, list[Measured]]] = {r.label: {p: [] for p in r.phases}
                                                    for r in runs}
    spawn = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as cleanup:
        generator = cleanup.enter_context(ProcessPoolExecutor(
            1, mp_context=spawn, initializer=prioritise
        ))
        otlp = cleanup.enter_context(OtlpReceiver())
        endpoints = start_stacks({r.stack for r in runs}, work, cleanup, otlp.endpoint,
                                 args.envoy_threads, args.activity == "on")
        for run_ in runs:
            probe(run_.setup, endpoints[run_.stack])
        for round_, run_ in itertools.product(range(args.rounds), runs):
            for phase in run_.phases:
                print(f"  {run_.label}: {phase} (round {round_ + 1}/{args.rounds}) ...",
                      file=sys.stderr, flush=True)
                rounds[run_.label][phase].append(
                    measure(run_, endpoints[run_.stack], phase, args, generator))
    results = {label: {phase: figures(Measured.pooled(measured))
                       for phase, measured in phases.items()}
               for label, phases in rounds.items()}
    add_comparisons(results)
    return results


def report(results: dict[str, dict[str, dict[str, Any]]], verdicts: list[dict[str, Any]],
           goal_lines: list[dict[str, Any]], args: argparse.Namespace, generator: str) -> str:
    """The table, what its columns mean, the reference points, the budget verdicts, and
    the goals last."""
    lines = [
        generator,
        f"each phase: {args.rounds} round(s) of {args.warmup:g} s warm-up, then "
        f"{args.seconds:g} s measured, set-ups in turn; CPU is "
        f"µs per request from /proc/PID/stat ({TICK_SECONDS * 1e3:g} ms ticks)",
        "",
        table(results, args.rate),
        "",
        "(Nx): ratio against the Envoy-alone set-up named in vs (for CPU: against that run's "
        "Envoy CPU);",
        "+p50/+p99: added ms; ext_proc = tollgate or the do-nothing ext_proc; "
        "gateway = envoy + ext_proc; gen = the load generator itself",
    ]
    if not args.smoke:
        lines += [
            "send lag p99 at the fixed rate (sent late: every connection busy, or the "
            "generator waiting for a core):",
            "  " + ", ".join(f"{n} {r['fixed_rate']['send_lag_p99_ms']:.2f} ms"
                             for n, r in results.items() if "fixed_rate" in r),
        ]
    for label, phases in results.items():
        for phase, row in phases.items():
            if "ledger" in row and not args.smoke:
                floor_us = results.get(FLOOR, {}).get(phase, {}).get(
                    "cpu_us_per_request", {}).get(EXT_PROC)
                lines += ["", f"{label} {phase}: "
                          + ledger_table(Ledger(**row["ledger"]), floor_us)]
    if "envoy" in results and FLOOR in results:
        envoy, floor = results["envoy"]["fixed_rate"], results[FLOOR]["fixed_rate"]
        lines.append(
            "the budget's reference machine: Envoy alone ~0.7 ms p50 and ~34 µs CPU per request "
            "at 200 req/s, a do-nothing Python ext_proc ~250 µs CPU per request; here: "
            f"{envoy['p50_ms']:.2f} ms, {envoy['cpu_us_per_request']['envoy']:.0f} µs, "
            f"{floor['cpu_us_per_request'][EXT_PROC]:.0f} µs"
        )
    lines += [
        "",
        "budget: not judged by a smoke" if args.smoke else
        "budget (docs/architecture.md): as written | scaled to this machine (CPU and rates by the "
        "do-nothing ext_proc, latency by Envoy alone)" if verdicts
        else "budget: no tollgate set-up ran",
    ]
    for v in verdicts:
        verdict = {True: "met    ", False: "NOT MET"}
        lines.append(
            f"  {verdict[v['met']]} | {verdict[v['met_scaled']]}  {v['setup']} {v['phase']}: "
            f"{v['figure']} {v['value']:.2f} {v['op']} "
            f"{v['limit']:g} | {v['scaled_limit']:.4g}"
        )
        if v["figure"] == "decisions/s":
            share = results[v["setup"]][v["phase"]]["cpu_core_share"][EXT_PROC]
            lines.append(f"           (tollgate used {share:.0%} of one core meanwhile)")
    if goal_lines:
        lines += ["", goals_table(goal_lines, args.rate)]
    return "\n".join(lines)


# What an option left out is, in a full run and in a smoke (printed by --help).
DEFAULTS = {"seconds": 10.0, "warmup": 2.0, "rounds": 1, "workers": [1, 2],
            "only": list(SETUPS)}
SMOKE_DEFAULTS = {"seconds": 0.6, "warmup": 0.2, "rounds": 3, "workers": [1],
                  "only": [goal.setup for goal in GOALS]}


def worker_counts(text: str) -> list[int]:
    """`N[,M...]`: the worker counts to run tollgate's set-ups with, each >= 1."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1 or len(set(counts)) < len(counts):
        raise argparse.ArgumentTypeError(f"expected distinct counts >= 1 like 1,2, got {text!r}")
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=f"defaults: {DEFAULTS}; with --smoke: {SMOKE_DEFAULTS}")
    parser.add_argument("--rate", type=float, default=200, help="fixed-rate phase, req/s")
    parser.add_argument("--seconds", type=float, help="measured window per phase")
    parser.add_argument("--warmup", type=float, help="unmeasured lead per phase")
    parser.add_argument("--rounds", type=int, help="measure every set-up in turn this many "
                        "times, pooling the rounds (each --seconds long)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument(
        "--only", nargs="+", choices=list(SETUPS),
        help="set-ups to run (the floors and Envoy-alone baselines they compare with are "
        "added; default: all, in a smoke tollgate's)",
    )
    parser.add_argument("--workers", type=worker_counts, metavar="N[,M]",
                        help="tollgate's ext_proc processes (listen.workers), each count in "
                        "turn; the goals are judged on the first")
    parser.add_argument("--envoy-threads", type=int, default=1, metavar="N",
                        help="Envoy's worker threads (--concurrency) in every set-up")
    parser.add_argument("--activity", choices=("on", "off"), default="on",
                        help="tollgate counts activity for the policy (the default)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds: max phases of the floors and tollgate's set-ups, "
                        "ratios only, no results file unless --json-out")
    parser.add_argument("--json-out", type=Path, help="default: bench/results/<timestamp>.json")
    args = parser.parse_args(argv)
    defaults = (SMOKE_DEFAULTS if args.smoke else DEFAULTS).items()
    for key, value in defaults:
        if getattr(args, key) is None:
            setattr(args, key, value)

    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as work:
        results = run(args, Path(work))
    verdicts = [] if args.smoke else budget(results)
    goal_lines = goals(results, args.workers)
    generator = (
        f"load generator: its own process (nice {GENERATOR_NICE} if root), {args.connections} "
        "threads each on one raw keep-alive HTTP/1.1 socket;\n  fixed rate = open loop on a "
        "timetable (latency from the scheduled send), max = closed loop"
    )
    print(report(results, verdicts, goal_lines, args, generator))
    out = args.json_out or (None if args.smoke else RESULTS / f"{started:%Y%m%dT%H%M%SZ}.json")
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "started": started.isoformat(), "machine": platform.node(), "cpus": os.cpu_count(),
        "python": sys.version.split()[0], "generator": generator,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "setups": {n: {**asdict(setup_of(n)), "request": setup_of(n).request.decode()}
                   for n in results},
        "results": results, "budget": verdicts, "goals": goal_lines,
    }, indent=2), encoding="utf-8")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
