"""Every process says which policy revision it serves, so that replicas that disagree
are told, not silent.

Replicas read their policies each on its own (a volume, a bundle, a SIGHUP sent to some
and not to others); while two serve different revisions, one request is allowed through
one and refused through the other. Each process writes its revision, when it loaded it
and that it is alive (`policy_revisions`, in the store they share) every few seconds,
and reads the others'; and when each revision was first served anywhere
(`policy_revisions_seen`), so that the newest is the one first served last, whatever
restarted since. Revisions that differ for longer than `policy.agreement_seconds`
raise the alert `tollgate.policy_revisions_differ`, set the metric, and are logged;
with `policy.behind: refuse`, a process serving another revision than the newest one
(the one first served last) refuses every exchange with 503 until it catches up. A store
that cannot be read leaves the last reading as it was: a process is never made to
refuse by an outage of the store alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from extproc import metrics
from extproc.config import Policy as PolicySettings
from extproc.policy import PolicyEngine
from extproc.store import StoreError
from extproc.store.aio import AsyncStore

log = logging.getLogger("tollgate.policy")

DIFFER = "tollgate.policy_revisions_differ"
EVERY_SECONDS = 5.0  # how often a process says it is alive and reads the others
_ALIVE_BEATS = 3  # a process not heard of for this many beats is gone


@dataclass(frozen=True)
class Reading:
    """What the processes alive serve, as last read: revision -> its processes, and the
    newest of them (first served last: the one every process should serve)."""

    served: dict[str, list[str]]
    newest: str


class Revisions:
    def __init__(self, store: AsyncStore, process: str, engine: PolicyEngine,
                 settings: PolicySettings,
                 alert: Callable[[str, str], Awaitable[None]] | None = None,
                 every: float = EVERY_SECONDS) -> None:
        """`process`: this process's name (its record writer's); `alert(message, key)`:
        raises the alert (once per disagreement: its key names the revisions)."""
        self._store, self._process, self._engine = store, process, engine
        self._grace, self._refuse = settings.agreement_seconds, settings.behind == "refuse"
        self._alert, self._every = alert, every
        self._since: float | None = None  # monotonic: when a disagreement was first read
        self._reading: Reading | None = None
        self.differ = False  # past the grace

    @property
    def gone_seconds(self) -> float:
        """How long a process goes unheard of before the others take it for gone."""
        return gone_seconds(self._every)

    def refusal(self) -> str | None:
        """Why this process refuses to decide now (None: it decides): it serves another
        revision than the newest, past the grace, and `policy.behind` is `refuse`."""
        reading = self._reading
        if not (self._refuse and self.differ and reading is not None):
            return None
        if self._engine.revision == reading.newest:
            return None
        return (f"this replica serves policy revision {self._engine.revision}, behind "
                f"{reading.newest} which other replicas serve: it refuses until it "
                "catches up (policy.behind: refuse)")

    async def run(self) -> None:
        """Say and read every few seconds, until cancelled."""
        while True:
            with contextlib.suppress(StoreError):
                await self.beat()
            await asyncio.sleep(self._every)

    async def beat(self) -> Reading | None:
        """Write this process's revision, read every live one's, and act on a
        disagreement that outlasted the grace. Raises StoreError (nothing changes)."""
        revision, now = self._engine.revision, _now_us()
        await self._store.execute(
            "INSERT INTO policy_revisions_seen (revision, first_us) VALUES (?, ?) "
            "ON CONFLICT (revision) DO NOTHING", (revision, now))
        await self._store.execute(
            "INSERT INTO policy_revisions (process, revision, seen_us) VALUES (?, ?, ?) "
            "ON CONFLICT (process) DO UPDATE SET revision = excluded.revision, "
            "seen_us = excluded.seen_us", (self._process, revision, now))
        rows = await self._store.execute(
            "SELECT p.process, p.revision FROM policy_revisions p JOIN policy_revisions_seen "
            "s ON s.revision = p.revision WHERE p.seen_us > ? ORDER BY s.first_us, p.process",
            (now - int(self.gone_seconds * 1e6),))
        served: dict[str, list[str]] = {}
        for process, found in rows:
            served.setdefault(str(found), []).append(str(process))
        reading = self._reading = Reading(served, str(rows[-1][1]) if rows else revision)
        await self._judge(reading)
        return reading

    async def _judge(self, reading: Reading) -> None:
        if len(reading.served) < 2:
            if self.differ:
                log.info("policy revisions agree again: %s", reading.newest)
            self._since, self.differ = None, False
            metrics.policy_revisions_differ(False)
            return
        now = time.monotonic()
        self._since = self._since if self._since is not None else now
        if self.differ or now - self._since < self._grace:
            return
        self.differ = True
        metrics.policy_revisions_differ(True)
        told = "; ".join(f"{revision} by {', '.join(sorted(processes))}"
                         for revision, processes in sorted(reading.served.items()))
        message = (f"policy revisions differ for more than {self._grace:g} s: {told} "
                   f"(newest {reading.newest}); one request may be decided otherwise on "
                   "each")
        log.error("%s", message)
        if self._alert is not None:
            await self._alert(message, ",".join(sorted(reading.served)))


def gone_seconds(every: float) -> float:
    """How long a process beating every `every` seconds goes unheard of before the
    others take it for gone."""
    return _ALIVE_BEATS * every


def _now_us() -> int:
    return int(time.time() * 1_000_000)
