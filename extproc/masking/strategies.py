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

`is_masked` recognises what they write, so that masking again (the audit record's safety
net) leaves it as the client got it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Literal, get_args

from extproc.masking.catalog import DETECTORS
from extproc.masking.detectors import Detector

Strategy = Literal["redact", "partial", "hash"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
_PARTIAL_MIN = 8
_REVEAL = 4  # the most `partial` shows

# A token `redact` or `hash` writes, of a kind that exists ("FIELD": a key-name rule's
# value, "DERIVED": a derived column's).
_ENTITIES = sorted({d.entity for d in DETECTORS} | {"FIELD", "DERIVED"})
_KINDS = "(?:" + "|".join(_ENTITIES) + ")"
_TOKEN = (rf"\[(?:REDACTED:(?P<kind>{_KINDS})|HASH:(?P<hashed>{_KINDS}):"
          rf"(?P<digest>[0-9a-f]{{16}}))\]")
# In a text: `kind` (a redaction's), or `hashed` and `digest` (a hash's).
TOKEN = re.compile(_TOKEN)
_REDACTION = re.compile(rf"\[REDACTED:{_KINDS}\]".encode())
_TOKEN_BYTES = re.compile(_TOKEN.encode())
TOKEN_MAX = len("[HASH::]") + max(map(len, _ENTITIES)) + 16  # the longest, in bytes
Finding = tuple[int, int, Detector]


# A value the SQL computed from a protected column (MaskSpec.derived): nothing remains.
DERIVED = "[REDACTED:DERIVED]"


def redact(kind: Detector) -> str:
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
    return redact(kind)


def is_masked(value: str) -> bool:
    """Whether `value` is a strategy's output: a token, or stars with at most the last 4
    letters and digits shown (then after 4 stars at least), as `partial` writes them."""
    if TOKEN.fullmatch(value):
        return True
    last = value.rfind("*")
    if last == -1 or any(c.isalnum() for c in value[:last]):
        return False
    shown = sum(c.isalnum() for c in value[last:])
    return shown == 0 or (shown == _REVEAL and value.count("*") >= _REVEAL)


def is_redaction(value: bytes) -> bool:
    """Whether `value` is exactly what `redact` writes: it carries nothing of any value, so
    masking it again (as a key-name rule would, `[REDACTED:FIELD]`) only hides its kind."""
    return value[:10] == b"[REDACTED:" and _REDACTION.fullmatch(value) is not None


def unredacted(raw: bytes, found: list[Finding]) -> list[Finding]:
    """`found` without findings that are exactly a redaction token (see `is_redaction`)."""
    if b"[REDACTED:" not in raw:
        return found
    return [(s, e, d) for s, e, d in found if not is_redaction(raw[s:e])]


def unmasked(raw: bytes, found: list[Finding]) -> list[Finding]:
    """`found` (findings in `raw`, in order) without what a strategy already wrote: a
    finding inside a token (digits of a hash), or one that is a strategy's output (a
    key-name rule's value)."""
    tokens = ([m.span() for m in _TOKEN_BYTES.finditer(raw)]
              if b"[REDACTED:" in raw or b"[HASH:" in raw else [])
    kept, i = [], 0
    for s, e, d in found:
        while i < len(tokens) and tokens[i][1] <= s:
            i += 1
        if i < len(tokens) and tokens[i][0] <= s and e <= tokens[i][1]:
            continue
        value = raw[s:e]
        if (b"*" in value or value[:1] == b"[") and is_masked(
                value.decode("utf-8", "surrogatepass")):
            continue
        kept.append((s, e, d))
    return kept
