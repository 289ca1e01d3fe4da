"""What agents received, against real stores (a SQLite file, a PostgreSQL database of the
test's own), two `Flow` instances standing for two workers or replicas: a note one takes
is read by the other at its next decision; the run's notes apart from the identity's;
the retention; a store that does not answer refuses the note and makes the reading
unknown; which requests read the notes at all."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from extproc.activity.flow import SHOWN_MOST, UNKNOWN, Flow, acts
from extproc.config import Flow as Settings
from extproc.store import StoreError

RUN = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
async def two(store_url: str) -> AsyncIterator[tuple[Flow, Flow]]:
    first, second = Flow(Settings(), store_url), Flow(Settings(), store_url)
    await first.start()
    await second.start()
    yield first, second
    await first.close()
    await second.close()


async def read(flow: Flow, run: str | None = None, who: str = "sub:agent-1") -> dict[str, Any]:
    found: dict[str, Any] = json.loads(await flow.read(who, run))
    return found


async def test_a_note_one_process_takes_is_read_by_the_other_at_once(
        two: tuple[Flow, Flow]) -> None:
    first, second = two
    assert (await read(second))["identity"] == {"untrusted": []}
    await first.received("sub:agent-1", None, "web", "untrusted", (), "t" * 32)
    found = await read(second)
    assert found["status"] == "known" and found["run"] is None and found["this_run"] is None
    [note] = found["identity"]["untrusted"]
    assert {k: note[k] for k in ("target", "cause", "kinds", "trace_id")} == {
        "target": "web", "cause": "untrusted", "kinds": [], "trace_id": "t" * 32}
    # Another identity received nothing.
    assert (await read(second, who="sub:agent-2"))["identity"] == {"untrusted": []}


async def test_a_runs_notes_are_its_own_and_its_identitys(two: tuple[Flow, Flow]) -> None:
    first, second = two
    await first.received("sub:agent-1", RUN, "tools", "instructions",
                         ("override", "action"), RUN)
    other = "0af7651916cd43dd8448eb211c80319c"
    this_run, another = await read(second, RUN), await read(second, other)
    assert this_run["run"] == RUN
    assert this_run["this_run"]["untrusted"][0]["kinds"] == ["override", "action"]
    assert another["this_run"] == {"untrusted": []}
    # The identity's scope holds the run's note too.
    assert another["identity"]["untrusted"][0]["trace_id"] == RUN


async def test_the_newest_notes_within_the_retention_are_shown(store_url: str) -> None:
    flow = Flow(Settings(retention_seconds=3600), store_url)
    await flow.start()
    try:
        for i in range(SHOWN_MOST + 3):
            await flow.received("sub:agent-1", None, f"web-{i}", "untrusted", (), f"{i:032x}")
        shown = (await read(flow))["identity"]["untrusted"]
        assert [n["target"] for n in shown] == [f"web-{i}" for i in range(SHOWN_MOST + 2, 2, -1)]
    finally:
        await flow.close()
    # Past its retention a note no longer counts.
    brief = Flow(Settings(retention_seconds=1e-6), store_url)
    await brief.start()
    try:
        assert (await read(brief))["identity"] == {"untrusted": []}
    finally:
        await brief.close()


async def test_a_store_that_does_not_answer_refuses_the_note_and_reads_unknown(
        closed_port: int) -> None:
    flow = Flow(Settings(timeout_seconds=0.3),
                f"postgresql://postgres@127.0.0.1:{closed_port}/nothing")
    await flow.start()
    try:
        with pytest.raises(StoreError):
            await flow.received("sub:agent-1", None, "web", "untrusted", (), "t" * 32)
        with pytest.raises(StoreError):
            await flow.kept("sub:agent-1", None, "crm-db", "t" * 32, {"d1": "email"})
        assert await flow.read("sub:agent-1", None) == UNKNOWN
        assert await flow.read("sub:agent-1", None, lambda: ["d1"]) == UNKNOWN
    finally:
        await flow.close()


async def test_a_value_kept_by_one_process_is_carried_in_the_others_reading(
        two: tuple[Flow, Flow]) -> None:
    """Fingerprints one process keeps name, in the other's reading given them, the kind
    and origin of each value the request carries: once per value and origin, numbered
    by value; one the identity never received is not named."""
    first, second = two
    await first.kept("sub:agent-1", RUN, "crm-db", "a" * 32, {"d1": "email", "d2": "email"})
    await first.kept("sub:agent-1", None, "shop-db", "b" * 32, {"d1": "email"})
    carries = json.loads(await second.read(
        "sub:agent-1", RUN, lambda: ["d1", "d2", "d3"]))["carries"]
    # d1, the newest, is value 1: from both targets, each named once with its trace.
    assert sorted((c["value"], c["kind"], c["from"], c["trace_id"]) for c in carries) == [
        (1, "email", "crm-db", "a" * 32), (1, "email", "shop-db", "b" * 32),
        (2, "email", "crm-db", "a" * 32)]
    # Another identity received none of them, and its request is not even read for
    # them; a reading given none reads none.
    asked: list[str] = []

    def carried() -> list[str]:
        asked.append("read")
        return ["d1"]

    assert json.loads(await second.read("sub:agent-2", None, carried))["carries"] == []
    assert asked == []
    assert json.loads(await second.read("sub:agent-1", None))["carries"] == []
    assert json.loads(await second.read("sub:agent-1", None, carried))["carries"] != []
    assert asked == ["read"]


async def test_fingerprints_past_the_bound_go_oldest_first(store_url: str) -> None:
    flow = Flow(Settings(fingerprints_kept=2), store_url)
    await flow.start()
    try:
        for i in range(4):
            await flow.kept("sub:agent-1", None, "crm-db", f"{i:032x}", {f"d{i}": "email"})
        await flow._prune()
        carries = json.loads(await flow.read(
            "sub:agent-1", None, lambda: [f"d{i}" for i in range(4)]))["carries"]
        assert sorted(c["trace_id"] for c in carries) == [f"{i:032x}" for i in (2, 3)]
    finally:
        await flow.close()


@pytest.mark.parametrize(("protocol", "meaning", "method", "acting"), [
    ("egress", None, "GET", True),
    ("llm", {}, "POST", True),
    ("ssh", {}, "EXEC", True),
    ("mcp", {"method": "tools/call"}, "POST", True),
    ("mcp", {"method": "tools/list"}, "POST", False),
    ("mcp", {"method": "initialize"}, "POST", False),
    ("mcp", None, "POST", True),  # unread: it may act
    ("postgres", {"statements": [{"kind": "select", "effects": ["read"]}]}, "QUERY", False),
    ("postgres", {"statements": [{"kind": "set", "effects": ["session"]}]}, "QUERY", False),
    ("postgres", {"statements": [{"kind": "delete", "effects": ["write"]}]}, "QUERY", True),
    ("postgres", {"statements": [{"kind": "select", "effects": ["read"]},
                                 {"kind": "drop", "effects": ["destroy"]}]}, "QUERY", True),
    ("mysql", {"statements": [{"kind": "select"}]}, "QUERY", True),  # no effects read
    ("sql-http", {"statements": None}, "POST", True),
    ("http", None, "GET", False),
    ("http", None, "head", False),
    ("http", None, "DELETE", True),
    ("k8s", {}, "PATCH", True),
])
def test_only_a_request_that_can_act_reads_the_notes(
        protocol: str, meaning: Any, method: str, acting: bool) -> None:
    assert acts(protocol, meaning, method) is acting


async def test_the_loops_own_sqlite_reading_falls_back_to_the_stores_thread(
        sqlite_url: str) -> None:
    """On SQLite the notes are read on the loop by a connection that never waits; where it
    cannot read (its connection gone; a lock it would wait on: busy_timeout 0), the
    store's thread reads the same notes."""
    flow = Flow(Settings(), sqlite_url)
    await flow.start()
    try:
        await flow.received("sub:agent-1", None, "web", "untrusted", (), "t" * 32)
        inline = flow._inline
        assert inline is not None
        assert inline.execute("PRAGMA busy_timeout") == [(0,)]
        assert len((await read(flow))["identity"]["untrusted"]) == 1
        inline.close()  # what it read no longer there: the thread's reading
        assert len((await read(flow))["identity"]["untrusted"]) == 1
    finally:
        flow._inline = None
        await flow.close()
