"""The recording writer fails closed and loses nothing, on SQLite and on PostgreSQL.

The store is made to refuse writes the way a real outage looks to the writer (its
table gone, a server that does not answer), and the tests wait on conditions, each
with a deadline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from extproc.recording import Recorder, RecordingUnavailable
from extproc.recording import store as record_store
from extproc.recording.chain import GENESIS, Checkpoint, Signer
from extproc.recording.verify import verify
from extproc.store import StoreError, connect
from tests.recording.conftest import (
    MASKER,
    evidence,
    record,
    settings,
    table_away,
    wait_until,
)


def count(url: str, table: str = "records") -> int:
    connection = connect(url)
    try:
        return connection.execute(f"SELECT count(*) FROM {table}")[0][0]
    finally:
        connection.close()


def test_a_store_that_cannot_be_opened_stops_the_start(signer: Signer) -> None:
    recorder = Recorder("postgresql://postgres@127.0.0.1:1/none", settings(), signer, MASKER)
    with pytest.raises(StoreError, match=r"PostgreSQL store: .*127\.0\.0\.1"):
        recorder.start()


async def test_close_writes_everything_queued(store_url: str, signer: Signer) -> None:
    recorder = await record(store_url, signer, [evidence(n) for n in range(500)],
                            batch_size=50)
    assert recorder.written == 500
    assert count(store_url) == 500
    connection = connect(store_url)
    try:
        assert verify(connection, signer.public).intact
    finally:
        connection.close()


async def test_a_store_refusing_writes_refuses_new_exchanges_then_catches_up(
    store_url: str, signer: Signer,
) -> None:
    """The table is taken away (as an outage looks to the writer): the queued record
    waits, new exchanges are refused with the store's reason; once the table is back,
    the record is written and exchanges are admitted again."""
    recorder = Recorder(store_url, settings(), signer, MASKER)
    recorder.start()
    with table_away(store_url):
        recorder.admit()
        recorder.submit(evidence(1))
        await asyncio.to_thread(wait_until, lambda: recorder.failure is not None,
                                "the writer notices the outage")
        with pytest.raises(RecordingUnavailable, match="audit record cannot be written"):
            recorder.admit()
    await asyncio.to_thread(wait_until, lambda: recorder.written == 1,
                            "the queued record is written after the outage")
    recorder.admit()  # admitted again
    recorder.submit(evidence(2))
    await recorder.close()
    assert recorder.refused == 1
    assert count(store_url) == 2


async def test_a_full_queue_refuses_until_records_are_written(sqlite_url: str, signer: Signer,
                                                              ) -> None:
    recorder = Recorder(sqlite_url, settings(queue_size=2), signer, MASKER)
    recorder.start()
    recorder.admit()
    recorder.admit()  # two exchanges in flight: the queue is full
    with pytest.raises(RecordingUnavailable, match=r"queue is full \(2 records"):
        recorder.admit()
    recorder.submit(evidence(1))
    await asyncio.to_thread(wait_until, lambda: recorder.written == 1, "one written")
    recorder.admit()  # a place is free again
    recorder.submit(evidence(2))
    recorder.submit(evidence(3))
    await recorder.close()
    assert count(sqlite_url) == 3


async def test_a_strict_commit_returns_once_the_record_is_in_the_store(
    store_url: str, signer: Signer,
) -> None:
    # What is tested is the order (committed, then returned), not how fast: the default
    # second is the first commit's, a writer process starting, on a busy machine too.
    recorder = Recorder(store_url, settings(commit_seconds=30), signer, MASKER)
    recorder.start()
    await recorder.commit(evidence(7))
    assert count(store_url) == 1  # committed before commit() returned
    await recorder.close()


async def test_a_strict_commit_the_store_cannot_take_in_time_is_refused(
    store_url: str, signer: Signer,
) -> None:
    recorder = Recorder(store_url, settings(commit_seconds=0.3), signer, MASKER)
    recorder.start()
    with table_away(store_url), pytest.raises(RecordingUnavailable,
                                              match=r"not committed within 0\.3s"):
        await recorder.commit(evidence(8))
    await recorder.close()  # the record goes in once the store is back
    assert count(store_url) == 1


async def test_checkpoints_are_signed_stored_and_anchored_outside(
    sqlite_url: str, signer: Signer, tmp_path: Path,
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    await record(sqlite_url, signer, [evidence(n) for n in range(9)],
                 checkpoint_every=3, batch_size=3, checkpoint_file=anchors)
    connection = connect(sqlite_url)
    try:
        stored = record_store.checkpoints(connection)
    finally:
        connection.close()
    assert [(c.seq, c.kind) for c in stored] == [(3, "checkpoint"), (6, "checkpoint"),
                                                 (9, "checkpoint")]
    assert all(signer.public.valid(c) for c in stored)
    lines = [Checkpoint(**orjson.loads(line)) for line in anchors.read_text().splitlines()]
    # The writer's registration first (a new chain: record 0, genesis), then each checkpoint.
    assert (lines[0].kind, lines[0].seq, lines[0].hash) == ("start", 0, GENESIS)
    assert signer.public.valid(lines[0])
    assert lines[1:] == stored


async def test_an_idle_writer_signs_a_checkpoint_after_checkpoint_seconds(
    sqlite_url: str, signer: Signer,
) -> None:
    recorder = Recorder(sqlite_url, settings(checkpoint_seconds=0.2), signer, MASKER)
    recorder.start()
    recorder.admit()
    recorder.submit(evidence(1))
    await asyncio.to_thread(wait_until, lambda: count(sqlite_url, "checkpoints") == 1,
                            "a checkpoint after 0.2 s", 5.0)
    await recorder.close()


async def test_two_writers_share_one_store_each_with_its_chain(pg_url: str, signer: Signer) -> None:
    """Two replicas on one PostgreSQL: interleaved writes, two intact chains."""
    a = Recorder(pg_url, settings(writer_id="replica-a", batch_size=1), signer, MASKER)
    b = Recorder(pg_url, settings(writer_id="replica-b", batch_size=1), signer, MASKER)
    a.start()
    b.start()
    for n in range(20):
        recorder = a if n % 2 else b
        recorder.admit()
        recorder.submit(evidence(n))
    await asyncio.gather(a.close(), b.close())
    connection = connect(pg_url)
    try:
        report = verify(connection, signer.public)
    finally:
        connection.close()
    assert report.intact, report.problems
    assert {w: c.records for w, c in report.chains.items()} == {"replica-a": 10,
                                                                "replica-b": 10}


async def test_evidence_that_cannot_be_built_is_still_recorded_as_such(sqlite_url: str,
                                                                       signer: Signer) -> None:
    broken = evidence(1)
    broken.decisions.append(None)  # type: ignore[arg-type]  # as a bug would leave it
    await record(sqlite_url, signer, [broken, evidence(2)])
    connection = connect(sqlite_url)
    try:
        rows = list(record_store.chain_rows(connection))
        assert verify(connection, signer.public).intact
    finally:
        connection.close()
    first = rows[0].document()
    assert first["error"] == "the record could not be built: AttributeError"
    assert (first["trace_id"], first["outcome"]["action"]) == (f"{1:032x}", "unknown")
    assert rows[1].document()["outcome"]["action"] == "allow"
