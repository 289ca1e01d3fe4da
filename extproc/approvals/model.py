"""What an approval is, what it is bound to, and who may decide it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from extproc.identity import Who
from extproc.policy.input import ApprovalInput
from extproc.recording.chain import canonical


class ApprovalError(Exception):
    """An approval cannot be decided (or used) as asked; `code` says why, for the API."""

    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@dataclass(frozen=True)
class Approval:
    id: str
    fingerprint: str
    requester: str
    identity: dict[str, Any]
    target: str
    summary: str
    request: dict[str, Any]  # method, path, query, body excerpt: masked, for approvers
    approvers: tuple[str, ...]
    rules: tuple[str, ...]
    reasons: tuple[str, ...]
    grant_mode: str  # once | window
    grant_minutes: int | None
    # pending | approved | denied | used | abandoned (its waiter's replica died, or its
    # waiter left before anyone decided: `reason` says which) | expired (read from expires_us)
    status: str
    created_us: int
    expires_us: int
    trace_id: str  # the held request's span: the decision's span is its child
    span_id: str
    held_by: str  # the replica whose request waits on it
    decided_by: str | None = None
    decided_us: int | None = None
    reason: str | None = None
    grant_until_us: int | None = None
    used_us: int | None = None
    used_trace_id: str | None = None
    notified: dict[str, Any] | None = field(default=None)
    hold_until_us: int | None = None  # the held request waits at most until then
    waiting_until_us: int | None = None  # the lease of the request waiting on it
    # Two-person approval and beyond: how many distinct approvers must approve it, and
    # who has so far (it stays pending until they are as many; one denial denies it).
    approvals_needed: int = 1
    approved_by: tuple[str, ...] = ()
    # When a client was first answered with it pending (its hold ended undecided): from
    # then it outlives its waiters, for the retry that client was told to send.
    told_us: int | None = None

    def waiting(self, now_us: int | None = None) -> bool:
        """Whether a request waits on it now: its waiter renewed the lease in time (a
        client that left, or a replica that died, renews it no more)."""
        return self.waiting_until_us is not None and self.waiting_until_us > (
            now_us if now_us is not None else now())

    def state(self, now_us: int | None = None) -> str:
        """The status as it stands now: a pending approval past its expiry has expired."""
        now_us = now_us if now_us is not None else now()
        if self.status == "pending" and now_us >= self.expires_us:
            return "expired"
        return self.status

    def may_decide(self, sub: str | None, groups: Sequence[str]) -> ApprovalError | None:
        """Why this approver may not decide it (None: they may)."""
        refused = self._not_approver(sub, groups)
        if refused is None and sub in self.approved_by and self.status == "pending":
            return ApprovalError(
                "already_approved", f"{sub} approved it already: it needs "
                f"{self.approvals_needed - len(self.approved_by)} more approver(s), "
                "another person", 409)
        return refused

    def is_approver(self, sub: str | None, groups: Sequence[str]) -> bool:
        """Whether `sub` is one of its approvers (never its requester)."""
        return self._not_approver(sub, groups) is None

    def visible_to(self, sub: str | None, groups: Sequence[str]) -> bool:
        """Whether `sub` may see it: its requester, and those who may decide it."""
        return sub == self.requester or self._not_approver(sub, groups) is None

    def _not_approver(self, sub: str | None, groups: Sequence[str]) -> ApprovalError | None:
        if not sub:
            return ApprovalError("forbidden", "the token names no subject", 403)
        if sub == self.requester:
            return ApprovalError("self_approval",
                                 "nobody approves their own request", 403)
        allowed = any(
            (kind == "group" and name in groups) or (kind == "user" and name == sub)
            for kind, _, name in (a.partition(":") for a in self.approvers))
        if not allowed:
            return ApprovalError(
                "forbidden", f"only {', '.join(self.approvers) or 'nobody'} may decide this "
                "approval", 403)
        return None

    def for_record(self, via: str) -> dict[str, Any]:
        """The approval as the audit record keeps it: who asked, who decided, when and
        why. `via`: how the exchange met it (`hold`: it waited; `grant`: an earlier
        approval let it through; `api`: an approver decided it; `slack`: an approver
        decided it in Slack, as the identity their Slack user is linked to)."""
        return {
            "id": self.id, "via": via, "status": self.state(), "requested_by": self.requester,
            "approvers": list(self.approvers), "grant": self.grant_mode,
            "grant_minutes": self.grant_minutes, "decided_by": self.decided_by,
            "decided_us": self.decided_us, "reason": self.reason, "held_by": self.held_by,
            "summary": self.summary, "trace_id": self.trace_id, **self._quorum(),
        }

    def _quorum(self) -> dict[str, Any]:
        """Who approved it so far, where more than one approver is needed."""
        if self.approvals_needed == 1:
            return {}
        return {"approvals_needed": self.approvals_needed,
                "approved_by": list(self.approved_by)}

    def for_policy(self) -> ApprovalInput:
        """`input.approval` in the decisions after it let the request through: who
        approved, when, and what they granted."""
        found: ApprovalInput = {
            "id": self.id, "status": self.state(), "decided_by": self.decided_by,
            "decided_us": self.decided_us, "reason": self.reason, "grant": self.grant_mode,
            "grant_minutes": self.grant_minutes, "approvers": list(self.approvers),
        }
        if self.approvals_needed > 1:
            found["approvals_needed"] = self.approvals_needed
            found["approved_by"] = list(self.approved_by)
        return found

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        found["status"] = self.state()
        found["waiting"] = self.waiting()
        for key in ("approvers", "rules", "reasons", "approved_by"):
            found[key] = list(found[key])
        return found


def denial(approval_id: str, decided_by: str | None, reason: str | None) -> str:
    """A denied approval in words, as the agent, psql and the monitor are all told it:
    which approval, who denied it, and why."""
    return f"approval {approval_id} was denied by {decided_by}" + (
        f": {reason}" if reason else "")


def approve_url(base: str, approval_id: str) -> str | None:
    """Where an approver decides it (None without an admin API)."""
    return f"{base}/approvals/{approval_id}" if base else None


def now() -> int:
    return int(time.time() * 1_000_000)


@dataclass(frozen=True)
class RawBody:
    """A body bound by its bytes (text, binary): the SHA-256 of all of them."""

    sha256: str


def fingerprint(method: str, path: str, body: Any, identity: Who, target: str) -> str:
    """SHA-256 over what an approval is bound to: method, path (query normalised: sorted),
    body (a JSON value in canonical form, or a RawBody's digest of its bytes), who asks
    (issuer and subject) and where. A retry of the same request matches; a different one,
    even by one byte, does not."""
    bare, _, query = path.partition("?")
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    normalised = f"{bare}?{urlencode(pairs)}" if pairs else bare
    # The two kinds cannot meet: a canonical JSON text never starts with "bytes:".
    body_text = (f"bytes:{body.sha256}" if isinstance(body, RawBody)
                 else canonical({"body": body}))
    who = canonical({"iss": identity.get("iss"), "sub": identity.get("sub")})
    text = "\n".join((method.upper(), normalised, body_text, who, target))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
