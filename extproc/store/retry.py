"""A read the request path needs from the store, tried again through a blip.

A store restart or a failover takes a fraction of a second; a decision that needs the
store then should wait that out, not turn into a refusal (nor, as it once did, into an
approval for a person to give while the store was away). So a read that fails is tried
again, backing off, for up to `budget` seconds. A read that spent it finds the store
out, not blinking: until a read is answered again, one is tried once per
`probe_seconds` and the others fail at once, so that an outage costs each request (and
each decision of one request) nothing, and the first read after the store is back
finds it. What fails is the caller's to say (the pack refuses with 503 what it
cannot decide without the store).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from extproc.store.errors import StoreError

T = TypeVar("T")

FIRST_DELAY = 0.05  # seconds before the first retry; doubled after each
# Seconds a read is retried for while the store is blinking: a PostgreSQL restart takes
# 0.1-0.3 s, and the decision it serves must still answer within Envoy's 2 s for the
# ext_proc message (with the other reads and writes of the exchange).
BUDGET = 0.75


class Retrying:
    """Retries of one kind of read, with what it knows of the store's state: since when
    it has not answered (shared by every request of this process)."""

    def __init__(self, budget: float = BUDGET, probe_seconds: float = BUDGET,
                 first_delay: float = FIRST_DELAY) -> None:
        self.budget, self._probe, self._first = budget, probe_seconds, first_delay
        self._down_since: float | None = None  # monotonic: the first failure of this outage
        self._last_failure = 0.0
        self._out = False

    @property
    def out(self) -> bool:
        """Whether the store is out: a read spent its whole budget, and none has been
        answered since (what else the exchange reads need not wait again)."""
        return self._out

    async def __call__(self, read: Callable[[], Awaitable[T]]) -> T:
        """`read()`'s answer, retried through a blip; raises StoreError (or TimeoutError)
        once the budget is spent, or at once while the store is out between probes."""
        now = time.monotonic()
        if self.out and now - self._last_failure < self._probe:
            raise StoreError(f"the store has not answered for "
                             f"{now - (self._down_since or now):.0f} s")
        deadline = now + (0.0 if self.out else self.budget)
        delay = self._first
        while True:
            try:
                answer = await read()
            except (StoreError, TimeoutError):
                self._last_failure = time.monotonic()
                if self._down_since is None:
                    self._down_since = self._last_failure
                remaining = deadline - self._last_failure
                if remaining <= 0:
                    self._out = True
                    raise
                await asyncio.sleep(min(delay, remaining))
                delay *= 2
                continue
            self._down_since, self._out = None, False
            return answer

