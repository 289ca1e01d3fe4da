"""The anonymizer side of masking: strategies rewrite one found value; they never search.

- `redact`: `[REDACTED:US_SSN]`. Nothing of the value remains.
- `partial`: every letter and digit becomes `*` except the last `reveal` ones (4 for
  identifiers such as cards, SSNs, IBANs, phones; 0 for secrets); other characters stay,
  so the format still reads (`****-****-****-1111`, `***-**-6789`). A value with fewer
  than 8 letters and digits is masked whole: its last 4 would be half of it.
- `hash`: `[HASH:US_SSN:3f2a9c1b4d5e6f70]`, the first 16 hex digits of HMAC-SHA256 under
  the masker's key, of the value's canonical form (digits of a card, say), so that the
  same value masks the same way wherever it is written and joins still work, while
  nobody without the key can test a guess.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal, get_args

from extproc.masking.detectors import Detector

Strategy = Literal["redact", "partial", "hash"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
_PARTIAL_MIN = 8


def redact(value: str, kind: Detector) -> str:
    return f"[REDACTED:{kind.entity}]"


def partial(value: str, kind: Detector) -> str:
    total = sum(c.isalnum() for c in value)
    shown = kind.reveal if total >= _PARTIAL_MIN else 0
    out, seen = [], 0
    for c in value:
        if c.isalnum():
            seen += 1
            out.append(c if seen > total - shown else "*")
        else:
            out.append(c)
    return "".join(out)


def hashed(value: str, kind: Detector, key: bytes) -> str:
    canonical = kind.canonical(value).encode("utf-8", "surrogatepass")
    digest = hmac.new(key, canonical, hashlib.sha256).hexdigest()[:16]
    return f"[HASH:{kind.entity}:{digest}]"


def rewrite(strategy: Strategy, value: str, kind: Detector, key: bytes) -> str:
    """`value`, found by (or classified as) `kind`, rewritten by `strategy`."""
    if strategy == "hash":
        return hashed(value, kind, key)
    if strategy == "partial":
        return partial(value, kind)
    return redact(value, kind)
