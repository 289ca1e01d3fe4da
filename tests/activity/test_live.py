"""The live counts against real stores (a SQLite file, a PostgreSQL database of the test's
own), two `Live` instances standing for two workers or replicas: what one writes, the
other reads at its next decision, with no sync between; increments are atomic; windows
end; a store that does not answer makes the reading unknown and loses no count."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest

from extproc.activity import live as live_counts
from extproc.activity.live import FRESH_SECONDS, SEEN_MOST, UNKNOWN, Live
from extproc.activity.tracker import Tracker
from extproc.config import Activity
from extproc.store import connect
from extproc.store.retry import BUDGET
from tests.activity.test_tracker import SHOP, evidence, rows, who

TIMEOUT = 2.0


@pytest.fixture
async def two(store_url: str) -> AsyncIterator[tuple[Live, Live]]:
    """Two processes' live counts on one store."""
    first, second = Live(store_url, TIMEOUT), Live(store_url, TIMEOUT)
    await first.start()
    await second.start()
    yield first, second
    await first.close()
    await second.close()


async def reading(live: Live, sub: str = "sub:agent-1", jti: str | None = "jti:t-1",
                  target: str | None = "shop", groups: tuple[str, ...] = ("agents",),
                  address: str | None = "10.0.0.7",
                  environment: str | None = "production") -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        await live.read(sub, jti, target, groups, address, environment))
    return found


async def until(check: Callable[[], Any], what: str, seconds: float = 10.0) -> Any:
    """An asynchronous condition's first truthy value, waited for with a deadline."""
    deadline = time.monotonic() + seconds
    while not (found := await check()):
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        await asyncio.sleep(0.01)
    return found


async def test_a_refusal_counted_by_one_process_is_read_by_the_other_at_once(
        two: tuple[Live, Live]) -> None:
    first, second = two
    assert (await reading(second))["identity"] == {"minute": {"refusals": 0}}
    assert await first.refused("sub:agent-1") == 1
    assert await second.refused("sub:agent-1") == 2
    # No sync in between: the next decision of either reads both.
    for live in two:
        assert (await reading(live))["identity"]["minute"]["refusals"] == 2
    assert (await reading(first, sub="sub:agent-2"))["identity"]["minute"]["refusals"] == 0


async def test_concurrent_refusals_over_two_processes_are_each_counted_once(
        two: tuple[Live, Live]) -> None:
    """The increment-and-read is atomic: 40 refusals at once, 20 per process, leave 40,
    and each saw a count of its own (the one that reaches a limit is exactly one)."""
    counts = await asyncio.gather(*(two[n % 2].refused("sub:burst") for n in range(40)))
    if time.time() % 60 > 1:  # not split by a clock minute: one row, 1..40
        assert sorted(c for c in counts if c is not None) == list(range(1, 41))
    assert (await reading(two[0], sub="sub:burst"))["identity"]["minute"]["refusals"] == 40


async def test_a_tokens_addresses_and_environments_are_shared_at_decision_time(
        two: tuple[Live, Live], monkeypatch: pytest.MonkeyPatch) -> None:
    # The readings' own clocks, moved by the test: how long a reading is reused is what
    # is tested, not how fast the store answers. The wall clock stands still: a token's
    # values are upserted again in each clock minute, and a minute that turned between
    # two readings made the second one fresh (the suite once ran it across one).
    now, wall = [1000.0], time.time()
    monkeypatch.setattr(live_counts, "time",
                        SimpleNamespace(time=lambda: wall, monotonic=lambda: now[0]))
    first, second = two
    # A reading shows what was written before it: this exchange's own values are the
    # pack's to add.
    assert (await reading(first, address="10.0.0.7"))["token"] == {
        "seen": {"addresses": [], "environments": []}}
    copied = await reading(second, address="10.0.0.8", environment="staging")
    assert copied["token"] == {"seen": {"addresses": ["10.0.0.7"],
                                        "environments": ["production"]}}
    # The first process's own next request adds nothing new: it reuses its reading
    # (FRESH_SECONDS), then reads the copy's values afresh.
    assert (await reading(first, address="10.0.0.7"))["token"]["seen"]["addresses"] == []

    async def both_seen() -> dict[str, Any]:
        now[0] += FRESH_SECONDS  # each look a fresh reading
        back = await reading(first, address="10.0.0.7")
        return back if len(back["token"]["seen"]["addresses"]) == 2 else {}

    back = await until(both_seen, "the copy's address")
    assert back["token"]["seen"]["addresses"] == ["10.0.0.7", "10.0.0.8"]
    assert back["token"]["seen"]["environments"] == ["production", "staging"]
    assert (await reading(first, jti="jti:other"))["token"]["seen"]["addresses"] == []
    assert (await reading(first, jti=None))["token"] is None


async def test_a_token_seen_from_many_addresses_reads_a_bounded_list(
        two: tuple[Live, Live]) -> None:
    for n in range(SEEN_MOST + 5):
        await reading(two[n % 2], address=f"10.1.0.{n}")
    seen = (await reading(two[0]))["token"]["seen"]
    assert len(seen["addresses"]) + len(seen["environments"]) <= SEEN_MOST + 1
    assert len(seen["addresses"]) >= SEEN_MOST - 1


async def test_masked_values_are_summed_per_target_and_group_over_identities(
        two: tuple[Live, Live]) -> None:
    first, second = two
    first.count_masked("shop", ["agents", "sales"], {"email": 3, "phone": 1})
    second.count_masked("shop", ["agents"], {"email": 4})
    second.count_masked("crm", ["sales"], {"us_ssn": 2})

    async def summed() -> bool:
        found = await reading(first, groups=("agents", "sales"))
        return bool(found["target"] == {"hour": {"masked": {"email": 7, "phone": 1}}}
                    and found["groups"] == {
                        "agents": {"hour": {"masked": {"email": 7, "phone": 1}}},
                        "sales": {"hour": {"masked": {"email": 3, "phone": 1, "us_ssn": 2}}}})

    await until(summed, "sums over both processes")
    assert (await reading(second, target=None, groups=()))["target"] is None


async def test_windows_end(store_url: str) -> None:
    """Refusals count within the minute (the last one weighted), masked values within
    the hour, a token's values within the day."""
    live = Live(store_url, TIMEOUT)
    await live.start()
    try:
        await reading(live)  # the tables exist
        minute = int(time.time() // 60)
        store = connect(store_url)
        try:
            store.executemany(
                "INSERT INTO activity_live (key, minute, metric, value) VALUES (?, ?, ?, ?)",
                [("sub:old", minute - 2, "refusals", 50),
                 ("target:old", minute - 60, "masked:email", 70),
                 ("target:old", minute - 59, "masked:email", 5)])
            store.executemany(
                "INSERT INTO activity_seen (key, value, last_minute) VALUES (?, ?, ?)",
                [("jti:old", "address:10.0.0.1", minute - 1440),
                 ("jti:old", "address:10.0.0.2", minute - 1439)])
        finally:
            store.close()
        found = await reading(live, sub="sub:old", jti="jti:old", target="old", groups=(),
                              address=None, environment=None)
        assert found["identity"]["minute"]["refusals"] == 0
        assert found["target"]["hour"]["masked"] == {"email": 5}
        assert found["token"]["seen"]["addresses"] == ["10.0.0.2"]
    finally:
        await live.close()


async def test_an_unreachable_store_makes_the_reading_unknown_and_loses_no_count(
        closed_port: int, sqlite_url: str) -> None:
    live = Live(f"postgresql://postgres@127.0.0.1:{closed_port}/nothing", 0.3)
    await live.start()
    try:
        started = time.monotonic()
        assert await live.read("sub:a", "jti:b", "shop", ["agents"], "10.0.0.7",
                               "production") == UNKNOWN
        # Retried through what could be a blip, one try's timeout at most past it ...
        assert time.monotonic() - started < BUDGET + 0.3 + 0.5, "waited past the budget"
        # ... and then the store is out: the next decision does not wait.
        started = time.monotonic()
        assert await live.read("sub:b", None, "shop", [], None, None) == UNKNOWN
        assert time.monotonic() - started < 0.1, "waited on a store known to be out"
        assert await live.refused("sub:a") is None
        live.count_masked("shop", [], {"email": 2})
        assert not await live.flush()
    finally:
        await live.close()
    # What could not be written is kept: the same deltas reach a store that answers.
    kept = Live(sqlite_url, TIMEOUT)
    kept._pending = live._pending  # the deltas the closed store kept, on a working one
    await kept.start()
    try:
        assert await kept.flush()
        found = await reading(kept, sub="sub:a", groups=())
        assert found["identity"]["minute"]["refusals"] == 1
        assert found["target"]["hour"]["masked"] == {"email": 2}
    finally:
        await kept.close()


async def test_the_tracker_puts_live_counts_in_the_input_for_a_request(
        sqlite_url: str) -> None:
    tracker = Tracker(Activity(), sqlite_url)
    await tracker.start()
    try:
        await tracker.refused(who())
        tracker.observe(evidence(masked={"email": 2}))
        assert tracker.live is not None and await tracker.live.flush()
        found = json.loads(await tracker.input_json(who(), False, SHOP, "10.0.0.7"))
        assert found["live"]["status"] == "known"
        assert found["live"]["identity"]["minute"]["refusals"] == 1
        assert found["live"]["target"]["hour"]["masked"] == {"email": 2}
        assert found["live"]["groups"]["agents"]["hour"]["masked"] == {"email": 2}
        # A response's decision reads none.
        assert json.loads(await tracker.input_json(who(), False))["live"] is None
    finally:
        await tracker.close()
    off = Tracker(Activity(live=False), sqlite_url)
    assert off.live is None
    assert json.loads(await off.input_json(who(), False, SHOP, "10.0.0.7"))["live"] is None
    assert rows(sqlite_url, "SELECT key, metric, value FROM activity_live ORDER BY key") == [
        ("group:agents", "masked:email", 2), ("sub:agent-1", "refusals", 1),
        ("target:shop", "masked:email", 2)]


async def test_a_store_that_cannot_write_holds_no_reading_behind_a_write(
        sqlite_url: str) -> None:
    """SQLite: while another holds the write lock (a `tollgate audit`, a stuck writer),
    a write of the counts waits out busy_timeout (5 s); a decision's reading, queued on
    the same thread behind it, waited as long, past Envoy's 2 s (a 504). A reading only
    reads: it is answered at once, and the token's new address it would upsert is kept
    and upserted once the store writes again."""
    live, other = Live(sqlite_url, TIMEOUT), Live(sqlite_url, TIMEOUT)
    await live.start()
    await other.start()
    assert (await reading(live, address="10.0.0.7"))["status"] == "known"
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        live.count_masked("shop", [], {"email": 1})
        flushing = asyncio.create_task(live.flush())
        await asyncio.sleep(0)  # a yield: the flush's write is on its thread first
        started = time.monotonic()
        found = await reading(live, address="10.0.0.8")
        assert time.monotonic() - started < BUDGET + 0.5, "the reading waited on a write"
        assert found["status"] == "known"
        assert found["token"]["seen"]["addresses"] == ["10.0.0.7"]
        assert not await flushing  # the store did not take the counts: they are kept
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    try:
        assert await live.flush()
        # The address the store could not take is upserted by the next reading meeting it.
        await reading(live, address="10.0.0.8")

        async def both() -> bool:
            found = await reading(other, jti="jti:t-1", address=None, environment=None)
            return found["token"]["seen"]["addresses"] == ["10.0.0.7", "10.0.0.8"]

        await until(both, "the address upserted once the store writes")
        assert (await reading(other, sub="sub:x", groups=()))["target"]["hour"]["masked"] \
            == {"email": 1}
    finally:
        await live.close()
        await other.close()


async def test_a_refusal_is_answered_while_another_holds_the_write_lock(
        sqlite_url: str) -> None:
    """SQLite: a refusal's count is written before it is answered, but the write lock can
    be another process's for longer than any reading waits (the record's writer frozen
    mid-commit: a 504 in tests/faults/test_tree_kill.py when the count waited out a 5 s
    live timeout). However long the live timeout, the answer waits no longer than a
    reading's retries; the count is written once the store takes it, and once only
    (the write that was on its way lands: it is not also kept to be written again)."""
    live = Live(sqlite_url, 5.0)
    await live.start()
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        assert await live.refused("sub:held") is None
        assert time.monotonic() - started < BUDGET + 0.5, "the refusal waited on the lock"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    try:
        async def written() -> bool:
            await live.flush()
            return rows(sqlite_url, "SELECT key, metric, value FROM activity_live") == [
                ("sub:held", "refusals", 1)]

        await until(written, "the refusal counted once the store writes")
    finally:
        await live.close()
