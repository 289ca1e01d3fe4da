"""Sessions of agents that name none: which rule groups an exchange, the idle gap, and one
session id whatever writer resolves it (two writers racing on one store), on SQLite and
on PostgreSQL."""

from __future__ import annotations

import asyncio
import queue
import threading
from multiprocessing import Pipe

from extproc.recording import Evidence, Recorder
from extproc.recording import store as record_store
from extproc.recording.chain import Signer
from extproc.recording.record import Session, grouped_by, grouped_session, session_of
from extproc.recording.sessions import forget, resolve
from extproc.recording.verify import verify
from extproc.recording.wire import encode
from extproc.recording.writer import ChainWriter, _Acks, _Item
from extproc.store import connect
from tests.recording.conftest import (
    MASKER,
    evidence,
    record,
    settings,
    table_away,
    wait_until,
)

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z
MINUTE_US = 60_000_000
IDLE_US = 30 * MINUTE_US


def exchange(n: int, minutes: float = 0.0, *, jti: str | None = "tok-1", kind: str = "exchange",
             **headers: str) -> Evidence:
    """An authenticated exchange `minutes` after T0, of the token `jti`."""
    found = evidence(n, started=T0 + minutes * 60)
    found.kind = kind
    assert found.identity is not None and found.identity["authenticated"]
    found.identity = {**found.identity, "jti": jti}
    found.headers.update(headers)
    return found


def test_the_rules_in_order_header_mcp_token_identity_trace() -> None:
    both = exchange(1, **{"x-session-id": "run-1", "mcp-session-id": "m-1"})
    assert (session_of(both), grouped_by(both)) == (Session("run-1", "header"), None)
    mcp = exchange(2, **{"mcp-session-id": "m-1"})
    assert (session_of(mcp), grouped_by(mcp)) == (Session("m-1", "mcp"), None)
    assert grouped_by(exchange(3)) == ("token", "tok-1")
    assert grouped_by(exchange(4, kind="decision")) == ("token", "tok-1")
    assert grouped_by(exchange(5, jti=None)) == ("identity", "svc-autogen")
    anonymous = exchange(6)
    anonymous.identity = {"authenticated": False}
    assert (session_of(anonymous), grouped_by(anonymous)) == (
        Session(f"{6:032x}", "trace"), None)
    # An alert (an approval, an access) joins its exchange's session by its trace.
    assert grouped_by(exchange(7, kind="alert")) is None


def test_a_grouped_session_is_named_after_the_token_and_its_first_exchange() -> None:
    assert grouped_session("token", "tok-1", int(T0 * 1e6) + 999_999) == Session(
        "token:tok-1@2026-09-21T14:13:20Z", "token")
    long = grouped_session("identity", "x" * 300, int(T0 * 1e6))
    assert len(long.id) == 128 and long.id.endswith("x@2026-09-21T14:13:20Z")


def named(minutes: float, rule: str = "token", name: str = "tok-1") -> str:
    return grouped_session(rule, name, int((T0 + minutes * 60) * 1e6)).id


def test_an_idle_gap_begins_a_new_session(store_url: str) -> None:
    connection = connect(store_url)
    try:
        # Out of order in a batch (exchanges end in another order than they began).
        first = resolve(connection, [exchange(1, 10), exchange(2, 0), exchange(3, 29)], IDLE_US)
        assert {s.id for s in first} == {named(0)}
        # Exactly the gap after the last: still the same run; more than it: a new one.
        assert resolve(connection, [exchange(4, 59)], IDLE_US) == [Session(named(0), "token")]
        assert resolve(connection, [exchange(5, 89.5)], IDLE_US) == [
            Session(named(89.5), "token")]
        # A gap inside one batch cuts it too; other tokens and identities apart.
        batch = resolve(connection, [exchange(6, 100), exchange(7, 140), exchange(8, 141),
                                     exchange(9, 100, jti="tok-2"),
                                     exchange(10, 100, jti=None)], IDLE_US)
        assert [s.id for s in batch] == [named(89.5)] + [named(140)] * 2 + [
            named(100, name="tok-2"), named(100, "identity", "svc-autogen")]
        assert [s.rule for s in batch] == ["token"] * 4 + ["identity"]
    finally:
        connection.close()


def test_a_batch_older_than_the_session_by_more_than_the_gap_is_a_session_of_its_own(
    store_url: str,
) -> None:
    """A batch that waited (retried) longer than the gap does not join the newer
    session, nor move it."""
    connection = connect(store_url)
    try:
        assert resolve(connection, [exchange(1, 90)], IDLE_US)[0].id == named(90)
        assert resolve(connection, [exchange(2, 0), exchange(3, 5)], IDLE_US) == [
            Session(named(0), "token")] * 2
        assert resolve(connection, [exchange(4, 95)], IDLE_US)[0].id == named(90)
    finally:
        connection.close()


def test_marks_idle_past_the_bound_are_forgotten(store_url: str) -> None:
    """The writer's hourly housekeeping keeps session_marks to the recently active keys;
    a key forgotten begins a session of its own at its next exchange."""
    connection = connect(store_url)
    try:
        resolve(connection, [exchange(1, 0), exchange(2, 0, jti="tok-2")], IDLE_US)
        resolve(connection, [exchange(3, 120, jti="tok-2")], IDLE_US)
        forget(connection, int((T0 + 60 * 60) * 1e6))
        assert connection.execute("SELECT key FROM session_marks") == [("token:tok-2",)]
    finally:
        connection.close()


def test_resolving_a_batch_again_gives_the_same_sessions(store_url: str) -> None:
    """What a retry does after a transaction whose answer was lost."""
    connection = connect(store_url)
    try:
        batch = [exchange(1, 0), exchange(2, 40), exchange(3, 41, jti=None)]
        assert resolve(connection, batch, IDLE_US) == resolve(connection, batch, IDLE_US)
    finally:
        connection.close()


def test_two_writers_racing_on_one_token_name_one_session(store_url: str,
                                                         signer: Signer) -> None:
    """Two writers (two workers, or two replicas) write a token's exchanges at once, round
    after round, from its very first: every record names one session, the chains verify."""
    rounds, size = 15, 4
    writers = []
    for name in ("writer-a", "writer-b"):
        writer = ChainWriter(store_url, settings(writer_id=name), signer, MASKER,
                             _Acks(Pipe()[0]))
        writer.start()
        writers.append(writer)
    barrier = threading.Barrier(len(writers))
    failed: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for r in range(rounds):
                # Each writer's exchanges at times of their own: whichever upserts first
                # names the session, and the other must take its name.
                batch = [_Item(encode(exchange(1000 * w + size * r + i, r + i / 10 + w / 100)),
                               False) for i in range(size)]
                barrier.wait(timeout=10)
                writers[w]._write(batch)
        except BaseException as exc:  # the test's thread: told to the test
            failed.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failed, failed
    for writer in writers:  # told to stop: the last checkpoint, then closed
        stop: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        stop.put(None)
        writer.run(stop)
    connection = connect(store_url)
    try:
        rows = list(record_store.chain_rows(connection))
        assert len(rows) == 2 * rounds * size
        assert {(row.session_id, row.document()["session_rule"]) for row in rows} == {
            (rows[0].session_id, "token")}
        assert rows[0].session_id.startswith("token:tok-1@")
        assert verify(connection, signer.public).intact
    finally:
        connection.close()


async def test_a_token_session_is_replayed_whole_its_alerts_by_trace(
    store_url: str, signer: Signer,
) -> None:
    alert = exchange(3, 2, kind="alert")
    await record(store_url, signer, [exchange(1, 0), exchange(2, 1), alert,
                                     exchange(4, 3, **{"x-session-id": "run-9"})])
    connection = connect(store_url)
    try:
        (session,) = {row.session_id for row in record_store.chain_rows(connection)
                      if row.kind == "exchange" and row.session_id != "run-9"}
        assert session == named(0)
        found = record_store.session(connection, session)
        assert [row.trace_id for row in found] == [f"{1:032x}", f"{2:032x}"]
        (alerted,) = record_store.session(connection, alert.trace_id)
        assert (alerted.kind, alerted.session_id, alerted.document()["session_rule"]) == (
            "alert", alert.trace_id, "trace")
    finally:
        connection.close()


async def test_the_writer_cuts_sessions_at_the_configured_gap(store_url: str,
                                                              signer: Signer) -> None:
    await record(store_url, signer, [exchange(1, 0), exchange(2, 0.5), exchange(3, 2)],
                 session_idle_minutes=1)
    connection = connect(store_url)
    try:
        assert [row.session_id for row in record_store.chain_rows(connection)] == [
            named(0), named(0), named(2)]
    finally:
        connection.close()


async def test_a_store_refusing_the_sessions_step_loses_nothing(store_url: str,
                                                               signer: Signer) -> None:
    """The sessions' table taken away: the batch waits and new exchanges are refused, as
    for any store failure; once it is back, the record is written in its session."""
    recorder = Recorder(store_url, settings(), signer, MASKER)
    recorder.start()
    with table_away(store_url, "session_marks"):
        recorder.admit()
        recorder.submit(exchange(1))
        await asyncio.to_thread(wait_until, lambda: recorder.failure is not None,
                                "the writer notices the outage")
        assert recorder.written == 0
    await asyncio.to_thread(wait_until, lambda: recorder.written == 1,
                            "the record is written once the store is back")
    await recorder.close()
    connection = connect(store_url)
    try:
        (row,) = record_store.chain_rows(connection)
        assert (row.session_id, row.document()["session_rule"]) == (named(0), "token")
        assert verify(connection, signer.public).intact
    finally:
        connection.close()
