"""Approvals in the store, and the requests waiting on them woken when they are decided.

Every change of state is one conditional UPDATE (`... WHERE status = 'pending'`), so two
approvers, or two replicas, cannot both decide one approval, and a `once` grant lets
exactly one request through. A decision wakes the requests waiting in this process at
once, and those waiting in every other process sharing the store: on PostgreSQL by NOTIFY
(committed with the decision), on SQLite by a word to each sibling's socket (wakeup.py: the
workers of one `tollgate serve`, or any process on the same file). A waiter also looks
again every few seconds, so a missed notification delays a request, never loses it; and
renews, each time, the approval's waiting lease (`waiting_until_us`), so approvers see
whether a request still waits on it: a client that left, or a replica that died, stops
renewing it, and two polls later nobody is shown waiting.

An approval lasts beyond its waiters only once a client was told of it (`told`: its hold
ended undecided, and the refusal named it). A waiter that leaves before that (its client
gone, its stream reset, Envoy's own timeout) withdraws it (`withdraw`): a grant must never
let through a retry whose client never knew its request was held.

What else shows approvals (the Slack messages, approvals/slack/) hears of every change
through `watchers`: a decision, an abandonment, a waiter letting go, made by this process
or any other sharing the store (the same words that wake waiters).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from extproc import metrics
from extproc.approvals.model import Approval, ApprovalError, now
from extproc.approvals.wakeup import Siblings
from extproc.policy.decision import MOST_GRANT_MINUTES
from extproc.store import StoreError
from extproc.store.aio import AsyncStore, open_store

log = logging.getLogger("tollgate.approvals")

CHANNEL = "tollgate_approvals"
# A waiter's lease lasts this many polls: renewed at each, it lapses two polls after the
# waiter stopped (a replica killed mid-hold), never between two renewals.
_LEASE_POLLS = 3
_COLUMNS = (
    "id", "fingerprint", "requester", "identity", "target", "summary", "request",
    "approvers", "rules", "reasons", "grant_mode", "grant_minutes", "status", "created_us",
    "expires_us", "trace_id", "span_id", "held_by", "decided_by", "decided_us", "reason",
    "grant_until_us", "used_us", "used_trace_id", "notified", "hold_until_us",
    "waiting_until_us", "approvals_needed", "approved_by", "told_us",
)
_JSON = frozenset({"identity", "request", "notified"})
_LISTS = frozenset({"approvers", "rules", "reasons", "approved_by"})
# Approvers racing to approve one approval that needs several: each tries this often.
_QUORUM_TRIES = 5
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM approvals"
ABANDONED = ("the replica holding its request stopped without answering it: nobody waits "
             "on it, and a retry of the request asks anew")
WITHDRAWN = ("withdrawn: its request stopped waiting before it was decided (its client "
             "left, or its connection or stream ended, Envoy's own timeout included), and "
             "its client was never told it was held: nobody waits on it, and a retry of "
             "the request asks anew")


# Open windows of one requester on one target looked at for a held request, newest end
# first: more are never open at once but by a policy granting one per rule.
_MOST_WINDOWS = 20


class ApprovalStore:
    def __init__(self, store: AsyncStore, poll_seconds: float = 2.0,
                 max_window_seconds: int = MOST_GRANT_MINUTES * 60) -> None:
        self._store = store
        self._poll, self._max_window = poll_seconds, max_window_seconds
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listening: asyncio.Task[None] | None = None
        self._siblings: Siblings | None = None
        self._stopping = False
        # Called with an approval's id whenever it may have changed, here or elsewhere.
        self.watchers: list[Callable[[str], None]] = []

    @classmethod
    async def open(cls, url: str, poll_seconds: float = 2.0,
                   max_window_seconds: int = MOST_GRANT_MINUTES * 60) -> ApprovalStore:
        found = cls(await open_store(url), poll_seconds, max_window_seconds)
        if found._store.backend == "sqlite":
            found._siblings = Siblings.open(Path(url.removeprefix("sqlite:///")), found._wake)
        else:
            found._listening = asyncio.create_task(found._listen())
        return found

    @property
    def where(self) -> str:
        return self._store.where

    @property
    def store(self) -> AsyncStore:
        """The store itself, for what lives beside approvals (approvals/pins.py)."""
        return self._store

    async def close(self) -> None:
        if self._siblings is not None:
            self._siblings.close()
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        await self._store.close()

    # -- a held request ------------------------------------------------------------------

    async def grant_for(self, fingerprint: str, requester: str, target: str,
                        approvers: Sequence[str], trace_id: str, rules: Sequence[str] = (),
                        session: str | None = None) -> Approval | None:
        """An approval that lets this request through now: a `window` grant still open
        of this identity on this target, from the same approvers (an SRE's window does
        not open what a dba must decide), given for holds of the same rules (a window
        opened for `sudo` does not open a command held as destructive) and, for a
        shell's line, in the same session (`session`: a shell's state is its own, as
        sudo's own timestamps are a terminal's); or a `once` grant of this very request,
        which is used up by it."""
        at = now()
        windows = await self._store.execute(
            f"{_SELECT} WHERE requester = ? AND target = ? AND approvers = ? "
            "AND grant_mode = 'window' AND status = 'approved' AND grant_until_us > ? "
            "ORDER BY grant_until_us DESC LIMIT ?",
            (requester, target, _json_list(approvers), at, _MOST_WINDOWS))
        for row in windows:
            window = _approval(row)
            if (set(rules) <= set(window.rules)
                    and window.request.get("session") == session):
                return window
        # One statement: of two retries racing for one grant, the second finds the row
        # no longer 'approved' (PostgreSQL re-checks the outer WHERE after the wait).
        used = await self._store.execute(
            f"UPDATE approvals SET status = 'used', used_us = ?, used_trace_id = ? "
            f"WHERE id = (SELECT id FROM approvals WHERE fingerprint = ? "
            f"AND requester = ? AND grant_mode = 'once' AND status = 'approved' "
            f"AND expires_us > ? ORDER BY decided_us LIMIT 1) AND status = 'approved' "
            f"RETURNING {', '.join(_COLUMNS)}",
            (at, trace_id, fingerprint, requester, at))
        return _approval(used[0]) if used else None

    async def pending_for(self, fingerprint: str, requester: str) -> Approval | None:
        """The approval this same request already waits for (a retry while pending)."""
        rows = await self._store.execute(
            f"{_SELECT} WHERE fingerprint = ? AND requester = ? AND status = 'pending' "
            "AND expires_us > ? ORDER BY created_us DESC LIMIT 1",
            (fingerprint, requester, now()))
        return _approval(rows[0]) if rows else None

    async def create(self, max_pending: int, **fields: Any) -> Approval:
        """A new pending approval (`fields`: every column but id, status and times, and
        `hold_seconds` when a request waits on it), unless its requester already has
        `max_pending` (ApprovalError `too_many_pending`, 429).

        Count and insert are one transaction that holds the requester's lock (SQLite:
        every write transaction is serialised; PostgreSQL: an advisory lock), so replicas
        racing for the last place cannot both take it."""
        at = now()
        held = fields.pop("hold_seconds", None)
        # A request that waits on it does so from the start: approvers see it waiting
        # before its waiter's first renewal (a read of the approval could come first).
        approval = Approval(
            id=f"ap-{secrets.token_hex(8)}", status="pending", created_us=at,
            expires_us=at + int(fields.pop("expire_seconds") * 1_000_000),
            hold_until_us=None if held is None else at + int(held * 1_000_000),
            waiting_until_us=None if held is None else self._lease_end(at), **fields)
        async with self._store.transaction() as execute:
            await self._store.serialise(execute, f"tollgate-pending:{approval.requester}")
            ((pending,),) = await execute(
                "SELECT count(*) FROM approvals WHERE requester = ? AND status = 'pending' "
                "AND expires_us > ?", (approval.requester, at))
            if pending >= max_pending:
                raise ApprovalError(
                    "too_many_pending", f"{approval.requester} already has {pending} "
                    f"approvals pending (at most {max_pending}): this request is refused "
                    "until some are decided or expire", 429)
            await execute(
                f"INSERT INTO approvals ({', '.join(_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_COLUMNS))})", _values(approval))
        metrics.approval_created()
        return approval

    async def use(self, approval_id: str, trace_id: str) -> Approval | None:
        """Use up a `once` grant approved while its request waited (None: already used,
        or not approved)."""
        rows = await self._store.execute(
            f"UPDATE approvals SET status = 'used', used_us = ?, used_trace_id = ? "
            f"WHERE id = ? AND status = 'approved' AND grant_mode = 'once' "
            f"RETURNING {', '.join(_COLUMNS)}", (now(), trace_id, approval_id))
        return _approval(rows[0]) if rows else None

    async def wait(self, approval_id: str, seconds: float) -> Approval:
        """The approval once it is no longer pending, or as it stands after `seconds`
        (or at once when the process stops: see stop_waiting)."""
        deadline = asyncio.get_running_loop().time() + seconds
        event = asyncio.Event()
        self._events[approval_id].add(event)
        try:
            while True:
                found = await self._renewed(approval_id)
                left = deadline - asyncio.get_running_loop().time()
                if found.state() != "pending" or left <= 0 or self._stopping:
                    return found
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(left, self._poll))
                event.clear()
        finally:
            self._events[approval_id].discard(event)
            if not self._events[approval_id]:
                del self._events[approval_id]
                # Shielded: a waiter cancelled again as it lets go (its client left, then
                # its session closed) still lets go; a store that cannot answer leaves
                # the lease to lapse by itself.
                with contextlib.suppress(StoreError):
                    await asyncio.shield(self._let_go(approval_id))

    async def _let_go(self, approval_id: str) -> None:
        """Nobody waits on it here any more (its client left, its hold ended, or it was
        decided): the lease cleared, and whoever shows it told."""
        await self._store.execute(
            "UPDATE approvals SET waiting_until_us = NULL WHERE id = ?", (approval_id,))
        await self._tell(approval_id)

    async def _renewed(self, approval_id: str) -> Approval:
        """The approval, its waiting lease renewed for a few polls more: approvers see
        whether a request still waits on it (a waiter that stops renewing has left)."""
        rows = await self._store.execute(
            f"UPDATE approvals SET waiting_until_us = ? WHERE id = ? "
            f"RETURNING {', '.join(_COLUMNS)}",
            (self._lease_end(now()), approval_id))
        if not rows:
            raise ApprovalError("not_found", f"no approval {approval_id}", 404)
        return _approval(rows[0])

    def _lease_end(self, at_us: int) -> int:
        """When a waiting lease taken at `at_us` lapses: a few polls on."""
        return at_us + int(_LEASE_POLLS * self._poll * 1_000_000)

    async def abandon(self, silent_seconds: float) -> list[Approval]:
        """Mark `abandoned` the pending approvals whose waiter stopped without letting go
        (its lease lapsed, not cleared: a waiter that ends clears it) on a replica not
        heard of (`policy_revisions`) for `silent_seconds`: nobody will be answered when
        they are decided, and a retry of the request asks anew. One conditional UPDATE:
        of the replicas sweeping at once, each approval is marked by one."""
        at = now()
        since = at - int(silent_seconds * 1_000_000)
        rows = await self._store.execute(
            f"UPDATE approvals SET status = 'abandoned', decided_us = ?, reason = ? "
            f"WHERE status = 'pending' AND expires_us > ? AND waiting_until_us < ? "
            f"AND held_by NOT IN (SELECT process FROM policy_revisions WHERE seen_us > ?) "
            f"RETURNING {', '.join(_COLUMNS)}",
            (at, ABANDONED, at, since, since))
        for row in rows:
            await self._tell(row[0])
        return [_approval(row) for row in rows]

    async def told(self, approval_id: str) -> Approval | None:
        """A client was answered with it pending (its hold ended undecided, or was
        interrupted): from now on it outlives its waiters, for the retry that client may
        send (None: it is no longer pending)."""
        rows = await self._store.execute(
            f"UPDATE approvals SET told_us = COALESCE(told_us, ?) WHERE id = ? "
            f"AND status = 'pending' RETURNING {', '.join(_COLUMNS)}", (now(), approval_id))
        return _approval(rows[0]) if rows else None

    async def withdraw(self, approval_id: str) -> Approval | None:
        """Its request stopped waiting before the decision reached it, and no client was
        ever told of it: marked `abandoned` (WITHDRAWN says why), so that approving it
        grants nothing and a retry of the request asks anew. A `once` grant approved as
        its waiter left, and not used, goes too: nobody it was meant for will send the
        retry it would let through. None: it stands as it was (another request still
        waits on it in this process, a client was told of it, or it was decided
        otherwise). One conditional UPDATE: a decision racing it either lands first, and
        is withdrawn with it if it grants one request, or finds it no longer pending."""
        if self._events.get(approval_id):
            return None
        at = now()
        rows = await self._store.execute(
            f"UPDATE approvals SET status = 'abandoned', decided_us = ?, reason = ?, "
            f"waiting_until_us = NULL WHERE id = ? AND told_us IS NULL AND expires_us > ? "
            f"AND (status = 'pending' OR (status = 'approved' AND grant_mode = 'once')) "
            f"RETURNING {', '.join(_COLUMNS)}", (at, WITHDRAWN, approval_id, at))
        if not rows:
            return None
        metrics.approval_withdrawn()
        await self._tell(approval_id)
        return _approval(rows[0])

    def stop_waiting(self) -> None:
        """Shutdown: held requests stop waiting and are answered with their approval as
        it stands (a retry passes once it is approved)."""
        self._stopping = True
        for approval_id in list(self._events):
            self._wake(approval_id)

    async def set_notified(self, approval_id: str, outcome: dict[str, Any]) -> None:
        await self._store.execute("UPDATE approvals SET notified = ? WHERE id = ?",
                                  (json.dumps(outcome), approval_id))

    # -- approvers -----------------------------------------------------------------------

    async def get(self, approval_id: str) -> Approval:
        rows = await self._store.execute(f"{_SELECT} WHERE id = ?", (approval_id,))
        if not rows:
            raise ApprovalError("not_found", f"no approval {approval_id}", 404)
        return _approval(rows[0])

    async def pending_count(self) -> int:
        """Approvals waiting for a decision now, of every requester and replica (the
        `tollgate_approvals_pending` metric, counted per scrape)."""
        ((count,),) = await self._store.execute(
            "SELECT count(*) FROM approvals WHERE status = 'pending' AND expires_us > ?",
            (now(),))
        return int(count)

    async def list(self, status: str | None = None, limit: int = 100,
                   before_us: int | None = None) -> list[Approval]:
        """Approvals newest first (created before `before_us`, for the next page);
        `status` as they stand now (`expired` included)."""
        at = now()
        where, params = {
            None: ("1 = 1", []),
            "pending": ("status = 'pending' AND expires_us > ?", [at]),
            "expired": ("status = 'pending' AND expires_us <= ?", [at]),
        }.get(status, ("status = ?", [status]))
        if before_us is not None:
            where, params = f"{where} AND created_us < ?", [*params, before_us]
        rows = await self._store.execute(
            f"{_SELECT} WHERE {where} ORDER BY created_us DESC LIMIT ?", (*params, limit))
        return [_approval(row) for row in rows]

    async def decide(self, approval_id: str, sub: str, groups: Sequence[str], approve: bool,
                     reason: str | None, grant_minutes: int | None = None) -> Approval:
        """Approve or deny, as `sub` (in `groups`): only a pending approval, only by one of
        its approvers, never by the requester. `grant_minutes`: a window grant shorter
        than the policy's (its bound). An approval that needs several approvers stays
        pending, with `sub` among its `approved_by`, until they are enough (each may
        shorten the window; the shortest holds); one denial denies it. Wakes the request
        once decided, if it still waits."""
        for _ in range(_QUORUM_TRIES):
            found = await self.get(approval_id)
            refused = found.may_decide(sub, groups)
            if refused is not None:
                raise refused
            if found.state() != "pending":
                raise _not_pending(found)
            minutes = _minutes(found, grant_minutes if approve else None)
            approved_by = (*found.approved_by, sub) if approve else found.approved_by
            final = not approve or len(approved_by) >= found.approvals_needed
            at = now()
            grant_until = (at + min(minutes * 60, self._max_window) * 1_000_000
                           if approve and final and found.grant_mode == "window" and minutes
                           else None)
            status = "pending" if not final else "approved" if approve else "denied"
            # Conditional on who approved so far, too: of two approvers at once, the
            # second reads again and is counted after the first.
            async with self._store.transaction() as execute:
                rows = await execute(
                    f"UPDATE approvals SET status = ?, decided_by = ?, decided_us = ?, "
                    f"reason = ?, grant_until_us = ?, grant_minutes = ?, approved_by = ? "
                    f"WHERE id = ? AND status = 'pending' AND expires_us > ? "
                    f"AND approved_by = ? RETURNING {', '.join(_COLUMNS)}",
                    (status, sub if final else None, at if final else None,
                     reason if final else found.reason, grant_until, minutes,
                     _json_list(approved_by), approval_id, at,
                     _json_list(found.approved_by)))
                if rows:
                    await self._store.notify(execute, CHANNEL, approval_id)
            if rows:
                break
        else:
            raise ApprovalError("store_busy", f"approval {approval_id} changed under "
                                f"{_QUORUM_TRIES} tries to decide it: try again", 503)
        if final:
            metrics.approval_decided(approve)
            self._wake(approval_id)
            if self._siblings is not None:
                self._siblings.send(approval_id)
        return _approval(rows[0])

    # -- waking --------------------------------------------------------------------------

    def _wake(self, approval_id: str) -> None:
        for event in self._events.get(approval_id, ()):
            event.set()
        for watcher in self.watchers:
            watcher(approval_id)

    async def _tell(self, approval_id: str) -> None:
        """Word of a change made outside a decision's transaction, to this process and
        every other sharing the store; a word the store cannot send is lost, never
        raised (what it would tell is found by the next poll or sweep)."""
        with contextlib.suppress(StoreError):
            await self._store.notify(self._store.execute, CHANNEL, approval_id)
        self._wake(approval_id)
        if self._siblings is not None:
            self._siblings.send(approval_id)

    async def _listen(self) -> None:
        """Decisions made through another replica (PostgreSQL NOTIFY)."""
        try:
            async for approval_id in self._store.listen(CHANNEL):
                self._wake(approval_id)
        except StoreError as exc:  # the waiters still look every few seconds
            log.error("approvals: no longer listening for decisions: %s", exc)


def _values(approval: Approval) -> Sequence[Any]:
    values = []
    for column in _COLUMNS:
        value = getattr(approval, column)
        if column in _LISTS:
            value = _json_list(value)
        elif column in _JSON and value is not None:
            value = json.dumps(value)
        values.append(value)
    return values


def _json_list(values: Sequence[str]) -> str:
    """A list column as stored (and compared: one spelling for one list)."""
    return json.dumps(list(values))


def _approval(row: Sequence[Any]) -> Approval:
    fields = dict(zip(_COLUMNS, row, strict=True))
    for column in _JSON:
        fields[column] = None if fields[column] is None else json.loads(fields[column])
    for column in _LISTS:
        fields[column] = tuple(json.loads(fields[column]))
    return Approval(**fields)


def _minutes(approval: Approval, chosen: int | None) -> int | None:
    """The window an approval grants: the policy's, or one its approver chose within it
    (ApprovalError 400 for one outside it, or for a grant of one request)."""
    if chosen is None:
        return approval.grant_minutes
    if approval.grant_mode != "window" or approval.grant_minutes is None:
        raise ApprovalError("bad_request", "grant_minutes is for a window grant: this "
                            "approval grants exactly one request", 400)
    if type(chosen) is not int or not 1 <= chosen <= approval.grant_minutes:
        raise ApprovalError("bad_request", f"grant_minutes must be an integer 1-"
                            f"{approval.grant_minutes} (the policy's bound), got {chosen!r}",
                            400)
    return chosen


def _not_pending(approval: Approval) -> ApprovalError:
    """Why an approval cannot be decided any more (an abandoned one says why it was)."""
    why = f": {approval.reason}" if approval.state() == "abandoned" else ""
    return ApprovalError("not_pending",
                         f"approval {approval.id} is {approval.state()}, not pending{why}")
