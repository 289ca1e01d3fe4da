"""Budgets: the calls, LLM tokens and cost each identity, group, target or tool may use in
a window, shared by every worker and replica through the store.

A budget is *taken*, never checked and then counted: a count read first and incremented
after lets two replicas both see the last call free and both make it (the overshoot
other gateways' users report under concurrency). So before the decision the exchange's
estimate is reserved by one conditional UPDATE per budget entry, which adds it only
where the sum stays within the limit; all of an exchange's entries go in one
transaction, in one order (no two transactions wait on each other), and either all fit
or none is taken. The policy reads the outcome as `input.budget`, and the pack refuses
what did not fit (policies/budgets.rego).

When the exchange ends its reservation is *settled*: the estimate replaced by what the
exchange used (nothing, when it never went upstream; the tokens the model reported).
The reservation rows are marked settled in the same transaction that corrects the
totals, and only rows not yet settled are corrected, so a settle tried again after a
blip of the store, or asked twice, changes the totals once. A reservation whose settle
never comes (the process died) keeps its estimate: the budget errs on the side of
having been used.

Windows are fixed, aligned to the UTC epoch: an hour's budget renews on the hour. A
store that does not answer makes the budget `unknown`, which the pack refuses (503).
Nothing here holds content: budget names, identities, group, target and tool names,
and numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from extproc.codecs.durations import utc_text
from extproc.store import StoreError
from extproc.store.retry import Retrying

if TYPE_CHECKING:
    from extproc.config import Budget
    from extproc.store.aio import AsyncStore, Execute

log = logging.getLogger("tollgate.budgets")

# A limit the config leaves open, as the conditional UPDATE compares it.
_OPEN = 1 << 62
_KEEP_SECONDS = 86400  # a window's totals kept this long after it ends, for the record
_PRUNE_EVERY = 600.0
MICROS = 1_000_000  # cost is stored in millionths of the prices' currency


@dataclass(frozen=True, slots=True)
class Amounts:
    """Calls, tokens and cost (in millionths of the currency): what an exchange asks
    for, what it used, or what a window has used."""

    calls: int = 0
    tokens: int = 0
    cost_micros: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "tokens": self.tokens,
                "cost": self.cost_micros / MICROS}


@dataclass(frozen=True, slots=True)
class Entry:
    """One budget an exchange counts against: its key (`identity=alice,tool=deploy`)
    and the window it falls in (its start, seconds since the epoch)."""

    budget: Budget
    key: str
    window_start: int

    @property
    def row(self) -> tuple[str, str, int]:
        return self.budget.name, self.key, self.window_start

    def limits(self) -> tuple[int, int, int]:
        b = self.budget
        return (_OPEN if b.calls is None else b.calls,
                _OPEN if b.tokens is None else b.tokens,
                _OPEN if b.cost is None else round(b.cost * MICROS))


class _DoesNotFit(Exception):
    """An entry the reservation would take past its limit (the transaction rolls back)."""


class BudgetBook:
    """The budgets' totals and reservations in the store (tables `budget_usage` and
    `budget_reservations`)."""

    def __init__(self, store: AsyncStore, retrying: Retrying | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._store, self._clock = store, clock
        self._retrying = retrying or Retrying()
        self._pruned = 0.0

    def window_start(self, budget: Budget) -> int:
        seconds = budget.window_seconds
        return int(self._clock()) // seconds * seconds

    async def reserve(self, exchange_id: str, entries: Sequence[Entry], asked: Amounts
                      ) -> dict[str, Any]:
        """`asked` reserved in every entry for `exchange_id`, or in none when one would
        pass its limit; input.budget says which. Asked again for the same exchange (a
        second decision of one request), the reservation it holds stands."""
        ordered = sorted(entries, key=lambda e: e.row)
        try:
            used = await self._retrying(lambda: self._reserved(exchange_id, ordered, asked))
            fits = used is not None
            if used is None:
                used = await self._retrying(lambda: _used(self._store.execute, ordered))
        except (StoreError, TimeoutError) as exc:
            log.warning("budgets: the store did not answer (%s); the exchange's budgets "
                        "are unknown", exc)
            return _input("unknown", ordered, asked, None, fits=False)
        return _input("reserved" if fits else "exceeded", ordered, asked, used, fits)

    async def _reserved(self, exchange_id: str, entries: Sequence[Entry], asked: Amounts
                        ) -> dict[tuple[str, str, int], Amounts] | None:
        """The entries' totals with `asked` taken (None: one did not fit)."""
        try:
            async with self._store.transaction() as execute:
                held = await execute("SELECT 1 FROM budget_reservations WHERE exchange_id = ?",
                                     (exchange_id,))
                if held:
                    return await _used(execute, entries)
                return {entry.row: await _take(execute, exchange_id, entry, asked,
                                               int(self._clock()))
                        for entry in entries}
        except _DoesNotFit:
            return None

    async def settle(self, exchange_id: str, used: Amounts) -> bool:
        """The exchange's reservations corrected to what it `used`, once: False when
        they were settled already (or it held none)."""
        async with self._store.transaction() as execute:
            rows = await execute(
                "UPDATE budget_reservations SET settled = 1 "
                "WHERE exchange_id = ? AND settled = 0 "
                "RETURNING budget, subject, window_start, calls, tokens, cost_micros",
                (exchange_id,))
            for budget, subject, start, calls, tokens, cost in sorted(rows):
                await execute(
                    "UPDATE budget_usage SET calls = calls + ?, tokens = tokens + ?, "
                    "cost_micros = cost_micros + ? "
                    "WHERE budget = ? AND subject = ? AND window_start = ?",
                    (used.calls - calls, used.tokens - tokens, used.cost_micros - cost,
                     budget, subject, start))
            if self._clock() - self._pruned > _PRUNE_EVERY:
                self._pruned = self._clock()
                await _prune(execute, int(self._clock()))
        return bool(rows)


async def _used(execute: Execute, entries: Sequence[Entry]
                ) -> dict[tuple[str, str, int], Amounts]:
    """The entries' windows' totals (read through `execute`: in a transaction, its own)."""
    found: dict[tuple[str, str, int], Amounts] = {}
    for entry in entries:
        rows = await execute("SELECT calls, tokens, cost_micros FROM budget_usage "
                             "WHERE budget = ? AND subject = ? AND window_start = ?", entry.row)
        found[entry.row] = Amounts(*rows[0]) if rows else Amounts()
    return found


async def _take(execute: Execute, exchange_id: str, entry: Entry, asked: Amounts,
                now: int) -> Amounts:
    """`asked` added to the entry's window where it fits (_DoesNotFit where not), and
    the reservation written, in the caller's transaction: the window's new totals."""
    await execute(
        "INSERT INTO budget_usage (budget, subject, window_start, window_seconds, calls, "
        "tokens, cost_micros) VALUES (?, ?, ?, ?, 0, 0, 0) "
        "ON CONFLICT (budget, subject, window_start) DO NOTHING",
        (*entry.row, entry.budget.window_seconds))
    calls, tokens, cost = entry.limits()
    # The comparison is made on the row as this transaction updates it: PostgreSQL
    # re-reads a row another transaction changed meanwhile, SQLite has one writer.
    taken = await execute(
        "UPDATE budget_usage SET calls = calls + ?, tokens = tokens + ?, "
        "cost_micros = cost_micros + ? "
        "WHERE budget = ? AND subject = ? AND window_start = ? "
        "AND calls + ? <= ? AND tokens + ? <= ? AND cost_micros + ? <= ? "
        "RETURNING calls, tokens, cost_micros",
        (asked.calls, asked.tokens, asked.cost_micros, *entry.row,
         asked.calls, calls, asked.tokens, tokens, asked.cost_micros, cost))
    if not taken:
        raise _DoesNotFit(entry.budget.name)
    await execute(
        "INSERT INTO budget_reservations (exchange_id, budget, subject, window_start, "
        "calls, tokens, cost_micros, settled, reserved_s) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
        (exchange_id, *entry.row, asked.calls, asked.tokens, asked.cost_micros, now))
    return Amounts(*taken[0])


async def _prune(execute: Execute, now: int) -> None:
    """Windows over for a day, and their reservations, deleted."""
    await execute("DELETE FROM budget_reservations WHERE reserved_s < ?",
                  (now - 31 * 86400 - _KEEP_SECONDS,))
    await execute("DELETE FROM budget_usage WHERE window_start + window_seconds < ?",
                  (now - _KEEP_SECONDS,))


def _input(status: str, entries: Sequence[Entry], asked: Amounts,
           used: dict[tuple[str, str, int], Amounts] | None, fits: bool) -> dict[str, Any]:
    """input.budget: the exchange's budgets, what each has used (this exchange's
    reservation included when it `fits`), and which limits the exchange would pass."""
    listed = []
    for entry in entries:
        b = entry.budget
        now = used.get(entry.row) if used is not None else None
        exceeded = []
        if now is not None and not fits:
            for name, total, ask, limit in zip(
                    ("calls", "tokens", "cost"),
                    (now.calls, now.tokens, now.cost_micros),
                    (asked.calls, asked.tokens, asked.cost_micros), entry.limits(),
                    strict=True):
                if total + ask > limit:
                    exceeded.append(name)
        listed.append({
            "name": b.name, "key": entry.key, "window": b.window,
            "window_start": entry.window_start,
            "renews": utc_text(entry.window_start + b.window_seconds),
            "limit": {"calls": b.calls, "tokens": b.tokens, "cost": b.cost},
            "used": now.as_json() if now is not None else None,
            "exceeded": exceeded,
        })
    return {"status": status, "asked": asked.as_json(), "budgets": listed}
