"""What an exchange did, as its record says, in the words every surface shares: the
approvals page, `tollgate approvals show`, Slack and the compliance report all tell an
approved request's end with these, so none of them says it ran where another says it was
refused.
"""

from __future__ import annotations

from http import HTTPStatus

# Why the gateway refused an exchange, in words, by its refusal code (its code follows).
_REFUSED_BECAUSE = {
    "effect_unmeasured": "its effect could not be measured",
    "effect_grew": "run again once approved, it did more than the run that was approved",
    "effect_unknown": "the approved effect was measured by another gateway or before a "
                      "restart",
    "approval_required": "it needed an approval",
    "approvals_unavailable": "the approvals store could not answer",
    "recording_unavailable": "the record could not take it",
    "unauthenticated": "no valid token",
    "internal_error": "an error in tollgate",
    "client_left": "its client went away",
}


def refused_because(code: str | None, detail: str | None = None) -> str:
    """A refusal's reason in words, its code after it; `detail`, the message the record
    kept, where it says more."""
    words = _REFUSED_BECAUSE.get(code or "", "")
    said = detail if detail and detail != code else ""
    if words and said:
        return f"{words} ({code}): {said}"
    if words or said:
        return f"{words or said} ({code})" if code else (words or said)
    return code or "refused"


def did(detail: str | None, status: int | None) -> str:
    """What an exchange that ran did: its front's words (`DELETE 3`, a database's error,
    an exit status), else what its target answered ("its target answered 200 OK")."""
    if detail:
        return detail
    if status is None:
        return "its target answered"
    try:
        return f"its target answered {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"its target answered {status}"
