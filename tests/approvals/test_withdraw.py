"""Withdrawing an approval its request stopped waiting on, on a real SQLite file and a real
PostgreSQL database: a hold exists only while its client waits, and past that only once
the client was told of it. Withdrawn, it is not pending, approving it is refused with
why, and no retry passes on it; kept while another request here still waits on it, or
once a client was told of it."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from extproc import config
from extproc.approvals.hold import INTERRUPTED, Holds
from extproc.approvals.model import ApprovalError
from extproc.approvals.store import WITHDRAWN, ApprovalStore
from extproc.masking import Masker
from extproc.policy import Decision
from extproc.recording import Evidence
from tests.approvals.conftest import IDENTITY, REQUESTER, create, eventually, opened

DBA = ("alice", ["dba"])
FP = "f" * 64


async def grant(store: ApprovalStore, fingerprint: str = FP) -> str | None:
    """The id of the grant a retry of the request would pass on (None: it is held)."""
    found = await store.grant_for(fingerprint, REQUESTER, "orders", ("group:dba",), "t")
    return None if found is None else found.id


async def left_here(store: ApprovalStore, approval_id: str) -> asyncio.Task[object]:
    """A waiter on `approval_id` in this process, once its lease shows it waiting."""
    task = asyncio.create_task(store.wait(approval_id, 30))

    async def waiting() -> bool:
        return (await store.get(approval_id)).waiting()

    await eventually(waiting, "the waiter's lease")
    return task


async def test_a_wait_left_undecided_withdraws_what_no_client_was_told_of(
        store_url: str) -> None:
    async with opened(store_url, poll_seconds=0.05) as store:
        approval = await create(store, fingerprint=FP)
        first, second = await left_here(store, approval.id), await left_here(store, approval.id)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        # Another request still waits on it here: it stands.
        assert await store.withdraw(approval.id) is None
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        withdrawn = await store.withdraw(approval.id)
        assert withdrawn is not None
        assert (withdrawn.state(), withdrawn.reason) == ("abandoned", WITHDRAWN)
        assert not withdrawn.waiting()
        assert await store.pending_for(FP, REQUESTER) is None
        with pytest.raises(ApprovalError, match="is abandoned, not pending: withdrawn: "):
            await store.decide(approval.id, *DBA, approve=True, reason=None)
        assert await grant(store) is None
        assert await store.withdraw(approval.id) is None  # once is enough


async def test_a_client_told_of_it_keeps_it_for_the_retry(store_url: str) -> None:
    """Its hold ended undecided and its client was refused naming it: a waiter leaving
    later (a retry that joined it, then went) withdraws nothing; approved, the retry
    passes on it."""
    async with opened(store_url) as store:
        approval = await create(store, fingerprint=FP)
        told = await store.told(approval.id)
        assert told is not None and told.told_us is not None
        assert (await store.told(approval.id)) == told  # the first telling stands
        assert await store.withdraw(approval.id) is None
        await store.decide(approval.id, *DBA, approve=True, reason=None)
        assert await grant(store) == approval.id


async def test_a_once_grant_approved_as_its_waiter_left_goes_with_it(store_url: str) -> None:
    """The decision landed just before its waiter's withdrawal: the grant, unused, would
    let through a retry nobody was told to send, so it is withdrawn too; a window grant
    an approver opened stays open."""
    async with opened(store_url) as store:
        approval = await create(store, fingerprint=FP)
        await store.decide(approval.id, *DBA, approve=True, reason="ok")
        withdrawn = await store.withdraw(approval.id)
        assert withdrawn is not None and withdrawn.state() == "abandoned"
        assert await grant(store) is None
        window = await create(store, fingerprint="w" * 64, grant_mode="window",
                              grant_minutes=10)
        await store.decide(window.id, *DBA, approve=True, reason="ok")
        assert await store.withdraw(window.id) is None
        assert (await store.get(window.id)).state() == "approved"


def holds_on(store: ApprovalStore) -> Holds:
    return Holds(store, None, Masker(b"k" * 32), config.Approvals(), "http://approvals.test",
                 "withdraw-test")


EVIDENCE = Evidence(
    "exchange", 0.0, "ab" * 16, "cd" * 8, {":method": "POST", ":path": "/sql"},
    IDENTITY,  # type: ignore[arg-type]
    request={"method": "POST", "path": "/sql", "query": {}, "headers": {},
             "body": {"sql": "DELETE FROM orders"}})
HELD = Decision("hold", ("deletes need a dba",), ("sql.delete",), approvers=("group:dba",))


async def test_a_hold_interrupted_with_its_client_told_keeps_its_approval(
        store_url: str) -> None:
    """A front's own end of a hold, its client told the approval stays (a MySQL KILL
    QUERY), against any other end (a client gone): kept for the retry, or withdrawn."""
    async with opened(store_url) as store:
        holds = holds_on(store)
        kept = await holds.ask(FP, HELD, EVIDENCE)
        assert (await holds.left(kept, asyncio.CancelledError(INTERRUPTED))).told_us
        assert (await store.get(kept.id)).state() == "pending"
        gone = await holds.ask("g" * 64, HELD, EVIDENCE)
        assert holds.withdrawn(await holds.left(gone, asyncio.CancelledError()))


async def test_a_hold_cancelled_while_its_approval_is_asked_withdraws_it(
        pg_url: str) -> None:
    """The store slow to ask (another transaction holds the requester's lock) and the
    client gone meanwhile: the asking still ends, and what it asked is withdrawn, never
    left pending for a grant."""
    async with opened(pg_url) as store:
        holds = holds_on(store)
        with psycopg.connect(pg_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(hashtext(%s))",
                           (f"tollgate-pending:{REQUESTER}",))
            asking = asyncio.create_task(holds.ask(FP, HELD, EVIDENCE))

            async def blocked() -> bool:
                rows = await store.store.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND NOT granted")
                return bool(rows[0][0])

            await eventually(blocked, "the ask to wait on the requester's lock")
            asking.cancel()
            holder.execute("SELECT pg_advisory_unlock(hashtext(%s))",
                           (f"tollgate-pending:{REQUESTER}",))
            with pytest.raises(asyncio.CancelledError):
                await asking
        (asked,) = await store.list()
        assert (asked.state(), asked.reason) == ("abandoned", WITHDRAWN)
        assert await store.pending_for(FP, REQUESTER) is None
