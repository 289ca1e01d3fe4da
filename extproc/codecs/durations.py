"""Durations and moments as people write them on a command line or in a query string:
`90s`, `30m`, `1d12h`; a moment is a duration before now or an ISO date or time."""

from __future__ import annotations

import datetime
import re

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MOMENT = "a duration before now (30m, 7d, 1d12h) or a UTC date (2026-11-01, 2026-11-01T09:00)"


class Unusable(Exception):
    """Input a command or a query cannot work with (a command exits 2); the message is the
    one line that says why."""


def parse_duration(text: str, flag: str, examples: str) -> int:
    """Seconds in `90s`, `30m`, `1h`, `2d`, `2w` or a combination such as `1d12h`; zero
    is no duration. `flag` and `examples` word the error as the command's help does."""
    parts = _DURATION.findall(text)
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if not parts or "".join(n + u for n, u in parts) != text or not seconds:
        raise Unusable(f"{flag}: expected a duration such as {examples}, got {text!r}")
    return seconds


def moment_us(text: str, flag: str, now_us: int) -> int:
    """`text` as µs since the epoch: a duration before `now_us`, or an ISO date or time
    (UTC unless it says otherwise)."""
    if text[:1].isdigit() and text[-1:] in "smhdw":
        return now_us - parse_duration(text, flag, MOMENT) * 1_000_000
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise Unusable(f"{flag}: expected {MOMENT}, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1_000_000)


def utc_text(seconds: float) -> str:
    """A moment as messages say it: 2026-11-28T09:00:00Z."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
