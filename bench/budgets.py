"""What a budget costs an exchange: the reservation before its decision (on the request
path) and the settle after it (off the path), on a SQLite file and on the machine's
PostgreSQL (a throwaway database).

Run from the repository root: `python -m bench.budgets [--calls N] [--json-out PATH]`.

    reserve, 1 budget     one budget entry taken (the transaction: the reservation
                          looked up, the window's row made if new, the conditional
                          UPDATE, the reservation written; then the totals read back
                          for input.budget)
    reserve, 3 budgets    three entries in one transaction (identity, group, tool)
    refused               a reservation that does not fit (rolled back, totals read)
    settle                the reservation corrected to what the exchange used
    race                  two stores (two replicas) reserving 200 calls at once against a
                          limit of 100: how long it takes, and how many were granted
                          (always the limit)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from extproc.activity.budgets import Amounts, BudgetBook, Entry
from extproc.config import Budget
from extproc.store.aio import open_store
from tests.support.databases import throwaway_database

CALL = Amounts(calls=1, tokens=900, cost_micros=4500)
OPEN = [Budget(name=f"b{n}", window="1h", calls=10**9) for n in range(3)]


def _entries(book: BudgetBook, budgets: list[Budget], key: str) -> list[Entry]:
    return [Entry(b, key, book.window_start(b)) for b in budgets]


async def _median_us(calls: int, work: Any) -> float:
    taken = []
    for n in range(calls):
        started = time.perf_counter_ns()
        await work(n)
        taken.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(taken)


async def figures(url: str, calls: int) -> dict[str, float]:
    store = await open_store(url)
    book = BudgetBook(store)
    try:
        one, three = _entries(book, OPEN[:1], "identity=a"), _entries(book, OPEN, "identity=a")
        full = _entries(book, [Budget(name="full", window="1h", calls=0)], "identity=a")
        found = {
            "reserve µs, 1 budget": await _median_us(
                calls, lambda n: book.reserve(f"one-{n}", one, CALL)),
            "reserve µs, 3 budgets": await _median_us(
                calls, lambda n: book.reserve(f"three-{n}", three, CALL)),
            "refused µs": await _median_us(
                calls, lambda n: book.reserve(f"full-{n}", full, CALL)),
            "settle µs": await _median_us(
                calls, lambda n: book.settle(f"one-{n}", Amounts(1, 700, 3500))),
        }
        found.update(await _race(url))
        return found
    finally:
        await store.close()


async def _race(url: str) -> dict[str, float]:
    stores = [await open_store(url) for _ in range(2)]
    try:
        books = [BudgetBook(s) for s in stores]
        limit = Budget(name="race", window="1h", calls=100)
        started = time.perf_counter()
        answers = await asyncio.gather(*(
            books[n % 2].reserve(f"race-{n}", _entries(books[n % 2], [limit], "identity=r"),
                                 Amounts(calls=1))
            for n in range(200)))
        seconds = time.perf_counter() - started
        granted = sum(a["status"] == "reserved" for a in answers)
        return {"race ms, 200 asks over 2 stores": seconds * 1000,
                "race granted (limit 100)": granted}
    finally:
        for s in stores:
            await s.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as work:
        results["SQLite"] = asyncio.run(figures(f"sqlite:///{work}/store.db", args.calls))
    with throwaway_database("tollgate_bench") as url:
        results["PostgreSQL"] = asyncio.run(figures(url, args.calls))
    for backend, found in results.items():
        print(backend)
        for name, value in found.items():
            print(f"  {name:36} {value:10.1f}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
