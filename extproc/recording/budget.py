"""Each identity's byte budget in the audit record, so that no agent alone fills its disk.

The budget is a bucket per identity that holds an hour's worth of bytes and drains at
that rate (`per_hour / 3600` bytes a second): a record's bytes are poured in when it is
submitted, and an identity whose bucket is full is refused until it has drained below
the brim. So an identity records at most `per_hour` bytes an hour on average, a whole
hour's worth at once at most (plus the one exchange that fills it) — no cliff where a
fixed window would let it write twice its budget around the hour's turn, nor a whole
hour's wait for one byte too many.

One float per identity (the moment its bucket is empty again, the cell-rate algorithm's
"theoretical arrival time"), O(1) to check and to charge. The budget is this process's,
not shared: behind N replicas an identity may record N times it.
"""

from __future__ import annotations

import math
import time

from extproc.recording.record import Evidence

_HOUR = 3600.0


class ByteBudget:
    """Bytes recorded per identity, bounded per hour. Not thread-safe: the recorder's
    lock guards it."""

    __slots__ = ("_empty_at", "per_hour")

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._empty_at: dict[str, float] = {}  # identity -> when its bucket is empty again

    def wait(self, who: str, now: float) -> float:
        """Seconds until `who` may record again: 0 when its bucket is not full."""
        empty_at = self._empty_at.get(who)
        return 0.0 if empty_at is None else max(0.0, empty_at - _HOUR - now)

    def charge(self, who: str, size: int, now: float) -> None:
        """Pour `size` bytes into `who`'s bucket (a full one overflows: it waits longer)."""
        if size:
            empty_at = self._empty_at.get(who, now)
            self._empty_at[who] = max(empty_at, now) + size * _HOUR / self.per_hour

    def forget_drained(self, now: float) -> None:
        """Drop the buckets that are empty (they hold nothing an absent one does not);
        O(identities), for the thread reading the writer's word to call now and then, not
        per request."""
        self._empty_at = {who: at for who, at in self._empty_at.items() if at > now}

    def refusal(self, who: str, wait: float) -> str:
        """Why `who` is refused, and when it may record again."""
        seconds = math.ceil(wait)
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))
        return (f"{who} has used its byte budget of the audit record, {_size(self.per_hour)} "
                f"an hour (recording.identity_bytes_per_hour); it may record again in "
                f"{seconds}s, at {until}")


def recorded_bytes(evidence: Evidence) -> int:
    """The bodies an exchange's record holds, as cut to `recording.max_body_bytes`: what
    its size grows with (the rest is bounded by Envoy's header limits)."""
    size = 0
    for capture in (evidence.request_body, evidence.response_body, evidence.upstream_body):
        if capture is not None:
            size += len(capture.head)
    return size


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"
