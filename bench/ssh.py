"""SSH benchmark: what tollgate's SSH front adds to a command's latency and to a large
output's throughput, against the host reached directly and through Envoy's tcp_proxy
alone, in one run.

Run from the repository root: `python -m bench.ssh [--rounds R] [--execs N]
[--megabytes M] [--warmup N] [--firsts N] [--json-out PATH]` (`make bench` does, with the defaults).

The host is Debian's OpenSSH server on a free port (tests/support/sshd.py: the gateway's
key authorized, a new host key), reached three ways by asyncssh with its default
algorithms:

    direct    asyncssh ─► sshd, with the gateway's key
    envoy     asyncssh ─► Envoy (envoy/quickstart.yaml's `ssh` listener, tcp_proxy) ─►
              sshd: the listener's cluster pointed at sshd, the gateway's key
    tollgate  asyncssh ─► Envoy ─► tollgate's SSH front ─► sshd: the agent's token as
              the password, each command decided by the default pack, its output masked
              as it streams, each exec recorded (with what the agent was shown) and its
              span exported to a real OTLP receiver (in a process of its own); the host
              reached with the gateway's key

Each path's client pins the key it must see (sshd's on direct and envoy, the gateway's
own on tollgate), so a path cannot silently be another. Each path has one connection,
opened and warmed up before anything is timed, and measured on it:
    exec      `conn.run("true")` `--execs` times in sequence: the ms from asking to the
              exit status (a channel opened, the command run, the channel closed); p50
              and p95
    cat       `cat FILE` of a `--megabytes` file of lorem lines read as bytes (tollgate's
              masker reads it all and finds nothing to mask): MB/s (10^6 bytes) from
              asking to the last byte
    first     a command that prints one line (the host's clock as it writes, spelled in
              letters: nothing to mask), then waits on its stdin for the client:
              `--firsts` times, the ms from the host writing the line to the client
              reading it (one machine, one clock): how long output waits in the gateway
              when no more follows (tollgate's masker flushes `idle_release_ms`, 50 ms,
              after reading it); p50 and p95
Every round measures every path in a rotating order (a shared machine's drift falls on
all alike); a path's figure is the median of its rounds. Every answer is checked: an exit
status other than 0, anything on stderr, or output other than the file's bytes stops the
benchmark. The CPU of Envoy and of tollgate (its processes, /proc) over each measurement,
per exec or per MB; after a tollgate measurement the benchmark waits for tollgate's CPU to
settle, so a record written after the last answer is counted too. At the end, the
largest peak resident size among tollgate's processes: whether a large output streams
through the gateway or piles up in it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncssh
import yaml

from bench.egress import child, otlp
from bench.load import cpu_cell, measured, percentile, prioritise, recorded_config, settle
from extproc import envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.config import load as load_config
from extproc.quickstart import dev_tokens, stack
from tests.support.sshd import SSHD, Sshd, start_sshd

PATHS = ("direct", "envoy", "tollgate")
MEASURES = ("exec", "cat", "first")
# The host's clock in ns as it writes the line, its digits as the letters a-j (digits could
# be masked: a phone number, a card), then a wait for the client's word.
FIRST = "date +%s%N | tr 0-9 a-j; read go"
_LETTERS = bytes.maketrans(b"abcdefghij", b"0123456789")
LOGIN = "bench-host"  # the agent's user name on the gateway: the target's match
FILE = "lorem.txt"
LOREM = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
         b"incididunt ut labore et dolore magna aliqua.\n")
CHUNK = 1 << 20
TIMEOUT = 30.0
# tollgate has settled once its CPU time has not moved for this long (/proc counts ticks).


class Failed(Exception):
    """An answer that was not what the path should give (the message says what)."""


@dataclass(frozen=True)
class Way:
    """How the client reaches the host on one path, and the processes on the way."""

    port: int
    username: str
    host_key: asyncssh.SSHKey  # the key this path's server must show
    password: str | None = None  # tollgate: the agent's token
    client_key: Path | None = None  # direct and envoy: the gateway's key
    processes: dict[str, stack.Process] | None = None


# ---- The gateways ---------------------------------------------------------------------------


def tollgate_config(grpc_port: int, front_port: int, bootstrap: Path, host: Sshd,
                    host_key: Path, otlp_endpoint: str, work: Path) -> dict[str, Any]:
    """One worker (one connection goes to one), the default pack, the record in SQLite,
    spans exported, and one ssh target reaching the benchmark's sshd."""
    return {
        **recorded_config(grpc_port, 1, bootstrap, otlp_endpoint, work),
        "ssh": {"listen": f"127.0.0.1:{front_port}", "host_key_file": str(host_key)},
        "targets": [{
            "name": LOGIN, "protocol": "ssh", "environment": "dev", "match": {"login": LOGIN},
            "ssh": {"upstream": f"{host.host}:{host.port}", "user": host.user,
                    "key_file": str(host.client_key_file), "host_key": host.host_key_line},
        }],
    }


def start(work: Path, cleanup: contextlib.ExitStack, host: Sshd, otlp_endpoint: str,
          token: str) -> dict[str, Way]:
    """Envoy alone and Envoy with tollgate, beside the host: each path's way to it."""

    def stopped_on_exit(process: stack.Process) -> stack.Process:
        cleanup.callback(process.stop)
        return process

    host_key = asyncssh.import_public_key(host.host_key_line)
    ways = {"direct": Way(host.port, host.user, host_key, client_key=host.client_key_file)}
    for path in ("envoy", "tollgate"):
        logs = work / path
        logs.mkdir()
        front = stack.free_port() if path == "tollgate" else host.port
        ports = envoy_bootstrap.Ports(
            listener=stack.free_port(), admin=stack.free_port(), ext_proc=stack.free_port(),
            upstream=stack.free_port(), mcp=stack.free_port(), ssh=stack.free_port(),
            ssh_front=front)
        bootstrap = envoy_bootstrap.write(envoy_bootstrap.with_ports(envoy_bootstrap.load(),
                                                                     ports),
                                          logs / "envoy.yaml")
        assert ports.ssh is not None
        processes = {}
        if path == "tollgate":
            gateway_key = asyncssh.generate_private_key("ssh-ed25519")
            gateway_key.write_private_key(logs / "host_ed25519")
            config = logs / "tollgate.yaml"
            config.write_text(yaml.safe_dump(tollgate_config(
                ports.ext_proc, front, bootstrap, host, logs / "host_ed25519", otlp_endpoint,
                logs)), encoding="utf-8")
            processes["tollgate"] = stopped_on_exit(
                stack.start_tollgate(config, ports.ext_proc, logs))
            stack.wait_until(functools.partial(stack.port_in_use, front), TIMEOUT,
                             f"tollgate's SSH front on port {front}")
        processes["envoy"] = stopped_on_exit(stack.start_envoy(bootstrap, ports.admin, logs))
        ways[path] = (Way(ports.ssh, LOGIN, gateway_key.convert_to_public(), password=token,
                          processes=processes) if path == "tollgate"
                      else Way(ports.ssh, host.user, host_key,
                               client_key=host.client_key_file, processes=processes))
    return ways


# ---- The client --------------------------------------------------------------------------


async def connect(way: Way) -> asyncssh.SSHClientConnection:
    """A connection that trusts exactly the path's server key and offers only its own
    credential (no agent, no ~/.ssh)."""
    return await asyncssh.connect(
        "127.0.0.1", way.port, username=way.username, password=way.password,
        client_keys=[str(way.client_key)] if way.client_key is not None else None,
        known_hosts=([way.host_key], [], []), agent_path=None, config=None,
        login_timeout=TIMEOUT)


async def execs(path: str, conn: asyncssh.SSHClientConnection, count: int) -> list[float]:
    """`count` runs of `true` in sequence on the connection: ms each."""
    timings = []
    for _ in range(count):
        start = time.perf_counter_ns()
        result = await conn.run("true", encoding=None, check=False, timeout=TIMEOUT)
        timings.append((time.perf_counter_ns() - start) / 1e6)
        if result.exit_status != 0 or result.stdout or result.stderr:
            raise Failed(f"{path}: `true` exited {result.exit_status} "
                         f"(stdout {result.stdout!r}, stderr {result.stderr!r})")
    return timings


async def cat(path: str, conn: asyncssh.SSHClientConnection, name: Path,
              expected: bytes) -> float:
    """`cat` of the file, each piece compared with the file's bytes where it falls: MB/s
    from asking to the last byte."""
    received = 0
    start = time.perf_counter_ns()
    async with conn.create_process(f"cat {name}", encoding=None) as process:
        while chunk := await process.stdout.read(CHUNK):
            if not expected.startswith(chunk, received):
                raise Failed(f"{path}: cat: the output differs from the file at or after "
                             f"byte {received}")
            received += len(chunk)
        elapsed = (time.perf_counter_ns() - start) / 1e9
        result = await process.wait(check=False, timeout=TIMEOUT)
    if received != len(expected):
        raise Failed(f"{path}: cat: {received} bytes of {len(expected)}")
    if result.exit_status != 0 or result.stderr:
        raise Failed(f"{path}: cat exited {result.exit_status} (stderr {result.stderr!r})")
    return len(expected) / elapsed / 1e6


async def firsts(path: str, conn: asyncssh.SSHClientConnection, count: int) -> list[float]:
    """`count` runs of FIRST in sequence: ms each from the host writing its line to the
    client reading it; the command ends once the line has been read."""
    timings = []
    for _ in range(count):
        async with conn.create_process(FIRST, encoding=None) as process:
            line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
            read = time.time_ns()
            process.stdin.write(b"go\n")
            result = await process.wait(check=False, timeout=TIMEOUT)
        written = line.strip().translate(_LETTERS)
        if not written.isdigit() or result.exit_status != 0 or result.stderr:
            raise Failed(f"{path}: first: line {line!r}, exit {result.exit_status} "
                         f"(stderr {result.stderr!r})")
        timings.append((read - int(written)) / 1e6)
    return timings


# ---- Measuring -----------------------------------------------------------------------------


async def rounds(ways: dict[str, Way], name: Path, content: bytes,
                 args: argparse.Namespace) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """One connection per path, warmed up; then `args.rounds` rounds of every measurement
    on every path (a rotating order); each round's figures."""
    jobs: dict[str, Callable[[str, asyncssh.SSHClientConnection],
                             Awaitable[list[float] | float]]] = {
        "exec": lambda p, c: execs(p, c, args.execs),
        "cat": lambda p, c: cat(p, c, name, content),
        "first": lambda p, c: firsts(p, c, args.firsts),
    }
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        m: {p: [] for p in PATHS} for m in MEASURES}
    async with contextlib.AsyncExitStack() as connections:
        conns = {}
        for path in PATHS:  # every path answers before anything is timed
            conns[path] = await connections.enter_async_context(await connect(ways[path]))
            await execs(path, conns[path], args.warmup)
            settle(ways[path].processes or {})
        for round_ in range(args.rounds):
            order = PATHS[round_ % 3:] + PATHS[:round_ % 3]
            for measure, run in jobs.items():
                for path in order:
                    results[measure][path].append(
                        await measured(ways[path].processes or {}, run(path, conns[path])))
            print(f"  round {round_ + 1}/{args.rounds}: exec p50 "
                  + ", ".join(f"{p} {percentile(results['exec'][p][-1]['result'], 50):.2f} ms"
                              for p in PATHS)
                  + "; cat " + ", ".join(f"{p} {results['cat'][p][-1]['result']:.0f} MB/s"
                                         for p in PATHS)
                  + "; first p50 " + ", ".join(
                      f"{p} {percentile(results['first'][p][-1]['result'], 50):.2f} ms"
                      for p in PATHS), file=sys.stderr, flush=True)
    return results


def peak_rss_mb(process: stack.Process) -> float:
    """The largest peak resident size (VmHWM) among tollgate's process and its children
    (its workers, its recorder): whether a large output is streamed or held whole."""
    peak = 0
    for pid in (process.pid, *process.children()):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak / 1024


# ---- Figures and table -----------------------------------------------------------------------


def figures(results: dict[str, dict[str, list[dict[str, Any]]]],
            megabytes: float) -> dict[str, Any]:
    """Per measurement and path: the median over rounds of each round's p50 and p95 (or
    MB/s), and each process's CPU per exec or per MB over all rounds (/proc counts 10 ms
    ticks: one round's is too coarse); then what Envoy and tollgate add."""
    found: dict[str, Any] = {"exec": {}, "cat": {}, "first": {}}
    for path, runs in results["first"].items():
        found["first"][path] = {
            "rounds": len(runs),
            **{f"p{q}_ms": statistics.median(percentile(r["result"], q) for r in runs)
               for q in (50, 95)}}
    for path, runs in results["exec"].items():
        operations = sum(len(r["result"]) for r in runs)
        found["exec"][path] = {
            "rounds": len(runs), "operations": operations,
            **{f"p{q}_ms": statistics.median(percentile(r["result"], q) for r in runs)
               for q in (50, 95)},
            "cpu_us": {role: sum(r["cpu_seconds"][role] for r in runs) / operations * 1e6
                       for role in runs[0]["cpu_seconds"]}}
    for path, runs in results["cat"].items():
        found["cat"][path] = {
            "rounds": len(runs), "mb_per_s": statistics.median(r["result"] for r in runs),
            "cpu_ms_per_mb": {role: sum(r["cpu_seconds"][role] for r in runs)
                              / (megabytes * len(runs)) * 1e3
                              for role in runs[0]["cpu_seconds"]}}
    rows, speed = found["exec"], {p: found["cat"][p]["mb_per_s"] for p in PATHS}
    return {
        **found,
        "added_exec_ms": {f"{path} - {base}": {f"p{q}": rows[path][f"p{q}_ms"]
                                               - rows[base][f"p{q}_ms"] for q in (50, 95)}
                          for path, base in (("envoy", "direct"), ("tollgate", "direct"),
                                             ("tollgate", "envoy"))},
        "cat_ratio": {"envoy/direct": speed["envoy"] / speed["direct"],
                      "tollgate/direct": speed["tollgate"] / speed["direct"],
                      "tollgate/envoy": speed["tollgate"] / speed["envoy"]},
    }


def table(found: dict[str, Any], args: argparse.Namespace) -> str:
    rows = found["exec"]
    lines = [f"SSH front, {args.rounds} rounds (median of the rounds' figures), one "
             f"connection per path: per round and path {args.execs} execs of `true`, one "
             f"`cat` of a {args.megabytes} MB file",
             "", "exec `true`: asking to exit status",
             f"{'path':10s}{'p50 ms':>8s}{'p95 ms':>8s}{'+p50 vs direct':>16s}"
             f"{'envoy CPU µs':>14s}{'tollgate CPU µs':>17s}"]
    for path, row in rows.items():
        plus = "-" if path == "direct" else f"{row['p50_ms'] - rows['direct']['p50_ms']:+.3f}"
        lines.append(f"{path:10s}{row['p50_ms']:8.3f}{row['p95_ms']:8.3f}{plus:>16s}"
                     f"{cpu_cell(row, 'cpu_us', 'envoy', '.0f'):>14s}"
                     f"{cpu_cell(row, 'cpu_us', 'tollgate', '.0f'):>17s}")
    rows = found["cat"]
    lines += ["", f"cat of {args.megabytes} MB (stdout as bytes): asking to the last byte",
              f"{'path':10s}{'MB/s':>8s}{'x direct':>10s}{'envoy CPU ms/MB':>17s}"
              f"{'tollgate CPU ms/MB':>20s}"]
    for path, row in rows.items():
        lines.append(f"{path:10s}{row['mb_per_s']:8.1f}"
                     f"{row['mb_per_s'] / rows['direct']['mb_per_s']:10.2f}"
                     f"{cpu_cell(row, 'cpu_ms_per_mb', 'envoy', '.2f'):>17s}"
                     f"{cpu_cell(row, 'cpu_ms_per_mb', 'tollgate', '.2f'):>20s}")
    rows = found["first"]
    lines += ["", "first: the host writes a line, then waits; from the write to the client "
              "reading it",
              f"{'path':10s}{'p50 ms':>8s}{'p95 ms':>8s}{'+p50 vs envoy':>15s}"]
    for path, row in rows.items():
        lines.append(f"{path:10s}{row['p50_ms']:8.2f}{row['p95_ms']:8.2f}"
                     f"{row['p50_ms'] - rows['envoy']['p50_ms']:+15.2f}")
    added, ratio = found["added_exec_ms"], found["cat_ratio"]
    lines += ["", "tollgate adds per exec: "
              f"{added['tollgate - direct']['p50']:.2f} ms p50 / "
              f"{added['tollgate - direct']['p95']:.2f} ms p95 over direct, "
              f"{added['tollgate - envoy']['p50']:.2f} ms p50 over Envoy alone; "
              f"cat throughput x{ratio['tollgate/direct']:.2f} of direct, "
              f"x{ratio['tollgate/envoy']:.2f} of Envoy alone",
              "tollgate's CPU includes the decision, the masking, the record and the span "
              "export"]
    return "\n".join(lines)


# ---- Orchestration ---------------------------------------------------------------------------

DEFAULTS = {"rounds": 3, "execs": 200, "megabytes": 100, "warmup": 20, "firsts": 20}


def sshd_version() -> str:
    """OpenSSH's version line (sshd -V writes it to stderr)."""
    done = subprocess.run([str(SSHD), "-V"], capture_output=True, text=True, timeout=10,
                          check=False)
    return (done.stderr or done.stdout).strip().splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ssh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, help_ in (("rounds", "rounds, each every measurement on every path"),
                        ("execs", "execs of `true` per path and round"),
                        ("megabytes", "the cat's file size (10^6 bytes)"),
                        ("warmup", "untimed execs per path first"),
                        ("firsts", "runs of the first-line command per path and round")):
        parser.add_argument(f"--{name}", type=int, default=DEFAULTS[name],
                            help=f"{help_} (default {DEFAULTS[name]})")
    parser.add_argument("--json-out", type=Path, help="also save the figures as JSON here")
    args = parser.parse_args(argv)
    if min(args.rounds, args.execs, args.megabytes, args.firsts) < 1 or args.warmup < 0:
        parser.error("counts must be >= 1 (--warmup >= 0)")
    settings = {k: getattr(args, k) for k in DEFAULTS}

    token = dev_tokens.mint(load_config(QUICKSTART_CONFIG), "svc-bench", ["agents"], 4 * 3600)
    size = args.megabytes * 10**6
    content = (LOREM * (size // len(LOREM) + 1))[:size]
    started, load_at_start = datetime.now(UTC), os.getloadavg()[0]
    # The directory outlives the processes: tollgate writes its last anchor as it stops.
    with (tempfile.TemporaryDirectory(prefix="tollgate-bench-ssh-") as work,
          contextlib.ExitStack() as cleanup):
        host = cleanup.enter_context(start_sshd(Path(work)))
        remote_file = host.put(FILE, content)
        _, otlp_endpoint = cleanup.enter_context(child(otlp))
        ways = start(Path(work), cleanup, host, otlp_endpoint, token)
        prioritise()
        try:
            results = asyncio.run(rounds(ways, remote_file, content, args))
            tollgate = ways["tollgate"].processes
            assert tollgate is not None
            rss = peak_rss_mb(tollgate["tollgate"])
        except (Failed, OSError, asyncssh.Error) as exc:
            raise SystemExit(f"bench.ssh: {exc}") from None
    found = figures(results, args.megabytes)
    report = {
        "benchmark": "ssh", "when": started.isoformat(timespec="seconds"),
        "machine": {"node": platform.node(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "asyncssh": asyncssh.__version__,
                    "openssh": sshd_version(), "load_at_start": load_at_start,
                    "load_at_end": os.getloadavg()[0]},
        "settings": settings, **found, "tollgate_peak_rss_mb": rss,
    }
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(table(found, args))
    print(f"tollgate's largest process peaked at {rss:.0f} MB resident")
    print(f"machine: {os.cpu_count()} cores, {report['machine']['openssh']}, asyncssh "
          f"{asyncssh.__version__}, load average {load_at_start:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
