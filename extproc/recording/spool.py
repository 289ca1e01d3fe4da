"""The spool: records of answered exchanges that the store could not take before
tollgate stopped, kept on disk until a writer starts and chains them.

A request process keeps every record until its writer says the store holds it
(recorder.py); when stopping cannot wait for the store any longer (`close_seconds`), what
is still unwritten is written here instead of being dropped: one file per stop, in the
writer pipe's encoding (wire.py), numbered as the records were in their chain, made
under a temporary name, fsynced, renamed into place and its folder fsynced, mode 0600
in a folder of mode 0700. The evidence is not masked yet (the writer masks it), so a
file is sealed under a key derived from the audit key (codecs/sealed.py): a copy of it
shows nothing without the key, and a file cut short, damaged or made by anyone without
the key is told apart before its evidence is unpickled: such a file is moved aside
(renamed `*.corrupt`, never deleted) with an ERROR, and the start goes on. A file of
the first format (in clear, ending with an HMAC-SHA256) is still read.

A process tree killed without stopping leaves its journal (journal.py) instead: the
next writer to claim the spool makes each orphaned journal a spool file first.

The next writer to start (`claimed`, one at a time across workers: an flock) writes the
spooled records into its chain before anything else, in order, each carrying a
`spooled` marker (`marker`), then deletes the file. A record already in the store — its
first write committed though its answer was lost, a crash between a spooled write
and the file's deletion, or a record both spooled and journaled — is recognised
(`written_before`) and not written twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import secrets
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from extproc.codecs.private_file import sync_folder, write_all
from extproc.codecs.sealed import OVERHEAD, Sealer
from extproc.recording import journal, store
from extproc.recording.record import Evidence, started_us
from extproc.recording.wire import decode
from extproc.store import Connection

log = logging.getLogger("tollgate.recording")

# What the spool key is derived for (chain.Signer.derive).
KEY_PURPOSE = "spool"
_MAGIC = b"tollgate-spool 2\n"  # the rest sealed
_MAGIC_MAC = b"tollgate-spool 1\n"  # before: in clear, ending with an HMAC
_LENGTH = struct.Struct("<I")
_MAC_BYTES = 32
_SUFFIX, _TEMPORARY, _ASIDE, _LOCK = ".spool", ".tmp", ".corrupt", ".lock"
# A temporary file older than this was left by a process that stopped while spooling
# (one being written now, by another worker, is younger).
_UNFINISHED_SECONDS = 60.0


class SpoolCorrupt(Exception):
    """A spool file that cannot be trusted as written: why."""


@dataclass(frozen=True, slots=True)
class Spooled:
    """One unwritten record: the chain and number it had, and its evidence as the writer
    pipe carries it (wire.py)."""

    writer: str
    seq: int
    data: bytes


@dataclass(frozen=True)
class SpoolFile:
    """One spool file, read and authenticated."""

    path: Path
    spooled_us: int
    reason: str
    records: list[Spooled]

    @property
    def id(self) -> str:
        return self.path.name.removesuffix(_SUFFIX)


def prepare(folder: Path) -> None:
    """Make the folder (0700) where records are spooled; raises OSError when it cannot
    be made."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def write(folder: Path, records: list[Spooled], reason: str, key: bytes) -> Path:
    """Spool `records` (in order) durably, as one file: its path. Raises OSError when the
    folder cannot be made or written (nothing is left behind but, at worst, a temporary
    file the next start moves aside)."""
    spooled_us = started_us(time.time())
    header = orjson.dumps({"spooled_us": spooled_us, "reason": reason,
                           "records": [[r.writer, r.seq, len(r.data)] for r in records]})
    body = b"".join([_LENGTH.pack(len(header)), header, *(r.data for r in records)])
    content = _MAGIC + Sealer(key).seal(body, _MAGIC)
    prepare(folder)
    name = f"{spooled_us:017d}-{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
    temporary = folder / f".{name}{_TEMPORARY}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    path = folder / name
    os.rename(temporary, path)
    sync_folder(folder)
    return path


def read(path: Path, key: bytes) -> SpoolFile:
    """A spool file's records, once it opens with `key`; raises SpoolCorrupt (or
    OSError)."""
    body = _opened(path.read_bytes(), key)
    (size,), pos = _LENGTH.unpack_from(body), _LENGTH.size
    try:
        header = orjson.loads(body[pos : pos + size])
        pos += size
        records = []
        for writer, seq, length in header["records"]:
            records.append(Spooled(str(writer), int(seq), body[pos : pos + length]))
            pos += length
        spooled_us, reason = int(header["spooled_us"]), str(header["reason"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SpoolCorrupt(f"its header cannot be read: {exc}") from None
    if pos != len(body):
        raise SpoolCorrupt("its records do not fill it")
    return SpoolFile(path, spooled_us, reason, records)


def _opened(content: bytes, key: bytes) -> bytes:
    """A spool file's body (its header's length, its header, its records), once it
    opens (or, in the first format, its HMAC holds); raises SpoolCorrupt."""
    if content.startswith(_MAGIC) and len(content) >= len(_MAGIC) + OVERHEAD:
        body = Sealer(key).open(content[len(_MAGIC):], _MAGIC)
    elif content.startswith(_MAGIC_MAC) and len(content) >= len(_MAGIC_MAC) + _MAC_BYTES:
        body, mac = content[:-_MAC_BYTES], content[-_MAC_BYTES:]
        body = body[len(_MAGIC_MAC):] if hmac.compare_digest(
            mac, hmac.digest(key, body, hashlib.sha256)) else None
    else:
        raise SpoolCorrupt("not a spool file, or cut short")
    if body is None or len(body) < _LENGTH.size:
        raise SpoolCorrupt("it does not open with this audit key: damaged, cut short, or "
                           "not made with this audit key")
    return body


@contextlib.contextmanager
def claimed(folder: Path, key: bytes) -> Iterator[list[SpoolFile] | None]:
    """The spool's files, oldest first, while this process alone holds the spool (None:
    another worker's writer is draining it). Files that cannot be trusted are moved
    aside, with an ERROR each; raises OSError when the folder cannot be made or read."""
    prepare(folder)
    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        _unfinished(folder)
        _adopt(folder, key)
        found = []
        for path in sorted(folder.glob(f"*{_SUFFIX}")):
            try:
                found.append(read(path, key))
            except (SpoolCorrupt, OSError) as exc:
                _aside(path, str(exc))
        yield found
    finally:
        os.close(fd)  # the lock with it


def _adopt(folder: Path, key: bytes) -> None:
    """Each orphaned journal (journal.py: its processes were killed) spooled as one
    file, then deleted; one that cannot be spooled is kept for the next start."""
    journals = folder / journal.FOLDER
    for orphan in journal.adopt(journals, key):
        for problem in orphan.damaged:
            log.error("recording: journal %s: %s", orphan.name, problem)
        records = _journaled(orphan)
        if records:
            try:
                path = write(folder, records, f"journaled by processes that stopped without "
                             f"closing (journal {orphan.name})", key)
            except OSError as exc:
                log.error("recording: the journal %s of processes that stopped without "
                          "closing cannot be spooled (%s); it is kept for the next start",
                          orphan.name, exc.strerror or exc)
                journal.release(orphan)
                continue
            log.warning("recording: %d records of exchanges answered by processes that "
                        "stopped without closing (writer %s) were journaled: spooled to "
                        "%s", len(records), orphan.writer, path)
        journal.forget(journals, orphan)


def _journaled(orphan: journal.Orphan) -> list[Spooled]:
    """What an orphaned journal leaves to write: its records, and the provisional
    records (below zero) of exchanges that have none in it (killed before they ended)."""
    if all(entry.seq > 0 for entry in orphan.entries):
        return [Spooled(orphan.writer, entry.seq, entry.data[1:]) for entry in orphan.entries]
    ended = {decode(entry.data[1:])[0].span_id for entry in orphan.entries if entry.seq > 0}
    return [Spooled(orphan.writer, entry.seq, entry.data[1:]) for entry in orphan.entries
            if entry.seq > 0 or decode(entry.data[1:])[0].span_id not in ended]


def remove(spooled: SpoolFile) -> None:
    """A spool file whose records are all in the store, deleted (durably)."""
    spooled.path.unlink()
    sync_folder(spooled.path.parent)


def marker(spooled: SpoolFile, index: int, written_us: int) -> dict[str, Any]:
    """What a spooled record carries in its content (`spooled`): which spool file and
    place it came from (so it is never written twice), the chain and number it had, why
    and when it was spooled, and when it was written."""
    record = spooled.records[index]
    return {"id": f"{spooled.id}/{index}", "from": store.record_id(record.writer, record.seq),
            "reason": spooled.reason, "spooled_us": spooled.spooled_us,
            "written_us": written_us}


def written_before(connection: Connection, evidence: Evidence, spooled: SpoolFile,
                   index: int) -> bool:
    """Whether the store holds this spooled record already: written from a spool file
    (this one, before a crash kept it from being deleted; or another that held the same
    record: a stop's spool and the journal of a tree killed as it spooled), or by its
    own chain (committed, its answer lost before the request process stopped
    waiting)."""
    record = spooled.records[index]
    spool_id = f"{spooled.id}/{index}"
    original = store.record_id(record.writer, record.seq)
    for row in store.by_id(connection, evidence.trace_id):
        content = store.content_of(row.content)
        mark = content.get("spooled")
        same = content.get("span_id") == evidence.span_id
        if record.seq < 0 and same:  # a provisional record: its exchange has one
            return True
        if isinstance(mark, dict) and (mark.get("id") == spool_id
                                       or (mark.get("from") == original and same)):
            return True
        if row.id == original and mark is None and content.get("span_id") == \
                evidence.span_id and row.started_us == started_us(evidence.started):
            return True
    return False


def _unfinished(folder: Path) -> None:
    """Temporary files left by a process that stopped while spooling, moved aside."""
    for path in folder.glob(f".*{_SUFFIX}{_TEMPORARY}"):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - path.stat().st_mtime > _UNFINISHED_SECONDS:
                _aside(path, "left unfinished by a process that stopped while spooling")


def _aside(path: Path, why: str) -> None:
    aside = path.with_name(path.name.lstrip(".") + _ASIDE)
    try:
        os.rename(path, aside)
        sync_folder(path.parent)
    except OSError as exc:
        log.error("recording: spool file %s cannot be trusted (%s), nor moved aside: %s; "
                  "it is skipped", path, why, exc.strerror)
        return
    log.error("recording: spool file %s cannot be trusted (%s): moved aside to %s; its "
              "records are not written", path, why, aside)
