"""What the exchange pipeline does with a request the policy holds: find a grant that lets it
through, or ask for one (once per request: a retry while pending waits on the same
approval), telling approvers what exactly they are asked to approve.

A hold exists while its client waits on it, and past that only once the client was told
of it: a request that stops waiting before the decision (its client gone, its stream
reset, Envoy's own timeout) withdraws its approval (`left`), so no approver grants a retry
its client never knew was held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from extproc.approvals.model import Approval, ApprovalError, RawBody, approve_url, fingerprint
from extproc.approvals.notify import Tells
from extproc.approvals.store import WITHDRAWN, ApprovalStore
from extproc.codecs.message import SHELL_LINE, is_json
from extproc.codecs.refusal import refusal_of
from extproc.config import Approvals
from extproc.identity import ANONYMOUS, Who, subject_of
from extproc.interpret.what import what_of
from extproc.masking import Masker
from extproc.masking.record_mask import RECORD_MASK
from extproc.policy import Decision
from extproc.policy.decision import DEFAULT_HOLD_SECONDS
from extproc.recording.record import Evidence
from extproc.store import StoreError

log = logging.getLogger("tollgate.approvals")

# What approvers see of a request body (masked): enough to judge, not a copy.
_EXCERPT_CHARS = 4096
_SUMMARY_CHARS = 1000
# A hold its front ends on purpose, having told its client that the approval stays
# pending (a MySQL KILL QUERY): the message its task is cancelled with. That approval
# outlives the hold, for the retry its client was told it may send.
INTERRUPTED = "tollgate: the hold is interrupted, and its client told"


def interrupted(stopped: BaseException) -> bool:
    """Whether a hold ended by `stopped` was interrupted with its client told."""
    return isinstance(stopped, asyncio.CancelledError) and stopped.args[:1] == (INTERRUPTED,)


class Holds:
    def __init__(self, store: ApprovalStore, notifier: Tells | None, masker: Masker,
                 settings: Approvals, approvals_url: str, replica: str) -> None:
        self.store = store
        self._notifier, self._masker = notifier, masker
        self._settings, self._url, self._replica = settings, approvals_url, replica

    def seconds(self, decision: Decision) -> int:
        """How long a held request waits in-stream: the policy's `hold_seconds` (300 when
        it does not say), at most `approvals.max_hold_seconds`."""
        return min(decision.hold_seconds or DEFAULT_HOLD_SECONDS,
                   self._settings.max_hold_seconds)

    async def granted(self, bound: str, decision: Decision,
                      evidence: Evidence) -> Approval | None:
        """A grant that lets this request through now (a `once` grant is used up)."""
        return await self.store.grant_for(bound, requester_of(evidence.identity),
                                          _target(evidence), approvers_of(decision),
                                          evidence.trace_id, decision.rules,
                                          shell_session(evidence))

    async def ask(self, bound: str, decision: Decision, evidence: Evidence) -> Approval:
        """The approval this request waits for: the one a retry of it already waits for,
        or a new one (approvers are notified); none beyond `max_pending_per_identity`
        (Refusal 429: the agent waits for some to be decided). Cancelled meanwhile (its
        client gone), the asking still ends (a store's statement runs on regardless),
        and what it asked for is let go of as `left` says."""
        asking = asyncio.ensure_future(self._ask(bound, decision, evidence))
        try:
            return await asyncio.shield(asking)
        except asyncio.CancelledError as stopped:
            await asyncio.shield(self._left_once_asked(asking, interrupted(stopped)))
            raise

    async def _left_once_asked(self, asking: asyncio.Future[Approval], told: bool) -> None:
        with contextlib.suppress(Exception):  # nothing asked: nothing to let go of
            await self._left(await asking, told)

    async def left(self, approval: Approval, stopped: BaseException) -> Approval:
        """The request stopped waiting on `approval` before the decision reached it
        (`stopped`: why). Interrupted with its client told, the approval stays for that
        client's retry; else its client never learnt of it, and it is withdrawn (unless
        another request still waits on it here, or a client was told of it before). The
        approval as it then stands; the store's work runs to its end even if the caller
        is cancelled again, and a store that cannot answer leaves it as it was."""
        return await asyncio.shield(self._left(approval, interrupted(stopped)))

    async def _left(self, approval: Approval, told: bool) -> Approval:
        try:
            found = await (self.store.told(approval.id) if told
                           else self.store.withdraw(approval.id))
        except StoreError as exc:  # its lease lapses; it stays pending until it expires
            log.error("approval %s: its request (trace %s) stopped waiting, and the store "
                      "could not say so: %s", approval.id, approval.trace_id, exc)
            return approval
        if found is not None and not told:
            log.info("approval %s withdrawn: its request (trace %s) stopped waiting before "
                     "it was decided", approval.id, approval.trace_id)
        return found or approval

    def withdrawn(self, approval: Approval) -> bool:
        """Whether `approval` was withdrawn (its waiter, or another request's, left)."""
        return approval.state() == "abandoned" and approval.reason == WITHDRAWN

    async def _ask(self, bound: str, decision: Decision, evidence: Evidence) -> Approval:
        requester = requester_of(evidence.identity)
        waiting = await self.store.pending_for(bound, requester)
        if waiting is not None:
            return waiting
        request: Mapping[str, Any] = evidence.request or {}
        try:
            return await self._created(
                self._settings.max_pending_per_identity, bound, evidence,
                summary=self._masked_text(what_of(request, evidence.meaning_key,
                                                  evidence.meaning, evidence.destination)),
                request=self._for_approvers(request, shell_session(evidence)),
                approvers=approvers_of(decision),
                rules=decision.rules, reasons=decision.reasons, grant_mode=decision.grant,
                grant_minutes=decision.grant_minutes, hold_seconds=self.seconds(decision),
                approvals_needed=decision.approvals_needed)
        except ApprovalError as refused:
            raise refusal_of(refused.status, "too_many_pending_approvals", str(refused),
                           details={"max_pending": self._settings.max_pending_per_identity},
                           action="hold") from None

    async def ask_about(self, bound: str, evidence: Evidence, approvers: tuple[str, ...],
                        rules: tuple[str, ...], reasons: tuple[str, ...], summary: str,
                        subject: dict[str, Any]) -> Approval:
        """An approval of something other than a request (a changed MCP tool definition,
        `subject` what approvers see of it, masked), asked by the exchange that found it;
        approvers are notified. It counts against no one's pending approvals: the
        requester did not ask for it."""
        return await self._created(
            2**31, bound, evidence, summary=self._masked_text(summary[:_SUMMARY_CHARS]),
            request=self._masker.mask_json(subject, RECORD_MASK)[0],
            approvers=tuple(sorted(set(approvers))), rules=rules, reasons=reasons,
            grant_mode="once", grant_minutes=None)

    async def _created(self, max_pending: int, bound: str, evidence: Evidence,
                       **fields: Any) -> Approval:
        """A new pending approval asked by `evidence`'s exchange (`fields`: what it asks),
        its approvers notified."""
        approval = await self.store.create(
            max_pending=max_pending, fingerprint=bound,
            requester=requester_of(evidence.identity), identity=evidence.identity,
            target=_target(evidence), trace_id=evidence.trace_id, span_id=evidence.span_id,
            held_by=self._replica, expire_seconds=self._settings.expire_seconds, **fields)
        if self._notifier is not None:
            self._notifier.send(approval, self.approve_url(approval))
        return approval

    async def settle(self, approval: Approval, seconds: int,
                     trace_id: str) -> tuple[Approval, bool]:
        """Wait up to `seconds` for `approval` to be decided; the approval as it then
        stands, and whether it lets this request through. Retries of one request may wait
        on one `once` approval: the first to take it passes, once."""
        approval = await self.store.wait(approval.id, seconds)
        if approval.state() == "pending":  # undecided: its client is told so, by its refusal
            return await self.store.told(approval.id) or approval, False
        if approval.state() != "approved":
            return approval, False
        if approval.grant_mode != "once":
            return approval, True
        used = await self.store.use(approval.id, trace_id)
        if used is not None:
            return used, True
        return await self.store.get(approval.id), False

    async def close(self) -> None:
        if self._notifier is not None:
            await self._notifier.close()
        await self.store.close()

    def approve_url(self, approval: Approval) -> str | None:
        return approve_url(self._url, approval.id)

    def _for_approvers(self, request: Mapping[str, Any],
                       session: str | None = None) -> dict[str, Any]:
        """The request as approvers see it, masked; a shell line's with its session,
        which binds a window its approval grants (store.grant_for)."""
        body = request.get("body")
        if isinstance(body, str):
            body = self._masked_text(body[:_EXCERPT_CHARS])
        elif body is not None:
            body = self._masker.mask_json(body, RECORD_MASK)[0]
        return {"method": request["method"], "path": request["path"],
                "query": self._masker.mask_json(request["query"], RECORD_MASK)[0],
                "body": body, **({"session": session} if session is not None else {})}

    def _masked_text(self, text: str) -> str:
        return self._masker.mask_text(text, RECORD_MASK)[0]


def bound_to(evidence: Evidence) -> str:
    """The fingerprint of a request as Envoy gave it: its path with the query (through the
    egress proxy, after its destination: a CONNECT has no path), and a JSON body as its
    value (key order and spacing aside), any other body as its bytes. A shell's line is
    bound to its session too: what it does depends on that shell's state (its folder,
    variables, functions), which no other session shares, so a grant given for it is
    never used by another."""
    request: Mapping[str, Any] = evidence.request or {}
    captured = evidence.request_body
    body: Any = None
    if captured is not None and captured.size:
        json_body = is_json(evidence.headers.get("content-type", ""))
        body = request.get("body") if json_body else RawBody(captured.sha256)
    path = evidence.headers.get(":path", "")
    if (session := shell_session(evidence)) is not None:
        path = f"{path} session={session}"
    destination = evidence.destination
    if destination is not None:
        path = f"{destination} {path}"
    return fingerprint(evidence.headers.get(":method", ""), path,
                       body, evidence.identity or ANONYMOUS, _target(evidence))


def shell_session(evidence: Evidence) -> str | None:
    """The session of a shell's line (None for any other request): what it does depends
    on that shell's state, so its grants are that session's."""
    if evidence.headers.get(":method") != SHELL_LINE:
        return None
    return evidence.headers.get("x-session-id", "")


def approvers_of(decision: Decision) -> tuple[str, ...]:
    """Who may decide, in one order: a window grant covers holds of the same approvers."""
    return tuple(sorted(set(decision.approvers)))


def requester_of(identity: Who | None) -> str:
    """Who asks, as approvals are bound to them: the token's subject (an anonymous
    request on an `anonymous` target is "anonymous", and can never approve itself)."""
    return subject_of(identity)


def _target(evidence: Evidence) -> str:
    return evidence.target.name if evidence.target else ""
