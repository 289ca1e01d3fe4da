"""Faster finders against the single patterns that define them, on text built to hit
their edges (the definitions live here, the finders in extproc/masking)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from extproc.masking.detectors import LONGEST_VALUE
from extproc.masking.key_rules import assignments as _assignments

# `key=value` as one pattern, the definition `_assignments` implements faster (from the `=`).
_ASSIGNMENT_REFERENCE = re.compile(
    rb"(?<![A-Za-z0-9_.\-])([A-Za-z0-9_.\-]{1,64})=([^&\s\"';,]{1,%d})" % LONGEST_VALUE
)
# Few characters, so that keys, `=`, separators and over-long runs meet often.
_ASSIGNMENT_TEXT = st.lists(
    st.sampled_from(["a", "Z", "9", "_", ".", "-", "=", "==", " ", "&", ";", '"', "/", "é",
                     "k" * 63, "v" * 250]),
    max_size=40,
).map("".join)


@pytest.mark.slow
@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(text=_ASSIGNMENT_TEXT)
@example(text="a=" + "x" * (LONGEST_VALUE - 2) + "/kk=v")  # a key would start inside a capped value
def test_assignments_match_their_pattern(text: str) -> None:
    raw = text.encode()
    expected = [(m[1], *m.span(2)) for m in _ASSIGNMENT_REFERENCE.finditer(raw)]
    assert list(_assignments(raw)) == expected
