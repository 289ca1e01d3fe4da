"""A masked value made to fit its column: a typed column's masked value keeps its type
and its length, so that what a client reads is a value of that type and a dump restores
into the original schema (a `varchar(16)` holds no 17-character `[REDACTED:US_SSN]`).

Both database fronts describe each result column as a `Slot` from what the wire says of
it (PostgreSQL's type OID and typmod, MySQL's type, length and character set) and write
each masked value through `fit`. A text column with a declared length takes the first
rung of this ladder that fits, every token of the value rewritten alike:

1. the value as the strategy wrote it: `[REDACTED:US_SSN]`, `[HASH:US_SSN:3f2a9c1b4d5e6f70]`,
   `***-**-6789`;
2. short tokens: `[US_SSN]`; a hash keeps its digest, `[3f2a9c1b4d5e6f70]`;
3. shorter tokens: `[REDACTED]` where the kind is longer; a hash its bare digest;
4. the value's shape: the original with every letter and digit a `*` (under `hash`, the
   digests' hex digits in turn, so that equal values stay equal), every other character
   kept: never longer than the original; without an original (a derived column) `*`s
   filling the column.

What still does not fit is cut to the length (a value longer than its own column). A
fixed-width column (PostgreSQL's `char(n)`, MySQL's `BINARY(n)`) gets the value padded as
the database pads it. A column of any other type cannot hold a masked text: it gets NULL,
or where it holds no NULL (NOT NULL, as the front knows it) its type's stand-in (`ZERO`,
`DATE`, `UUID` ... below), the same for every value; NULL still where the type has none
(an enum, a geometry, an array).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from extproc.masking.strategies import DERIVED, TOKEN


@dataclass(frozen=True, slots=True)
class Slot:
    """What a column holds where a masked value goes.

    limit: the most characters (UTF-8 bytes where `in_bytes`) a text holds; None: any.
    pad: the character a fixed-width text is padded with to `limit` ("" for none).
    text: whether a masked text can stand in the column at all; if not, `stand_in` does:
        the type's stand-in as the front writes it, where the column holds no NULL
        (None: NULL).
    """

    limit: int | None = None
    in_bytes: bool = False
    pad: str = ""
    text: bool = True
    stand_in: bytes | None = None


TEXT = Slot()


def typed(stand_in: bytes | None) -> Slot:
    """The slot of a column whose type holds no text: its stand-in (None: NULL)."""
    return Slot(text=False, stand_in=stand_in)


# The stand-ins of the types that hold no text, in their text form (each front writes
# them as its protocol and types say): what a masked value of such a type becomes where
# its column holds no NULL.
ZERO = "0"
DATE = "2000-01-01"  # PostgreSQL's own epoch, within every database's date range
TIME = "00:00:00"
TIMESTAMP = f"{DATE} {TIME}"
UUID = "00000000-0000-0000-0000-000000000000"
IPV4 = "0.0.0.0"
MAC = "00:00:00:00:00:00"


def fit(masked: str, original: str | None, slot: Slot) -> str:
    """`masked` (a masked text that was `original`; None: not read) as `slot` holds it."""
    limit = slot.limit
    if limit is None:
        return masked
    pad = slot.pad
    if pad:  # trailing padding means nothing in a fixed-width column: it comes back
        masked = masked.rstrip(pad)
        original = None if original is None else original.rstrip(pad)
    size = _utf8_size if slot.in_bytes else len
    out = masked
    for out in _ladder(masked, original, limit):
        if size(out) <= limit:
            break
    else:
        out = _cut(out, limit, slot.in_bytes)
    if pad:
        out += pad * (limit - size(out))
    return out


def derived(slot: Slot) -> str | None:
    """What a derived column's value becomes in `slot` (None: the type's stand-in)."""
    return fit(DERIVED, None, slot) if slot.text else None


def _ladder(masked: str, original: str | None, limit: int) -> Iterator[str]:
    yield masked
    if "[" in masked:
        yield TOKEN.sub(_short, masked)
        yield TOKEN.sub(_shorter, masked)
    yield _shape(masked, original, limit)


def _short(token: re.Match[str]) -> str:
    digest = token["digest"]
    return f"[{digest}]" if digest else f"[{token['kind']}]"


def _shorter(token: re.Match[str]) -> str:
    return token["digest"] or min(f"[{token['kind']}]", "[REDACTED]", key=len)


def _shape(masked: str, original: str | None, limit: int) -> str:
    """The original's shape: its letters and digits a `*` each, or the value's digests'
    hex digits in turn where it holds hash tokens; its other characters kept."""
    if original is None:
        return "*" * limit
    digits = "".join(m["digest"] for m in TOKEN.finditer(masked) if m["digest"])
    if not digits:
        return "".join("*" if c.isalnum() else c for c in original)
    out, at = [], 0
    for c in original:
        if c.isalnum():
            c = digits[at % len(digits)]
            at += 1
        out.append(c)
    return "".join(out)


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _cut(text: str, limit: int, in_bytes: bool) -> str:
    if not in_bytes:
        return text[:limit]
    return text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")
