"""Each approval's message in Slack: posted when it is asked, redrawn on every change.

A change may be made by any process sharing the store (a decision on another replica,
an abandonment found by its sweep, a waiter whose client left): every process hears of
it (the store's `watchers`) and looks again, and a sweep every few seconds catches what
no word tells of (an expiry, a word lost). Which state a message shows is kept beside it
(`slack_messages`); a process redraws it only after claiming the change there, so two
processes hearing of one change do not both send it. Everything runs in the background,
retried and logged, never in the way of the request held on the approval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from extproc.approvals.answered import Answered, answered
from extproc.approvals.model import Approval, ApprovalError, approve_url, now
from extproc.approvals.notify import page_url
from extproc.approvals.slack.blocks import message, state_of
from extproc.approvals.slack.web_api import SlackApi, SlackError
from extproc.approvals.store import ApprovalStore
from extproc.store import StoreError
from extproc.webhook import Background

log = logging.getLogger("tollgate.slack")


class SlackMessages:
    def __init__(self, api: SlackApi, channel: str, store: ApprovalStore, approvals_url: str,
                 sweep_seconds: float) -> None:
        self._api, self._channel, self._store = api, channel, store
        self._url, self._sweep_seconds = approvals_url, sweep_seconds
        self._background = Background()
        self._sweeping: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Hear of every change to approvals, and sweep for what no word tells of."""
        self._store.watchers.append(self.changed)
        self._sweeping = asyncio.create_task(self._sweep())

    def send(self, approval: Approval, _approve_url: str | None = None) -> None:
        """Post `approval`'s message (a new approval), in the background."""
        self._background.spawn(self._post(approval))

    def changed(self, approval_id: str) -> None:
        """`approval_id` may have changed: its message is redrawn if what it shows did."""
        self._background.spawn(self._redraw(approval_id))

    async def close(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping
        with contextlib.suppress(ValueError):
            self._store.watchers.remove(self.changed)
        await self._background.close()
        await self._api.close()

    async def _post(self, approval: Approval) -> None:
        state, final = state_of(approval)
        try:
            posted = await self._api.call("chat.postMessage", {
                "channel": self._channel, **self._drawn(approval),
                "unfurl_links": False, "unfurl_media": False})
        except SlackError as exc:
            log.error("approval %s: its Slack message could not be posted (%s); approvers "
                      "find it on the page and with `tollgate approvals list`", approval.id,
                      exc)
            return
        try:
            await self._store.store.execute(
                "INSERT INTO slack_messages (approval_id, channel, ts, shown, final, "
                "updated_us) VALUES (?, ?, ?, ?, ?, ?)",
                (approval.id, str(posted["channel"]), str(posted["ts"]), state, int(final),
                 now()))
        except StoreError as exc:
            log.error("approval %s: its Slack message (ts %s) is posted, but the store "
                      "cannot keep where (%s): it will not be updated", approval.id,
                      posted.get("ts"), exc)
            return
        log.info("approval %s: posted to Slack (%s, ts %s)", approval.id, posted["channel"],
                 posted["ts"])
        await self._redraw(approval.id)  # decided, say, while it was being posted

    async def _redraw(self, approval_id: str) -> None:
        """Claim the change from what the message shows to what stands now, then send it;
        should another process have moved it on meanwhile, what stands is sent again."""
        try:
            rows = await self._store.store.execute(
                "SELECT channel, ts, shown, final FROM slack_messages WHERE approval_id = ?",
                (approval_id,))
            if not rows or rows[0][3]:
                return
            channel, ts, shown, _ = rows[0]
            approval = await self._store.get(approval_id)
            found = await self._answered(approval)
            state, final = state_of(approval, found)
            if state == shown or not await self._claim(approval_id, shown, state, final):
                return
            try:
                await self._api.call("chat.update", {"channel": channel, "ts": ts,
                                                     **self._drawn(approval, found)})
            except SlackError as exc:
                log.error("approval %s: its Slack message could not be updated to %s (%s); "
                          "tried again at the next sweep", approval_id, state, exc)
                await self._store.store.execute(
                    "UPDATE slack_messages SET shown = ?, final = 0 WHERE approval_id = ? "
                    "AND shown = ?", (shown, approval_id, state))
                return
            log.info("approval %s: its Slack message shows %s", approval_id, state)
            await self._caught_up(approval_id, channel, ts, state)
        except (StoreError, ApprovalError) as exc:
            log.warning("approval %s: its Slack message not redrawn now (%s); tried again "
                        "at the next sweep", approval_id, exc)

    async def _caught_up(self, approval_id: str, channel: str, ts: str, sent: str) -> None:
        """Another process claimed a later state while this one sent an earlier one, and
        may have sent it first: what stands now is sent last."""
        approval = await self._store.get(approval_id)
        rows = await self._store.store.execute(
            "SELECT shown FROM slack_messages WHERE approval_id = ?", (approval_id,))
        if rows and rows[0][0] != sent:
            with contextlib.suppress(SlackError):
                await self._api.call("chat.update", {
                    "channel": channel, "ts": ts,
                    **self._drawn(approval, await self._answered(approval))})

    async def _claim(self, approval_id: str, shown: str, state: str, final: bool) -> bool:
        rows = await self._store.store.execute(
            "UPDATE slack_messages SET shown = ?, final = ?, updated_us = ? "
            "WHERE approval_id = ? AND shown = ? AND final = 0 RETURNING approval_id",
            (state, int(final), now(), approval_id, shown))
        return bool(rows)

    async def _sweep(self) -> None:
        """Every few seconds, the messages not yet in their last state looked at again."""
        while True:
            await asyncio.sleep(self._sweep_seconds)
            try:
                rows = await self._store.store.execute(
                    "SELECT approval_id FROM slack_messages WHERE final = 0")
            except StoreError:
                continue
            for (approval_id,) in rows:
                await self._redraw(approval_id)

    async def _answered(self, approval: Approval) -> Answered | None:
        """How a used approval's request was answered, as its record says (the message
        tells what it did, never assumes it went through)."""
        return (await answered(self._store.store, approval) if approval.state() == "used"
                else None)

    def _drawn(self, approval: Approval, found: Answered | None = None) -> dict[str, object]:
        return message(approval, page_url(approve_url(self._url, approval.id), approval.id),
                       answered=found)
