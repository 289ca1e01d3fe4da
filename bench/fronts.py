"""What the benchmarks of tollgate's database fronts share (bench/postgres.py,
bench/mysql.py): each path's Envoy, tollgate behind one of them, the paths run in rounds
of rotating order, each path's medians, and the saved report.

A path is one way a client reaches the database: directly, through Envoy's `tcp_proxy`
alone (the quickstart bootstrap's listener for the protocol, its cluster pointed at the
database), through Envoy and tollgate's front. Each round runs every path once, in a
rotating order, so a shared machine's drift falls on all alike; a path's figure is the
median of its rounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from bench.ledger import kept_in
from extproc import envoy_bootstrap
from extproc.quickstart import stack

Protocol = Literal["postgres", "mysql"]
Results = dict[str, list[dict[str, float]]]


def stopped_on_exit(cleanup: contextlib.ExitStack, process: stack.Process) -> stack.Process:
    cleanup.callback(process.stop)
    return process


def envoy_before(protocol: Protocol, front: int, workers: int, endpoints: int,
                 logs: Path) -> tuple[envoy_bootstrap.Ports, Path]:
    """The ports and bootstrap of one path's Envoy: the `protocol` listener on a free port,
    its tcp_proxy to `front` and the `endpoints` - 1 ports after it (a database is one
    endpoint; a front, one per worker), `workers` ext_proc ports for a tollgate of that
    many workers. Written to `logs`, not started: tollgate reads it first."""
    ports = envoy_bootstrap.Ports(
        listener=stack.free_port(), admin=stack.free_port(), ext_proc=stack.free_ports(workers),
        upstream=stack.free_port(), mcp=stack.free_port(),
        **{protocol: stack.free_port(), f"{protocol}_front": front})
    bootstrap = envoy_bootstrap.write(
        envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports, endpoints),
        logs / "envoy.yaml")
    return ports, bootstrap


def start_envoy(cleanup: contextlib.ExitStack, ports: envoy_bootstrap.Ports, bootstrap: Path,
                logs: Path) -> stack.Process:
    return stopped_on_exit(cleanup, stack.start_envoy(bootstrap, ports.admin, logs))


def start_tollgate(cleanup: contextlib.ExitStack, config: dict[str, Any],
                   ports: envoy_bootstrap.Ports, workers: int, logs: Path,
                   env: dict[str, str] | None = None) -> stack.Process:
    """tollgate with `config`, written to `logs`, its workers on `ports.ext_proc` on;
    `env` added to its environment (a target's credential); its cost ledger kept in
    `logs`' `ledger` folder (bench/ledger.py's kept_in)."""
    path = logs / "tollgate.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    _, counting = kept_in(logs)
    return stopped_on_exit(cleanup, stack.start_tollgate(
        path, ports.ext_proc, logs, env={**(env or {}), **counting}, workers=workers))



def in_rounds(paths: Sequence[str], rounds: int, run: Callable[[str], dict[str, float]],
              shown: Sequence[str]) -> Results:
    """`run` of each path, `rounds` times, each round in another order; the `shown`
    figures of each run printed to stderr as it ends."""
    results: Results = {path: [] for path in paths}
    for round_ in range(rounds):
        turn = round_ % len(paths)
        for path in [*paths[turn:], *paths[:turn]]:
            results[path].append(run(path))
            figures = "  ".join(f"{key} {results[path][-1][key]:9.0f}" for key in shown)
            print(f"  round {round_ + 1} {path:9s} {figures}", file=sys.stderr, flush=True)
    return results


def medians(results: Results) -> dict[str, dict[str, float]]:
    """Each path's median of each figure over its rounds."""
    return {path: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            for path, runs in results.items()}


def save(benchmark: str, settings: dict[str, Any], found: dict[str, Any],
         json_out: Path | None) -> None:
    """The figures, with when, where and how they were measured, as JSON at `json_out`."""
    if json_out is None:
        return
    report = {"benchmark": benchmark, "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "settings": settings, **found}
    json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")
