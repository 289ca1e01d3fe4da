"""Phone numbers: international, North American and national forms, digit runs after a
phone word, and the national forms of each country, checked against libphonenumber.

The fixed forms (first below) read as phone numbers wherever they are. Any other group
of 7-15 digits is a candidate of `_national`: on its own, a phone number where
libphonenumber's metadata says it is a valid number of a likely country written as that
country writes it (its grouping, or its trunk "0" and three groups; never an amount's
groups, a date or an SSN's); after a phone word, JSON key or CSV column name
(phone_context.py), where its length is possible for that word's countries.

Neither kind counts where it is a piece of a longer run of digit groups joined by the
same separator (a spaced ISBN, a tracking number, a 16-digit reference in fours) or
beside a MAC address's hex pairs: see `_in_run`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

from extproc.masking import phone_context, phone_regions
from extproc.masking.detectors import (
    ALNUM,
    DIGIT,
    NOT_DIGIT,
    WORD,
    Detector,
    HitGate,
    Text,
    context,
    continues,
    digits,
    runs,
    table,
)
from extproc.masking.prefilter import PASS

# --- phone numbers ----------------------------------------------------------------------

Span = tuple[int, int]

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
# North American digits on the shape, each place found by the one pass (prefilter.py).
_NANP_SHAPES = (b"000 000 0000", b"000.000.0000")
_NANP_IDS = tuple(PASS.literal(shape, shape=True) for shape in _NANP_SHAPES)
_PHONE_NANP_RAW = re.compile(
    rb"(?:(?:00)?1[ .\-])?[2-9][0-9]{2}([ .\-])[2-9][0-9]{2}\1[0-9]{4}" + _EXT
)
_PHONE_CONTEXT = context(
    (b"phone", b"tel", b"telephone", b"mobile", b"mob", b"cell", b"fax", b"call", b"sms",
     b"whatsapp", b"telefon", b"gsm", b"handy", b"portable"), 32
)
_PHONE_EDGE = b".+_/:-"


_EXT_TAIL = re.compile(_EXT_BODY + rb"\Z")
_HEX = table(b"0123456789ABCDEFabcdef")
_SEPARATOR = table(b" ./-")
_FIRST_SEPARATOR = re.compile(rb"[0-9]+([ ./\-]+)[0-9]")
_LAST_SEPARATOR = re.compile(rb"([ ./\-]+)[0-9]+\Z")


def _phone_ends(t: Text, s: int, e: int) -> tuple[int, int] | None:
    """Nothing continues the number, and it has 8-15 digits (a national "(0)" and any
    extension aside)."""
    if t.at(ALNUM, e) or continues(t, e, b".:/-"):
        return None
    main = t.raw[s:e]
    if b"(0)" in main:
        main = main.replace(b"(0)", b"")
    if b"x" in main or b"#" in main:
        main = _EXT_TAIL.sub(b"", main)
    return (s, e) if 8 <= len(main.translate(None, NOT_DIGIT)) <= 15 else None


def _in_run(t: Text, s: int, e: int) -> bool:
    """Whether the groups at s:e are part of a longer run of groups: another group before
    or after, joined by the separator used there (a spaced ISBN's, a tracking number's, a
    16-digit reference's groups), or a MAC address's hex pairs around. A piece of such a
    run is no phone number on its own."""
    raw = t.raw
    # Most candidates have a letter or nothing on both sides: two byte tests tell.
    if s > 1 and _SEPARATOR[raw[s - 1]] and _HEX[raw[s - 2]]:
        m = _FIRST_SEPARATOR.match(raw, s, e)
        if m is not None and raw.startswith(sep := m[1], s - len(sep)) and _group(
                t, s - len(sep) - 1, -1, sep):
            return True
    if e + 1 < len(raw) and _SEPARATOR[raw[e]] and _HEX[raw[e + 1]]:
        m = _LAST_SEPARATOR.search(raw, s, e)
        return m is not None and raw.startswith(sep := m[1], e) and _group(
            t, e + len(sep), 1, sep)
    return False


def _group(t: Text, pos: int, step: int, sep: bytes) -> bool:
    """Whether a group of the run is at `pos` (its first byte the way `step` reads): a
    digit, or where `sep` is a MAC address's dash, a pair of hex digits."""
    if t.at(DIGIT, pos):
        return True
    return (sep == b"-" and t.at(_HEX, pos) and t.at(_HEX, pos + step)
            and not t.at(ALNUM, pos + 2 * step))


def _phone(t: Text, s: int, e: int) -> tuple[int, int] | None:
    if t.at(ALNUM, s - 1) or (s > 0 and t.raw[s - 1] in _PHONE_EDGE) or _in_run(t, s, e):
        return None
    return _phone_ends(t, s, e)


def _phone_intl(t: Text, s: int, e: int) -> tuple[int, int] | None:
    return None if t.at(ALNUM, s - 1) else _phone_ends(t, s, e)


def _phone_nanp(t: Text) -> Iterator[tuple[int, int]]:
    """Shape finds the 3-3-4 digits (read as `re.finditer` reads a literal: of places that
    overlap, the first); the raw pattern, run around it, reads the rest."""
    hits = t.hits
    for shape, length in zip(_NANP_IDS, map(len, _NANP_SHAPES), strict=True):
        last = 0
        for end in hits.get(shape, ()):
            start = end - length
            if start < last:
                continue
            last = end
            # Of the raw pattern's matches around, only the first can hold `start`: a
            # match is 12 bytes at least, and the window starts 4 before.
            r = _PHONE_NANP_RAW.search(t.raw, max(0, start - 4), end + 16)
            if r is not None and r.start() <= start < r.end() and (span := _phone(t, *r.span())):
                yield span


def _matches_from(pattern: re.Pattern[bytes], check: Callable[[Text, int, int], Span | None]
                  ) -> Callable[[Text, int], list[Span]]:
    """A fixed form's finder: the matches of `pattern` from a position on that `check`
    accepts."""
    return lambda t, pos: [span for m in pattern.finditer(t.raw, pos)
                           if (span := check(t, *m.span()))]


def _phone_run(t: Text, s: int, e: int) -> tuple[int, int] | None:
    if t.at(WORD, s - 1) or t.at(WORD, e) or not _PHONE_CONTEXT(t, s):
        return None
    return s, e


# The forms found from the one pass's places (prefilter.py) or the text's digit runs; and
# those that start with something rarer than a digit, each registered with how far before
# its end a match can start: the pass reports the end of the first place each occurs, and
# a form's `re` runs only from there (most texts hold no "+" and a digit, no bracketed
# code, and no trunk "0" with a separator and three digits after: on the shape, `0` a
# digit and a dash a space).
_FORMS: tuple[Callable[[Text], Iterable[Span]], ...] = (_phone_nanp, runs(10, 15, _phone_run))
_GATED: tuple[tuple[int, int, Callable[[Text, int], list[Span]]], ...] = (
    (PASS.add(rb"\+[1-9]", first=True), 2, _matches_from(_PHONE_INTL, _phone_intl)),
    (PASS.add(rb"\((?:0[1-9]|[2-9][0-9])", first=True), 3, _matches_from(_PHONE_PAREN, _phone)),
    (PASS.add(rb"00{1,4}[ /]000|00(?:[ .]00){4}", shape=True, first=True), 14,
     _matches_from(_PHONE_NATIONAL, _phone)),
)

# --- national numbers, validated ----------------------------------------------------------

# Groups of digits separated by a space, dash, slash, "/ " or " / ", maybe after a
# bracketed area or country code ("(11) 91234-5678", "(+358) 294055761"), or by dots after
# a trunk "0" ("0470.12.34.56": dotted, anything else is a version or an address), 7
# digits at least, the first group of two or more. Hyperscan finds where such runs end,
# standing alone: not inside a word or an id ("ORD-", "_", "#"), not after "+"
# (international: above), not going on as a time, decimal or another number. It reports
# ends only (a start costs it 3x the time), in one pass (~0.2 ms on 200 KB of JSON, where
# `re` takes 1-4 ms: digits are everywhere there); `re` then reads the few candidates back.
_GROUPS = (rb"(?:(?:\(\+?[0-9]{1,4}\)[ \-]?)?[0-9]{2}(?:[0-9]|[ /\-] ?[0-9]|/ [0-9]| / [0-9]){5,}"
           rb"|0[0-9](?:[0-9]|[./][0-9]){5,})")
# Registered with the one pass (prefilter.py): where national candidates end.
_CANDIDATE_ENDS = PASS.add(rb"(?:^|[^0-9A-Za-z_.:+#/\\\-]|[\x80-\xff]:)" + _GROUPS
                           + rb"(?:[^0-9A-Za-z_ ./:\-]|[ ./:\-](?:[^0-9]|$)|$)")
_CANDIDATE = re.compile(_GROUPS)
# What a candidate may not follow: a word's byte, or a mark an id's digits follow. A colon
# is a time's or a port's, but not after a letter of another script: a label written
# without a space (`电话` and a full-width colon, folded to ":", then the number).
_NOT_BEFORE = table(bytes(b for b in range(256) if WORD[b]) + b".:+#/\\-")
_REACH = 64  # a candidate's longest: 15 digits, 6 separators of 3, a bracketed code
_BACK = b"0123456789 ./()+-"  # what a candidate is made of, read back from its end
_LEADING = b" ./)+-"
_GROUP = re.compile(rb"[0-9]+")


def _date(groups: list[bytes]) -> bool:
    """Three groups in a row read as a date: d.m.yyyy, m/d/yyyy, yyyy-m-d."""
    return any(
        (len(c) == 4 and c[:2] in (b"19", b"20") and len(a) <= 2 and len(b) <= 2
         and 1 <= int(a) <= 31 and 1 <= int(b) <= 31)
        or (len(a) == 4 and a[:2] in (b"19", b"20") and len(b) <= 2 and len(c) <= 2
            and 1 <= int(b) <= 12 and 1 <= int(c) <= 31)
        for a, b, c in zip(groups, groups[1:], groups[2:], strict=False))


def _thousands(lengths: tuple[int, ...]) -> bool:
    """Grouped like an amount or a count: 1-3 digits, then groups of exactly 3."""
    return lengths[0] <= 3 and all(n == 3 for n in lengths[1:])


def _validated(t: Text, s: int, e: int) -> bool:
    """Whether the candidate at s:e is one number (not a piece of a longer one: its shape
    tells most candidates first), and libphonenumber's a phone number."""
    raw = t.raw[s:e]
    if raw.isdigit():  # a bare run: a phone number only where something says so
        if len(raw) > 15 or _in_run(t, s, e):
            return False
        label = phone_context.label(t, s)
        return label is not None and label.phone and _phone_for(raw.decode(), label, t, s)
    groups = _GROUP.findall(raw)
    lengths = tuple(map(len, groups))
    number = b"".join(groups).decode()
    if (len(number) > 15 or min(lengths) == 1 or lengths == (3, 2, 4)
            or (len(groups) > 2 and _date(groups)) or _in_run(t, s, e)):
        return False  # versions, an SSN, a date, a piece of a longer number
    bracket = raw[0] == 0x28  # "("
    label = phone_context.label(t, s)
    if label is None and (len(number) < 8 or (not bracket and _thousands(lengths))):
        return False  # too loose to be a phone number on its own
    if label is not None and not label.phone:
        return False
    if bracket and number[0] != "0" and phone_regions.valid_international(
            number[:lengths[0]], number[lengths[0]:], lenient=label is not None):
        return not phone_context.money(t, s, e)  # "(+358) 294055761", "(351) 912345678"
    if label is not None:
        return _phone_for(number, label, t, s) and not phone_context.money(t, s, e)
    return (phone_regions.written_as(number, lengths, phone_regions.LIKELY)
            or _of_its_country(number, t, s, lengths)) and not phone_context.money(t, s, e)


def _phone_for(number: str, label: phone_context.Context, t: Text, s: int) -> bool:
    """After a phone word: possible for its countries, valid for any likely one, or
    valid for the country its record names."""
    return (phone_regions.possible(number, label.regions)
            or phone_regions.valid(number, phone_regions.LIKELY, trunk_required=False)
            or _of_its_country(number, t, s))


def _of_its_country(number: str, t: Text, s: int, groups: tuple[int, ...] | None = None
                    ) -> bool:
    """Valid for the country the number's record names (its JSON object's or CSV row's
    `country`, `locale`, `Land` field), with or without its trunk prefix; and with no
    phone word, written as that country writes it (`groups`). Asked last, as the
    likely countries answer from their caches and most numbers are theirs: the answer
    is the same in either order."""
    country = phone_context.country(t, s)
    if country is None:
        return False
    if groups is None:
        return phone_regions.valid(number, (country,), trunk_required=False)
    return phone_regions.written_as(number, groups, (country,), trunk_required=False)


def _start(t: Text, end: int) -> int | None:
    """Where the candidate ending at `end` starts: back over digits, separators and a
    bracketed code, then forward over leading separators (by `strip`: `re` reads only
    forward, and a loop over bytes in Python costs more)."""
    window = t.raw[max(0, end - _REACH):end]
    body = window[len(window.rstrip(_BACK)):].lstrip(_LEADING)
    s = end - len(body)
    for start in (s, s + 1) if body[:1] == b"(" else (s,):
        if _CANDIDATE.fullmatch(t.raw, start, end):
            return start
    return None


def _national(t: Text, ends: Iterable[int], found: list[Span]) -> Iterator[Span]:
    """Candidates (ending at `ends`) no fixed form found (`found`: theirs, sorted by
    end), validated."""
    raw, i = t.raw, 0
    for end in ends:
        while not DIGIT[raw[end - 1]]:
            end -= 1
        while i < len(found) and found[i][1] < end:
            i += 1
        if i < len(found) and found[i][1] == end:
            continue  # a fixed form found it
        s = _start(t, end)
        if s is None or (s > 0 and _NOT_BEFORE[raw[s - 1]]
                         and not (raw[s - 1] == 0x3A and s > 1 and raw[s - 2] >= 0x80)):
            continue  # inside a word or an id
        if _validated(t, s, end):
            yield s, end


def _end(span: Span) -> int:
    return span[1]


def _phone_find(t: Text) -> list[Span]:
    hits = t.hits
    found = [span for find in _FORMS for span in find(t)]
    for gated, reach, find in _GATED:
        if (ends := hits.get(gated)) is not None:
            found += find(t, max(0, ends[0] - reach))
    found.sort(key=_end)
    return found + list(_national(t, hits.get(_CANDIDATE_ENDS, ()), found))


# Where the pass found none of what a form starts from, and no run of 10 digits is in the
# text, no form finds anything.
_FORM_IDS = frozenset({*_NANP_IDS, *(gated for gated, _, _ in _GATED), _CANDIDATE_ENDS})


phone = Detector(
    "phone", "PHONE_NUMBER", _phone_find, max_len=72, reveal=4, canonical=digits,
    gate=HitGate(_FORM_IDS, lambda t: any(e - s >= 10 for s, e in t.digit_runs)),
)

DETECTORS: tuple[Detector, ...] = (phone,)
