"""The journal (extproc/recording/journal.py) on a real file system: what it keeps, what
it cuts back, and what a later process adopts of a dead one's, in child processes that
really hold and lose its lock."""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import os
import struct
from pathlib import Path

import pytest

from extproc.recording import journal, spool

KEY = b"k" * 32


def opened(folder: Path, writer: str = "w-1") -> journal.Journal:
    made = journal.Journal(folder, writer, KEY)
    made.open()
    return made


def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.journal"))


def test_what_the_store_holds_is_cut_back_and_the_rest_kept(tmp_path: Path) -> None:
    mine = opened(tmp_path)
    for seq in (1, 2, 3):
        mine.append(seq, b"e" + bytes([seq]) * 10)
    (path,) = segments(tmp_path)
    full = path.stat().st_size
    assert mine.written(2, unwritten=True) is False  # record 3 is still only here
    assert path.stat().st_size == full
    assert mine.written(3, unwritten=False) is True
    assert path.stat().st_size < full
    mine.append(4, b"e4")
    mine.close(keep=True)
    (orphan,) = journal.adopt(tmp_path, KEY)
    assert [(e.seq, e.data) for e in orphan.entries] == [(4, b"e4")]
    assert orphan.writer == "w-1"
    journal.forget(tmp_path, orphan)
    assert list(tmp_path.iterdir()) == []


def test_a_full_segment_begins_another_and_is_deleted_once_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "SEGMENT_BYTES", 100)
    mine = opened(tmp_path)
    for seq in range(1, 6):
        mine.append(seq, b"e" * 60)
    assert len(segments(tmp_path)) == 5
    mine.written(3, unwritten=True)
    assert len(segments(tmp_path)) == 2  # records 4 and 5
    mine.close(keep=True)
    (orphan,) = journal.adopt(tmp_path, KEY)
    assert [e.seq for e in orphan.entries] == [4, 5]
    journal.release(orphan)


def test_a_closed_journal_is_deleted(tmp_path: Path) -> None:
    mine = opened(tmp_path)
    mine.append(1, b"e1")
    mine.close(keep=False)
    assert list(tmp_path.iterdir()) == []


def _live(folder: str, ready: multiprocessing.synchronize.Event,
          done: multiprocessing.synchronize.Event) -> None:
    mine = opened(Path(folder), "w-live")
    mine.append(1, b"e1")
    ready.set()
    done.wait(30)


def test_a_living_processs_journal_is_never_adopted_and_a_dead_ones_is(
        tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    ready, done = context.Event(), context.Event()
    child = context.Process(target=_live, args=(str(tmp_path), ready, done))
    child.start()
    try:
        assert ready.wait(30)
        assert journal.adopt(tmp_path, KEY) == []  # its lock is held
    finally:
        done.set()
        child.join(30)
    assert child.exitcode == 0
    # It exited without closing: an orphan now, adopted once.
    (orphan,) = journal.adopt(tmp_path, KEY)
    assert [e.seq for e in orphan.entries] == [1]
    assert journal.adopt(tmp_path, KEY) == []  # this process holds it now
    journal.forget(tmp_path, orphan)
    assert journal.adopt(tmp_path, KEY) == []


def test_a_frame_cut_short_is_dropped_and_a_forged_one_stops_the_reading(
        tmp_path: Path) -> None:
    mine = opened(tmp_path)
    mine.append(1, b"e-one")
    mine.append(2, b"e-two")
    mine.close(keep=True)
    (path,) = segments(tmp_path)
    content = path.read_bytes()
    path.write_bytes(content[:-5])  # the kill cut the last write short
    (orphan,) = journal.adopt(tmp_path, KEY)
    assert [e.seq for e in orphan.entries] == [1]
    assert orphan.damaged == []
    journal.release(orphan)
    forged = bytearray(content)
    forged[-40] ^= 1  # a byte of the second frame changed
    path.write_bytes(bytes(forged))
    (orphan,) = journal.adopt(tmp_path, KEY)
    assert [e.seq for e in orphan.entries] == [1]
    assert "does not open with this audit key" in orphan.damaged[0]
    journal.release(orphan)


def test_the_spool_adopts_an_orphan_as_a_spool_file(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    mine = opened(folder / journal.FOLDER, "w-dead")
    mine.append(7, b"eEVIDENCE-7")
    mine.append(8, b"sEVIDENCE-8")
    mine.close(keep=True)
    with spool.claimed(folder, KEY) as found:
        assert found is not None
        (spooled,) = found
    assert [(r.writer, r.seq, r.data) for r in spooled.records] == [
        ("w-dead", 7, b"EVIDENCE-7"), ("w-dead", 8, b"EVIDENCE-8")]
    assert "stopped without closing" in spooled.reason
    assert list((folder / journal.FOLDER).iterdir()) == []


def test_files_are_private(tmp_path: Path) -> None:
    mine = opened(tmp_path / "j")
    mine.append(1, b"e1")
    assert os.stat(tmp_path / "j").st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "j").iterdir()} == {0o600}
    mine.close(keep=False)


def test_a_provisional_record_holds_its_segment_until_settled(tmp_path: Path) -> None:
    mine = opened(tmp_path)
    handle = mine.provisional(b"eDECISION")
    mine.append(1, b"e1")
    assert mine.written(1, unwritten=False) is False  # an exchange is still in flight
    mine.settle(handle)
    assert mine.written(1, unwritten=False) is True
    mine.close(keep=True)
    (orphan,) = journal.adopt(tmp_path, KEY)
    assert orphan.entries == []
    journal.release(orphan)


def test_provisional_entries_read_back_below_zero(tmp_path: Path) -> None:
    mine = opened(tmp_path)
    mine.provisional(b"eA")
    mine.append(3, b"e3")
    mine.provisional(b"eB")
    mine.close(keep=True)
    (orphan,) = journal.adopt(tmp_path, KEY)
    assert [(e.seq, e.data) for e in orphan.entries] == [(-1, b"eA"), (3, b"e3"), (-2, b"eB")]
    journal.release(orphan)


def test_what_is_journaled_is_sealed_and_another_key_opens_none_of_it(
        tmp_path: Path) -> None:
    """The evidence is not masked yet: its bytes are not in the file, and a journal
    read with another key yields nothing but its damage."""
    mine = opened(tmp_path)
    mine.append(1, b"eSSN 078-05-1120 password=hunter2")
    mine.provisional(b"eBearer eyJhbGciOi.secret")
    mine.close(keep=True)
    (path,) = segments(tmp_path)
    content = path.read_bytes()
    for clear in (b"078-05-1120", b"hunter2", b"eyJhbGciOi"):
        assert clear not in content
    (orphan,) = journal.adopt(tmp_path, b"x" * 32)
    assert orphan.entries == [] and "does not open" in orphan.damaged[0]
    journal.release(orphan)
    (orphan,) = journal.adopt(tmp_path, KEY)
    assert [(e.seq, e.data) for e in orphan.entries] == [
        (1, b"eSSN 078-05-1120 password=hunter2"), (-1, b"eBearer eyJhbGciOi.secret")]
    journal.release(orphan)


def test_a_journal_of_the_first_format_is_still_adopted(tmp_path: Path) -> None:
    """Frames in clear, each with an HMAC-SHA256 (before journals were sealed): an
    upgrade with such an orphan loses none of it, and a forged frame still stops it."""
    frames = b""
    for seq, data in ((1, b"e-one"), (2, b"e-two")):
        frame = struct.pack("<IQ", len(data), seq) + data
        mac = hmac.digest(KEY, frame, hashlib.sha256)
        frames += frame + (mac if seq == 1 else bytes(32))
    (tmp_path / "9-old.lock").touch()
    (tmp_path / "9-old.000001.journal").write_bytes(b"tollgate-journal 1 w-old\n" + frames)
    (orphan,) = journal.adopt(tmp_path, KEY)
    assert orphan.writer == "w-old"
    assert [(e.seq, e.data) for e in orphan.entries] == [(1, b"e-one")]
    assert "does not open" in orphan.damaged[0]
    journal.release(orphan)
