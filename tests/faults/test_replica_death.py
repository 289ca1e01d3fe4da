"""A replica killed while a request waits on an approval: the record and the approvers
are not left with a lie.

Two replicas behind one Envoy, one PostgreSQL store, the default pack: an agent's DELETE
is held for a dba; the replica holding it is SIGKILLed (no shutdown runs). The held
exchange is in the record as held (its decision record, committed before the wait), and
within its waiting lease the approval says nobody waits on it any more, through the
replica still alive, naming the one that held it. Once the dead replica has been silent
for `approvals.abandon_seconds`, the approval is abandoned: recorded, no longer
decidable, and a retry of the request asks anew.
"""

from __future__ import annotations

from typing import Any

import pytest

from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import DBA, Held, api, pending_for, sql
from tests.support.gateway import POLICIES, Gateway, GatewayFactory

pytestmark = [pytest.mark.e2e]

POLL_SECONDS = 0.5  # how often a waiter renews its lease (3 polls long)


@pytest.fixture
def pair(make_gateway: GatewayFactory, pg_url: str) -> Gateway:
    return make_gateway(POLICIES, replicas=2, settings={
        "store": {"url": pg_url}, "approvals": {"poll_seconds": POLL_SECONDS}})


@pytest.fixture
def quick_pair(make_gateway: GatewayFactory, pg_url: str) -> Gateway:
    """Two replicas that take one another for gone, and abandon its holds, in seconds."""
    return make_gateway(POLICIES, replicas=2, settings={
        "store": {"url": pg_url, "heartbeat_seconds": 0.5},
        "approvals": {"poll_seconds": POLL_SECONDS, "abandon_seconds": 1}})


def _killed_holding(gw: Gateway, text: str) -> tuple[dict[str, Any], int]:
    """`text` held, then the replica holding it SIGKILLed: its approval, and the
    replica still alive."""
    held = Held(lambda: sql(gw, text))
    approval = pending_for(gw, text)
    holder = int(approval["held_by"].rsplit("-", 1)[1])
    alive = 1 - holder
    stack.wait_until(lambda: _shown(gw, alive, approval["id"])["wait"]["waiting"] is True,
                     10, "the held request to wait on its approval")
    gw.processes[holder].popen.kill()
    gw.processes[holder].popen.wait(10)
    held.result()  # the client is answered (by Envoy: its replica is gone), not left hanging
    return approval, alive


def _shown(gw: Gateway, replica: int, approval_id: str) -> dict[str, Any]:
    """The approval as replica `replica`'s API answers it."""
    status, answer = api(gw, "GET", f"/approvals/{approval_id}", DBA, replica=replica)
    assert status == 200, answer
    return answer


def test_a_killed_replica_leaves_its_hold_recorded_and_shown_unwaited(pair: Gateway) -> None:
    text = "DELETE FROM customers"
    approval, alive = _killed_holding(pair, text)
    # Held is recorded as held before the wait began.
    decisions = [r for r in pair.records("decision") if r["trace_id"] == approval["trace_id"]]
    assert [d["approval"]["id"] for d in decisions] == [approval["id"]]
    stack.wait_until(
        lambda: _shown(pair, alive, approval["id"])["wait"]["waiting"] is False,
        10 * POLL_SECONDS + 5, "the approval to show nobody waiting on it")
    wait = _shown(pair, alive, approval["id"])["wait"]
    assert (wait["held_by"], wait["answered"]) == (approval["held_by"], None)
    # Approving it now says what it does: nobody waits, a retry passes once.
    status, decided = api(pair, "POST", f"/approvals/{approval['id']}/approve", DBA, {},
                          replica=alive)
    assert status == 200, decided
    assert decided["effect"].startswith("no request waits on it now")
    assert f"or {approval['held_by']}, which held it, stopped" in decided["effect"]


def test_a_dead_replicas_hold_is_abandoned_recorded_and_asked_anew(quick_pair: Gateway) -> None:
    text = "DELETE FROM customers"
    approval, alive = _killed_holding(quick_pair, text)
    stack.wait_until(lambda: _shown(quick_pair, alive, approval["id"])["status"] == "abandoned",
                     30, "the dead replica's approval to be abandoned")
    shown = _shown(quick_pair, alive, approval["id"])
    assert "stopped without answering it" in shown["reason"], shown
    # Nobody can grant it now, and the approver is told why.
    status, refused = api(quick_pair, "POST", f"/approvals/{approval['id']}/approve", DBA,
                          {}, replica=alive)
    assert (status, refused["error"]) == (409, "not_pending"), refused
    assert "abandoned, not pending: the replica holding its request stopped" in \
        refused["message"]
    # The record says so, in the held request's trace.
    def abandoned() -> list[dict[str, Any]]:
        return [r for r in quick_pair.records("approval")
                if r["trace_id"] == approval["trace_id"]
                and (r["approval"] or {}).get("via") == "abandoned"]
    stack.wait_until(lambda: bool(abandoned()), 10, "the abandonment's record")
    (record,) = abandoned()
    assert record["approval"]["id"] == approval["id"]
    assert record["approval"]["status"] == "abandoned"
    assert record["outcome"]["action"] == "abandoned", record["outcome"]
    # A retry asks anew: a fresh approval, with a request waiting on it.
    retry = Held(lambda: sql(quick_pair, text))
    fresh = pending_for(quick_pair, text, replica=alive)
    assert fresh["id"] != approval["id"]
    status, denied = api(quick_pair, "POST", f"/approvals/{fresh['id']}/deny", DBA,
                         {"reason": "not now"}, replica=alive)
    assert status == 200, denied
    assert retry.result().status == 403
