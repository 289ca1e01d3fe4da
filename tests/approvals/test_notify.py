"""The approvals webhook, against a real HTTP server on 127.0.0.1: what it posts, how it
retries, and what the approval keeps of how it went."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from extproc.approvals.model import Approval
from extproc.approvals.notify import Notifier, page_url
from extproc.approvals.store import ApprovalStore
from tests.approvals.conftest import REQUESTER, create, eventually, opened
from tests.support.http_server import LocalServer

BASE = "https://tollgate.example.com"
APPROVE_URL = f"{BASE}/approvals/ap-x"


def webhook_answering(statuses: list[int]) -> LocalServer:
    """A real HTTP server answering POSTs with `statuses` in turn (the last one from then
    on)."""
    left = list(statuses)
    return LocalServer(lambda *_: (left.pop(0) if len(left) > 1 else left[0], b"ok"),
                       "/hooks/approvals")


@pytest.fixture
def webhook(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    server = webhook_answering(getattr(request, "param", [200]))
    yield server
    server.stop()


async def notified(store: ApprovalStore, notifier: Notifier, approval: Approval,
                   approve_url: str | None) -> dict[str, Any]:
    """Send, then wait for the outcome the notifier keeps on the approval."""
    notifier.send(approval, approve_url)

    async def kept() -> bool:
        return (await store.get(approval.id)).notified is not None

    await eventually(kept, f"the outcome of notifying {approval.id}")
    found = (await store.get(approval.id)).notified
    assert found is not None
    return found


async def notified_once(sqlite_url: str, webhook: LocalServer, approve_url: str | None,
                        **fields: Any) -> Approval:
    """An approval made with `fields`, its webhook sent once and answered ok."""
    async with opened(sqlite_url) as store:
        notifier = Notifier(webhook.url, 1, store)
        try:
            approval = await create(store, **fields)
            assert (await notified(store, notifier, approval, approve_url))["ok"] is True
            return approval
        finally:
            await notifier.close()


async def test_the_webhook_gets_a_slack_compatible_text_and_the_approval(
        sqlite_url: str, webhook: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    async with opened(sqlite_url) as store:
        notifier = Notifier(webhook.url, 3, store)
        try:
            approval = await create(store)
            with caplog.at_level(logging.INFO, logger="tollgate.approvals"):
                outcome = await notified(store, notifier, approval, APPROVE_URL)
            assert outcome == {"ok": True, "attempts": 1, "status": 200}
            assert (await store.get(approval.id)).status == "pending"
        finally:
            await notifier.close()
    (post,) = webhook.received
    body = post.json()
    assert post.headers["content-type"] == "application/json"
    text = body["text"]
    for part in (REQUESTER, "orders", approval.summary, "group:dba",
                 "deletes in prod need a DBA"):
        assert part in text, part
    # The link is the approval's view on the approvers' page, not the API's JSON.
    page = f"{BASE}/approvals/ui#{approval.id}"
    assert text.endswith(f"Review and decide: {page}")
    assert body["approval"] == {
        "id": approval.id, "requester": REQUESTER, "target": "orders",
        "summary": approval.summary, "reasons": list(approval.reasons),
        "rules": list(approval.rules), "approvers": ["group:dba"], "grant": "once",
        "grant_minutes": None, "expires_us": approval.expires_us,
        "trace_id": approval.trace_id, "approve_url": APPROVE_URL, "page_url": page,
    }
    # The outcome is logged as well as kept.
    logged = [r.getMessage() for r in caplog.records
              if r.name == "tollgate.approvals" and r.levelno == logging.INFO]
    assert any(approval.id in m and "attempt 1" in m for m in logged), logged


def test_the_page_link_sits_beside_the_api_link_under_any_base_path() -> None:
    assert page_url("https://gw.example/tollgate/approvals/ap-1", "ap-1") == (
        "https://gw.example/tollgate/approvals/ui#ap-1")
    assert page_url(None, "ap-1") is None
    assert page_url("", "ap-1") is None


async def test_without_an_approve_url_the_text_names_the_command(
        sqlite_url: str, webhook: LocalServer) -> None:
    approval = await notified_once(sqlite_url, webhook, None, grant_mode="window",
                                   grant_minutes=30)
    body = webhook.received[0].json()
    assert body["text"].endswith(f"tollgate approvals show {approval.id}")
    assert f"{REQUESTER} on orders for 30 min" in body["text"]
    assert body["approval"]["approve_url"] is None
    assert body["approval"]["page_url"] is None
    assert body["approval"]["grant"] == "window"


@pytest.mark.parametrize("webhook", [[500, 200]], indirect=True)
async def test_a_failing_webhook_is_retried(sqlite_url: str, webhook: LocalServer,
                                            caplog: pytest.LogCaptureFixture) -> None:
    async with opened(sqlite_url) as store:
        notifier = Notifier(webhook.url, 3, store)
        try:
            approval = await create(store)
            with caplog.at_level(logging.INFO, logger="tollgate.approvals"):
                outcome = await notified(store, notifier, approval, APPROVE_URL)
            assert outcome == {"ok": True, "attempts": 2, "status": 200}
        finally:
            await notifier.close()
    assert len(webhook.received) == 2
    assert webhook.received[0].body == webhook.received[1].body  # the same message again
    logged = [r.getMessage() for r in caplog.records if r.name == "tollgate.approvals"]
    assert any(approval.id in m and "attempt 2" in m for m in logged), logged


async def test_a_webhook_that_is_down_leaves_the_approval_pending_and_says_so(
        sqlite_url: str, closed_port: int, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{closed_port}/hooks/approvals"  # nothing listens there

    async with opened(sqlite_url) as store:
        notifier = Notifier(url, 2, store)
        try:
            approval = await create(store)
            with caplog.at_level(logging.INFO, logger="tollgate.approvals"):
                outcome = await notified(store, notifier, approval, APPROVE_URL)
            assert outcome["ok"] is False and outcome["attempts"] == 2
            assert "ClientConnectorError" in outcome["error"], outcome
            found = await store.get(approval.id)
            assert found.state() == "pending"
            assert [a.id for a in await store.list("pending")] == [approval.id]
        finally:
            await notifier.close()
    (error,) = [r for r in caplog.records
                if r.name == "tollgate.approvals" and r.levelno == logging.ERROR]
    message = error.getMessage()
    assert approval.id in message and "2 times" in message and "ClientConnectorError" in message


async def test_what_the_agent_sent_reaches_the_chat_inert(sqlite_url: str,
                                                          webhook: LocalServer) -> None:
    """An agent's statement carrying Slack markup (a disguised link, a channel-wide
    mention), a plain @here, bold text and terminal controls: the `text` shows all of it
    as written and none of it works; `approval` keeps the exact values for machines."""
    summary = ("DELETE FROM orders /* <https://evil.example/approve|Approve> <!channel> @here "
               "*approved by the DBA team* \x1b[2K\r\u202e */")
    requester = "<!here> agent"
    approval = await notified_once(sqlite_url, webhook, APPROVE_URL, summary=summary,
                                   requester=requester, reasons=("<@U024BE7LH> said so",))
    body = webhook.received[0].json()
    text = body["text"]
    assert body["mrkdwn"] is False
    # Angle brackets only as entities: no link, no <!channel>, no <@user> can form.
    assert "<" not in text and ">" not in text
    assert ("&lt;https://evil.example/approve|Approve&gt; &lt;!channel&gt; \uff20here "
            "*approved by the DBA team* \\x1b[2K\\r\\u202e") in text
    assert text.startswith("tollgate: &lt;!here&gt; agent waits for approval on orders: ")
    assert "(&lt;\uff20U024BE7LH&gt; said so)" in text
    assert "@here" not in text and "\x1b" not in text and "\u202e" not in text
    assert text.endswith(f"{BASE}/approvals/ui#{approval.id}")
    assert body["approval"]["summary"] == approval.summary == summary
    assert body["approval"]["requester"] == requester
