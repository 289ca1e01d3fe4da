"""What deciding an approval does now, as the API and the CLI tell the approver: a
waiting request goes at once; with nobody waiting, only a retry is affected."""

from __future__ import annotations

import pytest

from extproc.admin.approvals.api import effect
from extproc.exchange.pipeline import approval_refusal
from tests.support.fakes import approval

LEASE = 2**62  # a lease far in the future: a request waits


@pytest.mark.parametrize(("status", "grant", "waiting", "said"), [
    ("approved", "once", True, "the request waiting on it (on replica-1) passes now"),
    ("approved", "once", False, "no request waits on it now (its client left, or "
                                "replica-1, which held it, stopped): a retry of exactly "
                                "this request passes, once"),
    ("approved", "window", False, "no request waits on it now (its client left, or "
                                  "replica-1, which held it, stopped): the requester's "
                                  "requests on its target pass for the window"),
    ("denied", "once", True, "the waiting request is refused now"),
    ("denied", "once", False, "no request waits on it now: a retry of it is refused"),
])
def test_the_effect_says_whether_anyone_waits(status: str, grant: str, waiting: bool,
                                              said: str) -> None:
    decided = approval(status, grant, held_by="replica-1",
                       waiting_until_us=LEASE if waiting else None)
    assert effect(decided) == said


@pytest.mark.parametrize(("status", "code", "said"), [
    ("denied", "approval_denied", "approval ap-1 was denied by dba1: no"),
    ("pending", "approval_required", "approval ap-1 is pending: retry once it is approved"),
    ("used", "approval_required", "let another request like this one through, once"),
    ("abandoned", "approval_required", "approval ap-1 was abandoned (its replica stopped)"),
])
def test_a_held_requests_refusal_says_where_its_approval_stands(status: str, code: str,
                                                                said: str) -> None:
    """What the agent is told when its hold ends without letting it through, by what
    became of the approval: an abandoned one is not called expired."""
    refused = approval_refusal(approval(status, reason="no" if status == "denied" else
                                        "its replica stopped"), None)
    assert (refused.status, refused.error) == (403, code)
    assert said in refused.message
