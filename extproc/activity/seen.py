"""Whether an identity (and anyone) reached a destination before: input.egress.seen.

Users want to know — and to decide — when an agent goes somewhere new. A destination
counts as reached once an exchange to it was let through; that is written to the store
(`egress_destinations`), which every worker and replica shares, off the request path.
What a process learnt (from the store or by letting an exchange through) it keeps: once
seen, always seen, so the request path asks the store only about pairs it has not met.
A lookup is tried again through a blip of the store (store/retry.py); a store that
still cannot answer gives `status: unknown` (both false): the pack refuses with 503 what
a first visit's rule would stop, the fail-closed reading.
"""

from __future__ import annotations

import logging
import time
from typing import TypedDict

from extproc.store import StoreError
from extproc.store.aio import AsyncStore
from extproc.store.retry import Retrying
from extproc.webhook import Background

log = logging.getLogger("tollgate.egress")

ANYONE = "*"
# Pairs remembered per process; beyond it, the oldest are forgotten (and asked again).
_MOST_REMEMBERED = 100_000


class SeenInput(TypedDict):
    identity: bool
    anyone: bool
    status: str  # known | unknown


class Seen:
    def __init__(self, store: AsyncStore) -> None:
        self._store = store
        self._known: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self._background = Background()
        self._retrying = Retrying()  # a lookup rides out a blip of the store

    async def lookup(self, who: str, destination: str) -> SeenInput:
        """Whether `who` (an identity's sub) and anyone were let through before."""
        if (who, destination) in self._known:
            return {"identity": True, "anyone": True, "status": "known"}
        try:
            rows = await self._retrying(lambda: self._store.execute(
                "SELECT identity FROM egress_destinations WHERE destination = ? "
                "AND identity IN (?, ?)", (destination, who, ANYONE)))
        except StoreError as exc:
            log.error("egress: the store cannot say whether %s reached %s before (%s): "
                      "the pack decides without knowing", who, destination, exc)
            return {"identity": False, "anyone": False, "status": "unknown"}
        found = {str(row[0]) for row in rows}
        for name in found:
            self._remember(name, destination)
        return {"identity": who in found,
                "anyone": (ANYONE, destination) in self._known or ANYONE in found,
                "status": "known"}

    def reached(self, who: str, destination: str) -> None:
        """`who` was let through to `destination`: remembered now, stored in the
        background (a store that fails is logged; the next exchange asks again)."""
        if (who, destination) in self._known and (ANYONE, destination) in self._known:
            return
        self._remember(who, destination)
        self._remember(ANYONE, destination)
        self._background.spawn(self._store_pair(who, destination))

    async def _store_pair(self, who: str, destination: str) -> None:
        now_us = int(time.time() * 1e6)
        try:
            await self._store.execute(
                "INSERT INTO egress_destinations (identity, destination, first_us) "
                "VALUES (?, ?, ?), (?, ?, ?) ON CONFLICT (identity, destination) DO NOTHING",
                (who, destination, now_us, ANYONE, destination, now_us))
        except StoreError as exc:
            log.error("egress: could not store that %s reached %s (%s)", who, destination,
                      exc)
            self._known.pop((who, destination), None)

    def _remember(self, who: str, destination: str) -> None:
        if len(self._known) >= _MOST_REMEMBERED:
            for stale in list(self._known)[:_MOST_REMEMBERED // 10]:
                del self._known[stale]
        self._known[(who, destination)] = None

    async def close(self) -> None:
        """Wait for the pairs still being stored."""
        await self._background.close()
