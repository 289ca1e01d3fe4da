"""Egress benchmark: what tollgate's egress proxy adds to Envoy's forward proxy alone, per
CONNECT, per plain HTTP request and to a tunnel's throughput, in one run.

Run from the repository root: `python -m bench.egress [--rounds R] [--connects N]
[--requests N] [--megabytes M] [--json-out PATH]`; `--smoke` is the few seconds
tests/bench/test_egress_smoke.py runs.

Two destinations on 127.0.0.1, in a process of their own: an HTTP/1.1 server answering
every request with 3 bytes on keep-alive connections, and a raw TCP source that reads a
size, writes that many bytes as fast as it can and closes. They are reached four ways:

    direct         client ─► destination (the reference: a TCP connect for a CONNECT,
                   an origin-form GET, the download on a plain socket)
    envoy          client ─► Envoy's egress listener as its dynamic forward proxy alone
                   (envoy_bootstrap.egress_alone: no ext_proc, no pin) ─► destination
    tollgate       client ─► envoy/quickstart.yaml's egress listener ─ext_proc─►
                   tollgate (the agent's proxy token verified, the destination decided by
                   the default pack with lists allowing exactly these destinations, the
                   address pinned, every exchange recorded and its span exported to an
                   OTLP receiver, each tunnel's end recorded from Envoy's access log)
                   ─► destination
    tollgate-name  the same gateway, the destinations by a name only the benchmark's DNS
                   server knows (tollgate asks it; its answer is cached for the run, so
                   this is the cost of a cached name over an IP literal)

The other paths name destinations by IP literal (127.0.0.1:PORT): Envoy alone then asks
no DNS, and tollgate resolves nothing, so the difference is the gateway's own work.

Measured, each round every path in a rotating order (a shared machine's drift falls on
all alike), a path's figure the median of its rounds:
    connect   a new connection to the proxy each, then the time from sending `CONNECT`
              to reading the `200` (Envoy answers once it has connected to the
              destination); `--connects` sequential ones; p50 and p99
    http      `GET http://127.0.0.1:PORT/` in absolute form on one keep-alive connection
              to the proxy, `--requests` sequential ones; p50 and p99
    download  MB/s (10^6 bytes) of `--megabytes` through one CONNECT, from asking the
              source to its last byte (direct, envoy, tollgate)
The client is this process, on raw sockets, at a higher priority where it may (as
bench/load.py's generator), so it reads each answer when it comes.
The CPU of Envoy and of tollgate (its processes and their children, /proc) over each
measurement, per operation; after a tollgate measurement the benchmark waits for the
tunnels' access log entries to reach tollgate and for its CPU to settle, so a record
written after the last answer is counted too.

Every answer is checked: a CONNECT or request not answered 200, a download short of its
size, an answer through tollgate without its trace id (or one through Envoy alone with
it) stops the benchmark.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import functools
import json
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

from bench.load import cpu_seconds, percentile, prioritise, recorded_config
from extproc import envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.config import load as load_config
from extproc.quickstart import dev_tokens, stack
from tests.standins.otlp_receiver import OtlpReceiver
from tests.support.dns import DnsServer
from tests.support.packs import pack_with_egress

PATHS = ("direct", "envoy", "tollgate", "tollgate-name")
DOWNLOAD_PATHS = ("direct", "envoy", "tollgate")
MEASURES = ("connect", "http", "download")
NAME = "bench.test"  # the destinations' name in the benchmark's DNS server
TRACE_HEADER = b"x-tollgate-trace-id:"
# Envoy's counter of access log entries sent over gRPC (tollgate's tunnel records).
ALS_WRITTEN = "access_logs.grpc_access_log.logs_written"
CHUNK = 1 << 20
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n"
TIMEOUT = 30.0
# tollgate has settled once its CPU time has not moved for this long (/proc counts ticks).
SETTLED_SECONDS = 0.3


# ---- The destinations and the OTLP receiver: processes of their own ----------------------


def _read_head(sock: socket.socket, pending: bytearray) -> bytes | None:
    """Bytes up to the end of an HTTP head (taken out of `pending`); None at EOF first."""
    while (end := pending.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        pending += chunk
    head = bytes(pending[:end])
    del pending[:end + 4]
    return head


def _serve_http(sock: socket.socket) -> None:
    """Answer each request of a keep-alive connection (GETs: no body) until it closes."""
    pending = bytearray()
    with sock, contextlib.suppress(OSError):
        while _read_head(sock, pending) is not None:
            sock.sendall(ANSWER)


def _serve_source(sock: socket.socket) -> None:
    """Read a size (a decimal line), write that many bytes, close; EOF first: close."""
    block = memoryview(bytes(CHUNK))
    with sock, contextlib.suppress(OSError):
        line = b""
        while not line.endswith(b"\n"):
            chunk = sock.recv(64)
            if not chunk:
                return
            line += chunk
        remaining = int(line)
        while remaining > 0:
            sent = sock.send(block[:min(remaining, CHUNK)])
            remaining -= sent
        sock.shutdown(socket.SHUT_WR)


def _listen(serve: Callable[[socket.socket], None]) -> int:
    """A listening socket on a free port of 127.0.0.1, a thread per connection."""
    server = socket.create_server(("127.0.0.1", 0), backlog=512)

    def accept() -> None:
        while True:
            sock, _ = server.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve, args=(sock,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return int(server.getsockname()[1])


def destinations(pipe: Connection) -> None:
    """The child process of the destinations and the DNS server: sends their ports, then
    answers "queries" (how many questions for NAME the DNS server got) until told to stop
    or the parent goes."""
    with DnsServer({NAME: ["127.0.0.1"]}, ttl=3600) as dns:
        pipe.send({"http": _listen(_serve_http), "source": _listen(_serve_source),
                   "dns": dns.address})
        with contextlib.suppress(EOFError):
            while pipe.recv() == "queries":
                pipe.send(sum(1 for name, _ in dns.queries if name == NAME))


def otlp(pipe: Connection) -> None:
    """The child process of the OTLP receiver tollgate exports its spans to: out of the
    client's process, whose timings its work would blur."""
    with OtlpReceiver() as receiver:
        pipe.send(receiver.endpoint)
        with contextlib.suppress(EOFError):
            pipe.recv()


@contextlib.contextmanager
def child(run: Callable[[Connection], None]) -> Iterator[tuple[Connection, Any]]:
    """`run` in a spawned process: the pipe to it and the first thing it sent."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=run, args=(theirs,),
                                                           daemon=True)
    process.start()
    try:
        if not ours.poll(TIMEOUT):
            raise SystemExit(f"bench.egress: {run.__name__} did not start")
        yield ours, ours.recv()
    finally:
        with contextlib.suppress(OSError):
            ours.send("stop")
        ours.close()
        process.join(10)
        if process.is_alive():
            process.kill()


# ---- The gateways ---------------------------------------------------------------------------


@dataclass
class Proxy:
    """One Envoy's egress listener, and the processes behind it (role -> process)."""

    port: int
    admin: int  # Envoy's admin port
    processes: dict[str, stack.Process]
    tunnels: int = 0  # CONNECTs it answered 200 so far (entries of its access log)


@dataclass(frozen=True)
class Way:
    """How the client reaches the destinations on one path."""

    host: str  # how destinations are named: "127.0.0.1" or NAME
    proxy: Proxy | None = None  # None: direct
    authorization: bytes = b""  # the Proxy-Authorization header line

    @property
    def processes(self) -> dict[str, stack.Process]:
        return self.proxy.processes if self.proxy is not None else {}


def _ports() -> envoy_bootstrap.Ports:
    return envoy_bootstrap.Ports(
        listener=stack.free_port(), admin=stack.free_port(), ext_proc=stack.free_port(),
        upstream=stack.free_port(), mcp=stack.free_port(), egress=stack.free_port())


def tollgate_config(grpc_port: int, bootstrap: Path, pack: Path, nameserver: str,
                    otlp_endpoint: str, work: Path) -> dict[str, Any]:
    """One worker (the calls are sequential), the record in SQLite, spans exported, and
    the quickstart's own egress target asking the benchmark's DNS server, whose answer
    it keeps for the run."""
    quickstart = yaml.safe_load(QUICKSTART_CONFIG.read_text(encoding="utf-8"))
    (egress,) = [t for t in quickstart["targets"] if t.get("protocol") == "egress"]
    egress["egress"] = {**egress.get("egress", {}), "nameservers": [nameserver],
                        "dns_cache_seconds": 3600}
    return {
        **recorded_config(grpc_port, 1, bootstrap, otlp_endpoint, work, pack),
        "targets": [egress],
    }


def lists(ports: list[int]) -> dict[str, Any]:
    """The default pack's egress lists, allowing agents exactly the destinations (an
    internal address passes only when an entry names it exactly)."""
    allowed = [f"{host}:{port}" for host in ("127.0.0.1", NAME) for port in ports]
    return {"groups": {"agents": {"allow": allowed, "hold": [], "first_seen": "alert"}},
            "approvers": ["group:security"], "hold_seconds": 300}


def start(work: Path, cleanup: contextlib.ExitStack, found: dict[str, Any],
          otlp_endpoint: str, token: str) -> dict[str, Way]:
    """Envoy alone and Envoy with tollgate: each path's way to the destinations."""

    def stopped_on_exit(process: stack.Process) -> stack.Process:
        cleanup.callback(process.stop)
        return process

    ways = {"direct": Way("127.0.0.1")}
    alone, gateway = _ports(), _ports()
    for path, ports in (("envoy", alone), ("tollgate", gateway)):
        logs = work / path
        logs.mkdir()
        bootstrap = envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports)
        if path == "envoy":
            bootstrap = envoy_bootstrap.egress_alone(envoy_bootstrap.without_ext_proc(bootstrap))
        bootstrap_path = envoy_bootstrap.write(bootstrap, logs / "envoy.yaml")
        processes = {}
        if path == "tollgate":
            pack = pack_with_egress(logs / "policies", lists([found["http"], found["source"]]))
            config = logs / "tollgate.yaml"
            config.write_text(yaml.safe_dump(tollgate_config(
                ports.ext_proc, bootstrap_path, pack, found["dns"], otlp_endpoint, logs)),
                encoding="utf-8")
            processes["tollgate"] = stopped_on_exit(
                stack.start_tollgate(config, ports.ext_proc, logs))
        processes["envoy"] = stopped_on_exit(
            stack.start_envoy(bootstrap_path, ports.admin, logs))
        credentials = base64.b64encode(f"agent:{token}".encode()).decode()
        assert ports.egress is not None
        ways[path] = Way("127.0.0.1", Proxy(ports.egress, ports.admin, processes),
                         f"proxy-authorization: Basic {credentials}\r\n".encode())
    ways["tollgate-name"] = dataclasses.replace(ways["tollgate"], host=NAME)
    return ways


# ---- The client --------------------------------------------------------------------------


class Failed(Exception):
    """An answer that was not what the path should give (the message says what)."""


def _connection(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _check(path: str, head: bytes | None, what: str) -> None:
    """The head of an answer: 200, with tollgate's trace id exactly on tollgate's paths."""
    if head is None:
        raise Failed(f"{path}: {what}: the connection closed before an answer")
    if not head.startswith(b"HTTP/1.1 200"):
        raise Failed(f"{path}: {what}: {head.decode(errors='replace')}")
    traced = TRACE_HEADER in head.lower()
    if traced != path.startswith("tollgate"):
        raise Failed(f"{path}: {what}: {'a' if traced else 'no'} tollgate trace id in "
                     f"{head.decode(errors='replace')}")


def _tunnel(path: str, way: Way, port: int) -> tuple[socket.socket, float]:
    """A connection to `port` (through the proxy: a CONNECT answered 200) and the ms from
    sending the CONNECT to its answer (direct: the TCP connect's)."""
    if way.proxy is None:
        start = time.perf_counter_ns()
        sock = _connection(port)
        return sock, (time.perf_counter_ns() - start) / 1e6
    sock = _connection(way.proxy.port)
    authority = f"{way.host}:{port}".encode()
    request = (b"CONNECT " + authority + b" HTTP/1.1\r\nhost: " + authority + b"\r\n"
               + way.authorization + b"\r\n")
    try:
        start = time.perf_counter_ns()
        sock.sendall(request)
        head = _read_head(sock, bytearray())
        elapsed = (time.perf_counter_ns() - start) / 1e6
        _check(path, head, f"CONNECT {authority.decode()}")
    except BaseException:
        sock.close()
        raise
    way.proxy.tunnels += 1
    return sock, elapsed


def connects(path: str, way: Way, port: int, count: int) -> list[float]:
    """`count` CONNECTs, each on a new connection, closed once answered: ms each."""
    timings = []
    for _ in range(count):
        sock, elapsed = _tunnel(path, way, port)
        sock.close()
        timings.append(elapsed)
    return timings


def requests(path: str, way: Way, port: int, count: int) -> list[float]:
    """`count` GETs on one keep-alive connection (absolute form through the proxy): ms
    from sending each to the end of its answer."""
    target = f"http://{way.host}:{port}/" if way.proxy is not None else "/"
    request = (f"GET {target} HTTP/1.1\r\nhost: {way.host}:{port}\r\n".encode()
               + way.authorization + b"\r\n")
    timings = []
    with _connection(way.proxy.port if way.proxy is not None else port) as sock:
        pending = bytearray()
        for _ in range(count):
            start = time.perf_counter_ns()
            sock.sendall(request)
            head = _read_head(sock, pending)
            _check(path, head, f"GET {target}")
            assert head is not None
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(pending) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    raise Failed(f"{path}: GET {target}: the answer was cut short")
                pending += chunk
            del pending[:length]
            timings.append((time.perf_counter_ns() - start) / 1e6)
    return timings


def download(path: str, way: Way, port: int, size: int) -> float:
    """`size` bytes from the source through one tunnel: MB/s from asking to the last byte
    (not to the close: Envoy closes the client's side only after its delayed_close_timeout,
    a second, unless the client closes first)."""
    sock, _ = _tunnel(path, way, port)
    buffer = bytearray(CHUNK)
    received = 0
    with sock:
        start = time.perf_counter_ns()
        sock.sendall(b"%d\n" % size)
        while received < size and (count := sock.recv_into(buffer)):
            received += count
        elapsed = (time.perf_counter_ns() - start) / 1e9
    if received != size:
        raise Failed(f"{path}: download: {received} bytes of {size}")
    return size / elapsed / 1e6


# ---- Measuring -----------------------------------------------------------------------------


def _stat(admin: int, name: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=^{name}$",
                                timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
    return 0


def settle(way: Way) -> None:
    """Wait until Envoy has sent tollgate every tunnel's access log entry and tollgate's
    CPU has stopped moving (its record written): what it does after the answers counts."""
    proxy = way.proxy
    if proxy is None or "tollgate" not in proxy.processes:
        return
    stack.wait_until(lambda: _stat(proxy.admin, ALS_WRITTEN) >= proxy.tunnels, TIMEOUT,
                     f"{proxy.tunnels} tunnel access log entries sent to tollgate")
    pid = proxy.processes["tollgate"].pid
    last = [cpu_seconds(pid), time.monotonic()]  # the CPU, and since when it is that

    def still() -> bool:
        now, cpu = time.monotonic(), cpu_seconds(pid)
        if cpu != last[0]:
            last[:] = [cpu, now]
        return now - last[1] >= SETTLED_SECONDS

    with contextlib.suppress(stack.StackError):  # never still: count what was seen
        stack.wait_until(still, 5, "tollgate's CPU to settle")


def measured(way: Way, run: Callable[[], list[float] | float]) -> dict[str, Any]:
    """One measurement of one path: what `run` returns, and each process's CPU seconds
    over it (and over what tollgate did after it)."""
    before = {role: cpu_seconds(p.pid) for role, p in way.processes.items()}
    result = run()
    settle(way)
    return {"result": result, "cpu_seconds": {role: cpu_seconds(p.pid) - before[role]
                                              for role, p in way.processes.items()}}


def rounds(ways: dict[str, Way], found: dict[str, Any],
           args: argparse.Namespace) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Warm every path up, then `args.rounds` rounds of every measurement on every path
    (a rotating order); each round's figures."""
    size = args.megabytes * 10**6
    jobs: dict[str, tuple[tuple[str, ...], Callable[[str, Way], list[float] | float]]] = {
        "connect": (PATHS, lambda p, w: connects(p, w, found["source"], args.connects)),
        "http": (PATHS, lambda p, w: requests(p, w, found["http"], args.requests)),
        "download": (DOWNLOAD_PATHS, lambda p, w: download(p, w, found["source"], size)),
    }
    for path, way in ways.items():  # warm-up: every path answers before anything is timed
        connects(path, way, found["source"], args.warmup)
        requests(path, way, found["http"], args.warmup)
        if path in DOWNLOAD_PATHS:
            download(path, way, found["source"], CHUNK)
        settle(way)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        m: {p: [] for p in paths} for m, (paths, _) in jobs.items()}
    for round_ in range(args.rounds):
        for measure, (paths, run) in jobs.items():
            order = paths[round_ % len(paths):] + paths[:round_ % len(paths)]
            for path in order:
                results[measure][path].append(measured(
                    ways[path], functools.partial(run, path, ways[path])))
        print(f"  round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return results


# ---- Figures and table -----------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def figures(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per measurement and path: the median over rounds of each round's p50 and p99 (or
    MB/s), and each process's CPU per operation over all rounds (/proc counts 10 ms
    ticks: one round's is too coarse); then what tollgate adds."""
    found: dict[str, Any] = {}
    for measure, by_path in results.items():
        rows = found[measure] = {}
        for path, runs in by_path.items():
            row: dict[str, Any] = {"rounds": len(runs)}
            if measure == "download":
                row["mb_per_s"] = _median([r["result"] for r in runs])
                operations = len(runs)
            else:
                operations = row["operations"] = sum(len(r["result"]) for r in runs)
                for q in (50, 99):
                    row[f"p{q}_ms"] = _median([percentile(r["result"], q) for r in runs])
            row["cpu_us"] = {role: sum(r["cpu_seconds"][role] for r in runs) / operations * 1e6
                             for role in (runs[0]["cpu_seconds"] if runs else {})}
            rows[path] = row
    added = {}
    for measure in ("connect", "http"):
        rows = found[measure]
        added[measure] = {
            f"{path} - {base}": {f"p{q}": rows[path][f"p{q}_ms"] - rows[base][f"p{q}_ms"]
                                 for q in (50, 99)}
            for path, base in (("envoy", "direct"), ("tollgate", "direct"),
                               ("tollgate", "envoy"), ("tollgate-name", "tollgate"))}
    speed = {p: found["download"][p]["mb_per_s"] for p in DOWNLOAD_PATHS}
    return {**found, "added_ms": added,
            "download_ratio": {"envoy/direct": speed["envoy"] / speed["direct"],
                               "tollgate/direct": speed["tollgate"] / speed["direct"],
                               "tollgate/envoy": speed["tollgate"] / speed["envoy"]},
            "latency_ratio": {f"{m} p50 tollgate/envoy": found[m]["tollgate"]["p50_ms"]
                              / found[m]["envoy"]["p50_ms"] for m in ("connect", "http")}}


def _cpu(row: dict[str, Any], role: str) -> str:
    value = row["cpu_us"].get(role)
    return "-" if value is None else f"{value:.0f}"


def table(found: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"egress proxy, {args.rounds} rounds (median of the rounds' figures): per round "
             f"and path {args.connects} CONNECTs (a new connection each), {args.requests} "
             f"GETs (one keep-alive connection), one {args.megabytes} MB download"]
    titles = {"connect": "CONNECT to 200 (direct: TCP connect)",
              "http": "GET http://HOST:PORT/ in absolute form (direct: GET /)"}
    for measure, title in titles.items():
        rows = found[measure]
        lines += ["", title,
                  f"{'path':14s}{'p50 ms':>8s}{'p99 ms':>8s}{'+p50 vs envoy':>15s}"
                  f"{'envoy CPU µs':>14s}{'tollgate CPU µs':>17s}"]
        for path, row in rows.items():
            plus = ("-" if path in ("direct", "envoy")
                    else f"{row['p50_ms'] - rows['envoy']['p50_ms']:+.3f}")
            lines.append(f"{path:14s}{row['p50_ms']:8.3f}{row['p99_ms']:8.3f}{plus:>15s}"
                         f"{_cpu(row, 'envoy'):>14s}{_cpu(row, 'tollgate'):>17s}")
    rows = found["download"]
    lines += ["", f"download through one tunnel ({args.megabytes} MB from a raw TCP source)",
              f"{'path':14s}{'MB/s':>8s}{'x direct':>10s}{'envoy CPU µs':>14s}"
              f"{'tollgate CPU µs':>17s}"]
    for path, row in rows.items():
        lines.append(f"{path:14s}{row['mb_per_s']:8.0f}"
                     f"{row['mb_per_s'] / rows['direct']['mb_per_s']:10.2f}"
                     f"{_cpu(row, 'envoy'):>14s}{_cpu(row, 'tollgate'):>17s}")
    added, ratio = found["added_ms"], found["download_ratio"]
    lines += ["", "tollgate adds over Envoy alone: "
              f"{added['connect']['tollgate - envoy']['p50']:.2f} ms p50 / "
              f"{added['connect']['tollgate - envoy']['p99']:.2f} ms p99 per CONNECT, "
              f"{added['http']['tollgate - envoy']['p50']:.2f} ms p50 / "
              f"{added['http']['tollgate - envoy']['p99']:.2f} ms p99 per GET; "
              f"tunnel throughput x{ratio['tollgate/envoy']:.2f}",
              "a cached name over an IP literal: "
              f"{added['connect']['tollgate-name - tollgate']['p50']:+.3f} ms p50 per CONNECT, "
              f"{added['http']['tollgate-name - tollgate']['p50']:+.3f} ms p50 per GET",
              "CPU µs: per CONNECT, GET or download; tollgate's includes its record and its "
              "span export"]
    return "\n".join(lines)


# ---- Orchestration ---------------------------------------------------------------------------

DEFAULTS = {"rounds": 5, "connects": 300, "requests": 500, "megabytes": 256, "warmup": 20}
SMOKE = {"rounds": 2, "connects": 10, "requests": 10, "megabytes": 4, "warmup": 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.egress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, help_ in (("rounds", "rounds, each every measurement on every path"),
                        ("connects", "CONNECTs per path and round"),
                        ("requests", "GETs per path and round"),
                        ("megabytes", "the download's size (10^6 bytes)"),
                        ("warmup", "untimed CONNECTs and GETs per path first")):
        parser.add_argument(f"--{name}", type=int,
                            help=f"{help_} (default {DEFAULTS[name]}; --smoke {SMOKE[name]})")
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds: that every path works (the smoke test's)")
    parser.add_argument("--json-out", type=Path, help="also save the figures as JSON here")
    args = parser.parse_args(argv)
    for name, value in (SMOKE if args.smoke else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if min(args.rounds, args.connects, args.requests, args.megabytes) < 1 or args.warmup < 0:
        parser.error("counts must be >= 1 (--warmup >= 0)")
    settings = {k: getattr(args, k) for k in (*DEFAULTS, "smoke")}

    token = dev_tokens.mint(load_config(QUICKSTART_CONFIG), "svc-bench", ["agents"], 4 * 3600)
    started, load_at_start = datetime.now(UTC), os.getloadavg()[0]
    # The directory outlives the processes: tollgate writes its last anchor as it stops.
    with (tempfile.TemporaryDirectory(prefix="tollgate-bench-egress-") as work,
          contextlib.ExitStack() as cleanup):
        places, found = cleanup.enter_context(child(destinations))
        _, otlp_endpoint = cleanup.enter_context(child(otlp))
        ways = start(Path(work), cleanup, found, otlp_endpoint, token)
        prioritise()
        try:
            results = rounds(ways, found, args)
        except (Failed, OSError) as exc:
            raise SystemExit(f"bench.egress: {exc}") from None
        places.send("queries")
        dns_queries = places.recv()
    if not dns_queries:
        raise SystemExit(f"bench.egress: nobody asked the DNS server for {NAME}")
    found_figures = figures(results)
    report = {
        "benchmark": "egress", "when": started.isoformat(timespec="seconds"),
        "machine": {"node": platform.node(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "load_at_start": load_at_start,
                    "load_at_end": os.getloadavg()[0]},
        "settings": settings, **found_figures,
        # Every CONNECT and GET was answered 200 (else the run stopped), with tollgate's
        # trace id on tollgate's paths only; the name was asked of the DNS server.
        "checks": {"answered_200": {m: {p: r.get("operations", r["rounds"])
                                        for p, r in found_figures[m].items()}
                                    for m in MEASURES},
                   "dns_queries_for_name": dns_queries},
    }
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(table(found_figures, args))
    print(f"machine: {os.cpu_count()} cores, load average {load_at_start:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
