"""The approvals API: its listing past the first page of the store, and what the page reads
of it on a real admin server (whether the caller may decide, one requester's approvals, the
decided ones, how the held request waits)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from extproc.admin.approvals.api import ApprovalsApi
from extproc.admin.recordings.readers import Readers
from extproc.approvals.store import ApprovalStore
from extproc.config import Recordings
from extproc.recording.chain import Signer
from tests.approvals.conftest import REQUESTER, create, opened
from tests.monitor.conftest import verifier
from tests.recording.conftest import evidence, record
from tests.support import tokens
from tests.support.admin_server import AdminClient, admin_serving

DBA = {"sub": "dana", "groups": ["dba"]}


async def test_a_listing_reads_past_a_page_of_approvals_the_caller_may_not_see(
        sqlite_url: str) -> None:
    """501 newer approvals for SREs come before the one a dba may decide: it is found."""
    async with opened(sqlite_url) as store:
        theirs = await create(store, fingerprint="dba")
        for n in range(501):
            await create(store, fingerprint=f"sre-{n}", approvers=("group:sre",))
        api = ApprovalsApi(store, None, None, None, {}, "", (), 1024)  # type: ignore[arg-type]
        found = await api._visible(DBA, "pending", 100)
        assert [a.id for a in found] == [theirs.id]
        assert len(await api._visible({"sub": "sam", "groups": ["sre"]}, None, 100)) == 100


# -- the page's reads, on a real admin server ------------------------------------------

BASE = "https://gateway.example/admin"
TRACE_UI = "https://traces.example/trace/{trace_id}"
DBA_TOKEN = tokens.token("dana", ["dba"])
SRE_TOKEN = tokens.token("sam", ["sre"])
REQUESTER_TOKEN = tokens.token(REQUESTER, ["agents"])


@asynccontextmanager
async def serving(store: ApprovalStore, tmp_path: Path, **options: Any,
                  ) -> AsyncIterator[AdminClient]:
    """The approvals API on a real admin server (no recorder: these tests only read)."""
    api = ApprovalsApi(store, verifier(tmp_path), None, None, {}, BASE,  # type: ignore[arg-type]
                       (), 1024, **options)
    async with admin_serving(api.routes()) as client:
        yield client


async def test_each_approval_says_whether_the_caller_may_decide_it_and_where_it_is_read(
        sqlite_url: str, tmp_path: Path) -> None:
    """An approver of it may decide it, its requester may not (the page offers no
    buttons then); each carries its page's view, its record's and its trace's links."""
    async with opened(sqlite_url) as store, serving(store, tmp_path,
                                                    trace_url=TRACE_UI) as api:
        approval = await create(store)
        status, listed = await api.get("/approvals?status=pending", DBA_TOKEN)
        assert status == 200
        assert listed["caller"] == {"sub": "dana", "groups": ["dba"]}
        (shown,) = listed["approvals"]
        assert shown["may_decide"] is True
        assert shown["page_url"] == f"{BASE}/approvals/ui#{approval.id}"
        assert shown["approve_url"] == f"{BASE}/approvals/{approval.id}"
        assert shown["record_url"] == f"{BASE}/recordings/ui#record={approval.trace_id}"
        assert shown["trace_url"] == f"https://traces.example/trace/{approval.trace_id}"

        status, own = await api.get(f"/approvals/{approval.id}", REQUESTER_TOKEN)
        assert status == 200
        assert own["may_decide"] is False
        # Someone who may not decide it does not see it at all, as before.
        assert (await api.get(f"/approvals/{approval.id}", SRE_TOKEN))[0] == 404
        assert (await api.get("/approvals", SRE_TOKEN))[1]["approvals"] == []
        # Without readers configured, nobody reads the record from the page.
        assert shown["reads_record"] is False


async def test_each_approval_says_whether_the_caller_reads_the_record(
        sqlite_url: str, tmp_path: Path) -> None:
    """The page asks the record for the requester's activity only for its readers: a
    dba named a reader does, the requester (an agent) never does."""
    readers = Readers(Recordings(readers=("group:dba",)), ())
    async with opened(sqlite_url) as store, serving(store, tmp_path,
                                                    readers=readers) as api:
        approval = await create(store)
        assert (await api.get(f"/approvals/{approval.id}", DBA_TOKEN))[1]["reads_record"]
        own = (await api.get(f"/approvals/{approval.id}", REQUESTER_TOKEN))[1]
        assert own["reads_record"] is False


async def test_without_a_trace_ui_the_trace_is_its_id_alone(sqlite_url: str,
                                                            tmp_path: Path) -> None:
    async with opened(sqlite_url) as store, serving(store, tmp_path) as api:
        approval = await create(store)
        shown = (await api.get(f"/approvals/{approval.id}", DBA_TOKEN))[1]
        assert shown["trace_url"] is None
        assert shown["trace_id"] == approval.trace_id


async def test_a_listing_of_one_requesters_approvals_and_of_decided_ones(
        sqlite_url: str, tmp_path: Path) -> None:
    """`requester` keeps one requester's approvals, `decided` every one no longer pending
    (an expired one too); neither shows what the caller may not see."""
    async with opened(sqlite_url) as store, serving(store, tmp_path) as api:
        waiting = await create(store, fingerprint="1")
        denied = await create(store, fingerprint="2")
        await store.decide(denied.id, "dana", ["dba"], False, "no")
        expired = await create(store, fingerprint="3", expire_seconds=0.001)
        other = await create(store, fingerprint="4", requester="svc-other")
        await create(store, fingerprint="5", approvers=("group:sre",))  # not the dba's

        async def ids(query: str) -> list[str]:
            status, listed = await api.get(f"/approvals?{query}", DBA_TOKEN)
            assert status == 200, listed
            return [a["id"] for a in listed["approvals"]]

        assert await ids(f"status=pending&requester={REQUESTER}") == [waiting.id]
        assert await ids("status=pending&requester=svc-other") == [other.id]
        assert await ids("status=decided") == [expired.id, denied.id]
        assert await ids(f"status=decided&requester={REQUESTER}&limit=1") == [expired.id]
        assert await ids("status=all&requester=nobody") == []
        status, refused = await api.get("/approvals?requester=", DBA_TOKEN)
        assert (status, refused["error"]) == (400, "bad_request")


@pytest.mark.slow
async def test_a_grant_a_retry_used_shows_what_the_retry_did(
        store_url: str, tmp_path: Path, signer: Signer) -> None:
    """The held request's client left; the grant was then used by a retry on another
    trace: approvers are shown the retry's answer and what it did (its front's words,
    "UPDATE 3"), not the departure."""
    async with opened(store_url) as store:
        approval = await create(store, hold_seconds=30)
        await store.decide(approval.id, "dana", ["dba"], True, None)
        used = await store.use(approval.id, "f" * 32)
        assert used is not None
        async with serving(store, tmp_path) as api:
            left = evidence(7, action="hold", status=499)
            left.trace_id = approval.trace_id
            left.approval = approval.for_record("hold")
            left.outcome = {"tollgate.decision.action": "hold", "tollgate.refusal": "client_left",
                            "http.response.status_code": 499}
            retry = evidence(8, action="allow", status=200)
            retry.trace_id = "f" * 32
            retry.approval = used.for_record("grant")
            retry.outcome = {"tollgate.decision.action": "allow",
                             "tollgate.outcome": "UPDATE 3", "http.response.status_code": 200}
            await record(store_url, signer, [left, retry])
            answered = (await api.get(f"/approvals/{approval.id}", DBA_TOKEN))[1]["wait"][
                "answered"]
    assert (answered["status"], answered["detail"], answered["client_left"],
            answered["approval_status"]) == (200, "UPDATE 3", False, "used")


async def test_show_says_how_long_the_held_request_waits_and_how_it_was_answered(
        store_url: str, tmp_path: Path, signer: Signer) -> None:
    """Until when the agent waits at most (its policy's hold); once its exchange is in the
    record, when and how it was answered (here: it gave up, refused 403
    approval_required while the approval was pending)."""
    async with opened(store_url) as store:
        approval = await create(store, hold_seconds=30)
        async with serving(store, tmp_path) as api:
            wait = (await api.get(f"/approvals/{approval.id}", DBA_TOKEN))[1]["wait"]
            # Created for a request that waits on it: waited on from the start (its lease
            # taken with it, before the waiter's first renewal).
            assert wait == {"since_us": approval.created_us,
                            "until_us": approval.created_us + 30_000_000, "answered": None,
                            "waiting": True, "held_by": "replica-a"}

            refused = evidence(7, action="hold", status=403)
            refused.trace_id = approval.trace_id
            refused.approval = approval.for_record("hold")
            refused.outcome = {"tollgate.decision.action": "hold",
                               "tollgate.refusal": "approval_required",
                               "http.response.status_code": 403}
            refused.duration_ms = 30_000.0
            # Another approval's exchange on another trace says nothing about this one.
            elsewhere = evidence(8, action="hold", status=403)
            elsewhere.approval = {**approval.for_record("hold"), "id": "ap-other"}
            await record(store_url, signer, [refused, elsewhere])

            wait = (await api.get(f"/approvals/{approval.id}", DBA_TOKEN))[1]["wait"]
            assert wait["answered"] == {
                "at_us": int(refused.started * 1_000_000) + 30_000_000, "status": 403,
                "refusal": "approval_required", "approval_status": "pending",
                "client_left": False, "detail": None, "action": "hold",
                "said": "tollgate refused it: it needed an approval (approval_required)"}
            # An approval no request waits on (a changed MCP tool) says no "until"; nor
            # does a hold longer than the approval lives say it waits past its expiry.
            unwaited = await create(store, fingerprint="tool")
            wait = (await api.get(f"/approvals/{unwaited.id}", DBA_TOKEN))[1]["wait"]
            assert wait["until_us"] is None
            long = await create(store, fingerprint="long", hold_seconds=3600)
            wait = (await api.get(f"/approvals/{long.id}", DBA_TOKEN))[1]["wait"]
            assert wait["until_us"] == long.expires_us
