"""A period of real records for the report tests: exchanges allowed, refused, held and
masked, an approver's decision, an alert and a policy load, written through a real
Recorder into the test's store (SQLite, and PostgreSQL), anchored beside it."""

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


def approval_record(n: int, approver: str, status: str, reason: str) -> Evidence:
    """An approver's decision through the approvals API, as api.py records it."""
    found = evidence(n, sub=approver, method="POST", path=f"/approvals/a-{n}/{status}")
    found.kind = "approval"
    found.approval = {
        "id": f"a-{n}", "via": "api", "status": status, "requested_by": "svc-autogen",
        "approvers": ["ops"], "grant": "once", "grant_minutes": None, "decided_by": approver,
        "decided_us": int(NOW * 1e6), "reason": reason, "held_by": "writer-a",
        "summary": "DELETE /api/orders/7", "trace_id": f"{n:032x}"}
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
    held = evidence(20, action="hold", rules=("orders.delete",), started=NOW - 1000)
    held.decisions[0].approvers = ("ops",)
    held.approval = {"id": "a-21", "status": "approved", "decided_by": "alice"}
    decided = approval_record(21, "alice", "approved", "ticket OPS-1 " + HOSTILE)
    decided.started = NOW - 900
    alert = alert_record(30, HOSTILE)
    alert.started = NOW - 800
    return [load, *allowed, *refused, held, decided, alert]


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
