"""Phone numbers: international, North American and national forms, and digit runs after a
phone word."""

from __future__ import annotations

import re
from collections.abc import Iterator

from extproc.masking.detectors import (
    ALNUM,
    NOT_DIGIT,
    WORD,
    Detector,
    Text,
    both,
    context,
    continues,
    digits,
    matches,
    runs,
)

# --- phone numbers ----------------------------------------------------------------------

# Forms that read as phone numbers and not as dates, versions or ids: international
# (+CC ...), North American with separators, a parenthesised area code, national numbers
# with a trunk 0 and a separator, and a bare run of 10-15 digits after a phone word.
_EXT_BODY = rb" ?(?:x|ext\.?|#) ?[0-9]{1,6}"
_EXT = rb"(?:" + _EXT_BODY + rb")?"
_PHONE_INTL = re.compile(
    rb"\+[1-9][0-9]{0,2}(?:[ .\-/]?(?:\(0\)|\([0-9]{1,4}\)))?(?:[ .\-/]?[0-9]{1,6}){1,6}" + _EXT
)
_PHONE_PAREN = re.compile(
    rb"\((?:0[1-9][0-9]{1,4}|[2-9][0-9]{2})\)[ \-]?[0-9]{3,8}(?:[ \-][0-9]{3,4})?" + _EXT
)
_PHONE_NATIONAL = re.compile(
    rb"0[1-9](?:[0-9]{0,3}[ /\-](?:[0-9]{5,9}|[0-9]{3,4}[ \-][0-9]{3,4})|(?:[ .][0-9]{2}){4})"
    + _EXT
)
_PHONE_NANP = (re.compile(rb"000 000 0000"), re.compile(rb"000\.000\.0000"))  # shape
_PHONE_NANP_RAW = re.compile(
    rb"(?:(?:00)?1[ .\-])?[2-9][0-9]{2}([ .\-])[2-9][0-9]{2}\1[0-9]{4}" + _EXT
)
_PHONE_CONTEXT = context(
    rb"(?<![a-z])(?:phone|tel|telephone|mobile|mob|cell|fax|call|sms|whatsapp|telefon|gsm"
    rb"|handy|portable)s?(?![a-z])", 32
)
_PHONE_EDGE = b".+_/:-"


_EXT_TAIL = re.compile(_EXT_BODY + rb"\Z")


def _phone_ends(t: Text, s: int, e: int) -> tuple[int, int] | None:
    """Nothing continues the number, and it has 8-15 digits (a national "(0)" and any
    extension aside)."""
    if t.at(ALNUM, e) or continues(t, e, b".:/-"):
        return None
    main = _EXT_TAIL.sub(b"", t.raw[s:e].replace(b"(0)", b""))
    return (s, e) if 8 <= len(main.translate(None, NOT_DIGIT)) <= 15 else None


def _phone(t: Text, s: int, e: int) -> tuple[int, int] | None:
    if t.at(ALNUM, s - 1) or (s > 0 and t.raw[s - 1] in _PHONE_EDGE):
        return None
    return _phone_ends(t, s, e)


def _phone_intl(t: Text, s: int, e: int) -> tuple[int, int] | None:
    return None if t.at(ALNUM, s - 1) else _phone_ends(t, s, e)


def _phone_nanp(t: Text) -> Iterator[tuple[int, int]]:
    """Shape finds the 3-3-4 digits; the raw pattern, run around it, reads the rest."""
    for gate in _PHONE_NANP:
        for m in gate.finditer(t.shape):
            for r in _PHONE_NANP_RAW.finditer(t.raw, max(0, m.start() - 4), m.end() + 16):
                if r.start() <= m.start() < r.end() and (span := _phone(t, *r.span())):
                    yield span


def _phone_run(t: Text, s: int, e: int) -> tuple[int, int] | None:
    if t.at(WORD, s - 1) or t.at(WORD, e) or not _PHONE_CONTEXT(t, s):
        return None
    return s, e


phone = Detector(
    "phone", "PHONE_NUMBER",
    both(matches(_PHONE_INTL, _phone_intl), matches(_PHONE_PAREN, _phone),
          matches(_PHONE_NATIONAL, _phone), _phone_nanp,
          runs(10, 15, _phone_run)),
    max_len=72, reveal=4, canonical=digits,
    gate=lambda t: t.shape.count(b"0") >= 8,  # every form has 8 digits at least
)

DETECTORS: tuple[Detector, ...] = (phone,)
