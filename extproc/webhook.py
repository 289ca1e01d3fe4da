"""A webhook POST of JSON, retried with backoff, that never raises.

Approvers (approvals/notify.py) and alerts (exchange/alerts.py) are told through it: a
webhook that is down must not stop what it tells about, so each delivery runs in the
background and ends with how it went (`Delivery`), which its caller keeps and logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

# Seconds before each retry: 1, 2, 4, 8, then 8 again.
BACKOFF = (1.0, 2.0, 4.0, 8.0)
_TIMEOUT = aiohttp.ClientTimeout(total=5.0)


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a delivery went: after how many attempts, the last status or error."""

    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "attempts": self.attempts, "status": self.status}
        return {"ok": False, "attempts": self.attempts, "error": self.error}


class Webhook:
    def __init__(self, url: str, attempts: int) -> None:
        self.url, self.attempts = url, attempts
        # The host only, for logs: a webhook's URL is often its secret (Slack's are).
        self.host = urlsplit(url).hostname or ""
        self._session: aiohttp.ClientSession | None = None

    async def deliver(self, body: dict[str, Any]) -> Delivery:
        """POST `body` until a 2xx or `attempts` tries, waiting BACKOFF between them."""
        error = ""
        for attempt in range(1, self.attempts + 1):
            try:
                status = await self._post(body)
                if 200 <= status < 300:
                    return Delivery(True, attempt, status=status)
                error = f"HTTP {status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt < self.attempts:
                await asyncio.sleep(BACKOFF[min(attempt - 1, len(BACKOFF) - 1)])
        return Delivery(False, self.attempts, error=error)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, body: dict[str, Any]) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        async with self._session.post(self.url, json=body) as reply:
            return reply.status


class Background:
    """Work that runs beside what caused it (a delivery and what follows it)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, seconds: float = 2.0) -> None:
        """Give the work under way `seconds`, then stop it."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=seconds)
        for task in self._tasks:
            task.cancel()
