"""The store's poll loop the live sessions' readers share (live_store.py: ends and locks;
presence.py: attendance and joined keys): each beat, or at once on a NOTIFY, and the
stale rows pruned about once a minute."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from extproc.store import StoreError

log = logging.getLogger("tollgate.sessions")

PRUNE_SECONDS = 60.0


async def polling(poll: Callable[[], Awaitable[None]], prune: Callable[[], Awaitable[Any]],
                  told: asyncio.Event, every: float, what: str) -> None:
    """`poll` at every beat of `every` seconds, at once when `told` (a NOTIFY) is set,
    the store's stale rows pruned about once a minute; a store that fails is logged
    (`what` could not be read) and asked again at the next beat."""
    pruned = 0.0
    loop = asyncio.get_running_loop()
    while True:
        try:
            await poll()
            if loop.time() - pruned > PRUNE_SECONDS:
                await prune()
                pruned = loop.time()
        except StoreError as exc:
            log.warning("live sessions: cannot read %s: %s", what, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(told.wait(), every)
        told.clear()
