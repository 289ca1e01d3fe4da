"""How many database sessions one identity may hold open on a target at once.

A token that opens sessions until the server's `max_connections` is full locks every
other identity out, the DBA's included. Each front counts its sessions by target and
token subject and refuses a login past the target's `max_sessions_per_identity` (429,
SQLSTATE 53300 / MySQL 1040 in the protocols' words), recorded with the reason. The
count is per worker process: with several workers an identity may hold that many on
each; the server-side cap on the gateway's own account (PostgreSQL's CONNECTION LIMIT,
MariaDB's MAX_USER_CONNECTIONS) bounds them all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from extproc.codecs.refusal import OverLimit


class SessionLimits:
    """The sessions open now, by (target, subject)."""

    def __init__(self) -> None:
        self._open: Counter[tuple[str, str]] = Counter()

    def take(self, target: str, subject: str, most: int) -> Callable[[], None]:
        """A slot for one more session of `subject` on `target`, and what gives it back
        (idempotent); Refusal (429) when `most` are open already."""
        key = (target, subject)
        if self._open[key] >= most:
            raise OverLimit(429, "session_limit", f"{subject or 'this identity'} has {most} "
                           f"sessions open on target {target}, the most one identity may "
                           "(max_sessions_per_identity): close one first")
        self._open[key] += 1
        given_back = False

        def release() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                self._open[key] -= 1
                if not self._open[key]:
                    del self._open[key]

        return release

    def open(self, target: str, subject: str) -> int:
        """How many sessions `subject` has open on `target` now."""
        return self._open[(target, subject)]
