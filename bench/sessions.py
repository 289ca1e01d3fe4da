"""What resolving sessions costs the recording writer, per record, on SQLite and PostgreSQL.

Run from the repository root: `python -m bench.sessions [--rounds R] [--json-out PATH]`.

The writer resolves a batch's sessions before chaining it (extproc/recording/sessions.py):
exchanges that name a session of their own (an `x-session-id`) cost no I/O; those grouped
by token cost one transaction per batch, and in it one upsert statement for all its
tokens (a second when a token's exchanges in the batch are further apart than the idle
gap, which a batch of 50 seldom is). Timed here with `time.perf_counter_ns`:
`sessions.resolve` on batches of 50 exchanges of one token, of 10 tokens, and of 50 (one
each), round after round on one store (the marks there, as in a running writer), on a
SQLite file (WAL, synchronous=FULL: a commit is an fsync, as the writer's) and on the
machine's PostgreSQL (a throwaway database); the median of the rounds, divided by the
batch's 50.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from extproc.recording import Evidence
from extproc.recording.sessions import resolve
from extproc.store import connect
from tests.support.databases import throwaway_database

BATCH = 50
IDLE_US = 30 * 60_000_000


def batch(tokens: int, header: bool = False) -> list[Evidence]:
    """A batch of BATCH exchanges of `tokens` tokens (or each naming its session)."""
    found = []
    for n in range(BATCH):
        headers = {"x-session-id": "run-1"} if header else {}
        found.append(Evidence(
            "exchange", time.time(), f"{n:032x}", f"{n:016x}", headers,
            {"authenticated": True, "sub": "agent", "iss": None, "aud": [], "email": None,
             "groups": [], "jti": f"token-{n % tokens}"}))
    return found


def per_record_us(url: str, evidences: list[Evidence], rounds: int) -> float:
    connection = connect(url)
    taken = []
    try:
        for _ in range(rounds):
            for evidence in evidences:
                evidence.started = time.time()
            started = time.perf_counter_ns()
            resolve(connection, evidences, IDLE_US)
            taken.append((time.perf_counter_ns() - started) / BATCH / 1000)
    finally:
        connection.close()
    return statistics.median(taken)


def measured(url: str, rounds: int) -> dict[str, float]:
    return {
        what: per_record_us(url, evidences, rounds)
        for what, evidences in (("x-session-id (no I/O)", batch(1, header=True)),
                                ("1 token", batch(1)), ("10 tokens", batch(10)),
                                ("50 tokens", batch(50)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        results["SQLite"] = measured(f"sqlite:///{work}/store.db", args.rounds)
    with throwaway_database("tollgate_bench") as url:
        results["PostgreSQL"] = measured(url, args.rounds)
    print(f"µs per record, batches of {BATCH}, median of {args.rounds}")
    for store, figures in results.items():
        for name, value in figures.items():
            print(f"  {store:<11} {name:<22} {value:8.1f}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
