"""Tamper evidence, on SQLite and on PostgreSQL: every way of changing a written record
is named by `verify`, at the first broken link; an untouched store verifies intact.

Each test writes a real chain through the Recorder, then changes the store with plain
SQL, as someone with write access to the database would.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import pytest

from extproc.recording import retention, store
from extproc.recording.anchors import read
from extproc.recording.chain import GENESIS, Signer, canonical, record_hash
from extproc.recording.verify import Report, verify
from extproc.recording.wire import encode
from extproc.recording.writer import ChainWriter, _Acks, _Item
from extproc.store import Connection, connect
from tests.recording.conftest import MASKER, evidence, record, settings

RECORDS = 6


@pytest.fixture
async def chain(store_url: str, signer: Signer) -> AsyncIterator[Connection]:
    """Six records of writer `writer-a`, written two by two, each pair checkpointed."""
    await record(store_url, signer, [evidence(n) for n in range(RECORDS)],
                 checkpoint_every=2, batch_size=2)
    connection = connect(store_url)
    yield connection
    connection.close()


def problems(connection: Connection, signer: Signer, **kwargs: object) -> list[str]:
    report = verify(connection, signer.public, **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in report.problems]


def test_an_untouched_chain_is_intact_and_checkpointed(chain: Connection, signer: Signer,
                                                      ) -> None:
    report = verify(chain, signer.public)
    assert report.intact, report.problems
    (summary,) = report.chains.values()
    assert (summary.writer, summary.first, summary.last, summary.records) == (
        "writer-a", 1, RECORDS, RECORDS)
    assert summary.checkpointed_to == RECORDS  # the last one is signed at close
    assert report.checkpoints >= 3


def test_the_records_link_from_genesis(chain: Connection) -> None:
    rows = list(store.chain_rows(chain))
    assert rows[0].prev_hash == GENESIS
    for before, row in itertools.pairwise(rows):
        assert row.prev_hash == before.hash
        assert row.hash == record_hash(row.prev_hash, row.writer, row.seq, row.content)


def test_an_edited_record_is_named(chain: Connection, signer: Signer) -> None:
    chain.execute("UPDATE records SET content = replace(content, '/api/orders', '/api/ok') "
                  "WHERE seq = 3")
    assert problems(chain, signer)[0] == (
        "writer-a:3: its content does not match its hash (edited)")


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link_and_the_checkpoint(
    chain: Connection, signer: Signer,
) -> None:
    """Without the key, rewriting a hash moves the break to the next record and to the
    checkpoint that signed the old one."""
    (prev, content) = chain.execute(
        "SELECT prev_hash, content FROM records WHERE seq = 4")[0]
    forged = content.replace("/api/orders", "/api/ok")
    chain.execute("UPDATE records SET content = ?, hash = ? WHERE seq = 4",
                  (forged, record_hash(prev, "writer-a", 4, forged)))
    found = problems(chain, signer)
    assert found == [
        "writer-a:4: differs from what a signed checkpoint says it was (replaced)",
        "writer-a:5: does not link to the record before it (inserted, reordered, or its "
        "predecessor replaced)",
    ]


def test_a_deleted_record_is_named(chain: Connection, signer: Signer) -> None:
    chain.execute("DELETE FROM records WHERE seq = 3")
    assert problems(chain, signer)[0] == (
        "writer-a:3: is missing (deleted): record 4 follows record 2")


def test_an_inserted_record_is_named(chain: Connection, signer: Signer) -> None:
    """A record slipped in at 3, the rest renumbered and relinked up to it: the record
    after it still names the original predecessor."""
    rows = {row.seq: row for row in store.chain_rows(chain)}
    for seq in range(RECORDS, 2, -1):  # make room: 3..6 -> 4..7
        chain.execute("UPDATE records SET seq = ?, id = ? WHERE seq = ?",
                      (seq + 1, store.record_id("writer-a", seq + 1), seq))
    content = rows[3].content.replace("req-2", "req-forged")
    digest = record_hash(rows[2].hash, "writer-a", 3, content)
    chain.execute(
        "INSERT INTO records (writer, seq, id, kind, started_us, trace_id, session_id, "
        "identity, target, action, status, content, prev_hash, hash) "
        "VALUES (?, 3, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("writer-a", store.record_id("writer-a", 3), rows[3].kind, rows[3].started_us,
         rows[3].trace_id, rows[3].session_id, rows[3].identity, rows[3].target,
         rows[3].action, rows[3].status, content, rows[2].hash, digest))
    assert problems(chain, signer)[:2] == [
        "writer-a:4: its content does not match its hash (edited)",
        "writer-a:4: differs from what a signed checkpoint says it was (replaced)",
    ]


def test_reordered_records_are_named(chain: Connection, signer: Signer) -> None:
    chain.execute("UPDATE records SET seq = -1, id = 'moving' WHERE seq = 2")
    chain.execute("UPDATE records SET seq = 2, id = ? WHERE seq = 3",
                  (store.record_id("writer-a", 2),))
    chain.execute("UPDATE records SET seq = 3, id = ? WHERE seq = -1",
                  (store.record_id("writer-a", 3),))
    assert problems(chain, signer)[0] == (
        "writer-a:2: its content does not match its hash (edited)")


def test_a_searchable_column_edited_alone_is_named(chain: Connection, signer: Signer) -> None:
    """Hiding a record from `audit search --action deny` by editing the column only."""
    chain.execute("UPDATE records SET action = 'deny', identity = 'someone' WHERE seq = 5")
    assert problems(chain, signer) == [
        "writer-a:5: its identity, action no longer match its content (edited)"]


def test_a_deleted_tail_is_named_by_the_checkpoint_that_signed_it(
    chain: Connection, signer: Signer,
) -> None:
    chain.execute("DELETE FROM records WHERE seq >= 5")
    assert problems(chain, signer) == [
        "writer-a:6: a signed checkpoint names this record, which is missing (deleted)"]


def test_a_forged_checkpoint_is_named(chain: Connection, signer: Signer, tmp_path: Path,
                                      ) -> None:
    other = Signer.from_file(tmp_path / "other.key", create=True)
    (last,) = chain.execute("SELECT hash FROM records WHERE seq = 6")[0]
    forged = other.sign("checkpoint", "writer-a", 6, last, 1)
    chain.execute("UPDATE checkpoints SET signature = ?, key_id = ? WHERE seq = 6",
                  (forged.signature, forged.key_id))
    assert problems(chain, signer) == [
        "writer-a:6: its checkpoint statement's signature is not the audit key's (forged, "
        "or signed with another key)"]


async def test_a_store_rewritten_whole_is_caught_by_the_anchors_kept_elsewhere(
    store_url: str, signer: Signer, tmp_path: Path,
) -> None:
    """Someone with the database but not the key rewrites every hash of an edited chain
    and drops the checkpoints: the store agrees with itself, not with the anchor file."""
    anchors = tmp_path / "anchors.jsonl"
    await record(store_url, signer, [evidence(n) for n in range(4)],
                 checkpoint_every=2, batch_size=2, checkpoint_file=anchors)
    connection = connect(store_url)
    try:
        prev = GENESIS
        for row in list(store.chain_rows(connection)):
            content = row.content.replace("/api/orders", "/api/ok")
            digest = record_hash(prev, row.writer, row.seq, content)
            connection.execute("UPDATE records SET content = ?, prev_hash = ?, hash = ? "
                               "WHERE seq = ?", (content, prev, digest, row.seq))
            prev = digest
        connection.execute("DELETE FROM checkpoints")
        assert problems(connection, signer) == []
        found = problems(connection, signer, logs=[read(anchors)])
        assert found == [
            "writer-a:2: the anchored checkpoint statement is missing from the store "
            "(deleted, or replaced by another)",
            "writer-a:2: differs from what a signed checkpoint says it was (replaced)",
            "writer-a:4: the anchored checkpoint statement is missing from the store "
            "(deleted, or replaced by another)",
            "writer-a:4: differs from what a signed checkpoint says it was (replaced)",
        ]
    finally:
        connection.close()


async def test_pruning_keeps_what_remains_verifiable_and_its_first_record_guarded(
    store_url: str, signer: Signer,
) -> None:
    old, now = time.time() - 40 * 86400, time.time()
    await record(store_url, signer, [
        evidence(n, started=old if n < 3 else now) for n in range(6)],
        checkpoint_every=2, batch_size=2)
    connection = connect(store_url)
    try:
        pruned = retention.prune(connection, signer, retention.Rules(30))
        assert pruned.deleted == {"writer-a": 3}
        report = verify(connection, signer.public)
        assert report.intact, report.problems
        assert report.chains["writer-a"].pruned_to == 3
        assert [r.seq for r in store.chain_rows(connection)] == [4, 5, 6]
        # Deleting more than the prune statement covers is still deletion.
        connection.execute("DELETE FROM records WHERE seq = 4")
        assert problems(connection, signer) == [
            "writer-a:4: is missing (deleted): record 5 follows record 3",
            "writer-a:4: a signed checkpoint names this record, which is missing (deleted)"]
    finally:
        connection.close()


async def test_a_chain_continues_across_restarts_of_a_named_writer(store_url: str, signer: Signer,
                                                            ) -> None:
    await record(store_url, signer, [evidence(n) for n in range(2)])
    await record(store_url, signer, [evidence(n) for n in range(2, 4)])
    connection = connect(store_url)
    try:
        assert [r.seq for r in store.chain_rows(connection)] == [1, 2, 3, 4]
        assert verify(connection, signer.public).intact
    finally:
        connection.close()


def test_canonical_json_is_stable_whatever_the_key_order() -> None:
    assert canonical({"b": 1, "a": [2, {"d": None, "c": "é"}]}) == (
        '{"a":[2,{"c":"é","d":null}],"b":1}')
    assert canonical({"n": 2**70}) == '{"n":1180591620717411303424}'


def test_a_report_names_the_first_broken_link_per_chain() -> None:
    from extproc.recording.verify import Problem

    report = Report(problems=[Problem("a", 3, "x"), Problem("a", 5, "y"), Problem("b", 1, "z")])
    assert {w: str(p) for w, p in report.first_broken().items()} == {"a": "a:3: x", "b": "b:1: z"}


def test_the_writer_exports_the_spans_of_the_records_it_stored(store_url: str,
                                                               signer: Signer) -> None:
    """Spans from the record (telemetry.py): each exchange's span goes out once its
    record is in the store, not before, and a record without one adds none."""
    exported: list[Any] = []

    class Export:
        def export(self, data: Any) -> None:
            exported.append((data, stored(data[0])))

    def stored(_name: str) -> int:
        """How many of the writer's records the store holds."""
        connection = connect(store_url)
        try:
            last = store.last_of(connection, "writer-spans")
            return 0 if last is None else last[0]
        finally:
            connection.close()

    writer = ChainWriter(store_url, settings(writer_id="writer-spans"), signer, MASKER,
                         _Acks(Pipe()[0]))
    writer.start()
    writer.spans = Export()  # type: ignore[assignment]
    traced = evidence(1)
    traced.span = ("tollgate GET orders", 1, 2, None, {}, (), (0, None), 10, 20)
    writer._write([_Item(encode(traced), False), _Item(encode(evidence(2)), False)])
    assert [(data[0], count) for data, count in exported] == [("tollgate GET orders", 2)]
