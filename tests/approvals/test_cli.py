"""`tollgate approvals` against a real admin server: what `show` prints of an approval (the
link to its view on the page, where its trace and record are read, how the held request
waits) and what `list` selects."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from extproc.approvals.answered import Answered
from extproc.cli import approvals as approvals_cli
from tests.approvals.conftest import REQUESTER, create, opened
from tests.approvals.test_api import BASE, DBA_TOKEN, TRACE_UI, serving
from tests.support.cli import tollgate


def fields(printed: str) -> dict[str, str]:
    """`show`'s lines, a label and its text each."""
    return {line[:10].strip(): line[11:] for line in printed.splitlines()}


async def test_show_prints_the_link_to_the_approvals_page(sqlite_url: str,
                                                          tmp_path: Path) -> None:
    async with opened(sqlite_url) as store, serving(store, tmp_path,
                                                    trace_url=TRACE_UI) as api:
        approval = await create(store, hold_seconds=30)
        shown = await asyncio.to_thread(tollgate, "approvals", "show", approval.id,
                                        "--url", api.url, "--token", DBA_TOKEN)
    assert shown.returncode == 0, shown.stderr
    printed = fields(shown.stdout)
    assert printed["page"] == f"{BASE}/approvals/ui#{approval.id}"
    assert printed["api"] == f"{BASE}/approvals/{approval.id}"
    assert printed["trace"] == TRACE_UI.replace("{trace_id}", approval.trace_id)
    assert printed["record"] == f"{BASE}/recordings/ui#record={approval.trace_id}"
    assert printed["waiting"].startswith("since ") and " at most until " in printed["waiting"]
    assert printed["waiting"].endswith(" UTC")


async def test_list_selects_one_requesters_decided_approvals(sqlite_url: str,
                                                             tmp_path: Path) -> None:
    async with opened(sqlite_url) as store, serving(store, tmp_path) as api:
        denied = await create(store, fingerprint="1")
        await store.decide(denied.id, "dana", ["dba"], False, "not now")
        waiting = await create(store, fingerprint="2")
        theirs = await create(store, fingerprint="3", requester="svc-other")
        await store.decide(theirs.id, "dana", ["dba"], False, "no")
        listed = await asyncio.to_thread(
            tollgate, "approvals", "list", "--status", "decided", "--requester", REQUESTER,
            "--url", api.url, "--token", DBA_TOKEN)
    assert listed.returncode == 0, listed.stderr
    ids = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert ids == [denied.id]
    assert waiting.id not in listed.stdout and theirs.id not in listed.stdout


def test_show_says_how_the_held_request_ended() -> None:
    """The `wait` line of `tollgate approvals show`: answered (in the words every surface
    uses, answered.py), or its client left."""
    answered = Answered(at_us=1_700_000_000_000_000, status=403, action="hold",
                        refusal="approval_required", approval_status="pending",
                        client_left=False, detail=None)
    shown = {"status": "pending", "wait": {"answered": answered.as_json()}}
    assert approvals_cli._waiting(shown) == (
        "answered at 2023-11-14 22:13:20 UTC (the approval pending then): tollgate "
        "refused it: it needed an approval (approval_required)")
    left = replace(answered, status=None, refusal=None, client_left=True)
    shown["wait"]["answered"] = left.as_json()
    assert approvals_cli._waiting(shown) == (
        "answered at 2023-11-14 22:13:20 UTC (the approval pending then): its client left "
        "before it was answered")
    ran = replace(answered, status=200, action="allow", refusal=None,
                  approval_status="used", detail="DELETE 3")
    shown = {"status": "used", "wait": {"answered": ran.as_json()}}
    assert approvals_cli._waiting(shown) == (
        "answered at 2023-11-14 22:13:20 UTC (the approval used then): it ran: DELETE 3")


@pytest.mark.parametrize(("status", "grant_mode", "shown"), [
    ("pending", "once", "2023-11-14 22:13:20 UTC"),
    ("approved", "once", "2023-11-14 22:13:20 UTC (usable until then)"),
    ("approved", "window", "-"),
    ("expired", "once", "2023-11-14 22:13:20 UTC"),
    ("used", "once", "-"), ("denied", "once", "-"), ("abandoned", "once", "-"),
])
def test_show_gives_an_expiry_only_while_it_can_come(status: str, grant_mode: str,
                                                     shown: str) -> None:
    found = {"status": status, "grant_mode": grant_mode,
             "expires_us": 1_700_000_000_000_000}
    assert approvals_cli._expiry(found) == shown
