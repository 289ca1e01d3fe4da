"""The monitoring API on a real admin server, over real stores (a SQLite file and a
PostgreSQL database of the test's own): activity counts seeded as the tracker writes
them, records written through a real Recorder; approvers' tokens verified as the
approvals API verifies them. Every answer is over a time range the caller chooses;
refusals come grouped, identical ones together."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from extproc.activity.tracker import Tracker
from extproc.admin.monitor import MonitorApi
from extproc.admin.monitor import api as monitor_api
from extproc.config import Activity, Match, Target
from extproc.identity import ANONYMOUS
from extproc.recording.chain import Signer
from extproc.store.aio import AsyncStore, open_store
from tests.monitor.conftest import alert, counts, refusal, series, verifier, who
from tests.recording.conftest import TARGET, evidence, record
from tests.support import tokens
from tests.support.admin_server import AdminClient, admin_serving

BILLING = Target(name="billing", match=Match(route="billing"), environment="prod")
DBA = tokens.token("dana", ["dba"])
AGENT = tokens.token("svc-autogen", ["agents"])
# Half past a minute: a test's own minutes never roll over under it.
NOW = (time.time() // 60 - 1) * 60 + 30
MINUTE = int(NOW // 60)


@asynccontextmanager
async def serving(url: str, tmp_path: Path, clock: Callable[[], float] = lambda: NOW,
                  **options: Any) -> AsyncIterator[tuple[AdminClient, AsyncStore]]:
    store = await open_store(url)
    api = MonitorApi(store, verifier(tmp_path), clock=clock, **options)
    try:
        async with admin_serving(api.routes(), DBA) as client:
            yield client, store
    finally:
        await store.close()


def stranger_token() -> str:
    """A token of the trusted issuer's shape, signed by a key nobody trusts."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode({"iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": "mallory",
                       "groups": ["dba"], "exp": int(time.time()) + 300}, key,
                      algorithm="RS256", headers={"kid": "test-rsa"})


async def test_every_call_but_the_page_wants_a_token_that_verifies(
        sqlite_url: str, tmp_path: Path) -> None:
    """No token, or one signed by an untrusted key: 401 in the API's JSON shape, on the
    overview and an identity's activity alike; the page and its script are served without one,
    under a Content-Security-Policy that allows only the page's own script."""
    async with serving(sqlite_url, tmp_path) as (api, _):
        for path in ("/monitor/activity", "/monitor/activity?identity=x"):
            for token in (None, stranger_token()):
                status, body, _ = await api.read(path, token)
                assert status == 401, path
                assert body["error"] == "unauthenticated"
        status, page, headers = await api.read("/monitor/ui", None)
        assert status == 200 and '<script src="/monitor/ui.js">' in page
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        status, script, headers = await api.read("/monitor/ui.js", None)
        assert status == 200 and headers["Content-Type"].startswith("text/javascript")
        assert "drawChart" in script and headers["Content-Security-Policy"] == policy


async def test_viewers_narrow_who_may_look(sqlite_url: str, tmp_path: Path) -> None:
    """Given viewers, a verified token outside them gets 403; a member of a viewer group
    or a named user gets the answer."""
    async with serving(sqlite_url, tmp_path, viewers=("group:dba", "user:sam")) as (api, _):
        assert (await api.read("/monitor/activity", AGENT))[:2] == (403, {
            "error": "forbidden", "message": "the monitor is for its viewers only"})
        assert (await api.read("/monitor/activity", DBA))[0] == 200
        assert (await api.read("/monitor/activity", tokens.token("sam", ["sre"])))[0] == 200


async def test_the_overview_lists_identities_of_the_range_latest_first(
        store_url: str, tmp_path: Path) -> None:
    """Identities with counts in the range (the last hour unless asked), the most recently
    active first, with their totals over it (masked values summed over detectors;
    allowed: the exchanges not refused); tokens' keys are not identities; the aggregate
    beyond the tracker's bound is named so; counts outside the range are left out."""
    counts(store_url, [
        *series(MINUTE, "sub:alice", {0: {"exchanges": 3, "refusals": 1,
                                          "masked:email": 2, "masked:iban": 5},
                                      90: {"exchanges": 10, "holds": 2,
                                           "administrative": 1}}),
        *series(MINUTE, "sub:bob", {5: {"exchanges": 1}}),
        *series(MINUTE, "sub:~others", {2: {"exchanges": 7}}),
        *series(MINUTE, "jti:j-alice", {0: {"exchanges": 3}}),
        *series(MINUTE, "sub:dave", {200: {"exchanges": 4}}),  # in 6 hours, not in 1
        *series(MINUTE, "sub:carol", {1440: {"exchanges": 99}}),  # a day ago: gone
    ])
    async with serving(store_url, tmp_path) as (api, _):
        status, hour, _ = await api.read("/monitor/activity")
        assert (await api.read("/monitor/activity?range=1h"))[1] == hour
        _, day, _ = await api.read("/monitor/activity?range=24h")
    assert status == 200
    assert hour["range"] == {"name": "1h", "since": (MINUTE - 59) * 60,
                             "until": (MINUTE + 1) * 60, "step": 60, "minutes": 60}
    assert [i["identity"] for i in hour["identities"]] == ["alice", "~others", "bob"]
    alice, others, bob = hour["identities"]
    assert alice == {
        "identity": "alice", "aggregated": False, "last_active": MINUTE * 60,
        "totals": {"exchanges": 3, "allowed": 2, "refusals": 1, "holds": 0, "masked": 7,
                   "administrative": 0}}
    assert others["aggregated"] is True and others["totals"]["exchanges"] == 7
    assert bob["last_active"] == (MINUTE - 5) * 60
    assert hour["truncated"] is False
    assert [i["identity"] for i in day["identities"]] == ["alice", "~others", "bob", "dave"]
    assert day["identities"][0]["totals"] == {
        "exchanges": 13, "allowed": 12, "refusals": 1, "holds": 2, "masked": 7,
        "administrative": 1}
    assert day["range"]["since"] == (MINUTE - 1439) * 60


async def test_the_overview_is_bounded(sqlite_url: str, tmp_path: Path) -> None:
    """At most 500 identities, the latest active; the answer says more were left out."""
    counts(sqlite_url, [(f"sub:agent-{n}", MINUTE - n % 600, "exchanges", 1)
                        for n in range(520)])
    async with serving(sqlite_url, tmp_path) as (api, _):
        _, body, _ = await api.read("/monitor/activity?range=24h")
    assert len(body["identities"]) == 500 and body["truncated"] is True
    assert body["identities"][0]["identity"] == "agent-0"


async def test_each_range_is_drawn_in_buckets_the_page_can_show(
        sqlite_url: str, tmp_path: Path) -> None:
    """15 minutes and an hour per minute, 6 hours per 5 minutes, a day per 15: each
    bucket holds the sum of its minutes, the last ends with the current minute; a
    custom range (since, until: seconds) is its whole minutes, within the last day."""
    counts(sqlite_url, series(MINUTE, "sub:ranged", {
        0: {"exchanges": 1}, 14: {"exchanges": 2}, 15: {"exchanges": 4},
        59: {"exchanges": 8, "refusals": 8}, 60: {"exchanges": 16, "holds": 16},
        359: {"exchanges": 32, "masked:email": 3}, 360: {"exchanges": 64},
        1439: {"exchanges": 128}}))
    async with serving(sqlite_url, tmp_path) as (api, _):
        found = {}
        for name in ("15m", "1h", "6h", "24h"):
            status, body, _ = await api.read(f"/monitor/activity?identity=ranged&range={name}")
            assert status == 200, body
            found[name] = body
        since, until = (MINUTE - 60) * 60 + 10, (MINUTE - 14) * 60 + 5
        _, custom, _ = await api.read(
            f"/monitor/activity?identity=ranged&since={since}&until={until}")
    for name, minutes, step, total in (("15m", 15, 1, 3), ("1h", 60, 1, 15),
                                       ("6h", 360, 5, 63), ("24h", 1440, 15, 255)):
        body = found[name]
        buckets = body["buckets"]
        assert body["range"] == {"name": name, "since": (MINUTE - minutes + 1) * 60,
                                 "until": (MINUTE + 1) * 60, "step": step * 60,
                                 "minutes": minutes}, name
        assert len(buckets) == minutes // step, name
        assert buckets[-1]["start"] == (MINUTE + 1 - step) * 60, name
        assert [b["start"] for b in buckets] == [
            (MINUTE + 1 - (len(buckets) - i) * step) * 60 for i in range(len(buckets))]
        assert body["totals"]["exchanges"] == total, name
    # The held and masked series, and allowed beside refused, per bucket.
    six = found["6h"]["buckets"]
    assert (six[-12]["exchanges"], six[-12]["refusals"], six[-12]["allowed"]) == (8, 8, 0)
    assert (six[-13]["holds"], six[-13]["allowed"]) == (16, 16)
    assert (six[0]["exchanges"], six[0]["masked"]) == (32, 3)
    # A day per 15 minutes: 0..14 minutes back, then 15..29.
    assert [b["exchanges"] for b in found["24h"]["buckets"]][-2:] == [4, 1 + 2]
    # Custom: the minutes it touches, 60 back (since's) to 14 back (until's).
    assert custom["range"] == {"name": "custom", "since": (MINUTE - 60) * 60,
                               "until": (MINUTE - 13) * 60, "step": 60, "minutes": 47}
    assert len(custom["buckets"]) == 47
    assert custom["totals"]["exchanges"] == 2 + 4 + 8 + 16


async def test_a_range_it_cannot_show_is_a_400(sqlite_url: str, tmp_path: Path) -> None:
    async with serving(sqlite_url, tmp_path) as (api, _):
        for query, says in (
                ("range=2h", "range must be one of 15m, 1h, 6h, 24h"),
                ("since=100", "until must be seconds since the epoch"),
                (f"since={NOW}&until=x", "until must be seconds since the epoch"),
                (f"since={NOW}&until={NOW - 60}", "since must be before until"),
                (f"since={NOW - 2 * 86400}&until={NOW}", "within the last day"),
                (f"since={NOW + 600}&until={NOW + 900}", "in the future"),
                (f"range=1h&since={NOW - 60}&until={NOW}", "not both")):
            for path in ("/monitor/activity?", "/monitor/activity?identity=a&"):
                status, body, _ = await api.read(path + query)
                assert (status, body["error"]) == (400, "bad_request"), query
                assert says in body["message"], (query, body)


@pytest.mark.slow
async def test_one_identity_per_minute_with_its_latest_alerts_and_refusals(
        store_url: str, tmp_path: Path, signer: Signer) -> None:
    """An identity's hour is 60 minutes, oldest first, the minutes without counts at
    zero; its latest alerts (rule, severity, message, the traces they point to) and
    refused exchanges (what they did, why), newest first and each with its trace id,
    leave out other identities', allowed exchanges, and those outside the range."""
    counts(store_url, series(MINUTE, "sub:svc-autogen", {
        0: {"exchanges": 4, "refusals": 2, "masked:email": 1},
        7: {"exchanges": 9, "masked:phone": 3, "masked:email": 2, "holds": 1},
        59: {"exchanges": 1},
        60: {"exchanges": 50},  # in the day, not in the hour
    }) + series(MINUTE, "sub:someone-else", {0: {"exchanges": 5}}))
    now = NOW  # the API's clock: a long run reaches this test minutes after NOW
    await record(store_url, signer, [
        refusal(1, "svc-autogen", path="/sql/old", started=now - 600),
        evidence(2, sub="svc-autogen", started=now - 500),  # allowed: no refusal
        alert(3, "svc-autogen", rule="activity.refusal_burst", severity="critical",
              message="12 refusals in a minute", trace_ids=(f"{1:032x}",),
              started=now - 400),
        refusal(4, "svc-autogen", path="/sql/new", started=now - 300,
                statement="DROP TABLE customers"),
        refusal(5, "someone-else", started=now - 200),
        alert(6, "someone-else", started=now - 100),
        refusal(7, "svc-autogen", path="/sql/yesterday", started=now - 2 * 86400),
        alert(8, "svc-autogen", started=now - 2 * 86400),
        refusal(9, "svc-autogen", path="/sql/two-hours-ago", started=now - 7200),
    ])
    async with serving(store_url, tmp_path) as (api, _):
        status, body, _ = await api.read("/monitor/activity?identity=svc-autogen")
        assert (await api.read("/monitor/activity?identity=svc-autogen&limit=1"))[1][
            "refusals"][0]["path"] == "/sql/new"
        _, six, _ = await api.read("/monitor/activity?identity=svc-autogen&range=6h")
        for bad in ("limit=0", "limit=101", "limit=x", "identity="):
            query = bad if bad.startswith("identity") else f"identity=a&{bad}"
            found = await api.read(f"/monitor/activity?{query}")
            assert (found[0], found[1]["error"]) == (400, "bad_request"), bad
    assert status == 200 and body["identity"] == "svc-autogen"
    minutes = body["buckets"]
    assert len(minutes) == 60
    assert [m["start"] for m in minutes] == [(MINUTE - 59 + i) * 60 for i in range(60)]
    assert minutes[-1] == {"start": MINUTE * 60, "exchanges": 4, "allowed": 2, "refusals": 2,
                           "holds": 0, "masked": 1, "administrative": 0}
    assert minutes[-8]["exchanges"] == 9 and minutes[-8]["masked"] == 5
    assert minutes[-8]["holds"] == 1
    assert minutes[0]["exchanges"] == 1
    assert sum(m["exchanges"] for m in minutes) == 14
    assert body["totals"] == {"exchanges": 14, "allowed": 12, "refusals": 2, "holds": 1,
                              "masked": 6, "administrative": 0}
    assert body["day"]["exchanges"] == 64

    (raised,) = body["alerts"]
    assert raised["trace_id"] == f"{3:032x}"
    assert (raised["rule"], raised["severity"], raised["message"]) == (
        "activity.refusal_burst", "critical", "12 refusals in a minute")
    assert raised["trace_ids"] == [f"{3:032x}", f"{1:032x}"]
    assert raised["target"] == "orders" and raised["record_id"].startswith("writer-a:")
    assert [r["path"] for r in body["refusals"]] == ["/sql/new", "/sql/old"]
    newest = body["refusals"][0]
    assert newest["trace_id"] == f"{4:032x}" and newest["status"] == 403
    assert (newest["what"], newest["method"], newest["rules"], newest["reasons"]) == (
        "DROP TABLE customers", "POST", ["sql.destructive"], ["destructive SQL: DROP"])
    assert body["refusals"][1]["what"] == "POST /sql/old"
    # Six hours reach the refusal of two hours ago, not yesterday's.
    assert [r["path"] for r in six["refusals"]] == ["/sql/new", "/sql/old",
                                                    "/sql/two-hours-ago"]


async def test_identical_refusals_are_one_group_with_their_count_and_what(
        store_url: str, tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refusals of the same statement, by the same rules, on the same target are one
    group: how many, the first and last, the identities that sent them, their reasons,
    the newest traces; another rule or target is another group; the most frequent come
    first. The overview groups every identity's; an identity's, its own; the range
    bounds both; past the bound on refusals grouped, the answer says so."""
    now = NOW  # the API's clock: a long run reaches this test minutes after NOW
    drop = "DROP TABLE customers"
    found = [refusal(n, "svc-a", statement=drop, started=now - 1000 + n) for n in range(1, 5)]
    found += [refusal(5, "svc-b", statement=drop, started=now - 500,
                      reasons=("destructive SQL: DROP by svc-b",)),
              refusal(6, "svc-a", statement=drop, rules=("sql.other",), started=now - 400),
              refusal(7, "svc-a", statement=drop, target=BILLING, started=now - 300),
              refusal(8, "svc-b", statement="GRANT ALL ON customers TO public",
                      rules=("sql.privilege",), started=now - 200),
              refusal(9, "svc-a", statement=drop, started=now - 7200)]  # outside the hour
    await record(store_url, signer, found)
    async with serving(store_url, tmp_path) as (api, _):
        _, overview, _ = await api.read("/monitor/activity")
        _, mine, _ = await api.read("/monitor/activity?identity=svc-b")
        _, six, _ = await api.read("/monitor/activity?range=6h&limit=1")
        monkeypatch.setattr(monitor_api, "_MOST_GROUPED", 3)
        _, bounded, _ = await api.read("/monitor/activity?identity=svc-a")
    groups = overview["refusal_groups"]
    assert (groups["count"], groups["grouped"], groups["truncated"]) == (4, 8, False)
    first, *others = groups["groups"]
    assert first == {
        "what": drop, "rules": ["sql.destructive"], "target": TARGET.name, "count": 5,
        "first_us": int((now - 999) * 1e6), "last_us": int((now - 500) * 1e6),
        "identities": ["svc-a", "svc-b"], "identities_count": 2,
        "reasons": ["destructive SQL: DROP by svc-b", "destructive SQL: DROP"],
        "refusal": None, "status": 403,
        "trace_ids": [f"{n:032x}" for n in (5, 4, 3, 2, 1)]}
    # The rest, one each, the latest first.
    assert [(g["what"], g["rules"], g["target"], g["count"], g["identities"])
            for g in others] == [
        ("GRANT ALL ON customers TO public", ["sql.privilege"], TARGET.name, 1, ["svc-b"]),
        (drop, ["sql.destructive"], BILLING.name, 1, ["svc-a"]),
        (drop, ["sql.other"], TARGET.name, 1, ["svc-a"])]
    assert [(g["what"], g["count"]) for g in mine["refusal_groups"]["groups"]] == [
        ("GRANT ALL ON customers TO public", 1), (drop, 1)]
    assert (six["refusal_groups"]["count"], six["refusal_groups"]["groups"][0]["count"]) == (
        4, 6)
    assert len(six["refusal_groups"]["groups"]) == 1
    assert bounded["refusal_groups"]["truncated"] is True
    assert bounded["refusal_groups"]["grouped"] == 3


async def test_an_identity_without_activity_has_a_flat_hour(sqlite_url: str,
                                                           tmp_path: Path) -> None:
    async with serving(sqlite_url, tmp_path) as (api, _):
        status, body, _ = await api.read("/monitor/activity?identity=nobody")
    assert status == 200
    assert [m["exchanges"] for m in body["buckets"]] == [0] * 60
    assert body["day"]["exchanges"] == 0 and body["alerts"] == body["refusals"] == []
    assert body["refusal_groups"] == {"groups": [], "count": 0, "grouped": 0,
                                      "truncated": False}


async def test_counts_the_tracker_wrote_are_what_the_monitor_shows(
        sqlite_url: str, tmp_path: Path) -> None:
    """A real tracker counts an exchange and a refusal and syncs them to the store: the
    overview and the identity's current minute show them."""
    tracker = Tracker(Activity(sync_seconds=60, stale_seconds=120), sqlite_url)
    await tracker.start()
    try:
        for n, action in enumerate(("allow", "deny")):
            found = evidence(n, action=action, sub="svc-tracked")
            found.identity = who("svc-tracked")
            found.outcome["tollgate.decision.action"] = action  # as the span says it
            tracker.observe(found)
        assert await tracker.sync()
    finally:
        await tracker.close()
    async with serving(sqlite_url, tmp_path, clock=time.time) as (api, _):
        _, overview, _ = await api.read("/monitor/activity")
        _, one, _ = await api.read("/monitor/activity?identity=svc-tracked")
    (tracked,) = overview["identities"]
    assert tracked["identity"] == "svc-tracked"
    assert (tracked["totals"]["exchanges"], tracked["totals"]["refusals"]) == (2, 1)
    assert sum(m["exchanges"] for m in one["buckets"]) == 2


async def test_a_store_that_cannot_answer_is_a_503(sqlite_url: str, tmp_path: Path) -> None:
    async with serving(sqlite_url, tmp_path) as (api, store):
        await store.close()
        for path in ("/monitor/activity", "/monitor/activity?identity=a"):
            status, body, _ = await api.read(path)
            assert (status, body["error"]) == (503, "store_unavailable"), path


async def test_anonymous_refusals_are_the_anonymous_identity_s(
        sqlite_url: str, tmp_path: Path, signer: Signer) -> None:
    """Counts of unauthenticated requests go to `sub:anonymous`; their records name no
    identity: asking for `anonymous` finds them."""
    found = refusal(1, "x", started=NOW - 5)
    found.identity = ANONYMOUS
    await record(sqlite_url, signer, [found])
    async with serving(sqlite_url, tmp_path) as (api, _):
        _, body, _ = await api.read("/monitor/activity?identity=anonymous")
    assert [r["trace_id"] for r in body["refusals"]] == [f"{1:032x}"]


async def test_a_denied_hold_shows_who_denied_it_and_why(
        sqlite_url: str, tmp_path: Path, signer: Signer) -> None:
    """A held request an approver denied was refused by the approver, not by a rule of
    the policy: its refusal says who and why, before the reasons it was held for."""
    found = refusal(1, "svc-a", started=NOW - 5, rules=("sql.unbounded_write",),
                    reasons=("UPDATE without WHERE",))
    found.decisions[0] = dataclasses.replace(found.decisions[0], action="hold")
    found.outcome["tollgate.refusal"] = "approval_denied"
    found.approval = {"id": "ap-1", "via": "hold", "status": "denied",
                      "decided_by": "dana", "reason": "not during the freeze"}
    await record(sqlite_url, signer, [found])
    async with serving(sqlite_url, tmp_path) as (api, _):
        _, body, _ = await api.read("/monitor/activity?identity=svc-a")
    (refused,) = body["refusals"]
    assert refused["refusal"] == "approval_denied"
    assert refused["reasons"] == ["approval ap-1 was denied by dana: not during the freeze"]
    (group,) = body["refusal_groups"]["groups"]
    assert group["reasons"] == ["approval ap-1 was denied by dana: not during the freeze"]


async def test_the_overview_is_read_at_most_every_few_seconds(
        sqlite_url: str, tmp_path: Path) -> None:
    """Many pages polling cost one query per few seconds: a second reading within them
    is the first's answer."""
    async with serving(sqlite_url, tmp_path) as (api, _):
        _, first, _ = await api.read("/monitor/activity")
        counts(sqlite_url, [("sub:late", MINUTE, "exchanges", 1)])
        _, second, _ = await api.read("/monitor/activity")
        assert first == second
