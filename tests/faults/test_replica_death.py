"""A replica killed while a request waits on an approval: the record and the approvers
are not left with a lie.

Two replicas behind one Envoy, one PostgreSQL store, the default pack: an agent's DELETE
is held for a dba; the replica holding it is SIGKILLed (no shutdown runs). The held
exchange is in the record as held (its decision record, committed before the wait), and
within its waiting lease the approval says nobody waits on it any more, through the
replica still alive, naming the one that held it.
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


def _shown(gw: Gateway, replica: int, approval_id: str) -> dict[str, Any]:
    """The approval as replica `replica`'s API answers it."""
    status, answer = api(gw, "GET", f"/approvals/{approval_id}", DBA, replica=replica)
    assert status == 200, answer
    return answer


def test_a_killed_replica_leaves_its_hold_recorded_and_shown_unwaited(pair: Gateway) -> None:
    text = "DELETE FROM customers"
    held = Held(lambda: sql(pair, text))
    approval = pending_for(pair, text)
    holder = int(approval["held_by"].rsplit("-", 1)[1])
    alive = 1 - holder
    stack.wait_until(lambda: _shown(pair, alive, approval["id"])["wait"]["waiting"] is True,
                     10, "the held request to wait on its approval")
    # Held is recorded as held before the wait began.
    decisions = [r for r in pair.records("decision") if r["trace_id"] == approval["trace_id"]]
    assert [d["approval"]["id"] for d in decisions] == [approval["id"]]
    pair.processes[holder].popen.kill()
    pair.processes[holder].popen.wait(10)
    stack.wait_until(
        lambda: _shown(pair, alive, approval["id"])["wait"]["waiting"] is False,
        10 * POLL_SECONDS + 5, "the approval to show nobody waiting on it")
    wait = _shown(pair, alive, approval["id"])["wait"]
    assert (wait["held_by"], wait["answered"]) == (approval["held_by"], None)
    held.result()  # the client is answered (by Envoy: its replica is gone), not left hanging
    # Approving it now says what it does: nobody waits, a retry passes once.
    status, decided = api(pair, "POST", f"/approvals/{approval['id']}/approve", DBA, {},
                          replica=alive)
    assert status == 200, decided
    assert decided["effect"].startswith("no request waits on it now")
    assert f"or {approval['held_by']}, which held it, stopped" in decided["effect"]
