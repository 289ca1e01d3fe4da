"""input.egress.seen on a real SQLite store: first-seen destinations per identity and for
anyone, what a process remembers, what a fresh process reads back, and a store that fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from extproc.activity.seen import Seen
from extproc.store.aio import AsyncStore, open_store
from extproc.store.retry import BUDGET

PYPI = "pypi.org:443"
NEW = {"identity": False, "anyone": False, "status": "known"}
UNKNOWN = {"identity": False, "anyone": False, "status": "unknown"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    opened = await open_store(f"sqlite:///{tmp_path}/store.db")
    yield opened
    await opened.close()


async def stored(store: AsyncStore) -> set[tuple[str, str]]:
    rows = await store.execute("SELECT identity, destination FROM egress_destinations")
    return {(str(who), str(where)) for who, where in rows}


async def test_a_destination_never_reached_is_new_to_everyone(store: AsyncStore) -> None:
    assert await Seen(store).lookup("alice", PYPI) == NEW


async def test_a_destination_reached_is_known_at_once_and_stored(store: AsyncStore) -> None:
    seen = Seen(store)
    seen.reached("alice", PYPI)
    # Remembered before the store has it: the next exchange of the same process sees it.
    assert await seen.lookup("alice", PYPI) == {"identity": True, "anyone": True,
                                                 "status": "known"}
    await seen.close()  # the pair is stored now
    assert await stored(store) == {("alice", PYPI), ("*", PYPI)}
    first_us = await store.execute("SELECT first_us FROM egress_destinations")
    assert len({row[0] for row in first_us}) == 1 and first_us[0][0] > 1_600_000_000_000_000


async def test_a_fresh_process_reads_what_was_reached_from_the_store(store: AsyncStore) -> None:
    earlier = Seen(store)
    earlier.reached("alice", PYPI)
    await earlier.close()
    fresh = Seen(store)
    assert await fresh.lookup("alice", PYPI) == {"identity": True, "anyone": True,
                                                  "status": "known"}
    assert await fresh.lookup("bob", PYPI) == {"identity": False, "anyone": True,
                                                "status": "known"}
    assert await fresh.lookup("alice", "files.pythonhosted.org:443") == NEW
    assert await fresh.lookup("alice", "pypi.org:80") == NEW  # another port, another place


async def test_another_identity_having_reached_it_is_anyone(store: AsyncStore) -> None:
    seen = Seen(store)
    seen.reached("alice", PYPI)
    assert await seen.lookup("bob", PYPI) == {"identity": False, "anyone": True,
                                               "status": "known"}
    await seen.close()


async def test_reaching_again_stores_nothing_more(store: AsyncStore) -> None:
    seen = Seen(store)
    seen.reached("alice", PYPI)
    await seen.close()
    rows = await store.execute("SELECT identity, first_us FROM egress_destinations")
    # Another process reaches it too: the first time stays.
    again = Seen(store)
    again.reached("alice", PYPI)
    again.reached("bob", PYPI)
    await again.close()
    after = await store.execute("SELECT identity, first_us FROM egress_destinations")
    assert set(rows) <= set(after)
    assert await stored(store) == {("alice", PYPI), ("bob", PYPI), ("*", PYPI)}


async def test_a_store_that_cannot_answer_gives_unknown(store: AsyncStore) -> None:
    await store.execute("DROP TABLE egress_destinations")  # every statement on it now fails
    assert await Seen(store).lookup("alice", PYPI) == UNKNOWN


async def test_a_closed_store_gives_unknown(tmp_path: Path) -> None:
    closed = await open_store(f"sqlite:///{tmp_path}/closed.db")
    await closed.close()
    assert await Seen(closed).lookup("alice", PYPI) == UNKNOWN


async def test_what_this_identity_reached_is_known_without_the_store(store: AsyncStore) -> None:
    seen = Seen(store)
    seen.reached("alice", PYPI)
    await seen.close()
    await store.execute("DROP TABLE egress_destinations")
    assert await seen.lookup("alice", PYPI) == {"identity": True, "anyone": True,
                                                 "status": "known"}


async def test_a_pair_the_store_did_not_keep_is_asked_for_again(store: AsyncStore) -> None:
    await store.execute("DROP TABLE egress_destinations")
    seen = Seen(store)
    seen.reached("alice", PYPI)
    await seen.close()  # the insert failed: the process forgets alice's pair
    assert (await seen.lookup("alice", PYPI))["status"] == "unknown"
    await store.execute("CREATE TABLE egress_destinations (identity TEXT NOT NULL, "
                        "destination TEXT NOT NULL, first_us BIGINT NOT NULL, "
                        "PRIMARY KEY (identity, destination))")
    # The store is out for this process until a probe finds it back (store/retry.py).
    deadline = time.monotonic() + 5 * BUDGET
    while (found := await seen.lookup("alice", PYPI))["status"] == "unknown":
        assert time.monotonic() < deadline, "no probe found the store back"
        await asyncio.sleep(0.05)
    assert (found["identity"], found["status"]) == (False, "known")


async def test_unknown_is_both_false_even_when_this_process_knows_anyone(
        store: AsyncStore) -> None:
    seen = Seen(store)
    seen.reached("alice", PYPI)
    await seen.close()
    await store.execute("DROP TABLE egress_destinations")
    assert await seen.lookup("bob", PYPI) == UNKNOWN
