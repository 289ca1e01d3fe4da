"""The audit record end to end: requests through a real Envoy into tollgate, records in
the store (SQLite here; PostgreSQL for a strict target), joined to their spans by trace
id, masked, chained, and the gateway failing closed when the store cannot be written."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc import config
from extproc.quickstart import stack
from extproc.quickstart.demo_upstream import CUSTOMERS
from extproc.recording.chain import Signer
from extproc.recording.verify import verify
from extproc.store import connect
from tests.e2e.test_e2e import RESPONSE_POLICY, write_policy
from tests.support.gateway import Gateway, GatewayFactory, module_gateway

DEMO = {"name": "demo", "match": {"route": "demo"}, "protocol": "sql-http",
        "sql": {"dialect": "sqlite"}, "environment": "test"}
STRICT = {"name": "ledger", "match": {"route": "ledger"}, "protocol": "sql-http",
          "sql": {"dialect": "sqlite"}, "record": "strict",
          "inspect": {"response": "none"}, "labels": {"masking": "off"}}
LEDGER_ROUTE = {"name": "ledger", "match": {"prefix": "/ledger/"},
                "route": {"cluster": "demo_upstream", "prefix_rewrite": "/"}}
CUSTOMER_SECRETS = ("ada.lovelace@example.com", "512-34-6789", "4111 1111 1111 1111",
                    "Ada Lovelace")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    with module_gateway(tmp_path_factory, otlp, "recording", targets=[DEMO, STRICT],
                        routes=[LEDGER_ROUTE],
                        settings={"recording": {"checkpoint_seconds": 0.5}}) as running:
        yield running


def record_of(gw: Gateway, trace_id: str | None) -> dict[str, Any]:
    assert trace_id
    gw.wait_for_records(1)

    def exchanges() -> list[dict[str, Any]]:
        # Other kinds of record may share the trace (and be written first).
        return [r for r in gw.records() if r["trace_id"] == trace_id
                and r["kind"] == "exchange"]

    stack.wait_until(lambda: bool(exchanges()), 10, f"the record of trace {trace_id}")
    (found,) = exchanges()
    return found


def test_an_allowed_exchange_is_recorded_masked_and_joined_to_its_span(gw: Gateway) -> None:
    reply = gw.request("GET", "/api/customers?q=ada.lovelace@example.com")
    assert reply.status == 200
    record = record_of(gw, reply.trace_id)
    assert record["outcome"] == {"action": "allow", "status": 200, "refusal": None,
                                 "detail": None, "fail_open": False, "policy_error": None}
    assert record["target"]["name"] == "demo" and record["identity"]["sub"] == "svc-autogen"
    assert record["request"]["method"] == "GET" and record["request"]["path"] == "/api/customers"
    (decision,) = [d for d in record["decisions"] if d["phase"] == "request"]
    assert decision["action"] == "allow" and len(decision["policy_revision"]) == 12
    assert record["response"]["status"] == 200 and record["response"]["body_read"] is True
    assert record["masked"]["email"] >= 4  # what the client got was masked; so is the record
    text = json.dumps(record)
    for secret in CUSTOMER_SECRETS:
        assert secret not in text
    assert record["request"]["query"]["q"] != ["ada.lovelace@example.com"]
    # The span of the same exchange carries the same trace and span ids.
    (span,) = gw.otlp.spans_of(reply.trace_id)
    assert span.span_id == record["span_id"]


def test_denials_and_refusals_are_recorded_too(gw: Gateway) -> None:
    denied = gw.request("POST", "/sql", {"sql": "DROP TABLE customers"})
    malformed = gw.request("POST", "/sql", b"{not json",
                           headers={"content-type": "application/json"})
    unknown = gw.request("GET", "/unmapped/x")
    assert (denied.status, malformed.status, unknown.status) == (403, 400, 404)
    record = record_of(gw, denied.trace_id)
    assert record["outcome"]["action"] == "deny" and record["outcome"]["status"] == 403
    assert record["decisions"][0]["rules"] == ["sql.destructive"]
    assert record["meaning"]["sql"]["statements"][0]["kind"] == "drop"
    assert record_of(gw, malformed.trace_id)["outcome"]["refusal"] == "malformed_json"
    lost = record_of(gw, unknown.trace_id)
    assert (lost["target"], lost["outcome"]["refusal"]) == (None, "unknown_target")


def test_a_refused_response_is_recorded_with_what_the_upstream_sent(
    tmp_path: Path, make_gateway: GatewayFactory,
) -> None:
    """The policy refuses the upstream's answer: the client gets the refusal, and the
    record keeps both, the refusal as `body` and the upstream's answer (masked) as
    `upstream_body`."""
    gw = make_gateway(policy_dir=write_policy(tmp_path / "resp", RESPONSE_POLICY),
                      targets=[{"name": "demo", "match": {"route": "demo"},
                                "inspect": {"response": "body"}}])
    reply = gw.request("GET", "/api/customers")
    assert reply.status == 403
    record = record_of(gw, reply.trace_id)
    response = record["response"]
    assert (response["status"], response["body_read"]) == (200, True)
    assert response["body"]["value"] == reply.json()
    customers = response["upstream_body"]["value"]["customers"]
    assert [c["id"] for c in customers] == [c["id"] for c in CUSTOMERS]
    assert {c["name"] for c in customers} == {"[REDACTED:PERSON]"}
    text = json.dumps(record)
    for secret in CUSTOMER_SECRETS:
        assert secret not in text


def test_the_chain_verifies_with_the_gateways_key(gw: Gateway) -> None:
    gw.request("GET", "/echo")
    gw.wait_for_records(1)
    settings = config.load(gw.config_path)
    signer = Signer.from_file(settings.resolve(settings.recording.signing_key_file))
    connection = connect(gw.store_url)
    try:
        stack.wait_until(
            lambda: connection.execute("SELECT count(*) FROM checkpoints")[0][0] > 0,
            10, "a signed checkpoint")
        report = verify(connection, signer.public)
    finally:
        connection.close()
    assert report.intact, report.problems


def test_a_strict_exchange_is_recorded_before_it_reaches_the_upstream(gw: Gateway) -> None:
    reply = gw.request("POST", "/ledger/sql", {"sql": "SELECT count(*) FROM customers"})
    assert reply.status == 200
    records = [r for r in gw.records() if r["trace_id"] == reply.trace_id]
    # The decision record was committed before the request went on, so it is there now.
    assert [r["kind"] for r in records][:1] == ["decision"]
    assert records[0]["outcome"]["action"] == "allow" and records[0]["response"] is None


def test_a_store_that_cannot_be_written_refuses_requests_and_the_upstream_sees_none(
    make_gateway: GatewayFactory, pg_url: str,
) -> None:
    """The records table taken away under a running gateway: a strict target's request
    is refused at once (its decision record cannot be committed), and, once the writer
    has failed for longer than a blip (store/retry.py: what was admitted meanwhile is
    kept until written), every target's is, until the table is back; the upstream sees
    none of the refused ones; then requests pass and the waiting records are written."""
    gw = make_gateway(targets=[DEMO, STRICT], routes=[LEDGER_ROUTE],
                      settings={"store": {"url": pg_url},
                                "recording": {"commit_seconds": 0.5}})
    assert gw.request("GET", "/echo").status == 200
    gw.wait_for_records(1)
    before = len(gw.upstream.requests)
    outage = connect(pg_url)
    outage.execute("ALTER TABLE records RENAME TO records_away")
    try:
        strict = gw.request("POST", "/ledger/sql", {"sql": "SELECT 1"})
        assert strict.status == 503, strict.body
        assert strict.json()["error"] == "recording_unavailable"
        stack.wait_until(lambda: gw.request("GET", "/echo").status == 503, 10,
                         "every target refused while the store cannot be written")
        within_the_blip = len(gw.upstream.requests)
        refused = gw.request("GET", "/echo")
        assert refused.json()["message"].startswith("the audit record cannot be written:")
        assert len(gw.upstream.requests) == within_the_blip
        # The strict request never reached it; those within the blip did, their records
        # kept until written (checked below).
        assert all(r.path == "/echo" for r in gw.upstream.requests[before:])
    finally:
        outage.execute("ALTER TABLE records_away RENAME TO records")
        outage.close()
    stack.wait_until(lambda: gw.request("GET", "/echo").status == 200, 15,
                     "requests pass again once the store takes writes")
    reached = {r.headers["traceparent"].split("-")[1] for r in gw.upstream.requests[before:]
               if "traceparent" in r.headers}
    stack.wait_until(lambda: reached <= {r["trace_id"] for r in gw.records()}, 15,
                     "the records of what reached the upstream within the blip")


def test_shutdown_writes_every_record_before_tollgate_exits(make_gateway: GatewayFactory,
                                                            ) -> None:
    gw = make_gateway()
    for n in range(40):
        assert gw.request("GET", f"/echo?n={n}").status == 200
    gw.tollgate.signal(signal.SIGTERM)  # at once: records may still be queued
    assert gw.tollgate.popen.wait(20) == 0
    records = gw.records()
    assert len(records) == 40
    assert sorted(r["request"]["path"] for r in records) == ["/echo"] * 40


def test_a_chain_cut_short_under_a_running_gateway_is_named_by_verify(
    make_gateway: GatewayFactory,
) -> None:
    """The default configuration anchors outside the store: through a real Envoy, three
    exchanges are recorded and anchored; `tollgate audit verify` vouches for them (exit
    0), and once the newest record and its checkpoints are deleted, names the cut (1)."""
    gw = make_gateway(settings={"recording": {"checkpoint_seconds": 0.2}})
    for n in range(3):
        assert gw.request("GET", f"/echo?n={n}").status == 200
    # The chain begins with the policy load's record: the third exchange is record 4.
    assert gw.wait_for_records(3)[-1]["id"].endswith(":4")
    anchors = gw.config_path.parent / "tollgate-anchors.jsonl"
    stack.wait_until(lambda: anchors.is_file() and '"seq":4' in anchors.read_text(), 10,
                     "the checkpoint of record 4 in the anchor log")
    verify_cli = [sys.executable, "-m", "extproc", "audit", "verify", "--config",
                  str(gw.config_path)]
    intact = subprocess.run(verify_cli, capture_output=True, text=True, timeout=60)
    assert intact.returncode == 0, intact
    assert "anchored up to: record 4 (" in intact.stdout
    connection = connect(gw.store_url)
    try:
        connection.execute("DELETE FROM records WHERE seq = 4")
        connection.execute("DELETE FROM checkpoints WHERE seq = 4")
        (writer,) = connection.execute("SELECT DISTINCT writer FROM records")[0]
    finally:
        connection.close()
    cut = subprocess.run(verify_cli, capture_output=True, text=True, timeout=60)
    assert cut.returncode == 1, cut
    assert (f"  {writer}: shortened: the store's chain ends at record 3, but the anchor log "
            "says it reached record 4 (") in cut.stdout
