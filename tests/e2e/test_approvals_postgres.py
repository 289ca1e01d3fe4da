"""Approvals in a real PostgreSQL store: several tollgate replicas behind one Envoy share
it, and an approval given through one replica wakes the request held on the other at
once; a store that cannot answer refuses held requests (fail closed).

Envoy balances exchanges between the two replicas (round robin). Each replica looks at
the store itself only every 60 s here (`approvals.poll_seconds`), so a held request that
completes within a second of its approval was woken by PostgreSQL's NOTIFY.
"""

from __future__ import annotations

import time

from extproc.store import connect
from tests.e2e.test_approvals_e2e import DBA, Held, api, pending_for, sql
from tests.support.gateway import GatewayFactory

WAKE_WITHIN = 1.5  # seconds; polling alone would take up to 60


def test_an_approval_through_one_replica_wakes_the_request_held_on_the_other(
    pg_url: str, make_gateway: GatewayFactory,  # the store outlives the gateway
) -> None:
    gw = make_gateway(replicas=2, settings={
        "store": {"url": pg_url},
        "approvals": {"max_hold_seconds": 30, "poll_seconds": 60},
    })
    texts = ["UPDATE customers SET name = name", "UPDATE customers SET email = email"]
    held = {text: Held(lambda text=text: sql(gw, text)) for text in texts}
    approvals = {text: pending_for(gw, text) for text in texts}
    # Round robin: each replica holds one of the two.
    assert {a["held_by"] for a in approvals.values()} == {"replica-0", "replica-1"}
    for text, approval in approvals.items():
        other = 1 - int(approval["held_by"].removeprefix("replica-"))
        started = time.monotonic()
        status, decided = api(gw, "POST", f"/approvals/{approval['id']}/approve", DBA,
                              {"reason": f"through replica-{other}"}, replica=other)
        assert status == 200, decided
        reply = held[text].result()
        took = time.monotonic() - started
        assert reply.status == 200, reply.body
        assert took < WAKE_WITHIN, f"woken after {took:.2f}s: not by NOTIFY"
    # Both replicas recorded to the one store, each on a chain of its own.
    writers = {r["id"].rpartition(":")[0] for r in gw.wait_for_records(4)}
    assert writers == {"replica-0", "replica-1"}


def test_a_store_that_cannot_answer_refuses_held_requests_and_nothing_else(
    pg_url: str, make_gateway: GatewayFactory,
) -> None:
    gw = make_gateway(settings={"store": {"url": pg_url},
                                "approvals": {"max_hold_seconds": 30}})
    outage = connect(pg_url)
    outage.execute("ALTER TABLE approvals RENAME TO approvals_away")
    try:
        before = len(gw.upstream.requests)
        reply = sql(gw, "DELETE FROM customers")
        assert reply.status == 503, reply.body
        assert reply.json()["error"] == "approvals_unavailable"
        assert "the approvals store cannot answer" in reply.json()["message"]
        assert len(gw.upstream.requests) == before
        # What needs no approval is not affected.
        assert sql(gw, "SELECT count(*) FROM customers").status == 200
    finally:
        outage.execute("ALTER TABLE approvals_away RENAME TO approvals")
        outage.close()
    record = gw.the_record(lambda r: r["trace_id"] == reply.trace_id, "the refusal's")
    assert (record["outcome"]["action"], record["outcome"]["refusal"]) == (
        "deny", "approvals_unavailable")
