"""A store that blinks or goes out never turns a decision into a person's question.

Through a real Envoy and tollgate with the default pack, recording into a PostgreSQL
cluster of the test's own (tests/support/pg_cluster.py), which the test restarts or stops
for real while an agent reads personal data (the reads the pack's volume rules guard,
whose counts live in the store). A restart (a fraction of a second) is ridden out: every
read is answered, by the retries of store/retry.py, as if nothing happened. A store that
stays out refuses those reads with 503 and the reason, at once and with no approval left
waiting for nobody. Nothing answered is missing from the record once the store is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from extproc.quickstart import stack
from extproc.store import connect
from extproc.store.retry import BUDGET
from tests.e2e.test_activity_e2e import SELECT, sql
from tests.support import pg_cluster, tokens
from tests.support.gateway import POLICIES, Gateway, GatewayFactory, Reply

pytestmark = [pytest.mark.e2e]

READERS = 4  # clients at once


@pytest.fixture
def store() -> Iterator[pg_cluster.Cluster]:
    with pg_cluster.cluster() as running:
        yield running


@pytest.fixture
def gateway(store: pg_cluster.Cluster, make_gateway: GatewayFactory) -> Gateway:
    """A gateway on `store` (set up first, so that it is stopped after the gateway)."""
    return make_gateway(POLICIES, settings={
        "store": {"url": store.admin_url},
        # The default live timeout (the suite's gateways allow a loaded machine more).
        "activity": {"sync_seconds": 0.5, "stale_seconds": 30, "live_timeout_seconds": 0.25},
        "approvals": {"max_hold_seconds": 2}})


def _pending_approvals(url: str) -> int:
    connection = connect(url)
    try:
        ((n,),) = connection.execute("SELECT COUNT(*) FROM approvals WHERE status = 'pending'")
    finally:
        connection.close()
    return int(n)


def _recorded(gateway: Gateway, replies: list[Reply]) -> None:
    """Every answered exchange's record is in the store (written once it answers)."""
    wanted = {r.trace_id for r in replies}

    def written() -> bool:
        return wanted <= {r["trace_id"] for r in gateway.records()}

    stack.wait_until(written, 20, f"the records of {len(wanted)} answered exchanges")


def _read_while(gateway: Gateway, reader: int, going: Callable[[], bool]) -> list[Reply]:
    """Reads while `going()`, and a few after, each with a fresh token: a first sight of
    its token, so each decision reads the store's counts (no reading of the last one's
    is reused)."""
    replies: list[Reply] = []
    while going() or len(replies) < 3:
        replies.append(sql(gateway, SELECT, tokens.token(f"blip-agent-{reader}")))
    return replies + [sql(gateway, SELECT, tokens.token(f"blip-agent-{reader}"))
                      for _ in range(3)]


def test_a_store_restart_is_ridden_out_and_nothing_is_held(
        gateway: Gateway, store: pg_cluster.Cluster) -> None:
    """Several clients at once, so that the restart breaks several pooled connections and
    reads ask for new ones while the store is down (as a soak's did, refused for a second
    by a pool backing off from reconnecting)."""
    restarting = threading.Thread(target=store.restart)
    with ThreadPoolExecutor(READERS) as readers:
        warm = list(readers.map(lambda n: sql(gateway, SELECT, tokens.token(f"warm-{n}")),
                                range(READERS)))
        assert [r.status for r in warm] == [200] * READERS
        restarting.start()
        replies = [reply for mine in readers.map(
            lambda n: _read_while(gateway, n, restarting.is_alive), range(READERS))
            for reply in mine]
    restarting.join()
    print(f"\n{len(replies)} reads while the store restarted, and just after")
    statuses = [r.status for r in replies]
    assert statuses == [200] * len(replies), [r.body for r in replies if r.status != 200]
    assert _pending_approvals(store.admin_url) == 0
    _recorded(gateway, replies)


def test_a_store_that_stays_out_refuses_with_503_and_holds_nothing(
        gateway: Gateway, store: pg_cluster.Cluster) -> None:
    """Reads of identities with no fresh reading, once the store is stopped: each is
    refused with 503 and why (the counts it needs, or the record, cannot be had), within
    the blip's budget and then at once; none waits for a person."""
    answered = [sql(gateway, SELECT, tokens.token("outage-agent"))]
    assert answered[0].status == 200
    store.stop()
    try:
        for n in range(4):
            started = time.monotonic()
            reply = sql(gateway, SELECT, tokens.token(f"outage-agent-{n}"))
            seconds = time.monotonic() - started
            print(f"\nrefused in {seconds:.2f} s: {reply.body[:120]!r}")
            assert reply.status == 503, reply.body
            body = reply.json()
            if body["error"] == "denied":
                assert body["rules"] == ["activity.shared_volume"], body
                assert "try again later" in body["reasons"][0]
            else:
                assert body["error"] == "recording_unavailable", body
            assert seconds < 3 * BUDGET
    finally:
        store.start()
    stack.wait_until(lambda: sql(gateway, SELECT, tokens.token("outage-agent")).status == 200,
                     30, "a read let through once the store is back")
    assert _pending_approvals(store.admin_url) == 0
    _recorded(gateway, answered)
