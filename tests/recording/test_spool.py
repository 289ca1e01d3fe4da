"""The spool (extproc/recording/spool.py): records a stop could not wait for the store
to take are kept on disk, durably and authenticated, and written into the chain, in
order and once, by the next start.

The files alone first (written, read back in order, a damaged or foreign one moved
aside, an unusable folder), then through a real Recorder and its writer process on a
SQLite store whose write lock the test holds (a real store that cannot write), with
`verify` saying what was spooled.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.recording import Evidence, Recorder, journal, spool
from extproc.recording import store as record_store
from extproc.recording.chain import Signer
from extproc.recording.verify import verify
from extproc.recording.wire import decode, encode
from extproc.store import StoreError, connect
from tests.cli.test_audit_cli import REPO
from tests.recording.conftest import MASKER, evidence, settings, wait_until
from tests.recording.test_writer import count

KEY = b"s" * 32


def spooled(first: int, n: int, writer: str = "writer-a") -> list[spool.Spooled]:
    return [spool.Spooled(writer, seq, encode(evidence(seq))) for seq in range(first, first + n)]


def traces_in(found: spool.SpoolFile) -> list[str]:
    return [decode(r.data)[0].trace_id for r in found.records]


# -- the files ---------------------------------------------------------------------------


def test_a_spool_file_is_private_durable_and_read_back_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    path = spool.write(folder, spooled(1, 3), "the store is full", KEY)
    assert path.parent == folder and path.name.endswith(".spool")
    assert folder.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary left
    found = spool.read(path, KEY)
    assert found.reason == "the store is full"
    assert [(r.writer, r.seq) for r in found.records] == [("writer-a", n) for n in (1, 2, 3)]
    assert traces_in(found) == [f"{n:032x}" for n in (1, 2, 3)]
    assert abs(found.spooled_us / 1e6 - time.time()) < 60


def test_a_spool_file_is_sealed(tmp_path: Path) -> None:
    """The evidence is not masked yet: none of its bytes are in the file."""
    found = evidence(1, body=b'{"ssn": "078-05-1120", "password": "hunter2"}')
    path = spool.write(tmp_path, [spool.Spooled("writer-a", 1, encode(found))], "stop", KEY)
    content = path.read_bytes()
    assert b"078-05-1120" not in content and b"hunter2" not in content
    assert b"078-05-1120" in spool.read(path, KEY).records[0].data


def test_a_spool_file_of_the_first_format_is_still_read(tmp_path: Path) -> None:
    """In clear, ending with an HMAC-SHA256 (before spool files were sealed): an upgrade
    with such a file loses none of it; one whose HMAC fails is still refused."""
    records = spooled(1, 2)
    header = orjson.dumps({"spooled_us": 5, "reason": "old stop",
                           "records": [[r.writer, r.seq, len(r.data)] for r in records]})
    body = b"tollgate-spool 1\n" + struct.pack("<I", len(header)) + header + b"".join(
        r.data for r in records)
    path = tmp_path / "00000000000000005-1-abcd.spool"
    path.write_bytes(body + hmac.digest(KEY, body, hashlib.sha256))
    found = spool.read(path, KEY)
    assert (found.reason, found.spooled_us) == ("old stop", 5)
    assert traces_in(found) == [f"{n:032x}" for n in (1, 2)]
    path.write_bytes(body + bytes(32))
    with pytest.raises(spool.SpoolCorrupt, match="does not open with this audit key"):
        spool.read(path, KEY)


def test_files_are_claimed_oldest_first_each_in_its_order(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    spool.write(folder, spooled(1, 2), "first stop", KEY)
    spool.write(folder, spooled(3, 2, writer="writer-b"), "second stop", KEY)
    with spool.claimed(folder, KEY) as found:
        assert found is not None
        assert [f.reason for f in found] == ["first stop", "second stop"]
        assert [traces_in(f) for f in found] == [[f"{n:032x}" for n in (1, 2)],
                                                 [f"{n:032x}" for n in (3, 4)]]
        spool.remove(found[0])
    with spool.claimed(folder, KEY) as left:
        assert [f.reason for f in left or []] == ["second stop"]


def test_one_writer_at_a_time_drains_the_spool(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    spool.write(folder, spooled(1, 1), "stop", KEY)
    with spool.claimed(folder, KEY) as mine:
        assert mine is not None and len(mine) == 1
        # Another writer (another worker's): the lock is an flock, per open file.
        with spool.claimed(folder, KEY) as theirs:
            assert theirs is None


@pytest.mark.parametrize("damage", ["cut short", "a byte changed", "another key", "garbage"])
def test_a_file_that_cannot_be_trusted_is_moved_aside_and_the_rest_is_read(
        tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "spool"
    bad = spool.write(folder, spooled(1, 2), "stop", b"o" * 32 if damage == "another key"
                      else KEY)
    good = spool.write(folder, spooled(3, 1), "later stop", KEY)
    content = bad.read_bytes()
    if damage == "cut short":
        bad.write_bytes(content[:-5])
    elif damage == "a byte changed":
        bad.write_bytes(content[:40] + bytes([content[40] ^ 1]) + content[41:])
    elif damage == "garbage":
        bad.write_bytes(b"\x80\x04not a spool file")
    with spool.claimed(folder, KEY) as found:
        assert [f.path for f in found or []] == [good]
    aside = bad.with_name(bad.name + ".corrupt")
    assert aside.exists() and not bad.exists()  # kept, never deleted
    assert f"spool file {bad} cannot be trusted" in caplog.text
    assert f"moved aside to {aside}" in caplog.text
    assert caplog.records[-1].levelno == logging.ERROR


def test_a_temporary_file_left_by_a_stopped_process_is_moved_aside(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:

    folder = tmp_path / "spool"
    spool.prepare(folder)
    left = folder / ".00000000000000001-1-abcd.spool.tmp"
    left.write_bytes(b"tollgate-spool 1\n\x00")
    young = folder / ".00000000000000002-1-abcd.spool.tmp"  # being written, by another
    young.write_bytes(b"")
    os.utime(left, (time.time() - 3600, time.time() - 3600))
    with spool.claimed(folder, KEY) as found:
        assert found == []
    assert (folder / "00000000000000001-1-abcd.spool.tmp.corrupt").exists()
    assert young.exists()
    assert "left unfinished by a process that stopped while spooling" in caplog.text


def test_a_folder_that_cannot_be_made_raises(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(OSError):
        spool.write(tmp_path / "file" / "spool", spooled(1, 1), "stop", KEY)


# -- through a recorder and its writer process, on a store that cannot write ------------


@contextmanager
def write_locked(url: str) -> Iterator[None]:
    """The SQLite store's write lock held by the test (BEGIN IMMEDIATE): readers go on,
    every writer waits its busy timeout and fails, as on a store that cannot write."""
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def stopped_while_locked(url: str, signer: Signer, folder: Path, n: int,
                               writer: str = "writer-a", durability: str = "process",
                               ) -> Recorder:
    """A recorder that recorded one exchange, then `n` more while the store could not
    write, and was closed meanwhile (closing waits 0.3 s for the store)."""
    recorder = Recorder(url, settings(spool_dir=folder, close_seconds=0.3, writer_id=writer,
                                      durability=durability), signer, MASKER)
    recorder.start()
    recorder.admit()
    recorder.submit(exchange(0))
    await asyncio.to_thread(wait_until, lambda: recorder.written == 1, "the first record")
    with write_locked(url):
        for k in range(1, n + 1):
            recorder.admit()
            recorder.submit(exchange(k))
        await recorder.close()
    return recorder


def exchange(n: int) -> Evidence:
    """Evidence that is the same each time it is made (its start too)."""
    return evidence(n, started=1_700_000_000.0 + n)


def started(url: str, signer: Signer, folder: Path | None, writer: str = "writer-b",
            ) -> Recorder:
    recorder = Recorder(url, settings(spool_dir=folder, writer_id=writer), signer, MASKER)
    recorder.start()
    return recorder


def rows(url: str) -> list[record_store.Row]:
    connection = connect(url)
    try:
        return list(record_store.chain_rows(connection))
    finally:
        connection.close()


async def test_a_stop_the_store_cannot_wait_for_spools_and_the_next_start_writes_it(
        sqlite_url: str, signer: Signer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "tollgate")
    folder = tmp_path / "spool"
    await stopped_while_locked(sqlite_url, signer, folder, 4)
    files = sorted(folder.glob("*.spool"))
    assert len(files) == 1
    found = spool.read(files[0], signer.derive(spool.KEY_PURPOSE))
    assert traces_in(found)[-4:] == [f"{n:032x}" for n in range(1, 5)]
    assert "not written within 0.3s of stopping" in found.reason
    assert "could not be written before shutdown" in caplog.text
    assert f"spooled to {files[0]}" in caplog.text

    recorder = started(sqlite_url, signer, folder)
    recorder.admit()
    recorder.submit(evidence(99))
    await recorder.close()
    assert not list(folder.glob("*.spool"))
    written = rows(sqlite_url)
    assert sorted(r.trace_id for r in written) == sorted(
        f"{n:032x}" for n in (*range(5), 99))
    mine = [r for r in written if r.writer == "writer-b"]
    # The spooled records first, in order, then what the new process recorded.
    assert [r.trace_id for r in mine] == [f"{n:032x}" for n in (*range(1, 5), 99)]
    marks = [r.document().get("spooled") for r in mine]
    assert [m["from"] for m in marks[:4]] == [f"writer-a:{n}" for n in range(2, 6)]
    assert marks[4] is None
    connection = connect(sqlite_url)
    try:
        report = verify(connection, signer.public)
    finally:
        connection.close()
    assert report.intact, report.problems
    (batch,) = report.spooled()
    assert batch.records == 4 and batch.writers == {"writer-b"}
    assert batch.trace_ids == [f"{n:032x}" for n in range(1, 5)]


async def test_nothing_is_written_twice_after_a_crash_before_the_file_is_deleted(
        sqlite_url: str, signer: Signer, tmp_path: Path) -> None:
    """A spool file written into the chain but not deleted (a crash between the two) is
    recognised as written; so is a record its own chain took though the stop never
    heard so."""
    folder = tmp_path / "spool"
    await stopped_while_locked(sqlite_url, signer, folder, 3)
    (path,) = folder.glob("*.spool")
    kept = path.read_bytes()
    await started(sqlite_url, signer, folder).close()
    before = count(sqlite_url)
    path.write_bytes(kept)  # as if the start had crashed before deleting it
    key = signer.derive(spool.KEY_PURPOSE)
    # And writer-a's record 1, which its chain holds, spooled as if the stop had not
    # heard the store take it.
    assert rows(sqlite_url)[0].id == "writer-a:1"
    spool.write(folder, [spool.Spooled("writer-a", 1, encode(exchange(0)))], "lost ack", key)
    again = started(sqlite_url, signer, folder, writer="writer-c")
    await again.close()
    assert count(sqlite_url) == before
    assert not list(folder.glob("*.spool"))


async def test_a_spool_that_cannot_be_written_is_an_error_naming_count_and_folder(
        sqlite_url: str, signer: Signer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    folder = tmp_path / "file" / "spool"
    # Without a journal (which would not start there: below), only the log is left.
    await stopped_while_locked(sqlite_url, signer, folder, 2, durability="off")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("2 records could not be written before shutdown" in e
               and f"nor spooled to {folder}" in e for e in errors), errors


def test_a_journal_that_cannot_be_made_keeps_tollgate_from_starting(
        sqlite_url: str, signer: Signer, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    folder = tmp_path / "file" / "spool"
    recorder = Recorder(sqlite_url, settings(spool_dir=folder), signer, MASKER)
    with pytest.raises(StoreError, match=r"the journal cannot be made in .*file/spool "
                       r"\(recording.spool_dir; recording.durability 'process'\): "
                       "Not a directory"):
        recorder.start()


async def test_a_record_both_spooled_and_journaled_is_written_once(
        sqlite_url: str, signer: Signer, tmp_path: Path) -> None:
    """A tree killed as it stopped leaves the same records in its stop's spool and in
    its journal: the second copy is recognised by the record it came from."""
    folder = tmp_path / "spool"
    await stopped_while_locked(sqlite_url, signer, folder, 2)
    (path,) = folder.glob("*.spool")
    key = signer.derive(spool.KEY_PURPOSE)
    dead = journal.Journal(folder / journal.FOLDER, "writer-a", key)
    dead.open()
    for record in spool.read(path, key).records:
        dead.append(record.seq, b"e" + record.data)
    dead.close(keep=True)
    before = count(sqlite_url)
    await started(sqlite_url, signer, folder, writer="writer-c").close()
    assert count(sqlite_url) == before + 2
    assert not list(folder.glob("*.spool"))
    assert not list((folder / journal.FOLDER).iterdir())


async def test_an_exchange_killed_in_flight_leaves_its_provisional_record(
        sqlite_url: str, signer: Signer, tmp_path: Path) -> None:
    """A request gone upstream, its process tree killed before the exchange ended: its
    provisional (decision) record is written; one whose exchange has its own record
    in the journal is not."""
    folder = tmp_path / "spool"
    key = signer.derive(spool.KEY_PURPOSE)
    dead = journal.Journal(folder / journal.FOLDER, "writer-dead", key)
    dead.open()
    in_flight, ended = exchange(41), exchange(42)
    dead.provisional(b"e" + encode(in_flight))
    dead.provisional(b"e" + encode(ended))
    dead.append(1, b"e" + encode(ended))
    dead.close(keep=True)
    await started(sqlite_url, signer, folder, writer="writer-new").close()
    written = [r for r in rows(sqlite_url) if r.writer == "writer-new"]
    assert sorted(r.trace_id for r in written) == sorted(
        [in_flight.trace_id, ended.trace_id])
    assert all(r.document()["spooled"] for r in written)


# A request process that starts its recorder, records two exchanges when told to (the
# store's write lock held by the test), and is killed: its writer process outlives it,
# holding them. A process of its own (a fork of a test process, whose other threads may
# hold a lock, can hang).
KILLED_WHILE_ITS_WRITER_WAITS = """
import os, signal, sys
from pathlib import Path
from extproc.recording import Recorder
from extproc.recording.chain import Signer
from tests.recording.conftest import MASKER, settings
from tests.recording.test_spool import exchange

recorder = Recorder(sys.argv[1], settings(spool_dir=Path(sys.argv[3]), writer_id="replica-9"),
                    Signer.from_file(Path(sys.argv[2])), MASKER)
recorder.start()
print("started", flush=True)
sys.stdin.readline()
for k in (1, 2):
    recorder.admit()
    recorder.submit(exchange(k))
os.kill(os.getpid(), signal.SIGKILL)
"""


async def test_a_restarted_writer_waits_for_its_predecessor_to_finish_its_chain(
        sqlite_url: str, signer: Signer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A request process killed while the store could not write leaves its writer process
    with records to write. Restarted with the same writer id, its new writer waits for the
    old one (the chain's lock) instead of numbering its records after the same last one:
    then the store refused the new writer's every batch as duplicates, for good. Both
    processes' records end in one chain, each once, in order, and it verifies."""
    folder = tmp_path / "spool"
    child = await asyncio.to_thread(
        subprocess.Popen, [sys.executable, "-c", KILLED_WHILE_ITS_WRITER_WAITS, sqlite_url,
                           str(tmp_path / "audit.key"), str(folder)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert child.stdin is not None and child.stdout is not None
    assert await asyncio.to_thread(child.stdout.readline) == "started\n"
    with write_locked(sqlite_url):
        child.stdin.write("submit\n")
        child.stdin.close()
        # Its death (its pipes stay open in its writer process).
        assert await asyncio.to_thread(child.wait, 60) == -signal.SIGKILL
        again = Recorder(sqlite_url, settings(spool_dir=folder, writer_id="replica-9"),
                         signer, MASKER)
        starting = asyncio.create_task(asyncio.to_thread(again.start))
        await asyncio.to_thread(wait_until, lambda: "is still writing its chain" in caplog.text,
                                "the new writer waiting for the old one")
        assert not starting.done()
    await starting
    child.stdout.close()
    again.admit()
    again.submit(exchange(3))
    await again.close()
    connection = connect(sqlite_url)
    try:
        rows = [row for row in record_store.chain_rows(connection) if row.writer == "replica-9"]
    finally:
        connection.close()
    assert [row.seq for row in rows] == [1, 2, 3]
    assert traces_of(rows) == [f"{n:032x}" for n in (1, 2, 3)]
    assert verify_intact(sqlite_url, signer)


def traces_of(rows: list[Any]) -> list[str]:
    return [row.trace_id for row in rows]


def verify_intact(url: str, signer: Signer) -> bool:
    connection = connect(url)
    try:
        return verify(connection, signer.public).intact
    finally:
        connection.close()
