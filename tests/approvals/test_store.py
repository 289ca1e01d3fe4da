"""ApprovalStore on a real SQLite file and a real PostgreSQL database: creating, deciding,
granting (once and window), expiry, waiting and waking, across replicas, and failures."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from extproc.approvals.model import Approval, ApprovalError, now
from extproc.approvals.store import CHANNEL, ApprovalStore
from extproc.approvals.wakeup import folder_for
from extproc.store import StoreError, connect
from extproc.store.schema import MIGRATIONS
from tests.approvals.conftest import REQUESTER, create, eventually, opened
from tests.support.databases import PG_ADMIN

DBA = ("alice", ["dba"])  # an approver: sub, groups
APPROVERS = ("group:dba",)  # whom create()'s approvals name


async def grant_of(store: ApprovalStore, fingerprint: str, *, requester: str = REQUESTER,
                   target: str = "orders", approvers: tuple[str, ...] = APPROVERS,
                   trace: str = "t", rules: tuple[str, ...] = (),
                   session: str | None = None) -> Approval | None:
    """store.grant_for, for create()'s requester, target and approvers unless told."""
    return await store.grant_for(fingerprint, requester, target, approvers, trace, rules,
                                 session)


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def still_waiting(task: asyncio.Task[Any], seconds: float = 0.2) -> bool:
    """Whether `task` has not finished after `seconds` (a waiter that should be blocked)."""
    done, _ = await asyncio.wait({task}, timeout=seconds)
    return not done


# -- creating and finding ------------------------------------------------------------------


async def test_create_then_pending_for_finds_it_only_for_its_fingerboundand_requester(
        store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store, fingerprint="a" * 64)
        assert approval.status == "pending" and approval.id.startswith("ap-")
        assert approval.expires_us - approval.created_us == 300 * 1_000_000

        found = await store.pending_for("a" * 64, REQUESTER)
        assert found == approval
        assert await store.pending_for("b" * 64, REQUESTER) is None
        assert await store.pending_for("a" * 64, "someone-else") is None

        assert [a.id for a in await store.list("pending")] == [approval.id]
        assert [a.id for a in await store.list()] == [approval.id]
        assert await store.list("approved") == []
        assert await store.get(approval.id) == approval


async def pending_or_refused(store: ApprovalStore, n: int, max_pending: int) -> str:
    try:
        await create(store, fingerprint=f"{n:064x}", max_pending=max_pending)
    except ApprovalError as refused:
        assert refused.status == 429
        return refused.code
    return "pending"


async def test_an_identity_has_at_most_max_pending_approvals_pending(store_url: str) -> None:
    """The next is refused (429) naming the bound; another identity still asks; a decided
    or expired approval frees its place."""
    async with opened(store_url) as store:
        first = await create(store, fingerprint="0" * 64, max_pending=3)
        # Expires in 2 s: long enough to still count when the fourth is refused on a
        # loaded machine, short enough to wait for below.
        await create(store, fingerprint="1" * 64, max_pending=3, expire_seconds=2)
        await create(store, fingerprint="2" * 64, max_pending=3)
        with pytest.raises(ApprovalError) as refused:
            await create(store, fingerprint="3" * 64, max_pending=3)
        assert (refused.value.code, refused.value.status) == ("too_many_pending", 429)
        assert f"{REQUESTER} already has 3 approvals pending (at most 3)" in str(
            refused.value)
        await create(store, fingerprint="3" * 64, max_pending=3, requester="someone-else")

        await store.decide(first.id, *DBA, approve=False, reason=None)
        await create(store, fingerprint="4" * 64, max_pending=3)

        async def expired_one_left() -> bool:
            return await pending_or_refused(store, 5, 3) == "pending"

        await eventually(expired_one_left, "the expired approval's place to free")
        assert len(await store.list("pending")) == 4  # 3 of REQUESTER's, 1 of another


@pytest.mark.parametrize("replicas", [1, 2])
async def test_concurrent_holds_never_exceed_max_pending(store_url: str, replicas: int) -> None:
    """Twenty holds of one identity at once, through one store or two replicas' (each
    with its own connections): exactly max_pending of them are created."""
    async with opened(store_url) as one, opened(store_url) as other:
        stores = (one, other)[:replicas]
        outcomes = await asyncio.gather(*(
            pending_or_refused(stores[n % replicas], n, 5) for n in range(20)))
        assert sorted(outcomes).count("pending") == 5
        assert outcomes.count("too_many_pending") == 15
        assert len(await one.list("pending")) == 5


async def test_get_of_an_unknown_id_is_not_found(store_url: str) -> None:
    async with opened(store_url) as store:
        with pytest.raises(ApprovalError) as refused:
            await store.get("ap-0000000000000000")
        assert (refused.value.code, refused.value.status) == ("not_found", 404)
        assert "ap-0000000000000000" in str(refused.value)


async def test_the_approval_reads_back_as_it_was_created(store_url: str) -> None:
    async with opened(store_url) as store:
        created = await create(
            store, approvers=("group:dba", "user:bob"), rules=("r1", "r2"),
            reasons=("why 1", "why 2"), identity={"sub": REQUESTER, "groups": ["x"]},
            request={"method": "GET", "path": "/a", "query": {"q": ["1"]}, "body": None})
        found = await store.get(created.id)
        assert found.approvers == ("group:dba", "user:bob")
        assert found.rules == ("r1", "r2") and found.reasons == ("why 1", "why 2")
        assert found.identity == {"sub": REQUESTER, "groups": ["x"]}
        assert found.request["query"] == {"q": ["1"]}
        assert (found.trace_id, found.span_id, found.held_by) == (
            "ab" * 16, "cd" * 8, "replica-a")
        assert found.notified is None

        await store.set_notified(created.id, {"ok": True, "attempts": 1, "status": 200})
        assert (await store.get(created.id)).notified == {
            "ok": True, "attempts": 1, "status": 200}


# -- deciding ------------------------------------------------------------------------------


async def test_an_approver_of_the_group_approves_once_only(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store)
        before = now()
        decided = await store.decide(approval.id, *DBA, approve=True, reason="looked fine")
        assert decided.status == "approved"
        assert (decided.decided_by, decided.reason) == ("alice", "looked fine")
        assert decided.decided_us is not None and before <= decided.decided_us <= now()
        assert decided.grant_until_us is None  # a once grant has no window
        assert await store.get(approval.id) == decided
        assert [a.id for a in await store.list("approved")] == [approval.id]
        assert await store.list("pending") == []
        assert await store.pending_for(approval.fingerprint, REQUESTER) is None

        for approve in (True, False):
            with pytest.raises(ApprovalError) as refused:
                await store.decide(approval.id, "carol", ["dba"], approve, "again")
            assert (refused.value.code, refused.value.status) == ("not_pending", 409)
        assert (await store.get(approval.id)).decided_by == "alice"


async def test_an_approver_denies_once_only(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store)
        decided = await store.decide(approval.id, *DBA, approve=False, reason="not today")
        assert (decided.status, decided.decided_by, decided.reason) == (
            "denied", "alice", "not today")
        assert decided.decided_us is not None
        assert [a.id for a in await store.list("denied")] == [approval.id]
        with pytest.raises(ApprovalError) as refused:
            await store.decide(approval.id, *DBA, approve=True, reason=None)
        assert (refused.value.code, refused.value.status) == ("not_pending", 409)
        # A denied once-approval grants nothing.
        assert await grant_of(store, approval.fingerprint) is None
        assert (await store.get(approval.id)).status == "denied"


async def test_the_requester_cannot_decide_their_own(store_url: str) -> None:
    async with opened(store_url) as store:
        # Even when the requester is in the approving group.
        approval = await create(store, approvers=("group:agents",))
        with pytest.raises(ApprovalError) as refused:
            await store.decide(approval.id, REQUESTER, ["agents"], True, None)
        assert (refused.value.code, refused.value.status) == ("self_approval", 403)
        assert (await store.get(approval.id)).status == "pending"


async def test_someone_outside_the_approvers_is_forbidden(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store, approvers=("group:dba", "user:bob"))
        for sub, groups in (("mallory", ["devs"]), ("mallory", []), ("dba", ["bob"])):
            with pytest.raises(ApprovalError) as refused:
                await store.decide(approval.id, sub, groups, True, None)
            assert (refused.value.code, refused.value.status) == ("forbidden", 403)
        assert (await store.get(approval.id)).status == "pending"


async def test_a_named_user_approver_decides(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store, approvers=("user:bob",))
        decided = await store.decide(approval.id, "bob", [], approve=True, reason=None)
        assert (decided.status, decided.decided_by, decided.reason) == (
            "approved", "bob", None)


# -- once grants ---------------------------------------------------------------------------


async def test_a_once_grant_lets_its_request_through_exactly_once(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store, fingerprint="a" * 64)
        # Pending: nothing is granted yet.
        assert await grant_of(store, "a" * 64, trace="t0") is None
        await store.decide(approval.id, *DBA, approve=True, reason=None)

        assert await grant_of(store, "b" * 64, trace="t1") is None
        assert await grant_of(store, "a" * 64, requester="someone-else", trace="t1") is None
        granted = await grant_of(store, "a" * 64, trace="t-retry")
        assert granted is not None and granted.id == approval.id
        assert (granted.status, granted.used_trace_id) == ("used", "t-retry")
        assert granted.used_us is not None
        assert await grant_of(store, "a" * 64, trace="t-again") is None
        assert (await store.get(approval.id)).used_trace_id == "t-retry"
        assert [a.id for a in await store.list("used")] == [approval.id]


async def test_use_marks_an_approved_once_approval_used_once(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store)
        assert await store.use(approval.id, "t-held") is None  # still pending
        await store.decide(approval.id, *DBA, approve=True, reason=None)
        used = await store.use(approval.id, "t-held")
        assert used is not None
        assert (used.status, used.used_trace_id) == ("used", "t-held")
        assert await store.use(approval.id, "t-other") is None
        assert (await store.get(approval.id)).used_trace_id == "t-held"
        # Used up: a retry of the same request is not let through either.
        assert await grant_of(store, approval.fingerprint) is None


async def race(stores: tuple[ApprovalStore, ApprovalStore], rounds: int) -> None:
    """`rounds` once-grants, each raced for by two grant_for calls: one wins each."""
    first = stores[0]
    for n in range(rounds):
        bound = f"{n:064x}"
        approval = await create(first, fingerprint=bound)
        await first.decide(approval.id, *DBA, approve=True, reason=None)
        got = await asyncio.gather(
            *(grant_of(store, bound, trace=f"t-{i}")
              for i, store in enumerate(stores)))
        winners = [g for g in got if g is not None]
        assert len(winners) == 1, f"round {n}: {got}"
        assert winners[0].id == approval.id and winners[0].status == "used"
        assert (await first.get(approval.id)).used_trace_id == winners[0].used_trace_id


async def test_two_requests_racing_for_one_once_grant_one_gets_it(store_url: str) -> None:
    async with opened(store_url) as store:
        await race((store, store), rounds=10)


async def test_two_replicas_racing_for_one_once_grant_one_gets_it(pg_url: str) -> None:
    async with opened(pg_url) as one, opened(pg_url) as other:
        await race((one, other), rounds=10)


# -- window grants -------------------------------------------------------------------------


async def test_a_window_grant_lets_any_request_of_its_requester_on_its_target_through(
        store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store, grant_mode="window", grant_minutes=5)
        assert await grant_of(store, "x" * 64) is None  # pending
        decided = await store.decide(approval.id, *DBA, approve=True, reason=None)
        assert decided.grant_until_us == decided.decided_us + 5 * 60 * 1_000_000

        for n in range(3):  # any fingerprint, again and again: never used up
            granted = await grant_of(store, f"{n}" * 64, trace=f"t{n}")
            assert granted is not None and granted.id == approval.id
            assert granted.status == "approved" and granted.used_us is None
        assert await grant_of(store, "x" * 64, requester="someone-else") is None
        assert await grant_of(store, "x" * 64, target="billing") is None
        # Nor for a hold others must decide: the dba's window opens no SRE's hold.
        for others in (("group:sre",), ("group:dba", "group:sre")):
            assert await grant_of(store, "x" * 64, approvers=others) is None
        assert (await store.get(approval.id)).status == "approved"


async def test_a_window_opens_only_holds_of_its_rules_and_a_shells_only_in_its_session(
        store_url: str) -> None:
    """A window opened for `sudo` (ssh.privileged_command) lets that shell's next sudo
    through, never a line held for another rule too, nor another session's line."""
    sudo = ("ssh.privileged_command",)
    async with opened(store_url) as store:
        approval = await create(store, grant_mode="window", grant_minutes=15, rules=sudo,
                                request={"method": "LINE", "path": "/host", "query": {},
                                         "body": "sudo true", "session": "tty-1"})
        await store.decide(approval.id, *DBA, approve=True, reason=None)
        granted = await grant_of(store, "a" * 64, rules=sudo, session="tty-1")
        assert granted is not None and granted.id == approval.id
        assert await grant_of(store, "b" * 64, rules=sudo, session="tty-2") is None
        assert await grant_of(store, "c" * 64, rules=sudo) is None  # no shell line
        wider = ("ssh.data_destroyed", "ssh.privileged_command")
        assert await grant_of(store, "d" * 64, rules=wider, session="tty-1") is None
        assert await grant_of(store, "e" * 64, rules=("ssh.opaque_command",),
                              session="tty-1") is None


async def test_a_denied_window_grants_nothing(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store, grant_mode="window", grant_minutes=5)
        decided = await store.decide(approval.id, *DBA, approve=False, reason="no")
        assert decided.grant_until_us is None
        assert await grant_of(store, approval.fingerprint) is None


async def test_a_window_grant_closes_at_the_longest_window_allowed(store_url: str) -> None:
    async with opened(store_url, max_window_seconds=1) as store:
        approval = await create(store, grant_mode="window", grant_minutes=5)
        decided = await store.decide(approval.id, *DBA, approve=True, reason=None)
        # Capped at max_window_seconds (1 s), not the 5 minutes asked for.
        assert decided.grant_until_us == decided.decided_us + 1_000_000
        assert await grant_of(store, "x" * 64) is not None

        async def closed() -> bool:
            return await grant_of(store, "x" * 64) is None

        await eventually(closed, "the 1 s window to close", timeout=5)
        assert now() >= decided.grant_until_us


# -- expiry --------------------------------------------------------------------------------


async def test_a_pending_approval_expires(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store, expire_seconds=0.3)
        assert approval.state() == "pending"

        async def expired() -> bool:
            return (await store.get(approval.id)).state() == "expired"

        await eventually(expired, "the approval to expire", timeout=5)
        found = await store.get(approval.id)
        assert found.status == "pending" and found.as_json()["status"] == "expired"
        assert [a.id for a in await store.list("expired")] == [approval.id]
        assert await store.list("pending") == []
        assert await store.pending_for(approval.fingerprint, REQUESTER) is None
        with pytest.raises(ApprovalError) as refused:
            await store.decide(approval.id, *DBA, approve=True, reason=None)
        assert (refused.value.code, refused.value.status) == ("not_pending", 409)
        assert "expired" in str(refused.value)


# -- two-person approval and the grant's length --------------------------------------------

ERIN = ("erin", ["dba"])  # a second approver of the same group


async def test_two_person_approval_waits_for_a_second_person(store_url: str) -> None:
    """One approval of two needed leaves the request waiting; the same person cannot
    count twice, nor the requester once; the second person's approval lets it through."""
    async with opened(store_url, poll_seconds=30) as store:
        approval = await create(store, approvals_needed=2)
        waiter = asyncio.create_task(store.wait(approval.id, 30))
        first = await store.decide(approval.id, *DBA, approve=True, reason="looks right")
        assert (first.state(), first.approved_by, first.decided_by) == (
            "pending", ("alice",), None)
        assert await still_waiting(waiter)
        with pytest.raises(ApprovalError) as again:
            await store.decide(approval.id, *DBA, approve=True, reason=None)
        assert (again.value.code, again.value.status) == ("already_approved", 409)
        with pytest.raises(ApprovalError) as own:
            await store.decide(approval.id, REQUESTER, ["dba"], approve=True, reason=None)
        assert own.value.code == "self_approval"
        second = await store.decide(approval.id, *ERIN, approve=True, reason=None)
        assert (second.status, second.approved_by, second.decided_by) == (
            "approved", ("alice", "erin"), "erin")
        assert (await asyncio.wait_for(waiter, 5)).status == "approved"
        assert second.for_record("api")["approved_by"] == ["alice", "erin"]


async def test_one_denial_denies_what_another_approved(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store, approvals_needed=2)
        await store.decide(approval.id, *DBA, approve=True, reason=None)
        denied = await store.decide(approval.id, *ERIN, approve=False, reason="not today")
        assert (denied.status, denied.decided_by, denied.reason) == (
            "denied", "erin", "not today")
        assert await grant_of(store, approval.fingerprint) is None


async def test_two_approvers_at_once_are_both_counted(store_url: str) -> None:
    """Neither approval overwrites the other (the update is conditional on who approved
    so far): the two of them make it approved."""
    async with opened(store_url) as store, opened(store_url) as other:
        approval = await create(store, approvals_needed=2)
        results = await asyncio.gather(
            store.decide(approval.id, *DBA, approve=True, reason=None),
            other.decide(approval.id, *ERIN, approve=True, reason=None))
        found = await store.get(approval.id)
        assert found.status == "approved" and sorted(found.approved_by) == ["alice", "erin"]
        assert sorted(r.state() for r in results) == ["approved", "pending"]


async def test_an_approver_grants_a_shorter_window_within_the_policys(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store, grant_mode="window", grant_minutes=60)
        for wrong in (61, 0):
            with pytest.raises(ApprovalError) as refused:
                await store.decide(approval.id, *DBA, approve=True, reason=None,
                                   grant_minutes=wrong)
            assert refused.value.status == 400 and "1-60" in str(refused.value)
        decided = await store.decide(approval.id, *DBA, approve=True, reason=None,
                                     grant_minutes=15)
        assert decided.grant_minutes == 15
        assert decided.grant_until_us == decided.decided_us + 15 * 60 * 1_000_000


async def test_a_once_grant_has_no_length_to_choose(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store)
        with pytest.raises(ApprovalError) as refused:
            await store.decide(approval.id, *DBA, approve=True, reason=None, grant_minutes=5)
        assert refused.value.status == 400 and "exactly one request" in str(refused.value)
        assert (await store.get(approval.id)).state() == "pending"


async def test_of_two_approvers_the_shorter_window_holds(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store, grant_mode="window", grant_minutes=60,
                                approvals_needed=2)
        await store.decide(approval.id, *DBA, approve=True, reason=None, grant_minutes=30)
        with pytest.raises(ApprovalError) as longer:
            await store.decide(approval.id, *ERIN, approve=True, reason=None,
                               grant_minutes=45)
        assert "1-30" in str(longer.value)
        decided = await store.decide(approval.id, *ERIN, approve=True, reason=None)
        assert decided.grant_until_us == decided.decided_us + 30 * 60 * 1_000_000


# -- waiting -------------------------------------------------------------------------------


async def test_wait_returns_as_soon_as_the_approval_is_decided(store_url: str) -> None:
    async with opened(store_url, poll_seconds=30) as store:
        approval = await create(store)
        waiter = asyncio.create_task(store.wait(approval.id, 30))
        assert await still_waiting(waiter)
        decided_at = time.monotonic()
        await store.decide(approval.id, *DBA, approve=True, reason=None)
        found = await asyncio.wait_for(waiter, 5)
        assert time.monotonic() - decided_at < 1.0
        assert (found.status, found.decided_by) == ("approved", "alice")


async def test_wait_returns_the_pending_approval_when_the_time_is_up(store_url: str) -> None:
    async with opened(store_url, poll_seconds=30) as store:
        approval = await create(store)
        started = time.monotonic()
        found = await asyncio.wait_for(store.wait(approval.id, 0.3), 5)
        took = time.monotonic() - started
        assert found.id == approval.id and found.state() == "pending"
        assert 0.3 <= took < 5


async def test_stop_waiting_makes_waiters_return_at_once(store_url: str) -> None:
    async with opened(store_url, poll_seconds=30) as store:
        first, second = await create(store), await create(store, fingerprint="e" * 64)
        waiters = [asyncio.create_task(store.wait(a.id, 30)) for a in (first, second)]
        waiters.append(asyncio.create_task(store.wait(first.id, 30)))
        for waiter in waiters:
            assert await still_waiting(waiter, 0.1)
        stopped_at = time.monotonic()
        store.stop_waiting()
        found = await asyncio.wait_for(asyncio.gather(*waiters), 5)
        assert time.monotonic() - stopped_at < 1.0
        assert [a.id for a in found] == [first.id, second.id, first.id]
        assert all(a.state() == "pending" for a in found)
        # Once stopping, a new waiter does not wait at all.
        started = time.monotonic()
        await asyncio.wait_for(store.wait(second.id, 30), 5)
        assert time.monotonic() - started < 1.0


async def listeners(url: str) -> int:
    """How many connections LISTEN for decisions on the database of `url`."""
    async with await psycopg.AsyncConnection.connect(PG_ADMIN, autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query = %s",
            (database_of(url), f"LISTEN {CHANNEL}"))
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])


async def test_a_decision_through_one_replica_wakes_a_waiter_on_another(store_url: str) -> None:
    async with opened(store_url, poll_seconds=30) as deciding, \
            opened(store_url, poll_seconds=30) as holding:
        if store_url.startswith("postgresql"):

            async def both_listening() -> bool:
                return await listeners(store_url) >= 2

            await eventually(both_listening, "both replicas to LISTEN")
        approval = await create(holding)
        waiter = asyncio.create_task(holding.wait(approval.id, 30))
        assert await still_waiting(waiter)
        decided_at = time.monotonic()
        await deciding.decide(approval.id, *DBA, approve=True, reason="go")
        found = await asyncio.wait_for(waiter, 5)
        # Polling is every 30 s: only the word from the other (NOTIFY on PostgreSQL, a
        # datagram on SQLite) can have woken it this soon.
        assert time.monotonic() - decided_at < 1.0
        assert (found.status, found.reason) == ("approved", "go")


async def test_sqlite_siblings_forget_a_process_that_is_gone(sqlite_url: str) -> None:
    folder = folder_for(Path(sqlite_url.removeprefix("sqlite:///")))
    async with opened(sqlite_url) as deciding:
        async with opened(sqlite_url):
            assert len(list(folder.iterdir())) == 2
        assert len(list(folder.iterdir())) == 1  # a closed store removes its socket
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stale.bind(str(folder / "gone"))
        stale.close()  # as a killed process leaves it: the file without a socket
        approval = await create(deciding)
        await deciding.decide(approval.id, *DBA, approve=True, reason=None)
        assert not (folder / "gone").exists()


# -- failures ------------------------------------------------------------------------------


async def test_a_closed_store_raises_store_error_naming_it(store_url: str) -> None:
    store = await ApprovalStore.open(store_url)
    where = store.where
    await store.close()
    with pytest.raises(StoreError) as failed:
        await grant_of(store, "a" * 64)
    assert where in str(failed.value)
    with pytest.raises(StoreError) as failed:
        await store.get("ap-1")
    assert where in str(failed.value)


async def test_a_store_without_its_table_raises_store_error_naming_it(store_url: str) -> None:
    async with opened(store_url) as store:
        approval = await create(store)
        other = connect(store_url, migrate=False)
        try:
            other.execute("ALTER TABLE approvals RENAME TO approvals_moved")
        finally:
            other.close()
        for call in (store.get(approval.id), store.pending_for("a" * 64, REQUESTER),
                     store.decide(approval.id, *DBA, approve=True, reason=None)):
            with pytest.raises(StoreError) as failed:
                await call
            assert store.where in str(failed.value)
            assert "approvals" in str(failed.value)


async def test_a_dropped_database_raises_store_error_naming_it(pg_url: str) -> None:
    async with opened(pg_url) as store:
        approval = await create(store)
        async with await psycopg.AsyncConnection.connect(PG_ADMIN,
                                                         autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE "{database_of(pg_url)}" WITH (FORCE)')
        with pytest.raises(StoreError) as failed:
            await store.get(approval.id)
        assert store.where in str(failed.value)
        assert database_of(pg_url) in store.where


async def test_an_unreachable_postgresql_raises_store_error() -> None:
    from extproc.quickstart.stack import free_port

    port = free_port()  # nothing listens there

    with pytest.raises(StoreError) as failed:
        await ApprovalStore.open(f"postgresql://postgres@127.0.0.1:{port}/nowhere")
    assert str(port) in str(failed.value)


# -- schema --------------------------------------------------------------------------------


def columns(url: str) -> set[str]:
    connection = connect(url, migrate=False)
    try:
        if connection.backend == "sqlite":
            return {row[1] for row in connection.execute("PRAGMA table_info(approvals)")}
        return {row[0] for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
            ("approvals",))}
    finally:
        connection.close()


def schema_versions(url: str) -> list[tuple[str, int]]:
    connection = connect(url, migrate=False)
    try:
        return sorted(connection.execute("SELECT component, version FROM tollgate_schema"))
    finally:
        connection.close()


async def test_opening_the_same_store_twice_migrates_once(store_url: str) -> None:
    async with opened(store_url) as first:
        approval = await create(first)
        async with opened(store_url) as second:
            assert await second.get(approval.id) == approval
    async with opened(store_url) as third:
        assert [a.id for a in await third.list()] == [approval.id]
    assert {"span_id", "trace_id", "held_by", "notified", "grant_until_us"} <= columns(store_url)
    assert ("approvals", len(MIGRATIONS["approvals"])) in schema_versions(store_url)


async def test_replicas_starting_together_on_a_new_database_all_open(pg_url: str) -> None:
    # Several replicas' first start on an empty database: each runs the migrations at
    # once; one applies them, the others find them applied.
    stores = await asyncio.gather(*(ApprovalStore.open(pg_url) for _ in range(4)),
                                  return_exceptions=True)
    try:
        failures = [s for s in stores if isinstance(s, BaseException)]
        assert failures == []
    finally:
        for store in stores:
            if isinstance(store, ApprovalStore):
                await store.close()
    assert schema_versions(pg_url) == sorted(
        (component, len(steps)) for component, steps in MIGRATIONS.items())


async def test_an_approval_asked_before_the_hold_was_stored_reads_without_it(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store four steps behind (no `hold_until_us`, no waiting lease, no quorum, no
    client told) with a pending approval, as an older tollgate wrote it: opened by this
    one, it gains the columns, the old approval reads as waiting on nothing known, needing
    one approver and told to nobody, and a new one keeps its hold."""
    with monkeypatch.context() as older:
        older.setitem(MIGRATIONS, "approvals", MIGRATIONS["approvals"][:-4])
        connection = connect(store_url)
    try:
        assert "hold_until_us" not in columns(store_url)
        at = now()
        connection.execute(
            "INSERT INTO approvals (id, fingerprint, requester, identity, target, summary, "
            "request, approvers, rules, reasons, grant_mode, status, created_us, expires_us, "
            "trace_id, span_id, held_by) VALUES ('ap-old', 'f', ?, '{}', 'orders', 'DELETE', "
            "'{}', '[\"group:dba\"]', '[]', '[]', 'once', 'pending', ?, ?, 't', 's', 'r')",
            (REQUESTER, at, at + 300_000_000))
    finally:
        connection.close()
    async with opened(store_url) as store:
        old = await store.get("ap-old")
        assert (old.state(), old.hold_until_us, old.waiting()) == ("pending", None, False)
        assert (old.approvals_needed, old.approved_by, old.told_us) == (1, (), None)
        new = await create(store, fingerprint="new", hold_seconds=5)
        assert (await store.get(new.id)).hold_until_us == new.created_us + 5_000_000
    assert "hold_until_us" in columns(store_url)


async def test_a_waiter_holds_a_lease_that_ends_with_its_wait(store_url: str) -> None:
    """While a request waits, the approval shows it waiting (renewed every poll); when
    the wait ends, it shows nobody."""
    async with opened(store_url, poll_seconds=0.05) as store:
        approval = await create(store)
        assert not (await store.get(approval.id)).waiting()
        waiting = asyncio.create_task(store.wait(approval.id, 30))
        await eventually(lambda: _waiting(store, approval.id), "the waiter's lease")
        await store.decide(approval.id, *DBA, approve=True, reason=None)
        assert (await waiting).status == "approved"
        assert not (await store.get(approval.id)).waiting()


async def test_an_approval_a_request_holds_on_shows_it_waiting_from_its_creation(
        store_url: str) -> None:
    """Made for a request that waits on it (`hold_seconds`), an approval shows it waiting
    before the waiter's first renewal: an approver reading it at once (as the SSH holds'
    e2e does, through a reader that never queues behind the store's writes) saw nobody;
    one nobody holds on shows nobody."""
    async with opened(store_url, poll_seconds=0.05) as store:
        held = await create(store, fingerprint="held", hold_seconds=5)
        assert held.waiting() and (await store.get(held.id)).waiting()
        asked = await create(store, fingerprint="asked")
        assert not (await store.get(asked.id)).waiting()


async def test_a_lease_nobody_renews_lapses(store_url: str) -> None:
    """A waiter that stops renewing (its replica killed: no `finally` runs) is shown
    gone once its lease passes, a few polls later, with no one clearing it."""
    async with opened(store_url, poll_seconds=0.05) as store:
        approval = await create(store)
        await store.store.execute("UPDATE approvals SET waiting_until_us = ? WHERE id = ?",
                                  (now() + 150_000, approval.id))
        assert (await store.get(approval.id)).waiting()
        await eventually(lambda: _gone(store, approval.id), "the lease to lapse")


async def _waiting(store: ApprovalStore, approval_id: str) -> bool:
    return (await store.get(approval_id)).waiting()


async def _gone(store: ApprovalStore, approval_id: str) -> bool:
    return not (await store.get(approval_id)).waiting()


async def test_only_a_dead_replicas_forsaken_holds_are_abandoned(store_url: str) -> None:
    """Abandoned: pending, its waiter's lease lapsed uncleared for the bound, on a replica
    the store has not heard of for as long. A live replica's lapsed lease (its store
    blinked as the wait ended), a lease cleared (the wait ended) and one lapsed only
    just stay pending; a second sweep finds nothing more; deciding it says why not."""
    async with opened(store_url) as store:
        at = now()
        await store.store.execute(
            "INSERT INTO policy_revisions (process, revision, seen_us) VALUES (?, ?, ?), "
            "(?, ?, ?)", ("replica-live", "r1", at, "replica-dead", "r1", at - 60_000_000))
        cases = {  # held by, lease (None: cleared)
            "forsaken": ("replica-dead", at - 10_000_000),
            "live": ("replica-live", at - 10_000_000),
            "let_go": ("replica-dead", None),
            "just_lapsed": ("replica-dead", at - 1_000_000),
            "never_beat": ("replica-unknown", at - 10_000_000),
        }
        made = {}
        for n, (name, (holder, lease)) in enumerate(cases.items()):
            made[name] = await create(store, fingerprint=f"{n}" * 64, held_by=holder)
            await store.store.execute(
                "UPDATE approvals SET waiting_until_us = ? WHERE id = ?", (lease, made[name].id))
        abandoned = await store.abandon(5)
        assert sorted(a.id for a in abandoned) == sorted(
            made[name].id for name in ("forsaken", "never_beat"))
        assert {a.state() for a in abandoned} == {"abandoned"}
        for name in ("live", "let_go", "just_lapsed"):
            assert (await store.get(made[name].id)).state() == "pending", name
        assert await store.abandon(5) == []
        with pytest.raises(ApprovalError, match="abandoned, not pending: the replica holding"):
            await store.decide(made["forsaken"].id, *DBA, approve=True, reason=None)
        assert [a.id for a in await store.list("abandoned")] == [
            made[n].id for n in ("never_beat", "forsaken")]
