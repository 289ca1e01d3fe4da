"""One exchange's state, and the one place that writes its span, its events and its record.

Everything an exchange has shown so far lives on `Exchange`: the policy input's parts,
the decisions, the mask they ask for, what was masked, the approval that let it through,
and the evidence its audit record is built from. Each event (a decision, masking, an
approval, a refusal) is written by one method here to all three of its sinks — a span
event, the span's closing attributes, the record — so they cannot drift apart.

Span attributes are gathered in `outcome` and set once when the exchange ends: each
call into the OpenTelemetry SDK costs tens of µs on the request path.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from extproc import ledger
from extproc.approvals.model import Approval
from extproc.codecs import jsonenc
from extproc.codecs.message import Request, Response
from extproc.codecs.refusal import Refusal
from extproc.config import Target
from extproc.exchange.budgeted import Reserved
from extproc.exchange.live import LiveSession
from extproc.identity import Who, subject_of
from extproc.interpret import Interpreter
from extproc.masking import MaskSpec, ner
from extproc.masking.policy_mask import spec_of
from extproc.masking.record_mask import covers_record
from extproc.policy import Decision
from extproc.policy.decision import APPROVED
from extproc.policy.input import InputEncoder
from extproc.recording import BodyCapture, Decided, Evidence
from extproc.telemetry import ExchangeSpan
from extproc.token_exchange import Subject


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer tollgate gives in the upstream's place: a status, a JSON body in the
    protocol's shape, and the refusal's code (`denied`, `malformed_json` ...)."""

    status: int
    body: dict[str, Any]
    error: str
    trace_id: str
    # What goes upstream in the request's place instead, for a protocol whose client
    # reads answers elsewhere than in this exchange (MCP's HTTP+SSE transport: on its
    # GET stream); None: the answer is this exchange's.
    in_place: bytes | None = None
    # Headers beside tollgate's own (a 407's Proxy-Authenticate, a proxy's reason).
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Exchange:
    """What one exchange has shown so far, and what it leaves behind."""

    span: ExchangeSpan
    trace_id: str
    evidence: Evidence
    # The target's record limit: how much of each body the record keeps.
    record_limit: int
    identity: Who
    target: Target | None = None
    interpreter: Interpreter | None = None
    encoder: InputEncoder | None = None
    # The verified token's claims (None: no token was verified).
    claims: dict[str, Any] | None = None
    # The verified token itself, for a target that trades it for its own (config
    # `token_exchange`; None: any other target, or no token kept).
    subject: Subject | None = None
    # The request as the policy sees it (None until the front has read its headers).
    request: Request | None = None
    response: Response | None = None
    # What the interpreter read the request (and response) to mean: input.sql, .k8s, .llm.
    meaning: Any = None
    # What the front knows beyond the request, for the policy (input.postgres: the
    # PostgreSQL session the statement runs in); None where the protocol has none.
    context: Any = None
    # What a write did, as the database measured it (input.effect; the PostgreSQL
    # front's, postgres/effect.py); None: not measured, and input.effect absent.
    effect: Any = None
    # input.flow as JSON text, read for the request's decision (activity/flow.py; None:
    # null, nothing read); the response's decision sees the same.
    flow: bytes | None = None
    # Causes of untrusted content this exchange's answer was noted for (once each).
    received: set[str] = field(default_factory=set)
    # How much of the response tollgate reads: none, headers, body; or `text`: a body of
    # text read (and masked), any other passed unread (the answers inside a tunnel the
    # policy reads: a download is no data of ours, and no mask can read it).
    response_mode: str = "body"
    decisions: list[Decision] = field(default_factory=list)
    # What the decisions so far ask to mask, merged (None: nothing).
    mask: MaskSpec | None = None
    # The approval that let a held request through: it covers the rest of the exchange.
    approval: Approval | None = None
    # The client's address as Envoy saw it (None where the front cannot know it).
    source: str | None = None
    # Set once the client's connection is gone (None: the front cannot tell, or ends
    # the exchange's task itself): a hold stops waiting for a client that left.
    gone: asyncio.Event | None = None
    # The live session the exchange is part of (live.py; None: none, an HTTP request):
    # counted into it, and refused once it is ended.
    live: LiveSession | None = None
    # How the front tells its client, in its protocol, why the exchange waits (an SSH
    # channel's stderr, a PostgreSQL NOTICE); None: it cannot, the client just waits.
    tell: Callable[[str], None] | None = None
    # A database front's login, before its session is listed (`live` None then): a
    # moderated target's login goes on, and the session's exchanges wait.
    opening: bool = False
    # The budgets' reservation (budgeted.py; None: no budget counts this exchange).
    budget: Reserved | None = None
    # Whether the request went upstream (what its budgets are settled by).
    forwarded: bool = False
    # The UTF-8 bytes of what a model's answer relayed as its output (texts, tool calls,
    # reasoning): tollgate's own count, which a budget settles by where the model
    # reports less (budgeted.py).
    output_bytes: int = 0
    # The token tollgate asked an authorization server for this request's upstream (never
    # recorded): an upstream that refuses it (401) has it dropped from the cache.
    exchanged_token: str | None = field(default=None, repr=False)
    # The span's closing attributes; the record keeps them as the exchange's outcome.
    outcome: dict[str, Any] = field(default_factory=dict)
    clock: float = field(default_factory=time.perf_counter)

    @property
    def decision(self) -> Decision:
        """The latest decision (a hold, once settled, is replaced by what it became)."""
        return self.decisions[-1]

    @property
    def front(self) -> str:
        """The cost ledger's name for the exchange's front: its target's protocol."""
        return ledger.front_of(self.target)

    @property
    def who(self) -> str:
        """Whose share of the record's queue the exchange takes."""
        return subject_of(self.identity)

    @property
    def masked(self) -> Counter[str]:
        return self.evidence.masked

    def interpret(self, meaning: Any) -> None:
        """Take what the interpreter read (for the policy), and its summary (for the span)."""
        self.meaning = self.evidence.meaning = meaning
        if self.interpreter is not None:
            self.outcome.update(self.interpreter.attributes(meaning, self.request))

    def policy_input(self, phase: str, activity: str | None = None) -> str:
        """The policy input at `phase`; `activity`: input.activity as JSON text."""
        assert self.encoder is not None, "a decision needs a target"
        assert self.request is not None, "a decision needs the request"
        approval = self.approval.for_policy() if self.approval is not None else None
        budget = self.budget.input_json if self.budget is not None else None
        return self.encoder.encode(phase, self.identity, self.request, self.response,
                                   self.meaning, approval, self.context, self.source,
                                   activity, self.effect, budget, self.flow)

    def decided(self, phase: str, decision: Decision, revision: str, duration_us: int) -> None:
        """A decision: in the span (an event, the closing attributes) and in the record."""
        self.decisions.append(decision)
        self.evidence.decisions.append(Decided(
            phase, decision.action, decision.reasons, decision.rules, decision.status,
            revision, duration_us, decision.approvers, decision.hold_seconds, self.meaning,
        ))
        self.span.add_event("tollgate.decision", {
            "tollgate.phase": phase,
            "tollgate.decision.action": decision.action,
            "tollgate.decision.rules": decision.rules,
            "tollgate.decision.reasons": decision.reasons,
            "tollgate.policy.revision": revision,
            "tollgate.policy.duration_us": duration_us,
        })
        self._settle(decision)

    def approved(self, approval: Approval) -> Decision:
        """The held decision its approval lets through: an allow, masked as the policy asked;
        it replaces the hold, and covers the rest of the exchange."""
        self.approval = approval
        settled = self.decisions[-1] = approved(self.decisions[-1], approval)
        self._settle(settled)
        return settled

    def _settle(self, decision: Decision) -> None:
        self.mask = spec_of(d.mask for d in self.decisions)
        self.outcome["tollgate.decision.action"] = decision.action
        self.outcome["tollgate.decision.rules"] = decision.rules

    def approval_event(self, approval: Approval, via: str, seconds: int | None = None) -> None:
        """The approval as it stands, on the span (an event) and in the record."""
        state = approval.state()
        self.span.add_event("tollgate.approval", {
            "tollgate.approval.id": approval.id,
            "tollgate.approval.status": state,
            "tollgate.approval.approvers": approval.approvers,
            "tollgate.approval.grant": approval.grant_mode,
            **({"tollgate.approval.hold_seconds": seconds} if seconds is not None else {}),
            **({"tollgate.approval.decided_by": approval.decided_by}
               if approval.decided_by else {}),
            **({"tollgate.approval.reason": approval.reason} if approval.reason else {}),
        })
        self.outcome["tollgate.approval.id"] = approval.id
        self.outcome["tollgate.approval.status"] = state
        self.evidence.approval = approval.for_record(via)

    def record_masking(self, counts: Counter[str], body: str = "response") -> None:
        """How many values each detector masked in which body: a span event, the span's
        totals, and the record."""
        if not counts:
            return
        self.span.add_event("tollgate.masking", {
            "tollgate.masking.body": body, "tollgate.masked_values": _values(counts),
            **{f"tollgate.masked.{detector}": count for detector, count in counts.items()},
        })
        masked = self.masked
        masked.update(counts)
        self.outcome["tollgate.masked_values"] = _values(masked)
        for detector, count in masked.items():
            self.outcome[f"tollgate.masked.{detector}"] = count

    def responded(self, status: int, headers: dict[str, str], content_type: str,
                  upstream_ms: float) -> None:
        """The upstream's response headers, as the policy sees them (its body comes later)."""
        self.outcome["http.response.status_code"] = status
        if status >= 500:  # as the HTTP conventions' error.type of a server's failure
            self.outcome["error.type"] = str(status)
        self.response = self.evidence.response = {
            "status": status, "headers": headers, "body": None,
        }
        self.evidence.response_type = content_type
        self.evidence.upstream_ms = upstream_ms

    def kept(self, body: bytes) -> BodyCapture:
        """`body` as the record keeps it: its first `record_limit` bytes, its size and
        digest whole."""
        return BodyCapture.of(body, self.record_limit)

    def capture(self, limit: int | None = None) -> BodyCapture:
        """A body to be kept for the record as it goes by (`limit`: other than the
        record's)."""
        return BodyCapture(self.record_limit if limit is None else limit)

    def delivering(self) -> BodyCapture:
        """Where the response body is captured for the record as it goes to the client."""
        capture = self.evidence.response_body = BodyCapture(self.record_limit)
        self.evidence.response_read = True
        return capture

    def delivered(self, body: bytes, masked_as: MaskSpec | None = None) -> None:
        """The response body as the client gets it, whole, for the record; `masked_as`:
        the mask it went through, if any (the writer need not scan it again if that
        covers the record's own)."""
        self.delivering().add(body)
        self.evidence.response_masked = masked_as is not None and covers_record(masked_as)

    def refusal_body(self, decision: Decision) -> dict[str, Any]:
        """tollgate's own refusal body, before the protocol's shape."""
        return {"error": "denied", "reasons": list(decision.reasons),
                "rules": list(decision.rules), "trace_id": self.trace_id}

    def refuse_decided(self, decision: Decision) -> Answer:
        """The answer to a request the policy refused, in the protocol's shape."""
        status, body = self._shaped(self.refusal_body(decision), decision.status)
        self.outcome["http.response.status_code"] = status
        return Answer(status, body, "denied", self.trace_id, self._in_place(body))

    def refuse_response(self, decision: Decision,
                        received: bytes | BodyCapture | None = None) -> Answer:
        """A response the policy refused: the deny answer in its place. The record keeps
        both sides: the refusal as what the client got, and what the upstream had sent
        (`received`, when tollgate read it) — the answer an investigation is about."""
        answer = self.refuse_decided(decision)
        evidence = self.evidence
        evidence.response_body = BodyCapture.of(jsonenc.dumps(answer.body).encode(),
                                                self.record_limit)
        evidence.delivered_type = "application/json"
        if received is not None:
            evidence.upstream_body = received if isinstance(received, BodyCapture) else (
                BodyCapture.of(received, self.record_limit))
            evidence.response_read = True
        return answer

    def refuse(self, bad: Refusal) -> Answer:
        """tollgate's answer to what it will not pass (bad input, no token, a record it
        cannot write, an approval still pending ...), in the protocol's shape."""
        status, body = self._shaped({"error": bad.error, "message": bad.message,
                                     **bad.details, "trace_id": self.trace_id}, bad.status)
        self.outcome.update({
            "http.response.status_code": status,
            "tollgate.decision.action": bad.action,
            "tollgate.refusal": bad.error,
        })
        return Answer(status, body, bad.error, self.trace_id, self._in_place(body),
                      bad.headers)

    def _shaped(self, body: dict[str, Any], status: int) -> tuple[int, dict[str, Any]]:
        """The refusal in the protocol's shape, and the status it goes with."""
        if self.interpreter is None:
            return status, body
        return self.interpreter.refusal(body, status, self.meaning)

    def _in_place(self, shaped: dict[str, Any]) -> bytes | None:
        in_place = getattr(self.interpreter, "in_place", None)
        return None if in_place is None else in_place(shaped, self.meaning)

    def strict_record(self) -> Evidence:
        """A strict target's decision record: the exchange so far, as it stands now."""
        return replace(
            self.evidence, kind="decision", decisions=list(self.evidence.decisions),
            masked=Counter(self.evidence.masked), outcome={},
            duration_ms=(time.perf_counter() - self.clock) * 1000,
        )

    def finish(self) -> Evidence:
        """End the span with the outcome; the evidence, complete, for the record."""
        _error_type(self.outcome)
        self.span.set_attributes(self.outcome)
        self.evidence.span = self.span.end()
        self.evidence.outcome = self.outcome
        self.evidence.duration_ms = (time.perf_counter() - self.clock) * 1000
        return self.evidence


def _error_type(outcome: dict[str, Any]) -> None:
    """OpenTelemetry's `error.type` of an exchange the client did not get its answer to:
    tollgate's refusal code; `denied` for the policy's deny; an MCP answer refused in
    part, as tollgate.outcome says. Else what an answer's part set (an upstream's 5xx, a
    database's SQLSTATE), if anything."""
    refusal = outcome.get("tollgate.refusal")
    if refusal is not None:
        outcome["error.type"] = refusal
    elif outcome.get("tollgate.decision.action") == "deny":
        outcome["error.type"] = "denied"
    elif outcome.get("tollgate.outcome") in _REFUSED_IN_PART:
        outcome["error.type"] = outcome["tollgate.outcome"]


def refusal_reasons(answer: Answer) -> list[str]:
    """What a refusal says first, for a front that shows one line: a held request's is
    its approval's own message (pending, denied by whom and why, expired), the policy's
    reasons for holding it coming after (`held_because`); else the policy's reasons, or
    tollgate's message."""
    body = answer.body
    if body.get("approval_id") and body.get("message"):
        return [str(body["message"])]
    return [str(r) for r in body.get("reasons") or [body.get("message") or answer.error]]


def held_because(answer: Answer) -> str:
    """`, held: <the policy's reasons>` of a held request's refusal ("" without any)."""
    reasons = answer.body.get("reasons") if answer.body.get("approval_id") else None
    return f", held: {'; '.join(map(str, reasons))}" if reasons else ""


# tollgate.outcome of an allowed exchange whose answer the client got an error in place of.
_REFUSED_IN_PART = frozenset({"server_request_refused", "unmaskable_content"})


def approved(held: Decision, approval: Approval) -> Decision:
    """A hold its approval lets through: an allow, masked as the policy asked."""
    return replace(held, action="allow", reasons=(f"approved by {approval.decided_by}",
                                                  *held.reasons),
                   rules=(*held.rules, APPROVED))


def _values(counts: Counter[str]) -> int:
    """How many values were masked: the counts but the model's note of a body it did not
    finish (`tollgate.masked.model:unfinished`), which is no value."""
    return sum(counts.values()) - counts.get(ner.UNFINISHED, 0)
