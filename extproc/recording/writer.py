"""The recording writer process: builds, masks, chains and writes the records.

The request process (`recorder.py`) sends each exchange's evidence down a pipe; here a
thread receives it, and the main thread does the rest in batches: builds each record
(masking its bodies), chains it, writes the batch in one transaction, and every so
often signs a checkpoint, appending it to the anchor log once the store has it
(`anchors.py`). What it tells the request process, on a pipe of its own:

- `("ready", seq)` once it has registered (in the store and the anchor log), written
  what the spool held when it is told to (spool.py: records a stop could not wait for)
  and continues its chain after record `seq`; `("error", why)` when it cannot start;
- `("written", seq)` after each batch the store took: every record up to `seq`;
- `("failed", why)` each time the store (or the anchor log) refused a write for longer
  than a blip (store/retry.py's budget): the batch is retried, unchanged, until it is
  written;
- `("log", level, logger, text)`: its log lines, which the request process logs;
- `("bye",)` when it has written everything it received before a stop, and closed.

It ignores SIGTERM and SIGINT (a whole process group stopped at once must not cut the
drain short): it stops when told, or when the request process is gone (its pipe's end),
then after writing what it received.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import os
import queue
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any, TypeVar

from extproc import config, ledger
from extproc.codecs.inert import terminal
from extproc.codecs.text import utc
from extproc.masking import Masker
from extproc.masking.log_lines import LogMasking
from extproc.recording import anchors, journal, retention, sessions, spool, store
from extproc.recording.chain import GENESIS, Checkpoint, Signer, canonical, record_hash
from extproc.recording.record import Evidence, Session, contents_of, started_us, unbuildable
from extproc.recording.wire import decode, encode
from extproc.store import Connection, StoreError, connect
from extproc.store.retry import BUDGET
from extproc.telemetry import SpanData, SpanExport

log = logging.getLogger("tollgate.recording")

# A message's first byte: an exchange's evidence, a strict one (written at once), stop,
# or several messages in one (`batched`).
EVIDENCE, STRICT, STOP, BATCH = b"e", b"s", b"q", b"m"
_LENGTH = struct.Struct("<I")

# The ledger's front for the writer process's stages (extproc/ledger.py).
WRITER = "writer"


def batched(messages: list[bytes]) -> bytes:
    """Messages as one: the request process sends what its exchanges finished within
    2 ms in one write, and this process reads it in one (a pipe message costs a system
    call on each side, and a wake-up of this process's receiver)."""
    if len(messages) == 1:
        return messages[0]
    return BATCH + b"".join(_LENGTH.pack(len(m)) + m for m in messages)


def unbatched(data: bytes) -> list[bytes]:
    """The messages a pipe message holds, in order."""
    if data[:1] != BATCH:
        return [data]
    messages, pos = [], 1
    while pos < len(data):
        (size,) = _LENGTH.unpack_from(data, pos)
        pos += _LENGTH.size
        messages.append(data[pos : pos + size])
        pos += size
    return messages

# A batch the store refused is tried again after these many seconds, then doubling.
_RETRY_FIRST, _RETRY_MOST = 0.1, 5.0
# A store that refuses writes for less than this is blinking (a restart, a failover):
# new requests are still admitted while the write is retried (store/retry.py's budget).
_BLIP_SECONDS = BUDGET
# How often, at most, the writer wakes with nothing to write (checkpoints, pruning).
_IDLE_WAKE = 1.0
# How often records past `store.retention_days` are pruned.
_PRUNE_EVERY = 3600.0
# How long a stopping writer waits for the collector to take the last spans.
_SPAN_FLUSH_SECONDS = 4.0
# How long a writer whose request process is gone keeps trying to write what it has.
_ORPHAN_SECONDS = 30.0

_T = TypeVar("_T")


@dataclass
class RecorderSettings:
    queue_size: int
    batch_size: int
    checkpoint_every: int
    checkpoint_seconds: float
    checkpoint_file: Path | None = None
    # Whether checkpoint_file may hold another store's anchors (recording.
    # shared_anchor_log); else a writer does not start on a log another store writes.
    shared_anchor_log: bool = False
    retention_days: float = 0
    # The targets that set their own retention_days (retention.py): theirs, in days.
    target_retention_days: dict[str, float] = field(default_factory=dict)
    commit_seconds: float = 1.0
    flush_seconds: float = 0.05
    writer_id: str = field(default_factory=lambda: default_writer_id())
    # The share of queue_size one identity's records may take (at least one place).
    identity_share: float = 1.0
    # The bytes of bodies one identity's records may hold an hour; None: no budget.
    identity_bytes_per_hour: int | None = None
    # A token's (or identity's) exchanges further apart begin a new session (sessions.py).
    session_idle_minutes: float = 30.0
    # Where records the store has not taken when stopping gives up on it are spooled
    # (spool.py), and read back from on start; None: nowhere (they are counted, lost).
    spool_dir: Path | None = None
    # How long stopping waits for the store to take what is queued before spooling it.
    close_seconds: float = 30.0
    # What an answered exchange's record outlives before the store has it (journal.py):
    # "process" (any death of tollgate's processes), "node" (also a power loss: a disk
    # flush per exchange) or "off" (nothing: a killed process tree loses what it held).
    durability: str = "process"
    # The request process's journal lock, which its writer processes hold too.
    journal_lock: Path | None = None
    # Where the exchanges' spans go (telemetry.py; None: they are not exported here).
    telemetry: config.Telemetry | None = None


def default_writer_id() -> str:
    """Host, process and a random tag: a restarted process begins a chain of its own
    (a restarted writer process continues its request process's)."""
    host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())
    return f"{host[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(slots=True)
class _Item:
    data: bytes  # the evidence, encoded (wire.py)
    strict: bool  # someone waits for it: written at once
    spooled: dict[str, Any] | None = None  # a spooled record's marker (spool.marker)


class _Acks:
    """The pipe back to the request process (the writer's and the receiver's thread
    both send on it)."""

    def __init__(self, pipe: Pipe) -> None:
        self._pipe, self._lock = pipe, threading.Lock()

    def send(self, message: tuple[Any, ...]) -> bool:
        """Send; False when the request process is gone (there is nobody to tell, and
        what it sent is written all the same)."""
        with self._lock:
            try:
                self._pipe.send(message)
            except OSError:
                return False
            return True


class _Forward(logging.Handler):
    """This process's log lines, to be logged by the request process's logging."""

    def __init__(self, acks: _Acks, level: int) -> None:
        super().__init__(level)
        self._acks = acks

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if not self._acks.send(("log", record.levelno, record.name, text)):
            sys.stderr.write(f"{record.levelname} {record.name}: {terminal(text)}\n")


def serve(evidence: Pipe, pipe: Pipe, url: str, settings: RecorderSettings, signer: Signer,
          masker: Masker, log_level: int, drain: bool = False) -> None:
    """The writer process's life: start (`drain`: writing the spool first), write what
    arrives until told to stop (or the request process is gone), say bye."""
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, signal.SIG_IGN)
    # Forked from the request process (recorder.py), a signal would otherwise wake that
    # process's event loop through the descriptor they now share.
    signal.set_wakeup_fd(-1)
    acks = _Acks(pipe)
    if settings.journal_lock is not None:
        # While this process lives, its request process's journal is no orphan: what it
        # holds may still be written from here (the descriptor is kept for life).
        with contextlib.suppress(OSError):  # the request process holds it still
            journal.hold(settings.journal_lock)
    root = logging.getLogger()
    forward = _Forward(acks, log_level)
    forward.addFilter(LogMasking(masker))  # masked here too: stderr may be its only way out
    root.handlers[:] = [forward]
    root.setLevel(log_level)
    try:
        _own_chain(settings)
    except OSError as exc:  # the spool folder is unusable: said again where it is used
        log.error("recording: the chain's lock in %s (recording.spool_dir) cannot be taken "
                  "(%s): a previous process of writer %s still writing would not be waited "
                  "for", settings.spool_dir, exc.strerror or exc, settings.writer_id)
    writer = ChainWriter(url, settings, signer, masker, acks)
    if settings.telemetry is not None and settings.telemetry.otlp_endpoint:
        writer.spans = SpanExport(settings.telemetry)
    masker.warm()  # before "ready": a strict record's commit deadline must not pay for it
    try:
        base = writer.start()
        if drain:
            base = writer.drain_spool()
    except StoreError as exc:
        acks.send(("error", str(exc)))
        return
    acks.send(("ready", base))
    gc.freeze()  # as the request process does (server.py): full collections stay short
    items: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
    finished = threading.Event()
    threading.Thread(target=_receive, args=(evidence, items, finished), daemon=True,
                     name="tollgate-recording-receiver").start()
    try:
        writer.run(items)
    except BaseException:  # a bug: the request process refuses, restarts and re-sends
        log.exception("recording: the writer stopped")
        raise
    finished.set()
    acks.send(("bye",))
    if writer.spans is not None:  # the request process waits _END_SECONDS for this one
        writer.spans.flush(_SPAN_FLUSH_SECONDS)


def _own_chain(settings: RecorderSettings) -> None:
    """Hold this writer's chain alone for this process's life, before reading where the
    chain ends: an flock on `<spool_dir>/.chain-<writer>.lock`.

    A writer process outlives its request process when that one is killed (it writes
    what it holds, then exits: `serve`). A configured `writer_id` is the same after a
    restart, so the restarted process's writer would read the chain's end while the old
    one still had records to write, number its own after the same record, and be refused
    by the store (a duplicate) from then on. The new writer waits here for the old one
    to finish instead. Without a spool folder there is no place for the lock (a writer
    id made per process never meets an old one). Raises OSError."""
    folder = settings.spool_dir
    if folder is None:
        return
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() or c in "-._" else "_" for c in settings.writer_id)
    fd = os.open(folder / f".chain-{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.warning("recording: the previous process of writer %s is still writing its "
                    "chain; waiting for it to finish", settings.writer_id)
        fcntl.flock(fd, fcntl.LOCK_EX)  # kept for life: the descriptor is never closed


def _receive(evidence: Pipe, items: queue.SimpleQueue[_Item | None],
             finished: threading.Event) -> None:
    """Take every message off the pipe at once, whatever the store does, so that the
    request process never waits to send (the request process bounds what is pending).
    The pipe's end (the request process gone, told to stop or not) starts a clock: a
    writer that cannot write what it has within _ORPHAN_SECONDS (the store is gone too)
    does not outlive it for long."""
    stopped = False
    while True:
        try:
            received = evidence.recv_bytes()
        except (EOFError, OSError):
            break
        for data in unbatched(received):
            tag = data[:1]
            if tag == STOP:
                items.put(None)
                stopped = True
            else:
                items.put(_Item(data[1:], tag == STRICT))
    if not stopped:
        log.warning("recording: the request process is gone; writing what it sent, then "
                    "stopping")
        items.put(None)
    if not finished.wait(_ORPHAN_SECONDS):
        log.error("recording: records sent by a request process that is gone could not be "
                  "written within %.0fs; stopping", _ORPHAN_SECONDS)
        os._exit(1)


class ChainWriter:
    """One writer's chain: records built, chained and written in batches, checkpoints
    signed and anchored, old records pruned."""

    def __init__(self, url: str, settings: RecorderSettings, signer: Signer, masker: Masker,
                 acks: _Acks | _Unheard) -> None:
        self.writer = settings.writer_id
        self._url, self._settings, self._signer, self._masker = url, settings, signer, masker
        self._acks = acks
        self._connection: Connection | None = None
        self._seq, self._hash = 0, GENESIS
        self._store_id: str | None = None  # what its statements name (store.store_id)
        self._since_checkpoint, self._checkpoint_at = 0, time.monotonic()
        self._prune_at = 0.0
        self._failing = False
        self._draining = False  # writing the spool: a store that stays out fails the start
        # Where the exchanges' spans are exported once their records are stored (None:
        # nowhere; telemetry.py).
        self.spans: SpanExport | None = None

    def start(self) -> int:
        """Open the store, continue this writer's chain (or begin it) and register it;
        the last record of the chain. Raises StoreError when the store or the anchor log
        cannot be written: tollgate does not serve unrecorded, nor unanchored."""
        if self._connection is None:  # a LoneWriter's is its caller's
            self._connection = connect(self._url)
        last = store.last_of(self._connection, self.writer)
        if last is not None:  # a configured writer_id, or a restarted writer process
            self._seq, self._hash = last
        self._store_id = store.store_id(self._connection)
        path = self._settings.checkpoint_file
        if path is not None and not self._settings.shared_anchor_log:
            self._refuse_shared(path, self._connection)
        start = self._signer.sign("start", self.writer, self._seq, self._hash,
                                  started_us(time.time()), store_id=self._store_id)
        store.register(self._connection, store.Registration(
            self.writer, start.signed_us, start.seq,
            anchors.identity(path) if path else None))
        self._anchor([start])
        log.info("recording to %s as writer %s", self._connection.where, self.writer)
        return self._seq

    def drain_spool(self) -> int:
        """Write the spooled records (spool.py) into this chain, oldest first, each
        once, then delete their files; the chain's last record. Raises StoreError when
        the store refuses them past a blip (they stay spooled; tollgate does not start).
        A spool that cannot be read is logged and left: new records are still written."""
        folder = self._settings.spool_dir
        if folder is None:
            return self._seq
        try:
            with spool.claimed(folder, self._signer.derive(spool.KEY_PURPOSE)) as found:
                for spooled in found or ():
                    self._write_spooled(spooled)
                    spool.remove(spooled)
        except OSError as exc:
            log.error("recording: the spool folder %s (recording.spool_dir) cannot be used: "
                      "%s; records the store has not taken when tollgate stops will be lost",
                      folder, exc.strerror or exc)
        return self._seq

    def _write_spooled(self, spooled: spool.SpoolFile) -> None:
        """One spool file's records, chained in batches (those the store holds already
        skipped), the last batch checkpointed and anchored."""
        if self._connection is None:
            self._connection = connect(self._url)
        written_us = started_us(time.time())
        items = []
        for index, record in enumerate(spooled.records):
            evidence, _ = decode(record.data)
            if not spool.written_before(self._connection, evidence, spooled, index):
                items.append(_Item(record.data, False, spool.marker(spooled, index,
                                                                    written_us)))
        size = self._settings.batch_size
        self._draining = True
        try:
            for start in range(0, len(items), size):
                self._write(items[start : start + size], final=start + size >= len(items))
        finally:
            self._draining = False
        log.warning("recording: %d records spooled at %s (%s) were written from %s; %d "
                    "were in the store already", len(items), utc(spooled.spooled_us),
                    spooled.reason, spooled.path, len(spooled.records) - len(items))

    def run(self, items: queue.SimpleQueue[_Item | None]) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch(items)
            if batch:
                self._write(batch)
            elif self._checkpoint_due():
                self._write([])
            else:
                self._prune_when_due()
        if self._since_checkpoint:
            self._write([], final=True)
        if self._connection is not None:
            self._connection.close()

    def _next_batch(self, items: queue.SimpleQueue[_Item | None],
                    ) -> tuple[list[_Item], bool]:
        """The next batch: what arrives within `flush_seconds` of its first record, up to
        `batch_size` — one transaction (one fsync) for many records, where a transaction
        per record costs several times the CPU. A strict commit is written at once. A
        stop comes after everything sent before it: what is queued is written first."""
        try:
            first = items.get(timeout=_IDLE_WAKE)
        except queue.Empty:
            return [], False
        if first is None:
            return [], True
        batch = [first]
        deadline = 0.0 if first.strict else time.monotonic() + self._settings.flush_seconds
        while len(batch) < self._settings.batch_size:
            try:
                item = items.get(timeout=max(0.0, deadline - time.monotonic())) \
                    if deadline > time.monotonic() else items.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
            if item.strict:
                deadline = 0.0  # someone waits for this one: no more gathering
        return batch, False

    def _prune_when_due(self) -> None:
        """Every hour (and at the first idle moment): forget sessions idle for longer than
        a day (sessions.py), and, with a retention set (the store's or a target's), prune
        what is past it and not held. Any replica may do it; a failure only waits for the
        next hour."""
        if time.monotonic() < self._prune_at:
            return
        self._prune_at = time.monotonic() + _PRUNE_EVERY
        rules = retention.Rules(self._settings.retention_days,
                                self._settings.target_retention_days)
        idle_us = int(self._settings.session_idle_minutes * 60_000_000)
        try:
            if self._connection is None:
                self._connection = connect(self._url)
            sessions.forget(self._connection, started_us(time.time()) - max(
                idle_us, sessions.REMEMBERED_US))
            if not rules.prunes:
                return
            pruned = retention.prune(self._connection, self._signer, rules)
        except StoreError as exc:
            log.error("recording: pruning records past retention failed: %s", exc)
            return
        if pruned.deleted or pruned.recordings or pruned.kept():
            log.info("recording: pruned %d records past retention (%s) and %d terminal "
                     "recordings; kept: %s", sum(pruned.deleted.values()),
                     ", ".join(f"{w}: {n}" for w, n in sorted(pruned.deleted.items())),
                     pruned.recordings, "; ".join(pruned.kept()) or "nothing past retention")

    def _checkpoint_due(self) -> bool:
        return self._since_checkpoint > 0 and (
            self._since_checkpoint >= self._settings.checkpoint_every
            or time.monotonic() - self._checkpoint_at >= self._settings.checkpoint_seconds)

    def _write(self, batch: list[_Item], final: bool = False) -> None:
        """Build, chain and write one batch, retrying until the store takes it."""
        rows, spans = self._rows(batch)
        seq, last_hash = (rows[-1].seq, rows[-1].hash) if rows else (self._seq, self._hash)
        pending_checkpoints = self._since_checkpoint + len(rows)
        due = final or pending_checkpoints >= self._settings.checkpoint_every or (
            time.monotonic() - self._checkpoint_at >= self._settings.checkpoint_seconds)
        checkpoints = [self._signer.sign("checkpoint", self.writer, seq, last_hash,
                                         started_us(time.time()), store_id=self._store_id)
                       ] if due and seq else []
        with ledger.stage(WRITER, "store"):
            self._until_stored(lambda retry: self._store(rows, checkpoints, retry))
        self._seq, self._hash = seq, last_hash
        self._since_checkpoint = 0 if checkpoints else pending_checkpoints
        if checkpoints:
            self._checkpoint_at = time.monotonic()
        self._failing = False
        if not self._draining:  # spooled records are before "ready", in its seq
            self._acks.send(("written", seq))
        if self.spans is not None:
            with ledger.stage(WRITER, "span"):
                for span in spans:
                    self.spans.export(span)

    def _until_stored(self, attempt: Callable[[bool], _T]) -> _T:
        """`attempt(retry)` until the store takes it, each try waiting longer (doubling,
        up to _RETRY_MOST). Refusals within a blip (`_BLIP_SECONDS`: a restart, a
        connection the server closed) are retried quietly but for a warning; past it each
        is told, and new requests are refused until a write succeeds. Nothing is lost
        meanwhile: the request process keeps every record until it is written."""
        delay, retry, since = _RETRY_FIRST, False, time.monotonic()
        while True:
            try:
                return attempt(retry)
            except StoreError as exc:
                if not retry:
                    log.warning("recording: the store refused a write (%s); retrying", exc)
                if time.monotonic() - since >= _BLIP_SECONDS:
                    if self._draining:
                        raise
                    self._fail(str(exc))
                time.sleep(delay)
                delay, retry = min(delay * 2, _RETRY_MOST), True

    def _rows(self, batch: list[_Item]) -> tuple[list[store.Row], list[SpanData]]:
        """The batch's rows, and the spans its exchanges ended (exported once stored)."""
        with ledger.stage(WRITER, "decode"):
            decoded = [decode(item.data) for item in batch]
        # Sessions first: what they resolve to is in the records' hashes, so a failure
        # retries them, and the rows are built once.
        found = self._until_stored(lambda _: self._sessions([e for e, _ in decoded]))
        ready = [(e, s) for (e, error), s in zip(decoded, found, strict=True) if error is None]
        # Masked in one scan for the batch (contents_of says why).
        with ledger.stage(WRITER, "mask"):
            built = iter(contents_of([e for e, _ in ready], self._masker,
                                     [s for _, s in ready]))
        with ledger.stage(WRITER, "chain"):
            rows = self._chained(batch, decoded, found, built)
        return rows, [e.span for e, _ in decoded if e.span is not None]

    def _chained(self, batch: list[_Item], decoded: list[tuple[Evidence, Any]],
                 found: list[Session], built: Iterator[dict[str, Any] | Exception]
                 ) -> list[store.Row]:
        """The batch's rows, each content hashed onto the one before."""
        rows, seq, prev = [], self._seq, self._hash
        for item, (evidence, error), session in zip(batch, decoded, found, strict=True):
            seq += 1
            content = next(built) if error is None else TypeError(
                f"the evidence could not be sent: {error}")
            if isinstance(content, Exception):  # still recorded, as such
                log.error("recording: trace %s: the record could not be built",
                          evidence.trace_id, exc_info=content)
                content = unbuildable(evidence, content, session)
            if item.spooled is not None:
                content["spooled"] = item.spooled
            text = canonical(content)
            digest = record_hash(prev, self.writer, seq, text)
            rows.append(store.Row(
                writer=self.writer, seq=seq, id=store.record_id(self.writer, seq),
                started_us=started_us(evidence.started), content=text,
                prev_hash=prev, hash=digest, **store.projections(content)))
            prev = digest
        return rows

    def _sessions(self, evidences: list[Evidence]) -> list[Session]:
        """The evidences' sessions (sessions.py), resolved through the store."""
        if self._connection is None:
            self._connection = connect(self._url)
        idle_us = int(self._settings.session_idle_minutes * 60_000_000)
        try:
            return sessions.resolve(self._connection, evidences, idle_us)
        except StoreError:
            self._connection.close()
            self._connection = None  # reconnect on the next try
            raise

    def _store(
        self, rows: list[store.Row], checkpoints: list[Checkpoint], retry: bool,
    ) -> None:
        self._insert(rows, checkpoints, retry)
        self._anchor(checkpoints)  # again on a retry: verify reads a line twice as once

    def _insert(
        self, rows: list[store.Row], checkpoints: list[Checkpoint], retry: bool,
    ) -> None:
        if self._connection is None:
            self._connection = connect(self._url)
        try:
            if retry and rows:
                # The failed try may have committed before its answer was lost (it was
                # one transaction: all of it, or none).
                last = store.last_of(self._connection, self.writer)
                if last is not None and last[0] >= rows[-1].seq:
                    return
            store.insert(self._connection, rows, checkpoints)
        except StoreError:
            self._connection.close()
            self._connection = None  # reconnect on the next try
            raise

    def _fail(self, message: str) -> None:
        if not self._failing:
            log.error("recording: the store refused a write (%s); new requests are refused "
                      "until it accepts one again", message)
        self._failing = True
        self._acks.send(("failed", message))

    def _refuse_shared(self, path: Path, connection: Connection) -> None:
        """Raise StoreError when the anchor log holds another store's anchors: a copied
        config that kept checkpoint_file. Shared unawares, a log makes each store's
        verify reckon with the other's writers; shared knowingly, it is set so."""
        try:
            others = anchors.stores_named(path) - {self._store_id}
        except OSError as exc:
            raise StoreError(f"{path}: cannot read the anchor log "
                             f"(recording.checkpoint_file): {exc.strerror}") from None
        if others:
            raise StoreError(
                f"{path}: the anchor log (recording.checkpoint_file) holds the anchors of "
                f"another store ({', '.join(sorted(others))}), not of this one "
                f"({self._store_id or 'a store without an id'}, {connection.where}): "
                "give this store an anchor log of its own, or set "
                "recording.shared_anchor_log: true to share it (verify holds each store "
                "to its own anchors)")

    def _anchor(self, statements: list[Checkpoint]) -> None:
        """Append signed statements to the anchor log, when one is configured; raises
        StoreError when it cannot be written (what is not anchored, verify cannot vouch
        for: no exchange passes meanwhile)."""
        path = self._settings.checkpoint_file
        if path is None or not statements:
            return
        try:
            anchors.append(path, statements)
        except OSError as exc:
            raise StoreError(f"{path}: cannot append to the anchor log "
                             f"(recording.checkpoint_file): {exc.strerror}") from None


class _Unheard:
    """Where a LoneWriter's acknowledgements go: nowhere (its caller waits on each write
    itself, and is told of a failure by its exception)."""

    def send(self, _message: tuple[Any, ...]) -> bool:
        return True


class LoneWriter(ChainWriter):
    """A chain of its own in a store its caller has open, for a few records each written
    at once and then checkpointed and anchored: a look at the record from the command
    line (extproc/cli/audit_looks.py). It registers first (`start`), as every writer
    does; a write the store or the anchor log refuses raises StoreError, not retried:
    the caller refuses what cannot be recorded."""

    def __init__(self, connection: Connection, settings: RecorderSettings, signer: Signer,
                 masker: Masker) -> None:
        super().__init__(connection.url, settings, signer, masker, _Unheard())
        self._connection = self._given = connection

    def start(self) -> int:
        """Register as ChainWriter.start does, in one transaction with the anchoring: a
        start the anchor log refuses leaves no registration behind (which verify would
        name as a log cut short)."""
        with self._given.transaction():
            return super().start()

    def write(self, evidences: list[Evidence]) -> list[str]:
        """The evidences' records, written, checkpointed and anchored: their ids."""
        first = self._seq + 1
        self._write([_Item(encode(evidence), True) for evidence in evidences], final=True)
        return [store.record_id(self.writer, seq) for seq in range(first, self._seq + 1)]

    def _until_stored(self, attempt: Callable[[bool], _T]) -> _T:
        return attempt(False)
