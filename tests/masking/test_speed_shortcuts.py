"""The masker's shortcuts read a text as the plain readings they stand for.

Each shortcut exists for speed (a set lookup for a regular expression, a form read from
the first place the one pass found, a family's members under one verdict); each test
here states the plain reading and checks that the shortcut gives the same answer on
generated texts, so that a faster reading never finds more or less.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.masking import (
    catalog,
    generic_secrets,
    national_ids,
    phone_context,
    phones,
    vendor_rules,
)
from extproc.masking.detectors import Detector, Text, context, digits, runs_of, scan
from extproc.masking.key_rules import field_in_text
from extproc.masking.shadow import ASCII_DIGITS

SETTINGS = settings(max_examples=400, derandomize=True, database=None, deadline=None)

_VOCABULARY = [word.decode() for word, _, _ in phone_context._VOCABULARY]
_PIECES = [*_VOCABULARY, "s", "x", "é", "É", "TEL", " ", ":", "(", ")", "\n", "1", "42",
           "the", "no.", "_", "-", "ß", "phones", "tels"]
# Windows as `label` reads them: lowercase bytes before a number, up to 48.
windows = st.lists(st.sampled_from(_PIECES), max_size=14).map(
    lambda pieces: "".join(pieces).encode()[-48:])


def _is_letter(b: int) -> bool:
    return 0x61 <= b <= 0x7A or b >= 0x80


def _plain_in_text(window: bytes) -> phone_context.Context | None:
    """phone_context's reading as its docstring states it: of the words of the vocabulary
    standing as words (a stem's letters after it, a word's plural), the one that ends
    last (of two ending together the longer) labels the number, when at most 24 bytes
    and no digit come between."""
    best: tuple[int, int, phone_context.Context] | None = None
    for word, stem, label in phone_context._VOCABULARY:
        for m in re.finditer(b"(?=%s)" % re.escape(word), window):
            start, end = m.start(), m.start() + len(word)
            if start > 0 and _is_letter(window[start - 1]):
                continue
            if stem:
                while end < len(window) and _is_letter(window[end]):
                    end += 1
            else:
                end += end < len(window) and window[end] == 0x73
                if end < len(window) and _is_letter(window[end]):
                    continue
            if best is None or (end, len(word)) > best[:2]:
                best = (end, len(word), label)
    if best is None:
        return None
    filler = window[best[0]:]
    return best[2] if len(filler) <= 24 and not re.search(rb"[0-9]", filler) else None


@pytest.mark.slow
@SETTINGS
@given(window=windows)
def test_a_label_is_read_from_the_words_before_the_number(window: bytes) -> None:
    assert phone_context._in_text(window) == _plain_in_text(window)


_CONTEXT_WORDS = (b"phone", b"tel", b"telephone", b"cell", b"sms")


@pytest.mark.slow
@SETTINGS
@given(before=st.lists(st.sampled_from(
    [*(w.decode() for w in _CONTEXT_WORDS), "s", "x", "é", "TEL", " ", "\x00", "1", "_"]),
    max_size=12).map("".join))
def test_a_context_word_is_a_word_of_the_set(before: str) -> None:
    """`context` looks words up in a set where a regular expression read each byte."""
    plain = re.compile(rb"(?<![a-z])(?:%s)s?(?![a-z])" % b"|".join(_CONTEXT_WORDS))
    raw = before.encode() + b"5551234567"
    t, s = Text(raw), len(raw) - 10
    assert context(_CONTEXT_WORDS, 32)(t, s) == (plain.search(t.before(s, 32)) is not None)


# Other scripts' digits: Arabic-Indic three and four, Devanagari seven, Thai nine.
_DIGITS = "0123456789 -./abcXYZé\u0663\u0664\u096d\u0e59"


@SETTINGS
@given(value=st.text(st.sampled_from(_DIGITS)))
def test_digits_of_an_ascii_value_are_read_by_deleting_bytes(value: str) -> None:
    plain = re.sub("[^0-9]", "", value.translate(ASCII_DIGITS), flags=re.ASCII)
    assert digits(value) == plain


# Texts of trunk numbers (`030 1234567`, `01 23 45 67 89`) among digits, separators and
# letters: where they and their look-alikes are.
digit_texts = st.lists(st.one_of(
    st.from_regex(phones._PHONE_NATIONAL, fullmatch=True),
    st.sampled_from([b"0", b"01", b"7", b"12", b"345", b" ", b"-", b"/", b".", b"x12", b"a",
                     b"\n", b"+"])), max_size=8).map(b"".join)


@pytest.mark.slow
@SETTINGS
@given(raw=digit_texts)
def test_the_trunk_form_is_read_from_the_first_place_the_pass_found(raw: bytes) -> None:
    """National numbers with a trunk "0" are read by `re` from shortly before the first
    place the one pass found their shape (`000 000`), not from the text's start."""
    t = Text(raw)
    gated, reach, find = phones._GATED[2]
    from_start = find(t, 0)
    ends = t.hits.get(gated)
    assert (find(t, max(0, ends[0] - reach)) if ends is not None else []) == from_start


def test_each_detector_is_asked_once_in_its_order() -> None:
    """`scan` asks a family's members under one verdict and the others alone, in the
    catalog's order; a family split by another detector is still asked once."""
    chosen = (*catalog.DETECTORS, field_in_text(frozenset({"password"})))
    asked = [member[0] for _, members in runs_of(chosen) for member in members]
    assert asked == list(range(len(chosen)))
    ssn, aadhaar = national_ids.us_ssn, national_ids.in_aadhaar
    split: tuple[Detector, ...] = (ssn, phones.phone, aadhaar)
    runs = runs_of(split)
    assert [[member[0] for member in members] for _, members in runs] == [[0, 2], [1]]
    assert [family for family, _ in runs] == [ssn.family, None]


def test_a_split_family_finds_what_its_members_find() -> None:
    raw = b"SSN 123-45-6789, phone 030 1234567, Aadhaar 2345 6789 0124"
    members = (national_ids.us_ssn, phones.phone, national_ids.in_aadhaar)
    alone = {(s, e, d.name) for one in members for s, e, d in scan(Text(raw), [one])}
    assert {(s, e, d.name) for s, e, d in scan(Text(raw), members)} == alone
    assert {name for _, _, name in alone} >= {"us_ssn", "phone"}


# --- secrets known by their name --------------------------------------------------------

_VALUE_BYTES = st.sampled_from([*b"aZ09&=_.-:/ \t\n\"'`,;{}()<>$*~\\", 0x00, 0x01, 0xC3])
values = st.lists(_VALUE_BYTES, max_size=300).map(bytes) | st.sampled_from([
    b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", b"hunter2-Xy9", b"settings.DB_PASSWORD",
    b"2024-01-01T00:00:00Z", b"C:\\Users\\x", b"${TOKEN}", b"Q9v&page=2", b"aB3$" * 70])
_PLAIN_BARE = re.compile(rb"(?:[^\s\"'`,;&\x00\x01]|&(?![A-Za-z0-9_.-]{1,64}=)){1,%d}"
                         % generic_secrets.LONGEST_VALUE)


@pytest.mark.slow
@SETTINGS
@given(raw=values, at=st.integers(0, 300))
def test_a_bare_value_is_read_in_runs(raw: bytes, at: int) -> None:
    """`_bare` reads what a pattern of one byte (or `&`) at a time reads, cut as long."""
    m = _PLAIN_BARE.match(raw, min(at, len(raw)))
    plain = None if m is None else (m.start(), m.start() + len(m[0].rstrip(b".)]}")))
    assert generic_secrets._bare(raw, min(at, len(raw))) == plain


def _plain_looks_generated(value: bytes, password: bool) -> bool:
    """`looks_generated` as it read values byte by byte, ignoring case in the pattern."""
    if not 8 <= len(value) <= generic_secrets.MAX_VALUE or any(c in b" \t\r\n" for c in value):
        return False
    if (re.search(b"(?i)" + generic_secrets._PLACEHOLDER.pattern, value)
            or generic_secrets._DOTTED_NAME.fullmatch(value)
            or generic_secrets._CODE.search(value)):
        return False
    lower, upper = any(0x61 <= c <= 0x7A for c in value), any(0x41 <= c <= 0x5A for c in value)
    digit = any(0x30 <= c <= 0x39 for c in value)
    symbol = any(not (0x61 <= c <= 0x7A or 0x41 <= c <= 0x5A or 0x30 <= c <= 0x39) for c in value)
    letters = lower or upper
    if password:
        return letters and (digit or lower + upper + digit + symbol >= 3)
    if (generic_secrets._TIMESTAMP.match(value)
            or sum(1 for c in value if 0x61 <= c <= 0x7A or 0x41 <= c <= 0x5A) < 4):
        return False
    return len(value) >= 16 and letters and digit and _plain_entropy(value) >= 3.0


def _plain_entropy(value: bytes) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


@pytest.mark.slow
@SETTINGS
@given(value=values, password=st.booleans())
def test_a_value_is_judged_by_its_classes_of_bytes(value: bytes, password: bool) -> None:
    """Classes counted by deleting bytes, and placeholders looked for in lower case, judge
    a value as the byte loops and the pattern ignoring case did; entropy is the same
    number, bit for bit."""
    assert generic_secrets.looks_generated(value, password) == _plain_looks_generated(
        value, password)
    assert vendor_rules.entropy(value) == _plain_entropy(value)


def test_a_letter_before_aws_is_read_without_lowering_the_text() -> None:
    """keys._aws_contexts asks `isalpha` of the byte before `aws`, where it lowered the
    whole text and asked for a-z: the same answer for every byte."""
    for b in range(256):
        assert bytes([b]).isalpha() == (0x61 <= bytes([b]).lower()[0] <= 0x7A)
