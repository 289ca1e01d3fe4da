"""What Slack shows of an approval: its message (Block Kit), the denial's dialog.

Everything an agent or an approver wrote (the request, the target's and requester's
names, a reason) goes into `plain_text` objects, which Slack never formats, and through
`inert.slack` first, so no control character, link or mention of theirs plays there.
A pending approval's message has Approve and Deny buttons; once it is decided, given up
or expired, the buttons give way to what happened. `state_of` names what a message shows,
so a process redraws it only when that changed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from extproc.approvals.answered import Answered
from extproc.approvals.model import Approval, now
from extproc.codecs.inert import slack

APPROVE, DENY, OPEN = "tollgate_approve", "tollgate_deny", "tollgate_open"
DENY_DIALOG = "tollgate_deny_reason"
REASON = "reason"
# A new approval's waiter renews its lease a moment after the approval is made: until
# then it counts as waiting.
_FIRST_LEASE_US = 5_000_000
# A used approval's message waits this long for its request's record (the writer stores
# it within seconds), then says the record is missing and is redrawn no more.
_RECORD_WAIT_US = 600_000_000
# What a message shows of a long text: within Slack's limits (a section's text 3000
# characters, a field 2000), and short enough that a click's request, which carries the
# whole message (escaped twice), stays within the admin port's 64 KiB. The page shows all.
_TEXT, _FIELD = 1500, 500


def state_of(approval: Approval, answered: Answered | None = None,
             at_us: int | None = None) -> tuple[str, bool]:
    """What its message shows (`pending:1:waits`, `used:told`, `denied` ...), and whether
    that is its last state (nothing changes it any more). `answered`: how its request was
    answered, as its record says (answered.py), for a used approval."""
    at_us = now() if at_us is None else at_us
    state = approval.state(at_us)
    if state == "pending":
        return f"pending:{len(approval.approved_by)}:{_waiting(approval, at_us)}", False
    if state == "approved":  # a once grant is used later, or expires unused
        return state, approval.grant_mode == "window" or at_us >= approval.expires_us
    if state == "used":
        if _told(answered):
            return "used:told", True
        return "used:untold", at_us >= (approval.used_us or at_us) + _RECORD_WAIT_US
    return state, True


def _told(answered: Answered | None) -> bool:
    """Whether `answered` is the answer of the request that used the approval (not that
    of an earlier try, answered while it was still pending)."""
    return answered is not None and answered.approval_status not in (None, "pending")


def _waiting(approval: Approval, at_us: int) -> str:
    if approval.hold_until_us is None:
        return "none"  # nothing ever waits on it (a changed MCP tool's definition)
    fresh = approval.waiting_until_us is None and at_us < approval.created_us + _FIRST_LEASE_US
    return "waits" if approval.waiting(at_us) or fresh else "gone"


def message(approval: Approval, page_url: str | None, at_us: int | None = None,
            answered: Answered | None = None) -> dict[str, Any]:
    """chat.postMessage's and chat.update's `text` and `blocks` for `approval` as it
    stands at `at_us` (`answered`: as in `state_of`)."""
    at_us = now() if at_us is None else at_us
    state = approval.state(at_us)
    requester, target = slack(approval.requester), slack(approval.target)
    why = "; ".join(approval.reasons) or ", ".join(approval.rules) or "held by policy"
    fields = [
        f"Asked by: {requester}", f"Target: {target}", f"Why: {slack(why)}",
        f"Approving grants: {_grant(approval)}",
        f"Approvers: {slack(', '.join(approval.approvers))}",
    ]
    if approval.approvals_needed > 1:
        fields.append(f"Needs: {approval.approvals_needed} different approvers")
    if state == "pending" or (state == "approved" and approval.grant_mode == "once"):
        fields.append(f"Expires: {_utc(approval.expires_us)}")
    outcome = _outcome(approval, state, at_us, answered)
    buttons = [] if state != "pending" else [
        {"type": "button", "action_id": APPROVE, "value": approval.id, "style": "primary",
         "text": _plain("Approve")},
        {"type": "button", "action_id": DENY, "value": approval.id, "style": "danger",
         "text": _plain("Deny")}]
    if page_url:
        buttons.append({"type": "button", "action_id": OPEN, "url": page_url,
                        "text": _plain("Open in tollgate")})
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(
            "Approved, then refused" if state == "used" and _told(answered)
            and answered is not None and answered.refusal is not None else _HEADERS[state])},
        {"type": "section", "text": _plain(_cut(slack(approval.summary), _TEXT))},
        {"type": "section", "fields": [_plain(_cut(field, _FIELD)) for field in fields]},
        {"type": "section", "text": _plain(_cut(outcome, _TEXT))},
    ]
    if buttons:
        blocks.append({"type": "actions", "block_id": f"tollgate:{approval.id}",
                       "elements": buttons})
    blocks.append({"type": "context", "elements": [_plain(f"tollgate approval {approval.id}")]})
    text = (f"tollgate: {requester} asks for approval on {target}: "
            f"{slack(approval.summary)[:300]} ({outcome})")
    return {"text": _cut(text, _TEXT), "blocks": blocks}


_HEADERS = {"pending": "Approval needed", "approved": "Approved", "used": "Approved",
            "denied": "Denied", "expired": "Expired undecided", "abandoned": "Abandoned"}


def _grant(approval: Approval) -> str:
    if approval.grant_mode == "once":
        return "this one request"
    return (f"{slack(approval.requester)}'s requests on {slack(approval.target)} for "
            f"{approval.grant_minutes} min")


def _outcome(approval: Approval, state: str, at_us: int, answered: Answered | None) -> str:
    """What stands now, in one sentence or two: of a used approval, what its request did,
    as its record says."""
    # Every approver of an approval that needed several, in the order they approved.
    by = slack(", ".join(approval.approved_by) if state in ("approved", "used")
               and approval.approved_by else approval.decided_by or "")
    because = f": {slack(approval.reason)}" if approval.reason else ""
    if state == "pending":
        quorum = ""
        if approval.approved_by:
            more = approval.approvals_needed - len(approval.approved_by)
            quorum = (f" Approved so far by {slack(', '.join(approval.approved_by))}: "
                      f"{more} more approver{'s' if more > 1 else ''} needed.")
        elif approval.approvals_needed > 1:
            quorum = (f" It needs {approval.approvals_needed} different approvers; nobody "
                      "has approved it yet.")
        waiting = _waiting(approval, at_us)
        if waiting == "waits":
            until = approval.hold_until_us or approval.expires_us
            return (f"A request waits on it, at most until "
                    f"{_utc(min(until, approval.expires_us))}.{quorum}")
        if waiting == "gone":
            return ("Nobody waits on it any more (the client left, its hold ended, or the "
                    "replica holding it stopped): approving lets a retry of it through."
                    f"{quorum}")
        return f"Waiting for a decision.{quorum}"
    if state == "approved":
        return f"Approved by {by} at {_utc(approval.decided_us)}{because}."
    if state == "used":
        then = (f"{slack(answered.said())}." if answered is not None and _told(answered)
                else "its answer is not in the record yet."
                if at_us < (approval.used_us or at_us) + _RECORD_WAIT_US
                else "its answer is missing from the record.")
        return f"Approved by {by} at {_utc(approval.decided_us)}{because}; {then}"
    if state == "denied":
        return f"Denied by {by} at {_utc(approval.decided_us)}{because}."
    if state == "expired":
        return f"Expired undecided at {_utc(approval.expires_us)}: a retry asks anew."
    return f"Abandoned at {_utc(approval.decided_us)}{because}."


def deny_dialog(approval: Approval, channel: str | None) -> dict[str, Any]:
    """views.open's modal asking why it is denied; its submission denies (the approval
    and the message's channel ride in `private_metadata`)."""
    return {
        "type": "modal", "callback_id": DENY_DIALOG,
        "private_metadata": json.dumps({"approval": approval.id, "channel": channel}),
        "title": _plain("Deny approval"), "submit": _plain("Deny"),
        "close": _plain("Cancel"),
        "blocks": [
            {"type": "section", "text": _plain(_cut(slack(approval.summary), _TEXT))},
            {"type": "input", "block_id": REASON, "label": _plain("Why? The agent is told."),
             "element": {"type": "plain_text_input", "action_id": REASON,
                         "multiline": True, "max_length": 1000}},
        ],
    }


def _cut(text: str, most: int) -> str:
    """`text`, or as much of it as fits in `most` characters, saying it goes on."""
    return text if len(text) <= most else text[:most - 1] + "…"


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text or " ", "emoji": False}


def _utc(us: int | None) -> str:
    if us is None:
        return "an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(us / 1_000_000))
