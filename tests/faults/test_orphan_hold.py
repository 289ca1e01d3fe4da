"""A held request whose client, or Envoy, gives up leaves no approval to grant.

A hold exists only while its client waits on it. Through a real Envoy, tollgate and
PostgreSQL store, with the default pack (a DELETE without WHERE is held for a dba): when
the stream that waits ends before anyone decides (Envoy answers 504 itself, or the client
hangs up), the approval is withdrawn: not pending, its reason says why, approving it is
refused (409), and the same request sent again is held anew, never let through on a
grant its client was never told of. Under load, tollgate asks Envoy for the hold's time
before anything that can be slow, so Envoy does not cut the hold at its 2 s
`message_timeout`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from extproc import envoy_bootstrap
from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import DBA, Held, api, pending_for, sql
from tests.support.gateway import POLICIES, Gateway, GatewayFactory

pytestmark = [pytest.mark.e2e]

TEXT = "DELETE FROM customers"
HOLD_SECONDS = 30  # the hold every test's request would wait, left alone
ENVOY_MAX_SECONDS = 5  # an Envoy that allows a hold less than that (max_message_timeout)


def envoy_allowing(seconds: int) -> Any:
    """A change to Envoy's bootstrap: each ext_proc filter waits at most `seconds` for
    an answer, whatever tollgate asks (a hand-written config below the hold)."""

    def change(bootstrap: dict[str, Any]) -> dict[str, Any]:
        for ext_proc in envoy_bootstrap.http_filters(bootstrap, envoy_bootstrap.EXT_PROC_TYPE):
            ext_proc["typed_config"]["max_message_timeout"] = f"{seconds}s"
        return bootstrap

    return change


def gateway(make_gateway: GatewayFactory, pg_url: str, **options: Any) -> Gateway:
    return make_gateway(POLICIES, settings={
        "store": {"url": pg_url},
        "approvals": {"max_hold_seconds": HOLD_SECONDS, "poll_seconds": 0.5},
        **options.pop("settings", {})}, **options)


def shown(gw: Gateway, approval_id: str) -> dict[str, Any]:
    status, answer = api(gw, "GET", f"/approvals/{approval_id}", DBA)
    assert status == 200, answer
    return answer


def deletes(gw: Gateway) -> list[Any]:
    """What the upstream was sent of the held statement (nothing, while it is held)."""
    return [r for r in gw.upstream.requests
            if r.path == "/sql" and json.loads(r.body or b"{}").get("sql") == TEXT]


def assert_withdrawn(gw: Gateway, approval: dict[str, Any]) -> None:
    """Once the held exchange has ended (its record written): its approval is not
    pending, says it was withdrawn and why, and approving it grants nothing."""
    gw.the_record(lambda r: r["trace_id"] == approval["trace_id"],
                  "the held request's record", kind="exchange", timeout=15)
    found = shown(gw, approval["id"])
    assert found["status"] == "abandoned", (
        f"approval {approval['id']} is {found['status']} with nobody waiting on it: "
        "approving it would let a retry through that its client was never told of")
    assert found["reason"].startswith("withdrawn: "), found["reason"]
    assert found["wait"]["waiting"] is False
    _, listed = api(gw, "GET", "/approvals?status=pending", DBA)
    assert approval["id"] not in [a["id"] for a in listed["approvals"]]
    status, refused = api(gw, "POST", f"/approvals/{approval['id']}/approve", DBA, {})
    assert (status, refused["error"]) == (409, "not_pending"), refused
    assert "is abandoned, not pending: withdrawn: " in refused["message"]


def held_anew(gw: Gateway, approval: dict[str, Any]) -> tuple[Held[Any], dict[str, Any]]:
    """The same statement sent again: held on an approval of its own, not let through
    (what it is answered is each test's)."""
    retry = Held(lambda: sql(gw, TEXT))
    fresh = pending_for(gw, TEXT)
    assert fresh["id"] != approval["id"]
    assert deletes(gw) == []
    return retry, fresh


def test_a_hold_envoy_gives_up_on_is_withdrawn(make_gateway: GatewayFactory,
                                               pg_url: str) -> None:
    """Envoy allows less than the hold: it answers 504 itself and resets the stream; the
    approval goes with it, and a retry is held anew (cut short again, never passed)."""
    gw = gateway(make_gateway, pg_url, envoy=envoy_allowing(ENVOY_MAX_SECONDS))
    held = Held(lambda: sql(gw, TEXT))
    approval = pending_for(gw, TEXT)
    assert held.result().status == 504  # Envoy's own answer: the client was never told
    assert_withdrawn(gw, approval)
    retry, fresh = held_anew(gw, approval)
    assert retry.result().status == 504
    assert_withdrawn(gw, fresh)
    assert deletes(gw) == []


def test_a_hold_its_client_leaves_is_withdrawn(make_gateway: GatewayFactory,
                                               pg_url: str) -> None:
    """The client stops waiting (its own timeout) while its DELETE is held: the approval
    is withdrawn; the retry waits on a fresh one, and approving that lets it run."""
    gw = gateway(make_gateway, pg_url)
    gone = Held(lambda: sql(gw, TEXT, timeout=6))
    approval = pending_for(gw, TEXT)
    stack.wait_until(lambda: shown(gw, approval["id"])["wait"]["waiting"] is True, 10,
                     "the held request to wait on its approval")
    with pytest.raises(TimeoutError):
        gone.result()
    assert_withdrawn(gw, approval)
    retry, fresh = held_anew(gw, approval)
    status, _ = api(gw, "POST", f"/approvals/{fresh['id']}/approve", DBA, {})
    assert status == 200
    assert retry.result().status == 200
    assert len(deletes(gw)) == 1


@contextmanager
def records_stalled(pg_url: str) -> Iterator[None]:
    """The store slow to take records (its records table locked against writes; reads
    go on): a decision record waits, as it does under load."""
    with psycopg.connect(pg_url, autocommit=False) as holder:
        holder.execute("LOCK TABLE records IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            holder.rollback()


def test_under_load_envoy_waits_for_the_hold_and_a_failed_hold_is_withdrawn(
        make_gateway: GatewayFactory, pg_url: str) -> None:
    """The held request's decision record takes longer than Envoy's 2 s message_timeout
    to commit (up to recording.commit_seconds, 5 s here): Envoy was asked for the hold's
    time first, so the answer is tollgate's own refusal, not Envoy's 504 at 2 s; the
    approval asked meanwhile is withdrawn, and the retry is held anew."""
    gw = gateway(make_gateway, pg_url, settings={"recording": {"commit_seconds": 5}})
    with records_stalled(pg_url):
        reply = sql(gw, TEXT)
        assert reply.status == 503, (reply.status, reply.body)
        assert reply.json()["error"] == "recording_unavailable", reply.body
        (approval,) = [a for a in api(gw, "GET", "/approvals?status=all", DBA)[1]["approvals"]
                       if a["request"]["body"] == {"sql": TEXT}]
    assert_withdrawn(gw, approval)
    retry, fresh = held_anew(gw, approval)
    status, _ = api(gw, "POST", f"/approvals/{fresh['id']}/deny", DBA, {"reason": "no"})
    assert status == 200
    assert retry.result().status == 403
    assert deletes(gw) == []
