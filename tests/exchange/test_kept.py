"""Ends and locks kept on a replica's disk while the store is out (exchange/kept.py), on
a real store (SQLite and PostgreSQL) and real files: carried out here at once and held
until the store is read with them, written once, never over a lock given since, a
record the recorder cannot take yet kept until it can, and a file not made with the
gateway's key never carried out. The outage itself: tests/faults/test_end_lock_outage.py.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

from extproc.exchange.kept import KeptAct, KeptActs
from extproc.exchange.live import LiveSessions, Lock, now_us
from extproc.exchange.live_store import LiveStore, LiveSync
from extproc.store.aio import AsyncStore
from tests.support.fakes import MemoryRecorder

KEY = b"k" * 32


def lock_act(identity: str, taken_us: int | None = None, **more: Any) -> KeptAct:
    return KeptAct(os.urandom(16).hex(), "lock", taken_us or now_us(), "sam", "rotating",
                   identity=identity, locking=True, **more)


def kept_acts(folder: Path, store: AsyncStore, live: LiveSessions,
              recorder: MemoryRecorder, key: bytes = KEY) -> KeptActs:
    return KeptActs(folder, key, LiveStore(store, 60), live, recorder, "replica-a", {}, 1000)


async def test_a_kept_act_is_written_once_and_never_over_a_lock_given_since(
        store: AsyncStore) -> None:
    live_store = LiveStore(store, 60)
    act = lock_act("ada")
    assert await live_store.write_kept(act) == (True, "ada")
    assert await live_store.write_kept(act) == (False, None)  # its file outlived the write
    assert await store.execute("SELECT COUNT(*) FROM kept_acts") == [(1,)]
    # Taken before a lock given through another replica once the store was back.
    older = lock_act("bob", now_us() - 10_000_000)
    await live_store.lock(Lock("bob", "given since", "tom"))
    assert await live_store.write_kept(older) == (True, "bob")
    assert [(lock.identity, lock.reason) for lock in await live_store.locks()] == [
        ("ada", "rotating"), ("bob", "given since")]


async def test_a_kept_lock_holds_here_at_once_and_until_the_store_is_read_with_it(
        store: AsyncStore, tmp_path: Path) -> None:
    live = LiveSessions()
    session = live.open("s-1", "postgres", "ada", "shop")
    kept = kept_acts(tmp_path / "kept", store, live, MemoryRecorder())
    act = lock_act("ada")
    kept.keep(act)
    assert session.ended.is_set() and session.reason is not None
    assert "identity ada is locked until unlocked by sam: rotating" in session.reason
    refused = live.refusal("ada", None)
    assert refused is not None and refused.error == "locked"
    (path,) = (tmp_path / "kept").iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "kept").stat().st_mode) == 0o700
    # A reading of the store made before it has the lock does not let ada through.
    sync = LiveSync(LiveStore(store, 60), live, "replica-a")
    await sync.poll()
    assert live.locked("ada") is not None
    read_before = time.monotonic()
    assert await kept.write() is True
    assert not [p for p in (tmp_path / "kept").iterdir() if p.suffix == ".act"]
    live.lock_set([])
    live.settled(read_before)
    assert live.locked("ada") is not None
    # Read with it: the store's lock is what holds now, and its unlock lets ada through.
    await sync.poll()
    assert live.locked("ada") is not None
    assert await LiveStore(store, 60).unlock("ada") is not None
    await sync.poll()
    assert live.locked("ada") is None


async def test_a_record_the_recorder_cannot_take_yet_waits_on_disk_and_goes_once(
        store: AsyncStore, tmp_path: Path) -> None:
    live = LiveSessions()
    recorder = MemoryRecorder(full=True)
    kept = kept_acts(tmp_path / "kept", store, live, recorder)
    record = {"started": time.time(), "trace_id": os.urandom(16).hex(),
              "span_id": os.urandom(8).hex(),
              "headers": {":method": "POST", ":path": "/sessions/locks",
                          "authorization": "<redacted:0123456789ab>"},
              "caller": {"authenticated": True, "sub": "sam", "iss": None, "aud": [],
                         "email": None, "groups": ["security"], "jti": None},
              "request": {"method": "POST", "path": "/sessions/locks", "query": {},
                          "headers": {}, "body": None},
              "body": '{"identity": "ada", "reason": "rotating"}', "status": 202,
              "duration_ms": 3.0,
              "meaning": {"action": "lock", "identity": "ada", "reason": "rotating"}}
    kept.keep(lock_act("ada", record=record))
    assert await kept.write() is False  # in the store, its record waiting
    assert [(lock.identity) for lock in await LiveStore(store, 60).locks()] == ["ada"]
    assert [p.suffix for p in (tmp_path / "kept").iterdir() if p.name != ".lock"] \
        == [".record"]
    recorder.full = False
    assert await kept.write() is True
    (evidence,) = recorder.submitted
    assert (evidence.kind, evidence.trace_id, evidence.meaning["identity"]) == (
        "moderation", record["trace_id"], "ada")
    assert evidence.response is not None and evidence.response["status"] == 202
    assert await kept.write() is True
    assert len(recorder.submitted) == 1


async def test_a_file_not_made_with_the_gateways_key_is_set_aside_not_carried_out(
        store: AsyncStore, tmp_path: Path) -> None:
    folder = tmp_path / "kept"
    kept_acts(folder, store, LiveSessions(), MemoryRecorder(), key=b"x" * 32).keep(
        lock_act("ada"))
    live = LiveSessions()
    kept = kept_acts(folder, store, live, MemoryRecorder())
    await kept.start()
    await kept.stop()
    assert live.locked("ada") is None
    assert [p.suffix for p in folder.iterdir() if p.name != ".lock"] == [".corrupt"]
    assert await LiveStore(store, 60).locks() == []
