"""What the report says of held exchanges and of approvers' decisions is what happened,
in words: a first approval of two is dana's approval (1 of 2), never "pending"; a DELETE
dana approved that the gateway then refused says so, and why; a DELETE two approved
that ran says what it did (`DELETE 3`); a hold that expired says so. The records are
written through a real Recorder, each approval as the approvals model records it
(`Approval.for_record`), each exchange's end as the gateway's outcome keeps it."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import pytest

from extproc.approvals.model import Approval
from extproc.recording import Evidence
from extproc.recording.chain import Signer
from extproc.recording.record import Decided
from extproc.reporting import gather, html, signing
from extproc.store import connect
from tests.recording.conftest import evidence, record

NOW = time.time()
TWO = "DELETE FROM orders WHERE id < 4"
ONE = "DELETE FROM orders WHERE id = 9"
LATE = "DELETE FROM invoices"
WIDE = "DELETE FROM carts WHERE id = 1"


def approval(n: int, summary: str, **changed: Any) -> Approval:
    """An approval as the store holds it, of the held DELETE `summary`."""
    return dataclasses.replace(Approval(
        id=f"ap-{n}", fingerprint="f" * 64, requester="svc-autogen", identity={},
        target="orders", summary=summary, request={}, approvers=("group:dba",),
        rules=("blast.effect",), reasons=("would delete rows",), grant_mode="once",
        grant_minutes=None, status="pending", created_us=int(NOW * 1e6),
        expires_us=int((NOW + 3600) * 1e6), trace_id=f"{n:032x}", span_id=f"{n:016x}",
        held_by="writer-a"), **changed)


def held(n: int, at: float, statement: str, met: Approval, via: str, action: str,
         refusal: str | None = None, detail: str | None = None,
         denied: Decided | None = None) -> Evidence:
    """A held exchange as the gateway records it: the policy's hold, the approval it met
    as it stood at its end, and its end (the action that settled it, the refusal, what
    the front said it did)."""
    found = evidence(n, action="hold", rules=("blast.effect",), started=NOW - at,
                     method="QUERY", path="/")
    found.decisions[0].approvers = ("group:dba",)
    if denied is not None:
        found.decisions.append(denied)
    found.meaning_key, found.meaning = "sql", {"statements": [{"text": statement}]}
    found.approval = met.for_record(via)
    found.duration_ms = 2000
    found.outcome = {"tollgate.decision.action": action,
                     "http.response.status_code": 403 if action != "allow" else 200,
                     **({"tollgate.refusal": refusal} if refusal else {}),
                     **({"tollgate.outcome": detail} if detail else {})}
    return found


def decided(n: int, at: float, approver: str, after: Approval, reason: str) -> Evidence:
    """An approver's approval through the approvals API, as api.py records it: their
    request (its body, their reason) and the approval as it stands after it."""
    found = evidence(n, sub=approver, method="POST", path=f"/approvals/{after.id}/approve",
                     body=f'{{"reason": "{reason}"}}'.encode(), started=NOW - at)
    found.kind, found.decisions = "approval", []
    found.approval = after.for_record("api")
    found.response = {"status": 200, "headers": {"content-type": "application/json"},
                      "body": None}
    found.outcome = {"tollgate.decision.action": "approve",
                     "http.response.status_code": 200}
    return found


def period() -> list[Evidence]:
    two = approval(1, TWO, approvals_needed=2)
    dana = dataclasses.replace(two, approved_by=("dana",))
    both = dataclasses.replace(dana, status="approved", decided_by="erin",
                               decided_us=int(NOW * 1e6), reason="second look",
                               approved_by=("dana", "erin"))
    one = approval(2, ONE)
    approved = dataclasses.replace(one, status="approved", decided_by="dana",
                                   decided_us=int(NOW * 1e6), reason="ticket OPS-9")
    late = approval(3, LATE, expires_us=int((NOW - 100) * 1e6))
    wide = dataclasses.replace(approval(4, WIDE), status="used", decided_by="dana",
                               reason="one cart")
    over = Decided("request", "deny", ("would delete 40 rows of public.lines",),
                   ("blast.effect",), 403, "rev-1", 40)
    return [
        # Two approvers: the wait ends undecided; dana, then erin approve; the retry runs.
        held(1, 900, TWO, two, "hold", "hold", "approval_required"),
        decided(2, 880, "dana", dana, "ticket OPS-7"),
        decided(3, 870, "erin", both, "second look"),
        held(4, 860, TWO, dataclasses.replace(both, status="used"), "grant", "allow",
             detail="DELETE 3"),
        # One approver: approved while it waits, then refused by the gateway.
        held(5, 800, ONE, dataclasses.replace(approved, status="used"), "hold", "deny",
             "effect_unmeasured", "the write's effect could not be measured: its "
             "prepared statement was replaced"),
        decided(6, 799, "dana", approved, "ticket OPS-9"),
        # Nobody decided: it expired.
        held(7, 700, LATE, dataclasses.replace(late, status="pending"), "hold", "hold",
             "approval_required"),
        # Approved, then over the policy's bound once it ran again.
        held(8, 600, WIDE, wide, "grant", "deny", denied=over),
    ]


@pytest.fixture
async def told(store_url: str, signer: Signer, tmp_path: Path) -> dict[str, Any]:
    await record(store_url, signer, period())
    connection = connect(store_url, migrate=False)
    try:
        report = gather(connection, int((NOW - 3600) * 1e6), int((NOW + 60) * 1e6),
                        verifier=signer.public)
    finally:
        connection.close()
    return {"data": report.data, "page": html.render(report, signing.signed(report.data,
                                                                            signer))}


def rows(page: str, heading: str) -> list[str]:
    """The text of each row of the first table after `heading`."""
    part = page[page.index(heading):]
    part = part[:part.index("</table>")]
    return [re.sub(r"<[^>]+>", "", row) for row in re.findall(r"<tr>(.*?)</tr>", part)][1:]


def test_each_held_exchange_says_what_happened(told: dict[str, Any]) -> None:
    happened = [(h["what"], h["happened"]) for h in told["data"]["held"]["listed"]]
    retry = next(h["id"] for h in told["data"]["held"]["listed"] if h["outcome"] == "allow")
    assert happened == [
        (TWO, "held; still undecided when its wait ended (the client was told to retry); "
              "then approved (1 of 2 approvals needed) by dana; then approved (2 of 2 "
              f"approvals needed) by erin; then its retry ({retry}) ran: DELETE 3"),
        (TWO, "held, then approved by dana and erin (an approval given earlier, for a "
              "retry) and ran: DELETE 3"),
        (ONE, "held, approved by dana, then refused: its effect could not be measured "
              "(effect_unmeasured): the write's effect could not be measured: its prepared "
              "statement was replaced"),
        (LATE, "held; expired undecided"),
        (WIDE, "held, approved by dana (an approval given earlier, for a retry), then "
               "refused: would delete 40 rows of public.lines (policy: blast.effect)"),
    ]


def test_the_page_says_it_in_words_not_codes(told: dict[str, Any]) -> None:
    page = told["page"]
    held_rows = rows(page, "Exchanges a policy held")
    assert not any(row.endswith(("deny", "hold", "none", "allow")) for row in held_rows)
    assert not any("used by" in row for row in held_rows), held_rows
    assert any(row.endswith("held, approved by dana, then refused: its effect could not be "
                            "measured (effect_unmeasured): the write&#x27;s effect could not "
                            "be measured: its prepared statement was replaced")
               for row in held_rows), held_rows
    summary = rows(page, "<h2>Summary")
    assert "ended hold" not in page and "ended none" not in page
    assert any(row.startswith("exchanges held and still undecided when they ended")
               for row in summary), summary


def test_a_first_approval_of_two_is_that_approvers_approval(told: dict[str, Any]) -> None:
    decisions = {(d["by"], d["approval"]["id"]): d for d in told["data"]["approvals"]["listed"]}
    first, second = decisions["dana", "ap-1"], decisions["erin", "ap-1"]
    assert (first["decision"], first["reason"]) == ("approved (1 of 2 approvals needed)",
                                                    "ticket OPS-7")
    assert first["then"] == ("approved (2 of 2 approvals needed) by erin; the request ran: "
                             "DELETE 3")
    assert (second["decision"], second["then"]) == ("approved (2 of 2 approvals needed)",
                                                    "the request ran: DELETE 3")
    only = decisions["dana", "ap-2"]
    assert (only["decision"], only["then"]) == (
        "approved", "the request was refused: its effect could not be measured "
        "(effect_unmeasured): the write's effect could not be measured: its prepared "
        "statement was replaced")
    page_rows = rows(told["page"], "Approval decisions")
    (dana_row,) = [row for row in page_rows if "ap-1" in row and "dana" in row]
    assert "pending" not in dana_row
    assert "approved (1 of 2 approvals needed)" in dana_row and "ticket OPS-7" in dana_row
