"""Telling approvers: a webhook POST of JSON with a Slack-compatible `text`, retried.

Runs beside the held request, never in its way: a webhook that is down does not stop the
approval from existing (approvers can still find it with `tollgate approvals list` or the
page), and how the notification went is kept on the approval (`notified`) and logged.
`Everyone` tells every way configured: the webhook, and Slack as an app (approvals/slack/).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from extproc.approvals.model import Approval
from extproc.approvals.store import ApprovalStore
from extproc.codecs.inert import slack
from extproc.store import StoreError
from extproc.webhook import Background, Webhook

log = logging.getLogger("tollgate.approvals")


def page_url(approve_url: str | None, approval_id: str) -> str | None:
    """The approval's own view on the approvers' page (`/approvals/ui#ID`), beside its
    API URL (`.../approvals/ID`); None without an admin API."""
    if not approve_url:
        return None
    base, found, _ = approve_url.rpartition("/approvals/")
    return f"{base}/approvals/ui#{approval_id}" if found else None


def message(approval: Approval, approve_url: str | None) -> dict[str, Any]:
    """The webhook body: `text` for chat tools (Slack, Mattermost, Teams connectors),
    ending with the link to the approval's view on the page (where an approver reads it
    in full and decides), and the approval's fields, exact, for anything that reads JSON.

    What the agent sent reaches `text` inert (`inert.slack`: no markup, link or mention
    of its own), and `mrkdwn: false` asks Slack to apply no formatting at all."""
    why = "; ".join(approval.reasons) or ", ".join(approval.rules) or "held by policy"
    requester, target = slack(approval.requester), slack(approval.target)
    grant = ("this one request" if approval.grant_mode == "once"
             else f"{requester} on {target} for {approval.grant_minutes} min")
    view = page_url(approve_url, approval.id)
    where = (f"Review and decide: {view}" if view
             else f"tollgate approvals show {approval.id}")
    text = (f"tollgate: {requester} waits for approval on {target}: "
            f"{slack(approval.summary)} ({slack(why)}). Approvers: "
            f"{slack(', '.join(approval.approvers))}; approving grants {grant}. {where}")
    return {"text": text, "mrkdwn": False, "approval": {
        "id": approval.id, "requester": approval.requester, "target": approval.target,
        "summary": approval.summary, "reasons": list(approval.reasons),
        "rules": list(approval.rules), "approvers": list(approval.approvers),
        "grant": approval.grant_mode, "grant_minutes": approval.grant_minutes,
        "expires_us": approval.expires_us, "trace_id": approval.trace_id,
        "approve_url": approve_url, "page_url": view,
    }}


class Tells(Protocol):
    """A way of telling approvers of a new approval (the webhook, Slack)."""

    def send(self, approval: Approval, approve_url: str | None) -> None: ...

    async def close(self) -> None: ...


class Everyone:
    """Every way of telling approvers that is configured, told alike."""

    def __init__(self, ways: Sequence[Tells]) -> None:
        self._ways = ways

    def send(self, approval: Approval, approve_url: str | None) -> None:
        for way in self._ways:
            way.send(approval, approve_url)

    async def close(self) -> None:
        for way in self._ways:
            await way.close()


class Notifier:
    def __init__(self, url: str, attempts: int, store: ApprovalStore) -> None:
        self._webhook, self._store = Webhook(url, attempts), store
        self._background = Background()

    def send(self, approval: Approval, approve_url: str | None) -> None:
        """Notify in the background; the outcome is kept on the approval."""
        self._background.spawn(self._deliver(approval, approve_url))

    async def close(self) -> None:
        """Give notifications under way a moment, then stop them."""
        await self._background.close()
        await self._webhook.close()

    async def _deliver(self, approval: Approval, approve_url: str | None) -> None:
        delivery = await self._webhook.deliver(message(approval, approve_url))
        if delivery.ok:
            log.info("approvals: %s: approvers notified (attempt %d, HTTP %s)",
                     approval.id, delivery.attempts, delivery.status)
        else:
            log.error("approvals: %s: the webhook at %s failed %d times (%s); the approval "
                      "stays pending for approvers to find", approval.id,
                      self._webhook.host, delivery.attempts, delivery.error)
        with contextlib.suppress(StoreError):
            await self._store.set_notified(approval.id, delivery.as_dict())
