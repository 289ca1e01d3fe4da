"""One decided act: what every front drives, whatever its wire.

    admit ─► read ─► decide ─► [hold] ─► forward ─► decide the answer ─► mask ─► end

A front opens an `Act` for each thing a client asks (an HTTP request, a statement, a
command line, a file operation, a login), gives it the request as its protocol reads
it, and answers in its own protocol's shape; the act does the rest in one order for
every front: a place in the record's queue before anything happens, the target and
identity checked, the request read by the target's interpreter, the policy asked, a
human waited for, the target's credential put in, the answer decided and masked, and
one record at the end, whatever happened. A front never reaches the policy engine,
the approvals, the recorder or the masker but through its act, so a rule added here
(a reason shown, a hold released, an effect measured) holds on every door at once.

`Opener` opens the acts of one session (a database login, an SSH connection, a
Kubernetes stream): the target, identity and session id all its acts share.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Status, StatusCode

from extproc import ledger
from extproc.approvals.hold import INTERRUPTED
from extproc.codecs.refusal import OverLimit, Refusal, Unavailable
from extproc.exchange.recorded import Admission
from extproc.recording import RecordingQuota, RecordingUnavailable

if TYPE_CHECKING:
    from types import TracebackType

    from extproc.config import Target
    from extproc.credentials import Injection
    from extproc.exchange.live import LiveSession
    from extproc.exchange.pipeline import Pipeline
    from extproc.exchange.state import Answer, Exchange
    from extproc.identity import Who
    from extproc.masking import Masker, MaskSpec
    from extproc.policy import Decision

log = logging.getLogger("tollgate.exchange")

# The method of a database session's login act.
LOGIN = "CONNECT"
# What a front cancels a hold's task with when it ends the hold on purpose, its client
# told that the approval stays pending (a MySQL KILL QUERY): that approval is kept for
# the client's retry. Any other end of a hold before its decision withdraws it.
HOLD_INTERRUPTED = INTERRUPTED


class Act:
    """One exchange as its front drives it: the steps, in order, and its one end.

    `exchange` is the act's state (identity, request, meaning, decisions, evidence),
    which the front reads and fills with what its wire says; `started` is when the
    act began (perf_counter), what the record's upstream time counts from."""

    __slots__ = ("_admission", "_ended", "_pipeline", "exchange", "started")

    def __init__(self, pipeline: Pipeline, exchange: Exchange) -> None:
        self._pipeline, self.exchange = pipeline, exchange
        self._admission = Admission(pipeline.recorder, exchange.who)
        self.started = time.perf_counter()
        self._ended = False

    @property
    def trace_id(self) -> str:
        return self.exchange.trace_id

    @property
    def ended(self) -> bool:
        """Whether the act has ended (its record handed over)."""
        return self._ended

    @property
    def masker(self) -> Masker:
        """The process's masker, for the masking a front's wire needs (a stream's
        chunks, a result's rows): the decision's `exchange.mask` says what it masks."""
        return self._pipeline.masker

    # -- the request -------------------------------------------------------------------

    def admit(self, detail: str | None = None, *, required: bool = True) -> Target | None:
        """A place in the record's queue: what cannot be recorded does not happen
        (Refusal: 429 when the identity's share of the queue is spent, 503 when the
        record cannot take it), unless it is not `required` (a refusal that goes out
        anyway, a login let in whose every request is refused until the record takes
        them again): then it goes unrecorded. With `detail`, `check` too."""
        try:
            self._admission()
        except (RecordingQuota, RecordingUnavailable) as exc:
            if required:
                raise _unrecorded(exc, self.trace_id) from None
        return None if detail is None else self.check(detail)

    def check(self, detail: str) -> Target:
        """The act's target, when it has one and its identity may use it; else
        Refusal (`detail`: how the front looked for the target)."""
        return self._pipeline.admit(self.exchange, detail)

    def identified(self) -> None:
        """Refusal (401) unless the act's claims name an identity: for an act with no
        target to `check` against (a MySQL login naming no database)."""
        self._pipeline.identified(self.exchange)

    async def read(self, size: int) -> None:
        """What the request means, by the target's interpreter (`size`: the bytes it
        reads, which decides whether it is read on a worker thread)."""
        await self._pipeline.interpret(self.exchange, size)

    async def decide(self, phase: str = "request") -> Decision:
        """The policy's decision for the request, or for the answer (`phase`)."""
        return await self._pipeline.decide(self.exchange, phase)

    def hold_seconds(self, decision: Decision) -> int:
        """The longest `decision`'s hold waits (Pipeline.hold_seconds)."""
        return self._pipeline.hold_seconds(decision)

    def hold(self, decision: Decision) -> AsyncIterator[int]:
        """Wait for a human (Pipeline.hold): yields how long, for the front to tell its
        client; a refusal is raised as Refusal."""
        return self._pipeline.hold(self.exchange, decision)

    async def forward(self, ends_first: bool = False) -> Injection:
        """The allowed request goes on: a strict target's record is durable first, any
        other's journaled unless the act `ends_first` (before the request leaves); the
        target's credential to put in."""
        return await self._pipeline.forward(self.exchange, ends_first)

    @property
    def notes_received(self) -> bool:
        """Whether `received` notes anything (flow on): else there is nothing to read for."""
        return self._pipeline.notes_received

    @property
    def reads_words(self) -> bool:
        """Whether what the agent gets is read for words to the model: an untrusted
        target's answers, the flow on (interpret/instructions.py)."""
        target = self.exchange.target
        return target is not None and bool(target.untrusted) and self.notes_received

    async def received(self, cause: str, kinds: tuple[str, ...] = ()) -> None:
        """The answer is untrusted content (`cause`; `kinds` of words to the model found
        in it): noted where every process's decisions read it, before it reaches the
        agent; a store that cannot take the note refuses the answer (503)."""
        await self._pipeline.received(self.exchange, cause, kinds)

    @property
    def fingerprinting(self) -> bool:
        """Whether what the agent gets is read for the flow's fingerprints: protected
        values can pass unmasked under the exchange's mask."""
        return bool(self._pipeline.fingerprinting(self.exchange))

    async def delivering(self, value: Any) -> None:
        """The answer (text or JSON, as the agent gets it) is about to reach the agent:
        the protected values it carries unmasked are kept as fingerprints first
        (activity/flow.py); a store that cannot keep them refuses the answer (503)."""
        kinds = self._pipeline.fingerprinting(self.exchange)
        if kinds:
            with ledger.stage(self.exchange.front, "flow"):
                found = self._pipeline.fingerprints(value, kinds)
            await self._pipeline.kept(self.exchange, found)

    def responded(self, status: int, headers: dict[str, str], content_type: str,
                  upstream_ms: float) -> None:
        """The upstream's response headers (as the policy sees them) arrived."""
        self._pipeline.responded(self.exchange, status, headers, content_type, upstream_ms)

    def credential(self) -> Injection:
        """The target's credential, for a front that reaches the upstream itself (a
        database login, a Kubernetes stream), never the client's."""
        assert self.exchange.target is not None
        return self._pipeline.credential(self.exchange.target)

    async def judge(self, waiting: Callable[[int], None] | None = None) -> Answer | None:
        """decide ─► hold ─► forward, as most fronts take them: None when the request
        goes on, else the refusal to answer (held: `waiting` is told how long, each
        time the wait is asked). A hold's refusal is raised as Refusal."""
        exchange = self.exchange
        decision = await self.decide()
        if decision.action == "hold":
            async for seconds in self.hold(decision):
                if waiting is not None:
                    waiting(seconds)
        if exchange.decision.action != "allow":
            return exchange.refuse_decided(exchange.decision)
        await self.forward()
        return None

    # -- the answer --------------------------------------------------------------------

    def decides_responses(self) -> bool:
        """Whether the policy decides this exchange's answer (else its request's
        decision stands, and the answer need not be read for it)."""
        return self._pipeline.decides_responses(self.exchange)

    async def probe(self, phase: str, meaning: Any) -> Decision:
        """The policy's decision on `meaning` in this act's place, not recorded as one
        of its own (a tool a listing would show, a request the server sends)."""
        return await self._pipeline.probe(self.exchange, phase, meaning)

    def mask_json(self, value: Any, spec: MaskSpec | None = None,
                  body: str | None = "response") -> Any:
        """`value` masked as `spec` asks (None: as the decision asks), what was masked
        counted in the span and record as `body`'s (None: not counted: a reason's
        text, masked as the record masks)."""
        return self._masked(self.masker.mask_json, value, spec, body)

    def mask_text(self, text: str, spec: MaskSpec | None = None,
                  body: str | None = "response") -> str:
        """`text` masked, as `mask_json` masks a value."""
        return str(self._masked(self.masker.mask_text, text, spec, body))

    def _masked(self, mask: Callable[[Any, MaskSpec], tuple[Any, Counter[str]]], value: Any,
                spec: MaskSpec | None, body: str | None) -> Any:
        spec = self.exchange.mask if spec is None else spec
        if spec is None:
            return value
        with ledger.stage(self.exchange.front, "mask"):
            masked, counts = mask(value, spec)
        self.counted(counts, body)
        return masked

    def counted(self, counts: Counter[str], body: str | None = "response") -> None:
        """What a front's own masking masked, in the span and record."""
        if body is not None:
            self.exchange.record_masking(counts, body)

    # -- the end -----------------------------------------------------------------------

    def refusal(self, exc: Exception, what: str = "request") -> Answer:
        """Any failure of the act as its refusal, failing closed: the record's queue
        full or the identity's share spent, bad input, or an error of tollgate's own
        (logged; `what` the act was: "statement", "request")."""
        exchange = self.exchange
        if isinstance(exc, (RecordingQuota, RecordingUnavailable)):
            exc = _unrecorded(exc, exchange.trace_id)
        if isinstance(exc, Refusal):
            return exchange.refuse(exc)
        log.error("trace %s: %s failed", exchange.trace_id, what, exc_info=exc)
        exchange.span.set_status(Status(StatusCode.ERROR, "exchange failed"))
        return exchange.refuse(Unavailable(500, "internal_error",
                                        f"tollgate could not process this {what}"))

    def refuse(self, bad: Refusal) -> Answer:
        """The act refused before any decision (bad input, a login nobody can be
        identified by) and ended: recorded when the record admits it, the refusal
        going out either way."""
        self.admit(required=False)
        answer = self.exchange.refuse(bad)
        self.exchange.outcome["tollgate.outcome"] = bad.message  # the record's detail
        self.end()
        return answer

    def answered(self, headers: dict[str, str], sample: bytes = b"",
                 status: int = 0) -> None:
        """The act ends, its answer gone by: `headers` the answer's summary for the
        record (a command's tag and rows, a transfer's size), `sample` what the client
        got (a result's rows as NDJSON, masked as delivered), the upstream's time
        since `started`."""
        exchange = self.exchange
        exchange.evidence.upstream_ms = (time.perf_counter() - self.started) * 1000
        exchange.evidence.response = exchange.response = {
            "status": status, "headers": headers, "body": None}
        if sample:
            exchange.evidence.response_type = "application/x-ndjson"
            exchange.delivered(sample, exchange.mask)
        self.end()

    def end(self) -> None:
        """The act ends: its span, and its record when the record admitted it (once: a
        front ends it before its last answer leaves, so that the record is journaled
        first, and the act's block ends it again)."""
        if self._ended:
            return
        self._ended = True
        exchange = self.exchange
        front = exchange.front
        with ledger.stage(front, "span"):
            evidence = exchange.finish()
        if exchange.budget is not None and self._pipeline.budgets is not None:
            self._pipeline.budgets.settle_soon(exchange)
        if exchange.live is not None:
            outcome = exchange.outcome
            exchange.live.counted("tollgate.refusal" in outcome
                                  or outcome.get("tollgate.decision.action") == "deny")
        if self._admission.admitted:
            self._pipeline.recorder.submit(evidence, self.exchange.who)
        else:
            self._pipeline.telemetry.exported(evidence.span)
        ledger.exchange(front)

    def __enter__(self) -> Act:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.end()


def _unrecorded(exc: RecordingQuota | RecordingUnavailable, trace_id: str) -> Refusal:
    """A record that cannot take an act, as the act's refusal: the identity's share of
    the record's queue spent (429), or the record unable to take it (503, logged)."""
    if isinstance(exc, RecordingQuota):
        return OverLimit(429, "recording_quota", str(exc))
    log.error("trace %s: refused: %s", trace_id, exc)
    return Unavailable(503, "recording_unavailable", str(exc))


class Opener:
    """Opens the acts of one session: its target (None: a login naming none, only ever
    refused), identity (the verified claims) and session id, the protocol's name
    (span names, `network.protocol.name`), the request path its acts carry, the
    headers and span attributes all of them share, and the event set when its client's
    connection is gone (`gone`)."""

    def __init__(self, pipeline: Pipeline, protocol: str, target: Target | None,
                 claims: dict[str, Any] | None, session_id: str, path: str,
                 headers: dict[str, str] | None = None,
                 attributes: dict[str, Any] | None = None,
                 gone: asyncio.Event | None = None) -> None:
        self._pipeline, self.target, self._claims = pipeline, target, claims
        self._gone = gone
        # The session as listed once its client is in (live.py): its acts count into
        # it, and are refused once it is ended.
        self.live: LiveSession | None = None
        # How the front tells its client why an act waits (Exchange.tell), if it can.
        self.tell: Callable[[str], None] | None = None
        self._protocol = protocol
        self._name = target.name if target is not None else "unknown"
        self._headers = {":method": "", ":path": path, "x-session-id": session_id,
                         **(headers or {})}
        self._attributes = {"tollgate.target": self._name,
                            "tollgate.session_id": session_id, **(attributes or {})}

    @property
    def identity(self) -> Who:
        """`input.identity` of the session's acts."""
        return self._pipeline.identity(self._claims)

    @property
    def masker(self) -> Masker:
        """The process's masker, for what a session relays beside its acts' answers."""
        return self._pipeline.masker

    def __call__(self, method: str, context: dict[str, Any] | None = None) -> Act:
        """An act of the session (`context`: the protocol's `input.context`). Its answer
        is read whole: what a session relays is the front's to mask."""
        act = self._pipeline.act(f"tollgate {self._protocol} {method} {self._name}",
                                 {**self._headers, ":method": method}, self._attributes,
                                 self.target, self._claims)
        act.exchange.context = context
        act.exchange.response_mode = "body"
        act.exchange.gone = self._gone
        act.exchange.live = self.live
        # A database front's login (CONNECT), before its session is listed: a moderated
        # target's login goes on, its statements wait; any other act without a listed
        # session has nothing a moderator could attend.
        act.exchange.opening = self.live is None and method == LOGIN
        act.exchange.tell = self.tell
        return act

    def listed(self, front: str) -> LiveSession:
        """The session, listed among those open (the front closes it at its end):
        `front` its protocol as the list names it."""
        self.live = self._pipeline.live.open(
            self._headers["x-session-id"], front, self._pipeline.subject(self._claims),
            self.target.name if self.target is not None else None)
        return self.live
