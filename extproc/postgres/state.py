"""What one PostgreSQL session knows of its protocol's state: the exchanges waiting for
their answers, the transaction's status, the extended-protocol batch in progress, the
names it keeps. One explicit object (`State`) that the session's parts share: the client
side (client.py) adds to it as messages go upstream, the answers (answers.py) take from
it as the database's come back; neither reads a socket.

Each exchange waits in `pending`, in the order its messages went upstream, for the
answers that end it: ParseComplete, CommandComplete, ReadyForQuery ... An error in the
extended protocol makes the database skip to the next Sync; the exchanges it skipped end
at that Sync's ReadyForQuery, as not run. The front's own questions (estimate.py,
reach.py, a measured write's readings: questions.py, measured.py) wait there too, as a
`Probe`, whose answers never reach the client.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from extproc.codecs.refusal import Refused
from extproc.exchange.cancels import CancelGate
from extproc.exchange.effect import Remembered
from extproc.exchange.statement import Statement
from extproc.masking.policy_mask import spec_of
from extproc.masking.record_mask import RECORD_MASK
from extproc.postgres import encodings, namespace
from extproc.postgres import messages as pg
from extproc.postgres.names import Names, Portal, Prepared, Query
from extproc.postgres.refusals import refusal_message
from extproc.postgres.results import ResultMasker, ResultRefused

if TYPE_CHECKING:
    from extproc.exchange.act import Act, Opener
    from extproc.exchange.state import Exchange
    from extproc.postgres.copy_rows import CopyRows

# The ReadyForQuery status byte, as input.postgres.transaction_status names it.
TRANSACTION = {b"I": "idle", b"T": "in_transaction", b"E": "failed"}
# Messages whose answers end at a ReadyForQuery (a simple Query, a FunctionCall) and
# the extended protocol's Sync: what an error's skip ends at.
CYCLE_ENDS = frozenset({b"Q", b"F", b"S"})
# The answer that completes each of the front's own extended-protocol messages: Parse,
# Bind, Close, and an Execute run to its end.
COMPLETIONS = frozenset({b"1", b"2", b"3", b"C"})


@dataclass(slots=True)
class Run(Statement):
    """One exchange on the wire: its statement's answers as they come back (the steps
    every database front shares are exchange/statement.py's)."""

    masker: ResultMasker | None = None
    columns: list[pg.Column] | None = None
    commands: list[str] = field(default_factory=list)
    use: namespace.Use = field(default_factory=namespace.Use)
    # Its text as it goes upstream, where it differs from the client's (Names.renamed);
    # the statement it prepares, as SQL's PREPARE alone in its text (Names.query).
    upstream_text: str | None = None
    query: Query | None = None
    # The statements whose rows it returns (of the cursors it fetches from, of the
    # protocol's statements SQL's EXECUTE runs): their masks apply to its rows too.
    sources: tuple[Prepared, ...] = ()
    # What it may do to the session's client_encoding (encodings.Wire follows it), and
    # whether it went upstream so (its answers are then read as the Wire says).
    change: encodings.Change = encodings.NO_CHANGE
    unsettles: bool = False
    # A COPY of a table's: its columns' types, as the catalog gave them (copy_rows.py).
    copy_types: dict[str, tuple[int, int, bool]] | None = None


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
    # The cursors its statement declared, the statement SQL's PREPARE made: gone again
    # if it fails.
    declared: tuple[Portal, ...] = ()
    query: Query | None = None


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
            self.messages -= message.kind in COMPLETIONS
            done = self.messages == 0 or message.kind in (b"E", b"Z")
            if message.kind == b"E" and self.then is not None:
                self.then.run = None  # skipped, its exchange the asker's to end
        else:
            self.remaining -= message.kind == b"Z"
            done = self.remaining == 0
        if done and not self.done.done():
            self.done.set_result(self.answers)
        return done


class State:
    """One session's protocol state, shared by its parts; no I/O of its own."""

    def __init__(self, opener: Opener, context: dict[str, Any], wire: encodings.Wire,
                 status: bytes) -> None:
        # The masker of what the session relays beside its statements' rows (a
        # notification, a server's error): the process's, as every act's.
        self.opener, self.masker = opener, opener.masker
        self.context = context
        # The session's encoding, as the database's changes it (front.py speaks it).
        self.wire = wire
        self.names = Names()
        # The cycle ends (Sync, Query, FunctionCall) sent so far.
        self.cycles = 0
        self.pending: deque[Pending] = deque()
        # The transaction's status, as the last ReadyForQuery said.
        self.status = status
        # After tollgate refused a result it had begun to relay: the database's answers
        # up to its ReadyForQuery go nowhere (the client has its error).
        self.swallowing = False
        # Inside COPY ... TO STDOUT: the database's CopyData rows, masked.
        self.copy_out: CopyRows | None = None
        # The kinds of message of the extended-protocol batch the client has not ended
        # with a Sync yet, and whether one of them failed (the database then skips to
        # the Sync).
        self.batch: set[bytes] = set()
        self.batch_failed = False
        # A batch's message went upstream with no Flush or Sync after it: the database
        # answers nothing of it until one comes (it buffers its answers).
        self.unflushed = False
        # A measured Execute in the client's batch (effect.py): `opened`, the front
        # opened the batch's transaction (it ends at the client's Sync); `skipping`,
        # the client's batch failed and the front's own Sync ended the database's skip,
        # so the front skips the client's messages to its Sync; `batch_status`, the
        # status the batch's transaction statements left (None: as `status` says).
        self.opened = False
        self.skipping = False
        self.batch_status: bytes | None = None
        # A measured write kept in the front's transaction leaves its savepoint to the
        # transaction's end (or the next measured write's readings): one round trip less.
        self.savepoint = False
        # What the catalog said of the tables and functions statements named (reach.py).
        self.remembered: Remembered[str] = Remembered()
        # A statement changed search_path (forgotten again when the transaction ends).
        self.path_set = False
        # An agent's bound on idling in a transaction that locked rows (locks.py): in ms
        # (None: none); whether a statement of this transaction may have locked rows, and
        # whether the bound is set in it.
        self.lock_idle_ms: int | None = context.get("lock_idle_ms")
        self.locked = self.bounded = False
        # Nothing but settings, SHOWs and catalog reads sent yet: what a client library
        # sends as a session opens (drivers.py).
        self.opening = True
        # How the database ended the session, if it did: what the exchanges still in
        # progress end with.
        self.ended: str | None = None
        # The client's cancels, never landing on the gateway's own statements.
        self.cancels = CancelGate()

    def head(self) -> Pending | None:
        return self.pending[0] if self.pending else None

    def cycle_end(self) -> int:
        """A cycle end (Sync, Query, FunctionCall) goes upstream: its serial."""
        self.cycles += 1
        self.wire.ending(self.cycles)
        return self.cycles

    def act(self, method: str, statement_name: str | None) -> Act:
        """An exchange of the session's, opened as the client's `method`."""
        return self.opener(method, {**self.context["policy"], "message": method.lower(),
                                    "statement_name": statement_name,
                                    "transaction_status": TRANSACTION.get(self.status,
                                                                          "idle")})

    def request(self, exchange: Exchange, method: str, text: str) -> None:
        """The statement as the exchange's request (input.request, and the record's):
        the message, the database as its path, the session's parameters, the SQL."""
        exchange.request = exchange.evidence.request = {
            "method": method, "path": f"/{self.context['database']}", "query": {},
            "headers": dict(self.context["parameters"]), "body": text}
        exchange.evidence.request_body = exchange.kept(text.encode())

    def result_masker(self, run: Run, columns: list[pg.Column]) -> bytes | None:
        """The masker of a result's rows; a refusal when they cannot be masked."""
        run.columns = columns
        mask = run.exchange.mask
        if run.sources:  # a cursor's rows: as its own statement asked, too
            mask = spec_of([*(d.mask for d in run.exchange.decisions),
                            *(s.decision.mask for s in run.sources)])
        try:
            run.masker = ResultMasker(self.masker, mask, columns)
        except ResultRefused as exc:
            answer = run.exchange.refuse(Refused(403, "unmaskable_result", str(exc)))
            return refusal_message(answer)
        return None

    def locks_end(self) -> None:
        """Its transaction over, what the session kept for it goes with it: its locks and
        bound, and what the catalog said under a search_path it may have set locally."""
        if self.status == b"I":
            self.locked = self.bounded = False
            if self.path_set:  # search_path may be back to what it was
                self.remembered.forget()
                self.path_set = False


def end(pending: Pending, problem: str | None, command: str | None = None) -> None:
    """An exchange's last answer went by (or never will): its record."""
    run = pending.run
    if run is None:
        return
    pending.run = None
    if run.commands:
        run.exchange.outcome["tollgate.postgres.commands"] = tuple(run.commands)
    run.answered("postgres", problem or run.error or command or None,
                 ("command", run.commands))


def unrun(run: Run) -> None:
    """A run undone (rolled back): what it answered is not what the client is told."""
    run.rows, run.commands, run.error = 0, [], None
    run.sample.clear()



def record_mask(head: Pending | None) -> Any:
    """What masks text the database sends outside rows: the exchange's mask less its
    derived columns (they name a result's columns, not an error's or a notice's fields),
    or every detector when no exchange is in progress (a notice between statements)."""
    run = head.run if head is not None else None
    mask = run.exchange.mask if run is not None else None
    if mask is None:
        return RECORD_MASK
    return replace(mask, derived=frozenset()) if mask.derived else mask
