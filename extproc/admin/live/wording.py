"""What a watched session's record that is no decision says, in words: a person starting
to watch, a moderator's end, an alert, an approval. The watch's stream carries these
words (`said`), so the page and `tollgate sessions watch` say the same thing and neither
shows such a record's action (`allow`: the act was let through) as if an exchange had
been decided.
"""

from __future__ import annotations

from typing import Any

# A moderation record's action, as done (allowed) and as asked for (refused).
_DONE = {"watch": "started watching", "join": "joined (may type into the session)",
         "end": "ended the session", "lock": "locked", "unlock": "unlocked"}
_ASKED = {"watch": "watching", "join": "joining", "end": "ending the session",
          "lock": "locking", "unlock": "unlocking"}


def said(kind: str, action: str, document: dict[str, Any]) -> str | None:
    """The words for a record that is no decision of the session's own; None for an
    exchange or a decision (a hold, recorded as it begins to wait), which are shown by
    their decision and what they did."""
    if kind in ("exchange", "decision"):
        return None
    if kind == "moderation":
        return _moderation(action, document)
    if kind == "alert":
        alert = (document.get("meaning") or {}).get("alert") or {}
        return (f"alert ({alert.get('severity') or '?'}) {alert.get('rule') or '?'}: "
                f"{alert.get('message') or ''}").rstrip(": ")
    if kind == "approval":
        approval = document.get("approval") or {}
        by = f" by {approval['decided_by']}" if approval.get("decided_by") else ""
        why = f": {approval['reason']}" if approval.get("reason") else ""
        return f"approval {approval.get('id') or '?'} {approval.get('status') or '?'}{by}{why}"
    return f"{kind} record"


def _moderation(action: str, document: dict[str, Any]) -> str:
    meaning = (document.get("meaning") or {}).get("moderation") or {}
    who = (document.get("identity") or {}).get("sub") or "someone"
    act = str(meaning.get("action") or "?")
    whom = f" {meaning['identity']}" if act in ("lock", "unlock") and meaning.get(
        "identity") else ""
    why = f": {meaning['reason']}" if meaning.get("reason") else ""
    if action == "allow":
        return f"{who} {_DONE.get(act, act)}{whom}{why}"
    refusal = (document.get("outcome") or {}).get("refusal") or action
    return f"{who} was refused {_ASKED.get(act, act)}{whom} ({refusal})"
