"""What `input.flow` (extproc/activity/flow.py) costs a decision, on each store.

A decision of a request that acts on nothing (a SELECT, a GET) reads no notes: it pays
`acts`, the test that says so. One that can act reads the identity's and the run's notes
(one round trip); an answer of untrusted content is noted before the agent reads it (one
write, awaited). Each is timed here on a SQLite file and on a PostgreSQL database of the
bench's own, with no notes and with a full page of them (SHOWN_MOST per scope), as the
wall time of the await on an otherwise idle loop, and as the CPU the process spent. And
what a request pays for the values it might carry out: a 1 KB prompt of an identity
never given a value (not read for them), of one given a value (read, carrying none),
and carrying it; and the reading for values alone.

Run from the repository root: `python -m bench.flow [--json-out PATH] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from extproc.activity.flow import SHOWN_MOST, Flow, acts
from extproc.config import Flow as Settings
from extproc.masking import Masker
from extproc.masking.fingerprints import DEFAULT_KINDS, Fingerprints
from tests.support.databases import throwaway_database

RUN = "4bf92f3577b34da6a3ce929d0e0e4736"
SELECT = {"statements": [{"kind": "select", "effects": ["read"]}]}
UPDATE = "UPDATE orders SET status = 'shipped' WHERE id = 4711"
PROMPT = ("Summarise the quarterly figures for the board, in three short paragraphs, "
          "with the open risks last. ") * 10
DELETE = {"statements": [{"kind": "delete", "effects": ["write"]}]}


async def _timed(rounds: int, step: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    """Median wall µs of `step`, and the process's CPU µs per step."""
    for _ in range(min(50, rounds)):  # connections made, statements prepared
        await step()
    walls: list[float] = []
    cpu = time.process_time()
    for _ in range(rounds):
        started = time.perf_counter()
        await step()
        walls.append((time.perf_counter() - started) * 1e6)
    return {"wall_us": round(statistics.median(walls), 1),
            "cpu_us": round((time.process_time() - cpu) / rounds * 1e6, 1)}


async def _store(url: str, rounds: int) -> dict[str, Any]:
    flow = Flow(Settings(), url)
    await flow.start()
    fingerprints = Fingerprints(Masker(b"k" * 32), DEFAULT_KINDS)

    def scan(text: str) -> Callable[[], list[str]]:
        return lambda: list(fingerprints.of_text(text))

    try:
        empty = await _timed(rounds, lambda: flow.read("sub:quiet", RUN))
        for i in range(SHOWN_MOST):
            await flow.received("sub:busy", RUN, "egress", "untrusted", (), f"{i:032x}")
        full = await _timed(rounds, lambda: flow.read("sub:busy", RUN))
        noted = await _timed(rounds, lambda: flow.received(
            "sub:noting", RUN, "egress", "untrusted", (), RUN))
        # A 1 KB prompt of an identity never given a value: not read for values at all.
        unscanned = await _timed(rounds, lambda: flow.read("sub:quiet", RUN, scan(PROMPT)))
        await flow.kept("sub:given", RUN, "crm-db", RUN,
                        fingerprints.of_text("ada.lovelace@analytical.example"))
        scanned = await _timed(rounds, lambda: flow.read("sub:given", RUN, scan(PROMPT)))
        carried = await _timed(rounds, lambda: flow.read(
            "sub:given", RUN, scan(PROMPT + " ada.lovelace@analytical.example")))
    finally:
        await flow.close()
    return {"read_no_notes": empty, "read_full_page": full, "note": noted,
            "prompt_no_values": unscanned, "prompt_scanned": scanned,
            "prompt_carries_one": carried}


def _scan_us(rounds: int) -> dict[str, float]:
    """A request read for values alone (CPU µs): a statement and a 1 KB prompt."""
    fingerprints = Fingerprints(Masker(b"k" * 32), DEFAULT_KINDS)
    found = {}
    for name, text in (("update_48b", UPDATE), ("prompt_1kb", PROMPT)):
        fingerprints.of_text(text)
        started = time.process_time()
        for _ in range(rounds):
            fingerprints.of_text(text)
        found[name] = round((time.process_time() - started) / rounds * 1e6, 1)
    return found


def _acts_us(rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        acts("postgres", SELECT, "QUERY")
    return round((time.perf_counter() - started) / rounds * 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    found: dict[str, Any] = {"acts_us": _acts_us(args.rounds * 50),
                             "scan_cpu_us": _scan_us(args.rounds)}
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-flow-") as folder:
        found["sqlite"] = asyncio.run(_store(f"sqlite:///{folder}/store.db", args.rounds))
    with throwaway_database("tollgate_bench") as url:
        found["postgresql"] = asyncio.run(_store(url, args.rounds))
    print(f"a read's decision: acts() {found['acts_us']} µs, no notes read")
    print("a request read for values alone (CPU µs): " + ", ".join(
        f"{name} {us}" for name, us in found["scan_cpu_us"].items()))
    print(f"{'store':<11} {'what':<19} {'wall µs':>8} {'CPU µs':>8}")
    for store in ("sqlite", "postgresql"):
        for what, timed in found[store].items():
            print(f"{store:<11} {what:<19} {timed['wall_us']:>8} {timed['cpu_us']:>8}")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
