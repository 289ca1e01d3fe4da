"""tollgate's refusals as a PostgreSQL client reads them (ErrorResponse fields)."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.exchange.state import Answer
from extproc.postgres import messages as pg
from extproc.postgres.refusals import refusal_message

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def shown(status: int, body: dict[str, Any]) -> dict[str, str]:
    message = refusal_message(Answer(status, body, body.get("error", "denied"), TRACE))
    assert message[:1] == b"E"
    return pg.fields(message[5:])


def test_a_deny_names_its_reasons_rules_and_trace() -> None:
    fields = shown(403, {"reasons": ["destructive SQL: DROP"], "rules": ["sql.destructive"]})
    assert fields["C"] == "42501" and fields["S"] == "ERROR"
    assert fields["M"] == "tollgate: destructive SQL: DROP"
    assert fields["D"] == f"rules: sql.destructive; trace id {TRACE}"
    assert "H" not in fields


@pytest.mark.parametrize(("status", "hint"), [
    ("pending", True),    # the hold ended first: a retry passes once it is approved
    ("denied", False),    # decided: nothing left for an approver
    ("expired", False),   # nobody can approve it any more
])
def test_only_an_undecided_approval_sends_the_client_to_an_approver(
        status: str, hint: bool) -> None:
    fields = shown(403, {"error": "approval_required", "reasons": ["DELETE without WHERE"],
                         "rules": ["sql.unbounded_write"], "approval_id": "ap-1",
                         "status": status, "approve_url": "http://gw/approvals/ap-1"})
    assert fields["D"].startswith(f"approval ap-1 ({status}), held: DELETE without WHERE; ")
    assert ("H" in fields) == hint
    if hint:
        assert "http://gw/approvals/ap-1" in fields["H"]


def test_a_denied_hold_says_who_denied_it_and_why_first() -> None:
    """psql shows the message first: the approver's name and reason, not only the
    reason the statement was held (which follows, in the detail)."""
    fields = shown(403, {
        "error": "approval_denied", "reasons": ["DELETE without WHERE"],
        "message": "approval ap-1 was denied by dana: not during the freeze",
        "rules": ["sql.unbounded_write"], "approval_id": "ap-1", "status": "denied"})
    assert fields["M"] == "tollgate: approval ap-1 was denied by dana: not during the freeze"
    assert fields["D"] == ("approval ap-1 (denied), held: DELETE without WHERE; "
                           f"rules: sql.unbounded_write; trace id {TRACE}")
