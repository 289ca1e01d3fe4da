"""Egress inspect benchmark: what reading inside an HTTPS tunnel costs over passing it
unread, through the same Envoy and tollgate, in one run.

Run from the repository root: `python -m bench.egress_inspect [--rounds R] [--requests N]
[--handshakes N] [--json-out PATH]`; `--smoke` is the few seconds
tests/bench/test_egress_inspect_smoke.py runs.

One HTTPS destination on 127.0.0.1, in a process of its own (keep-alive HTTP/1.1, a
small JSON answer), its certificate from a CA of the benchmark's own, which the client
trusts for the tunnelled path and tollgate trusts (`egress.trusted_ca`) for the inspected
one. The gateway is envoy/quickstart.yaml with tollgate and the default pack, its lists
allowing one name of the destination (tunnelled) and inspecting others (read); names
from the benchmark's DNS server, which tollgate asks. Three paths:

    direct     client ─TLS─► destination (the floor)
    tunnel     client ─CONNECT─► Envoy ─► destination; TLS end to end, unread
    inspect    client ─CONNECT─► Envoy (TLS ended with a leaf of the egress CA) ─ext_proc─►
               tollgate (each request decided, its answer masked, recorded) ─TLS─►
               destination (verified)

Measured, each round every path in a rotating order, a path's figure the median of its
rounds:
    request     `--requests` sequential GETs on one tunnel (one TLS session): ms from
                sending each to the end of its answer; p50 and p99
    handshake   a new connection each: CONNECT and the client's TLS handshake, ms to the
                handshake's end. For `inspect`, `warm`: a name whose leaf Envoy holds
                already; `cold`: a name never asked before, so the handshake waits for
                tollgate's secret service to mint its leaf and Envoy to load it
                (`--handshakes` names per round)
The CPU of Envoy and of tollgate (/proc, processes and children) per request.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import json
import os
import platform
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

from bench.egress import _listen, _read_head, child, otlp
from bench.load import cpu_seconds, percentile, prioritise, recorded_config
from extproc import envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.config import load as load_config
from extproc.quickstart import dev_tokens, stack
from tests.support.dns import DnsServer
from tests.support.packs import pack_with_egress
from tests.support.tls import TlsFiles, write_server_files

PATHS = ("direct", "tunnel", "inspect")
TUNNELLED = "tunnel.bench.test"
WARM = "warm.bench.test"
COLD = "cold{}.bench.test"  # a name per cold handshake
MOST_COLD = 400
ANSWER = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n"
          b'{"ok": true}')
TIMEOUT = 30.0


# ---- The destination: a process of its own ----------------------------------------------


def destination(pipe: Connection, tls: TlsFiles, names: list[str]) -> None:
    """The HTTPS destination and the DNS server naming it: sends their addresses, then
    waits to be told to stop."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    context.set_alpn_protocols(["http/1.1"])

    def serve(raw: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError), \
                context.wrap_socket(raw, server_side=True) as sock:
            pending = bytearray()
            while _read_head(sock, pending) is not None:
                sock.sendall(ANSWER)

    port = _listen(serve)
    with DnsServer({name: ["127.0.0.1"] for name in names}, ttl=3600) as dns:
        pipe.send({"port": port, "dns": dns.address})
        with contextlib.suppress(EOFError):
            pipe.recv()


# ---- The gateway ---------------------------------------------------------------------------


@dataclass
class Gateway:
    port: int  # Envoy's egress listener
    authorization: bytes  # the Proxy-Authorization header line
    processes: dict[str, stack.Process]
    bundle: Path  # the egress CA's bundle, which the client trusts for read tunnels


def start(work: Path, cleanup: contextlib.ExitStack, found: dict[str, Any], tls: TlsFiles,
          otlp_endpoint: str, token: str) -> Gateway:
    ports = envoy_bootstrap.Ports(
        listener=stack.free_port(), admin=stack.free_port(), ext_proc=stack.free_port(),
        upstream=stack.free_port(), mcp=stack.free_port(), egress=stack.free_port())
    bootstrap = envoy_bootstrap.with_egress_trust(
        envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports), tls.ca)
    bootstrap_path = envoy_bootstrap.write(bootstrap, work / "envoy.yaml")
    port = found["port"]
    read = [f"{WARM}:{port}", *(f"{COLD.format(i)}:{port}" for i in range(MOST_COLD))]
    pack = pack_with_egress(work / "policies", {
        "groups": {"agents": {"allow": [f"{TUNNELLED}:{port}"], "inspect": read, "hold": [],
                              "first_seen": "alert"}},
        "approvers": ["group:security"], "hold_seconds": 300})
    quickstart = yaml.safe_load(QUICKSTART_CONFIG.read_text(encoding="utf-8"))
    (egress,) = [t for t in quickstart["targets"] if t.get("protocol") == "egress"]
    egress["egress"] = {"nameservers": [found["dns"]], "dns_cache_seconds": 3600,
                        "ca": {"dir": str(work / "egress-ca")}, "trusted_ca": str(tls.ca)}
    config = work / "tollgate.yaml"
    config.write_text(yaml.safe_dump({
        **recorded_config(ports.ext_proc, 1, bootstrap_path, otlp_endpoint, work, pack),
        "targets": [egress]}), encoding="utf-8")
    processes = {}
    for role, process in (
            ("tollgate", stack.start_tollgate(config, ports.ext_proc, work)),
            ("envoy", stack.start_envoy(bootstrap_path, ports.admin, work))):
        cleanup.callback(process.stop)
        processes[role] = process
    credentials = base64.b64encode(f"agent:{token}".encode()).decode()
    assert ports.egress is not None
    return Gateway(ports.egress, f"proxy-authorization: Basic {credentials}\r\n".encode(),
                   processes, work / "egress-ca" / "ca-bundle.pem")


# ---- The client ----------------------------------------------------------------------------


class Failed(Exception):
    """An answer that was not what the path should give (the message says what)."""


def _tunnel(gateway: Gateway | None, host: str, port: int) -> socket.socket:
    """A TCP connection to the destination: direct, or a CONNECT answered 200."""
    if gateway is None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    else:
        sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=TIMEOUT)
        authority = f"{host}:{port}".encode()
        sock.sendall(b"CONNECT " + authority + b" HTTP/1.1\r\nhost: " + authority
                     + b"\r\n" + gateway.authorization + b"\r\n")
        head = _read_head(sock, bytearray())
        if head is None or not head.startswith(b"HTTP/1.1 200"):
            sock.close()
            raise Failed(f"CONNECT {host}: {head!r}")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def secured(gateway: Gateway | None, host: str, port: int, roots: Path) -> ssl.SSLSocket:
    """A TLS session with `host` over a new tunnel, its certificate checked against
    `roots`."""
    context = ssl.create_default_context(cafile=str(roots))
    context.set_alpn_protocols(["http/1.1"])
    return context.wrap_socket(_tunnel(gateway, host, port), server_hostname=host)


def requests(sock: ssl.SSLSocket, host: str, port: int, count: int) -> list[float]:
    """`count` GETs on one TLS session: ms from sending each to the end of its answer
    (the Host names the port: without it, a tunnel's request would be for 443)."""
    request = f"GET /item HTTP/1.1\r\nhost: {host}:{port}\r\n\r\n".encode()
    timings, pending = [], bytearray()
    for _ in range(count):
        start = time.perf_counter_ns()
        sock.sendall(request)
        head = _read_head(sock, pending)
        if head is None or not head.startswith(b"HTTP/1.1 200"):
            raise Failed(f"GET {host}: {head!r}")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(pending) < length:
            pending += sock.recv(65536)
        del pending[:length]
        timings.append((time.perf_counter_ns() - start) / 1e6)
    return timings


def handshakes(make: Callable[[], ssl.SSLSocket], count: int) -> list[float]:
    """`count` new tunnels each with its TLS handshake: ms from the connect to its end."""
    timings = []
    for _ in range(count):
        start = time.perf_counter_ns()
        with make():
            timings.append((time.perf_counter_ns() - start) / 1e6)
    return timings


@dataclass
class Paths:
    """Where each path's connections come from, and the processes it runs through."""

    gateway: Gateway
    tls: TlsFiles
    port: int
    cold: Iterator[int]

    def session(self, path: str) -> tuple[ssl.SSLSocket, str]:
        if path == "direct":
            return secured(None, TUNNELLED, self.port, self.tls.ca), TUNNELLED
        if path == "tunnel":
            return secured(self.gateway, TUNNELLED, self.port, self.tls.ca), TUNNELLED
        return secured(self.gateway, WARM, self.port, self.gateway.bundle), WARM

    def next_cold(self) -> ssl.SSLSocket:
        name = COLD.format(next(self.cold))
        return secured(self.gateway, name, self.port, self.gateway.bundle)


def _first(session: Callable[[str], tuple[ssl.SSLSocket, str]], path: str) -> ssl.SSLSocket:
    return session(path)[0]


def measured(gateway: Gateway, run: Callable[[], list[float]]) -> dict[str, Any]:
    before = {role: cpu_seconds(p.pid) for role, p in gateway.processes.items()}
    result = run()
    return {"result": result, "cpu_seconds": {role: cpu_seconds(p.pid) - before[role]
                                              for role, p in gateway.processes.items()}}


def rounds(paths: Paths, args: argparse.Namespace) -> dict[str, dict[str, list[Any]]]:
    jobs: dict[str, dict[str, Callable[[], list[float]]]] = {"request": {}, "handshake": {}}
    for path in PATHS:
        def run_requests(path: str = path) -> list[float]:
            sock, host = paths.session(path)
            with sock:
                return requests(sock, host, paths.port, args.requests)

        jobs["request"][path] = run_requests
        jobs["handshake"][path if path != "inspect" else "inspect-warm"] = functools.partial(
            handshakes, functools.partial(_first, paths.session, path), args.handshakes)
    jobs["handshake"]["inspect-cold"] = functools.partial(
        handshakes, paths.next_cold, args.handshakes)
    for run in jobs["request"].values():  # warm-up: every path answers before timing
        run()
    results: dict[str, dict[str, list[Any]]] = {m: {p: [] for p in j} for m, j in jobs.items()}
    for round_ in range(args.rounds):
        for measure, runs in jobs.items():
            names = list(runs)
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                results[measure][name].append(measured(paths.gateway, runs[name]))
        print(f"  round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return results


# ---- Figures -------------------------------------------------------------------------------


def figures(results: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for measure, by_path in results.items():
        out[measure] = {}
        for path, rows in by_path.items():
            count = len(rows[0]["result"]) if rows else 1
            out[measure][path] = {
                "p50_ms": statistics.median(percentile(r["result"], 50) for r in rows),
                "p99_ms": statistics.median(percentile(r["result"], 99) for r in rows),
                "cpu_ms_per_op": {role: statistics.median(
                    r["cpu_seconds"][role] * 1000 / count for r in rows)
                    for role in ("envoy", "tollgate")} if path != "direct" else {},
            }
    request = out["request"]
    out["ratios"] = {
        "inspect_over_tunnel_p50": request["inspect"]["p50_ms"] / request["tunnel"]["p50_ms"],
        "added_ms_p50": request["inspect"]["p50_ms"] - request["tunnel"]["p50_ms"],
        "tunnel_over_direct_p50": request["tunnel"]["p50_ms"] / request["direct"]["p50_ms"],
    }
    return out


def table(found: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"egress inspect vs tunnel, {args.rounds} rounds ({platform.node()}, "
             f"{os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d})",
             "", "| measure | path | p50 ms | p99 ms | Envoy CPU ms/op | tollgate CPU ms/op |",
             "|---|---|---:|---:|---:|---:|"]
    for measure in ("request", "handshake"):
        for path, row in found[measure].items():
            cpu = row["cpu_ms_per_op"]
            lines.append(f"| {measure} | {path} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                         f"{cpu.get('envoy', float('nan')):.2f} | "
                         f"{cpu.get('tollgate', float('nan')):.2f} |")
    ratios = found["ratios"]
    lines += ["", f"inspect adds {ratios['added_ms_p50']:.2f} ms per request at p50 "
              f"({ratios['inspect_over_tunnel_p50']:.1f}x the tunnel's)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.egress_inspect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--handshakes", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="a few seconds: 1 round, few ops")
    parser.add_argument("--json-out", type=Path, help="also save the figures as JSON here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.requests, args.handshakes = 1, 20, 3
    if args.rounds * args.handshakes > MOST_COLD:
        parser.error(f"--rounds x --handshakes must be at most {MOST_COLD} (cold names)")
    token = dev_tokens.mint(load_config(QUICKSTART_CONFIG), "svc-bench", ["agents"], 4 * 3600)
    load_at_start = os.getloadavg()[0]
    # The directory outlives the processes: tollgate writes its last anchor as it stops.
    with (tempfile.TemporaryDirectory(prefix="tollgate-bench-inspect-") as folder,
          contextlib.ExitStack() as cleanup):
        work = Path(folder)
        names = [TUNNELLED, WARM, *(COLD.format(i) for i in range(MOST_COLD))]
        tls = write_server_files(work / "tls", names)
        _, found = cleanup.enter_context(child(_Destination(tls, names)))
        _, otlp_endpoint = cleanup.enter_context(child(otlp))
        gateway = start(work, cleanup, found, tls, otlp_endpoint, token)
        prioritise()
        try:
            results = rounds(Paths(gateway, tls, found["port"], iter(range(MOST_COLD))), args)
        except (Failed, OSError, ssl.SSLError) as exc:
            raise SystemExit(f"bench.egress_inspect: {exc}") from None
    found_figures = figures(results)
    print(table(found_figures, args))
    print(f"machine: {os.cpu_count()} cores, load average {load_at_start:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(
            {"benchmark": "egress_inspect", "settings": vars(args) | {"json_out": None},
             **found_figures}, indent=1) + "\n", encoding="utf-8")
    return 0


@dataclass(frozen=True)
class _Destination:
    """The destination's process target (picklable for spawn)."""

    tls: TlsFiles
    names: list[str]

    @property
    def __name__(self) -> str:
        return "destination"

    def __call__(self, pipe: Connection) -> None:
        destination(pipe, self.tls, self.names)


if __name__ == "__main__":
    raise SystemExit(main())
