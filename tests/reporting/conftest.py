"""A period of real records for the report tests: exchanges allowed, refused, held and
masked, an approver's decision and two attempts the approvals API refused (approving
one's own request, a denial without a reason), reads of the record by a reader (and one
refused), an alert and a policy load, written through a real Recorder into the test's
store (SQLite, and PostgreSQL), anchored beside it. One held exchange is an agent's of
a long name doing a long statement, neither with a place to break a line."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from extproc.config import Match, Target
from extproc.recording import Evidence
from extproc.recording.chain import Signer
from extproc.recording.policy_loads import policy_evidence
from tests.recording.conftest import evidence, record

BILLING = Target(name="billing", match=Match(route="billing"), environment="prod")
HOSTILE = "<script>alert('agent')</script>"
NOW = time.time()
# Longer than any column is wide, without a space or hyphen to wrap at.
LONG_IDENTITY = "svc_" + "".join(f"agent{n:02d}" for n in range(18))
LONG_TABLE = "orders_archive_" + "_".join(f"partition{n:02d}" for n in range(16))
LONG_WHAT = f"DELETE FROM {LONG_TABLE} WHERE id = 7"
HELD_WHAT = "DELETE FROM orders WHERE id = 21"


def approval_record(n: int, approver: str, status: str, reason: str | None, *,
                    refusal: str | None = None, requested_by: str = "svc-autogen",
                    summary: str = HELD_WHAT) -> Evidence:
    """An approver's decision through the approvals API, as api.py records it; with
    `refusal`, an attempt the API refused (answered 403 or 400 with that code), the
    approval left as it was: pending, decided by nobody."""
    verb = "approve" if status == "approved" else "deny"
    found = evidence(n, sub=approver, method="POST", path=f"/approvals/a-{n}/{verb}")
    found.kind, found.decisions = "approval", []
    found.approval = {
        "id": f"a-{n}", "via": "api", "status": "pending" if refusal else status,
        "requested_by": requested_by, "approvers": ["ops"], "grant": "once",
        "grant_minutes": None, "decided_by": None if refusal else approver,
        "decided_us": None if refusal else int(NOW * 1e6), "reason": None if refusal
        else reason, "held_by": "writer-a", "summary": summary, "trace_id": f"{n:032x}"}
    answered = {None: 200, "reason_required": 400}.get(refusal, 403)
    found.response = {"status": answered, "headers": {"content-type": "application/json"},
                      "body": None}
    found.outcome = {"tollgate.decision.action": verb, "http.response.status_code": answered,
                     **({"tollgate.refusal": refusal} if refusal else {})}
    return found


def access_record(n: int, reader: str, returned: int, refusal: str | None = None, *,
                  background: bool = False) -> Evidence:
    """A read through the recordings API, as its api.py records it (kind `access`);
    `background`: one a page made on its own."""
    found = evidence(n, sub=reader, method="GET", path="/recordings/search")
    found.kind, found.decisions, found.target = "access", [], None
    found.meaning_key, found.meaning = "access", {
        "endpoint": "search", "path": "/recordings/search",
        "query": {"background": "1"} if background else {},
        "count": returned, "returned": [f"writer-a:{i}" for i in range(returned)],
        "returned_truncated": False, "background": background}
    found.outcome = {"tollgate.decision.action": "deny" if refusal else "allow",
                     "http.response.status_code": 403 if refusal else 200,
                     **({"tollgate.refusal": refusal} if refusal else {})}
    return found


def held_record(n: int, sub: str, statement: str, approval: dict[str, object],
                started: float) -> Evidence:
    """An exchange a policy held (its `what`: the SQL statement it sends)."""
    found = evidence(n, action="hold", sub=sub, rules=("orders.delete",), started=started)
    found.decisions[0].approvers = ("ops",)
    found.meaning_key, found.meaning = "sql", {"statements": [{"text": statement}]}
    found.approval = approval
    return found


def alert_record(n: int, message: str) -> Evidence:
    found = evidence(n, sub="svc-rogue", target=BILLING)
    found.kind, found.decisions = "alert", []
    found.meaning_key, found.meaning = "alert", {
        "rule": "activity.burst", "severity": "high", "message": message,
        "identity": "svc-rogue", "target": "billing", "trace_ids": [f"{n:032x}"]}
    found.outcome = {"tollgate.decision.action": "alert"}
    return found


def period(policy_dir: Path) -> list[Evidence]:
    """What the figures tests expect, in the last hour."""
    load = policy_evidence("rev-1", "embedded", policy_dir, [
        (str(policy_dir / "policy.rego"), "package tollgate\n")], "start")
    load.started = NOW - 3000
    allowed = [evidence(n, started=NOW - 2000 + n) for n in range(5)]
    allowed[0].masked = Counter({"email": 2, "credit_card": 1})
    allowed[1].masked = Counter({"email": 1})
    refused = [evidence(10, action="deny", rules=("sql.write",), started=NOW - 1500),
               evidence(11, action="deny", rules=("sql.write", "k8s.secrets"),
                        started=NOW - 1400, target=BILLING, sub=HOSTILE),
               evidence(12, action="deny", started=NOW - 1300)]
    refused[2].outcome["tollgate.refusal"] = "unauthenticated"
    held = held_record(20, "svc-autogen", HELD_WHAT,
                       {"id": "a-21", "status": "approved", "decided_by": "alice"}, NOW - 1000)
    waiting = held_record(22, LONG_IDENTITY, LONG_WHAT,
                          {"id": "a-22", "status": "pending", "decided_by": None}, NOW - 990)
    decided = approval_record(21, "alice", "approved", "ticket OPS-1 " + HOSTILE)
    decided.started = NOW - 900
    own = approval_record(23, "svc-autogen", "approved", None, refusal="self_approval")
    own.started = NOW - 890
    unexplained = approval_record(24, "bob", "denied", None, refusal="reason_required",
                                  requested_by=LONG_IDENTITY, summary=LONG_WHAT)
    unexplained.started = NOW - 880
    read = access_record(25, "auditor-ann", 3)
    read.started = NOW - 870
    nosy = access_record(26, "svc-nosy", 0, refusal="forbidden")
    nosy.started = NOW - 860
    alert = alert_record(30, HOSTILE)
    alert.started = NOW - 800
    return [load, *allowed, *refused, held, waiting, decided, own, unexplained, read, nosy,
            alert]


async def write_period(url: str, signer: Signer, tmp_path: Path) -> str:
    """The period's records in the store at `url`, anchored in tmp_path/anchors.jsonl."""
    directory = tmp_path / "policies"
    directory.mkdir()
    await record(url, signer, period(directory), checkpoint_every=4,
                 checkpoint_file=tmp_path / "anchors.jsonl")
    return url


@pytest.fixture
async def recorded(store_url: str, signer: Signer, tmp_path: Path) -> str:
    return await write_period(store_url, signer, tmp_path)


@pytest.fixture
async def config(sqlite_url: str, signer: Signer, tmp_path: Path) -> Path:
    """A config naming a SQLite store of the period, anchored beside it (for the
    commands)."""
    from tests.cli.test_audit_cli import write_config

    await write_period(sqlite_url, signer, tmp_path)
    return write_config(tmp_path, sqlite_url, checkpoint_file=tmp_path / "anchors.jsonl")
