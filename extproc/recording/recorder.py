"""The recorder as the request path sees it: places in a bounded queue, evidence sent
to the writer process, never lost silently.

The record's work (building, masking, hashing, encoding, writing) is done by a process
of its own (`writer.py`), so that it does not take the request path's GIL. What stays
here is synchronous and cheap:

- `admit` takes a place when an exchange starts (a lock and a counter); a place is
  taken before anything is allowed, so a finished exchange always has room;
- one identity takes at most its share of the queue, and records at most its byte
  budget an hour (`budget.py`): beyond either it alone is refused (`RecordingQuota`);
- when the queue is full, the store refused the last write, or the writer process is
  gone, new exchanges are refused (`RecordingUnavailable`, a 503), never let through
  unrecorded;
- `submit` encodes the evidence (`wire.py`, one pickle) for the writer's pipe, appends
  it to this process's journal (`journal.py`: on disk before the answer leaves, so a
  process tree killed at any instant loses no answered exchange's record; the next
  start spools what it holds); what the exchanges submit within 2 ms is written
  together, in one message; each is kept until the writer says its record is in the
  store;
- a `strict` target's decision record is committed before its request proceeds
  (`commit`, which waits for the writer's word);
- `close` has the writer write everything sent before it stops (shutdown drains); what
  the store has not taken within `close_seconds` is spooled to disk (`spool.py`) and
  written, chained, by the next start's writer, before anything else.

A thread here reads what the writer says (`writer.py` lists it). When the writer
process dies, new exchanges are refused at once, a new writer process is started
(with growing pauses while it cannot start), continues the same chain, and is sent
again every message whose record the store does not hold: records are neither lost
nor written twice, and the chain stays whole.

The first writer is forked from the request process itself while that process still
runs one thread (tollgate opens its recorder before its telemetry, gRPC or any pool
starts a thread): no lock can be held by a thread the child would not have, and the
child starts at once with what the request process has imported and built, shared until
written (~0.9 s of CPU and a process's worth of memory less than a fork server's). A
writer started later (a restart, or a request process that already runs threads: the
tests' own) is forked by multiprocessing's fork server instead (started on first need,
with the recording modules loaded): never a fork of a process that runs gRPC.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import logging
import multiprocessing
import multiprocessing.util
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from typing import Any

from extproc import ledger
from extproc.masking import Masker
from extproc.masking.log_lines import LogMasking
from extproc.recording import journal, spool, wire
from extproc.recording.budget import ByteBudget, recorded_bytes
from extproc.recording.chain import Signer
from extproc.recording.record import Evidence
from extproc.recording.writer import (
    EVIDENCE,
    STOP,
    STRICT,
    RecorderSettings,
    batched,
    serve,
)
from extproc.store import StoreError

log = logging.getLogger("tollgate.recording")

# How long the writer process may take to start (open the store, register).
_START_SECONDS = 60.0
# A writer process that could not be restarted is tried again after these many seconds,
# then doubling.
_RESTART_FIRST, _RESTART_MOST = 0.1, 5.0
# How long a writer process that said bye (or failed) may take to exit.
_END_SECONDS = 5.0
# How often identities whose byte budget is whole again are forgotten (memory, not rules).
_FORGET_EVERY = 600.0
# The pipe's buffer: bursts are sent without waiting for the writer's receiving thread.
_PIPE_BYTES = 1 << 20
# How long submitted evidence may wait to be sent with what follows it: one pipe write
# (a system call on each side, the writer's wake-up) for every exchange ending meanwhile.
# The writer gathers 50 ms of records per transaction anyway (flush_seconds).
_SEND_EVERY = 0.002


class RecordingUnavailable(Exception):
    """Nothing more can be recorded now: the message says why (queue full, store down)."""


class RecordingQuota(RecordingUnavailable):
    """One identity holds its whole share of the queue, or has used its byte budget: it
    is refused, others pass."""


@dataclass(slots=True)
class _Sent:
    """A message sent to the writer whose record is not known to be in the store."""

    seq: int  # the number its record has in the chain
    data: bytes  # the message, as sent (sent again to a restarted writer)
    who: str | None  # whose share of the queue its place counts in
    done: concurrent.futures.Future[None] | None  # set for a strict commit
    at: float  # time.monotonic() when it was sent (the write latency metric)


@dataclass
class _Writer:
    """A running writer process and its two pipes."""

    process: BaseProcess
    evidence: Pipe
    acks: Pipe


class Recorder:
    def __init__(self, url: str, settings: RecorderSettings, signer: Signer,
                 masker: Masker) -> None:
        self.writer = settings.writer_id
        self._url, self._settings, self._signer, self._masker = url, settings, signer, masker
        self._lock = threading.Lock()  # the places, the failure and the budget
        self._pending = 0  # admitted and not yet written
        self._pending_of: dict[str, int] = {}  # the same, by identity (those counted)
        self._share = max(1, int(settings.queue_size * settings.identity_share))
        per_hour = settings.identity_bytes_per_hour
        self._budget = ByteBudget(per_hour) if per_hour is not None else None
        self._forget_at = 0.0  # when the budget's drained buckets are next dropped
        self._failure: str | None = None  # why the store refused the last write
        self._gone: str | None = None  # why there is no writer process (being restarted)
        self._sending = threading.Lock()  # the pipe, the sequence and what is unwritten
        self._next_seq = 1
        self._unwritten: collections.deque[_Sent] = collections.deque()
        # Submitted on the event loop that started the recorder, sent together (`_flush`).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._outbox: list[bytes] = []
        self._flushing = False  # a flush is scheduled
        self._running: _Writer | None = None
        self._listener: threading.Thread | None = None
        self._journal: journal.Journal | None = None  # (durability "off": none)
        self._journal_failure: str | None = None  # why the last append failed
        # Exchanges in flight with a provisional record journaled: span id -> handle.
        self._provisional: dict[str, int] = {}
        self._stopping = False  # closing: the writer is told to stop
        self._abandoned = False  # closing took too long: the writer is not waited for
        self.written = 0
        self.refused = 0
        # Told of every act handed over (activity counts, metrics), after it is queued:
        # off the request path, each a few µs, and none may fail the act.
        self.observers: list[Callable[[Evidence], None]] = []
        # The queue's metrics (extproc/metrics.py), imported here, in request processes:
        # the writer's fork server loads this module too, and must open no metric files.
        from extproc import metrics
        self._queued, self._write_seconds = metrics.RECORD_QUEUE, metrics.RECORD_WRITE_SECONDS
        metrics.RECORD_QUEUE_SIZE.set(settings.queue_size)

    # -- the request path ---------------------------------------------------------------

    def admit(self, who: str | None = None) -> None:
        """Take a place for one exchange's record, or refuse it (RecordingUnavailable);
        `who` (an identity's subject) takes at most its share of the queue and records at
        most its byte budget, so one agent flooding the record, outrunning a slow store or
        filling its disk is refused alone (RecordingQuota). Pass the same `who` to submit."""
        with self._lock:
            failure = self.failure
            if failure is not None:
                self.refused += 1
                raise RecordingUnavailable(f"the audit record cannot be written: {failure}")
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
        front = ledger.front_of(evidence.target)
        with ledger.stage(front, "record"):
            self._charge(evidence, who)
            data = EVIDENCE + wire.encode(evidence)
        with ledger.stage(front, "journal"):
            self._send(data, who, None, defer=True, settles=evidence.span_id)
        with ledger.stage(front, "observe"):
            for observe in self.observers:
                try:
                    observe(evidence)
                except Exception:
                    log.exception("an observer of the record failed on trace %s",
                                  evidence.trace_id)

    def provisional(self, evidence: Evidence) -> None:
        """Journal an exchange's decision record as its request goes upstream before
        the exchange ends (journal.py): what a kill before its end leaves. Never sent
        to the writer; the exchange's own record (`submit`) settles it."""
        journal_ = self._journal
        if journal_ is None:
            return
        front = ledger.front_of(evidence.target)
        with ledger.stage(front, "journal"):
            data = EVIDENCE + wire.encode(evidence)
            with self._sending:
                try:
                    self._provisional[evidence.span_id] = journal_.provisional(data)
                except OSError as exc:
                    self._journal_failed(exc)

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
        self._send(STRICT + wire.encode(evidence), who, done)
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)),
                                   self._settings.commit_seconds)
        except TimeoutError:
            raise RecordingUnavailable(
                f"the decision record was not committed within "
                f"{self._settings.commit_seconds:g}s ({self.failure or 'store slow'})"
            ) from None

    def _send(self, data: bytes, who: str | None,
              done: concurrent.futures.Future[None] | None, defer: bool = False,
              settles: str | None = None) -> None:
        """Number the message as the record it becomes, journal it and send it; kept
        until written. `defer`: on the recorder's event loop, with what else it submits
        within _SEND_EVERY (`_flush`). A writer gone meanwhile is restarted and sent it
        again (`_restart`). `settles`: the span whose provisional record it ends."""
        with self._sending:
            seq = self._next_seq
            if self._journal is not None:
                try:
                    self._journal.append(seq, data)
                except OSError as exc:
                    self._journal_failed(exc)
                if settles is not None and (
                        handle := self._provisional.pop(settles, None)) is not None:
                    self._journal.settle(handle)
            self._unwritten.append(_Sent(seq, data, who, done, time.monotonic()))
            self._next_seq += 1
            loop = self._loop
            if defer and loop is not None and threading.get_ident() == self._loop_thread:
                self._outbox.append(data)
                if not self._flushing:
                    self._flushing = True
                    loop.call_later(_SEND_EVERY, self._flush)
                return
            self._write([*self._outbox, data])

    def _flush(self) -> None:
        """Send what was submitted since the last write."""
        with self._sending:
            self._flushing = False
            if self._outbox:
                self._write(self._outbox)

    def _write(self, messages: list[bytes]) -> None:
        """Send `messages` as one, under `_sending`; they include the outbox, which is
        emptied. Lost when the writer is gone: `_restart` sends everything unwritten
        again."""
        self._outbox = []
        self._queued.set(self._pending)
        running = self._running
        if running is not None:
            with contextlib.suppress(OSError):
                running.evidence.send_bytes(batched(messages))

    def _journal_failed(self, exc: OSError) -> None:
        """The journal refused an append (its disk is full): this message is still sent
        and kept, but a kill now would lose it, so new exchanges are refused until the
        store holds everything and the journal is cut back (`_written`)."""
        if self._journal_failure is None:
            log.error("recording: the journal cannot be written (%s); new requests are "
                      "refused until the store holds every record", exc.strerror or exc)
        self._journal_failure = f"the journal cannot be written: {exc.strerror or exc}"

    @property
    def failure(self) -> str | None:
        """Why new exchanges are refused (None: they are not, but for a full queue)."""
        return self._gone or self._failure or self._journal_failure

    @property
    def signer(self) -> Signer:
        """The audit key the chain is signed with (what else tollgate signs, a report,
        is signed with it too)."""
        return self._signer

    @property
    def writer_process(self) -> int | None:
        """The writer process's id (None before it started)."""
        running = self._running
        return None if running is None else running.process.pid

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer process: it opens the store, continues this writer's chain
        (or begins it), registers it and writes what the spool holds; raises StoreError
        when the store or the anchor log cannot be written: tollgate does not serve
        unrecorded, nor unanchored."""
        self._open_journal()
        try:
            running, last = self._spawn(drain=True)
        except StoreError:
            self._close_journal(keep=False)
            raise
        self._running, self._next_seq = running, last + 1
        with contextlib.suppress(RuntimeError):  # started outside an event loop: no deferring
            self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self._listener = threading.Thread(target=self._listen, name="tollgate-recorder",
                                          daemon=True)
        self._listener.start()

    def _open_journal(self) -> None:
        """Begin this process's journal (before the first writer is forked: it inherits
        the journal's hold, and does not take it for an orphan); raises StoreError when
        it cannot be made."""
        settings = self._settings
        if settings.durability == "off" or settings.spool_dir is None:
            return
        self._journal = journal.Journal(settings.spool_dir / journal.FOLDER, self.writer,
                                        self._signer.derive(spool.KEY_PURPOSE),
                                        sync=settings.durability == "node")
        try:
            self._journal.open()
        except OSError as exc:
            self._journal = None
            raise StoreError(f"the journal cannot be made in {settings.spool_dir} "
                             f"(recording.spool_dir; recording.durability "
                             f"{settings.durability!r}): {exc.strerror or exc}") from None
        self._settings = dataclasses.replace(settings,
                                             journal_lock=self._journal.lock_path)

    def _close_journal(self, keep: bool) -> None:
        if self._journal is not None:
            self._journal.close(keep)
            self._journal = None

    async def close(self) -> None:
        """Have the writer write what was sent, sign a last checkpoint and stop. Records
        still unwritten after `close_seconds` (the store is down, or full) are spooled,
        for the next start to write; those that cannot be are counted in the log: nothing
        vanishes without a trace."""
        listener = self._listener
        if listener is None:
            return
        with self._sending:
            self._stopping = True
            self._write([*self._outbox, STOP])
        await asyncio.to_thread(listener.join, self._settings.close_seconds)
        if listener.is_alive():
            self._abandoned = True
            running = self._running
            if running is not None:
                running.process.kill()
            await asyncio.to_thread(listener.join)  # every word the writer said, heard
            spooled = await asyncio.to_thread(self._spool)
        else:
            spooled = True  # it said bye: everything is written
        with self._sending:
            self._close_journal(keep=not spooled)
        self._listener = None

    def _spool(self) -> bool:
        """What the writer did not say is written, spooled (spool.py) with why; a record
        it wrote without saying so is told apart when the spool is written. False when
        it could not be spooled (the journal, kept, still holds it)."""
        unwritten = [spool.Spooled(self.writer, sent.seq, sent.data[1:])
                     for sent in self._unwritten]
        if not unwritten:
            return True
        failure = self.failure or "the store was slow"
        reason = LogMasking(self._masker).mask(
            f"not written within {self._settings.close_seconds:g}s of stopping: {failure}")
        folder = self._settings.spool_dir
        if folder is None:
            log.error("recording: %d records could not be written before shutdown (%s), "
                      "and no spool folder is set (recording.spool_dir): they are lost",
                      len(unwritten), reason)
            return True
        started = time.monotonic()
        try:
            path = spool.write(folder, unwritten, reason,
                               self._signer.derive(spool.KEY_PURPOSE))
        except OSError as exc:
            log.error("recording: %d records could not be written before shutdown (%s), "
                      "nor spooled to %s (recording.spool_dir): %s; the journal keeps "
                      "them for the next start", len(unwritten), reason, folder,
                      exc.strerror or exc)
            return False
        log.warning("recording: %d records could not be written before shutdown (%s): "
                    "spooled to %s in %.1f ms; the next start writes them into the chain",
                    len(unwritten), reason, path, (time.monotonic() - started) * 1000)
        return True

    # -- the writer process -------------------------------------------------------------

    def _spawn(self, drain: bool = False) -> tuple[_Writer, int]:
        """A new writer process, started (`drain`: the spool written first, at the first
        start only: a restarted one continues what this process numbered): it and the
        chain's last record. Raises StoreError when it cannot start."""
        method = _start_method()
        context: Any = multiprocessing.get_context(method)  # the stubs' BaseContext has no Process
        if method == "forkserver":
            context.set_forkserver_preload(["extproc.recording.writer"])
        evidence_in, evidence_out = context.Pipe(duplex=False)
        acks_in, acks_out = context.Pipe(duplex=False)
        with contextlib.suppress(OSError):  # Linux: room for bursts
            fcntl.fcntl(evidence_out.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        args: tuple[Any, ...] = (
            evidence_in, acks_out, self._url, self._settings, self._signer, self._masker,
            logging.getLogger("tollgate").getEffectiveLevel(), drain)
        # A forked child holds copies of this side's ends too: it closes them, or the
        # pipes would never end for it (a fork server's child gets only its own).
        target, args = (serve, args) if method == "forkserver" else (
            _forked, ((evidence_out, acks_in), *args))
        process = context.Process(target=target, name=f"tollgate-recorder-{self.writer}",
                                  daemon=True, args=args)
        process.start()
        evidence_in.close()
        acks_out.close()
        running = _Writer(process, evidence_out, acks_in)
        # A request process leaving without closing (an error) closes the pipe before
        # multiprocessing waits for its children at exit: the writer writes what it was
        # sent, and ends.
        multiprocessing.util.Finalize(running, evidence_out.close, exitpriority=10)
        deadline = time.monotonic() + _START_SECONDS
        while True:
            try:
                if not acks_in.poll(max(0.0, deadline - time.monotonic())):
                    raise StoreError(f"the recording writer process did not start within "
                                     f"{_START_SECONDS:.0f}s")
                message = acks_in.recv()
            except (EOFError, OSError):
                message = ("error", "the recording writer process exited as it started")
            except StoreError as exc:
                message = ("error", str(exc))
            if message[0] == "log":
                self._logged(*message[1:])
            elif message[0] == "ready":
                log.info("recording: writer process %s started", process.pid)
                return running, message[1]
            else:
                self._end(running)
                raise StoreError(message[1])

    @staticmethod
    def _end(running: _Writer) -> None:
        """A writer process that stopped, failed or is gone: ended, its pipes closed."""
        running.process.join(_END_SECONDS)
        if running.process.is_alive():
            running.process.kill()
            running.process.join()
        running.evidence.close()
        running.acks.close()

    def _listen(self) -> None:
        """Follow what the writer says until it has stopped when told; restart it when
        it dies (or has not come back in time)."""
        while True:
            running = self._running
            assert running is not None
            if self._follow(running.acks) or self._abandoned:
                break
            self._end(running)
            if not self._restart(running.process.exitcode):
                return
        self._end(running)

    def _follow(self, acks: Pipe) -> bool:
        """Handle the writer's messages until its pipe ends: True when it said bye."""
        while True:
            try:
                message = acks.recv()
            except (EOFError, OSError):
                return False
            kind = message[0]
            if kind == "written":
                self._written(message[1])
            elif kind == "failed":
                with self._lock:
                    self._failure = message[1]
            elif kind == "log":
                self._logged(*message[1:])
            elif kind == "bye":
                return True

    def _written(self, seq: int) -> None:
        """Records up to `seq` are in the store: their places are free, their waiters
        told."""
        done: list[_Sent] = []
        with self._sending:
            while self._unwritten and self._unwritten[0].seq <= seq:
                done.append(self._unwritten.popleft())
            if self._journal is not None:
                try:
                    if self._journal.written(seq, bool(self._unwritten)):
                        self._journal_failure = None
                except OSError as exc:
                    log.error("recording: the journal cannot be cut back: %s",
                              exc.strerror or exc)
        with self._lock:
            self._pending -= len(done)
            for sent in done:
                if sent.who is not None:
                    left = self._pending_of.pop(sent.who) - 1
                    if left:
                        self._pending_of[sent.who] = left
            self._failure = None
            now = time.monotonic()
            if self._budget is not None and now >= self._forget_at:
                self._forget_at = now + _FORGET_EVERY
                self._budget.forget_drained(now)
        self.written += len(done)
        self._queued.set(self._pending)
        for sent in done:
            self._write_seconds.observe(now - sent.at)
            if sent.done is not None:
                sent.done.set_result(None)

    def _restart(self, exitcode: int | None) -> bool:
        """A writer process died: refuse new exchanges, start another until one starts,
        then send it every message whose record is not in the store, in order. False
        when closing gave up on it meanwhile."""
        with self._lock:
            self._gone = (f"the recording writer process exited (exit code {exitcode}); "
                          "restarting it")
        log.error("recording: the writer process exited unexpectedly (exit code %s) with "
                  "%d records unwritten; new requests are refused until a new one has "
                  "started", exitcode, len(self._unwritten))
        delay = _RESTART_FIRST
        while True:
            if self._abandoned:
                return False
            try:
                running, last = self._spawn()
                break
            except StoreError as exc:
                log.error("recording: the writer process cannot start again: %s", exc)
                time.sleep(delay)
                delay = min(delay * 2, _RESTART_MOST)
        self._written(last)  # what the store took before the writer died
        with self._sending, contextlib.suppress(OSError):  # (dead already: restarted again)
            self._running = running
            self._outbox = []  # unwritten: sent below
            for sent in self._unwritten:
                running.evidence.send_bytes(sent.data)
            if self._stopping:
                running.evidence.send_bytes(STOP)
        with self._lock:
            self._gone = self._failure = None
        log.info("recording: a new writer process continues the chain after record %d "
                 "and was sent %d records again", last, len(self._unwritten))
        return True

    @staticmethod
    def _logged(level: int, name: str, text: str) -> None:
        logging.getLogger(name).log(level, "%s", text)


def _start_method() -> str:
    """`fork` while this process runs one thread, `forkserver` once it runs more (the
    module's docstring says why): counted by the kernel, native threads included."""
    try:
        alone = len(os.listdir("/proc/self/task")) == 1
    except OSError:  # no /proc: never sure
        alone = False
    return "fork" if alone else "forkserver"


def _forked(theirs: tuple[Pipe, ...], *args: Any) -> None:
    """The writer's life in a child forked from the request process: without the request
    process's ends of the pipes, whose copies would keep them open."""
    for end in theirs:
        end.close()
    serve(*args)
