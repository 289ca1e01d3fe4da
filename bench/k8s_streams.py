"""Kubernetes stream benchmark: what tollgate's stream front adds to a `kubectl exec`'s
latency and to its output's throughput, against the API server reached directly and
through Envoy alone (the stream passed unread), in one run.

Run from the repository root: `python -m bench.k8s_streams [--rounds R] [--execs N]
[--megabytes M] [--warmup N] [--kubectl K] [--firsts N] [--json-out PATH]`. Not part of CI;
tests/bench/test_k8s_streams_smoke.py runs a few seconds of it.

The API server is the stand-in (tests/standins/k8s_standin.py, in a process of its own)
with `pods=`: an exec runs a real process in the pod's folder. It is reached four ways,
each by a WebSocket client in this process speaking v5.channel.k8s.io (what kubectl 1.31+
speaks; in-process, so that no client's start-up is timed):

    direct    client ─► the stand-in, with the cluster's token
    envoy     client ─► Envoy (the quickstart's listener, ext_proc and jwt_authn removed,
              one plain route to the stand-in: upgrades pass unread) ─► the stand-in,
              with the cluster's token
    tollgate  client ─► Envoy (the quickstart's, a k8s route and the stream route ahead
              of it, envoy_bootstrap.with_stream_front) ─► tollgate's stream front
              (extproc/kube/) ─► the stand-in: an identity of group `sre` (no agent),
              its token verified by the front, the exec decided by the default pack, its
              output masked by the default mask as it streams, recorded, its span exported
              to a real OTLP receiver (in a process of its own); the cluster's token
              injected by tollgate
    unmasked  the same through a second Envoy whose k8s route is a target labelled
              `masking: off` (the pack masks nothing there): reading the stream without
              masking it, so that masking's share shows

One tollgate (one worker) serves both tollgate paths. Each exec is a WebSocket of its own
(as kubectl's), closed by the client once the exit status has come; measured on each path:
    exec      `true`, `--execs` times in sequence: the ms from asking (the connect) to
              the exit status (the Status on channel 3); p50 and p95
    log       `cat` of a `--megabytes` file of a service's log lines (a timestamp, then
              `key=value` pairs) with nothing to mask: the realistic masked path; MB/s
              (10^6 bytes) from asking to the last byte
    zeros     `cat` of a file of as many NUL bytes: the same for bytes that are no text
              (a file, not `head -c N /dev/zero`, which writes 4 KB at a time: the pod's
              messages would then be 4 to 64 KB as the scheduler has it, and the figures
              the stand-in's cost per message)
    first     a command that prints one line (the pod's clock as it writes, spelled in
              letters: nothing to mask), then waits on its stdin for the client:
              `--firsts` times, the ms from the pod writing the line to the client
              reading it (one machine, one clock): how long output waits in the gateway
              when no more follows (tollgate's masker flushes `idle_release_ms`, 50 ms,
              after reading it); p50 and p95
and, once per path after the rounds, `--kubectl` runs of the real `kubectl exec web-1 --
true` (its GET of the pod, then the stream): the median wall time, for context (kubectl's
own start-up is most of it). kubectl sends a token over TLS only, so it reaches the
stand-in's TLS twin (the same pods) directly and each Envoy's TLS listener otherwise
(envoy_bootstrap.with_tls); the timed client goes plain HTTP on every path.
Every round measures every path in a rotating order (a shared machine's drift falls on all
alike); a path's figure is the median of its rounds. Every answer is checked: a Status
other than Success, anything on stderr, or output other than the file's bytes stops the
benchmark. The CPU of Envoy and tollgate (their processes, /proc) over each measurement,
per exec or per MB; after a tollgate measurement the benchmark waits for tollgate's CPU to
settle, so a record written after the last answer is counted too. At the end, the largest
peak resident size among tollgate's processes: whether the output streams through or
piles up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import websockets
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException
from websockets.typing import Subprotocol

from bench.egress import child, otlp
from bench.load import cpu_cell, measured, percentile, prioritise, recorded_config, settle
from bench.ssh import peak_rss_mb
from extproc import envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.codecs import k8s_channels as ch
from extproc.config import load as load_config
from extproc.quickstart import dev_tokens, stack
from tests.standins.k8s_standin import K8sStandIn, Kubectl, write_kubeconfig
from tests.support.tls import TlsFiles, write_tls_files

PATHS = ("direct", "envoy", "tollgate", "unmasked")
MEASURES = ("exec", "log", "zeros", "first")
OUTPUTS = ("log", "zeros")
CLUSTER_TOKEN = "bench-cluster-token-5d1e"  # what the stand-in takes, and tollgate injects
NAMESPACE, POD = "staging", "web-1"
LOG, ZEROS = "app.log", "zeros.bin"
PROTOCOL = ch.EXEC_PROTOCOLS[ch.V5]
# The pod's clock in ns as it writes the line, its digits as the letters a-j (digits could
# be masked: a phone number, a card), then a wait for the client's word.
FIRST = ["sh", "-c", "date +%s%N | tr 0-9 a-j; read go"]
_LETTERS = bytes.maketrans(b"abcdefghij", b"0123456789")
# Each path's Envoy route: its name is the tollgate target's match (x-tollgate-route).
ROUTES = {"envoy": "k8s", "tollgate": "k8s", "unmasked": "k8s-unmasked"}
TIMEOUT = 120.0
# How long the client waits for the close handshake once the exit status has come, before
# it closes TCP itself: as kubectl (gorilla/websocket) does at once. websockets would wait
# for the server to close TCP first, which Envoy holds back for its delayed_close_timeout
# (1 s) waiting for the client to: a second per exec, in no one's figures.
CLOSE_WAIT = 0.01
# tollgate has settled once its CPU time has not moved for this long (/proc counts ticks).


class Failed(Exception):
    """An answer that was not what the path should give (the message says what)."""


@dataclass(frozen=True)
class Way:
    """Where the client reaches the API server on one path (`port`; kubectl on `tls_port`:
    it sends a token over TLS only), with which token, and the processes on the way (role
    -> process)."""

    port: int
    tls_port: int
    token: str
    processes: dict[str, stack.Process] = field(default_factory=dict)


@dataclass(frozen=True)
class Cluster:
    """The stand-in's two listeners on one pods folder, and its TLS files."""

    port: int  # plain HTTP: the benchmark's client, and Envoy's cluster
    tls_port: int  # TLS: kubectl's direct path
    tls: TlsFiles
    pod: Path  # the pod's folder (web-1 in staging)


# ---- The API server, in a process of its own -------------------------------------------------


def cluster(pipe: Connection) -> None:
    """The stand-in with real processes in each pod's folder, out of the client's process
    (its threads would take the client's interpreter), served plain and over TLS: sends
    a Cluster, serves until told to stop."""
    with (tempfile.TemporaryDirectory(prefix="tollgate-bench-k8s-") as work,
          K8sStandIn(CLUSTER_TOKEN, pods=Path(work) / "pods") as plain,
          K8sStandIn(CLUSTER_TOKEN, tls := write_tls_files(Path(work) / "tls"),
                     pods=Path(work) / "pods") as secure):
        pipe.send(Cluster(_port(plain.url), _port(secure.url), tls,
                          plain.pod_root(NAMESPACE, POD)))
        with contextlib.suppress(EOFError):
            pipe.recv()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def log_lines(size: int) -> bytes:
    """`size` bytes of a web service's log: varied lines, a timestamp then logfmt's
    `key=value` pairs (each of which the key-name rules read), nothing a detector masks
    (no address, key, card or phone number)."""
    verbs = ("GET", "POST", "GET", "PUT", "GET", "DELETE")
    paths = ("/api/orders", "/api/orders/list", "/api/stock/level", "/healthz",
             "/api/basket/items", "/api/catalogue/search")
    block = b"".join(
        f"2026-11-25T10:{n // 60 % 60:02d}:{n % 60:02d}.{n * 37 % 1000:03d}Z INFO "
        f"orders-api handled {verbs[n % 6]} {paths[n * 7 % 6]} page={n % 40} "
        f"status={(200, 200, 201, 204, 404)[n % 5]} duration_ms={n * 13 % 250} "
        f"worker=w{n % 8} cache={('hit', 'miss')[n % 2]}\n".encode()
        for n in range(2000))
    return (block * (size // len(block) + 1))[:size]


# ---- The gateways ---------------------------------------------------------------------------


def k8s_route(name: str) -> dict[str, Any]:
    """A k8s target's route to the stand-in's cluster (no timeout: a stream lasts as long
    as its output)."""
    return {"name": name, "match": {"prefix": "/"}, "route": {"cluster": "k8s", "timeout": "0s"},
            "metadata": {"filter_metadata": {"tollgate": {"protocol": "k8s"}}}}


def envoy_config(path: str, ports: envoy_bootstrap.Ports, tls_port: int, cluster: Cluster,
                 front: int) -> dict[str, Any]:
    """The quickstart's bootstrap, its listener's TLS twin on `tls_port`, and the stand-in
    as cluster `k8s` behind path's route: Envoy alone (no ext_proc, no jwt_authn) for
    `envoy`, else the stream front's cluster and a stream route ahead of the k8s route."""
    bootstrap = envoy_bootstrap.with_clusters(envoy_bootstrap.with_routes(
        envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports), [k8s_route(ROUTES[path])]),
        {"k8s": cluster.port})
    bootstrap = envoy_bootstrap.with_tls(bootstrap, cluster.tls.cert, cluster.tls.key,
                                         tls_port)
    if path == "envoy":
        return envoy_bootstrap.without_http_filters(
            envoy_bootstrap.without_ext_proc(bootstrap), envoy_bootstrap.JWT_AUTHN_TYPE)
    return envoy_bootstrap.with_stream_front(bootstrap, [front])


def tollgate_config(grpc_port: int, front_port: int, bootstrap: Path, cluster_port: int,
                    otlp_endpoint: str, work: Path) -> dict[str, Any]:
    """One worker, the default pack, the record in SQLite, spans exported, the stream
    front, and two k8s targets on the stand-in: the pack's default mask on one, none on
    the other (`masking: off`)."""
    token_file = work / "cluster-token"
    token_file.write_text(CLUSTER_TOKEN, encoding="utf-8")

    def target(name: str, route: str, labels: dict[str, str]) -> dict[str, Any]:
        return {"name": name, "protocol": "k8s", "environment": "dev", "labels": labels,
                "match": {"route": route},
                "k8s": {"namespace_labels": {NAMESPACE: {"environment": "staging"}},
                        "upstream": f"http://127.0.0.1:{cluster_port}"},
                "credential": {"type": "bearer", "from_file": str(token_file)}}

    return {
        **recorded_config(grpc_port, 1, bootstrap, otlp_endpoint, work),
        "kube": {"listen": f"127.0.0.1:{front_port}"},
        "targets": [target("bench-cluster", ROUTES["tollgate"], {}),
                    target("bench-cluster-unmasked", ROUTES["unmasked"], {"masking": "off"})],
    }


def start(work: Path, cleanup: contextlib.ExitStack, cluster: Cluster, otlp_endpoint: str,
          token: str) -> dict[str, Way]:
    """An Envoy per path beside the stand-in, and one tollgate behind the last two: each
    path's way to the API server. (One after the other, from this thread: each dies with
    the thread that started it, stack._dying_with_parent.)"""

    def stopped_on_exit(process: stack.Process) -> stack.Process:
        cleanup.callback(process.stop)
        return process

    grpc, front = stack.free_port(), stack.free_port()
    bootstraps: dict[str, tuple[Path, envoy_bootstrap.Ports, int]] = {}
    for path in PATHS[1:]:
        (work / path).mkdir()
        ports = envoy_bootstrap.Ports(listener=stack.free_port(), admin=stack.free_port(),
                                      ext_proc=grpc, upstream=stack.free_port(),
                                      mcp=stack.free_port())
        tls_port = stack.free_port()
        bootstraps[path] = (envoy_bootstrap.write(
            envoy_config(path, ports, tls_port, cluster, front), work / path / "envoy.yaml"),
            ports, tls_port)
    config = work / "tollgate" / "tollgate.yaml"
    config.write_text(yaml.safe_dump(tollgate_config(
        grpc, front, bootstraps["tollgate"][0], cluster.port, otlp_endpoint,
        work / "tollgate")), encoding="utf-8")
    tollgate = stopped_on_exit(stack.start_tollgate(config, grpc, work / "tollgate"))
    stack.wait_until(lambda: stack.port_in_use(front), TIMEOUT,
                     f"tollgate's Kubernetes stream front on port {front}")
    ways = {"direct": Way(cluster.port, cluster.tls_port, CLUSTER_TOKEN)}
    for path, (bootstrap, ports, tls_port) in bootstraps.items():
        processes = {"envoy": stopped_on_exit(stack.start_envoy(bootstrap, ports.admin,
                                                                work / path))}
        if path != "envoy":
            processes["tollgate"] = tollgate
        ways[path] = Way(ports.listener, tls_port,
                         CLUSTER_TOKEN if path == "envoy" else token, processes)
    return ways


# ---- The client --------------------------------------------------------------------------


def exec_path(argv: list[str], stdin: bool = False) -> str:
    """The exec subresource's URL as kubectl asks for it (stdout and stderr, stdin if
    asked)."""
    query = urlencode([*(("command", a) for a in argv), ("stdout", "true"),
                       ("stderr", "true"), *((("stdin", "true"),) if stdin else ())])
    return f"/api/v1/namespaces/{NAMESPACE}/pods/{POD}/exec?{query}"


async def run(path: str, way: Way, argv: list[str], expected: bytes) -> tuple[float, float]:
    """One exec over a WebSocket of its own, its stdout compared with `expected` where
    each piece falls: seconds from asking to the exit status, and to the last byte."""
    try:
        return await _run(path, way, argv, expected)
    except (OSError, WebSocketException, TimeoutError) as exc:
        raise Failed(f"{path}: {argv[0]}: {type(exc).__name__}: {exc}") from None


async def _run(path: str, way: Way, argv: list[str], expected: bytes) -> tuple[float, float]:
    received, stderr, status = 0, b"", None
    last = ended = 0
    start = time.perf_counter_ns()
    async with asyncio.timeout(TIMEOUT), connect(
            f"ws://127.0.0.1:{way.port}{exec_path(argv)}", subprotocols=[Subprotocol(ch.V5)],
            additional_headers={"Authorization": f"Bearer {way.token}"}, max_size=None,
            compression=None, ping_interval=None, open_timeout=TIMEOUT,
            close_timeout=CLOSE_WAIT) as ws:
        if ws.subprotocol != ch.V5:
            raise Failed(f"{path}: subprotocol {ws.subprotocol!r}, not {ch.V5}")
        async for message in ws:
            read = ch.decode(PROTOCOL, message, 5)
            if not isinstance(read, ch.Data):
                raise Failed(f"{path}: {argv[0]}: a message the client cannot read: {read}")
            if read.channel == ch.STDOUT:
                if not expected.startswith(read.payload, received):
                    raise Failed(f"{path}: {argv[0]}: the output differs from the pod's at "
                                 f"or after byte {received}")
                received += len(read.payload)
                last = time.perf_counter_ns()
            elif read.channel == ch.STDERR:
                stderr += read.payload
            elif read.channel == ch.ERROR:  # the last message: the close follows
                status, ended = read.payload, time.perf_counter_ns()
                break
    if received != len(expected) or stderr:
        raise Failed(f"{path}: {argv[0]}: {received} bytes of {len(expected)} "
                     f"(stderr {stderr[:200]!r})")
    if status is None or json.loads(status).get("status") != "Success":
        raise Failed(f"{path}: {argv[0]} ended with {status!r}")
    return (ended - start) / 1e9, (max(last, start) - start) / 1e9


async def execs(path: str, way: Way, count: int) -> list[float]:
    """`count` execs of `true` in sequence: ms each, asking to exit status."""
    return [(await run(path, way, ["true"], b""))[0] * 1e3 for _ in range(count)]


async def output(path: str, way: Way, argv: list[str], expected: bytes) -> float:
    """One exec's output read whole: MB/s from asking to the last byte."""
    return len(expected) / (await run(path, way, argv, expected))[1] / 1e6


async def firsts(path: str, way: Way, count: int) -> list[float]:
    """`count` execs of FIRST in sequence: ms each from the pod writing its line to the
    client reading it; the command ends once the line has been read."""
    try:
        return [await _first(path, way) for _ in range(count)]
    except (OSError, WebSocketException, TimeoutError) as exc:
        raise Failed(f"{path}: first: {type(exc).__name__}: {exc}") from None


async def _first(path: str, way: Way) -> float:
    line, status, read = b"", None, 0
    async with asyncio.timeout(TIMEOUT), connect(
            f"ws://127.0.0.1:{way.port}{exec_path(FIRST, stdin=True)}",
            subprotocols=[Subprotocol(ch.V5)],
            additional_headers={"Authorization": f"Bearer {way.token}"}, max_size=None,
            compression=None, ping_interval=None, open_timeout=TIMEOUT,
            close_timeout=CLOSE_WAIT) as ws:
        async for message in ws:
            got = ch.decode(PROTOCOL, message, 5)
            if not isinstance(got, ch.Data):
                raise Failed(f"{path}: first: a message the client cannot read: {got}")
            if got.channel == ch.STDOUT and got.payload and not read:
                line += got.payload
                if line.endswith(b"\n"):
                    read = time.time_ns()
                    await ws.send(ch.encode(PROTOCOL, ch.STDIN, b"go\n"))
            elif got.channel == ch.STDERR and got.payload:
                raise Failed(f"{path}: first: stderr {got.payload[:200]!r}")
            elif got.channel == ch.ERROR:
                status = got.payload
                break
    written = line.strip().translate(_LETTERS)
    if not written.isdigit() or status is None or json.loads(status).get("status") != "Success":
        raise Failed(f"{path}: first: line {line!r}, status {status!r}")
    return (read - int(written)) / 1e6


# ---- Measuring -----------------------------------------------------------------------------


async def rounds(ways: dict[str, Way], log: bytes, zeros: bytes,
                 args: argparse.Namespace) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every path answers, warmed up; then `args.rounds` rounds of every measurement on
    every path (a rotating order); each round's figures."""
    jobs: dict[str, Callable[[str, Way], Awaitable[list[float] | float]]] = {
        "exec": lambda p, w: execs(p, w, args.execs),
        "log": lambda p, w: output(p, w, ["cat", LOG], log),
        "zeros": lambda p, w: output(p, w, ["cat", ZEROS], zeros),
        "first": lambda p, w: firsts(p, w, args.firsts),
    }
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        m: {p: [] for p in PATHS} for m in MEASURES}
    for path in PATHS:  # every path answers before anything is timed
        await execs(path, ways[path], args.warmup)
        settle(ways[path].processes)
    for round_ in range(args.rounds):
        shift = round_ % len(PATHS)
        order = PATHS[shift:] + PATHS[:shift]
        for measure, job in jobs.items():
            for path in order:
                results[measure][path].append(
                    await measured(ways[path].processes, job(path, ways[path])))
        print(f"  round {round_ + 1}/{args.rounds}: exec p50 "
              + ", ".join(f"{p} {percentile(results['exec'][p][-1]['result'], 50):.2f} ms"
                          for p in PATHS)
              + "; log " + ", ".join(f"{p} {results['log'][p][-1]['result']:.0f} MB/s"
                                     for p in PATHS)
              + "; first p50 " + ", ".join(
                  f"{p} {percentile(results['first'][p][-1]['result'], 50):.2f} ms"
                  for p in PATHS), file=sys.stderr, flush=True)
    return results


def kubectl_walls(ways: dict[str, Way], ca: Path, work: Path, runs: int) -> dict[str, float]:
    """The median wall time of `kubectl exec web-1 -- true` on each path (runs in a
    rotating order; over TLS, the only way kubectl sends a token), in ms."""
    clients = {path: Kubectl(write_kubeconfig(work / f"kubeconfig-{path}",
                                              f"https://127.0.0.1:{way.tls_port}", way.token,
                                              ca), work / f"kubectl-cache-{path}")
               for path, way in ways.items()}
    walls: dict[str, list[float]] = {p: [] for p in PATHS}
    for n in range(runs + 1):  # the first run of each fills kubectl's cache: untimed
        order = PATHS[n % len(PATHS):] + PATHS[:n % len(PATHS)]
        for path in order:
            start = time.perf_counter_ns()
            done = clients[path]("exec", POD, "-n", NAMESPACE, "--", "true", timeout=TIMEOUT)
            if done.returncode != 0:
                raise Failed(f"{path}: kubectl exec exited {done.returncode}: "
                             f"{done.stderr.strip()[-500:]}")
            if n:
                walls[path].append((time.perf_counter_ns() - start) / 1e6)
    return {path: statistics.median(times) for path, times in walls.items()}


# ---- Figures and table -----------------------------------------------------------------------


def figures(results: dict[str, dict[str, list[dict[str, Any]]]], megabytes: float,
            kubectl: dict[str, float]) -> dict[str, Any]:
    """Per measurement and path: the median over rounds of each round's p50 and p95 (or
    MB/s), each process's CPU per exec or per MB over all rounds (/proc counts 10 ms
    ticks: one round's is too coarse); and each path against Envoy alone and direct."""
    found: dict[str, Any] = {m: {} for m in MEASURES}
    for path, runs in results["exec"].items():
        operations = sum(len(r["result"]) for r in runs)
        found["exec"][path] = {
            "rounds": len(runs), "operations": operations,
            **{f"p{q}_ms": statistics.median(percentile(r["result"], q) for r in runs)
               for q in (50, 95)},
            "kubectl_ms": kubectl[path],
            "cpu_us": {role: sum(r["cpu_seconds"][role] for r in runs) / operations * 1e6
                       for role in runs[0]["cpu_seconds"]}}
    for path, runs in results["first"].items():
        found["first"][path] = {
            "rounds": len(runs),
            **{f"p{q}_ms": statistics.median(percentile(r["result"], q) for r in runs)
               for q in (50, 95)}}
    for measure in OUTPUTS:
        for path, runs in results[measure].items():
            found[measure][path] = {
                "rounds": len(runs), "mb_per_s": statistics.median(r["result"] for r in runs),
                "cpu_ms_per_mb": {role: sum(r["cpu_seconds"][role] for r in runs)
                                  / (megabytes * len(runs)) * 1e3
                                  for role in runs[0]["cpu_seconds"]}}
    rows = found["exec"]
    return {
        **found,
        "ratios": {
            "exec_p50_ms_over": {base: {p: rows[p]["p50_ms"] - rows[base]["p50_ms"]
                                        for p in PATHS} for base in ("envoy", "direct")},
            **{f"{m}_throughput_x": {base: {p: found[m][p]["mb_per_s"]
                                            / found[m][base]["mb_per_s"] for p in PATHS}
                                     for base in ("envoy", "direct")} for m in OUTPUTS}},
    }


def table(found: dict[str, Any], args: argparse.Namespace) -> str:
    rows = found["exec"]
    lines = [f"Kubernetes streams, {args.rounds} rounds (median of the rounds' figures), a "
             f"WebSocket (v5.channel.k8s.io) per exec: per round and path {args.execs} execs "
             f"of `true`, one `cat` of a {args.megabytes} MB log, one of {args.megabytes} MB "
             "of NUL bytes",
             "", "exec `true`: asking to the exit status",
             f"{'path':10s}{'p50 ms':>8s}{'p95 ms':>8s}{'x envoy':>9s}{'+ms vs envoy':>14s}"
             f"{'+ms vs direct':>15s}{'kubectl ms':>12s}{'envoy CPU µs':>14s}"
             f"{'tollgate CPU µs':>17s}"]
    for path, row in rows.items():
        lines.append(f"{path:10s}{row['p50_ms']:8.2f}{row['p95_ms']:8.2f}"
                     f"{row['p50_ms'] / rows['envoy']['p50_ms']:9.2f}"
                     f"{row['p50_ms'] - rows['envoy']['p50_ms']:+14.2f}"
                     f"{row['p50_ms'] - rows['direct']['p50_ms']:+15.2f}"
                     f"{row['kubectl_ms']:12.0f}"
                     f"{cpu_cell(row, 'cpu_us', 'envoy', '.0f'):>14s}"
                     f"{cpu_cell(row, 'cpu_us', 'tollgate', '.0f'):>17s}")
    for measure, what in (("log", f"cat of a {args.megabytes} MB log (nothing to mask)"),
                          ("zeros", f"cat of {args.megabytes} MB of NUL bytes")):
        rows = found[measure]
        lines += ["", f"{what}: asking to the last byte",
                  f"{'path':10s}{'MB/s':>8s}{'x envoy':>9s}{'x direct':>10s}"
                  f"{'envoy CPU ms/MB':>17s}{'tollgate CPU ms/MB':>20s}"]
        for path, row in rows.items():
            lines.append(f"{path:10s}{row['mb_per_s']:8.1f}"
                         f"{row['mb_per_s'] / rows['envoy']['mb_per_s']:9.2f}"
                         f"{row['mb_per_s'] / rows['direct']['mb_per_s']:10.2f}"
                         f"{cpu_cell(row, 'cpu_ms_per_mb', 'envoy', '.2f'):>17s}"
                         f"{cpu_cell(row, 'cpu_ms_per_mb', 'tollgate', '.2f'):>20s}")
    rows = found["first"]
    lines += ["", "first: the pod writes a line, then waits; from the write to the client "
              "reading it",
              f"{'path':10s}{'p50 ms':>8s}{'p95 ms':>8s}{'+p50 vs envoy':>15s}"]
    for path, row in rows.items():
        lines.append(f"{path:10s}{row['p50_ms']:8.2f}{row['p95_ms']:8.2f}"
                     f"{row['p50_ms'] - rows['envoy']['p50_ms']:+15.2f}")
    over, ratios = found["ratios"]["exec_p50_ms_over"]["envoy"], found["ratios"]
    speed = {m: ratios[f"{m}_throughput_x"]["envoy"] for m in OUTPUTS}
    lines += ["", f"over Envoy alone (the stream unread), tollgate adds {over['tollgate']:.2f} "
              f"ms p50 per exec ({over['unmasked']:.2f} ms unmasked); output streams at "
              + "; ".join(f"x{speed[m]['tollgate']:.2f} of Envoy alone masked, "
                          f"x{speed[m]['unmasked']:.2f} unmasked ({m})" for m in OUTPUTS),
              "tollgate's CPU includes the token's check, the decision, the upstream "
              "stream, the masking, the record and the span export"]
    return "\n".join(lines)


# ---- Orchestration ---------------------------------------------------------------------------

DEFAULTS = {"rounds": 3, "execs": 100, "megabytes": 64, "warmup": 10, "kubectl": 5,
            "firsts": 20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.k8s_streams", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, help_ in (("rounds", "rounds, each every measurement on every path"),
                        ("execs", "execs of `true` per path and round"),
                        ("megabytes", "the output's size (10^6 bytes)"),
                        ("warmup", "untimed execs per path first"),
                        ("kubectl", "timed `kubectl exec` runs per path"),
                        ("firsts", "runs of the first-line command per path and round")):
        parser.add_argument(f"--{name}", type=int, default=DEFAULTS[name],
                            help=f"{help_} (default {DEFAULTS[name]})")
    parser.add_argument("--json-out", type=Path, help="also save the figures as JSON here")
    args = parser.parse_args(argv)
    if (min(args.rounds, args.execs, args.megabytes, args.kubectl, args.firsts) < 1
            or args.warmup < 0):
        parser.error("counts must be >= 1 (--warmup >= 0)")
    settings = {k: getattr(args, k) for k in DEFAULTS}

    token = dev_tokens.mint(load_config(QUICKSTART_CONFIG), "bench-sre", ["sre"], 4 * 3600)
    size = args.megabytes * 10**6
    log, zeros = log_lines(size), bytes(size)
    started, load_at_start = datetime.now(UTC), os.getloadavg()[0]
    # The directory outlives the processes: tollgate writes its last anchor as it stops.
    with (tempfile.TemporaryDirectory(prefix="tollgate-bench-k8s-") as work,
          contextlib.ExitStack() as cleanup):
        _, api = cleanup.enter_context(child(cluster))
        (api.pod / LOG).write_bytes(log)
        (api.pod / ZEROS).write_bytes(zeros)
        _, otlp_endpoint = cleanup.enter_context(child(otlp))
        ways = start(Path(work), cleanup, api, otlp_endpoint, token)
        prioritise()
        try:
            results = asyncio.run(rounds(ways, log, zeros, args))
            kubectl = kubectl_walls(ways, api.tls.ca, Path(work), args.kubectl)
            rss = peak_rss_mb(ways["tollgate"].processes["tollgate"])
        except (Failed, OSError, WebSocketException, TimeoutError) as exc:
            raise SystemExit(f"bench.k8s_streams: {exc}") from None
    found = figures(results, args.megabytes, kubectl)
    report = {
        "benchmark": "k8s_streams", "when": started.isoformat(timespec="seconds"),
        "machine": {"node": platform.node(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "websockets": websockets.__version__,
                    "load_at_start": load_at_start, "load_at_end": os.getloadavg()[0]},
        "settings": settings, **found, "tollgate_peak_rss_mb": rss,
    }
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(table(found, args))
    print(f"tollgate's largest process peaked at {rss:.0f} MB resident")
    print(f"machine: {os.cpu_count()} cores, websockets {websockets.__version__}, load "
          f"average {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
