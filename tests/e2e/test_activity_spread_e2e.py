"""What an identity spreads over workers or replicas is still counted (issue 47, items 2
and 3), through a real Envoy balancing new connections over two workers of one tollgate
(one SQLite store) and over two replicas (one PostgreSQL store), with the default pack.

The shared counts sync every 30 s here, so nothing these attacks do can reach the other
process through a sync within the test: what catches them is the live count each
decision reads from the store (extproc/activity/live.py). Each attack is a variant of the
issue's: refused statements of several kinds, each on a new connection; one token from
two or three addresses, interleaved or after a run of legitimate uses; personal data read
under the identity's limit by many identities on one target, or in one group over two
targets. Each test prints its reaction (exchanges and seconds until the rule fired).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from extproc.activity.live import FRESH_SECONDS
from extproc.quickstart import stack
from extproc.store import connect
from tests.e2e.test_activity_e2e import SELECT, record_of, sql
from tests.standins.otlp_receiver import OtlpReceiver
from tests.support import packs, tokens
from tests.support.databases import throwaway_database
from tests.support.gateway import POLICIES, Gateway, module_gateway, route, tollgate_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SETTINGS = {"activity": {"sync_seconds": 30, "stale_seconds": 60},
            "approvals": {"max_hold_seconds": 1},
            # Replicas' fingerprints of a value agree only under one masking key.
            "masking": {"hash_key_env": "SPREAD_MASKING_KEY"}}
MASKING_KEY = {"SPREAD_MASKING_KEY": "spread-test-masking-key-of-32-bytes!"}
# Four customers, an e-mail and a phone each: a read masks 8 personal values.
PERSONAL = "SELECT name, email, phone FROM customers"
GROUP_LIMIT, TARGET_LIMIT = 10, 60
WEB = {"name": "web", "match": {"route": "web"}, "protocol": "http", "untrusted": True,
       "environment": "test"}


@pytest.fixture(scope="module", params=["two workers", "two replicas"])
def spread(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           otlp: OtlpReceiver) -> Iterator[Gateway]:
    pack = packs.pack_with_limits(
        tmp_path_factory.mktemp("pack") / "policies",
        personal_values_per_hour_per_group=GROUP_LIMIT,
        personal_values_per_hour_per_target=TARGET_LIMIT)
    # Beside the demo's SQL target, a page of the open web: its answers are untrusted
    # content (policies/flow.rego).
    web = {"targets": [*tollgate_config(POLICIES, "", 0, None)["targets"], WEB],
           "routes": [route("web", "/web")]}
    if request.param == "two workers":
        with module_gateway(tmp_path_factory, otlp, "spread", policy_dir=pack, workers=2,
                            settings=SETTINGS, env=MASKING_KEY, **web) as gateway:
            yield gateway
        return
    with throwaway_database() as url, module_gateway(  # the database outlives the gateway
            tmp_path_factory, otlp, "spread", policy_dir=pack, replicas=2,
            settings={**SETTINGS, "store": {"url": url}}, env=MASKING_KEY, **web) as gateway:
        yield gateway


def writers(gateway: Gateway, trace_ids: list[str | None]) -> set[str]:
    """The workers or replicas that answered these exchanges."""
    return {record_of(gateway, t)["writer"] for t in trace_ids}


def masked_in(gateway: Gateway, key: str) -> int:
    """The personal values masked under `key` (`group:G`, `target:T`) the live counts hold."""
    connection = connect(gateway.store_url)
    try:
        ((total,),) = connection.execute(
            "SELECT COALESCE(SUM(value), 0) FROM activity_live WHERE key = ? "
            "AND metric LIKE 'masked:%'", (key,))
    finally:
        connection.close()
    return int(total)


def alert_of(gateway: Gateway, rule: str, identity: str) -> dict[str, Any]:
    """The alert record of `rule` for `identity`, once it is written."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r["meaning"]["alert"] for r in gateway.records("alert")
                    if r["meaning"]["alert"]["rule"] == rule
                    and r["meaning"]["alert"]["identity"] == identity]
        return bool(found)

    stack.wait_until(written, 10, f"a {rule} alert for {identity}")
    return found[0]


def reaction(what: str, exchanges: int, started: float) -> None:
    print(f"\nreaction, {what}: the rule fired at exchange {exchanges}, "
          f"{(time.monotonic() - started) * 1000:.0f} ms after the first")


@pytest.mark.parametrize("statements", [
    ["DROP TABLE customers"],
    ["DROP TABLE customers", "TRUNCATE customers", "GRANT ALL ON customers TO public"],
])
def test_refusals_spread_over_processes_raise_the_burst_alert_at_the_tenth(
        spread: Gateway, statements: list[str]) -> None:
    """The issue's 18 refused DROPs in under a minute, each on a new connection (or
    refused statements of several kinds): the alert's first trace is the 10th refusal."""
    token = tokens.token(f"prober-{len(statements)}")
    started, refused = time.monotonic(), []
    for n in range(18):
        reply = sql(spread, statements[n % len(statements)], token)
        assert reply.status == 403 and reply.json()["error"] == "denied", reply.body
        refused.append(reply.trace_id)
    assert len(writers(spread, refused)) == 2, "one process answered them all"
    alert = alert_of(spread, "activity.refusal_burst", f"prober-{len(statements)}")
    fired_at = refused.index(alert["trace_ids"][0]) + 1
    reaction(f"refusal burst ({len(statements)} kinds)", fired_at, started)
    assert fired_at == 10


@pytest.mark.parametrize("addresses, legitimate", [
    (["127.0.0.1", "127.0.0.2"], 0),   # the issue's: interleaved within a second
    (["127.0.0.1", "127.0.0.3"], 5),   # the copy comes after a run of the owner's uses
    (["127.0.0.1", "127.0.0.2", "127.0.0.3"], 0),
])
def test_a_token_from_several_addresses_is_refused_at_its_first_copied_use(
        spread: Gateway, addresses: list[str], legitimate: int) -> None:
    token = tokens.token(f"copied-{len(addresses)}-{legitimate}")
    for _ in range(legitimate):
        assert sql(spread, SELECT, token, addresses[0]).status == 200
    started, replies = time.monotonic(), []
    for n in range(12):
        replies.append(sql(spread, SELECT, token, addresses[n % len(addresses)]))
    assert time.monotonic() - started < 5
    assert len(writers(spread, [r.trace_id for r in replies])) == 2
    assert replies[0].status == 200
    # Every use from another address is refused, from the first: it is new to the process
    # that gets it, which reads afresh. The owner's address is refused too once its
    # process's reading is older than live.FRESH_SECONDS.
    for n, reply in enumerate(replies[1:], 1):
        if n % len(addresses):
            assert reply.status == 403, reply.body
            assert "activity.token_reuse" in reply.json()["rules"]
    reaction(f"token reuse from {len(addresses)} addresses", legitimate + 2, started)
    stack.wait_until(lambda: sql(spread, SELECT, token, addresses[0]).status == 403,
                     FRESH_SECONDS + 5, "the owner's address refused too")
    alert = alert_of(spread, "activity.token_reuse", f"copied-{len(addresses)}-{legitimate}")
    assert alert["severity"] == "critical"


def test_personal_data_read_by_many_identities_in_one_group_is_held(spread: Gateway) -> None:
    """Each identity reads once (8 values, far under its own 500 an hour); the group's
    sum passes its limit (10) at the second read: the third is held, whoever reads. Each
    read's count is in the store before the next read (it is written just after its
    exchange): what is tested is the decision on the sum, not how fast a busy machine
    writes it."""
    group = "team-spread"
    started, reads = time.monotonic(), 0
    for n in range(6):
        token = tokens.token(f"member-{n}", [group])
        reply = sql(spread, PERSONAL, token)
        reads += 1
        if reply.status == 403:
            break
        assert reply.status == 200 and "[REDACTED" in reply.body.decode()
        stack.wait_until(lambda n=n: masked_in(spread, f"group:{group}") >= 8 * (n + 1), 10,
                         f"read {n + 1}'s count in the store")
    assert reply.json()["error"] == "approval_required", reply.body
    held_by = f"member-{reads - 1}"
    assert "activity.shared_volume" in reply.json()["rules"]
    assert f"for group {group}" in " ".join(reply.json()["reasons"])
    reaction("personal values per group", reads, started)
    assert reads == 3
    alert = alert_of(spread, "activity.shared_volume", held_by)
    assert (alert["key"], alert["severity"]) == (f"group:{group}", "warning")
    # A member of no such group still reads (the target's sum is under its limit).
    assert sql(spread, SELECT, tokens.token("outsider")).status == 200


def test_personal_data_read_by_many_identities_on_one_target_is_held(
        spread: Gateway) -> None:
    """Identities of groups of their own each read once: the target's sum over them all
    passes its limit (60) and further reads there are held, for anyone but a dba's
    approval."""
    started, reads, held = time.monotonic(), 0, None
    n = 0
    for n in range(12):
        before = masked_in(spread, "target:demo")
        reply = sql(spread, PERSONAL, tokens.token(f"lone-{n}", [f"lone-group-{n}"]))
        reads += 1
        if reply.status == 403:
            held = reply
            break
        assert reply.status == 200, reply.body
        # Its count in the store before the next read (as in the group's test).
        stack.wait_until(lambda before=before: masked_in(spread, "target:demo") >= before + 8,
                         10, f"read {n + 1}'s count in the store")
    assert held is not None, "no read was held"
    assert "activity.shared_volume" in held.json()["rules"]
    assert "on target" in " ".join(held.json()["reasons"])
    reaction("personal values per target", reads, started)
    assert reads <= TARGET_LIMIT // 8 + 3
    alert = alert_of(spread, "activity.shared_volume", f"lone-{n}")
    assert alert["key"].startswith("target:")


def test_a_page_read_through_one_process_holds_a_delete_decided_by_another(
        spread: Gateway) -> None:
    """Issue 88's flows across workers and replicas: a page of an untrusted target read on
    one connection, then DELETEs on new ones until Envoy sends one to the other process:
    that one is held too (flow.after_untrusted, the hold ending refused within the 1 s
    this module allows), naming the page's trace: the note one process took before the
    page went out is what the other decided by."""
    token = tokens.token("flo", ["agents"], ttl=900)
    page = spread.request("GET", "/web/news", token=token)  # the demo's own 404 page
    read = record_of(spread, page.trace_id)
    assert read["outcome"]["received"] == ["untrusted"] and read["outcome"]["status"] == 404
    page_writer = read["writer"]
    for _ in range(12):
        deleted = sql(spread, "DELETE FROM customers WHERE id = 999", token)
        decided = record_of(spread, deleted.trace_id)
        assert deleted.status == 403, deleted
        [held] = [d for d in decided["decisions"] if d["action"] == "hold"]
        assert held["rules"] == ["flow.after_untrusted"]
        assert held["reasons"] == [f"DELETE statement after the agent read untrusted content "
                                   f"from web (trace {page.trace_id})"]
        if decided["writer"] != page_writer:
            return
    raise AssertionError(f"every DELETE was decided by {page_writer}, the page's process")


def test_values_read_through_one_process_may_not_leave_through_another(
        spread: Gateway) -> None:
    """Issue 88's values across workers and replicas: e-mails a privileged identity read
    unmasked through one process, POSTed to the web target on new connections until
    Envoy sends one to the other process: refused there too (flow.carried), naming the
    read's target and trace: the fingerprints one process kept before the rows went out
    are what the other decided by."""
    token = tokens.token("vera", ["agents", "privileged"], ttl=900)
    read = sql(spread, "SELECT email FROM customers", token)
    assert read.status == 200, read
    emails = [row[0] for row in read.json()["rows"]]
    assert all("@" in e for e in emails), emails  # unmasked
    read_writer = record_of(spread, read.trace_id)["writer"]
    for _ in range(12):
        sent = spread.request("POST", "/web/notes", {"to": emails[:2]}, token=token)
        decided = record_of(spread, sent.trace_id)
        assert sent.status == 403, sent
        [denied] = [d for d in decided["decisions"] if d["action"] == "deny"]
        assert denied["rules"] == ["flow.carried"], denied
        [reason] = denied["reasons"]
        assert f"email from demo (trace {read.trace_id})" in reason, reason
        if decided["writer"] != read_writer:
            return
    raise AssertionError(f"every POST was decided by {read_writer}, the read's process")
