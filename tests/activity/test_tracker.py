"""The activity tracker against real stores (a SQLite file, a PostgreSQL database of the
test's own): what one exchange counts, the windows the policy reads, the bound on
identities, two processes' counts converging, and a store outage made "unknown"."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from extproc.activity.tracker import _CLOSE_SECONDS, SEEN_MOST, Tracker, counted
from extproc.config import Activity, Match, Target
from extproc.identity import Who
from extproc.recording import BodyCapture, Decided, Evidence
from extproc.store import connect


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    store = connect(url)
    try:
        return store.execute(sql, params)
    finally:
        store.close()

SHOP = Target(name="shop", protocol="sql-http", match=Match(route="shop"),
              environment="production")
STAGING = Target(name="staging", protocol="http", match=Match(route="staging"),
                 environment="staging")


def who(sub: str = "agent-1", jti: str | None = "token-1") -> Who:
    return {"authenticated": True, "sub": sub, "iss": None, "aud": [], "email": None,
            "groups": ["agents"], "jti": jti}


def evidence(identity: Who | None = None, *, target: Target = SHOP, action: str = "allow",
             masked: dict[str, int] | None = None, body: bytes = b"",
             address: str | None = "10.0.0.7", **outcome: Any) -> Evidence:
    found = Evidence("exchange", time.time(), f"{time.perf_counter_ns():032x}"[-32:],
                     "0" * 16, {}, identity or who(), target)
    found.decisions.append(Decided("request", action, (), (), 403, "r", 1, (), None, None))
    found.outcome = {"tollgate.decision.action": action, **outcome,
                     **({"client.address": address} if address else {})}
    found.masked = Counter(masked or {})
    if body:
        found.response_body = BodyCapture.of(body, 1 << 20)
        found.response_type = "application/json"
    return found


def view(tracker: Tracker, identity: Who | None = None,
         administrative: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(tracker.counts_json(identity or who(), administrative))
    return result


def test_one_exchange_counts_what_the_issue_lists() -> None:
    metrics = counted(evidence(action="deny", masked={"email": 3, "us_ssn": 1},
                               body=b'{"rows": [[1], [2], [3]]}',
                               **{"tollgate.activity.administrative": True}))
    assert metrics == Counter({
        "exchanges": 1, "refusals": 1, "administrative": 1, "masked:email": 3,
        "masked:us_ssn": 1, "bytes": 25, "items": 3, "target:shop": 1,
        "environment:production": 1, "address:10.0.0.7": 1})
    refused = counted(evidence(action=None, address=None, **{"tollgate.refusal": "x"}))
    assert refused["refusals"] == 1 and "address:10.0.0.7" not in refused
    assert counted(evidence(**{"tollgate.postgres.rows": 40}))["items"] == 40
    assert counted(evidence(body=b"[1, 2]"))["items"] == 2


def test_the_windows_kept_up_to_date_are_the_ones_built_afresh() -> None:
    """Each exchange's metrics go into the windows already built, all of them at once
    (`_Entry.add`): the same windows as those built from the counts when first read."""
    tracker = Tracker(Activity(live=False), "sqlite:///unused")
    tracker.observe(evidence())
    view(tracker)  # the windows built
    for exchange in (evidence(masked={"email": 2, "us_ssn": 1}), evidence(action="deny"),
                     evidence(target=STAGING, address="10.0.0.9"),
                     evidence(**{"tollgate.postgres.rows": 40}),
                     evidence(body=b"[1, 2, 3]")):
        tracker.observe(exchange)
    kept = view(tracker)
    for entry in tracker._entries.values():
        entry.windows = entry.json = None  # built afresh from the counts
    assert view(tracker) == kept
    assert kept["identity"]["minute"]["exchanges"] == 6
    assert kept["identity"]["minute"]["masked"] == {"email": 2, "us_ssn": 1}


async def test_the_view_counts_the_process_own_exchanges_at_once(sqlite_url: str) -> None:
    tracker = Tracker(Activity(), sqlite_url)
    await tracker.start()
    try:
        masked = evidence(masked={"email": 2})
        refused = evidence(action="deny", address="10.0.0.8", target=STAGING)
        tracker.observe(masked)
        tracker.observe(evidence())  # nothing notable about it
        tracker.observe(refused)
        found = view(tracker, administrative=True)
        assert found["status"] == "known" and not found["aggregated"]
        assert found["exchange"] == {"administrative": True}
        for window in ("minute", "hour", "day"):
            counts = found["identity"][window]
            assert (counts["exchanges"], counts["refusals"], counts["masked"],
                    counts["masked_total"], counts["targets"], counts["environments"],
                    counts["addresses"]) == (3, 1, {"email": 2}, 2, 2, 2, 2), window
        assert found["token"]["seen"] == {"targets": ["shop", "staging"],
                                          "environments": ["production", "staging"],
                                          "addresses": ["10.0.0.7", "10.0.0.8"]}
        # After a sync the view is the store's: the same counts, not twice them.
        assert await tracker.sync()
        assert view(tracker)["identity"]["hour"]["exchanges"] == 3
        # What an alert on this identity points to: its latest notable exchanges.
        assert tracker.notable(who()) == [refused.trace_id, masked.trace_id]
    finally:
        await tracker.close()


async def test_a_token_is_counted_apart_from_its_identity(sqlite_url: str) -> None:
    tracker = Tracker(Activity(), sqlite_url)
    tracker.observe(evidence(who("agent-1", "token-1")))
    tracker.observe(evidence(who("agent-1", "token-2")))
    found = view(tracker, who("agent-1", "token-2"))
    assert found["identity"]["day"]["exchanges"] == 2
    assert found["token"]["day"]["exchanges"] == 1
    assert view(tracker, who("agent-1", None))["token"] is None
    await tracker.close()


async def test_off_counts_nothing(sqlite_url: str) -> None:
    tracker = Tracker(Activity(enabled=False), sqlite_url)
    tracker.observe(evidence())
    assert view(tracker) == {"status": "off", "aggregated": False,
                             "exchange": {"administrative": False}, "identity": None,
                             "token": None}
    await tracker.close()


async def test_identities_beyond_the_bound_are_counted_together(sqlite_url: str) -> None:
    tracker = Tracker(Activity(max_identities=2), sqlite_url)
    for n in range(4):
        tracker.observe(evidence(who(f"agent-{n}", None)))
    assert not view(tracker, who("agent-0", None))["aggregated"]
    beyond = view(tracker, who("agent-3", None))
    assert beyond["aggregated"] and beyond["identity"]["day"]["exchanges"] == 2
    # Persisted under the aggregate's key too: another process sees the same.
    assert await tracker.sync()
    keys = {k for (k,) in rows(sqlite_url, "SELECT DISTINCT key FROM activity_counts")}
    assert keys == {"sub:agent-0", "sub:agent-1", "sub:~others"}
    await tracker.close()


def test_seen_values_are_bounded() -> None:
    tracker = Tracker(Activity(), "sqlite:///unused")
    for n in range(SEEN_MOST + 5):
        tracker.observe(evidence(address=f"10.0.1.{n}"))
    found = view(tracker)
    assert len(found["token"]["seen"]["addresses"]) == SEEN_MOST
    assert found["token"]["day"]["addresses"] == SEEN_MOST + 5


# timing: the bound under test is under a second, which a busy CPU stretches.
@pytest.mark.timing
async def test_two_processes_counts_converge_within_two_syncs(store_url: str) -> None:
    """Two trackers on one store, as two replicas (or workers) have: what one counts
    reaches the other's view within twice sync_seconds (plus the store's time)."""
    settings = Activity(sync_seconds=0.2, stale_seconds=5)
    one, other = Tracker(settings, store_url), Tracker(settings, store_url)
    await one.start()
    await other.start()
    try:
        view(other)  # the identity is one `other` tracks (it asked about it)
        one.observe(evidence(action="deny"))
        observed = time.monotonic()
        deadline = observed + 10
        while view(other)["identity"]["minute"]["refusals"] != 1:
            assert time.monotonic() < deadline, "never converged"
            await asyncio.sleep(0.02)
        took = time.monotonic() - observed
        assert took <= 2 * settings.sync_seconds + 0.5, took
        assert view(other)["token"]["seen"]["addresses"] == ["10.0.0.7"]
    finally:
        await one.close()
        await other.close()


async def test_an_unreachable_store_makes_counts_unknown_and_loses_none(
        pg_url: str, closed_port: int) -> None:
    """The tracker's URL is switched to a port where nothing listens (an outage), then
    back: the counts turn unknown after stale_seconds, and what was counted meanwhile
    is written once the store answers."""
    # Stale after a second: long enough that the sync just made is still fresh when read.
    settings = Activity(sync_seconds=0.1, stale_seconds=1.0)
    tracker = Tracker(settings, pg_url)
    assert await tracker.sync()
    tracker._url = f"postgresql://postgres@127.0.0.1:{closed_port}/postgres"
    tracker._connection = None
    tracker.observe(evidence())
    assert not await tracker.sync()
    deadline = time.monotonic() + 5
    while view(tracker)["status"] != "unknown":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    tracker._url = pg_url
    assert await tracker.sync()
    assert view(tracker)["status"] == "known"
    assert rows(pg_url, "SELECT SUM(value) FROM activity_counts WHERE key = ? AND "
                "metric = 'exchanges'", ("sub:agent-1",))[0][0] == 1
    await tracker.close()


async def test_the_store_keeps_no_content(sqlite_url: str) -> None:
    tracker = Tracker(Activity(), sqlite_url)
    tracker.observe(evidence(body=b'{"rows": [["alice@example.com"]]}',
                             masked={"email": 1}))
    assert await tracker.sync()
    dump = repr(rows(sqlite_url, "SELECT * FROM activity_counts"))
    assert "alice" not in dump and "masked:email" in dump
    await tracker.close()


@pytest.mark.parametrize("minute_ago, expected", [(0, 1), (3, 0)])
async def test_windows_drop_old_minutes(sqlite_url: str, minute_ago: int,
                                        expected: int) -> None:
    rows(sqlite_url, "INSERT INTO activity_counts VALUES (?, ?, ?, ?)",
         ("sub:agent-1", int(time.time() // 60) - minute_ago, "refusals", 1))
    tracker = Tracker(Activity(), sqlite_url)
    view(tracker)
    assert await tracker.sync()
    found = view(tracker)["identity"]
    assert found["minute"]["refusals"] == expected
    assert found["hour"]["refusals"] == found["day"]["refusals"] == 1
    await tracker.close()


async def test_a_stop_the_store_cannot_answer_is_bounded_and_says_what_is_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Another connection holds the SQLite store's write lock (every write waits out
    its busy timeout): the stop still ends within its bound, and says the last counts
    were not written, so that the record closed after it has the time to spool."""
    url = f"sqlite:///{tmp_path}/store.db"
    tracker = Tracker(Activity(), url)
    await tracker.start()
    tracker.observe(evidence())
    locker = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        await tracker.close()
        assert time.monotonic() - started < _CLOSE_SECONDS + 1.0
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert "could not be written before shutdown" in caplog.text
