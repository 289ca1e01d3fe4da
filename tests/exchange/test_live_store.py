"""Live sessions and locks in a real store (SQLite and PostgreSQL): what one process
writes, another lists, ends and locks, and a replica gone silent no longer lists."""

from __future__ import annotations

import pytest

from extproc.exchange.live import LiveSessions, Lock, now_us
from extproc.exchange.live_store import LiveStore, LiveSync
from extproc.store.aio import AsyncStore


async def beat(store: AsyncStore, process: str, seen_us: int) -> None:
    """`process` heard of at `seen_us`, as exchange/revisions.py writes it."""
    await store.execute(
        "INSERT INTO policy_revisions (process, revision, seen_us) VALUES (?, 'r', ?) "
        "ON CONFLICT (process) DO UPDATE SET seen_us = excluded.seen_us", (process, seen_us))


async def test_a_process_lists_its_sessions_counts_in_batches_and_closes_them(
        store: AsyncStore) -> None:
    live = LiveSessions()
    sync = LiveSync(LiveStore(store, 60), live, "replica-a")
    await beat(store, "replica-a", now_us())
    session = live.open("s-1", "postgres", "ada", "shop")
    await sync.write()
    session.counted(refused=False)
    session.counted(refused=True)
    session.holds = 1
    # Counts wait for the next write: nothing per exchange.
    (listed,) = await LiveStore(store, 60).listed()
    assert (listed.exchanges, listed.refusals, listed.holds) == (0, 0, 0)
    await sync.write()
    (listed,) = await LiveStore(store, 60).listed(identity="ada", front="postgres")
    assert (listed.session_id, listed.replica, listed.target) == ("s-1", "replica-a", "shop")
    assert (listed.exchanges, listed.refusals, listed.holds) == (2, 1, 1)
    assert await LiveStore(store, 60).listed(identity="bob") == []
    live.close(session)
    await sync.write()
    assert await LiveStore(store, 60).listed() == []


async def test_an_end_asked_elsewhere_reaches_the_holding_process_at_its_poll(
        store: AsyncStore) -> None:
    live = LiveSessions()
    sync = LiveSync(LiveStore(store, 60), live, "replica-b")
    await beat(store, "replica-b", now_us())
    session = live.open("s-2", "ssh", "ada", "web-1")
    await sync.write()
    asked = await LiveStore(store, 60).ask_end("s-2", "runaway", "sam")
    assert asked is not None and (asked.end_reason, asked.end_by) == ("runaway", "sam")
    assert not session.ended.is_set()
    await sync.poll()
    assert session.ended.is_set()
    assert session.farewell() == "tollgate: this session was ended by sam: runaway"
    # The first ask stands; an unknown session is none.
    again = await LiveStore(store, 60).ask_end("s-2", "another", "tom")
    assert again is not None and again.end_by == "sam"
    assert await LiveStore(store, 60).ask_end("nope", "x", "sam") is None


async def test_a_lock_ends_its_identitys_sessions_refuses_and_lapses(
        store: AsyncStore) -> None:
    live = LiveSessions()
    sync = LiveSync(LiveStore(store, 60), live, "replica-c")
    ada = live.open("s-3", "mysql", "ada", "shop-my")
    bob = live.open("s-4", "mysql", "bob", "shop-my")
    shared = LiveStore(store, 60)
    await shared.lock(Lock("ada", "leaked token", "sam", now_us() + 3_600_000_000))
    await shared.lock(Lock("old", "lapsed", "sam", now_us() - 1))
    await sync.poll()
    assert ada.ended.is_set() and not bob.ended.is_set()
    refused = live.refusal("ada", None)
    assert refused is not None and refused.error == "locked"
    assert refused.message.startswith("identity ada is locked until ")
    assert refused.message.endswith(" by sam: leaked token")
    assert live.refusal("bob", bob) is None and live.refusal("old", None) is None
    # A session opened while locked ends at once; unlocked, the next poll lets it be.
    assert live.open("s-5", "ssh", "ada", "web-1").ended.is_set()
    assert (await shared.unlock("ada")) is not None
    assert await shared.unlock("ada") is None
    await sync.poll()
    assert live.refusal("ada", None) is None
    assert [lock.identity for lock in await shared.locks()] == []


@pytest.mark.parametrize("silent_for", [0, 120])
async def test_a_replica_gone_silent_is_not_listed_and_is_pruned(
        store: AsyncStore, silent_for: int) -> None:
    live = LiveSessions()
    session = live.open("s-6", "postgres", "ada", "shop")
    session.started_us -= 300_000_000  # it began five minutes ago
    await LiveSync(LiveStore(store, 60), live, "replica-d").write()
    await beat(store, "replica-d", now_us() - silent_for * 1_000_000)
    shared = LiveStore(store, 60)
    alive = silent_for < 60
    assert [s.session_id for s in await shared.listed()] == (["s-6"] if alive else [])
    assert (await shared.get("s-6") is not None) is alive
    assert (await shared.ask_end("s-6", "x", "sam") is not None) is alive
    await shared.prune()
    rows = await store.execute("SELECT session_id FROM live_sessions")
    assert [r[0] for r in rows] == (["s-6"] if alive else [])
