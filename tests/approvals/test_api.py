"""The approvals API's listing, past the first page of the store."""

from __future__ import annotations

from extproc.admin.approvals.api import ApprovalsApi
from tests.approvals.conftest import create, opened

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
