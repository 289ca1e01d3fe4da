"""PostgreSQL benchmark: pgbench's select-only script direct, through Envoy's `tcp_proxy`
alone, through Envoy and a do-nothing relay front, and through Tollgate, in one run; and
tollgate's CPU per statement against the relay's.

Run from the repository root: `python -m bench.postgres [--seconds S] [--clients C]
[--rounds R] [--json-out PATH]` (`make bench` does, with the defaults).

The machine's PostgreSQL (127.0.0.1:5432) holds a throwaway database initialised by
`pgbench -i` (scale 10: a million accounts), reached three ways:

    direct    pgbench ─► PostgreSQL
    envoy     pgbench ─► Envoy (envoy/quickstart.yaml's PostgreSQL listener, tcp_proxy)
                        ─► PostgreSQL: the listener's cluster pointed at the database
    relay     pgbench ─► Envoy ─► bench/pg_relay.py ─► PostgreSQL: the floor, as many
                        processes as tollgate has workers, each message framed as
                        tollgate's front frames it (the same asyncio streams and
                        Framer), nothing decided, masked or recorded
    tollgate  pgbench ─► Envoy ─► tollgate's PostgreSQL front ─► PostgreSQL: the agent's
                        token checked at login, each statement parsed (pglast) and decided
                        by the default pack, each row masked by its detectors, each
                        statement recorded and its span exported to a real OTLP receiver

pgbench's `-S` transaction is one `SELECT abalance FROM pgbench_accounts WHERE aid = :aid`
(the simple query protocol, pgbench's default), so transactions are statements. Then the
writes, apart: one `UPDATE pgbench_accounts ... WHERE aid = :aid` each, which tollgate
estimates, runs inside a savepoint between two readings of the tables' counters and
decides on its measured effect (what reads never pay). The
clients connect once, before the timed window. No path uses TLS: tollgate's target takes
the token without it (`plaintext_token`, for local development only), so the three paths
differ by the relay and the gateway's work alone, not by encryption. Each round runs every
path once, in a rotating order, so a shared machine's drift falls on all three alike; a
path's figure is the median of its rounds.

tollgate's CPU is the user + system time of its processes (the supervisor, its workers
and theirs: bench/load.py's cpu_seconds, from /proc) over the timed run, divided by the
statements it carried: what one statement costs the gateway; the relay's likewise, the
floor it is compared with.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench import fronts
from bench.ledger import Ledger, kept_in, median, settle
from bench.ledger import table as ledger_table
from bench.load import TOKEN, cpu_seconds, recorded_config
from extproc.quickstart import stack
from tests.standins.otlp_receiver import OtlpReceiver

REPO = Path(__file__).resolve().parent.parent
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "tollgate_bench_pgbench"
AGENT_DATABASE = "bench"  # what pgbench asks the gateway for: the target's match
PATHS = ("direct", "envoy", "relay", "tollgate")


def pgbench() -> str:
    """Debian's pgbench (the PostgreSQL server package's), else the one on PATH."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    found = shutil.which("pgbench")
    if found is None:
        raise SystemExit("bench.postgres: no pgbench (Debian: the postgresql package)")
    return found


@dataclass(frozen=True)
class Way:
    """Where pgbench connects for one path, and the gateway's process (if any)."""

    port: int
    user: str
    database: str
    password: str | None
    process: stack.Process | None = None
    ledger: Path | None = None  # tollgate's cost ledger (bench/ledger.py)


def prepare(scale: int) -> None:
    """A fresh database initialised by pgbench -i."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    subprocess.run([pgbench(), "-i", "-q", "-s", str(scale), "-h", "127.0.0.1", "-p", "5432",
                    "-U", "postgres", DATABASE], check=True, capture_output=True, timeout=600)


def drop() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def tollgate_config(grpc_port: int, front_port: int, bootstrap: Path,
                    otlp_endpoint: str, work: Path, workers: int) -> dict[str, Any]:
    """The default pack, the record in SQLite, spans to the receiver, and one postgres
    target reaching the benchmark's database as `postgres` (trust auth on 127.0.0.1)."""
    return {
        **recorded_config(grpc_port, workers, bootstrap, otlp_endpoint, work),
        "postgres": {"listen": f"127.0.0.1:{front_port}"},
        "targets": [{
            "name": "bench-db", "protocol": "postgres", "environment": "dev",
            "match": {"database": AGENT_DATABASE},
            "postgres": {"upstream": "127.0.0.1:5432", "user": "postgres",
                         "database": DATABASE, "sslmode": "disable",
                         "plaintext_token": True},
        }],
    }


def start(work: Path, cleanup: contextlib.ExitStack, otlp_endpoint: str,
          workers: int) -> dict[str, Way]:
    """Envoy alone, Envoy with the relay front and Envoy with tollgate, beside the
    database: each path's address."""
    paths = {"direct": Way(5432, "postgres", DATABASE, None)}
    for path in ("envoy", "relay", "tollgate"):
        logs = work / path
        logs.mkdir()
        front = stack.free_ports(workers) if path != "envoy" else 5432
        ports, bootstrap = fronts.envoy_before("postgres", front, workers,
                                               workers if path == "tollgate" else 1, logs)
        process = None
        if path == "tollgate":
            process = fronts.start_tollgate(cleanup, tollgate_config(
                ports.ext_proc, front, bootstrap, otlp_endpoint, logs, workers), ports,
                workers, logs)
        elif path == "relay":
            process = fronts.stopped_on_exit(cleanup, start_relay(front, workers, logs))
        fronts.start_envoy(cleanup, ports, bootstrap, logs)
        assert ports.postgres is not None
        paths[path] = (Way(ports.postgres, "svc-bench", AGENT_DATABASE, TOKEN, process,
                           kept_in(logs)[0])
                       if path == "tollgate" else Way(ports.postgres, "postgres", DATABASE,
                                                        None, process))
    return paths


def start_relay(port: int, processes: int, logs: Path) -> stack.Process:
    """The floor (bench/pg_relay.py) on `port`, relaying to the database."""
    process = stack.Process.spawn(
        "pg-relay", [sys.executable, "-m", "bench.pg_relay", "--listen", f"127.0.0.1:{port}",
                     "--upstream", "127.0.0.1:5432", "--processes", str(processes)], logs)
    process.ready_or_fail(stack.tcp_accepts(port), 30, f"the relay accepting on {port}")
    return process


# The writes' script: one UPDATE of a random account, a bounded write the pack limits,
# so through tollgate it is estimated, run inside a savepoint and measured.
WRITE = ("\\set aid random(1, 100000 * :scale)\n"
         "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n")


def run(path: Way, seconds: int, clients: int, script: tuple[str, ...] = ("-S",),
        ledgers: list[Ledger] | None = None) -> dict[str, float]:
    """One pgbench run (`script`: -S, the select-only one, or -f FILE): tps, mean
    latency, statements, and the gateway's CPU; its cost ledger added to `ledgers`."""
    env = {**os.environ, "PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10"}
    if path.password is not None:
        env["PGPASSWORD"] = path.password
    before = cpu_seconds(path.process.pid) if path.process else 0.0
    counted = settle(path.ledger) if path.ledger else None
    done = subprocess.run(
        [pgbench(), *script, "-n", "-T", str(seconds), "-c", str(clients),
         "-j", str(min(clients, 2)), "-h", "127.0.0.1", "-p", str(path.port), "-U", path.user,
         path.database], capture_output=True, text=True, env=env, timeout=seconds + 120)
    cpu = (cpu_seconds(path.process.pid) - before) if path.process else float("nan")
    if done.returncode != 0:
        raise SystemExit(f"bench.postgres: pgbench failed on port {path.port}:\n"
                         f"{done.stdout[-1500:]}{done.stderr[-1500:]}")
    out = done.stdout

    def number(pattern: str) -> float:
        found = re.search(pattern, out)
        if found is None:
            raise SystemExit(f"bench.postgres: no {pattern!r} in pgbench's output:\n{out}")
        return float(found.group(1))

    statements = number(r"number of transactions actually processed: (\d+)")
    if path.ledger and counted is not None and ledgers is not None:
        ledgers.append(Ledger.between(counted, settle(path.ledger), "postgres",
                                      cpu / statements * 1e6))
    return {"tps": number(r"tps = ([\d.]+) \(without initial connection time\)"),
            "latency_ms": number(r"latency average = ([\d.]+) ms"),
            "statements": statements,
            "cpu_us_per_statement": cpu / statements * 1e6 if path.process else float("nan")}


def figures(results: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Each path's median tps and latency; the ratios the README quotes."""
    median = fronts.medians(results)
    tps = {p: median[p]["tps"] for p in PATHS}
    latency = {p: median[p]["latency_ms"] for p in PATHS}
    return {
        "paths": median,
        "tps_ratio": {"envoy/direct": tps["envoy"] / tps["direct"],
                      "tollgate/direct": tps["tollgate"] / tps["direct"],
                      "tollgate/envoy": tps["tollgate"] / tps["envoy"]},
        "added_latency_ms": {"envoy": latency["envoy"] - latency["direct"],
                             "tollgate": latency["tollgate"] - latency["direct"],
                             "tollgate_over_envoy": latency["tollgate"] - latency["envoy"]},
        "tollgate_cpu_us_per_statement": median["tollgate"]["cpu_us_per_statement"],
        "relay_cpu_us_per_statement": median["relay"]["cpu_us_per_statement"],
        "cpu_ratio": {"tollgate/relay": median["tollgate"]["cpu_us_per_statement"]
                      / median["relay"]["cpu_us_per_statement"]},
        "tps_ratio_relay": {"relay/envoy": tps["relay"] / tps["envoy"],
                            "tollgate/relay": tps["tollgate"] / tps["relay"]},
    }


def table(found: dict[str, Any], settings: dict[str, Any],
          what: str = "pgbench -S (select-only)") -> str:
    lines = [f"{what}, {settings['clients']} clients, "
             f"{settings['seconds']} s x {settings['rounds']} rounds per path, "
             f"scale {settings['scale']}, tollgate workers {settings['workers']}",
             f"{'path':10s}{'tps':>10s}{'latency ms':>12s}{'x direct':>10s}"]
    for path in PATHS:
        row = found["paths"][path]
        lines.append(f"{path:10s}{row['tps']:10.0f}{row['latency_ms']:12.3f}"
                     f"{row['tps'] / found['paths']['direct']['tps']:10.2f}")
    added = found["added_latency_ms"]
    lines += [f"added latency: envoy {added['envoy']:.3f} ms, tollgate {added['tollgate']:.3f} "
              f"ms ({added['tollgate_over_envoy']:.3f} ms over Envoy alone)",
              f"tollgate/envoy tps: {found['tps_ratio']['tollgate/envoy']:.2f}; tollgate CPU "
              f"per statement: {found['tollgate_cpu_us_per_statement']:.0f} µs",
              f"the relay floor: {found['relay_cpu_us_per_statement']:.0f} µs of CPU per "
              f"statement, tps {found['tps_ratio_relay']['relay/envoy']:.2f}x Envoy alone; "
              f"tollgate/relay: CPU {found['cpu_ratio']['tollgate/relay']:.1f}x, tps "
              f"{found['tps_ratio_relay']['tollgate/relay']:.2f}x"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15, help="per run (default 15)")
    parser.add_argument("--clients", type=int, default=4, help="pgbench -c (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per path (default 3)")
    parser.add_argument("--scale", type=int, default=10, help="pgbench -i -s (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="tollgate's (default 2)")
    parser.add_argument("--json-out", type=Path, help="also save the figures as JSON here")
    args = parser.parse_args(argv)
    settings = {k: getattr(args, k) for k in ("seconds", "clients", "rounds", "scale",
                                              "workers")}
    prepare(args.scale)
    try:
        # The processes stop (cleanup) before their folder goes: a writer's last anchor
        # would make it again.
        with (OtlpReceiver() as otlp,
              tempfile.TemporaryDirectory(prefix="tollgate-bench-pg-") as tmp,
              contextlib.ExitStack() as cleanup):
            paths = start(Path(tmp), cleanup, otlp.endpoint, args.workers)
            for path in PATHS:  # every path answers before anything is timed
                run(paths[path], 1, 1)
            reads: list[Ledger] = []
            found = figures(fronts.in_rounds(
                PATHS, args.rounds,
                lambda path: run(paths[path], args.seconds, args.clients, ledgers=reads),
                ["tps"]))
            script = Path(tmp) / "write.sql"
            script.write_text(WRITE)
            writes = ("-f", str(script), "-D", f"scale={args.scale}")
            written: list[Ledger] = []
            found["writes"] = figures(fronts.in_rounds(
                PATHS, args.rounds,
                lambda path: run(paths[path], args.seconds, args.clients, writes, written),
                ["tps"]))
    finally:
        drop()
    ledgers = {"reads": median(reads), "writes": median(written)}
    found["ledger"] = {k: v.as_json() for k, v in ledgers.items()}
    fronts.save("postgres", settings, found, args.json_out)
    print(table(found, settings))
    print(ledger_table(ledgers["reads"], found["relay_cpu_us_per_statement"]))
    print(table(found["writes"], settings, "an UPDATE of one account (the effect measured)"))
    print(ledger_table(ledgers["writes"], found["writes"]["relay_cpu_us_per_statement"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
