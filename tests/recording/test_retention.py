"""Retention per target and legal holds, on SQLite and on PostgreSQL: pruning deletes
what is past retention and not held, from among kept records, and every chain still
verifies; a deletion next to a cut, a forged or re-ranged cut, or one at a chain's end
is still named by `verify`.

Chains are written through a real Recorder; the store is then pruned, and tampered with
by plain SQL as someone with write access to the database would.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from extproc.config import ConfigError, load
from extproc.recording import Recorder, retention, store
from extproc.recording.chain import Signer, statement
from extproc.recording.retention import HoldError, Rules
from extproc.recording.verify import verify
from extproc.store import Connection, connect
from tests.recording.conftest import (
    BILLING,
    MASKER,
    TARGET,
    evidence,
    record,
    settings,
    wait_until,
)

OLD, NOW = time.time() - 40 * 86400, time.time()


@pytest.fixture
def connection(store_url: str) -> Iterator[Connection]:
    opened = connect(store_url)
    yield opened
    opened.close()


def seqs(connection: Connection) -> list[int]:
    return [row.seq for row in store.chain_rows(connection)]


def problems(connection: Connection, signer: Signer) -> list[str]:
    return [str(p) for p in verify(connection, signer.public).problems]


@pytest.mark.parametrize("billing_days", [365, 0])
async def test_a_target_kept_longer_is_cut_around_and_the_chain_verifies(
    store_url: str, signer: Signer, connection: Connection, billing_days: float,
) -> None:
    """Records 3 and 4 are billing's, kept a year (or for ever: 0); the store keeps 30
    days. 1..2 go with a prune statement, 5..6 with a cut that record 7 links across."""
    await record(store_url, signer, [
        evidence(n, started=NOW if n == 6 else OLD, target=BILLING if n in (2, 3) else
                 TARGET) for n in range(7)], checkpoint_every=2, batch_size=2)
    pruned = retention.prune(connection, signer, Rules(30, {"billing": billing_days}))
    assert pruned.deleted == {"writer-a": 4}
    assert pruned.by_target == {"billing": 2}
    assert pruned.kept() == ["2 of target billing within its own retention"]
    assert seqs(connection) == [3, 4, 7]
    report = verify(connection, signer.public)
    assert report.intact, report.problems
    chain = report.chains["writer-a"]
    assert (chain.pruned_to, chain.cut) == (2, [(5, 6)])
    (cut,) = [s for s in store.checkpoints(connection) if s.kind == "cut"]
    assert (cut.from_seq, cut.seq) == (5, 6)
    # Nothing more to prune: the same prune again deletes nothing and changes no statement.
    again = retention.prune(connection, signer, Rules(30, {"billing": billing_days}))
    assert again.deleted == {}
    assert verify(connection, signer.public).intact


async def test_a_range_next_to_an_earlier_cut_merges_with_it(
    sqlite_url: str, signer: Signer,
) -> None:
    """1 kept for ever, 2 forty days old, 3 twenty, 4 new: 2 is cut today; 3 fifteen days
    later, in one cut 2..3 that replaces the first."""
    await record(sqlite_url, signer, [
        evidence(0, started=OLD, target=BILLING), evidence(1, started=OLD),
        evidence(2, started=NOW - 20 * 86400), evidence(3, started=NOW)])
    connection = connect(sqlite_url)
    rules = Rules(30, {"billing": 0})
    try:
        assert retention.prune(connection, signer, rules).deleted == {"writer-a": 1}
        later = int((NOW + 15 * 86400) * 1e6)
        assert retention.prune(connection, signer, rules, later).deleted == {"writer-a": 1}
        assert seqs(connection) == [1, 4]
        report = verify(connection, signer.public)
        assert report.intact, report.problems
        assert report.chains["writer-a"].cut == [(2, 3)]
        assert [(s.from_seq, s.seq) for s in store.checkpoints(connection)
                if s.kind == "cut"] == [(2, 3)]
    finally:
        connection.close()


async def test_a_range_at_a_chains_end_waits_for_a_record_to_follow_it(
    sqlite_url: str, signer: Signer,
) -> None:
    await record(sqlite_url, signer, [
        evidence(n, started=OLD, target=BILLING if n == 1 else TARGET)
        for n in range(4)])
    connection = connect(sqlite_url)
    try:
        pruned = retention.prune(connection, signer, Rules(30, {"billing": 0}))
        assert (pruned.deleted, pruned.waiting) == ({"writer-a": 1}, 2)
        assert pruned.kept() == [
            "2 at a chain's end, until a newer record follows",
            "1 of target billing within its own retention"]
        assert seqs(connection) == [2, 3, 4]
        assert verify(connection, signer.public).intact
    finally:
        connection.close()


async def test_a_held_session_and_its_traces_survive_prune_until_released(
    store_url: str, signer: Signer, connection: Connection,
) -> None:
    held = evidence(1, started=OLD, session="case-7")
    same_trace = evidence(2, started=OLD)  # e.g. its approval: the same trace
    same_trace.trace_id = held.trace_id
    await record(store_url, signer, [
        evidence(0, started=OLD), held, same_trace, evidence(3, started=OLD),
        evidence(4, started=OLD), evidence(5, started=NOW)])
    assert retention.hold(connection, "case-7", "litigation 2026-41", "alice") == 1
    (found,) = retention.holds(connection)
    assert (found.session_id, found.held_by, found.reason) == (
        "case-7", "alice", "litigation 2026-41")

    pruned = retention.prune(connection, signer, Rules(30))
    assert (pruned.deleted, pruned.held) == ({"writer-a": 3}, 2)
    assert seqs(connection) == [2, 3, 6]
    report = verify(connection, signer.public)
    assert report.intact, report.problems
    assert (report.chains["writer-a"].pruned_to, report.chains["writer-a"].cut) == (
        1, [(4, 5)])

    assert retention.release(connection, "case-7").reason == "litigation 2026-41"
    assert retention.holds(connection) == []
    assert retention.prune(connection, signer, Rules(30)).deleted == {"writer-a": 2}
    assert seqs(connection) == [6]
    report = verify(connection, signer.public)
    assert report.intact, report.problems
    # The new prune statement reaches across the old cut, which went with what it covered.
    assert (report.chains["writer-a"].pruned_to, report.chains["writer-a"].cut) == (5, [])
    assert [s.kind for s in store.checkpoints(connection)] == ["prune", "checkpoint"]


async def test_the_writer_prunes_by_target_and_hold_when_idle(sqlite_url: str,
                                                              signer: Signer) -> None:
    """The hourly prune (its first at the writer's first idle moment) is the same code."""
    await record(sqlite_url, signer, [
        evidence(n, started=NOW if n == 5 else OLD,
                 target=BILLING if n == 1 else TARGET,
                 session="case-7" if n == 3 else None) for n in range(6)])
    connection = connect(sqlite_url)
    try:
        retention.hold(connection, "case-7", "litigation", "alice")
        recorder = Recorder(sqlite_url, settings(
            retention_days=30, target_retention_days={"billing": 365}), signer, MASKER)
        recorder.start()
        wait_until(lambda: seqs(connection) == [2, 4, 6], "the writer's prune")
        await recorder.close()
        report = verify(connection, signer.public)
        assert report.intact, report.problems
        assert (report.chains["writer-a"].pruned_to, report.chains["writer-a"].cut) == (
            1, [(3, 3), (5, 5)])
    finally:
        connection.close()


async def test_holds_of_nothing_twice_or_not_there_are_refused(
    sqlite_url: str, signer: Signer,
) -> None:
    await record(sqlite_url, signer, [evidence(0, session="case-7")])
    connection = connect(sqlite_url)
    try:
        with pytest.raises(HoldError, match="no record of session 'case-8'"):
            retention.hold(connection, "case-8", "typo", "alice")
        retention.hold(connection, "case-7", "litigation", "alice")
        with pytest.raises(HoldError, match=r"'case-7' is already held \(by alice"):
            retention.hold(connection, "case-7", "again", "bob")
        with pytest.raises(HoldError, match="'case-8' is not held"):
            retention.release(connection, "case-8")
    finally:
        connection.close()


# -- attacks on a cut chain -------------------------------------------------------------


@pytest.fixture
async def cut_chain(store_url: str, signer: Signer) -> AsyncIterator[Connection]:
    """writer-a: 1 (billing, kept), 2..3 cut, 4..6 (recent)."""
    await record(store_url, signer, [
        evidence(n, started=NOW if n > 2 else OLD,
                 target=BILLING if n == 0 else TARGET) for n in range(6)])
    connection = connect(store_url)
    assert retention.prune(connection, signer, Rules(30, {"billing": 0})).deleted == {
        "writer-a": 2}
    assert seqs(connection) == [1, 4, 5, 6]
    assert verify(connection, signer.public).intact
    yield connection
    connection.close()


def test_a_record_deleted_next_to_a_cut_is_named(cut_chain: Connection, signer: Signer,
                                                 ) -> None:
    cut_chain.execute("DELETE FROM records WHERE seq = 4")
    found = problems(cut_chain, signer)
    assert "writer-a:4: is missing (deleted): record 5 follows record 3" in found
    assert found[0].startswith("writer-a:2: a cut statement says records 2..3 were pruned, "
                               "but no remaining record links across exactly that gap")


def test_a_record_deleted_before_a_cut_is_named(cut_chain: Connection, signer: Signer,
                                                ) -> None:
    cut_chain.execute("DELETE FROM records WHERE seq = 1")
    assert problems(cut_chain, signer)[0].startswith(
        "writer-a:1: is missing, and so are the records up to 3 (deleted)")


def test_a_re_ranged_cut_is_forged(cut_chain: Connection, signer: Signer) -> None:
    """Widening the cut to cover one more deleted record breaks its signature."""
    cut_chain.execute("DELETE FROM records WHERE seq = 4")
    cut_chain.execute("UPDATE checkpoints SET seq = 4 WHERE kind = 'cut'")
    found = problems(cut_chain, signer)
    assert "writer-a:4: its cut statement's signature is not the audit key's (forged, or " \
           "signed with another key)" in found
    assert "writer-a:2: is missing, and so are the records up to 4 (deleted): record 5 " \
           "follows record 1" in found


def test_a_cut_signed_with_another_key_is_forged(cut_chain: Connection, signer: Signer,
                                                 tmp_path: Path) -> None:
    (last_hash,) = cut_chain.execute("SELECT hash FROM records WHERE seq = 4")[0]
    cut_chain.execute("DELETE FROM records WHERE seq = 4")
    cut_chain.execute("DELETE FROM checkpoints WHERE kind = 'cut'")
    other = Signer.from_file(tmp_path / "other.key", create=True)
    store.add_checkpoints(cut_chain, [other.sign("cut", "writer-a", 4, last_hash, 1, 2)])
    found = problems(cut_chain, signer)
    assert "writer-a:4: its cut statement's signature is not the audit key's (forged, or " \
           "signed with another key)" in found
    assert any(p.startswith("writer-a:2: is missing") for p in found)


def test_a_cut_at_the_chains_end_vouches_for_nothing(cut_chain: Connection,
                                                     signer: Signer) -> None:
    """The tail deleted under a validly signed cut: nothing links across it."""
    (last_hash,) = cut_chain.execute("SELECT hash FROM records WHERE seq = 6")[0]
    cut_chain.execute("DELETE FROM records WHERE seq >= 5")
    store.add_checkpoints(cut_chain, [signer.sign("cut", "writer-a", 6, last_hash, 1, 5)])
    assert problems(cut_chain, signer) == [
        "writer-a:5: a cut statement says records 5..6 were pruned, but no remaining record "
        "links across exactly that gap (at the chain's end, or records around it deleted "
        "or restored)",
        "writer-a:6: a signed checkpoint names this record, which is missing (deleted)"]


def test_a_targets_retention_is_read_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "tollgate.yaml"
    targets = [{"name": "billing", "match": {"route": "b"}, "retention_days": 365},
               {"name": "free", "match": {"route": "f"}, "retention_days": 0},
               {"name": "orders", "match": {"route": "o"}}]
    path.write_text(json.dumps({"store": {"retention_days": 30}, "targets": targets}))
    assert retention.rules_of(load(path)) == Rules(30, {"billing": 365, "free": 0})
    assert retention.rules_of(load(path), 7) == Rules(7, {"billing": 365, "free": 0})
    targets[0]["retention_days"] = -1
    path.write_text(json.dumps({"targets": targets}))
    with pytest.raises(ConfigError, match="retention_days: must be >= 0"):
        load(path)


def test_statements_other_than_cuts_sign_what_they_always_did() -> None:
    """So prune statements and checkpoints signed before cuts existed still verify."""
    assert statement("prune", "w", 3, "h", 5) == b"tollgate-prune\nw\n3\nh\n5"
    assert statement("checkpoint", "w", 3, "h", 5) == b"tollgate-checkpoint\nw\n3\nh\n5"
    assert statement("cut", "w", 3, "h", 5, 2) == b"tollgate-cut\nw\n2\n3\nh\n5"
