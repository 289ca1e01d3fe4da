"""The recording writer: exchanges recorded off the request path, and never lost silently.

The request path only takes a place in a bounded queue when an exchange starts
(`admit`, a lock and a counter) and hands its evidence over when it ends (`submit`, a
queue put). One thread does the rest, in batches: builds each record (masking its
bodies), chains it, writes the batch in one transaction, and every so often signs a
checkpoint. So:

- a place is taken before anything is allowed, so a finished exchange always has room;
- one identity takes at most its share of the queue, and records at most its byte
  budget an hour (`budget.py`): beyond either it alone is refused (`RecordingQuota`);
- when the queue is full, or the store refused the last write, new exchanges are
  refused (`RecordingUnavailable`, a 503), never let through unrecorded; a batch the
  store refused is retried, unchanged, until it is written;
- a `strict` target's decision record is committed before its request proceeds
  (`commit`, which waits for the write);
- `close` writes everything queued before it returns (shutdown drains);
- the writer registers when it starts, in the store and in the anchor log outside it,
  and appends every checkpoint to that log once the store has it (`anchors.py`); a log
  that cannot be written refuses new exchanges as a store that cannot does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from extproc.masking import Masker
from extproc.recording import anchors, store
from extproc.recording.budget import ByteBudget, recorded_bytes
from extproc.recording.chain import GENESIS, Checkpoint, Signer, canonical, record_hash
from extproc.recording.record import Evidence, content_of, started_us, unbuildable
from extproc.store import Connection, StoreError, connect

log = logging.getLogger("tollgate.recording")

# A batch the store refused is tried again after these many seconds, then doubling.
_RETRY_FIRST, _RETRY_MOST = 0.1, 5.0
# How often, at most, the writer wakes with nothing to write (checkpoints, pruning).
_IDLE_WAKE = 1.0
# How often records past `store.retention_days` are pruned.
_PRUNE_EVERY = 3600.0
# How often identities whose byte budget is whole again are forgotten (memory, not rules).
_FORGET_EVERY = 600.0
# How long closing waits for the queue to be written.
_CLOSE_SECONDS = 30.0


class RecordingUnavailable(Exception):
    """Nothing more can be recorded now: the message says why (queue full, store down)."""


class RecordingQuota(RecordingUnavailable):
    """One identity holds its whole share of the queue, or has used its byte budget: it
    is refused, others pass."""


@dataclass(slots=True)
class _Item:
    evidence: Evidence
    done: concurrent.futures.Future[None] | None = None  # set for a strict commit
    who: str | None = None  # whose share of the queue its place counts in


@dataclass
class RecorderSettings:
    queue_size: int
    batch_size: int
    checkpoint_every: int
    checkpoint_seconds: float
    checkpoint_file: Path | None = None
    retention_days: float = 0
    commit_seconds: float = 1.0
    flush_seconds: float = 0.05
    writer_id: str = field(default_factory=lambda: default_writer_id())
    # The share of queue_size one identity's records may take (at least one place).
    identity_share: float = 1.0
    # The bytes of bodies one identity's records may hold an hour; None: no budget.
    identity_bytes_per_hour: int | None = None


def default_writer_id() -> str:
    """Host, process and a random tag: a restarted process begins a chain of its own."""
    host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())
    return f"{host[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


class Recorder:
    def __init__(
        self, url: str, settings: RecorderSettings, signer: Signer, masker: Masker,
        connect_store: Callable[[str], Connection] = connect,
    ) -> None:
        self.writer = settings.writer_id
        self._url, self._settings, self._signer, self._masker = url, settings, signer, masker
        self._connect = connect_store
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0  # admitted and not yet written
        self._pending_of: dict[str, int] = {}  # the same, by identity (those counted)
        self._share = max(1, int(settings.queue_size * settings.identity_share))
        per_hour = settings.identity_bytes_per_hour
        self._budget = ByteBudget(per_hour) if per_hour is not None else None
        self._forget_at = 0.0  # when the budget's drained buckets are next dropped
        self._failure: str | None = None  # why the last write failed; None when it did not
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        self._seq, self._hash = 0, GENESIS
        self._since_checkpoint, self._checkpoint_at = 0, time.monotonic()
        self._prune_at = 0.0
        self.written = 0
        self.refused = 0

    # -- the request path ---------------------------------------------------------------

    def admit(self, who: str | None = None) -> None:
        """Take a place for one exchange's record, or refuse it (RecordingUnavailable);
        `who` (an identity's subject) takes at most its share of the queue and records at
        most its byte budget, so one agent flooding the record, outrunning a slow store or
        filling its disk is refused alone (RecordingQuota). Pass the same `who` to submit."""
        with self._lock:
            if self._failure is not None:
                self.refused += 1
                raise RecordingUnavailable(
                    f"the audit record cannot be written: {self._failure}")
            if self._pending >= self._settings.queue_size:
                self.refused += 1
                raise RecordingUnavailable(
                    f"the audit record's queue is full ({self._settings.queue_size} "
                    "records waiting to be written)")
            if who is not None:
                held = self._pending_of.get(who, 0)
                if held >= self._share:
                    self.refused += 1
                    raise RecordingQuota(
                        f"{who} has {held} records waiting to be written, its share of the "
                        f"audit record's queue ({self._share} of {self._settings.queue_size})")
                if self._budget is not None and (
                        wait := self._budget.wait(who, time.monotonic())):
                    self.refused += 1
                    raise RecordingQuota(self._budget.refusal(who, wait))
                self._pending_of[who] = held + 1
            self._pending += 1

    def submit(self, evidence: Evidence, who: str | None = None) -> None:
        """Hand over an admitted exchange's evidence; its record is written soon."""
        self._charge(evidence, who)
        self._queue.put(_Item(evidence, None, who))

    def _charge(self, evidence: Evidence, who: str | None) -> None:
        """`who`'s byte budget pays for the bodies this record holds."""
        if who is not None and self._budget is not None:
            size = recorded_bytes(evidence)
            with self._lock:
                self._budget.charge(who, size, time.monotonic())

    async def commit(self, evidence: Evidence, who: str | None = None) -> None:
        """Record now and wait until it is committed (a strict target's decision record).

        Takes its own place in the queue; raises RecordingUnavailable when it cannot be
        written within `commit_seconds` (the request must then not proceed; the record
        is still written once the store takes it, and the exchange's own record says
        the request was refused).
        """
        self.admit(who)
        self._charge(evidence, who)
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put(_Item(evidence, done, who))
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)),
                                   self._settings.commit_seconds)
        except TimeoutError:
            raise RecordingUnavailable(
                f"the decision record was not committed within "
                f"{self._settings.commit_seconds:g}s ({self._failure or 'store slow'})"
            ) from None

    @property
    def failure(self) -> str | None:
        return self._failure

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Open the store, continue this writer's chain (or begin it) and register it;
        raises StoreError when the store or the anchor log cannot be written: tollgate
        does not serve unrecorded, nor unanchored."""
        self._connection = self._connect(self._url)
        last = store.last_of(self._connection, self.writer)
        if last is not None:  # a configured writer_id continues its own chain
            self._seq, self._hash = last
        path = self._settings.checkpoint_file
        start = self._signer.sign("start", self.writer, self._seq, self._hash,
                                  started_us(time.time()))
        store.register(self._connection, store.Registration(
            self.writer, start.signed_us, start.seq,
            anchors.identity(path) if path else None))
        self._anchor([start])
        self._thread = threading.Thread(target=self._run, name="tollgate-recorder",
                                        daemon=True)
        self._thread.start()
        log.info("recording to %s as writer %s", self._connection.where, self.writer)

    async def close(self) -> None:
        """Write what is queued, sign a last checkpoint, stop. Records still unwritten
        after _CLOSE_SECONDS (the store is down) are counted in the log: nothing vanishes
        without a trace."""
        if self._thread is None:
            return
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join, _CLOSE_SECONDS)
        if self._thread.is_alive():
            log.error("recording: %d records could not be written before shutdown (%s)",
                      self._pending, self._failure)
        self._thread = None

    # -- the writer's thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug here must not leave exchanges passing unrecorded
            log.exception("recording: the writer stopped")
            self._fail(f"the recording writer stopped: {type(exc).__name__}: {exc}")
            raise

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
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

    def _next_batch(self) -> tuple[list[_Item], bool]:
        """The next batch: what arrives within `flush_seconds` of its first record, up to
        `batch_size` — one transaction (one fsync) for many records, where a transaction
        per record costs several times the CPU. A strict commit is written at once."""
        try:
            first = self._queue.get(timeout=_IDLE_WAKE)
        except queue.Empty:
            return [], False
        if first is None:
            return self._gather([], 0.0), True
        deadline = 0.0 if first.done else time.monotonic() + self._settings.flush_seconds
        return self._gather([first], deadline), False

    def _gather(self, batch: list[_Item], deadline: float) -> list[_Item]:
        """Records arriving until `deadline`, up to a batch; a stop request ends the wait
        (and is put back)."""
        while len(batch) < self._settings.batch_size:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic())) \
                    if deadline > time.monotonic() else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
            if item.done is not None:
                deadline = 0.0  # someone waits for this one: no more gathering
        return batch

    def _prune_when_due(self) -> None:
        """Every hour (and at the first idle moment), with `retention_days` set, prune what
        is older. Any replica may do it; a failure only waits for the next hour."""
        days = self._settings.retention_days
        if not days or time.monotonic() < self._prune_at:
            return
        self._prune_at = time.monotonic() + _PRUNE_EVERY
        cutoff = started_us(time.time() - days * 86400)
        try:
            if self._connection is None:
                self._connection = self._connect(self._url)
            deleted = store.prune(self._connection, self._signer, cutoff)
        except StoreError as exc:
            log.error("recording: pruning records older than %g days failed: %s", days, exc)
            return
        if deleted:
            log.info("recording: pruned %d records older than %g days (%s)",
                     sum(deleted.values()), days,
                     ", ".join(f"{w}: {n}" for w, n in sorted(deleted.items())))

    def _checkpoint_due(self) -> bool:
        return self._since_checkpoint > 0 and (
            self._since_checkpoint >= self._settings.checkpoint_every
            or time.monotonic() - self._checkpoint_at >= self._settings.checkpoint_seconds)

    def _write(self, batch: list[_Item], final: bool = False) -> None:
        """Build, chain and write one batch, retrying until the store takes it."""
        rows = self._rows(batch)
        seq, last_hash = (rows[-1].seq, rows[-1].hash) if rows else (self._seq, self._hash)
        pending_checkpoints = self._since_checkpoint + len(rows)
        due = final or pending_checkpoints >= self._settings.checkpoint_every or (
            time.monotonic() - self._checkpoint_at >= self._settings.checkpoint_seconds)
        checkpoints = [self._signer.sign("checkpoint", self.writer, seq, last_hash,
                                         started_us(time.time()))] if due and seq else []
        delay, retry = _RETRY_FIRST, False
        while True:
            try:
                self._insert(rows, checkpoints, retry)
                self._anchor(checkpoints)  # again on a retry: verify reads a line twice as once
                break
            except StoreError as exc:
                self._fail(str(exc))
                time.sleep(delay)
                delay, retry = min(delay * 2, _RETRY_MOST), True
        self._seq, self._hash = seq, last_hash
        self._since_checkpoint = 0 if checkpoints else pending_checkpoints
        if checkpoints:
            self._checkpoint_at = time.monotonic()
        with self._lock:
            self._pending -= len(batch)
            for item in batch:
                if item.who is not None:
                    left = self._pending_of.pop(item.who) - 1
                    if left:
                        self._pending_of[item.who] = left
            self._failure = None
            now = time.monotonic()
            if self._budget is not None and now >= self._forget_at:
                self._forget_at = now + _FORGET_EVERY
                self._budget.forget_drained(now)
        self.written += len(rows)
        for item in batch:
            if item.done is not None:
                item.done.set_result(None)

    def _rows(self, batch: list[_Item]) -> list[store.Row]:
        rows, seq, prev = [], self._seq, self._hash
        for item in batch:
            seq += 1
            try:
                content = content_of(item.evidence, self._masker)
            except Exception as exc:  # what could not be built is still recorded, as such
                log.exception("recording: trace %s: the record could not be built",
                              item.evidence.trace_id)
                content = unbuildable(item.evidence, exc)
            text = canonical(content)
            digest = record_hash(prev, self.writer, seq, text)
            rows.append(store.Row(
                writer=self.writer, seq=seq, id=store.record_id(self.writer, seq),
                started_us=started_us(item.evidence.started), content=text,
                prev_hash=prev, hash=digest, **store.projections(content)))
            prev = digest
        return rows

    def _insert(
        self, rows: list[store.Row], checkpoints: list[Checkpoint], retry: bool,
    ) -> None:
        if self._connection is None:
            self._connection = self._connect(self._url)
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
        with self._lock:
            first = self._failure is None
            self._failure = message
        if first:
            log.error("recording: the store refused a write (%s); new requests are refused "
                      "until it accepts one again", message)

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
