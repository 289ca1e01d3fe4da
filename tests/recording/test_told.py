"""The words every surface tells an exchange's end with (recording/told.py): the approvals
page, the CLI and Slack (approvals/answered.py) and the compliance report
(reporting/stories.py) say the same of the same record."""

from __future__ import annotations

import pytest

from extproc.approvals.answered import Answered
from extproc.recording.told import did, refused_because
from extproc.reporting import stories


@pytest.mark.parametrize(("detail", "status", "told"), [
    ("DELETE 3", 200, "DELETE 3"),
    (None, 200, "its target answered 200 OK"),
    (None, 599, "its target answered 599"),
    (None, None, "its target answered"),
])
def test_what_a_run_did(detail: str | None, status: int | None, told: str) -> None:
    assert did(detail, status) == told


@pytest.mark.parametrize(("code", "detail", "told"), [
    ("effect_unmeasured", None, "its effect could not be measured (effect_unmeasured)"),
    ("effect_unmeasured", "no savepoint", "its effect could not be measured "
                                          "(effect_unmeasured): no savepoint"),
    ("made_up", "a message", "a message (made_up)"),
    ("made_up", None, "made_up"),
    (None, None, "refused"),
])
def test_why_it_was_refused(code: str | None, detail: str | None, told: str) -> None:
    assert refused_because(code, detail) == told


@pytest.mark.parametrize(("action", "status", "refusal", "detail"), [
    ("allow", 200, None, "DELETE 3"),
    ("allow", 200, None, None),
    ("deny", 403, "effect_unmeasured", None),
])
def test_the_page_and_the_report_tell_one_end_alike(action: str, status: int,
                                                    refusal: str | None,
                                                    detail: str | None) -> None:
    answered = Answered(at_us=0, status=status, action=action, refusal=refusal,
                        approval_status="used", client_left=False, detail=detail)
    ended = {"status": status, "refusal": refusal, "detail": detail}
    report = stories.ending({"outcome": action, "ended": ended})
    page = answered.said()
    assert report.split(": ", 1)[1] == page.split(": ", 1)[1], (report, page)
