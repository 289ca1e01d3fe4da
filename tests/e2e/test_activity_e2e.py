"""Continuous monitoring through a real Envoy and tollgate processes with the default pack:
a token used from two source addresses is refused and alerted on (also when the copy
reaches another replica, once the counts converged through a shared PostgreSQL store),
an agent's administrative action alerts, a burst of refusals alerts once, and reads past
the hour's limit of masked personal values are held. Alerts reach a real webhook server
and the chained record, where `tollgate audit search --action alert` finds them.

Clients pick their source address (127.0.0.2 is as much this machine as 127.0.0.1) to
be two places; the limits are lowered the way a user lowers them: an edited copy of
policies/limits.rego.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc.quickstart import stack
from extproc.store import connect
from tests.support import packs, tokens
from tests.support.gateway import POLICIES, REPO, Gateway, GatewayFactory, Reply
from tests.support.http_server import LocalServer

SYNC_SECONDS = 0.5


@pytest.fixture
def webhook() -> Iterator[LocalServer]:
    hook = LocalServer(lambda *_: (200, b"ok"), "/hooks/alerts")
    yield hook
    hook.stop()


def pack_with_limits(tmp_path: Path, **limits: Any) -> Path:
    return packs.pack_with_limits(tmp_path / "policies", **limits)


def start(make_gateway: GatewayFactory, webhook: LocalServer, policy_dir: Path = POLICIES,
          **options: Any) -> Gateway:
    settings = {"alerts": {"webhook_url": webhook.url},
                "activity": {"sync_seconds": SYNC_SECONDS, "stale_seconds": 10},
                "approvals": {"max_hold_seconds": 1}, **options.pop("settings", {})}
    return make_gateway(policy_dir, settings=settings, **options)


def sql(gateway: Gateway, text: str, token: str, source: str = "127.0.0.1") -> Reply:
    """POST /sql from `source` (a fresh connection bound to that address)."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.ports.listener, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("POST", "/sql", body=json.dumps({"sql": text}), headers={
            "authorization": f"Bearer {token}", "content-type": "application/json"})
        reply = conn.getresponse()
        return Reply(reply.status, {k.lower(): v for k, v in reply.getheaders()},
                     reply.read())
    finally:
        conn.close()


def alerts(gateway: Gateway, rule: str, count: int = 1) -> list[dict[str, Any]]:
    """The alert records of `rule`, once there are `count`."""
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        nonlocal found
        found = [r for r in gateway.records() if r["kind"] == "alert"
                 and r["meaning"]["alert"]["rule"] == rule]
        return len(found) >= count

    stack.wait_until(enough, 10, f"{count} {rule} alert record(s)")
    return found


def posted(webhook: LocalServer, rule: str) -> list[dict[str, Any]]:
    return [body for body in (json.loads(r.body) for r in webhook.received)
            if body["alert"]["rule"] == rule]


SELECT = "SELECT name FROM customers LIMIT 1"


def test_a_token_used_from_a_second_address_is_refused_and_alerted(
        make_gateway: GatewayFactory, webhook: LocalServer) -> None:
    gateway = start(make_gateway, webhook)
    token = tokens.token("copied-agent")
    assert sql(gateway, SELECT, token, "127.0.0.1").status == 200
    refused = sql(gateway, SELECT, token, "127.0.0.2")
    assert refused.status == 403
    assert "activity.token_reuse" in refused.json()["rules"]
    # The same token stays refused from either place: it has been copied.
    assert sql(gateway, SELECT, token, "127.0.0.1").status == 403
    # Another token of the same agent is not.
    assert sql(gateway, SELECT, tokens.token("copied-agent"), "127.0.0.2").status == 200
    (alert,) = alerts(gateway, "activity.token_reuse")
    found = alert["meaning"]["alert"]
    assert (found["severity"], found["identity"]) == ("critical", "copied-agent")
    assert found["trace_ids"][0] == refused.trace_id
    stack.wait_until(lambda: posted(webhook, "activity.token_reuse"), 10, "the webhook")
    (body,) = posted(webhook, "activity.token_reuse")
    assert "copied-agent" in body["text"] and body["alert"] == found
    # The auditor's way in: the record, searched by action.
    search = subprocess.run(
        [sys.executable, "-m", "extproc", "audit", "search", "--action", "alert", "--json",
         "--config", str(gateway.config_path)],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=True)
    rules = [json.loads(line)["meaning"]["alert"]["rule"]
             for line in search.stdout.splitlines()]
    assert rules == ["activity.token_reuse"]


def test_a_copy_on_another_replica_is_refused_once_counts_converge(
        make_gateway: GatewayFactory, webhook: LocalServer, pg_url: str) -> None:
    """Two replicas behind one Envoy (round robin), one PostgreSQL store: the token's use
    from 127.0.0.1 through one replica reaches the other within its next sync."""
    gateway = start(make_gateway, webhook, replicas=2, settings={"store": {"url": pg_url}})
    token = tokens.token("replicated-agent")
    first = sql(gateway, SELECT, token, "127.0.0.1")
    assert first.status == 200
    writer = record_of(gateway, first.trace_id)["writer"]
    # Written to the store by the first replica's sync ...
    stack.wait_until(lambda: address_counted(pg_url, "127.0.0.1"), 10, "the count stored")
    # ... and read back by the other's within its next one: the bound under test.
    time.sleep(SYNC_SECONDS + 0.3)
    copied = sql(gateway, SELECT, token, "127.0.0.2")
    assert copied.status == 403, copied.body
    assert record_of(gateway, copied.trace_id)["writer"] != writer, (
        "Envoy sent both to one replica: nothing crossed replicas")


def record_of(gateway: Gateway, trace_id: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def written() -> bool:
        nonlocal found
        for row in gateway.records():
            if row["trace_id"] == trace_id and row["kind"] == "exchange":
                found = row
                return True
        return False

    stack.wait_until(written, 10, f"the record of {trace_id}")
    connection = connect(gateway.store_url)
    try:
        (writer,) = connection.execute("SELECT writer FROM records WHERE id = ?",
                                       (found["id"],))[0]
    finally:
        connection.close()
    return {**found, "writer": writer}


def address_counted(url: str, address: str) -> bool:
    connection = connect(url)
    try:
        return bool(connection.execute(
            "SELECT 1 FROM activity_counts WHERE metric = ?", (f"address:{address}",)))
    finally:
        connection.close()


def test_an_agents_administrative_action_alerts(make_gateway: GatewayFactory,
                                                webhook: LocalServer) -> None:
    gateway = start(make_gateway, webhook)
    token = tokens.token("dropper")
    dropped = sql(gateway, "DROP TABLE customers", token)
    assert dropped.status == 403  # the pack refuses it too
    (alert,) = alerts(gateway, "activity.admin_action")
    assert alert["meaning"]["alert"]["trace_ids"][0] == dropped.trace_id
    record = record_of(gateway, dropped.trace_id)
    assert record["outcome"]["action"] == "deny"
    (span,) = gateway.otlp.spans_of(dropped.trace_id)
    assert span.attributes["tollgate.alerts"] == ("activity.admin_action",)
    assert span.attributes["tollgate.activity.administrative"] is True
    # A dba's is not an agent's, nor is the agent's SELECT an administrative action.
    for other in (sql(gateway, "DROP TABLE nothing_here", tokens.token("a-dba", ["dba"])),
                  sql(gateway, SELECT, token)):
        (span,) = gateway.otlp.spans_of(other.trace_id)
        assert "tollgate.alerts" not in span.attributes


def test_a_burst_of_refusals_alerts_once(make_gateway: GatewayFactory, webhook: LocalServer,
                                         tmp_path: Path) -> None:
    gateway = start(make_gateway, webhook,
                    pack_with_limits(tmp_path, refusals_per_minute=3))
    token = tokens.token("prober")
    for _ in range(6):
        refused = sql(gateway, "DROP TABLE customers", token)
        assert refused.status == 403 and refused.json()["error"] == "denied"
    (alert,) = alerts(gateway, "activity.refusal_burst")
    found = alert["meaning"]["alert"]
    assert found["identity"] == "prober" and len(found["trace_ids"]) >= 3
    stack.wait_until(lambda: posted(webhook, "activity.refusal_burst"), 10, "the webhook")
    assert len(posted(webhook, "activity.refusal_burst")) == 1


def test_reads_past_the_hours_personal_values_are_held(
        make_gateway: GatewayFactory, webhook: LocalServer, tmp_path: Path) -> None:
    gateway = start(make_gateway, webhook,
                    pack_with_limits(tmp_path, personal_values_per_hour=3))
    token = tokens.token("reader")
    first = sql(gateway, "SELECT name, email, phone FROM customers", token)
    assert first.status == 200 and "[REDACTED" in first.body.decode()
    held = sql(gateway, "SELECT email FROM customers", token)
    assert held.status == 403, held.body
    assert held.json()["error"] == "approval_required"
    assert "activity.personal_volume" in held.json()["rules"]
    # Another identity reads as before.
    assert sql(gateway, SELECT, tokens.token("someone-else")).status == 200
