"""The approvals webhook, against a real HTTP server on 127.0.0.1: what it posts, how it
retries, and what the approval keeps of how it went."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from extproc.approvals.model import Approval
from extproc.approvals.notify import Notifier
from extproc.approvals.store import ApprovalStore
from extproc.stack import free_port
from tests.approvals.conftest import REQUESTER, create, eventually, opened

APPROVE_URL = "https://tollgate.example.com/approvals/ap-x"


class Webhook:
    """A real HTTP server: records each POST, answers with `statuses` in turn (the last
    one from then on)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                hook.received.append(json.loads(self.rfile.read(length)))
                hook.content_types.append(self.headers.get("content-type", ""))
                status = hook.statuses.pop(0) if len(hook.statuses) > 1 else hook.statuses[0]
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/approvals"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def webhook(request: pytest.FixtureRequest) -> Iterator[Webhook]:
    statuses = getattr(request, "param", [200])
    server = Webhook(statuses)
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


def test_the_webhook_gets_a_slack_compatible_text_and_the_approval(
        sqlite_url: str, webhook: Webhook, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> Approval:
        async with opened(sqlite_url) as store:
            notifier = Notifier(webhook.url, 3, store)
            try:
                approval = await create(store)
                with caplog.at_level(logging.INFO, logger="tollgate.approvals"):
                    outcome = await notified(store, notifier, approval, APPROVE_URL)
                assert outcome == {"ok": True, "attempts": 1, "status": 200}
                assert (await store.get(approval.id)).status == "pending"
                return approval
            finally:
                await notifier.close()

    approval = asyncio.run(scenario())
    (body,) = webhook.received
    assert webhook.content_types == ["application/json"]
    text = body["text"]
    for part in (REQUESTER, "orders", approval.summary, APPROVE_URL, "group:dba",
                 "deletes in prod need a DBA"):
        assert part in text, part
    assert body["approval"] == {
        "id": approval.id, "requester": REQUESTER, "target": "orders",
        "summary": approval.summary, "reasons": list(approval.reasons),
        "rules": list(approval.rules), "approvers": ["group:dba"], "grant": "once",
        "grant_minutes": None, "expires_us": approval.expires_us,
        "trace_id": approval.trace_id, "approve_url": APPROVE_URL,
    }
    # The outcome is logged as well as kept.
    logged = [r.getMessage() for r in caplog.records
              if r.name == "tollgate.approvals" and r.levelno == logging.INFO]
    assert any(approval.id in m and "attempt 1" in m for m in logged), logged


def test_without_an_approve_url_the_text_names_the_command(sqlite_url: str,
                                                          webhook: Webhook) -> None:
    async def scenario() -> Approval:
        async with opened(sqlite_url) as store:
            notifier = Notifier(webhook.url, 1, store)
            try:
                approval = await create(store, grant_mode="window", grant_minutes=30)
                assert (await notified(store, notifier, approval, None))["ok"] is True
                return approval
            finally:
                await notifier.close()

    approval = asyncio.run(scenario())
    (body,) = webhook.received
    assert f"tollgate approvals approve {approval.id}" in body["text"]
    assert f"{REQUESTER} on orders for 30 min" in body["text"]
    assert body["approval"]["approve_url"] is None
    assert body["approval"]["grant"] == "window"


@pytest.mark.parametrize("webhook", [[500, 200]], indirect=True)
def test_a_failing_webhook_is_retried(sqlite_url: str, webhook: Webhook,
                                      caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> Approval:
        async with opened(sqlite_url) as store:
            notifier = Notifier(webhook.url, 3, store)
            try:
                approval = await create(store)
                with caplog.at_level(logging.INFO, logger="tollgate.approvals"):
                    outcome = await notified(store, notifier, approval, APPROVE_URL)
                assert outcome == {"ok": True, "attempts": 2, "status": 200}
                return approval
            finally:
                await notifier.close()

    approval = asyncio.run(scenario())
    assert len(webhook.received) == 2
    assert webhook.received[0] == webhook.received[1]  # the same message again
    logged = [r.getMessage() for r in caplog.records if r.name == "tollgate.approvals"]
    assert any(approval.id in m and "attempt 2" in m for m in logged), logged


def test_a_webhook_that_is_down_leaves_the_approval_pending_and_says_so(
        sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/approvals"  # nothing listens there

    async def scenario() -> Approval:
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
                return approval
            finally:
                await notifier.close()

    approval = asyncio.run(scenario())
    (error,) = [r for r in caplog.records
                if r.name == "tollgate.approvals" and r.levelno == logging.ERROR]
    message = error.getMessage()
    assert approval.id in message and "2 times" in message and "ClientConnectorError" in message
