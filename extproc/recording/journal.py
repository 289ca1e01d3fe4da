"""The journal: what a request process handed to its writer, on disk before the answer
leaves, so that a process tree killed at any instant (an OOM kill, a lost pod) loses no
record of an exchange it answered.

The writer process writes records in batches, tens of milliseconds after an exchange
ends (writer.py); a `kill -9` of the request process and its writer together loses what
was on the pipe and in the batch. So each message the recorder numbers (recorder.py's
`_send`) is first appended here, one `write` on an O_APPEND file, in the writer pipe's
encoding (wire.py) with its number, sealed under the spool's key (derived from the audit key;
codecs/sealed.py): the evidence is not masked yet, so a copy of the files shows nothing of
it without the key, and nothing is unpickled from a frame that does not open. A journal
of the first format (frames in clear, each with an HMAC-SHA256) is still adopted. A
write is in the kernel's page cache when `append` returns: it outlives every process,
not the node (durability "process"); with `sync` it is also flushed to the disk before
the answer leaves (durability "node", a disk flush per exchange).

An exchange whose request goes upstream before it ends (a database statement, an HTTP
request whose answer tollgate reads) journals its decision record first, as a
*provisional* entry (`provisional`, numbered below zero: never sent to the writer): a
kill between the request leaving and the exchange's end leaves that record, not
nothing. The exchange's own record settles it (`settle`); an orphan's provisional
entries whose exchange has a record in the journal are dropped.

What the store has taken is dropped: when nothing is unwritten and nothing provisional
is unsettled the segment is cut back to its header (`written`); past SEGMENT_BYTES a new
segment begins, and an old one is deleted once the store holds its last record and its
provisional entries are settled.

A journal is owned by a shared flock on its lock file, taken by the request process and
by each of its writer processes (and held by anything they forked): while one of them
lives, its writer will still write or re-send what the journal holds. When none does, it
is an orphan: the next writer to drain the spool (spool.py's `claimed`, which calls
`adopt`) takes the lock exclusively, spools the orphan's records as one spool file (the
spool writes them into a chain, each once: `spool.written_before` knows those its dead
writer had committed) and deletes the journal. A frame cut short by the kill is the
last, and was never answered: it is dropped.
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
from dataclasses import dataclass, field
from pathlib import Path

from extproc.codecs.private_file import sync_folder, write_all
from extproc.codecs.sealed import OVERHEAD, Sealer

log = logging.getLogger("tollgate.recording")

FOLDER = "journal"  # under the spool folder
SEGMENT_BYTES = 8 << 20
_MAGIC = b"tollgate-journal 2 "  # frames sealed
_MAGIC_MAC = b"tollgate-journal 1 "  # before: frames in clear, each with an HMAC
_FRAME = struct.Struct("<IQ")  # the sealed message's length, its number in the chain
_MAC_BYTES = 32
_LOCK, _SEGMENT = ".lock", ".journal"


@dataclass(frozen=True, slots=True)
class Entry:
    """One journaled message: its number in the writer's chain (below zero: a
    provisional record, never sent) and the message as sent to the writer (its first
    byte says evidence or strict)."""

    seq: int
    data: bytes


@dataclass(slots=True)
class _Segment:
    path: Path
    fd: int
    number: int
    size: int  # bytes written to it, or being written (a write cut short is cut back)
    last: int = 0  # the highest number appended (0: none since its header)
    unsettled: int = 0  # provisional entries whose exchange has not ended


@dataclass
class Journal:
    """One request process's journal (`open`), appended on the request path."""

    folder: Path
    writer: str
    key: bytes
    sync: bool = False
    name: str = field(default_factory=lambda: f"{os.getpid()}-{secrets.token_hex(4)}")
    _lock: int = -1
    _segments: list[_Segment] = field(default_factory=list)
    _number: int = 0
    _header: bytes = b""
    _provisional: int = 0  # the last provisional entry's number (below zero)
    _sealer: Sealer | None = None

    @property
    def lock_path(self) -> Path:
        return self.folder / f"{self.name}{_LOCK}"

    def open(self) -> None:
        """Make the folder (0700), take the journal's lock and begin its first segment;
        raises OSError when it cannot (tollgate then does not serve: `durability` asks
        for what it cannot give)."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = hold(self.lock_path)
        self._sealer = Sealer(self.key)
        self._header = _MAGIC + self.writer.encode() + b"\n"
        self._begin()

    def append(self, seq: int, data: bytes) -> None:
        """Journal message `seq` (before it is sent, and before the exchange's answer
        leaves); raises OSError when the disk refuses it."""
        segment = self._current()
        segment.last = seq  # first: a write cut short is cut back with what it follows
        self._frame(segment, seq, data)

    def provisional(self, data: bytes) -> int:
        """Journal an exchange's provisional record (its request leaves before it ends):
        the handle `settle` takes once its own record is journaled. Raises OSError."""
        segment = self._current()
        self._provisional -= 1
        segment.unsettled += 1  # first: cut back only once settled
        self._frame(segment, self._provisional, data)
        return segment.number

    def settle(self, handle: int) -> None:
        """A provisional record's exchange has its own record journaled."""
        for segment in self._segments:
            if segment.number == handle:
                segment.unsettled -= 1
                return

    def _current(self) -> _Segment:
        segment = self._segments[-1]
        if (segment.last or segment.unsettled) and segment.size >= SEGMENT_BYTES:
            self._begin()
            segment = self._segments[-1]
        return segment

    def _frame(self, segment: _Segment, seq: int, data: bytes) -> None:
        assert self._sealer is not None, "append before open"
        header = _FRAME.pack(len(data) + OVERHEAD, seq & 0xFFFF_FFFF_FFFF_FFFF)
        out = header + self._sealer.seal(data, header)
        segment.size += len(out)  # first, as `last`: counted even if the write fails
        write_all(segment.fd, out)
        if self.sync:
            os.fdatasync(segment.fd)

    def written(self, seq: int, unwritten: bool) -> bool:
        """The store holds every record up to `seq` (`unwritten`: some after it are
        not): segments wholly written are deleted, the current one cut back to its
        header when nothing is left to write (True: it was, or held nothing)."""
        while len(self._segments) > 1 and self._segments[0].last <= seq \
                and not self._segments[0].unsettled:
            old = self._segments.pop(0)
            os.close(old.fd)
            with contextlib.suppress(FileNotFoundError):
                old.path.unlink()
        current = self._segments[-1]
        if unwritten or current.last > seq or current.unsettled:
            return False
        if current.size > len(self._header):
            os.ftruncate(current.fd, len(self._header))
            current.size = len(self._header)
        current.last = 0
        return True

    def close(self, keep: bool) -> None:
        """Stop journaling; the files are deleted unless `keep` (records neither written
        nor spooled: the next start adopts them)."""
        for segment in self._segments:
            os.close(segment.fd)
            if not keep:
                with contextlib.suppress(FileNotFoundError):
                    segment.path.unlink()
        self._segments = []
        if not keep:
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    def _begin(self) -> None:
        self._number += 1
        path = self.folder / f"{self.name}.{self._number:06d}{_SEGMENT}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                     0o600)
        write_all(fd, self._header)
        if self.sync:
            os.fsync(fd)
            sync_folder(self.folder)
        self._segments.append(_Segment(path, fd, self._number, len(self._header)))


def hold(lock_path: Path) -> int:
    """Take a shared hold on a journal's lock file (a request process or its writer,
    which each keep the descriptor for life): the journal is no orphan while one
    lives. Raises OSError when it cannot."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        raise
    return fd


@dataclass
class Orphan:
    """A journal none of whose processes lives, adopted: the writer it numbered for,
    what its segments hold, in order, and the lock this process holds on it."""

    name: str
    writer: str
    entries: list[Entry]
    segments: list[Path]
    damaged: list[str]  # what could not be read (logged; never unpickled)
    lock: int = -1


def adopt(folder: Path, key: bytes) -> list[Orphan]:
    """The orphaned journals in `folder`, each read while this process holds its lock
    exclusively (`forget` deletes one once its records are spooled, `release` lets it
    go). A journal whose processes live (or that another process adopts now) is left
    alone."""
    found = []
    for lock_path in sorted(folder.glob(f"*{_LOCK}")) if folder.is_dir() else ():
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if os.fstat(fd).st_nlink == 0:  # adopted and deleted since it was listed
            os.close(fd)
            continue
        orphan = _read(folder, lock_path.name.removesuffix(_LOCK), key)
        orphan.lock = fd
        found.append(orphan)
    return found


def forget(folder: Path, orphan: Orphan) -> None:
    """An adopted journal's records are spooled: its files deleted, durably, and its
    lock let go."""
    for path in orphan.segments:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    with contextlib.suppress(FileNotFoundError):
        (folder / f"{orphan.name}{_LOCK}").unlink()
    sync_folder(folder)
    release(orphan)


def release(orphan: Orphan) -> None:
    """Let an adopted journal's lock go (its files kept: spooling it failed)."""
    if orphan.lock >= 0:
        os.close(orphan.lock)
        orphan.lock = -1


def _read(folder: Path, name: str, key: bytes) -> Orphan:
    entries: list[Entry] = []
    damaged: list[str] = []
    writer = ""
    sealer = Sealer(key)
    segments = sorted(folder.glob(f"{name}.*{_SEGMENT}"))
    for path in segments:
        try:
            content = path.read_bytes()
        except OSError as exc:
            damaged.append(f"{path.name}: {exc.strerror or exc}")
            continue
        end = content.find(b"\n")
        magic = next((m for m in (_MAGIC, _MAGIC_MAC) if content.startswith(m)), None)
        if magic is None or end < 0:
            damaged.append(f"{path.name}: not a journal segment")
            continue
        writer = content[len(magic):end].decode(errors="replace")
        trailer = _MAC_BYTES if magic is _MAGIC_MAC else 0
        pos = end + 1
        while pos < len(content):
            if pos + _FRAME.size > len(content):
                break  # cut short by the kill: never answered
            length, seq = _FRAME.unpack_from(content, pos)
            if seq >= 1 << 63:  # a provisional entry's (below zero)
                seq -= 1 << 64
            stop = pos + _FRAME.size + length
            if stop + trailer > len(content):
                break
            data = _opened(sealer, key, content[pos:stop + trailer], trailer)
            if data is None:
                damaged.append(f"{path.name}: a frame at byte {pos} that does not open with "
                               "this audit key (damaged, or made with another key); the rest "
                               "of the segment is not read")
                break
            entries.append(Entry(seq, data))
            pos = stop + trailer
    return Orphan(name, writer, entries, segments, damaged)


def _opened(sealer: Sealer, key: bytes, frame: bytes, mac_bytes: int) -> bytes | None:
    """A frame's message, once it opens (sealed) or its HMAC holds (the first format:
    `mac_bytes` of it); None if not."""
    if not mac_bytes:
        return sealer.open(frame[_FRAME.size:], frame[:_FRAME.size])
    body, mac = frame[:-mac_bytes], frame[-mac_bytes:]
    if not hmac.compare_digest(mac, hmac.digest(key, body, hashlib.sha256)):
        return None
    return body[_FRAME.size:]
