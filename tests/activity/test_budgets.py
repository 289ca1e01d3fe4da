"""Budgets in a real store (SQLite and PostgreSQL; extproc/activity/budgets.py): a
reservation takes an entry only where it fits, all of an exchange's entries or none;
concurrent reservations through two processes' stores never pass the limit; a settle
corrects the totals once however often it is asked; windows renew."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

from extproc.activity.budgets import Amounts, BudgetBook, Entry
from extproc.config import Budget
from extproc.store.aio import AsyncStore, open_store

CALL = Amounts(calls=1)
HOUR = 3600


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def entry(book: BudgetBook, budget: Budget, key: str = "identity=alice") -> Entry:
    return Entry(budget, key, book.window_start(budget))


def used(answer: dict[str, Any], name: str) -> Any:
    return next(b for b in answer["budgets"] if b["name"] == name)["used"]


async def test_a_reservation_takes_what_fits_and_refuses_past_the_limit(
        store: AsyncStore) -> None:
    book = BudgetBook(store, clock=Clock())
    calls = Budget(name="calls", window="1h", calls=2)
    for n in (1, 2):
        answer = await book.reserve(f"x{n}", [entry(book, calls)], CALL)
        assert answer["status"] == "reserved"
        assert used(answer, "calls")["calls"] == n
    refused = await book.reserve("x3", [entry(book, calls)], CALL)
    assert refused["status"] == "exceeded"
    [listed] = refused["budgets"]
    assert listed["exceeded"] == ["calls"] and listed["used"]["calls"] == 2
    assert listed["limit"] == {"calls": 2, "tokens": None, "cost": None}
    start = listed["window_start"]
    assert start % HOUR == 0 and listed["renews"] == datetime.datetime.fromtimestamp(
        start + HOUR, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Another key has a budget of its own.
    other = await book.reserve("x4", [entry(book, calls, "identity=bob")], CALL)
    assert other["status"] == "reserved"


async def test_an_exchange_takes_all_its_entries_or_none(store: AsyncStore) -> None:
    book = BudgetBook(store, clock=Clock())
    wide = Budget(name="wide", window="1d", calls=10)
    narrow = Budget(name="narrow", window="1h", tokens=100)
    ask = Amounts(calls=1, tokens=60)
    assert (await book.reserve("a", [entry(book, wide), entry(book, narrow)], ask)
            )["status"] == "reserved"
    refused = await book.reserve("b", [entry(book, wide), entry(book, narrow)], ask)
    assert refused["status"] == "exceeded"
    # The wide budget, which had room, took nothing of the refused exchange.
    assert used(refused, "wide")["calls"] == 1
    assert [b["exceeded"] for b in refused["budgets"]] == [["tokens"], []]


async def test_a_second_decision_of_one_exchange_keeps_its_reservation(
        store: AsyncStore) -> None:
    book = BudgetBook(store, clock=Clock())
    calls = Budget(name="calls", window="1h", calls=1)
    assert (await book.reserve("x", [entry(book, calls)], CALL))["status"] == "reserved"
    again = await book.reserve("x", [entry(book, calls)], CALL)
    assert again["status"] == "reserved" and used(again, "calls")["calls"] == 1


async def test_a_settle_corrects_the_totals_once(store: AsyncStore) -> None:
    book = BudgetBook(store, clock=Clock())
    tokens = Budget(name="tokens", window="1h", tokens=10_000, cost=1.0)
    ask = Amounts(calls=1, tokens=4000, cost_micros=400_000)
    await book.reserve("x", [entry(book, tokens)], ask)
    spent = Amounts(calls=1, tokens=1200, cost_micros=120_000)
    assert await book.settle("x", spent)
    # Tried again (a retry after a blip that had committed), and twice at once.
    assert not await book.settle("x", spent)
    assert await asyncio.gather(book.settle("x", spent), book.settle("x", spent)) \
        == [False, False]
    answer = await book.reserve("y", [entry(book, tokens)], Amounts())
    assert used(answer, "tokens") == {"calls": 1, "tokens": 1200, "cost": 0.12}
    # A refused exchange's settle gives everything back.
    await book.reserve("z", [entry(book, tokens)], ask)
    await book.settle("z", Amounts())
    answer = await book.reserve("w", [entry(book, tokens)], Amounts())
    assert used(answer, "tokens")["tokens"] == 1200


async def test_the_window_renews(store: AsyncStore) -> None:
    clock = Clock(1_800_000_000.0 - 1_800_000_000 % HOUR + HOUR - 1)
    book = BudgetBook(store, clock=clock)
    calls = Budget(name="calls", window="1h", calls=1)
    assert (await book.reserve("a", [entry(book, calls)], CALL))["status"] == "reserved"
    assert (await book.reserve("b", [entry(book, calls)], CALL))["status"] == "exceeded"
    clock.now += 1  # the next hour
    assert (await book.reserve("c", [entry(book, calls)], CALL))["status"] == "reserved"


async def test_two_processes_racing_never_pass_the_limit(store_url: str) -> None:
    """Two stores on one database (two replicas), each reserving concurrently: exactly
    the limit is granted, whichever wins each race."""
    stores = [await open_store(store_url) for _ in range(2)]
    try:
        books = [BudgetBook(s) for s in stores]
        calls = Budget(name="calls", window="1h", calls=7)
        answers = await asyncio.gather(*(
            books[n % 2].reserve(f"x{n}", [entry(books[n % 2], calls)], CALL)
            for n in range(30)))
        assert sum(a["status"] == "reserved" for a in answers) == 7
        assert {a["status"] for a in answers} == {"reserved", "exceeded"}
        final = await books[0].reserve("last", [entry(books[0], calls)], CALL)
        assert used(final, "calls")["calls"] == 7
    finally:
        for s in stores:
            await s.close()


async def test_a_store_that_does_not_answer_makes_the_budget_unknown(
        sqlite_url: str) -> None:
    store = await open_store(sqlite_url)
    book = BudgetBook(store)
    calls = Budget(name="calls", window="1h", calls=1)
    await store.close()
    answer = await book.reserve("x", [entry(book, calls)], CALL)
    assert answer["status"] == "unknown" and answer["budgets"][0]["used"] is None


@pytest.mark.parametrize(("window", "bad"), [("30s", "from 60s to 31d"),
                                             ("1y", "a duration such as")])
def test_a_budget_window_out_of_bounds_is_refused(window: str, bad: str) -> None:
    from extproc.config import ConfigError, parse

    with pytest.raises(ConfigError, match=bad):
        parse({"targets": [{"name": "t", "match": {"route": "r"}}],
               "budgets": {"limits": [{"name": "b", "window": window, "calls": 1}]}})
