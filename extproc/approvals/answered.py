"""How an approval's request was answered, as its record says: the one account of what
an approval led to that every surface gives (the page, the CLI, Slack).

An approval says only that a request may pass; what then happened is the exchange's:
it ran and its target answered (a statement's "DELETE 3", an HTTP status), or tollgate
refused it after all (its measured effect was over its bound, or could not be measured),
or its client left. That is read from the exchange's record, never inferred from the
approval's `used` state, so no surface says "it went through" of a request that was
refused afterwards.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from extproc.approvals.model import Approval
from extproc.recording.record import CLIENT_LEFT
from extproc.recording.store import content_of
from extproc.recording.told import did, refused_because
from extproc.store.aio import AsyncStore

# Exchange records one trace holds at most: the held request's own, its strict decision.
_MOST_TRACE_RECORDS = 10


@dataclass(frozen=True)
class Answered:
    """The held request's answer, from its exchange's record."""

    at_us: int
    status: int | None  # the status its client got (HTTP's, or the front's equivalent)
    action: str  # what settled it: allow, deny, hold (still waiting then), none
    refusal: str | None  # tollgate's refusal code, when tollgate answered it itself
    approval_status: str | None  # the approval's state when it was answered
    client_left: bool  # its client went away before it was answered
    detail: str | None  # what it did, as its front said ("DELETE 3", a database error)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "said": self.said()}

    def said(self) -> str:
        """What it did, in a sentence's words: the same on every surface."""
        if self.client_left:
            return "its client left before it was answered"
        if self.refusal is not None:
            return f"tollgate refused it: {refused_because(self.refusal, self.detail)}"
        if self.action == "hold":
            return "it was answered as held, waiting for the approval"
        return f"it ran: {did(self.detail, self.status)}"


async def answered(store: AsyncStore, approval: Approval) -> Answered | None:
    """How `approval`'s request was answered (None: no record of it yet). A request held
    past its approval's creation by a retry shows the first request's answer; a grant
    used by a retry after its client left, the retry's."""
    found: Answered | None = None
    rows = await store.execute(
        "SELECT started_us, status, content FROM records WHERE trace_id IN (?, ?) "
        "AND kind = 'exchange' ORDER BY started_us LIMIT ?",
        (approval.trace_id, approval.used_trace_id or approval.trace_id,
         _MOST_TRACE_RECORDS))
    for started_us, status, content in rows:
        record = content_of(content)
        held = record.get("approval") or {}
        if held.get("id") != approval.id or (
                found is not None and record.get("trace_id") != approval.used_trace_id):
            continue
        outcome = record.get("outcome") or {}
        found = Answered(
            at_us=started_us + int((record.get("duration_ms") or 0) * 1000),
            status=status, action=str(outcome.get("action") or "none"),
            refusal=outcome.get("refusal"), approval_status=held.get("status"),
            client_left=CLIENT_LEFT in (outcome.get("detail"), outcome.get("refusal")),
            detail=outcome.get("detail"))
    return found
