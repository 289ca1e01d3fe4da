"""Each thing an agent asks of a host or a pod, as one exchange: opened, decided, held,
recorded.

One agent connection (SSH) or stream (Kubernetes exec) has one Gate: its target, its
verified identity and its session id. A command (exec), an interactive shell, each line
typed into it, each file operation (SFTP, a file in kubectl cp's archive) and each
forwarding request goes through `decide`, which drives the exchange pipeline every
front shares; what is refused is answered by the caller with `refusal`'s text, in the
way its client shows (stderr and an exit status, an SFTP error). The exchange stays open
while what was allowed runs, and `end` records what came back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from extproc.codecs.message import Request
from extproc.codecs.refusal import Refusal, Refused
from extproc.config import Target
from extproc.exchange.act import Act, Opener
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.state import Answer, Exchange
from extproc.masking import Masker, MaskSpec
from extproc.masking.record_mask import covers_record
from extproc.terminal.files import mask_file

if TYPE_CHECKING:
    from extproc.recording import BodyCapture

# The exit status of a command tollgate refused (the shell's "cannot execute"), and of
# one it could not run (the host unreachable: what ssh itself exits with; kubectl exec
# shows its own message).
REFUSED_STATUS = 126
FAILED_STATUS = 255


@dataclass(slots=True)
class Verdict:
    """A decided exchange: `refusal` is None when it may proceed, else the text its
    client is shown (reasons, approval, trace id)."""

    act: Act
    refusal: str | None = None
    answer: Answer | None = None  # the refusal as tollgate answers it (status, body)

    @property
    def exchange(self) -> Exchange:
        return self.act.exchange

    @property
    def trace_id(self) -> str:
        return self.act.trace_id


def refusal_text(answer: Answer) -> str:
    """tollgate's refusal as one line a terminal shows: why, which approval, the trace."""
    body = answer.body
    if body.get("approval_id"):
        why = str(body.get("message"))
        if body.get("reasons"):  # what it waits for, on the line a client keeps
            why += f" ({'; '.join(map(str, body['reasons']))})"
        if body.get("approve_url") and body.get("status") == "pending":
            why += f" (an approver decides it at {body['approve_url']})"
    elif body.get("reasons"):
        why = "refused: " + "; ".join(map(str, body["reasons"]))
        if body.get("rules"):
            why += f" (rules: {', '.join(body['rules'])})"
    else:
        why = str(body.get("message") or answer.error)
    return f"tollgate: {why} [trace {answer.trace_id}]"


@dataclass(frozen=True, slots=True)
class Door:
    """How a front's requests look to the pipeline: its protocol's name (span names, the
    `network.protocol.name` attribute), the request path and query the target's
    interpreter reads (SSH: `/<target>`; Kubernetes: the exec's own URL), the headers it
    reads beside the session's, and how the front looked for the target."""

    protocol: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    detail: str = ""
    # Span attributes of every exchange through this door (the HTTP request that opened
    # a Kubernetes stream: its method and path).
    attributes: dict[str, Any] = field(default_factory=dict)


class Gate:
    """Opens, decides and records the exchanges of one agent's connection or stream."""

    def __init__(self, pipeline: Pipeline, target: Target | None,
                 claims: dict[str, Any] | None, session_id: str, client: str,
                 door: Door, gone: asyncio.Event | None = None) -> None:
        """`target` None: a login naming no target, only ever refused. The agent's
        address is not known: the front's peer is Envoy's tcp_proxy (as on the database
        fronts, input.source stays null rather than name Envoy). `gone`: set once the
        agent's connection is gone (a hold then stops waiting for it)."""
        self.session_id, self._door = session_id, door
        self.open = Opener(pipeline, door.protocol, target, claims, session_id, door.path,
                           {"user-agent": client},
                           {"network.protocol.name": door.protocol, **door.attributes},
                           gone)

    @property
    def target(self) -> Target:
        assert self.open.target is not None
        return self.open.target

    @property
    def masker(self) -> Masker:
        """The process's masker, for what the session relays (its output, files)."""
        return self.open.masker

    async def decide(self, method: str, body: dict[str, Any],
                     waiting: Callable[[str], None] | None = None,
                     typist: str | None = None) -> Verdict:
        """The exchange for `body` (what the target's interpreter reads), decided; held
        while a human approves or a moderator is awaited (`waiting` is told why and how
        long). `typist`: a peer who joined the session typed it (the request's
        `x-tollgate-typist` header, which the policy reads and the record keeps). Every
        failure refuses."""
        act = self.open(method)
        verdict = Verdict(act)
        exchange = act.exchange
        if waiting is not None:  # why it waits for a moderator, where it waits
            exchange.tell = waiting
        text = body.get("command") or ""
        exchange.request = exchange.evidence.request = self._request(method, body, typist)
        exchange.evidence.request_body = exchange.kept(
            (text if isinstance(text, str) else "").encode("utf-8", "surrogateescape"))
        try:
            act.admit(self._door.detail)
            await act.read(len(text))
            verdict.answer = await act.judge(
                None if waiting is None
                else lambda seconds: waiting(self._waiting(exchange, seconds)))
        except Exception as exc:  # every failure is a refusal: fail closed
            verdict.answer = act.refusal(exc)
        except asyncio.CancelledError:  # its session ends under it: recorded all the same
            act.end()
            raise
        if verdict.answer is not None:
            verdict.refusal = refusal_text(verdict.answer)
            exchange.outcome["tollgate.outcome"] = "refused"
        return verdict

    def refused(self, method: str, bad: Refusal) -> str:
        """An exchange refused before any decision (a login that cannot be identified, a
        request tollgate cannot serve): recorded when the record admits it; the text its
        client is shown."""
        return refusal_text(self.refuse(method, bad))

    def refuse(self, method: str, bad: Refusal) -> Answer:
        """`refused`, as tollgate's answer (status, body) for a front that answers it."""
        act = self.open(method)
        act.exchange.request = act.exchange.evidence.request = self._request(method, None)
        return act.refuse(bad)

    def _request(self, method: str, body: dict[str, Any] | None,
                 typist: str | None = None) -> Request:
        door = self._door
        headers = {**door.headers, "x-session-id": self.session_id}
        if typist is not None:
            headers["x-tollgate-typist"] = typist
        return {"method": method, "path": door.path, "query": door.query,
                "headers": headers, "body": body}

    @staticmethod
    def capture(verdict: Verdict) -> BodyCapture:
        """Where what the agent is shown (masked) is kept for the record as it goes."""
        exchange = verdict.exchange
        capture = exchange.delivering()
        exchange.evidence.response_type = "text/plain"
        exchange.evidence.response_masked = (exchange.mask is not None
                                             and covers_record(exchange.mask))
        return capture

    def end(self, verdict: Verdict, *, status: int | None = None,
            outcome: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> None:
        """The exchange's end: the exit status, what the record keeps beside (`headers`:
        a transfer's size and SHA-256) and what the span does (`outcome`; its
        `tollgate.outcome` is the record's detail). What the agent was shown is in the
        capture the caller filled (Gate.capture)."""
        act = verdict.act
        if outcome:
            act.exchange.outcome.update(outcome)
        if status is not None:
            act.exchange.outcome[f"tollgate.{self._door.protocol}.exit_status"] = status
        if verdict.refusal is None:
            act.answered(headers or {}, status=status if status is not None else -1)
        else:
            act.end()

    @staticmethod
    def _waiting(exchange: Exchange, seconds: int) -> str:
        approval = exchange.evidence.approval or {}
        return (f"tollgate: waiting up to {seconds} s for approval {approval.get('id')} "
                f"by {', '.join(exchange.decision.approvers)} "
                f"({'; '.join(exchange.decision.reasons)}) [trace {exchange.trace_id}]")



class Transfers:
    """The SFTP relay's gate (sftp.SftpGate): each file operation an exchange of its own.
    A download the decision masks is given the decision's mask, which the relay applies
    to the whole file (sftp.py)."""

    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    async def decide(self, sftp: dict[str, Any]) -> _Ticket:
        gate = self._gate
        verdict = await gate.decide("SFTP", {"request": "sftp", "sftp": sftp})
        if verdict.refusal is not None:
            gate.end(verdict)
        reads = sftp.get("operation") == "open" and sftp.get("direction") != "upload"
        return _Ticket(gate, verdict, reads)


class _Ticket:
    """An SFTP operation decided: its refusal, or what ends its exchange."""

    def __init__(self, gate: Gate, verdict: Verdict, reads: bool) -> None:
        self._gate, self._verdict = gate, verdict
        self.refusal = verdict.refusal
        spec = verdict.exchange.mask
        self.mask: Callable[[bytes], bytes] | None = None
        if reads and spec is not None and self.refusal is None:
            self.mask = lambda data: self._masked(spec, data)

    def _masked(self, spec: MaskSpec, data: bytes) -> bytes:
        act = self._verdict.act
        masked, counts = mask_file(act.masker, spec, data)
        act.counted(counts)
        return masked

    def refuse(self, reason: str) -> str:
        """The relay cannot do what was allowed as the decision asks (a file it cannot
        mask): the exchange ends refused, with `reason`."""
        exchange = self._verdict.exchange
        self.refusal = self._verdict.refusal = refusal_text(exchange.refuse(Refused(
            403, "unmaskable_transfer", reason)))
        exchange.outcome["tollgate.outcome"] = "refused"
        self._gate.end(self._verdict)
        return self.refusal

    def finish(self, outcome: dict[str, Any]) -> None:
        """The operation's end: a transfer's size, SHA-256 and whether its bytes went
        through in order (the record's response headers), or its error."""
        kept = {k: str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in outcome.items() if v is not None}
        detail = f"failed: {outcome['error']}" if outcome.get("error") else "done"
        if "sha256" in kept:
            detail += f": {kept.get('size')} bytes, sha256 {kept['sha256']}"
        self._gate.end(self._verdict, outcome={
            "tollgate.outcome": detail,
            **{f"tollgate.ssh.transfer.{k}": v for k, v in kept.items()}}, headers=kept)

