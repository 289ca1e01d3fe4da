"""What became of a held exchange, and what an approver's decision was, in words.

A record keeps codes and statuses as they stood when it was written: a held exchange's
`outcome` (the action that settled it, tollgate's refusal code, what the front said it
did, as `DELETE 3`) and its approval as it stood then; an approver's record, the approval
as it stood after their decision (a first approval of two leaves it pending). Read alone,
either misleads: "used by dana, ended deny" for a DELETE dana approved that the gateway
then refused, "pending" for dana's approval that waited for a second approver. These
sentences join what the period holds of one approval (its decisions, and each exchange
that met it) and say what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from extproc.recording.told import did, refused_because


def names(approval: dict[str, Any]) -> str:
    """Who approved it: everyone, where it needed several approvers."""
    who = list(approval.get("approved_by") or []) or [approval.get("decided_by") or "?"]
    return " and ".join(who) if len(who) < 3 else ", ".join(who[:-1]) + f" and {who[-1]}"


def held(event: dict[str, Any], decisions: Sequence[dict[str, Any]],
         later: dict[str, Any] | None) -> str:
    """What became of a held exchange: approved and ran (what it did), approved and then
    refused by the gateway (why), denied (by whom, why), expired undecided, its client
    gone; `decisions`: the approvers' decisions on its approval in the period,
    `later`: the last exchange after it that met the same approval (a retry)."""
    approval = event.get("approval") or {}
    ended = event.get("ended") or {}
    action, refusal, detail = event.get("outcome"), ended.get("refusal"), ended.get("detail")
    status = approval.get("status")
    if not approval:
        return _unapproved(action, ended)
    by = names(approval)
    via = " (an approval given earlier, for a retry)" if approval.get("via") == "grant" \
        else ""
    if action == "allow":
        return f"held, then approved by {by}{via} and ran: {_did(ended)}"
    if action == "deny" and refusal == "approval_denied":
        reason = approval.get("reason")
        return f"held; denied by {approval.get('decided_by')}" + (f": {reason}" if reason
                                                                   else "")
    if action == "deny" and status in ("approved", "used"):
        return f"held, approved by {by}{via}, then refused: {_why(ended)}"
    if action == "deny":
        return f"refused: {_why(ended)}"
    if action == "none" or refusal == "client_left" or detail == "client_left":
        found = "held; its client went away while it waited"
    elif status == "expired":
        found = "held; expired undecided"
    elif status == "abandoned":
        found = f"held; its approval was abandoned ({approval.get('reason')})"
    elif status == "used":
        found = "held; its approval had let another request like it through already"
    elif status in ("approved", "denied"):  # decided as its wait ended: said here
        decider = by if status == "approved" else approval.get("decided_by")
        return (f"held; {status} by {decider} after its wait ended (the client was told "
                "to retry)" + _afterwards((), later))
    else:
        found = "held; still undecided when its wait ended (the client was told to retry)"
    return found + _afterwards(decisions, later)


def _unapproved(action: Any, ended: dict[str, Any]) -> str:
    """A held exchange that never met an approval (refused first, its client gone)."""
    if action == "deny":
        return f"held, then refused: {_why(ended)}"
    if action == "none":
        return "held; its client went away before anything was decided"
    return "held; no approval was asked"


def _afterwards(decisions: Sequence[dict[str, Any]], later: dict[str, Any] | None) -> str:
    """What happened to an approval after the exchange it held had begun: its decisions,
    and its retry's end."""
    parts = [f"{decision_words(d)} by {d['by']}" for d in decisions]
    if later is not None:
        parts.append(f"its retry ({later['id']}) {ending(later)}")
    return "".join(f"; then {part}" for part in parts)


def ending(event: dict[str, Any]) -> str:
    """How an exchange that met an approval ended, in a few words."""
    ended = event.get("ended") or {}
    if event.get("outcome") == "allow":
        return f"ran: {_did(ended)}"
    if event.get("outcome") == "deny":
        return f"was refused: {_why(ended)}"
    return "waited again, undecided"


def decision_words(decision: dict[str, Any]) -> str:
    """One approver's decision as they made it: approved (and which of how many, where it
    needs several), denied; never the approval's status after it."""
    if decision.get("tried") == "deny":
        return "denied"
    needed = int(decision.get("needed") or 1)
    if needed == 1:
        return "approved"
    return f"approved ({decision.get('place') or '?'} of {needed} approvals needed)"


def then(decision: dict[str, Any], others: Sequence[dict[str, Any]],
         used: dict[str, Any] | None) -> str:
    """What came of a decision: the other approvers' decisions after it and the end of
    the exchange that met the approval after it (ran, refused), in the period."""
    parts = [f"{decision_words(d)} by {d['by']}" for d in others]
    if used is not None:
        parts.append(f"the request {ending(used)}")
    if parts:
        return "; ".join(parts)
    if decision.get("tried") == "deny":
        return "the request was refused"
    if int(decision.get("needed") or 1) > int(decision.get("place") or 1):
        return "waited for another approver; nothing more in the period"
    return "no request met it again in the period"


def _did(ended: dict[str, Any]) -> str:
    """What an exchange that ran did (told.py: as every surface says it)."""
    return did(ended.get("detail"), ended.get("status"))


def _why(ended: dict[str, Any]) -> str:
    """Why the gateway or the policy refused an exchange."""
    if ended.get("refusal"):
        return refused_because(ended["refusal"], ended.get("detail"))
    denied = ended.get("denied_by") or {}
    reasons = "; ".join(denied.get("reasons") or []) or "the policy denied it"
    rules = ", ".join(denied.get("rules") or [])
    return f"{reasons} (policy: {rules})" if rules else reasons
