"""`gather`: a report's figures are the record's, on SQLite and PostgreSQL; a broken
chain shows as broken; the page escapes what agents wrote; the signed JSON verifies
and stops verifying when one value changes."""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path

from extproc.recording.anchors import read
from extproc.recording.chain import Signer
from extproc.recording.retention import Rules
from extproc.reporting import Report, gather, html, sealing, signing
from extproc.store import connect
from tests.reporting.conftest import (
    HELD_WHAT,
    HOSTILE,
    LONG_IDENTITY,
    LONG_TABLE,
    LONG_WHAT,
    NOW,
)

HOUR_AGO_US, NOW_US = int((NOW - 3600) * 1e6), int((time.time() + 60) * 1e6)


def report_of(url: str, signer: Signer, tmp_path: Path, target: str | None = None,
              since_us: int = HOUR_AGO_US) -> Report:
    connection = connect(url, migrate=False)
    try:
        return gather(connection, since_us, NOW_US, target, verifier=signer.public,
                      logs=[read(tmp_path / "anchors.jsonl")],
                      retention=Rules(30, {"billing": 7, "orders": 0}))
    finally:
        connection.close()


def page_of(report: Report, signer: Signer) -> str:
    return html.render(report, signing.signed(report.data, signer))


def execute(url: str, sql: str) -> None:
    connection = connect(url, migrate=False)
    try:
        connection.execute(sql)
    finally:
        connection.close()


def test_the_figures_are_what_was_recorded(recorded: str, signer: Signer,
                                           tmp_path: Path) -> None:
    execute(recorded, "INSERT INTO legal_holds (session_id, held_us, held_by, reason) "
                      "VALUES ('run-7', 1, 'counsel', 'case 12')")
    data = report_of(recorded, signer, tmp_path).data
    assert data["records"] == {
        "total": 17, "by_kind": {"exchange": 10, "approval": 3, "access": 2, "alert": 1,
                                 "policy": 1},
        "by_action": {"allow": 6, "deny": 5, "approve": 2, "hold": 2, "alert": 1},
        "exchanges_by_action": {"allow": 5, "deny": 3, "hold": 2}}
    # Identities acting through the gateway; approvers and readers apart.
    assert data["identities"] == [
        {"identity": "svc-autogen", "records": 8, "refused": 2, "held": 1},
        {"identity": HOSTILE, "records": 1, "refused": 1, "held": 0},
        {"identity": "svc-rogue", "records": 1, "refused": 0, "held": 0},
        {"identity": LONG_IDENTITY, "records": 1, "refused": 0, "held": 1}]
    assert data["approvers"] == [
        {"approver": "alice", "decisions": 1, "refused_attempts": 0},
        {"approver": "bob", "decisions": 0, "refused_attempts": 1},
        {"approver": "svc-autogen", "decisions": 0, "refused_attempts": 1}]
    # A reader read something; who was only refused is listed apart.
    assert data["readers"] == [
        {"reader": "auditor-ann", "reads": 1, "refused": 0, "records_returned": 3}]
    assert data["refused_readers"] == [{"identity": "svc-nosy", "refused": 1}]
    assert data["background_refused"] == {}
    assert [(t["target"], t["records"]) for t in data["targets"]] == [("orders", 9),
                                                                       ("billing", 2)]
    assert data["refusals_by_rule"] == {"sql.write": 2, "k8s.secrets": 1,
                                        "tollgate: unauthenticated": 1}
    assert data["masked_by_detector"] == {"email": 3, "credit_card": 1}
    # Each held exchange with what it does (the record's `what`) and its approval.
    held, waiting = data["held"]["listed"]
    assert (held["what"], held["rules"], held["approvers"], held["approval"]["decided_by"]) \
        == (HELD_WHAT, ["orders.delete"], ["ops"], "alice")
    assert (waiting["identity"], waiting["what"], waiting["approval"]["decided_by"]) == (
        LONG_IDENTITY, LONG_WHAT, None)
    # Decisions made, and attempts the approvals API refused, apart.
    (decided,) = data["approvals"]["listed"]
    assert decided["identity"] == "alice"
    assert decided["approval"]["status"] == "approved"
    assert decided["approval"]["reason"] == "ticket OPS-1 " + HOSTILE
    assert decided["approval"]["summary"] == HELD_WHAT
    assert data["refused_attempts"]["count"] == 2
    assert [(a["identity"], a["tried"], a["refusal"], a["answered"], a["approval"]["status"])
            for a in data["refused_attempts"]["listed"]] == [
        ("svc-autogen", "approve", "self_approval", 403, "pending"),
        ("bob", "deny", "reason_required", 400, "pending")]
    (alert,) = data["alerts"]["listed"]
    assert (alert["rule"], alert["severity"], alert["message"]) == (
        "activity.burst", "high", HOSTILE)
    (load,) = data["policy_loads"]["listed"]
    assert load["revision"] == "rev-1" and load["modules"][0]["name"] == "policy.rego"
    assert data["policies"]["revisions"] == [{
        "revision": "rev-1", "loaded_us": [load["started_us"]], "decisions": 10,
        "by_action": {"allow": 5, "deny": 3, "hold": 2}}]
    assert data["policies"]["unrecorded"] == []
    assert sum(b["records"] for b in data["activity"]["buckets"]) == 16
    assert data["activity"]["bucket"] == "hour"
    assert data["retention"] == {
        "store_days": 30, "targets": {"billing": 7, "orders": 0},
        "legal_holds": [{"session_id": "run-7", "held_us": 1, "held_by": "counsel",
                         "reason": "case 12"}], "legal_holds_table": True}
    integrity = data["integrity"]
    assert integrity["intact"] and integrity["vouched"]
    assert integrity["statement"].startswith("Nothing is missing")
    assert [c["records"] for c in integrity["chains"]] == [17]


def test_one_target_and_the_revision_in_force_before_the_period(
        recorded: str, signer: Signer, tmp_path: Path) -> None:
    """The load before the period is what served as it began; a target's report counts
    that target's records alone."""
    data = report_of(recorded, signer, tmp_path, "billing", int((NOW - 2500) * 1e6)).data
    assert data["records"]["by_kind"] == {"alert": 1, "exchange": 1}
    assert data["refusals_by_rule"] == {"k8s.secrets": 1, "sql.write": 1}
    (before,) = data["policies"]["in_force_at_start"]
    assert before["revision"] == "rev-1"
    assert data["policy_loads"]["count"] == 0
    assert data["retention"]["targets"] == {"billing": 7}


def test_a_store_from_before_legal_holds_has_none(recorded: str, signer: Signer,
                                                 tmp_path: Path) -> None:
    execute(recorded, "DROP TABLE legal_holds")
    retention = report_of(recorded, signer, tmp_path).data["retention"]
    assert (retention["legal_holds"], retention["legal_holds_table"]) == ([], False)


def test_a_broken_chain_shows_as_broken(recorded: str, signer: Signer,
                                        tmp_path: Path) -> None:
    execute(recorded, "UPDATE records SET content = replace(content, 'sql.write', "
                      "'sql.read') WHERE seq = 7")
    report = report_of(recorded, signer, tmp_path)
    integrity = report.data["integrity"]
    assert not report.intact and not integrity["vouched"]
    assert integrity["statement"].startswith("BROKEN: 1 problem")
    assert "writer-a:7: its content does not match its hash (edited)" in integrity["problems"]
    page = page_of(report, signer)
    assert 'class="verdict broken"' in page and "writer-a:7: its content" in page


def test_the_page_escapes_what_agents_wrote(recorded: str, signer: Signer,
                                            tmp_path: Path) -> None:
    page = page_of(report_of(recorded, signer, tmp_path), signer)
    # One script element: the signed JSON as a data block, never run, its `<` escaped.
    assert page.count("<script") == 1 and sealing.JSON_BLOCK in page
    assert "\\u003cscript>alert" in page
    assert page.count("&lt;script&gt;alert(&#x27;agent&#x27;)&lt;/script&gt;") >= 3
    # Nothing fetched: no link, import or script; the charts' references are their own.
    assert "<link" not in page and "@import" not in page
    found = re.findall(r'(?:src|href)="([^"]*)"|url\(([^)]*)\)', page)
    references = [ref for pair in found for ref in pair if ref]
    assert references and all(ref.startswith("#") for ref in references)
    assert page.count("<svg") == 2  # activity and refusals, inline


def test_the_page_tells_decisions_refused_attempts_and_who_did_what_apart(
        recorded: str, signer: Signer, tmp_path: Path) -> None:
    """A held exchange nobody decided yet is undecided (never "by None"); refused
    attempts at deciding are listed as such, with why in words; approvers and readers
    have tables of their own, and the summary counts them apart from acting identities."""
    page = page_of(report_of(recorded, signer, tmp_path), signer)
    assert "by None" not in page and ">None<" not in page
    assert ("<td>a-22</td><td>held; still undecided when its wait ended (the client was "
            "told to retry)</td>") in page
    assert ("<td>a-21</td><td>held; approved by alice after its wait ended (the client was "
            "told to retry)</td>") in page
    attempts = page[page.index("Refused attempts at deciding"):]
    attempts = attempts[:attempts.index("</table>")]
    assert "decided): 2" in attempts
    assert "their own request: nobody decides their own (self_approval)" in attempts
    assert "a denial without a reason (reason_required)" in attempts
    assert f'<td>DELETE FROM <span class="id">{LONG_TABLE}</span> WHERE id = 7</td>' in attempts
    decisions = page[page.index("Approval decisions"):page.index("Refused attempts")]
    assert "self_approval" not in decisions and "reason_required" not in decisions
    for row in ("identities acting through the gateway</td><td class=\"n\">4",
                "approvers (deciding, not acting)</td><td class=\"n\">3",
                "readers of the record (reading, not acting)</td><td class=\"n\">1"):
        assert row in page, row
    assert "<h3>Approvers</h3>" in page and "<h3>Readers of the record</h3>" in page
    assert f"<td>{HELD_WHAT}</td>" in page


def test_the_signed_report_verifies_and_one_changed_value_does_not(
        recorded: str, signer: Signer, tmp_path: Path) -> None:
    document = signing.signed(report_of(recorded, signer, tmp_path).data, signer)
    assert signing.problem(document, signer.public) is None
    altered = copy.deepcopy(document)
    altered["report"]["refusals_by_rule"]["sql.write"] = 1
    assert "altered" in (signing.problem(altered, signer.public) or "")
    other = Signer.from_file(tmp_path / "other.key", create=True)
    assert "signed with key" in (signing.problem(document, other.public) or "")
