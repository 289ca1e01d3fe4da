"""What-if: recorded decisions re-evaluated with candidate policies, from the records
alone. Records are written through the real Recorder; policies are real Rego on the
embedded engine."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules
from extproc.recording import Decided
from extproc.recording import store as record_store
from extproc.recording.chain import Signer
from extproc.recording.record import BodyCapture
from extproc.recording.whatif import POLICY_ERROR, WhatIf, recorded_answer, whatif
from extproc.store import connect
from tests.recording.conftest import TARGET, evidence, record
from tests.support.cli import tollgate

REPO = Path(__file__).resolve().parents[2]
QUERY = "data.tollgate.decision"

# The recorded policy let everything through; the candidate refuses DROP statements.
NO_DROP = """package tollgate

import rego.v1

default decision := {"action": "allow", "reasons": [], "rules": []}

decision := {"action": "deny", "reasons": ["DROP refused"], "rules": ["sql.no_drop"]} if {
	regex.match(`(?i)^\\s*drop\\b`, input.request.body.sql)
}
"""
DROP = b'{"sql": "DROP TABLE users"}'


def policies(tmp_path: Path, source: str, name: str = "candidate") -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "decision.rego").write_text(source)
    return directory


def replay(url: str, directory: Path, examples: int = 3) -> WhatIf:
    connection = connect(url)
    try:
        engine = EmbeddedEngine(read_modules(directory), QUERY)
        return whatif(record_store.since(connection, None), engine, examples)
    finally:
        connection.close()


async def test_a_candidate_that_refuses_drop_counts_the_allowed_drops_with_examples(
    store_url: str, signer: Signer, tmp_path: Path,
) -> None:
    await record(store_url, signer, [
        evidence(1, method="POST", path="/query", body=DROP, sub="svc-autogen"),
        evidence(2, method="POST", path="/query", body=b'{"sql": "SELECT 1"}'),
        evidence(3, method="POST", path="/query", body=b'{"sql": "drop table orders"}',
                 sub="alice"),
        evidence(4, method="POST", path="/query", body=DROP, sub="bob"),
    ])
    report = replay(store_url, policies(tmp_path, NO_DROP), examples=2)
    assert (report.records, report.decisions, report.unchanged, report.changed) == (4, 4, 1, 3)
    (change,) = report.actions.items()
    assert change[0] == ("allow", "deny")
    assert change[1].count == 3
    assert [str(e) for e in change[1].examples] == [
        "writer-a:1  request   POST /query  svc-autogen",
        "writer-a:3  request   POST /query  alice",
    ]
    assert report.fired["sql.no_drop"].count == 3
    assert report.quiet == {}
    assert report.approximate == 0


async def test_the_policies_that_made_the_record_change_nothing(
    sqlite_url: str, signer: Signer, tmp_path: Path,
) -> None:
    """A recorded denial by rule sql.no_drop, replayed with that very policy."""
    denied = evidence(1, method="POST", path="/query", body=DROP, action="deny",
                      rules=("sql.no_drop",), reasons=("DROP refused",))
    await record(sqlite_url, signer, [denied, evidence(2, method="POST", path="/query",
                                                       body=b'{"sql": "SELECT 1"}')])
    report = replay(sqlite_url, policies(tmp_path, NO_DROP))
    assert (report.decisions, report.unchanged, report.changed) == (2, 2, 0)


async def test_rules_that_no_longer_fire_are_counted(sqlite_url: str, signer: Signer,
                                                     tmp_path: Path) -> None:
    denied = evidence(1, method="POST", path="/query", body=DROP, action="deny",
                      rules=("sql.no_drop", "sql.destructive"))
    await record(sqlite_url, signer, [denied])
    report = replay(sqlite_url, policies(tmp_path, NO_DROP))
    assert report.changed == 1
    assert report.actions == {}  # still denied; by fewer rules
    assert list(report.quiet) == ["sql.destructive"]
    assert report.quiet["sql.destructive"].examples[0].id == "writer-a:1"


SECRET_ROWS = """package tollgate

import rego.v1

default decision := {"action": "allow"}

decision := {"action": "deny", "rules": ["secret_rows"]} if {
	input.phase == "response"
	input.response.status == 200
	input.response.body.secret
	input.request.method == "GET"
}
"""
ROWS = b'{"rows": [{"id": 1}], "secret": true}'


async def test_a_response_decision_is_rebuilt_with_the_recorded_response(
    sqlite_url: str, signer: Signer, tmp_path: Path,
) -> None:
    exchange = evidence(1, response_body=ROWS)
    exchange.decisions.append(Decided("response", "allow", (), (), 403, "rev-1", 30))
    await record(sqlite_url, signer, [exchange])
    report = replay(sqlite_url, policies(tmp_path, SECRET_ROWS))
    assert report.decisions == 2
    assert [str(e) for e in report.actions["allow", "deny"].examples] == [
        "writer-a:1  response  GET /api/orders  svc-autogen"]


async def test_a_refused_response_is_rebuilt_with_what_the_upstream_sent(
    sqlite_url: str, signer: Signer, tmp_path: Path,
) -> None:
    """The client got tollgate's refusal; the policy decided on the upstream's body, which
    the record keeps as `upstream_body`: replaying that policy changes nothing."""
    refused = evidence(1, response_body=b'{"error": "denied", "rules": ["secret_rows"]}')
    refused.upstream_body = BodyCapture.of(ROWS, 64 * 1024)
    refused.decisions.append(Decided("response", "deny", (), ("secret_rows",), 403, "rev-1",
                                     30))
    refused.outcome = {"http.response.status_code": 403}
    await record(sqlite_url, signer, [refused])
    report = replay(sqlite_url, policies(tmp_path, SECRET_ROWS))
    assert (report.decisions, report.unchanged, report.approximate) == (2, 2, 0)


async def test_a_candidate_that_errors_is_counted_as_policy_error(
    sqlite_url: str, signer: Signer, tmp_path: Path,
) -> None:
    await record(sqlite_url, signer, [evidence(1), evidence(2)])
    undefined = policies(tmp_path, """package tollgate

import rego.v1

decision := {"action": "allow"} if input.request.method == "POST"
""")
    report = replay(sqlite_url, undefined)
    assert report.policy_errors == 2
    assert report.actions[("allow", POLICY_ERROR)].count == 2
    assert report.fired == report.quiet == {}  # an error names no rules


async def test_a_decision_on_a_cut_body_is_approximate(sqlite_url: str, signer: Signer,
                                                       tmp_path: Path) -> None:
    big = b'{"sql": "DROP TABLE users", "pad": "' + b"x" * (70 * 1024) + b'"}'
    await record(sqlite_url, signer, [evidence(1, method="POST", path="/query", body=big),
                                      evidence(2, method="POST", path="/query", body=DROP)])
    report = replay(sqlite_url, policies(tmp_path, NO_DROP))
    # The cut body is kept as text: the candidate cannot read its SQL, and says allow.
    assert (report.approximate, report.changed, report.approximate_changed) == (1, 1, 0)


async def test_a_strict_targets_decision_record_is_not_counted_twice(
    sqlite_url: str, signer: Signer, tmp_path: Path,
) -> None:
    exchange = evidence(1, method="POST", path="/query", body=DROP)
    decision = dataclasses.replace(exchange, kind="decision", outcome={})
    await record(sqlite_url, signer, [decision, exchange])
    report = replay(sqlite_url, policies(tmp_path, NO_DROP))
    assert (report.records, report.decisions, report.duplicates) == (1, 1, 1)


def test_the_gateways_rewrites_of_an_answer_are_undone() -> None:
    hold = {"action": "deny", "reasons": ["approval required", "DROP needs a DBA"],
            "rules": ["sql.hold"], "approvers": ["group:dba"], "hold_seconds": 300}
    assert recorded_answer(hold) == ("hold", frozenset({"sql.hold"}))
    error = {"action": "deny", "reasons": ["policy error"], "rules": ["tollgate.policy_error"]}
    assert recorded_answer(error) == (POLICY_ERROR, frozenset())
    unmaskable = {"action": "deny", "reasons": ["cannot mask"],
                  "rules": ["pii", "tollgate.mask_unavailable"]}
    assert recorded_answer(unmaskable) == ("allow", frozenset({"pii"}))
    plain = {"action": "deny", "reasons": ["no"], "rules": ["r"]}
    assert recorded_answer(plain) == ("deny", frozenset({"r"}))
    # A response the policy held: let through by its request's approval, or refused.
    approved = {"action": "allow", "reasons": ["approved by dana", "DELETE without WHERE"],
                "rules": ["sql.hold", "tollgate.approved"]}
    assert recorded_answer(approved) == ("hold", frozenset({"sql.hold"}))
    too_late = {"action": "deny", "reasons": ["a response cannot be held for approval"],
                "rules": ["sql.hold", "tollgate.hold_too_late"]}
    assert recorded_answer(too_late) == ("hold", frozenset({"sql.hold"}))


async def test_the_whatif_command_reports_changes_and_says_bodies_are_masked(
    sqlite_url: str, signer: Signer, tmp_path: Path,
) -> None:
    await record(sqlite_url, signer, [evidence(1, method="POST", path="/query", body=DROP),
                                      evidence(2, method="POST", path="/query", body=DROP,
                                               target=dataclasses.replace(TARGET, name="billing"))])
    config = tmp_path / "tollgate.yaml"
    config.write_text(json.dumps({
        "store": {"url": sqlite_url},
        # The key signs the record of this look at the record (cli/audit_looks.py).
        "recording": {"signing_key_file": str(tmp_path / "audit.key")},
        "targets": [{"name": "orders", "match": {"route": "orders"}}]}))
    candidate = policies(tmp_path, NO_DROP)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return tollgate("audit", "whatif", "--config", config, "--policies", candidate,
                        *args)

    result = run("--target", "orders")
    assert result.returncode == 0, result
    assert "records hold bodies masked, and cut past recording.max_body_bytes" in result.stdout
    assert "records re-evaluated: 1; decisions: 1" in result.stdout
    assert ("actions (recorded -> candidate):\n  allow -> deny: 1\n"
            "    writer-a:1  request   POST /query  svc-autogen\n") in result.stdout
    assert "rules that newly fire:\n  sql.no_drop: 1\n" in result.stdout

    found = json.loads(run("--json").stdout)
    assert (found["decisions"], found["changed"]) == (2, 2)
    assert found["actions"][0]["recorded"] == "allow"
    assert found["actions"][0]["new"] == "deny"
    assert [e["id"] for e in found["actions"][0]["examples"]] == ["writer-a:1", "writer-a:2"]

    assert run("--policies", str(tmp_path / "absent")).returncode == 2
