"""The ids protocol fronts give their sessions (extproc/store/session_keys.py), on a real
SQLite store: unique, registered with who holds them and whose they are, forgotten,
dropped when a later process takes the address over, and given all the same (unshared)
when the store fails."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from extproc.store import StoreError
from extproc.store import session_keys as keys_module
from extproc.store.aio import AsyncStore, open_store
from extproc.store.session_keys import SessionKeys

ADDRESS = "127.0.0.1:13306"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    opened = await open_store(f"sqlite:///{tmp_path}/store.db")
    yield opened
    await opened.close()


async def test_ids_are_registered_bound_and_forgotten(store: AsyncStore) -> None:
    keys = SessionKeys(store, "mysql")
    first, secret = await keys.new(ADDRESS, 16)
    second, _ = await keys.new(ADDRESS, 16)
    assert first != second and 0 < first < 2**31 and len(secret) == 16
    holder = await keys.holder(first)
    assert holder is not None and keys.here(holder.address)
    assert (holder.address, holder.secret, holder.target, holder.subject) == (
        ADDRESS, secret, None, None)  # nobody logged in yet
    await keys.bind(first, "shop-my", "svc-agent")
    bound = await keys.holder(first)
    assert bound is not None and (bound.target, bound.subject) == ("shop-my", "svc-agent")
    await keys.forget(first)
    assert await keys.holder(first) is None
    assert await SessionKeys(store, "postgres").holder(second) is None  # per front


async def test_the_id_a_front_asks_for_is_given_where_it_is_free(store: AsyncStore) -> None:
    """PostgreSQL's front asks for the server's backend pid: given where no session of
    any process holds it, else a random one; the secret is always the front's own."""
    keys, other = SessionKeys(store, "postgres"), SessionKeys(store, "postgres")
    first, secret = await keys.new(ADDRESS, 4, 4242)
    assert first == 4242 and len(secret) == 4
    taken, _ = await other.new("127.0.0.1:15432", 4, 4242)  # another server's same pid
    assert taken != 4242 and 0 < taken < 2**31
    for invalid in (0, -1, 2**31):
        given, _ = await keys.new(ADDRESS, 4, invalid)
        assert given != invalid and 0 < given < 2**31
    await keys.forget(first)
    again, _ = await other.new("127.0.0.1:15432", 4, 4242)
    assert again == 4242


async def test_a_later_process_at_the_address_drops_what_an_earlier_one_left(
        store: AsyncStore) -> None:
    crashed, other_front = SessionKeys(store, "mysql"), SessionKeys(store, "postgres")
    left, _ = await crashed.new(ADDRESS, 16)
    kept, _ = await other_front.new(ADDRESS, 4)
    elsewhere, _ = await crashed.new("127.0.0.1:13307", 16)
    successor = SessionKeys(store, "mysql")
    assert not successor.here(ADDRESS)
    await successor.new(ADDRESS, 16)
    assert successor.here(ADDRESS)
    assert await successor.holder(left) is None
    assert await other_front.holder(kept) is not None
    assert await successor.holder(elsewhere) is not None  # not the successor's address


async def test_an_id_taken_by_another_process_is_drawn_again(
        store: AsyncStore, monkeypatch: pytest.MonkeyPatch) -> None:
    taken, _ = await SessionKeys(store, "mysql").new(ADDRESS, 16)
    draws = iter([taken - 1, 41])  # randbelow(n) + 1: the taken id, then 42
    monkeypatch.setattr(keys_module.secrets, "randbelow", lambda _n: next(draws))
    assert (await SessionKeys(store, "mysql").new("127.0.0.1:1", 16))[0] == 42


class _FailingStore:
    backend, where = "sqlite", "nowhere"

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise StoreError("the store is down")


async def test_a_failing_store_leaves_ids_unique_here_and_unshared(
        caplog: pytest.LogCaptureFixture) -> None:
    keys = SessionKeys(_FailingStore(), "mysql")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, "tollgate.store"):
        ids = {(await keys.new(ADDRESS, 16))[0] for _ in range(50)}
    assert len(ids) == 50
    assert "mysql session id not shared (the store is down)" in caplog.text
    await keys.forget(ids.pop())  # never raises
    with caplog.at_level(logging.WARNING, "tollgate.store"):
        assert await keys.holder(1) is None
    assert "mysql session id 1 looked for in vain: the store is down" in caplog.text
    assert await keys.bind(1, "shop", "agent") == "the store is down"
