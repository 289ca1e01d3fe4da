"""Slack's request signatures (v0): what tells a request Slack sent from a forged one.

Slack signs each request it sends with the app's signing secret: `X-Slack-Signature` is
`v0=` and the hex HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}`. A request
whose signature does not match, or whose timestamp is more than five minutes off (a
replay of one seen before), is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

MOST_SKEW_SECONDS = 300


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` of `body` sent at `timestamp`."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


def refused(secret: bytes, headers: Mapping[str, str], body: bytes,
            at: float | None = None) -> str | None:
    """Why the request is not one Slack signed now (None: it is)."""
    timestamp = headers.get("X-Slack-Request-Timestamp")
    signature = headers.get("X-Slack-Signature")
    if not timestamp or not signature:
        return "no X-Slack-Request-Timestamp and X-Slack-Signature headers"
    if not timestamp.isascii() or not timestamp.isdigit():
        return f"X-Slack-Request-Timestamp is no Unix time: {timestamp[:40]!r}"
    skew = (time.time() if at is None else at) - int(timestamp)
    if abs(skew) > MOST_SKEW_SECONDS:
        return (f"its timestamp is {abs(skew):.0f} s off (at most {MOST_SKEW_SECONDS} s): "
                "a replay, or a clock that is wrong")
    if not signature.startswith("v0="):
        return "X-Slack-Signature is not a v0 signature"
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(),
                               signature.encode("utf-8", "replace")):
        return "X-Slack-Signature does not match the signing secret"
    return None
