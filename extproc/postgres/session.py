"""One PostgreSQL session, once logged in: every statement decided, every result masked.

Two loops relay the session. The client's loop reads the agent's messages in order and
decides each statement where its text enters the database — a simple Query, or a Parse
(a prepared statement's text; its executions then run as decided, so a statement held
or refused at Parse can run neither through Execute nor through SQL's EXECUTE) — holding
the rest of the stream while a human approves. The database's loop reads the answers,
masks the rows, and ends each exchange when its last answer has gone by.

A refusal must reach the client in order, after the answers to what it sent before, and
leave both ends agreeing on the protocol's state (the extended protocol's skip to Sync,
a transaction's failed state). So a refused message is not answered by tollgate: it
goes upstream *substituted*, as a message the database cannot run (a Query or Parse of
text that does not parse, an Execute of a portal that does not exist); the database
answers it with an error in its place and does the protocol's bookkeeping, and that
error is replaced by tollgate's refusal (SQLSTATE 42501, the reasons, the trace id) on
its way to the client. The client sees what a permission error would have shown.

The front owns the names of prepared statements and portals. A client's statement names
never go upstream: each named Parse gets a name of the gateway's own (`tollgate_s<N>`;
the unnamed statement stays unnamed, which SQL cannot name). Portals keep the client's
names, for SQL shares them with the protocol (a driver moves its protocol cursor with
MOVE, fetches a DECLARE'd one with Describe and Execute), and the front keeps the map of
every portal: one a Bind made runs its statement's decision, a cursor SQL declared runs
its DECLARE's. A Bind, Describe or Execute of a name the map lacks, and SQL's FETCH or
MOVE of one, are refused (recorded, SQLSTATE 26000 or 34000) rather than passed, so
nothing runs upstream under a name the gateway did not decide: not a statement SQL's
PREPARE made, not a cursor a function opened. A cursor's rows are masked as its DECLARE
or statement asked, besides what the FETCH's own decision asks. SQL that names one of
the gateway's own names is refused (namespace.py reads them); DEALLOCATE ALL, CLOSE ALL
and DISCARD ALL drop the maps; portals end with their transaction (a cursor WITH HOLD
with its CLOSE), a failed Parse, Bind or DECLARE leaves no name behind; a refused Parse
under a name in use drops the old statement on both sides.

Each exchange waits in `_pending`, in the order its messages went upstream, for the
answers that end it: ParseComplete, CommandComplete, ReadyForQuery ... An error in the
extended protocol makes the database skip to the next Sync; the exchanges it skipped end
at that Sync's ReadyForQuery, as not run.

Before a write is decided, the planner is asked what it touches (estimate.py), in this
session's own upstream connection once it is at rest: the front's questions wait in
`_pending` as a `Probe`, whose answers never reach the client. A limited write's effect
is measured as it runs (effect.py): a Query's in a savepoint or a transaction of the
front's, an Execute's inside the client's batch, by extended-protocol messages of the
front's own between it and the readings.

When the database ends the session (pg_terminate_backend, a shutdown), the FATAL error
it says why in is the client's last answer, as it would be directly: a driver names the
error it raises by it. tollgate's own goes only where the database closed without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from extproc import ledger
from extproc.codecs.refusal import Refusal, Refused
from extproc.exchange.act import Act, Opener
from extproc.exchange.cancels import CancelGate
from extproc.exchange.database_roles import refuse_owned_change
from extproc.exchange.effect import (
    Effect,
    Measured,
    Remembered,
    judged,
    to_come,
    unmeasured,
)
from extproc.exchange.lock_waits import Holding
from extproc.exchange.state import Answer, Exchange, held_because, refusal_reasons
from extproc.masking.policy_mask import spec_of
from extproc.masking.record_mask import RECORD_MASK
from extproc.postgres import drivers, effect, encodings, estimate, locks, namespace, reach
from extproc.postgres import messages as pg
from extproc.postgres.copy_rows import CopyRows, rows_of
from extproc.postgres.results import ResultMasker, ResultRefused, error_fields, record_sample
from extproc.postgres.upstream import Upstream

if TYPE_CHECKING:
    from extproc.exchange.live import LiveSession
    from extproc.policy import Decision

log = logging.getLogger("tollgate.postgres")

_READ_SIZE = 256 * 1024
# The ReadyForQuery status byte, as input.postgres.transaction_status names it.
_TRANSACTION = {b"I": "idle", b"T": "in_transaction", b"E": "failed"}
# Messages whose answers end at a ReadyForQuery (a simple Query, a FunctionCall) and
# the extended protocol's Sync: what an error's skip ends at.
_CYCLE_ENDS = frozenset({b"Q", b"F", b"S"})
# A refused statement's stand-in: text no PostgreSQL parses, naming the trace.
_REFUSED = "tollgate refused this statement (trace {trace})"
# The client's messages that carry strings, by the method their exchanges record.
_METHODS = {b"Q": "QUERY", b"P": "PARSE", b"B": "BIND", b"E": "EXECUTE", b"D": "DESCRIBE",
            b"C": "CLOSE"}
# A name the gateway never gives (its names are the prefix and a serial): a Close of a
# name the client never had closes nothing, as PostgreSQL's own does.
_NOBODY = namespace.PREFIX
# How long a write's estimate may wait for the session to come to rest (the answers to
# what the client sent before), and for the planner's answers.
_REST_SECONDS = 30.0
_ESTIMATE_SECONDS = 10.0
# The extended protocol's messages that leave a batch open until the client's Sync; and
# those after which the planner may still be asked, their answers in (a driver prepares
# with Parse, Describe and Flush, then binds and executes with a Sync: asyncpg): they
# create nothing a transaction holds, so the front's questions, which end theirs, lose
# nothing of the client's (a Bind's portal would go with it).
_BATCHED = frozenset({b"P", b"B", b"E", b"D", b"C"})
_PREPARING = frozenset({b"P", b"D", b"C"})
_SYNC = pg.encode(b"S", b"")
# The front's own statement and portal inside a client's batch (a measured Execute's
# probes): named, for the client's unnamed ones must survive them.
_OWN = f"{namespace.PREFIX}effect"
# The answer that completes each of the front's own extended-protocol messages: Parse,
# Bind, Close, and an Execute run to its end.
_COMPLETIONS = frozenset({b"1", b"2", b"3", b"C"})


def sqlstate_of(status: int) -> str:
    """The SQLSTATE that tells a PostgreSQL client what an HTTP-shaped refusal means."""
    if status in (401, 407):
        return "28000"  # invalid_authorization_specification
    if status == 403:
        return "42501"  # insufficient_privilege
    if status == 413:
        return "54000"  # program_limit_exceeded
    if status == 429:
        return "53400"  # configuration_limit_exceeded
    if status in (400, 422):
        return "08P01"  # protocol_violation
    return "58000"  # system_error


def refusal_message(answer: Answer, severity: str = "ERROR", code: str | None = None,
                    note: str | None = None) -> bytes:
    """tollgate's refusal as an ErrorResponse: SQLSTATE by its status, the reasons as the
    message (a held statement's: where its approval stands, who denied it and why), and
    `note`, whose statement it is (drivers.py); the rules, approval, why it was held and
    trace id as the detail, what to do as the hint."""
    body = answer.body
    reasons = refusal_reasons(answer)
    detail = [f"trace id {answer.trace_id}"]
    if body.get("rules"):
        detail.insert(0, "rules: " + ", ".join(body["rules"]))
    hint = None
    if body.get("approval_id"):
        detail.insert(0, f"approval {body['approval_id']} ({body.get('status')})"
                      + held_because(answer))
        if body.get("approve_url") and body.get("status") == "pending":
            # Still undecided: running the statement again passes once it is approved.
            hint = (f"an approver decides it at {body['approve_url']}; run the statement "
                    "again once it is approved")
    message = "tollgate: " + "; ".join(map(str, reasons))
    return pg.error(code or sqlstate_of(answer.status),
                    message if note is None else f"{message} ({note})",
                    detail="; ".join(detail), hint=hint, severity=severity)


@dataclass(slots=True)
class Prepared:
    """A statement the extended protocol prepared (Parse), as it was decided."""

    name: str
    upstream: str  # the gateway's name for it in the database
    text: str
    meaning: Any
    decision: Decision
    revision: str
    duration_us: int
    # What running it drops (DEALLOCATE ALL, CLOSE ALL, DISCARD ALL).
    use: namespace.Use
    # What the database said its rows look like (a Describe of the statement).
    columns: list[pg.Column] | None = None
    approval: Any = None
    # A write whose Execute is measured (effect.py); a transaction statement's status
    # once it ran (effect.transaction_status; None: not one).
    measure: bool = False
    control: bytes | None = None
    # What it may do to the session's client_encoding (read once, at its Parse).
    change: encodings.Change = encodings.NO_CHANGE


@dataclass(slots=True)
class Portal:
    """A bound statement (Bind), ready to Execute; `cycle`: the cycle ends (Sync, Query)
    sent before its Bind, to end it with its transaction."""

    name: str
    upstream: str
    statement: Prepared
    result_formats: tuple[int, ...]
    cycle: int
    columns: list[pg.Column] | None = None
    # A measured write's Bind as it went upstream (to bind it again for an approved
    # run); whether an Execute ran it (a suspended portal's next Execute writes nothing).
    bind: bytes = b""
    ran: bool = False
    # A cursor SQL's DECLARE made (`statement`: the DECLARE, under its decision); WITH
    # HOLD, it outlives its transaction.
    declared: bool = False
    hold: bool = False


@dataclass(slots=True)
class Pending:
    """A message that went upstream and waits for its answers; `run` is the exchange it
    carries, if it is one (a Query, a Parse, an Execute, a FunctionCall)."""

    kind: bytes
    run: Run | None = None
    # The refusal that replaces the error its stand-in draws (None: not refused).
    refusal: bytes | None = None
    # A Describe's target, for the columns its answer brings; `own`: tollgate's own
    # (for the columns of the Execute after it), whose answer the client never sees.
    portal: Portal | None = None
    statement: Prepared | None = None
    own: bool = False
    # A cycle end's serial (Portal.cycle).
    cycle: int = 0
    # The front's own questions (a write's estimate): their answers go to it alone.
    probe: Probe | None = None
    # A write whose effect is measured (effect.py): its answers wait in `buffer` for the
    # verdict; `measured` is set at its ReadyForQuery, which the client gets only then.
    buffer: list[bytes] | None = None
    measured: asyncio.Future[None] | None = None
    opened: bool = False  # its transaction is the front's, opened for it
    # The cursors its statement declared: gone again if it fails.
    declared: tuple[Portal, ...] = ()


class Probe:
    """The front's own messages upstream: their answers, up to the `cycles`-th
    ReadyForQuery, collected for the one who asked. `messages`: a part of a batch that
    goes on after it, done once that many of its messages are answered (each by one
    completion: the closes after its last statement are its own, never the answer to
    the client's next message), at an error (the database then skips to the Sync:
    `then`, the client's message after it, does not run), or at the batch's
    ReadyForQuery (it was skipped whole)."""

    def __init__(self, cycles: int, messages: int = 0, cancellable: bool = False) -> None:
        self.remaining = cycles
        # The readings around a measured write, which a client's cancel may interrupt
        # (cancels.py): the write is then refused and rolled back.
        self.cancellable = cancellable
        self.messages = messages
        self.then: Pending | None = None
        self.answers: list[pg.Message] = []
        self.done: asyncio.Future[list[pg.Message]] = (
            asyncio.get_running_loop().create_future())

    @property
    def partial(self) -> bool:
        """Still waiting for its part's answers (a ReadyForQuery now: it was skipped)."""
        return self.messages > 0

    def take(self, message: pg.Message) -> bool:
        """One answer; whether it was the last."""
        self.answers.append(message)
        if self.messages:
            self.messages -= message.kind in _COMPLETIONS
            done = self.messages == 0 or message.kind in (b"E", b"Z")
            if message.kind == b"E" and self.then is not None:
                self.then.run = None  # skipped, its exchange the asker's to end
        else:
            self.remaining -= message.kind == b"Z"
            done = self.remaining == 0
        if done and not self.done.done():
            self.done.set_result(self.answers)
        return done


@dataclass(slots=True)
class Run:
    """One exchange on the wire: its statement's answers as they come back."""

    act: Act
    masker: ResultMasker | None = None
    columns: list[pg.Column] | None = None
    rows: int = 0
    commands: list[str] = field(default_factory=list)
    sample: bytearray = field(default_factory=bytearray)
    error: str | None = None
    use: namespace.Use = field(default_factory=namespace.Use)
    # A write whose effect the database is to measure before the verdict (effect.py).
    measure: bool = False
    # Its text as it goes upstream, where it differs from the client's (`_renamed`).
    upstream_text: str | None = None
    # The statements whose rows it returns (of the cursors it fetches from, of the
    # protocol's statements SQL's EXECUTE runs): their masks apply to its rows too.
    sources: tuple[Prepared, ...] = ()
    # What it may do to the session's client_encoding (encodings.Wire follows it), and
    # whether it went upstream so (its answers are then read as the Wire says).
    change: encodings.Change = encodings.NO_CHANGE
    unsettles: bool = False

    @property
    def exchange(self) -> Exchange:
        return self.act.exchange


class Session:
    """One logged-in client and its upstream connection, relayed until either ends."""

    def __init__(self, opener: Opener,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 upstream: Upstream, context: dict[str, Any], max_message: int,
                 first: bytes = b"") -> None:
        # The masker of what the session relays beside its statements' rows (a
        # notification, a server's error): the process's, as every act's.
        self._open, self._masker = opener, opener.masker
        self._reader, self._writer, self._upstream = reader, writer, upstream
        # A statement waiting (for a moderator) is told why in a NOTICE, which psql shows.
        opener.tell = lambda text: writer.write(pg.notice(text))
        self.context = context
        # The session's encoding, as the database's changes it (front.py speaks it).
        self.wire = encodings.Wire(context["encoding"], encodings.readable(
            upstream.parameters.get("server_encoding", "")))
        self._max = max_message
        # What the client sent before its login ended (the session's first bytes).
        self._first = first
        self._statements: dict[str, Prepared] = {}
        self._portals: dict[str, Portal] = {}
        # The serial of the gateway's upstream names; the cycle ends sent so far.
        self._serial = 0
        self._cycles = 0
        self._pending: deque[Pending] = deque()
        self._status = upstream.transaction_status
        # After tollgate refused a result it had begun to relay: the database's answers
        # up to its ReadyForQuery go nowhere (the client has its error).
        self._swallowing = False
        # Inside COPY ... TO STDOUT: the database's CopyData rows, masked.
        self._copy_out: CopyRows | None = None
        # The kinds of message of the extended-protocol batch the client has not ended
        # with a Sync yet, and whether one of them failed (the database then skips to
        # the Sync); `_drained`: set whenever nothing waits for an answer any more.
        self._batch: set[bytes] = set()
        self._batch_failed = False
        # A batch's message went upstream with no Flush or Sync after it: the database
        # answers nothing of it until one comes (it buffers its answers).
        self._unflushed = False
        self._drained = asyncio.Event()
        # Set whenever the database's answers have been read.
        self._progress = asyncio.Event()
        # A measured Execute in the client's batch (effect.py): `_opened`, the front
        # opened the batch's transaction (it ends at the client's Sync); `_skipping`,
        # the client's batch failed and the front's own Sync ended the database's skip,
        # so the front skips the client's messages to its Sync; `_batch_status`, the
        # status the batch's transaction statements left (None: as `_status` says).
        self._opened = False
        self._skipping = False
        self._batch_status: bytes | None = None
        # A measured write kept in the front's transaction leaves its savepoint to the
        # transaction's end (or the next measured write's readings): one round trip less.
        self._savepoint = False
        # What the catalog said of the tables and functions statements named (reach.py).
        self._remembered: Remembered[str] = Remembered()
        # A statement changed search_path (forgotten again when the transaction ends).
        self._path_set = False
        # An agent's bound on idling in a transaction that locked rows (locks.py): in ms
        # (None: none); whether a statement of this transaction may have locked rows, and
        # whether the bound is set in it.
        self._lock_idle_ms: int | None = context.get("lock_idle_ms")
        self._locked = self._bounded = False
        # Nothing but settings, SHOWs and catalog reads sent yet: what a client library
        # sends as a session opens (drivers.py).
        self._opening = True
        # How the database ended the session, if it did: what the exchanges still in
        # progress end with.
        self._ended: str | None = None
        # The client's cancels, never landing on the gateway's own statements.
        self._cancels = CancelGate()

    async def cancel(self, send: Callable[[], Awaitable[None]]) -> str:
        """The client's CancelRequest: the database's (`send`) goes only while what the
        backend runs is the client's (cancels.py); what became of it."""
        return await self._cancels.cancel(
            lambda: [p.probe.done for p in self._pending
                     if p.probe is not None and not p.probe.cancellable],
            lambda: any(p.probe is None and not p.own for p in self._pending),
            send, _ESTIMATE_SECONDS)

    @property
    def live(self) -> LiveSession:
        """The session as listed among those open (the front listed it at login)."""
        assert self._open.live is not None
        return self._open.live

    def holding(self) -> Holding | None:
        """The session, while its transaction is open (the locks its statements took
        are held till it ends: exchange/lock_waits.py asks who waits on them)."""
        if self._status == b"I" or self._open.target is None or self._open.live is None:
            return None
        return Holding(self._open.live.session_id, self._open.identity, self._open.target,
                       self._upstream.process_id)

    async def relay(self) -> None:
        """Both directions until either side ends; every exchange still open ends then."""
        client = asyncio.ensure_future(self._from_client())
        server = asyncio.ensure_future(self._from_server())
        try:
            done, _ = await asyncio.wait((client, server), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failure in either: logged by the caller
        finally:
            for task in (client, server):
                task.cancel()
            await asyncio.gather(client, server, return_exceptions=True)
            # Closed here, not left to the collector: over TLS nothing else closes it,
            # and the server's backend would wait for it until the gateway stops.
            self._upstream.close()
            while self._pending:
                self._end(self._pending.popleft(),
                          self._ended or "connection closed before its answer")

    # -- the client's messages ---------------------------------------------------------

    async def _from_client(self) -> None:
        try:
            await self._client_loop()
        except (_Fatal, pg.ProtocolViolation) as exc:
            self._violation(str(exc))

    def _violation(self, problem: str) -> None:
        """Bad input from the client ends the session: recorded as a refused exchange,
        answered with a FATAL protocol_violation naming its trace."""
        answer = self._act("PROTOCOL", None).refuse(
            Refused(400, "protocol_violation", problem))
        self._client_error(pg.error("08P01", f"tollgate: {problem}",
                                    detail=f"trace id {answer.trace_id}", severity="FATAL"))

    async def _client_loop(self) -> None:
        framer = pg.Framer(pg.FRONTEND_KINDS, self._max)
        upstream = self._upstream.writer
        data = self._first
        while True:
            data = data or await self._reader.read(_READ_SIZE)
            if not data:
                if framer.buffered:
                    raise _Fatal(f"the connection closed {framer.buffered} bytes into a "
                                 "message (a truncated message)")
                return
            out: list[bytes] = []
            for message in framer.feed(data):
                if message.kind == b"X":
                    return
                if (message.kind in (b"Q", b"P", b"F") or self._waits(message)) and out:
                    # A decision may wait (a hold): what came before it goes first.
                    upstream.write(b"".join(out))
                    out.clear()
                self._cancels.deciding(True)
                try:
                    out += await self._client_message(message)
                finally:
                    self._cancels.deciding(False)
            if out:
                upstream.write(b"".join(out))
            await upstream.drain()
            data = b""

    async def _client_message(self, message: pg.Message) -> list[bytes]:
        """What goes upstream for one client message (pending answers noted)."""
        kind, body = message.kind, message.body
        try:
            if self._skipping and kind != b"S":
                return []  # the database would skip it: the client's batch failed
            if kind in _BATCHED:
                return await self._batched(message)
            if kind in (b"Q", b"F"):
                self._batch_status = None
                if self._opened and await self._end_opened(_SYNC, relay=False):
                    self._skipping = True  # inside a failed batch: skipped
                    return []
            if kind == b"Q":
                return [await self._query(pg.query(body), message)]
            if kind == b"F":
                return [await self._function_call(message)]
            if kind == b"S":
                return await self._sync(message)
            if kind == b"H":
                self._unflushed = False
            # Flush, and COPY's data, done and fail: no answer of their own.
        except pg.Undecodable as problem:
            # Bytes the session's encoding does not read: refused as PostgreSQL refuses
            # them, and the session goes on.
            if kind != b"Q":
                self._batch.add(kind)
            return [self._stood_in(kind, _METHODS.get(kind, "PROTOCOL"), None, problem.text,
                                   "22021", Refused(400, "character_not_in_repertoire",
                                                     str(problem)))]
        except pg.ProtocolViolation as exc:
            # A body that is not what its type says: the database would refuse it too,
            # but it must not be passed on unread.
            raise _Fatal(f"a {kind.decode()} message that cannot be read: {exc}") from None
        return [message.raw()]

    async def _sync(self, message: pg.Message) -> list[bytes]:
        """The end of the client's batch (and of the front's transaction in it)."""
        self._batch.clear()
        self._batch_status = None
        self._skipping = self._unflushed = False
        if self._opened:
            await self._end_opened(message.raw(), relay=True)
            return []
        self._pending.append(Pending(b"S", cycle=self._cycle_end()))
        return [message.raw()]

    async def _batched(self, message: pg.Message) -> list[bytes]:
        """A message of the extended protocol: the batch stays open until a Sync."""
        kind, body = message.kind, message.body
        if kind == b"P":
            out = await self._parse(pg.parse(body))
        elif kind == b"B":
            out = [self._bind(pg.bind(body))]
        elif kind == b"E":
            out = await self._execute(*pg.execute(body))
        elif kind == b"D":
            out = [self._describe(*pg.describe(body))]
        else:
            out = [self._close(*pg.close(body))]
        self._batch.add(kind)
        self._unflushed = True
        return out

    def _waits(self, message: pg.Message) -> bool:
        """Whether the front may answer this message only after a round trip of its own
        (a measured Execute, the Sync that ends a transaction the front opened): what the
        client sent before it goes upstream first."""
        if message.kind == b"S":
            return self._opened
        if message.kind != b"E" or self._skipping:
            return False
        try:
            portal = self._portals.get(pg.execute(message.body)[0])
        except pg.ProtocolViolation:
            return False  # refused as it is read
        return portal is not None and portal.statement.measure and not portal.ran

    def _cycle_end(self) -> int:
        self._cycles += 1
        self.wire.ending(self._cycles)
        return self._cycles

    def _upstream_name(self, name: str) -> str:
        """The gateway's own name for a client's named statement: a new one each time,
        so no name the client chose, nor an old one, reaches the database."""
        if not name:
            return ""
        self._serial += 1
        return f"{namespace.PREFIX}s{self._serial}"

    async def _query(self, text: str, message: pg.Message) -> bytes:
        run, refusal = await self._decided("query", text, None)
        if refusal is None and run.upstream_text is not None:
            message = pg.Message(b"Q", pg.encode_query(run.upstream_text)[5:])
        if refusal is None and run.measure:
            run.unsettles = self.wire.going(run.change, self._cycles + 1)
            refusal = await self._measured(run, message)
            if refusal is None:
                return b""  # ran, its answers relayed with the verdict
            _unrun(run)
        declared = self._apply(run.use, self._declaring(run, text) if run.use.declared
                               else None) if refusal is None else ()
        self._pending.append(Pending(b"Q", run, refusal, cycle=self._cycle_end(),
                                     declared=declared))
        if refusal is None:
            run.unsettles = self.wire.going(run.change, self._cycles)
            return message.raw()
        return pg.encode_query(_REFUSED.format(trace=run.exchange.trace_id))

    async def _parse(self, parse: pg.Parse) -> list[bytes]:
        """A statement decided on its text, prepared under a new name of the gateway's.
        Refused, it leaves no statement under its name on either side (the old one is
        closed); allowed under a name in use, it gets PostgreSQL's duplicate error."""
        name = parse.statement
        run, refusal = await self._decided("parse", parse.text, name, parse.parameter_types)
        exchange = run.exchange
        old = self._statements.get(name)
        out: list[bytes] = []
        if refusal is None and name and old is not None:
            refusal = self._refusal(run, "duplicate_prepared_statement", "42P05",
                                    f'prepared statement "{name}" already exists')
        elif refusal is not None:
            self._statements.pop(name, None)
            if old is not None and old.upstream:
                self._pending.append(Pending(b"C", own=True))
                out.append(pg.encode_close(b"S", old.upstream))
        if refusal is not None:
            # Unnamed, the stand-in replaces the database's unnamed statement, as the
            # refused one would have; named, it takes a name that is never created.
            self._pending.append(Pending(b"P", run, refusal))
            out.append(pg.encode_parse(self._upstream_name(name),
                                       _REFUSED.format(trace=exchange.trace_id)))
            return out
        prepared = _prepared(name, self._upstream_name(name), parse.text, run)
        self._statements[name] = prepared
        self._pending.append(Pending(b"P", run, statement=prepared))
        return [pg.encode_parse(prepared.upstream, run.upstream_text or parse.text,
                                parse.parameter_types)]

    async def _function_call(self, message: pg.Message) -> bytes:
        """The fast path names a function by OID, with no SQL: decided as such (the pack
        refuses it); its stand-in is a Query, which draws the same error and Ready."""
        run, refusal = await self._decided("function_call", "", None)
        self._pending.append(Pending(b"F", run, refusal, cycle=self._cycle_end()))
        if refusal is None:
            # A function named by OID may be set_config: any encoding may follow.
            run.change = encodings.Change(None)
            run.unsettles = self.wire.going(run.change, self._cycles)
            return message.raw()
        return pg.encode_query(_REFUSED.format(trace=run.exchange.trace_id))

    def _bind(self, bind: pg.Bind) -> bytes:
        statement = self._statements.get(bind.statement)
        if statement is None:
            return self._refused_name(b"B", "BIND", bind.statement, "26000",
                                      "unknown_statement", _unknown("statement", bind.statement))
        if bind.portal.lower().startswith(namespace.PREFIX):
            return self._refused_name(b"B", "BIND", bind.portal, "42501",
                                      "statement_namespace", _owned(bind.portal))
        if bind.portal and self._holds(bind.portal):
            return self._refused_name(b"B", "BIND", bind.portal, "42P03", "duplicate_portal",
                                      f'portal "{bind.portal}" already exists')
        columns = None
        if statement.columns is not None:
            columns = _with_formats(statement.columns, bind.result_formats)
        portal = Portal(bind.portal, bind.portal, statement, bind.result_formats,
                        self._cycles, columns)
        self._portals[bind.portal] = portal
        self._pending.append(Pending(b"B", portal=portal))
        encoded = pg.encode_bind(bind._replace(portal=portal.upstream,
                                               statement=statement.upstream))
        if statement.measure:
            portal.bind = encoded
        return encoded

    def _describe(self, which: bytes, name: str) -> bytes:
        if which == b"S":
            statement = self._statements.get(name)
            if statement is None:
                return self._refused_name(b"D", "DESCRIBE", name, "26000",
                                          "unknown_statement", _unknown("statement", name))
            self._pending.append(Pending(b"D", statement=statement))
            return pg.encode_describe(b"S", statement.upstream)
        portal = self._portals.get(name)
        if portal is None:
            return self._refused_name(b"D", "DESCRIBE", name, "34000", "unknown_portal",
                                      _unknown("portal", name))
        self._pending.append(Pending(b"D", portal=portal))
        return pg.encode_describe(b"P", portal.upstream)

    def _close(self, which: bytes, name: str) -> bytes:
        """A Close of what the client named; of a name it never had, a Close of nothing
        (not an error, as in PostgreSQL)."""
        gone: Prepared | Portal | None = (
            self._statements.pop(name, None) if which == b"S" else self._portals.pop(name, None))
        self._pending.append(Pending(b"C"))
        return pg.encode_close(which, gone.upstream if gone is not None
                               else name and _NOBODY)

    async def _execute(self, portal_name: str, max_rows: int) -> list[bytes]:
        """An Execute runs a statement decided at its Parse: its exchange carries that
        decision; a limited write's is measured (effect.py). A portal tollgate did not
        bind is refused: nothing else runs."""
        portal = self._portals.get(portal_name)
        if portal is None:
            return [self._refused_name(b"E", "EXECUTE", portal_name, "34000",
                                       "unknown_portal", _unknown("portal", portal_name))]
        statement = portal.statement
        use = namespace.Use() if portal.declared else statement.use
        problem = self._cursor_problem(use)
        if problem is not None:
            return [self._refused_name(b"E", "EXECUTE", portal_name, *problem)]
        run, refusal = self._carried(statement)
        run.sources = self._sources(use)
        run.change = statement.change
        declared = self._apply(use, statement) if refusal is None else ()
        if refusal is None:
            run.unsettles = self.wire.going(run.change, self._cycles + 1)
        if refusal is None and statement.measure and not portal.ran:
            portal.ran = True
            return await self._execute_measured(portal, max_rows, run)
        portal.ran = True
        if statement.control is not None:
            # The client's own transaction statement: the status it leaves is the
            # batch's from here (a transaction the front opened is the client's now).
            self._opened = self._savepoint = False
            if statement.control:
                self._batch_status = statement.control
        return self._executed(portal, max_rows, run, refusal, declared)

    def _executed(self, portal: Portal, max_rows: int, run: Run, refusal: bytes | None,
                  declared: tuple[Portal, ...] = ()) -> list[bytes]:
        """An Execute as it goes upstream: the portal's columns asked first if not known,
        a stand-in in its place if refused."""
        exchange = run.exchange
        out: list[bytes] = []
        if refusal is None and portal.columns is None:
            # The rows' names and types, to mask them and keep a sample: asked first.
            self._pending.append(Pending(b"D", portal=portal, own=True))
            out.append(pg.encode_describe(b"P", portal.upstream))
        elif refusal is None:
            assert portal.columns is not None
            refusal = self._result_masker(run, portal.columns)
        self._pending.append(Pending(b"E", run, refusal, declared=declared))
        if refusal is not None:
            out.append(pg.encode_execute(_REFUSED.format(trace=exchange.trace_id), 0))
        else:
            out.append(pg.encode_execute(portal.upstream, max_rows))
        return out

    def _refused_name(self, kind: bytes, method: str, name: str, code: str, error: str,
                      message: str) -> bytes:
        """A message naming what the gateway did not prepare or bind, refused and
        recorded (`_stood_in`)."""
        return self._stood_in(kind, method, name, name, code, Refused(403, error, message))

    def _stood_in(self, kind: bytes, method: str, name: str | None, text: str, code: str,
                  problem: Refusal) -> bytes:
        """A message refused as it is read, recorded with `text`; its stand-in (a Query
        of text that does not parse for a Query, else an Execute of a portal that never
        exists) draws the database's error, and skip to Sync, which the refusal
        replaces."""
        run = Run(self._act(method, name))
        exchange = run.exchange
        run.act.admit(required=False)
        self._request(exchange, method, text)
        refusal = refusal_message(exchange.refuse(problem), code=code)
        stand_in = _REFUSED.format(trace=exchange.trace_id)
        if kind == b"Q":
            self._pending.append(Pending(kind, run, refusal, cycle=self._cycle_end()))
            return pg.encode_query(stand_in)
        self._pending.append(Pending(kind, run, refusal))
        return pg.encode_execute(stand_in, 0)

    def _refusal(self, run: Run, error: str, code: str, message: str) -> bytes:
        return refusal_message(run.exchange.refuse(Refused(403, error, message)), code=code)

    def _apply(self, use: namespace.Use, statement: Prepared | None) -> tuple[Portal, ...]:
        """What a statement does to the maps, as it goes upstream: what DEALLOCATE ALL,
        CLOSE ALL, DISCARD ALL and CLOSE drop (should it fail, the names are only
        refused, never misused); the cursors it declares, run under its decision as
        `statement` (None where it declares none: not built for every Query); should it
        fail, they go again (`_forget`)."""
        if use.drops_statements:  # the unnamed statement is not theirs to drop
            self._statements = {n: s for n, s in self._statements.items() if not n}
        if use.drops_portals:
            self._portals.clear()
        for name in use.closed:
            self._portals.pop(name, None)
        for name in use.deallocated:
            self._statements.pop(name, None)
        if not use.declared:
            return ()
        assert statement is not None
        declared = tuple(Portal(name, name, statement, (), self._cycles, declared=True,
                                hold=hold) for name, hold in use.declared)
        self._portals.update((p.name, p) for p in declared)
        return declared

    def _declaring(self, run: Run, text: str) -> Prepared:
        """A Query as the statement its cursors run: its decision, nothing to redo."""
        return replace(_prepared("", "", text, run), use=namespace.Use())

    def _holds(self, name: str) -> bool:
        """Whether the database holds a portal of that name for sure: one made since the
        last cycle end sent, or a cursor WITH HOLD. One made before may have ended with
        its transaction, which only the cycle's Ready tells: a name bound or declared
        again meanwhile (COMMIT and a Bind pipelined) goes to the database, whose
        duplicate error then leaves the front knowing neither, refusing both."""
        portal = self._portals.get(name)
        return portal is not None and (portal.cycle == self._cycles or portal.hold)

    def _renamed(self, use: namespace.Use, meaning: Any, text: str) -> str | None:
        """The text as it goes upstream, where it differs: SQL's EXECUTE or DEALLOCATE
        of a statement the protocol prepared, the text's only statement, names it by
        the gateway's name (asyncpg lets a client name its statements and EXECUTE them
        in SQL; psycopg on a libpq before 17 evicts them with DEALLOCATE). Elsewhere the
        database answers for the name the client gave."""
        names = use.deallocated | use.executed
        if len(names) != 1 or not isinstance(meaning, dict):
            return None  # every other text: nothing more to read
        top = [s for s in meaning.get("statements") or () if not s.get("nested")]
        statement = self._statements.get(next(iter(names))) if len(top) == 1 else None
        return None if statement is None else namespace.renamed(text, statement.upstream)

    def _cursor_problem(self, use: namespace.Use) -> tuple[str, str, str] | None:
        """Why a statement's cursors cannot be used (SQLSTATE, error, message): a cursor
        declared again while the front holds one of that name (the database would keep
        the old one, which the map would then misname), or a FETCH or MOVE of a cursor
        the front did not see declared or bound (a function's, one gone)."""
        declared = {name for name, _ in use.declared}
        for name in sorted(n for n in declared if self._holds(n)):
            return "42P03", "duplicate_cursor", f'cursor "{name}" already exists'
        for name in sorted(use.fetched - declared - self._portals.keys()):
            return "34000", "unknown_portal", _unknown("portal", name)
        return None

    def _sources(self, use: namespace.Use) -> tuple[Prepared, ...]:
        """The statements whose rows a text returns besides its own: of the cursors it
        fetches from (those it declares itself are its own decision's), of the
        protocol's statements it executes."""
        return tuple([self._portals[n].statement for n in sorted(use.fetched)
                      if n in self._portals]
                     + [self._statements[n] for n in sorted(use.executed)
                        if n in self._statements])

    def _forget(self, pending: Pending) -> None:
        """A Parse, Bind or DECLARE that failed or was skipped created nothing: its
        names go."""
        statement, portal = pending.statement, pending.portal
        if pending.kind == b"P" and statement is not None \
                and self._statements.get(statement.name) is statement:
            del self._statements[statement.name]
        elif pending.kind == b"B" and portal is not None \
                and self._portals.get(portal.name) is portal:
            del self._portals[portal.name]
        for cursor in pending.declared:
            if self._portals.get(cursor.name) is cursor:
                del self._portals[cursor.name]

    def _end_portals(self, cycle: int) -> None:
        """The transaction ended: the portals bound or declared before its cycle end
        went with it, but cursors WITH HOLD."""
        self._portals = {n: p for n, p in self._portals.items()
                         if p.cycle >= cycle or p.hold}

    # -- decisions ---------------------------------------------------------------------

    async def _decided(self, what: str, text: str, statement_name: str | None,
                       parameter_types: tuple[int, ...] | None = None
                       ) -> tuple[Run, bytes | None]:
        """An exchange for a statement's text: opened, estimated if it writes, decided,
        held if the policy says; and its refusal (None: allowed). `parameter_types`: a
        Parse's (a Query has no parameters)."""
        act = self._act(what.upper(), statement_name)
        run, exchange = Run(act), act.exchange
        refusal: Answer | None = None
        shape: str | None = None
        opening = self._opening
        try:
            act.admit(f"database {self.context['database']!r}")
            self._request(exchange, what.upper(), text)
            await act.read(len(text))
            refuse_owned_change(exchange.meaning, self.context["owned"])
            run.change = self.wire.changes(exchange.meaning)
            if opening:
                shape = drivers.shape(exchange.meaning)
                self._opening = shape in (drivers.CATALOG, drivers.SETTING)
            run.use = namespace.read(exchange.meaning)
            if run.use.problem is not None or run.use.owned:
                raise Refused(403, "statement_namespace",
                               run.use.problem or _owned(*run.use.owned))
            if what == "query":  # a Parse's cursors are seen to at each Execute
                code, error, problem = self._cursor_problem(run.use) or (None, "", "")
                if code is not None:
                    raise _NameRefused(code, error, problem)
                run.sources = self._sources(run.use)
            run.upstream_text = self._renamed(run.use, exchange.meaning, text)
            if self._remembered.forget_after(exchange.meaning):
                self._path_set = True  # a SET LOCAL ends with its transaction
            writes = what != "function_call" and (await self._estimate(
                exchange, run.upstream_text or text, parameter_types)
                or await self._reaches(exchange, run.upstream_text or text))
            if what in ("query", "parse") and writes:
                # A Parse's writes are measured at their Execute: the transaction's
                # status then, not now, says whether they can be.
                run.measure = self._measurable(exchange, text, what == "query")
            refusal = await act.judge(lambda seconds: self._notice(exchange, seconds))
            if refusal is None and self._cancels.take():
                return run, self._refusal(run, "query_canceled", "57014",
                                          "canceling statement due to user request")
            if refusal is None and self._lock_idle_ms is not None and what != "function_call" \
                    and locks.locks(text, exchange.meaning):
                await self._bound_before()
        except _NameRefused as exc:
            return run, self._refusal(run, exc.error, exc.code, exc.message)
        except Exception as exc:  # every failure is a refusal in order: fail closed
            refusal = act.refusal(exc, "statement")
        if refusal is None:
            return run, None
        shape = shape if opening else drivers.shape(exchange.meaning)
        return run, refusal_message(refusal, note=drivers.note(shape, opening, text))

    async def _estimate(self, exchange: Exchange, text: str,
                        parameter_types: tuple[int, ...] | None) -> bool:
        """What the text's writes touch, by the planner, on their statements in
        input.sql (and so in the record), and in brief on the span; whether it writes
        what the planner can count (estimate.planned)."""
        meaning = exchange.meaning
        if not isinstance(meaning, dict) or meaning.get("error"):
            return bool(estimate.planned(text))
        writes = estimate.planned(text)
        if not writes:
            return False
        problem = await self._at_rest()
        try:
            found = [(p, estimate.missing(problem)) for p in writes] if problem else (
                await estimate.estimates(self._ask, writes, parameter_types, self._status))
        except TimeoutError:
            found = [(p, estimate.missing("the database did not answer the planner's "
                                          "questions in time")) for p in writes]
        for _, found_estimate in found:
            # The database's messages can quote the statement's values: masked as the
            # record masks them, for the approver sees this reason.
            if found_estimate["unavailable"]:
                found_estimate["unavailable"] = str(self._masker.mask_json(
                    found_estimate["unavailable"], RECORD_MASK)[0])
        estimate.attach(meaning, found)
        rows = [w["rows"] for _, e in found for w in e["writes"]]
        if rows:
            exchange.outcome["tollgate.sql.estimated_rows"] = max(rows)
        unavailable = next((e["unavailable"] for _, e in found if e["unavailable"]), None)
        if unavailable:
            exchange.outcome["tollgate.sql.estimate_unavailable"] = unavailable
        return True

    async def _reaches(self, exchange: Exchange, text: str) -> bool:
        """Whether the text may write through the database's code (reach.py): then it is
        measured as a write is, and the record says why (`tollgate.sql.reaches`)."""
        found = reach.names(text)
        if found is None:
            return False
        why = await reach.reaches(self._ask, self._at_rest, lambda: self._status, found,
                                  self._remembered)
        if why is None:
            return False
        exchange.outcome["tollgate.sql.reaches"] = why
        return True

    async def _at_rest(self) -> str | None:
        """Once every answer the client awaits has come back: None, or why the session
        cannot be asked (estimate.py says why it must be at rest)."""
        if self._batch - _PREPARING or self._unflushed:
            return ("it came in a pipeline (an extended-protocol batch not ended by a "
                    "Sync, or not flushed): the planner is asked only between the client's "
                    "batches")
        try:
            async with asyncio.timeout(_REST_SECONDS):
                while self._pending:
                    self._drained.clear()
                    await self._drained.wait()
        except TimeoutError:
            return (f"what the client sent before it was still running after "
                    f"{_REST_SECONDS:g} s")
        if self._batch and self._batch_failed:
            return ("an earlier message of its batch failed: the database runs nothing "
                    "until the client's Sync")
        return None

    async def _ask(self, messages: list[bytes], cycles: int) -> list[pg.Message]:
        """The front's own messages upstream, answered to it alone (estimate.Ask)."""
        await self._cancels.turn()
        probe = Probe(cycles)
        self._pending.append(Pending(b"Q", probe=probe))
        self._upstream.writer.write(b"".join(messages))
        await self._upstream.writer.drain()
        return await asyncio.wait_for(asyncio.shield(probe.done), _ESTIMATE_SECONDS)

    def _measurable(self, exchange: Exchange, text: str, now: bool = True) -> bool:
        """Whether the write's effect can be measured (effect.py): the first decision is
        told so (`input.effect`, `measured` null), or why not (false), and what it allows
        then runs unmeasured. `now`: it runs now (a Query; a Parse's runs at Execute)."""
        problem = effect.unmeasurable(text) or (
            "the transaction has failed: the database runs nothing until it ends"
            if now and self._status == b"E" else None)
        if problem is not None:
            exchange.effect = unmeasured(problem)
            return False
        exchange.effect = to_come()
        return True

    async def _measured(self, run: Run, message: pg.Message) -> bytes | None:
        """A Query's write run where its effect is measured, and its verdict."""
        measure = functools.partial(self._run_measured, run, message)
        return await self._verdict(run, measure, measure, self._settle)

    async def _verdict(self, run: Run, first: _Measure, again: _Measure,
                       settle: _Settle) -> bytes | None:
        """The write run where its effect is measured (`first`), and the verdict on it
        (exchange/effect.py): the client's answers relayed when it stands (None), else
        its refusal (rolled back). Approved after a hold, it runs again (`again`)."""
        exchange = run.exchange

        async def rerun() -> tuple[Effect, Pending] | None:
            _unrun(run)
            return await again()

        async def hold(decision: Decision, asked: Callable[[], None]) -> None:
            async for seconds in run.act.hold(decision):
                asked()
                self._notice(exchange, seconds)

        try:
            refusal = await judged(
                run.act.decide, exchange,
                Measured(first, functools.partial(settle, run), hold, rerun))
        except _Refused as exc:
            return exc.refusal
        except Exception as exc:  # fail closed: refused, in order
            return refusal_message(run.act.refusal(exc, "statement"))
        return None if refusal is None else refusal_message(refusal)

    async def _run_measured(self, run: Run, message: pg.Message
                            ) -> tuple[Effect, Pending] | None:
        """The client's Query between the two readings, in a savepoint of the client's
        transaction (or a transaction of the front's): the effect, and the statement's
        pending answers (buffered); None when it failed (its answers relayed, as the
        database left the transaction: rolled back if the front had opened it)."""
        await self._cancels.turn()
        opened = self._status == b"I"
        before, after = Probe(1, cancellable=True), Probe(1, cancellable=True)
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        statement = Pending(b"Q", run, cycle=self._cycle_end(), buffer=[], measured=answered,
                            opened=opened)
        enter = "BEGIN" if opened else f"SAVEPOINT {effect.SAVEPOINT}"
        self._pending += (Pending(b"Q", probe=before), statement, Pending(b"Q", probe=after))
        self._upstream.writer.write(b"".join((
            pg.encode_query(f"{effect.MARK}{enter}; {effect.BEFORE}"), message.raw(),
            pg.encode_query(effect.AFTER))))
        await self._upstream.writer.drain()
        first, last = await asyncio.gather(before.done, after.done)
        await answered
        rows_before, error = pg.answer_rows(first)
        rows_after, failed = pg.answer_rows(last)
        if error is not None or run.error is not None or failed is not None:
            if run.error is None:  # the front's reading failed, the statement not
                await self._settle(run, statement, commit=False)
                raise Refused(403, "effect_unmeasured", "the write's effect could not be "
                               f"read: {pg.error_text(error or failed or {})}")
            # The statement failed: the client's transaction is as the database left
            # it (failed), or the front's is rolled back.
            ready = (await self._ask([pg.encode_query(effect.MARK + "ROLLBACK")], 1))[-1] \
                if opened else pg.Message(b"Z", b"E")
            self._relay(run, statement, ready)
            return None
        return _difference(run, rows_before, rows_after), statement

    async def _settle(self, run: Run, pending: Pending, commit: bool) -> None:
        """The measured write kept (released, committed: its answers relayed) or undone."""
        opened = pending.opened
        if commit:
            text = "COMMIT" if opened else f"RELEASE SAVEPOINT {effect.SAVEPOINT}"
        else:
            text = "ROLLBACK" if opened else (f"ROLLBACK TO SAVEPOINT {effect.SAVEPOINT}; "
                                              f"RELEASE SAVEPOINT {effect.SAVEPOINT}")
        answers = await self._ask([pg.encode_query(effect.MARK + text)], 1)
        if not commit:
            run.error = "rolled back: its measured effect was not allowed"
            return
        problem = next((m for m in answers if m.kind == b"E"), None)
        if problem is not None:  # a deferred constraint, a serialization failure
            fields = self._mask_fields(pg.fields(problem.body), pending)
            run.error = f"error {fields.get('C', '')}: {fields.get('M', '')}"
            assert pending.buffer is not None
            pending.buffer.append(pg.encode_fields(b"E", fields))
        self._relay(run, pending, answers[-1])

    def _relay(self, run: Run, pending: Pending, ready: pg.Message) -> None:
        """The statement's buffered answers to the client, with the Ready the verdict
        left; its exchange ends."""
        assert pending.buffer is not None
        self._writer.write(b"".join(pending.buffer) + ready.raw())
        pending.run = run
        self._end(pending, None, "; ".join(run.commands))

    # -- a measured Execute (the extended protocol) ---------------------------------------

    async def _execute_measured(self, portal: Portal, max_rows: int,
                                run: Run) -> list[bytes]:
        """A limited write's Execute, its effect measured before it stands (effect.py):
        in the batch's transaction made explicit (the front's BEGIN when the session was
        idle: it ends at the client's Sync, as the implicit one would) and under a
        savepoint, between two readings, all ended by a Sync of the front's (which ends
        no explicit transaction, nor its portals); the verdict; the savepoint released,
        or rolled back to. What goes upstream for the client after it (a refusal's
        stand-in), if anything."""
        run.measure = True
        # The status the batch began in: every earlier cycle's ReadyForQuery in.
        while any(p.kind in _CYCLE_ENDS for p in self._pending):
            self._progress.clear()
            await self._progress.wait()
        status = self._batch_status or self._status
        if status == b"E":
            # Nothing runs in a failed transaction: it goes as it came.
            return self._executed(portal, max_rows, run, None)
        refusal = None if portal.columns is None else self._result_masker(run, portal.columns)
        if refusal is None:
            refusal = await self._verdict(
                run, functools.partial(self._run_measured_execute, run, portal, max_rows,
                                       status == b"I", False),
                functools.partial(self._run_measured_execute, run, portal, max_rows,
                                  False, True),
                self._settle_execute)
        if refusal is None:
            return []  # it stands, its answers relayed; or it failed, the batch skipped
        _unrun(run)
        # Its stand-in draws the database's error and skip to the Sync: the batch's
        # transaction fails, as the refused statement's error would have failed it.
        return self._executed(portal, 0, run, refusal)

    async def _run_measured_execute(self, run: Run, portal: Portal, max_rows: int,
                                    begin: bool, rebind: bool
                                    ) -> tuple[Effect, Pending] | None:
        """The client's Execute between the two readings, in a savepoint (after the
        front's BEGIN, `begin`; bound again, `rebind`, for a run after approval), in one
        round trip: the effect, and the statement's pending answers (buffered); None
        when it did not run (an earlier message of the batch failed) or failed (its
        error relayed): the front's Sync ended the database's skip, so the front skips
        the client's batch to its Sync, as the database would have."""
        await self._cancels.turn()
        release = self._opened and self._savepoint
        self._savepoint = False
        enter = _own_statements(*(["BEGIN"] if begin else []),
                                *([f"RELEASE SAVEPOINT {effect.SAVEPOINT}"] if release
                                  else []),
                                f"SAVEPOINT {effect.SAVEPOINT}", effect.BEFORE)
        before = Probe(1, messages=len(enter), cancellable=True)
        after = Probe(1, cancellable=True)
        buffer: list[bytes] = []
        statement = Pending(b"E", run, buffer=buffer)
        before.then = statement
        pending: list[Pending] = []
        out: list[bytes] = []
        if portal.columns is None:
            # Its rows' names and types, to mask them (NoData: none).
            pending.append(Pending(b"D", portal=portal, own=True))
            out.append(pg.encode_describe(b"P", portal.upstream))
        pending.append(Pending(b"S", probe=before))
        out += enter
        if rebind:
            if self._statements.get(portal.statement.name) is not portal.statement:
                raise Refused(403, "effect_unmeasured", "its prepared statement was "
                               "replaced before it could run again")
            pending += (Pending(b"C", own=True, buffer=buffer),
                        Pending(b"B", own=True, buffer=buffer))
            out += (pg.encode_close(b"P", portal.upstream), portal.bind)
        pending += (statement, Pending(b"S", probe=after))
        out += (pg.encode_execute(portal.upstream, max_rows), *_own_statements(effect.AFTER),
                _SYNC)
        self._pending += pending
        self._upstream.writer.write(b"".join(out))
        await self._upstream.writer.drain()
        first, last = await before.done, await after.done
        if begin:
            self._opened = self._status != b"I"
        if first[-1].kind == b"Z":  # skipped: an earlier message of the batch failed
            self._skipping = True
            return None
        rows_before, error = pg.answer_rows(first)
        if error is not None:
            await self._settle_execute(run, None, False)
            raise Refused(403, "effect_unmeasured", "the write's effect could not be read: "
                           f"{pg.error_text(error)}")
        rows_after, failed = pg.answer_rows(last)
        if statement.run is None:  # it failed
            self._writer.write(b"".join(buffer))
            self._skipping = True
            return None
        if statement.refusal is not None or failed is not None:
            await self._settle_execute(run, None, False)
            if statement.refusal is not None:  # its rows cannot be masked
                raise _Refused(statement.refusal)
            raise Refused(403, "effect_unmeasured", "the write's effect could not be "
                           f"read: {pg.error_text(failed or {})}")
        return _difference(run, rows_before, rows_after), statement

    async def _settle_execute(self, run: Run, pending: Pending | None, commit: bool) -> None:
        """A measured Execute kept (its savepoint released, its answers relayed: the
        transaction goes on to the client's Sync) or undone (rolled back to it). In the
        front's own transaction the savepoint is released later, by its COMMIT or the
        next measured write's readings (the client has none of its own there)."""
        release = f"RELEASE SAVEPOINT {effect.SAVEPOINT}"
        if commit and self._opened and pending is not None:
            self._savepoint, answers = True, []
        elif commit:
            answers = await self._own(release)
        else:
            answers = await self._own(f"ROLLBACK TO SAVEPOINT {effect.SAVEPOINT}", release)
        if not commit or pending is None:
            run.error = "rolled back: its measured effect was not allowed"
            return
        _, problem = pg.answer_rows(answers)
        if problem is not None:
            raise Refused(403, "effect_unmeasured", "the savepoint the write was "
                           f"measured in could not be released: {pg.error_text(problem)}")
        assert pending.buffer is not None
        self._writer.write(b"".join(pending.buffer))
        pending.run = run
        self._end(pending, None, "; ".join(run.commands))

    async def _own(self, *texts: str) -> list[pg.Message]:
        """The front's own statements inside the client's batch, by the extended protocol,
        ended by a Sync of its own (in an explicit transaction, which it does not end):
        their answers, to it alone. None given: only what an error left under the front's
        name closed."""
        await self._cancels.turn()
        probe = Probe(1)
        self._pending.append(Pending(b"S", probe=probe))
        self._upstream.writer.write(b"".join([*_own_statements(*texts), _SYNC]))
        await self._upstream.writer.drain()
        answers = await probe.done
        if texts and _failed(answers):
            await self._own()  # the error skipped its closes to the Sync
        return answers

    async def _end_opened(self, sync: bytes, relay: bool) -> bool:
        """The end of a batch whose transaction the front opened for a measured write
        (the client's Sync; or the front's own, before a Query the client sent inside
        the batch): the front's COMMIT goes just before it, so the transaction ends as
        the batch's implicit one would have: committed, or rolled back if the batch
        failed (the COMMIT skipped); the client is told its status (`relay`). Whether
        the batch had failed."""
        await self._cancels.turn()
        self._opened = self._savepoint = False
        probe = Probe(1)
        pending = Pending(b"S", probe=probe, cycle=self._cycle_end())
        self._pending.append(pending)
        self._upstream.writer.write(b"".join((*_own_statements("COMMIT"), sync)))
        await self._upstream.writer.drain()
        answers = await probe.done
        # A deferred constraint, a serialization failure: the batch's error at its end.
        out = [self._masked_fields(b"E", pg.fields(m.body), None)
               for m in answers if m.kind == b"E"]
        failed = self._status == b"E"
        if failed:
            await self._own_query("ROLLBACK")
        if _failed(answers):
            await self._own()  # the COMMIT failed: its closes were skipped
        self._end_portals(pending.cycle)
        if relay:
            out.append(pg.encode_ready(self._status))
        if out:
            self._writer.write(b"".join(out))
        return failed

    async def _own_query(self, text: str) -> list[pg.Message]:
        """A simple Query of the front's between the client's cycles, without the
        estimate's time limit (a COMMIT may wait for the disk)."""
        await self._cancels.turn()
        probe = Probe(1)
        self._pending.append(Pending(b"Q", probe=probe))
        self._upstream.writer.write(pg.encode_query(effect.MARK + text))
        await self._upstream.writer.drain()
        return await probe.done

    def _carried(self, statement: Prepared) -> tuple[Run, bytes | None]:
        """An Execute's exchange: the statement it runs, under its Parse's decision; and
        its refusal, when it cannot be recorded (then it does not run)."""
        run = Run(self._act("EXECUTE", None))
        exchange = run.exchange
        refusal = None
        try:
            run.act.admit()
        except Refusal as exc:  # the record cannot take it
            refusal = refusal_message(run.act.refusal(exc, "statement"))
        self._request(exchange, "EXECUTE", statement.text)
        exchange.interpret(statement.meaning)
        exchange.decided("request", statement.decision, statement.revision,
                         statement.duration_us)
        if statement.approval is not None:
            exchange.approved(statement.approval)
        return run, refusal

    def _request(self, exchange: Exchange, method: str, text: str) -> None:
        """The statement as the exchange's request (input.request, and the record's):
        the message, the database as its path, the session's parameters, the SQL."""
        exchange.request = exchange.evidence.request = {
            "method": method, "path": f"/{self.context['database']}", "query": {},
            "headers": dict(self.context["parameters"]), "body": text}
        exchange.evidence.request_body = exchange.kept(text.encode())

    def _act(self, method: str, statement_name: str | None) -> Act:
        return self._open(method, {**self.context["policy"], "message": method.lower(),
                                   "statement_name": statement_name,
                                   "transaction_status": _TRANSACTION.get(self._status,
                                                                          "idle")})

    def _notice(self, exchange: Exchange, seconds: int) -> None:
        """A held statement's client is told why it waits (a NOTICE, which psql shows)."""
        approval = exchange.evidence.approval or {}
        self._writer.write(pg.notice(
            f"tollgate: this statement waits up to {seconds} s for an approval "
            f"({', '.join(exchange.decision.reasons)})",
            detail=f"approval {approval.get('id')}; trace id {exchange.trace_id}"))

    def _result_masker(self, run: Run, columns: list[pg.Column]) -> bytes | None:
        """The masker of a result's rows; a refusal when they cannot be masked."""
        run.columns = columns
        mask = run.exchange.mask
        if run.sources:  # a cursor's rows: as its own statement asked, too
            mask = spec_of([*(d.mask for d in run.exchange.decisions),
                            *(s.decision.mask for s in run.sources)])
        try:
            run.masker = ResultMasker(self._masker, mask, columns)
        except ResultRefused as exc:
            answer = run.exchange.refuse(Refused(403, "unmaskable_result", str(exc)))
            return refusal_message(answer)
        return None

    # -- the database's answers --------------------------------------------------------

    async def _from_server(self) -> None:
        encodings.reading_answers()
        try:
            await self._server_loop()
        except (_Fatal, pg.ProtocolViolation) as exc:
            log.error("session %s: %s", self.context["policy"]["session_id"], exc)
            self._client_error(pg.error("08P01", f"tollgate: the database's answer cannot "
                                        f"be relayed: {exc}", severity="FATAL"))

    async def _server_loop(self) -> None:
        framer = _Answers(pg.BACKEND_KINDS, self._max)
        reader, client = self._upstream.reader, self._writer
        while True:
            try:
                data = await reader.read(_READ_SIZE)
            except ConnectionError:
                data = b""
            if not data:
                self._ended_by_database(framer.last_word)
                return
            out: list[bytes] = []
            rows: list[list[bytes | None]] = []
            for message in framer.feed(data):
                head = self._head()
                if head is not None and head.run is not None and head.run.unsettles:
                    self.wire.answering(head.run.change, message.kind == b"C")
                if head is not None and head.probe is not None:
                    out += self._probed(head.probe, message)
                    continue
                # A measured write's answers wait for its verdict.
                sink = out if head is None or head.buffer is None else head.buffer
                if message.kind == b"D" and not self._swallowing:
                    rows.append(pg.data_row(message.body))
                    continue
                if rows:
                    sink += self._rows(rows)
                    rows = []
                sink += self._server_message(message)
            if rows:
                head = self._head()
                (out if head is None or head.buffer is None else head.buffer).extend(
                    self._rows(rows))
            if not self._pending:
                self._drained.set()
            self._progress.set()
            if out:
                client.write(b"".join(out))
                await client.drain()

    def _probed(self, probe: Probe, message: pg.Message) -> list[bytes]:
        """An answer to the front's own questions: the probe's; a notification or a
        setting's new value is the client's, whenever it comes."""
        if message.kind in (b"A", b"S"):
            return [self._asynchronous(message)]
        if probe.take(message):
            done = self._pending.popleft()
            if message.kind == b"Z" and probe.partial:
                # Its part of the batch was skipped: the batch's end ends what follows.
                return [self._ready(message)]
            if message.kind == b"Z":
                self._status = pg.ready_for_query(message.body)
                self._locks_end()
                self._batch_status = None
                self.wire.ready(done.cycle, self._status)
        return []

    def _head(self) -> Pending | None:
        return self._pending[0] if self._pending else None

    def _rows(self, rows: list[list[bytes | None]]) -> list[bytes]:
        """DataRows of the result in progress, masked as its exchange's decision says."""
        head = self._head()
        run = head.run if head is not None else None
        if run is None:
            return [pg.encode_data_row(r) for r in rows]
        if head is not None and head.buffer is not None and head.refusal is not None:
            return []  # a measured write's rows, refused: it is rolled back
        run.rows += len(rows)
        if run.masker is not None and run.masker.masks:
            try:
                with ledger.stage(run.exchange.front, "mask"):
                    rows, counts = run.masker.rows(rows)
            except ResultRefused as exc:  # a binary record's field of a type not known
                answer = run.exchange.refuse(Refused(403, "unmaskable_result", str(exc)))
                return self._refuse_midway(head, refusal_message(answer))
            self._masked(run, counts)
        if run.columns is not None and len(run.sample) < run.exchange.record_limit:
            run.sample += b"\n" if run.sample else b""
            run.sample += record_sample(run.columns, rows, run.exchange.record_limit)
        return [pg.encode_data_row(r) for r in rows]

    def _server_message(self, message: pg.Message) -> list[bytes]:
        kind, head = message.kind, self._head()
        if kind in (b"N", b"A", b"S"):
            return [self._asynchronous(message)]
        if kind == b"Z":
            return [self._ready(message)]
        if self._swallowing:
            return []
        if kind == b"E":
            return self._error(message, head)
        if head is None:
            raise _Fatal("the database answered a message nobody sent")
        if kind in (b"1", b"2", b"3", b"n"):
            return self._done(message, head)
        if kind == b"T":
            return self._row_description(message, head)
        if kind in (b"C", b"I", b"s"):
            return self._complete(message, head)
        return self._copy(message, head)

    def _done(self, message: pg.Message, head: Pending) -> list[bytes]:
        """ParseComplete, BindComplete, CloseComplete, NoData: their message's answer."""
        self._pending.popleft()
        if message.kind == b"1" and head.run is not None:
            self._end(head, None, "prepared")
        return [] if head.own else [message.raw()]

    def _copy(self, message: pg.Message, head: Pending) -> list[bytes]:
        """COPY's answers (and a ParameterDescription, passed as it is)."""
        kind = message.kind
        if kind == b"H":
            return self._copy_out_begins(message, head)
        if kind == b"d" and self._copy_out is not None:
            return self._copy_data(message, head)
        if kind == b"c":
            self._copy_out = None
        if kind == b"W":
            raise _Fatal("COPY BOTH (replication) is not relayed")
        return [message.raw()]

    def _row_description(self, message: pg.Message, head: Pending) -> list[bytes]:
        columns = pg.row_description(message.body)
        if head.kind == b"D":
            self._pending.popleft()
            if head.statement is not None:
                head.statement.columns = columns
            if head.portal is not None:
                head.portal.columns = columns
            if head.own:
                # The Execute it was asked for (a measured one's readings may be between).
                following = next((p for p in self._pending if p.probe is None), None)
                run = following.run if following is not None else None
                if run is not None:
                    refused = self._result_masker(run, columns)
                    if refused is not None:
                        return self._refuse_midway(following, refused)
                return []
            return [message.raw()]
        run = head.run
        if run is not None:  # a simple Query's next result
            refused = self._result_masker(run, columns)
            if refused is not None:
                return self._refuse_midway(head, refused)
        return [message.raw()]

    def _refuse_midway(self, head: Pending | None, refusal: bytes) -> list[bytes]:
        """A result tollgate cannot mask, its statement already running: the client gets
        the refusal, and nothing more of the database's answers until its Ready. A
        measured write's answers wait for its verdict: the refusal is its verdict."""
        if head is not None and head.buffer is not None:
            head.refusal = refusal
            if head.run is not None:
                head.run.error = "refused"
            return []
        self._swallowing = True
        if head is not None and head.run is not None:
            head.run.error = "refused"
        return [refusal]

    def _complete(self, message: pg.Message, head: Pending) -> list[bytes]:
        run = head.run
        if run is not None:
            run.commands.append(pg.command_complete(message.body) if message.kind == b"C"
                                else "EMPTY" if message.kind == b"I" else "SUSPENDED")
            if head.kind == b"E":
                self._pending.popleft()
                if head.buffer is None:  # a measured write's ends with its verdict
                    self._end(head, None, run.commands[-1])
        elif head.kind == b"E":
            self._pending.popleft()
        self._copy_out = None
        return [message.raw()]

    def _error(self, message: pg.Message, head: Pending | None) -> list[bytes]:
        fields = self._mask_fields(pg.fields(message.body), head)
        out = pg.encode_fields(b"E", fields)
        if head is not None and head.refusal is not None:
            out = head.refusal  # the stand-in's error: tollgate's refusal in its place
        problem = "refused" if head is not None and head.refusal is not None else (
            f"refused by the database (42501): {fields.get('M', '')}"
            if fields.get("C") == "42501" else
            f"error {fields.get('C', '')}: {fields.get('M', '')}")
        if head is not None and head.run is not None and head.refusal is None and fields.get("C"):
            # The database conventions' error.type: the SQLSTATE the database answered.
            head.run.exchange.outcome["error.type"] = fields["C"]
        if head is not None and head.kind not in _CYCLE_ENDS:
            # The extended protocol: the database skips to the Sync; so do the exchanges.
            self._batch_failed = True
            self._pending.popleft()
            self._forget(head)
            self._end(head, problem)
        elif head is not None:
            self._forget(head)  # a Query's cursors, should it have declared any
            if head.run is not None:
                head.run.error = problem
        self._copy_out = None
        return [out]

    def _ready(self, message: pg.Message) -> bytes:
        """ReadyForQuery: the cycle in progress ends, every exchange in it with it."""
        self._status = pg.ready_for_query(message.body)
        self._locks_end()
        self._batch_failed = False
        self._swallowing = False
        self._copy_out = None
        while self._pending:
            pending = self._pending.popleft()
            if pending.cycle:
                self.wire.ready(pending.cycle, self._status)
            if pending.probe is not None:
                # The front's own messages, after messages of the batch the database
                # skipped: a part of it skipped too; its end, the front's own Sync.
                pending.probe.take(message)
                if pending.probe.partial:
                    continue
                self._batch_status = None
                return b""
            if pending.measured is not None:
                # The verdict ends its exchange, and gives the client its Ready.
                pending.measured.set_result(None)
                return b""
            if pending.kind in _CYCLE_ENDS:
                if self._status == b"I":
                    # A failed transaction's portals last until its ROLLBACK: the
                    # database answers their use with its own error (25P02).
                    self._end_portals(pending.cycle)
                self._end(pending, None, "; ".join(pending.run.commands) if pending.run
                          else None)
                self._bound_after()
                break
            self._forget(pending)
            self._end(pending, "not run: an earlier message of its batch failed")
        return message.raw()

    async def _bound_before(self) -> None:
        """A statement that may lock rows, allowed: inside an open transaction, the
        front's SET LOCAL bounds how long the session may idle in it (locks.py) before
        the statement goes; outside one, or in a pipeline, its transaction is bounded
        once the statement leaves it open (_bound_after)."""
        self._locked = True
        if self._bounded or self._status != b"T" or await self._at_rest() is not None:
            return
        self._bounded = True
        await self._ask([pg.encode_query(locks.setting(self._lock_idle_ms or 0))], 1)

    def _bound_after(self) -> None:
        """The client's cycle ended in a transaction a statement of which may have locked
        rows and that is not bounded yet (it began with them: `BEGIN; SELECT ... FOR
        UPDATE`): the front's SET LOCAL now, answered to it alone, after whatever the
        client sent meanwhile; it re-arms the server's idle timer."""
        if self._locked and not self._bounded and self._status == b"T" \
                and not self._cancels.sending:  # else at the next cycle's end
            self._bounded = True
            self._pending.append(Pending(b"Q", probe=Probe(1)))
            self._upstream.writer.write(pg.encode_query(locks.setting(
                self._lock_idle_ms or 0)))

    def _locks_end(self) -> None:
        """Its transaction over, what the session kept for it goes with it: its locks and
        bound, and what the catalog said under a search_path it may have set locally."""
        if self._status == b"I":
            self._locked = self._bounded = False
            if self._path_set:  # search_path may be back to what it was
                self._remembered.forget()
                self._path_set = False

    def _asynchronous(self, message: pg.Message) -> bytes:
        """A notice, a notification or a parameter's new value: they come at any time;
        notices and notifications carry text from the database, masked."""
        if message.kind == b"N":
            return self._masked_fields(b"N", pg.fields(message.body), self._head())
        if message.kind == b"A":
            note = pg.notification(message.body)
            masked, _ = self._masker.mask_json(note.payload, _record_mask(self._head()))
            return pg.encode_notification(note._replace(payload=str(masked)))
        name, value = pg.parameter_status(message.body)
        problem = self.wire.report(value) if name.lower() == "client_encoding" else None
        if problem is not None:
            raise _Fatal(problem)
        return message.raw()

    def _masked_fields(self, kind: bytes, fields: dict[str, str],
                       head: Pending | None) -> bytes:
        return pg.encode_fields(kind, self._mask_fields(fields, head))

    def _mask_fields(self, fields: dict[str, str], head: Pending | None) -> dict[str, str]:
        """An error's or notice's fields with their texts masked: a unique violation's
        detail quotes the row (`Key (ssn)=(078-05-1120) already exists`), a cast's
        message the value (`ssn::int`), which may be derived: kept only as the
        statement's text holds it. What the record says of an error comes from these,
        never from the database's own: the record is never less masked than the client's
        answer."""
        run = head.run if head is not None else None
        if run is not None:
            request = run.exchange.request
            fields = error_fields(fields, str(request["body"]) if request else "",
                                  run.exchange.mask)
        texts = {k: v for k, v in fields.items() if k in "MDHWqp"}
        masked, _ = self._masker.mask_json(texts, _record_mask(head))
        return {**fields, **masked}

    def _copy_out_begins(self, message: pg.Message, head: Pending) -> list[bytes]:
        """COPY ... TO STDOUT: its rows come as CopyData, masked by the columns its
        statement names (copy_rows.py); one that cannot be read so is refused."""
        overall, formats = pg.copy_response(message.body)
        run = head.run
        mask = run.exchange.mask if run is not None else None
        if run is None or mask is None:
            return [message.raw()]
        exchange = run.exchange
        try:
            statement = str(exchange.request["body"]) if exchange.request else ""
            self._copy_out = rows_of(self._masker, mask, statement, exchange.meaning,
                                     overall == 1, len(formats))
        except ResultRefused as exc:
            answer = exchange.refuse(Refused(403, "unmaskable_result", str(exc)))
            return self._refuse_midway(head, refusal_message(answer))
        return [message.raw()]

    def _copy_data(self, message: pg.Message, head: Pending) -> list[bytes]:
        assert self._copy_out is not None
        run = head.run
        try:
            masked, counts = self._copy_out.line(message.body)
        except ResultRefused as exc:  # a line not in its encoding
            if run is None:
                raise _Fatal(str(exc)) from None
            answer = run.exchange.refuse(Refused(403, "unmaskable_result", str(exc)))
            return self._refuse_midway(head, refusal_message(answer))
        if run is not None:
            run.rows += 1
            self._masked(run, counts)
        return [pg.encode(b"d", masked)]

    # -- ends ---------------------------------------------------------------------------

    def _masked(self, run: Run, counts: Counter[str]) -> None:
        if counts:
            run.exchange.record_masking(counts)

    def _end(self, pending: Pending, problem: str | None, command: str | None = None) -> None:
        """An exchange's last answer went by (or never will): its record."""
        run = pending.run
        if run is None:
            return
        pending.run = None
        exchange = run.exchange
        outcome = exchange.outcome
        error = problem or run.error
        if error is not None:
            outcome["tollgate.outcome"] = error
        elif command:
            outcome["tollgate.outcome"] = command
        outcome["tollgate.postgres.rows"] = run.rows
        if run.commands:
            outcome["tollgate.postgres.commands"] = tuple(run.commands)
        run.act.answered(
            {"command": "; ".join(run.commands), "rows": str(run.rows)}, bytes(run.sample))

    def _client_error(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            self._writer.write(message)

    def _ended_by_database(self, last_word: dict[str, str] | None) -> None:
        """The database closed the session. The FATAL error it said why in (a backend
        ended by pg_terminate_backend or a shutdown: 57P01; an idle transaction's
        timeout: 25P03) goes to the client, masked as its errors are, whatever answer it
        came in place of: a client names the error by it (AdminShutdown), and a later
        error of tollgate's would replace it. Only a close without a word gets tollgate's
        own. The exchanges in progress end with it, and a record of its own (END) says
        how the session ended."""
        head = self._head()
        code = None
        if last_word is None:
            self._ended = "the database closed the connection"
            message = pg.error("08006", f"tollgate: {self._ended}", severity="FATAL")
        else:
            message = self._masked_fields(b"E", last_word, head)
            said = pg.fields(message[5:])
            code = said.get("C", "")
            self._ended = (f"the database ended the session: "
                           f"{said.get('V') or said.get('S')} {code}: {said.get('M', '')}")
            if head is not None and head.run is not None:
                head.run.exchange.outcome["error.type"] = code
        self._client_error(message)
        act = self._act("END", None)
        act.admit(required=False)
        act.exchange.outcome["tollgate.outcome"] = self._ended
        if code is not None:
            act.exchange.outcome["error.type"] = code
        act.end()


class _Fatal(Exception):
    """The session cannot go on (the message goes to the client as a FATAL error)."""


class _Answers(pg.Framer):
    """The database's messages as they complete, less the FATAL error it ends a session
    with: kept as its last word (`last_word`), relayed when it closes, whatever answer
    it came in place of (the front's own questions', a measured write's held ones)."""

    last_word: dict[str, str] | None = None

    def feed(self, data: bytes) -> list[pg.Message]:
        out = []
        for message in super().feed(data):
            fields = pg.fields(message.body) if message.kind == b"E" else {}
            # V: the severity as PostgreSQL names it (lc_messages translates S).
            if fields.get("V", fields.get("S")) in ("FATAL", "PANIC"):
                self.last_word = self.last_word or fields
            else:
                out.append(message)
        return out


class _NameRefused(Exception):
    """A statement naming a cursor the front cannot run it with: its SQLSTATE."""

    def __init__(self, code: str, error: str, message: str) -> None:
        super().__init__(message)
        self.code, self.error, self.message = code, error, message


class _Refused(Exception):
    """A measured write refused by a refusal already recorded (its rows unmaskable)."""

    def __init__(self, refusal: bytes) -> None:
        super().__init__("refused")
        self.refusal = refusal


# A measured write run (its effect and pending answers; None: it failed), and its end
# (kept or undone).
def _difference(run: Run, before: list[list[bytes | None]],
                after: list[list[bytes | None]]) -> Effect:
    """A measured write's effect between its readings, the tables its plan writes named
    as written."""
    meaning = run.exchange.meaning if isinstance(run.exchange.meaning, dict) else {}
    planned = sorted({w["table"] for s in meaning.get("statements", ())
                      for w in (s.get("estimate") or {}).get("writes", ())})
    return effect.difference(effect.reading(before), effect.reading(after), planned)


_Measure = Callable[[], Awaitable[tuple[Effect, Pending] | None]]
_Settle = Callable[[Run, Pending, bool], Awaitable[None]]


def _unrun(run: Run) -> None:
    """A run undone (rolled back): what it answered is not what the client is told."""
    run.rows, run.commands, run.error = 0, [], None
    run.sample.clear()


def _own_statements(*texts: str) -> list[bytes]:
    """Statements of the front's inside a client's batch, by the extended protocol under
    a name of its own (the client's unnamed statement and portal stay as they were),
    each closed once it ran, for the client lists what its session holds by name
    (pg_prepared_statements, pg_cursors); what an error left under that name (it skips
    to the Sync, past the closes) closed first. Each message is answered by one
    completion (`Probe.messages`)."""
    out = [pg.encode_close(b"P", _OWN), pg.encode_close(b"S", _OWN)]
    for text in texts:
        if not text.startswith(effect.MARK):
            text = effect.MARK + text
        out += (pg.encode_parse(_OWN, text), pg.encode_bind(pg.Bind(_OWN, _OWN, (), (), ())),
                pg.encode_execute(_OWN, 0),
                pg.encode_close(b"P", _OWN), pg.encode_close(b"S", _OWN))
    return out


def _failed(answers: list[pg.Message]) -> bool:
    """Whether the front's own messages met an error (the rest skipped to the Sync)."""
    return any(m.kind == b"E" for m in answers)


def _control(meaning: Any, text: str) -> bytes | None:
    """A prepared transaction statement's status once it ran (effect.transaction_status);
    None for any other statement (read from the interpreter's kinds: no parse then)."""
    statements = meaning.get("statements", ()) if isinstance(meaning, dict) else ()
    if not any(isinstance(s, dict) and s.get("kind") == "transaction" for s in statements):
        return None
    return effect.transaction_status(text)


def _with_formats(columns: list[pg.Column], formats: tuple[int, ...]) -> list[pg.Column]:
    """A statement's columns in the formats a Bind asked for (none: text; one: all)."""
    if not formats:
        return [c._replace(format=0) for c in columns]
    if len(formats) == 1:
        return [c._replace(format=formats[0]) for c in columns]
    return [c._replace(format=f) for c, f in zip(columns, formats, strict=False)]


def _unknown(what: str, name: str) -> str:
    """Why a name the client did not prepare or bind through tollgate is refused."""
    named = f'{what} "{name}"' if name else f"the unnamed {what}"
    done = "prepared" if what == "statement" else "bound (nor declared)"
    return (f"{named} was not {done} through tollgate in this session (or no longer "
            "exists): tollgate runs only statements it decided")


def _owned(*names: str) -> str:
    """Why a name of the gateway's own is refused to the client."""
    return (f"{', '.join(names)} names a prepared statement or portal of tollgate's own "
            f"(names beginning {namespace.PREFIX!r} are the gateway's): what the "
            "protocol prepared runs only through Bind and Execute")


def _prepared(name: str, upstream: str, text: str, run: Run) -> Prepared:
    """A statement as its run decided it: what its executions carry."""
    exchange = run.exchange
    decided = exchange.evidence.decisions[-1]
    return Prepared(name, upstream, text, exchange.meaning, exchange.decision,
                    decided.revision, decided.duration_us, run.use,
                    approval=exchange.approval, measure=run.measure,
                    control=_control(exchange.meaning, text), change=run.change)


def _record_mask(head: Pending | None) -> Any:
    """What masks text the database sends outside rows: the exchange's mask less its
    derived columns (they name a result's columns, not an error's or a notice's fields),
    or every detector when no exchange is in progress (a notice between statements)."""
    run = head.run if head is not None else None
    mask = run.exchange.mask if run is not None else None
    if mask is None:
        return RECORD_MASK
    return replace(mask, derived=frozenset()) if mask.derived else mask
