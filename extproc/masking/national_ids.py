"""National identity numbers: US social security numbers."""

from __future__ import annotations

import re

from extproc.masking import checks
from extproc.masking.detectors import (
    ALNUM,
    Detector,
    Text,
    both,
    context,
    continues,
    digits,
    matches,
    runs,
)

# --- US social security numbers ----------------------------------------------------------

# With dashes anywhere; with spaces, dots, slashes or none (9 digits) only after a
# context word, because 9-digit ids (orders, routing numbers, zip+4) and other dotted
# or slashed numbers are far more common than bare SSNs.
_SSN_GROUPS = re.compile(rb"000(?P<sep>[ ./])00(?P=sep)0000")
_SSN_CONTEXT = context(
    rb"(?<![a-z])(?:ssns?|ss#|social[ _-]?sec(?:urity)?|soc\.?[ _-]?sec)(?![a-z])", 48
)
_SSN_EDGE = b"-./+_"


def _ssn_span(t: Text, s: int, e: int, dashed: bool) -> tuple[int, int] | None:
    if t.at(ALNUM, s - 1) or t.at(ALNUM, e) or continues(t, e, _SSN_EDGE):
        return None
    if s > 0 and t.raw[s - 1] in _SSN_EDGE:
        return None
    if not checks.ssn_valid(digits(t.raw[s:e].decode())):
        return None
    return (s, e) if dashed or _SSN_CONTEXT(t, s) else None


def _ssn_groups(t: Text, s: int, e: int) -> tuple[int, int] | None:
    seps = t.raw[s + 3 : s + 4] + t.raw[s + 6 : s + 7]
    if seps not in (b"--", b"  ", b"..", b"//"):
        return None
    return _ssn_span(t, s, e, dashed=seps == b"--")


us_ssn = Detector(
    "us_ssn", "US_SSN",
    both(matches(_SSN_GROUPS, _ssn_groups, shape=True),
          runs(9, 9, lambda t, s, e: _ssn_span(t, s, e, dashed=False))),
    max_len=13, reveal=4, canonical=digits,
    gate=lambda t: b"0000" in t.shape,  # a run of 9, or the last group
)

DETECTORS: tuple[Detector, ...] = (us_ssn,)
