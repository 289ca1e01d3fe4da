"""MySQL benchmark: read loops of PyMySQL clients direct to MariaDB, through Envoy's
`tcp_proxy` alone, and through tollgate, in one run; and tollgate's CPU per statement.

Run from the repository root: `python -m bench.mysql [--seconds S] [--clients C]
[--rounds R] [--rows N] [--workers W] [--json-out PATH]` (`make bench` does, with the
defaults).

The machine's MariaDB (127.0.0.1:3306, root without a password) holds a throwaway
database of `rows` accounts and `rows` customers, read by an account of its own, three
ways (bench/fronts.py):

    direct    clients ─► MariaDB
    envoy     clients ─► Envoy (envoy/quickstart.yaml's MySQL listener, tcp_proxy)
                        ─► MariaDB: the listener's cluster pointed at the server
    tollgate  clients ─► Envoy ─► tollgate's MySQL front ─► MariaDB: the agent's token
                        checked at login, each statement read by the MySQL dialect and
                        decided by the default pack, each row masked by its detectors,
                        each statement recorded and its span exported to a real OTLP
                        receiver

Three workloads, a run of each per path and round:

    point  SELECT balance FROM accounts WHERE id = <random>: one row, nothing to mask
    rows   SELECT id, name, email FROM customers WHERE id BETWEEN <k> AND <k + 4>: five
           rows whose e-mail addresses tollgate masks (checked before anything is timed)
    write  UPDATE accounts SET balance = balance + 1 WHERE id = <random>: a write, whose
           effect tollgate measures (extproc/mysql/effect.py) before it stands; reads
           pay nothing of it

mariadb-slap cannot take this path: its first connection names no database, and the
front picks the target by the database a login names. So each client is a process of its
own (no GIL shared) running PyMySQL, as agents' Python does, in a closed loop: it
connects, waits for the others, then sends one statement after another for `seconds`;
the keys are random, so every text is new (no cache of tollgate's or the server's holds
them). PyMySQL spends more CPU per statement than the server does: the direct figure is
the clients' limit as much as MariaDB's. No path uses TLS: tollgate's target takes the
token without it (`plaintext_token`, for local development only), so the paths differ by
the gateway's work alone, not by encryption.

tollgate's CPU is the user + system time of its processes (bench/load.py's cpu_seconds)
from the start of a run to when it has settled after it (its records written), divided
by the statements the run carried.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pymysql

from bench import fronts
from bench.ledger import Ledger, kept_in, median
from bench.ledger import settle as ledger_settle
from bench.ledger import table as ledger_table
from bench.load import TOKEN, cpu_seconds, recorded_config, settle
from extproc.quickstart import stack
from tests.standins.otlp_receiver import OtlpReceiver

PATHS = ("direct", "envoy", "tollgate")
AGENT_DATABASE = "bench"  # what the clients ask the gateway for: the target's match
ROOT = {"host": "127.0.0.1", "port": 3306, "user": "root"}
RANGE = 5  # rows of one `rows` statement
WORKLOADS: dict[str, tuple[str, Callable[[random.Random, int], tuple[int, ...]]]] = {
    "point": ("SELECT balance FROM accounts WHERE id = %s",
              lambda rng, rows: (rng.randint(1, rows),)),
    "rows": ("SELECT id, name, email FROM customers WHERE id BETWEEN %s AND %s",
             lambda rng, rows: (k := rng.randint(1, rows - RANGE + 1), k + RANGE - 1)),
    "write": ("UPDATE accounts SET balance = balance + 1 WHERE id = %s",
              lambda rng, rows: (rng.randint(1, rows),)),
}
MASKED_EMAIL = "[REDACTED:EMAIL_ADDRESS]"
TIMEOUT = 60.0  # for a client to connect, or to report once its time is up


@dataclasses.dataclass(frozen=True)
class Server:
    """The throwaway database and the account that reads it (the gateway's too)."""

    database: str
    user: str
    password: str = dataclasses.field(repr=False)
    rows: int


@dataclasses.dataclass(frozen=True)
class Way:
    """Where the clients connect for one path, and the gateway's process (if any)."""

    port: int
    user: str
    password: str
    database: str
    process: stack.Process | None = None
    ledger: Path | None = None  # tollgate's cost ledger (bench/ledger.py)


@contextlib.contextmanager
def as_root() -> Iterator[Any]:
    connection = pymysql.connect(**ROOT, autocommit=True, connect_timeout=10)
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


@contextlib.contextmanager
def server(rows: int) -> Iterator[Server]:
    """A database of `rows` accounts and customers (MariaDB's sequence engine fills them),
    and an account that may read it and update the accounts; both dropped on leaving."""
    suffix = secrets.token_hex(4)
    made = Server(f"tollgate_bench_mysql_{suffix}", f"tollgate_bench_{suffix}",
                  secrets.token_hex(12), rows)
    account = f"'{made.user}'@'127.0.0.1'"
    with as_root() as cursor:
        cursor.execute(f"CREATE DATABASE {made.database}")
        cursor.execute(f"CREATE USER {account} IDENTIFIED BY '{made.password}'")
        try:
            cursor.execute(f"GRANT SELECT ON {made.database}.* TO {account}")
            cursor.execute(f"USE {made.database}")
            cursor.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
            cursor.execute(f"GRANT UPDATE ON {made.database}.accounts TO {account}")
            cursor.execute("CREATE TABLE customers (id int PRIMARY KEY, name varchar(64), "
                           "email varchar(128))")
            cursor.execute(f"INSERT INTO accounts SELECT seq, seq % 10007 FROM seq_1_to_{rows}")
            cursor.execute("INSERT INTO customers SELECT seq, CONCAT('Customer ', seq), "
                           f"CONCAT('customer', seq, '@example.com') FROM seq_1_to_{rows}")
            yield made
        finally:
            cursor.execute(f"DROP DATABASE IF EXISTS {made.database}")
            cursor.execute(f"DROP USER IF EXISTS {account}")


def tollgate_config(grpc_port: int, front_port: int, bootstrap: Path, otlp_endpoint: str,
                    work: Path, workers: int, made: Server) -> dict[str, Any]:
    """The default pack, the record in SQLite, spans to the receiver, and one mysql
    target reaching the benchmark's database as its account (its password from
    BENCH_MYSQL_PASSWORD)."""
    return {
        **recorded_config(grpc_port, workers, bootstrap, otlp_endpoint, work),
        "mysql": {"listen": f"127.0.0.1:{front_port}"},
        "targets": [{
            "name": "bench-db", "protocol": "mysql", "environment": "dev",
            "match": {"database": AGENT_DATABASE},
            "mysql": {"upstream": "127.0.0.1:3306", "user": made.user,
                      "database": made.database, "tls": "disable", "plaintext_token": True},
            "credential": {"type": "password", "from_env": "BENCH_MYSQL_PASSWORD"},
        }],
    }


def start(work: Path, cleanup: contextlib.ExitStack, otlp_endpoint: str, workers: int,
          made: Server) -> dict[str, Way]:
    """Envoy alone and Envoy with tollgate, beside the server: each path's address."""
    paths = {"direct": Way(3306, made.user, made.password, made.database)}
    for path in ("envoy", "tollgate"):
        logs = work / path
        logs.mkdir()
        front = stack.free_ports(workers) if path == "tollgate" else 3306
        ports, bootstrap = fronts.envoy_before("mysql", front, workers,
                                               workers if path == "tollgate" else 1, logs)
        process = None
        if path == "tollgate":
            config = tollgate_config(ports.ext_proc, front, bootstrap, otlp_endpoint, logs,
                                     workers, made)
            process = fronts.start_tollgate(cleanup, config, ports, workers, logs,
                                            env={"BENCH_MYSQL_PASSWORD": made.password})
        fronts.start_envoy(cleanup, ports, bootstrap, logs)
        assert ports.mysql is not None
        paths[path] = (Way(ports.mysql, "svc-bench", TOKEN, AGENT_DATABASE, process,
                           kept_in(logs)[0])
                       if path == "tollgate"
                       else Way(ports.mysql, made.user, made.password, made.database))
    return paths


def connect(way: Way) -> Any:
    return pymysql.connect(host="127.0.0.1", port=way.port, user=way.user,
                           password=way.password, database=way.database, autocommit=True,
                           connect_timeout=10)


def client(pipe: Connection, start_line: Barrier) -> None:
    """A client process: for each run the pipe brings (a path, a workload, its length and
    a seed), it connects, waits at `start_line` for the others and the benchmark, then
    sends statements for that long; (statements, seconds taken), or what went wrong,
    goes back through the pipe. None ends it."""
    while (job := pipe.recv()) is not None:
        way, workload, rows, seconds, seed = job
        try:
            connection = connect(way)
            statement, keys = WORKLOADS[workload]
            rng, count = random.Random(seed), 0
            with connection.cursor() as cursor:
                start_line.wait(TIMEOUT)
                began = time.perf_counter()
                while (now := time.perf_counter()) - began < seconds:
                    cursor.execute(statement, keys(rng, rows))
                    cursor.fetchall()
                    count += 1
            connection.close()
            pipe.send((count, now - began))
        except Exception as exc:  # reported, and the benchmark stops
            start_line.abort()  # no one waits for this client
            pipe.send(f"{type(exc).__name__}: {exc}")


class Clients:
    """`count` client processes for the whole benchmark, each of its own (no GIL shared),
    spawned once: a run hands each its job, and they start together."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._start_line = context.Barrier(count + 1)
        self._pipes: list[Connection] = []
        self._processes: list[Any] = []
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=client, args=(theirs, self._start_line),
                                      daemon=True)
            process.start()
            self._pipes.append(ours)
            self._processes.append(process)

    def start(self, way: Way, workload: str, rows: int, seconds: float) -> None:
        """Each client given the run; returns as they begin, all connected."""
        login = dataclasses.replace(way, process=None)  # what a client needs (and can pickle)
        for pipe in self._pipes:
            pipe.send((login, workload, rows, seconds, secrets.randbits(32)))
        with contextlib.suppress(threading.BrokenBarrierError):  # one failed: its report says
            self._start_line.wait(TIMEOUT)

    def reports(self, seconds: float, what: str) -> list[tuple[int, float]]:
        """Each client's (statements, seconds taken) once the run is over; SystemExit
        with the failure of the client that failed first."""
        reports = []
        for pipe in self._pipes:
            if not pipe.poll(seconds + TIMEOUT):
                raise SystemExit(f"bench.mysql: a client of {what} did not report")
            reports.append(pipe.recv())
        # The first failure, not the others it broke the start line for.
        failed = sorted((r for r in reports if isinstance(r, str)),
                        key=lambda r: r.startswith("BrokenBarrierError"))
        if failed:
            raise SystemExit(f"bench.mysql: a client of {what} failed: {failed[0]}")
        return reports

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for process in self._processes:
            process.join(TIMEOUT)


def run(clients: Clients, way: Way, workload: str, rows: int,
        seconds: float, ledgers: dict[str, list[Ledger]]) -> dict[str, float]:
    """One run of `workload` by every client: statements a second, and the gateway's CPU
    per statement (NaN without a gateway); its cost ledger added to `ledgers`."""
    counted = ledger_settle(way.ledger) if way.ledger else None
    clients.start(way, workload, rows, seconds)
    before = cpu_seconds(way.process.pid) if way.process else 0.0
    reports = clients.reports(seconds, f"{workload} on port {way.port}")
    statements = sum(count for count, _ in reports)
    cpu = float("nan")
    if way.process is not None:
        settle({"tollgate": way.process})
        cpu = (cpu_seconds(way.process.pid) - before) / statements * 1e6
    if way.ledger and counted is not None:
        ledgers.setdefault(workload, []).append(
            Ledger.between(counted, ledger_settle(way.ledger), "mysql", cpu))
    return {"qps": sum(count / taken for count, taken in reports),
            "statements": statements, "cpu_us_per_statement": cpu}


def run_path(clients: Clients, way: Way, rows: int, seconds: float,
             ledgers: dict[str, list[Ledger]]) -> dict[str, float]:
    """Each workload once on one path: its figures, prefixed by the workload's name."""
    return {f"{workload}_{key}": value for workload in WORKLOADS
            for key, value in run(clients, way, workload, rows, seconds, ledgers).items()}


def check(path: str, way: Way) -> None:
    """Every path answers, and only the gateway masks the `rows` workload's e-mails."""
    statement, _ = WORKLOADS["rows"]
    connection = connect(way)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, (1, RANGE))
            emails = {email for _, _, email in cursor.fetchall()}
    finally:
        connection.close()
    expected = ({MASKED_EMAIL} if path == "tollgate"
                else {f"customer{i}@example.com" for i in range(1, RANGE + 1)})
    if emails != expected:
        raise SystemExit(f"bench.mysql: the {path} path read e-mails {sorted(emails)}")


def figures(results: fronts.Results, clients: int) -> dict[str, Any]:
    """Each path's medians; per workload, the ratios against direct and Envoy alone, the
    mean latency (clients / statements a second: a closed loop) and tollgate's CPU."""
    median = fronts.medians(results)
    found: dict[str, Any] = {"paths": median}
    for workload in WORKLOADS:
        qps = {path: median[path][f"{workload}_qps"] for path in PATHS}
        latency = {path: clients / qps[path] * 1000 for path in PATHS}
        found[workload] = {
            "qps": qps, "latency_ms": latency,
            "qps_ratio": {"envoy/direct": qps["envoy"] / qps["direct"],
                          "tollgate/direct": qps["tollgate"] / qps["direct"],
                          "tollgate/envoy": qps["tollgate"] / qps["envoy"]},
            "added_latency_ms": {"envoy": latency["envoy"] - latency["direct"],
                                 "tollgate_over_envoy": latency["tollgate"] - latency["envoy"]},
            "tollgate_cpu_us_per_statement":
                median["tollgate"][f"{workload}_cpu_us_per_statement"],
        }
    return found


def table(found: dict[str, Any], settings: dict[str, Any]) -> str:
    lines = [f"PyMySQL loops, {settings['clients']} client processes, "
             f"{settings['seconds']} s x {settings['rounds']} rounds per path and workload, "
             f"{settings['rows']} rows, tollgate workers {settings['workers']}",
             f"{'workload':9s}{'path':10s}{'q/s':>9s}{'mean ms':>9s}{'x direct':>10s}"
             f"{'x envoy':>9s}{'CPU µs/stmt':>13s}"]
    for workload in WORKLOADS:
        figure = found[workload]
        for path in PATHS:
            qps = figure["qps"][path]
            cpu = (f"{figure['tollgate_cpu_us_per_statement']:13.0f}" if path == "tollgate"
                   else "")
            lines.append(f"{workload:9s}{path:10s}{qps:9.0f}{figure['latency_ms'][path]:9.2f}"
                         f"{qps / figure['qps']['direct']:10.2f}"
                         f"{qps / figure['qps']['envoy']:9.2f}{cpu}")
        added = figure["added_latency_ms"]["tollgate_over_envoy"]
        lines.append(f"{workload}: tollgate adds {added:.2f} ms a statement over Envoy alone, "
                     f"tollgate CPU per statement "
                     f"{figure['tollgate_cpu_us_per_statement']:.0f} µs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mysql", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="per run (default 10)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per path (default 3)")
    parser.add_argument("--rows", type=int, default=100_000,
                        help="accounts and customers (default 100,000)")
    parser.add_argument("--workers", type=int, default=2, help="tollgate's (default 2)")
    parser.add_argument("--json-out", type=Path, help="also save the figures as JSON here")
    args = parser.parse_args(argv)
    if args.rows < RANGE:
        parser.error(f"--rows: at least {RANGE}")
    settings = {k: getattr(args, k) for k in ("seconds", "clients", "rounds", "rows",
                                              "workers")}
    # The processes stop (cleanup) before their folder goes: a writer's last anchor would
    # make it again.
    with (server(args.rows) as made, OtlpReceiver() as otlp,
          tempfile.TemporaryDirectory(prefix="tollgate-bench-my-") as tmp,
          contextlib.ExitStack() as cleanup):
        paths = start(Path(tmp), cleanup, otlp.endpoint, args.workers, made)
        for path in PATHS:  # every path answers, and masks as it should, before timing
            check(path, paths[path])
        clients = Clients(args.clients)
        cleanup.callback(clients.close)
        ledgers: dict[str, list[Ledger]] = {}
        found = figures(fronts.in_rounds(
            PATHS, args.rounds,
            lambda path: run_path(clients, paths[path], args.rows, args.seconds, ledgers),
            [f"{workload}_qps" for workload in WORKLOADS]), args.clients)
    medians = {workload: median(found_) for workload, found_ in ledgers.items()}
    found["ledger"] = {workload: m.as_json() for workload, m in medians.items()}
    fronts.save("mysql", settings, found, args.json_out)
    print(table(found, settings))
    for workload, m in medians.items():
        print(f"{workload}: {ledger_table(m)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
