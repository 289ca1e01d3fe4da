"""Telling approvers: a webhook POST of JSON with a Slack-compatible `text`, retried.

Runs beside the held request, never in its way: a webhook that is down does not stop the
approval from existing (approvers can still find it with `tollgate approvals list` or the
page), and how the notification went is kept on the approval (`notified`) and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from extproc.approvals.model import Approval
from extproc.approvals.store import ApprovalStore
from extproc.inert import slack
from extproc.store import StoreError

log = logging.getLogger("tollgate.approvals")

# Seconds before each retry: 1, 2, 4, 8, then 8 again.
_BACKOFF = (1.0, 2.0, 4.0, 8.0)
_TIMEOUT = aiohttp.ClientTimeout(total=5.0)


def message(approval: Approval, approve_url: str | None) -> dict[str, Any]:
    """The webhook body: `text` for chat tools (Slack, Mattermost, Teams connectors), and
    the approval's fields, exact, for anything that reads JSON.

    What the agent sent reaches `text` inert (`inert.slack`: no markup, link or mention
    of its own), and `mrkdwn: false` asks Slack to apply no formatting at all."""
    why = "; ".join(approval.reasons) or ", ".join(approval.rules) or "held by policy"
    requester, target = slack(approval.requester), slack(approval.target)
    grant = ("this one request" if approval.grant_mode == "once"
             else f"{requester} on {target} for {approval.grant_minutes} min")
    text = (f"tollgate: {requester} waits for approval on {target}: "
            f"{slack(approval.summary)} ({slack(why)}). Approvers: "
            f"{slack(', '.join(approval.approvers))}; approving grants {grant}. "
            f"{approve_url or f'tollgate approvals approve {approval.id}'}")
    return {"text": text, "mrkdwn": False, "approval": {
        "id": approval.id, "requester": approval.requester, "target": approval.target,
        "summary": approval.summary, "reasons": list(approval.reasons),
        "rules": list(approval.rules), "approvers": list(approval.approvers),
        "grant": approval.grant_mode, "grant_minutes": approval.grant_minutes,
        "expires_us": approval.expires_us, "trace_id": approval.trace_id,
        "approve_url": approve_url,
    }}


class Notifier:
    def __init__(self, url: str, attempts: int, store: ApprovalStore) -> None:
        self._url, self._attempts, self._store = url, attempts, store
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def send(self, approval: Approval, approve_url: str | None) -> None:
        """Notify in the background; the outcome is kept on the approval."""
        task = asyncio.create_task(self._deliver(approval, approve_url))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Give notifications under way a moment, then stop them."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        for task in self._tasks:
            task.cancel()
        if self._session is not None:
            await self._session.close()

    async def _deliver(self, approval: Approval, approve_url: str | None) -> None:
        body = message(approval, approve_url)
        error = ""
        for attempt in range(1, self._attempts + 1):
            try:
                status = await self._post(body)
                if 200 <= status < 300:
                    log.info("approvals: %s: approvers notified (attempt %d, HTTP %d)",
                             approval.id, attempt, status)
                    await self._keep(approval, {"ok": True, "attempts": attempt,
                                                "status": status})
                    return
                error = f"HTTP {status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt < self._attempts:
                await asyncio.sleep(_BACKOFF[min(attempt - 1, len(_BACKOFF) - 1)])
        # The host only: a webhook's URL is often its secret (Slack's are).
        log.error("approvals: %s: the webhook at %s failed %d times (%s); the approval "
                  "stays pending for approvers to find", approval.id,
                  urlsplit(self._url).hostname, self._attempts, error)
        await self._keep(approval, {"ok": False, "attempts": self._attempts, "error": error})

    async def _post(self, body: dict[str, Any]) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        async with self._session.post(self._url, json=body) as reply:
            return reply.status

    async def _keep(self, approval: Approval, outcome: dict[str, Any]) -> None:
        with contextlib.suppress(StoreError):
            await self._store.set_notified(approval.id, outcome)
