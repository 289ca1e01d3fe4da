"""Who waits on a lock an agent's session holds, told to people while it happens.

A statement of an agent's that writes or locks rows holds those locks until its
transaction ends: a dba's UPDATE of the same rows waits that long. The fronts bound how
long an agent may idle in such a transaction (lock_idle_seconds); this says, meanwhile,
that someone is waiting. Every EVERY_SECONDS, a database front (listener.py) lists its
sessions that are in an open transaction (`Holding`) and asks each of their targets'
servers, in one question per target, which sessions wait on theirs (the front's `ask`:
PostgreSQL's pg_blocking_pids, MariaDB's INNODB_LOCK_WAITS). A session found waiting on
one of them at two asks in a row (so for EVERY_SECONDS at least: a wait of a few
milliseconds is no news) raises the alert `tollgate.lock_wait` under the agent's
identity (exchange/alerts.py: recorded, listed on the monitor page with the identity's
alerts, sent to the webhook), once per waiter and session within the alerts' window.

Nothing is asked while no session is in a transaction; a question that fails is logged
and asked again at the next beat. What a waiting session runs is named by its first
word alone: it is another user's statement, and the alert is read by people who may not
read its values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from extproc.config import Target
from extproc.identity import Who, subject_of

if TYPE_CHECKING:
    from extproc.exchange.pipeline import Pipeline

log = logging.getLogger("tollgate.locks")

RULE = "tollgate.lock_wait"
EVERY_SECONDS = 2.0
# What each question to a server starts with: the server's statement log shows it as the
# gateway's own (tests/support/statement_log.py holds the record against that log).
MARK = "/* tollgate: lock waits */ "


@dataclass(frozen=True, slots=True)
class Holding:
    """A session in an open transaction: whose, on which target, and the database's id
    of its connection (PostgreSQL's backend pid, MySQL's thread id)."""

    session_id: str
    identity: Who
    target: Target
    upstream_id: int


@dataclass(frozen=True, slots=True)
class Waiter:
    """A session of the database waiting on a lock `holder`'s connection holds."""

    holder: int
    waiter: int
    user: str | None  # None: the server did not say
    command: str | None  # the first word of what it runs, where the server shows it


Ask = Callable[[Target, Sequence[int]], Awaitable[list[Waiter]]]


def first_word(statement: str | None) -> str | None:
    """What a statement does, without its values: its first word, upper-cased."""
    words = (statement or "").split(None, 1)
    return words[0].upper()[:32] if words and words[0].isalpha() else None


class LockWatch:
    """One front's beat: `holdings` lists its sessions in a transaction, `ask` what
    waits on some of them on one target's server, `alert` tells people."""

    def __init__(self, holdings: Callable[[], Iterable[Holding]], ask: Ask,
                 alert: Callable[[Holding, str, str], Awaitable[None]],
                 every: float = EVERY_SECONDS) -> None:
        self._holdings, self._ask, self._alert, self._every = holdings, ask, alert, every
        # Since when each session has been seen in a transaction (the alert says).
        self._since: dict[str, float] = {}
        # The waits seen at the last ask: (target, holder, waiter).
        self._seen: set[tuple[str, int, int]] = set()
        self._task: asyncio.Task[None] | None = None
        # Why each target could not be asked, last time (said once, not every beat).
        self._failing: dict[str, str] = {}

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._beat())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.once()
            except Exception:  # a beat's failure is logged; the next beat asks again
                log.exception("the lock waits could not be asked")

    async def once(self) -> None:
        """One beat: the targets of the sessions in a transaction asked, news alerted."""
        now = time.monotonic()
        by_target: dict[str, list[Holding]] = {}
        for holding in self._holdings():
            by_target.setdefault(holding.target.name, []).append(holding)
        held = {h.session_id for hs in by_target.values() for h in hs}
        self._since = {s: self._since.get(s, now) for s in held}
        seen: set[tuple[str, int, int]] = set()
        for name, holdings in by_target.items():
            target = holdings[0].target
            try:
                waiters = await self._ask(target, sorted({h.upstream_id for h in holdings}))
            except Exception as exc:  # the server away, a privilege missing
                if self._failing.get(name) != str(exc):
                    log.warning("target %s: who waits on the agents' locks could not be "
                                "asked: %s", name, exc)
                self._failing[name] = str(exc)
                continue
            self._failing.pop(name, None)
            by_id = {h.upstream_id: h for h in holdings}
            for waiter in waiters:
                holder = by_id.get(waiter.holder)
                if holder is None:
                    continue
                wait = (name, waiter.holder, waiter.waiter)
                seen.add(wait)
                if wait in self._seen:
                    await self._alert(holder, _message(
                        holder, waiter, now - self._since[holder.session_id]),
                        f"{holder.session_id} {waiter.waiter}")
        self._seen = seen


def _message(holding: Holding, waiter: Waiter, open_seconds: float) -> str:
    who = f"{waiter.user}'s session" if waiter.user else "a session"
    doing = f" ({waiter.command})" if waiter.command else ""
    return (f"{who} {waiter.waiter}{doing} waits on a lock held by "
            f"{subject_of(holding.identity)}'s session {holding.session_id} on "
            f"{holding.target.name} (the database's connection {holding.upstream_id}, "
            f"in a transaction for {open_seconds:.0f} s at least)")


def watch(holdings: Callable[[], Iterable[Holding]], ask: Ask,
          pipeline: Pipeline) -> LockWatch:
    """A front's watch, its alerts raised through the pipeline's."""

    async def alert(holding: Holding, message: str, key: str) -> None:
        await pipeline.raise_about(holding.identity, holding.target, RULE, "warning",
                                   message, key)

    return LockWatch(holdings, ask, alert)
