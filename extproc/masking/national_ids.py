"""National identity numbers: US social security numbers and the ids of 30-odd other
countries (`DETECTORS`).

Each is found by its shape and kept only if its issuing rules and checksum hold
(id_checks.py). Where they still let too many ordinary numbers through (an 11-test
passes one 9-digit number in 11; a date and a Luhn digit one timestamp in ten), a *cue*
is required as well: a word such as "bsn" within 48 bytes before the number, in the name
of its JSON key, or in the header of its CSV column (however far above). Besides each
id's own words, the English ones a document in any language may use for any id
(`id_number`, `national_id`, `tax_id`: `_ANY_ID`) are cues of every id that needs one.
Forms no ordinary number takes (letters, a printed CPF, a dotted AHV number) need none.
An id printed in its own groups (`046 454 286`, `2345 6789 0124`, `1234.56.782`) needs
none either, unless something says it is another thing (a phone word, an order's, a
currency: `Printed`); bare, it needs its cue. Ids with no check character (passports,
driving licences, bank accounts) are found by their strict format, after a cue.

Shapes other than the SSN's are fixed strings on `Text.shape` (`0000 0000 0000`) or
runs of digits (`Text.digit_runs`). The one Hyperscan pass per text (prefilter.py) finds
the strings and the cues' stems, from which `Prefilter` decides which detectors of the
family may find anything (`Detector.family`: `scan` asks it once per text, and no gate of
a detector it rules out); a find reads only its own candidates, however many detectors
and however long the text, and a form with no fixed shape (`Matched`) only the text near
its cue's stems. The cue itself is read last, before a candidate whose checksum holds.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, cast

from extproc.masking import checks, id_checks, phone_context
from extproc.masking.detectors import (
    ALNUM,
    DIGIT,
    Detector,
    Text,
    alnum_upper,
    both,
    continues,
    digits,
    extends_back,
    table,
)
from extproc.masking.prefilter import PASS, escaped

# --- cues: context words, JSON keys, CSV headers --------------------------------------------

_DELIMITERS = b",\t|;"
_LINE_ENDS = b"\r\n\x00"


def column_name(t: Text, s: int, e: int) -> bytes | None:
    """The header (lowercase) of the delimited-text column (CSV, TSV, `|`, `;`) whose cell
    is `s:e`, or None: the cell is whole (quotes aside), the delimiter is a byte next to
    it, and the header is the first line of its text (of its JSON value, in a document)."""
    raw = t.raw
    if s > 0 and e < len(raw) and raw[s - 1] == raw[e] == 0x22:
        s, e = s - 1, e + 1
    before = raw[s - 1] if s > 0 else 0x0A
    after = raw[e] if e < len(raw) else 0x0A
    delimiter = before if before in _DELIMITERS else after
    if (delimiter not in _DELIMITERS or before not in (delimiter, 0x0A, 0x01)
            or after not in (delimiter, *_LINE_ENDS)):
        return None
    top = max(raw.rfind(b"\x00", 0, s), raw.rfind(b"\x01", 0, s)) + 1
    line = raw.rfind(b"\n", top, s) + 1
    if top == 0 and t.head is not None:  # a stream's text: its body's first line is gone
        head = t.head
    elif line == 0:
        return None  # the first line: no header above it
    else:
        head = raw[top : raw.index(b"\n", top)]
    sep = chr(delimiter)
    # The cells before this one (csv reads an empty line as no cell at all: the first).
    before_cell = next(csv.reader([raw[line:s].decode("utf-8", "replace")], delimiter=sep))
    column = max(len(before_cell) - 1, 0)
    header = head.rstrip(b"\r").decode("utf-8", "replace")
    names = next(csv.reader([header], delimiter=sep), [])
    return names[column].lower().encode() if column < len(names) else None


Places = dict[int, list[tuple[int, int]]]


class Prefilter:
    """What this family's gates ask, read from the one pass (prefilter.py): cue stems (any
    case; whether they occur) and shapes (literals on `Text.shape`; every place each
    is), with the text's digit runs by length. From these it decides every detector of
    the family at once (`family`), so that `scan` asks no gate of a detector it rules
    out, and a find reads only its own candidates. `in` tests, one per literal, and one
    gate's logic per detector would cost more than the pass. Each shape is a pattern of
    its own, so that where it starts is where it ends less its length."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, tuple[bytes, ...]], int] = {}
        # Pass id -> key and length (0: a stem's, whose places are not kept).
        self._ids: dict[int, tuple[int, int]] = {}
        self._routes: dict[int, list[tuple[str, int | None]]] = {}

    def stems(self, *literals: bytes) -> int:
        """The key `read(t)` has (with no places) where any of `literals` occurs, any case
        (a literal of digits and separators only: where its shape occurs)."""
        key = self._key("stems", literals)
        if (key, 0) not in self._ids.values():
            shaped = not any(c.isalpha() for c in b"".join(literals).decode())
            self._ids[PASS.add(b"|".join(map(escaped, literals)), shape=shaped,
                               caseless=not shaped, first=True)] = key, 0
        return key

    def shapes(self, *literals: bytes) -> int:
        """The key under which `read(t)` has the places of `literals` in a text's shape."""
        return self._placed("shapes", literals)

    def words(self, *literals: bytes) -> int:
        """The key under which `read(t)` has the places of `literals` (any case) in a text:
        stems whose every occurrence counts (`Matched` reads the text near them only)."""
        return self._placed("words", literals)

    def _placed(self, kind: str, literals: tuple[bytes, ...]) -> int:
        key = self._key(kind, literals)
        if key not in {k for k, _ in self._ids.values()}:
            for literal in literals:
                pattern_id = (PASS.literal(literal, shape=True) if kind == "shapes"
                              else PASS.literal(literal, caseless=True))
                self._ids[pattern_id] = key, len(literal)
        return key

    def _key(self, kind: str, literals: tuple[bytes, ...]) -> int:
        return self._keys.setdefault((kind, literals), len(self._keys))

    def route(self, name: str, keys: Iterable[int], stem: int | None = None) -> None:
        """Detector `name` may find something in a text that has one of `keys` (a shape's,
        or `-length` for a run of digits) and, if given, `stem`. Routes of a name add up."""
        for key in keys:
            self._routes.setdefault(key, []).append((name, stem))

    def family(self, t: Text) -> frozenset[str]:
        """The detectors of the family that may find something in `t` (`Detector.family`):
        from which shapes, stems and lengths of digit runs it holds, not where."""
        passing = t.memo.get(_PASSING)
        if passing is None:
            ids = self._ids
            keys = {ids[i][0] for i in ids.keys() & t.hits.keys()}
            keys.update(s - e for s, e in t.digit_runs)
            if t.head:  # a stream's table header (`column_name`) holds cues too
                keys.update(ids[i][0] for i in ids.keys() & PASS.scan(t.head, b"").keys())
            routes = self._routes
            passing = t.memo[_PASSING] = frozenset(
                name for key in keys if key in routes
                for name, stem in routes[key] if stem is None or stem in keys)
        return cast("frozenset[str]", passing)

    def places(self, t: Text, key: int) -> list[tuple[int, int]]:
        """Where a shape (a key from `shapes`) or a digit run (`-length`) is in `t`, in
        order (of two shapes of a key ending together, the longer): read only once a
        member the family admits looks for its candidates."""
        places = t.memo.get(_PLACES)
        if places is None:
            places = t.memo[_PLACES] = self._places(t)
        return cast("Places", places).get(key, [])

    def _places(self, t: Text) -> Places:
        places: Places = {}
        ids = self._ids
        merged = []  # keys of more than one shape found
        for i, ends in t.hits.items():
            if (entry := ids.get(i)) is None or not (length := entry[1]):
                continue
            key = entry[0]
            if key in places:
                merged.append(key)
            places.setdefault(key, []).extend([(end - length, end) for end in ends])
        for key in merged:
            leftmost: dict[int, int] = {}
            for s, e in places[key]:
                if leftmost.get(e, e) > s:
                    leftmost[e] = s
            places[key] = [(s, e) for e, s in sorted(leftmost.items())]
        for s, e in t.digit_runs:
            places.setdefault(s - e, []).append((s, e))
        return places

    def gate(self, name: str) -> Callable[[Text], bool]:
        """Detector `name`'s own gate, for callers that ask detectors one by one."""
        return lambda t: name in self.family(t)


_PASSING, _PLACES = f"{__name__}.passing", f"{__name__}.places"
PREFILTER = Prefilter()
_FAMILY = PREFILTER.family  # one object: `scan` asks it once per text


def places(t: Text, key: int) -> list[tuple[int, int]]:
    """Where a shape (a key from `PREFILTER.shapes`) or a digit run (`-length`) is in `t`."""
    return PREFILTER.places(t, key)


_KEY_END = rb"[\"']?[\x01:=]"


def joined(first: bytes, *then: bytes) -> list[bytes]:
    """Stems for `first` followed by one of `then`, joined by nothing, " ", "_" or "-"."""
    return [first + sep + word for word in then for sep in (b"", b" ", b"_", b"-")]


# `_KEY_END`, or a CSV cell's end.
_KEY_ENDS = [b'"', b"'", b"\x01", b":", b"=", b"\t", b"\r", b"\n", b",", b";", b"|"]


def as_key(*words: bytes) -> list[bytes]:
    """Stems for words that count as a cue only as a key, a label or a column's name."""
    return [word + end for word in words for end in _KEY_ENDS]


# Words that name an identity number of any country, as English keys and labels say it
# (`id_number`, `national_id`, `tax_id`, "personal identity code"): a cue for every id
# that needs one, since a document in any language may use them. `id` alone (`user_id`,
# `order_id`) is no cue.
_ANY_ID = (rb"id[ _-]?(?:numbers?|num|no|nr)"
           rb"|(?:personal|national|citizen)[ _-]?(?:id|identity|identification|numbers?|no|nr"
           rb"|code)|identi(?:ty|fication)(?:[ _-]?(?:numbers?|no|nr|code|card))?"
           rb"|tax(?:payer)?[ _-]?(?:id|identification|numbers?|no|nr)|taxpayer")
_ID_TAILS = (b"id", b"ident", b"num", b"no", b"nr", b"code")
_ANY_ID_STEMS = (*joined(b"id", b"num", b"no", b"nr"), *joined(b"personal", *_ID_TAILS),
                 *joined(b"national", *_ID_TAILS), *joined(b"citizen", *_ID_TAILS),
                 b"identity", b"identification", *joined(b"tax", b"id", b"ident", b"num", b"no",
                                                          b"nr", b"payer"))


class Cue:
    """What makes a number of some shape an id of one kind: one of `words` (a regular
    expression on lowercase text) within `width` bytes before it, or naming its JSON key
    (`key SOH value`) or its CSV column. `keys` are words that are also ordinary words
    ("tin", "social"): they count only as a key or a label, followed by `:`, `=` or the
    key's end. Unless `any_id` is False, the words that name an id of any country
    (`_ANY_ID`) count too. Every word and key contains one of `stems` (if given): a text
    with none of them has no cue (for a gate). `placed`: every place of a stem is kept
    (`PREFILTER.words`), for a form read only near them (`Matched`)."""

    def __init__(self, words: bytes, stems: tuple[bytes, ...] = (), keys: bytes = b"",
                 width: int = 48, *, any_id: bool = True, placed: bool = False) -> None:
        either = words + (b"|" + _ANY_ID if any_id else b"") + (
            rb"|(?:%s)(?=%s)" % (keys, _KEY_END) if keys else b"")
        self._words = re.compile(rb"(?<![a-z0-9])(?:%s)(?![a-z])" % either)
        literals = (*stems, *(_ANY_ID_STEMS if any_id else ()))
        self.stems = ((PREFILTER.words if placed else PREFILTER.stems)(*literals) if stems
                      else None)
        self.placed, self.width = placed, width

    def __call__(self, t: Text, s: int, e: int) -> bool:
        if self._words.search(t.before(s, self.width)):
            return True
        if (carrier := t.carrier_start(s)) != s:  # a URL's or a form's: its context
            if self._words.search(t.before(carrier, self.width)):
                return True
            end = _TOKEN_END.search(t.raw, e)
            e = end.start() if end is not None else len(t.raw)
        name = column_name(t, carrier, e)
        return name is not None and self._words.search(name + b"\x01") is not None


_TOKEN_END = re.compile(rb"[\s\"'<>\x00\x01,;|]")


# --- forms --------------------------------------------------------------------------------

# Joined to a number by one of these (or by a letter or digit), digits are another id's part.
_JOINS = table(b"-./+_#0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_EDGE = b"-./+_#"


def _apart(t: Text, s: int, e: int) -> bool:
    """Nothing joins the candidate to what is around it: no letter, digit or `-./+_#`
    before it, no letter or digit after it, and no such separator and a digit."""
    return ((s == 0 or not _JOINS[t.raw[s - 1]]) and not t.at(ALNUM, e)
            and not continues(t, e, _EDGE))


def _one_separator(t: Text, s: int, e: int, seps: bytes) -> bool:
    """The groups are joined by one of `seps`, the same throughout."""
    used = set(t.raw[s:e].translate(None, b"0123456789"))
    return len(used) == 1 and used <= set(seps)


_ALNUM_BYTES = bytes(b for b in range(256) if ALNUM[b])
_BRACKETED = re.compile(rb"\([+0-9]{1,5}\) ?\Z")  # a phone number's area or country code


class Printed:
    """What makes a form written as its id is printed (`123 456 782`, `1234.56.782`: its
    own separators) an id of that kind: its `cue`, or else nothing saying it is another
    thing. A checksum passes one number in ten or so written alike (a phone number, an
    amount, an order's), so with no cue a candidate counts only where `alone` holds on
    its digits (a rule a cue may spare: a CPR's modulus 11, no compact timestamp), no word
    labels it (a phone's, an order's, another id's: `phone_context.label`), no currency
    stands beside it, and no digits carry its grouping on (`+34 612 345 678`) or lead to
    it in brackets (`(351) 924 789 046`)."""

    stems = None  # no cue needed: routed by its shape alone
    after = 7  # bytes read past a candidate (`,00 zł`): a stream holds them back too

    def __init__(self, cue: Cue, alone: Callable[[str], bool] | None = None) -> None:
        self.cue, self._alone = cue, alone

    def __call__(self, t: Text, s: int, e: int) -> bool:
        if self.cue(t, s, e):
            return True
        code = t.raw[s:e]
        seps = code.translate(None, _ALNUM_BYTES)
        return ((self._alone is None or self._alone(digits(code.decode())))
                and not (seps and (extends_back(t, s, seps) or continues(t, e, seps)))
                and not _BRACKETED.search(t.raw, max(0, s - 8), s)
                and phone_context.label(t, s) is None and not phone_context.money(t, s, e))


def _no_timestamp(number: str) -> bool:
    """The digits of a date-led id (Swedish, Danish, Finnish: printed with a dash, as
    compact timestamps are) do not read as a timestamp of this century, `yymmdd-hhmm` or
    `yyyymmdd-hhmm`: a day since 2000 and a time of day."""
    day, time = number[:-4], number[-4:]
    if len(day) == 8 and day.startswith("20"):
        day = day[2:]
    return not (len(day) == 6 and int(day[:2]) < 40 and int(time[:2]) < 24
                and int(time[2:]) < 60
                and id_checks.date_ok(2000 + int(day[:2]), int(day[2:4]), int(day[4:])))


Accept = Cue | Printed | None  # a form's cue: needed, needed unless printed, or none


class DigitId:
    """A form of an id written in digits: bare (`lengths`, 9 digits or more:
    `Text.digit_runs`) or in groups (`groups`, joined by one of `seps` throughout), valid
    by `valid` (on its digits), and after `cue` if there is one."""

    def __init__(self, valid: Callable[[str], bool], lengths: tuple[int, ...],
                 groups: tuple[tuple[int, ...], ...], seps: bytes, cue: Accept) -> None:
        self.valid, self.seps, self.cue = valid, seps, cue
        shaped = {b" " if c == 0x2D else bytes([c]) for c in seps}  # "-" is " " in a shape
        forms = [sep.join(b"0" * n for n in sizes) for sizes in groups for sep in shaped]
        # Where its candidates are in `PREFILTER.places`: runs by -length, groups by shape.
        self.keys = frozenset([-n for n in lengths]
                              + ([PREFILTER.shapes(*sorted(forms))] if forms else []))
        self.longest = max(lengths + tuple(map(len, forms)))

    def find(self, t: Text) -> Iterator[tuple[int, int]]:
        for key in self.keys:
            for s, e in places(t, key):
                if key >= 0 and not _one_separator(t, s, e, self.seps):
                    continue
                if (_apart(t, s, e) and self.valid(digits(t.raw[s:e].decode()))
                        and (self.cue is None or self.cue(t, s, e))):
                    yield s, e


class Shaped:
    """A form of an id with letters or mixed separators: one of `forms` (literals on
    `Text.shape`, where a digit is `0`, a capital `A` and a dash a space), valid by
    `valid` (on the text as written, separators kept), after `cue` if there is one."""

    def __init__(self, valid: Callable[[str], bool], *forms: bytes, cue: Accept = None
                 ) -> None:
        self.valid, self.cue = valid, cue
        self._key = PREFILTER.shapes(*forms)
        self.keys = frozenset([self._key])
        self.longest = max(map(len, forms))

    def find(self, t: Text) -> Iterator[tuple[int, int]]:
        for s, e in places(t, self._key):
            if (_apart(t, s, e) and self.valid(t.raw[s:e].decode())
                    and (self.cue is None or self.cue(t, s, e))):
                yield s, e


class Matched:
    """A form of an id with no one shape but a strict pattern (`pattern`, on the text as
    written: a US state's driving licence, an Indian registration plate), at most
    `longest` bytes long, always after `cue`, whose stems' places are kept. `re` reads
    only the text just after each stem (where a word or a JSON key is a cue), or, after
    a stem in the first line of a text or of a JSON value (a CSV header, whose column's
    cells are below however far), the rest of it; the family routes it by them alone."""

    def __init__(self, pattern: bytes, cue: Cue, longest: int) -> None:
        if cue.stems is None or not cue.placed:
            raise ValueError("a matched form is read only near its cue's stems: placed")
        self._pattern = re.compile(rb"(?<![0-9A-Za-z])(?:%s)(?![0-9A-Za-z])" % pattern)
        self.cue, self.longest, self._stems = cue, longest, cue.stems
        self.keys = frozenset([cue.stems])

    def _windows(self, t: Text) -> list[tuple[int, int]]:
        """Where candidates may start and end: after each stem, merged, in order."""
        raw, reach = t.raw, self.cue.width + self.longest + 1
        windows: list[tuple[int, int]] = []
        for s, e in places(t, self._stems):
            soh, nul = raw.rfind(b"\x01", 0, s), raw.rfind(b"\x00", 0, s)
            if t.head is not None or (soh >= nul and raw.rfind(b"\n", soh + 1, s) == -1):
                end = raw.find(b"\x00", e)  # a header: its text's or JSON value's end
                e = len(raw) - reach if end == -1 else end - reach
            if windows and s <= windows[-1][1]:
                windows[-1] = windows[-1][0], max(windows[-1][1], e + reach)
            else:
                windows.append((s, e + reach))
        return windows

    def find(self, t: Text) -> Iterator[tuple[int, int]]:
        for lo, hi in self._windows(t):
            for m in self._pattern.finditer(t.raw, lo, hi):
                if _apart(t, *m.span()) and self.cue(t, *m.span()):
                    yield m.span()


def national_id(name: str, entity: str, *forms: DigitId | Shaped | Matched,
                canonical: Callable[[str], str] = digits) -> Detector:
    """A Detector finding any of `forms`, routed through the family's prefilter."""
    for form in forms:
        PREFILTER.route(name, form.keys, form.cue.stems if form.cue is not None else None)
    longest = max(f.longest + (f.cue.after if isinstance(f.cue, Printed) else 0) for f in forms)
    return Detector(name, entity, both(*(f.find for f in forms)) if len(forms) > 1
                    else forms[0].find, max_len=longest + 2, reveal=4,
                    canonical=canonical, gate=PREFILTER.gate(name), family=_FAMILY)


# --- US social security numbers ----------------------------------------------------------

# Dashed anywhere. With other separators (spaces, tabs, dots, slashes, underscores), with
# none, or with a letter glued to either end, only with a cue: 9-digit ids (orders,
# routing numbers, zip+4) and other grouped numbers are far more common than bare SSNs.
# Its own words only: SSN rules let most 9-digit numbers through, too many for a key as
# loose as `id_number`. An ITIN (in the IRS's ranges, never an SSN's) is written the same
# ways and under the same words (forms ask for "SSN or ITIN"), but has no rule an
# ordinary number breaks often enough: a cue always.
_SSN_CUE = Cue(
    rb"ssns?|ss#|social[ _-]?sec(?:urity)?|soc\.?[ _-]?sec|tax(?:payer)?[ _-]?id(?:entification)?"
    rb"|taxpayer|national[ _-]?id|itins?|individual[ _-]?taxpayer", keys=rb"tins?|social",
    stems=(b"ssn", b"ss#", b"soc", b"tax", b"national", b"itin", b"individual",
           *as_key(b"tin", b"tins")), any_id=False)
_SSN_SEPS = rb"[ ./_\t]{1,3}"  # on the shape, where "-" is " "
_SSN_GROUPS = re.compile(rb"000(%s)00(%s)0000" % (_SSN_SEPS, _SSN_SEPS))
# The last group after its separator: the mark of a text `_ssn_groups` may find one in.
_SSN_GROUPS_END = PREFILTER.stems(b" 0000", b".0000", b"/0000", b"_0000", b"\t0000")
_SSN_EDGE = b"-./+_"
_SSN_PUNCT = (b"-", b".", b"/", b"_")


class _SsnCandidate(NamedTuple):
    s: int
    e: int
    number: str  # its nine digits
    plain: bool  # dashed, with no letter glued to it: an SSN with no cue
    grouped: bool  # written in groups (a bare run of nine is not)


def _ssn_candidate(t: Text, s: int, e: int, dashed: bool, grouped: bool
                   ) -> _SsnCandidate | None:
    # First: an id's tail (`ORD-123456789`). A slash before a dashed SSN is a path's
    # segment (`/files/123-45-6789`), where a URL carries one out.
    if s > 0 and t.raw[s - 1] in _SSN_EDGE and not (dashed and t.raw[s - 1] == 0x2F):
        return None
    glued = False
    for letter, beyond in ((s - 1, s - 2), (e, e + 1)):
        if t.at(ALNUM, letter):
            if t.at(DIGIT, letter) or t.at(ALNUM, beyond):
                return None  # digits go on, or the letter is a word's
            glued = True
    if continues(t, e, _SSN_EDGE):
        return None
    return _SsnCandidate(s, e, digits(t.raw[s:e].decode()), dashed and not glued,
                         grouped and not glued)


def _ssn_candidates(t: Text) -> list[_SsnCandidate]:
    """Nine digits written as an SSN or an ITIN is (its groups, or a run of nine),
    standing apart: read once per text for both."""
    memo = t.memo.get(_SSN_MEMO)
    if memo is not None:
        return cast("list[_SsnCandidate]", memo)
    found = []
    for m in _SSN_GROUPS.finditer(t.shape):
        first, second = t.raw[m.start(1) : m.end(1)], t.raw[m.start(2) : m.end(2)]
        spaced = not (first + second).strip(b" \t")
        if spaced and (continues(t, m.end(), b" \t") or extends_back(t, m.start(), b" \t")):
            continue  # a longer spaced number
        if ((spaced or (first == second and first in _SSN_PUNCT))
                and (c := _ssn_candidate(t, *m.span(), first == b"-", True)) is not None):
            found.append(c)
    found.extend(c for s, e in t.digit_runs
                 if e - s == 9 and (c := _ssn_candidate(t, s, e, False, False)) is not None)
    t.memo[_SSN_MEMO] = found
    return found


_SSN_MEMO = f"{__name__}.ssn"


def _ssn_finder(itin: bool) -> Callable[[Text], list[tuple[int, int]]]:
    """The SSN's finder (`itin`: the ITIN's): valid by its rules, dashed or after a cue,
    or in groups in a US record (`Jane Roe (US) — 078 05 1120`, `"country": "US"`)."""
    valid = id_checks.us_itin if itin else checks.ssn_valid

    def find(t: Text) -> list[tuple[int, int]]:
        return [(c.s, c.e) for c in _ssn_candidates(t) if valid(c.number) and (
            (c.plain and not itin) or _SSN_CUE(t, c.s, c.e)
            or (c.grouped and phone_context.country(t, c.s) == "US"))]

    return find


PREFILTER.route("us_ssn", [-9, _SSN_GROUPS_END])  # a run of 9, or the groups
us_ssn = Detector(
    "us_ssn", "US_SSN", _ssn_finder(itin=False),
    max_len=17, reveal=4, canonical=digits, gate=PREFILTER.gate("us_ssn"), family=_FAMILY,
)
PREFILTER.route("us_itin", [-9, _SSN_GROUPS_END], _SSN_CUE.stems)
us_itin = Detector(
    "us_itin", "US_ITIN", _ssn_finder(itin=True),
    max_len=17, reveal=4, canonical=digits, gate=PREFILTER.gate("us_itin"), family=_FAMILY,
)

# --- ids in digits ---------------------------------------------------------------------------


def printed(valid: Callable[[str], bool], lengths: tuple[int, ...],
            groups: tuple[tuple[int, ...], ...], seps: bytes, cue: Cue,
            alone: Callable[[str], bool] | None = None) -> tuple[DigitId, DigitId]:
    """The two forms of an id written in digits whose checksum alone is weak: printed in
    its own `groups` (found with no cue unless something says it is another thing:
    `Printed`), and bare (`lengths`: after `cue`, as a bare run of digits is any number)."""
    return (DigitId(valid, (), groups, seps, Printed(cue, alone)),
            DigitId(valid, lengths, (), b"", cue))


# Aadhaar: a Verhoeff digit passes one random number in ten. Printed `2345 6789 0124`.
_AADHAAR_CUE = Cue(rb"aadhaa?r|aadhar|uidai|uid[ _-]?(?:no|number)",
                   (b"aadha", b"uidai", *joined(b"uid", b"no", b"num")))
in_aadhaar = national_id("in_aadhaar", "IN_AADHAAR", *printed(
    id_checks.in_aadhaar, (12,), ((4, 4, 4),), b" -", _AADHAAR_CUE))

# Steuer-IdNr: printed `86 095 742 719`; with slashes (a Steuernummer's mark) or bare, a cue.
_DE_CUE = Cue(rb"steuer[ _-]?id(?:nr)?|steuer[ _-]?identifikationsnummer|idnr"
              rb"|identifikationsnummer|steuerliche identifikationsnummer",
              (b"steuer", b"idnr", b"identifikation", *as_key(b"tin")), keys=rb"tin")
de_tax_id = national_id(
    "de_tax_id", "DE_TAX_ID", *printed(id_checks.de_tax_id, (11,), ((2, 3, 3, 3),), b" ", _DE_CUE),
    DigitId(id_checks.de_tax_id, (), ((2, 3, 3, 3),), b"/", _DE_CUE))


def _no_calendar_version(number: str) -> bool:
    """A dotted BSN does not start with a year and a month, as a calendar version or a
    dated reference does (`2024.10.123`)."""
    return not ("1900" <= number[:4] <= "2099" and "01" <= number[4:6] <= "12")


# BSN: printed `1234.56.782` (as on a Dutch passport); in groups of three or bare, a cue.
_BSN_CUE = Cue(rb"bsn|burger[ _-]?service[ _-]?nummer|sofi[ _-]?(?:nummer|nr)",
               (b"bsn", *joined(b"burger", b"service"), *joined(b"sofi", b"n")))
nl_bsn = national_id(
    "nl_bsn", "NL_BSN",
    *printed(id_checks.nl_bsn, (9,), ((4, 2, 3),), b".", _BSN_CUE, _no_calendar_version),
    DigitId(id_checks.nl_bsn, (), ((3, 3, 3),), b" .", _BSN_CUE))

# PESEL: 11 bare digits, its date and check digit passing about one such number in fifty.
_PESEL_CUE = Cue(rb"pesel", (b"pesel",))
pl_pesel = national_id("pl_pesel", "PL_PESEL", DigitId(
    id_checks.pl_pesel, (11,), (), b"", _PESEL_CUE))

# Swedish, Danish and Finnish numbers start with a date and are printed with a dash, as
# compact timestamps are (`240115-0930`): with no cue, a number that reads as one of
# this century's is none (`_no_timestamp`), and a CPR needs the modulus 11 of the numbers
# issued before 2007.
_SE_CUE = Cue(rb"person[ _-]?(?:nummer|nr)|pnr|samordningsnummer",
              (*joined(b"person", b"num", b"nr"), b"pnr", b"samordning"))
se_personnummer = national_id("se_personnummer", "SE_PERSONNUMMER", *printed(
    id_checks.se_personnummer, (10, 12), ((6, 4), (8, 4)), b"-+", _SE_CUE, _no_timestamp))


def _cpr_alone(number: str) -> bool:
    """A CPR with no cue: issued before 2007 (its modulus 11), and no timestamp."""
    return id_checks.dk_cpr_mod11(number) and _no_timestamp(number)


_CPR_CUE = Cue(rb"cpr(?:[ _-]?(?:nr|nummer|number|no))?|person[ _-]?nummer",
               (b"cpr", *joined(b"person", b"num")))
dk_cpr = national_id("dk_cpr", "DK_CPR", *printed(
    id_checks.dk_cpr, (10,), ((6, 4),), b"-", _CPR_CUE, _cpr_alone))

# SIN and TFN: printed `046 454 286` (or dashed), a Luhn or a mod-11 digit.
_SIN_CUE = Cue(rb"social[ _-]?insurance|assurance[ _-]sociale",
               (b"insurance", b"assurance", *as_key(b"sin", b"nas")), keys=rb"sin|nas")
ca_sin = national_id("ca_sin", "CA_SIN", *printed(
    id_checks.ca_sin, (9,), ((3, 3, 3),), b" -", _SIN_CUE))

_TFN_CUE = Cue(rb"tfn|tax[ _-]?file(?:[ _-]?(?:number|no))?", (b"tfn", *joined(b"tax", b"file")))
au_tfn = national_id("au_tfn", "AU_TFN", *printed(
    id_checks.au_tfn, (9,), ((3, 3, 3),), b" -", _TFN_CUE))

# Brazilian CPF: printed `000.000.000-00` (two check digits and that mix of separators)
# anywhere; 11 bare digits, or `000000000-00`, after a cue.
_CPF_CUE = Cue("cpf|cadastro de pessoas? f(?:í|i)sicas?".encode(), (b"cpf", b"cadastro"))
br_cpf = national_id(
    "br_cpf", "BR_CPF",
    Shaped(lambda code: code[11] == "-" and id_checks.br_cpf(digits(code)), b"000.000.000 00"),
    DigitId(id_checks.br_cpf, (11,), ((9, 2),), b"-", _CPF_CUE))

# Swiss AHV/AVS number: dotted `756.0000.0000.00` anywhere (the country prefix and an
# EAN-13 digit), spaced as printed; 13 bare digits after a cue, as 756 starts Swiss
# products' barcodes too.
_AHV_CUE = Cue(rb"ahv(?:n13|13)?|avs|sozialversicherungsnummer|assicurazione vecchiaia",
               (b"ahv", b"avs", b"sozialversicherung", b"vecchiaia"))
ch_ahv = national_id(
    "ch_ahv", "CH_AHV",
    Shaped(lambda code: id_checks.ch_ahv(code.replace(".", "")), b"000.0000.0000.00"),
    *printed(id_checks.ch_ahv, (13,), ((3, 4, 4, 2),), b" ", _AHV_CUE))

# French NIR: 15 digits, a mod-97 key of two; Corsican numbers carry 2A or 2B, spaced
# `1 85 05 2A 006 084 36` or not.
fr_nir = national_id(
    "fr_nir", "FR_NIR",
    DigitId(id_checks.fr_nir, (15,), ((1, 2, 2, 2, 3, 3, 2),), b" ", None),
    Shaped(lambda code: code.count(" ") in (0, 6) and id_checks.fr_nir(code.replace(" ", "")),
           b"0 00 00 0A 000 000 00", b"000000A00000000"),
    canonical=alnum_upper)

# --- ids with letters ------------------------------------------------------------------------


def _nino(code: str) -> bool:
    """Spaced with spaces only (a dash is a space in the shape)."""
    return code.count(" ") == len(code) - 9 and id_checks.uk_nino(code.replace(" ", ""))


# UK NINO: spaced (`AB 12 34 56 C`, `AB 123456 C`) anywhere; compact only with a cue, as
# part numbers and SKUs take its shape.
_NINO_CUE = Cue(rb"nino|national[ _-]?insurance|ni[ _-]?(?:no|num|number)",
                (b"insurance", *joined(b"ni", b"no", b"num")))
uk_nino = national_id("uk_nino", "UK_NINO", Shaped(_nino, b"AA 00 00 00 A", b"AA 000000 A"),
                      Shaped(_nino, b"AA000000A", cue=_NINO_CUE), canonical=alnum_upper)


def _nif(code: str) -> bool:
    """A dash before the letter, never a space; a DNI starts with a digit, an NIE with
    X, Y or Z."""
    return (code[-2] != " " and (code[0].isdigit() or code[0] in "XYZ")
            and id_checks.es_nif(code.replace("-", "")))


# Spanish DNI (8 digits and a letter) or NIE (X, Y, Z, 7 digits and a letter), the
# letter checking the number: anywhere, upper case, a dash before the letter or not.
es_nif = national_id("es_nif", "ES_NIF", Shaped(
    _nif, b"00000000A", b"00000000 A", b"A0000000A", b"A0000000 A"), canonical=alnum_upper)

# Italian codice fiscale: 16 upper-case letters and digits in a fixed pattern and a
# control letter. A digit replaced by a letter (omocodia) is read as that digit, except
# in the 7th place: a code with all seven replaced is not found.
# Omocodia replaces digits right to left: the shapes with 0 to 6 of them replaced.
_CF_REPLACED_FIRST = (14, 13, 12, 10, 9, 7)
_CF_SHAPE = b"AAAAAA00A00A000A"
it_fiscal_code = national_id("it_fiscal_code", "IT_FISCAL_CODE", Shaped(
    id_checks.it_fiscal_code, *(bytes(0x41 if i in _CF_REPLACED_FIRST[:n] else c
                                      for i, c in enumerate(_CF_SHAPE))
                                for n in range(7))), canonical=alnum_upper)

# Finnish HETU: a date, the century sign, an individual number and a check character mod
# 31. Written with a letter (the check character, or the sign of a birth since 2000) or
# with `+`, it is masked anywhere; in digits with a dash (`131052-3081`) unless it reads
# as a compact timestamp (`yymmdd-hhmm`), or after a cue.
_HETU_CUE = Cue("henkil(?:ö|o)tunnus|hetu|personbeteckning|sotu".encode(),
                (b"henkil", b"hetu", b"personbeteckning", b"sotu"))
fi_hetu = national_id(
    "fi_hetu", "FI_HETU",
    Shaped(id_checks.fi_hetu, b"000000 000A", b"000000+0000", b"000000+000A", b"000000A0000",
           b"000000A000A"),
    Shaped(id_checks.fi_hetu, b"000000 0000", cue=Printed(_HETU_CUE, _no_timestamp)),
    canonical=alnum_upper)

# --- more countries: Asia, the Americas, Africa, the Middle East, Oceania -------------------

# Mexican CURP: 18 letters and digits in a fixed pattern (a date, sex, a state's code, a
# check digit): upper case, anywhere.
mx_curp = national_id("mx_curp", "MX_CURP", Shaped(
    id_checks.mx_curp, b"AAAA000000AAAAAA00", b"AAAA000000AAAAAAA0"), canonical=alnum_upper)

# Japanese My Number: 12 digits and a mod-11 digit, which one random number in eleven
# passes (as do order numbers): printed `0000 0000 0000`, or after a cue.
_MY_NUMBER_CUE = Cue("マイナンバー|個人番号|my[ _-]?number|kojin[ _-]?bang(?:ou|o)".encode(),
                     ("マイナンバー".encode(), "個人番号".encode(), *joined(b"my", b"number"),
                      b"kojin"))
jp_my_number = national_id("jp_my_number", "JP_MY_NUMBER", *printed(
    id_checks.jp_my_number, (12,), ((4, 4, 4),), b" -", _MY_NUMBER_CUE))

# Korean RRN: `YYMMDD-SXXXXXC`, written with its dash, a date and a check digit, anywhere;
# 13 bare digits (an EAN-13's length) and numbers issued since October 2020 (random
# digits after the date and S: no check digit) after a cue.
_RRN_CUE = Cue("주민등록번호|주민번호|외국인등록번호|rrn|resident[ _-]?registration".encode(),
               ("주민".encode(), "외국인등록".encode(), b"rrn", *joined(b"resident", b"reg")))
kr_rrn = national_id(
    "kr_rrn", "KR_RRN",
    DigitId(id_checks.kr_rrn, (), ((6, 7),), b"-", None),
    DigitId(id_checks.kr_rrn_date, (13,), ((6, 7),), b"-", _RRN_CUE))

# Chinese resident identity card: 18 characters, a region whose first digit is 1-8, a
# birth date in full and a MOD 11-2 check character (X for 10): anywhere.
cn_resident_id = national_id(
    "cn_resident_id", "CN_RESIDENT_ID",
    DigitId(id_checks.cn_resident_id, (18,), (), b"", None),
    Shaped(id_checks.cn_resident_id, b"00000000000000000A"), canonical=alnum_upper)

# Singapore NRIC/FIN: a series letter, 7 digits and a check letter, upper case, anywhere.
sg_nric = national_id("sg_nric", "SG_NRIC_FIN", Shaped(id_checks.sg_nric, b"A0000000A"),
                      canonical=alnum_upper)

# South African identity number: 13 digits with a date and a Luhn digit, as an EAN-13
# barcode can have: printed `800101 5009 087`, or after a cue.
_ZA_CUE = Cue(rb"(?:rsa|sa|south[ _-]?african)[ _-]?id|id[ _-]?nommer|identiteitsnommer",
              (b"rsa", b"south", *joined(b"sa", b"id"), b"nommer"))
za_id = national_id("za_id", "ZA_ID", *printed(
    id_checks.za_id, (13,), ((6, 4, 3),), b" ", _ZA_CUE))

# Turkish T.C. Kimlik No: 11 digits and two check digits (one number in a hundred
# passes): a cue.
_KIMLIK_CUE = Cue("t\\.?c\\.?[ _-]?kimlik|kimlik(?:[ _-]?(?:no|numaras(?:\u0131|i)))?|tckn"
                  "|tc[ _-]?no|vatanda(?:ş|s)l(?:\u0131|i)k".encode(),
                  (b"kimlik", b"tckn", *joined(b"tc", b"no"), b"vatanda"))
tr_kimlik = national_id("tr_kimlik", "TR_KIMLIK", DigitId(
    id_checks.tr_kimlik, (11,), (), b"", _KIMLIK_CUE))

# Israeli Teudat Zehut: 9 digits and Luhn: a cue.
_ZEHUT_CUE = Cue(r'teudat[ _-]?zehut|(?:תעודת|מספר)[ _-]?זהות|ת\.ז\.?|ת"ז|israeli[ _-]?id'.encode(),
                 (b"teudat", "זהות".encode(), "ת.ז".encode(), 'ת"ז'.encode(), b"israeli"))
il_id = national_id("il_id", "IL_ID", DigitId(id_checks.il_id, (9,), (), b"", _ZEHUT_CUE))

# UK NHS number: 10 digits (spaced 3 3 4 as printed, a North American phone number's
# grouping: one such number in eleven passes) and a mod-11 digit: a cue.
_NHS_CUE = Cue(rb"nhs(?:[ _-]?(?:no|num|number))?|chi[ _-]?(?:no|number)",
               (b"nhs", *joined(b"chi", b"no", b"num")))
uk_nhs = national_id("uk_nhs", "UK_NHS", DigitId(
    id_checks.uk_nhs, (10,), ((3, 3, 4),), b" -", _NHS_CUE))

# Brazilian CNPJ: printed `00.000.000/0000-00` anywhere; 14 bare digits after a cue.
_CNPJ_CUE = Cue("cnpj|cadastro nacional (?:da|de) pessoas? jur(?:í|i)dicas?".encode(),
                (b"cnpj", b"cadastro"))
br_cnpj = national_id(
    "br_cnpj", "BR_CNPJ",
    Shaped(lambda code: code[15] == "-" and id_checks.br_cnpj(digits(code)),
           b"00.000.000/0000 00"),
    DigitId(id_checks.br_cnpj, (14,), (), b"", _CNPJ_CUE))

# Australian Medicare card number: 10 digits (11 with the person's place on the card), a
# check digit: printed `2123 45670 1`, or after a cue.
_MEDICARE_CUE = Cue(rb"medicare", (b"medicare",))
au_medicare = national_id("au_medicare", "AU_MEDICARE", *printed(
    id_checks.au_medicare, (10, 11), ((4, 5, 1), (4, 5, 1, 1)), b" ", _MEDICARE_CUE))

# Australian Business Number: 11 digits, mod 89 (one number in 89 passes): printed
# `51 824 753 556`, or after a cue.
_ABN_CUE = Cue(rb"abn|australian[ _-]?business[ _-]?(?:number|no)",
               (b"abn", *joined(b"australian", b"business")))
au_abn = national_id("au_abn", "AU_ABN", *printed(
    id_checks.au_abn, (11,), ((2, 3, 3, 3),), b" ", _ABN_CUE))

# Australian Company Number: 9 digits and a mod-10 digit, printed `004 085 616` as SINs
# and TFNs are: a cue always.
_ACN_CUE = Cue(rb"acn(?:[ _-]?(?:no|num|number))?|australian[ _-]?company[ _-]?(?:number|no)",
               (b"acn", *joined(b"australian", b"company")))
au_acn = national_id("au_acn", "AU_ACN", DigitId(
    id_checks.au_acn, (9,), ((3, 3, 3),), b" ", _ACN_CUE))

# Indian PAN: 5 letters, 4 digits, a letter, the 4th letter the holder's kind; no check
# letter anyone may compute, and part numbers take the shape: a cue.
_PAN_CUE = Cue(rb"pan(?:[ _-]?(?:no|num|number|card))?|permanent[ _-]?account[ _-]?(?:number|no)",
               (b"pan", *joined(b"permanent", b"account")))
in_pan = national_id("in_pan", "IN_PAN", Shaped(id_checks.in_pan, b"AAAAA0000A", cue=_PAN_CUE),
                     canonical=alnum_upper)

# Thai national id: 13 digits, the first 1-8, a mod-11 digit: printed `1-2345-67890-12-1`,
# or after a cue.
# The Thai words end "ประชาชน" (citizen: `เลขประจำตัวประชาชน`) or are "ปชช" (its
# abbreviation); three bytes a letter, read twice as far back as other cues.
_TNIN_CUE = Cue("thai[ _-]?(?:national[ _-]?)?id|tnin|ประชาชน|ปชช".encode(),
                (b"thai", b"tnin", "ประชาชน".encode(), "ปชช".encode()), width=96)
th_tnin = national_id("th_tnin", "TH_TNIN", *printed(
    id_checks.th_tnin, (13,), ((1, 4, 5, 2, 1),), b"- ", _TNIN_CUE))

# Partita IVA: 11 digits, a provincial office and a Luhn digit. With Italy's VAT prefix
# (`IT 00743110157`) as printed on invoices; bare, after a cue.
_IVA_CUE = Cue(rb"partita[ _-]?iva|p\.? ?iva|numero[ _-]?iva|vat(?:[ _-]?(?:number|no|id|reg))?",
               (b"iva", b"vat"))
it_vat = national_id(
    "it_vat", "IT_VAT_CODE",
    Shaped(lambda code: code.startswith("IT") and id_checks.it_vat(code[-11:]),
           b"AA00000000000", b"AA 00000000000", cue=Printed(_IVA_CUE)),
    DigitId(id_checks.it_vat, (11,), (), b"", _IVA_CUE))

# Singapore UEN: another entity's (`T08LL0001B`: the century's letter, the year, a kind
# of entity, its check letter) anywhere; a local company's (`197401143C`: the year of
# issue) as printed; a business's (8 digits and a letter, one such code in 26 passes)
# after a cue.
_UEN_CUE = Cue(rb"uen(?:[ _-]?(?:no|num|number))?|unique[ _-]?entity[ _-]?(?:number|no)|acra"
               rb"|(?:business|company)[ _-]?registration(?:[ _-]?(?:number|no))?",
               (b"uen", b"unique", b"acra", b"registration"))
sg_uen = national_id(
    "sg_uen", "SG_UEN", Shaped(id_checks.sg_uen, b"A00AA0000A"),
    Shaped(id_checks.sg_uen, b"000000000A", cue=Printed(_UEN_CUE)),
    Shaped(id_checks.sg_uen, b"00000000A", cue=_UEN_CUE), canonical=alnum_upper)

# --- ids with no check character: their strict format, after a cue -------------------------


def _shape_only(_code: str) -> bool:
    """A form whose shape is all its rule: no check character, so a cue does the rest."""
    return True


# Nigerian NIN: 11 digits, not one repeated; NIMC publishes no check digit.
_NIN_CUE = Cue(rb"nin(?:[ _-]?(?:no|num|number))?|nimc|nigerian?[ _-]?(?:national[ _-]?)?id",
               (b"nin", b"nimc", b"nigeria"))
ng_nin = national_id("ng_nin", "NG_NIN", DigitId(
    lambda number: len(set(number)) > 1, (11,), (), b"", _NIN_CUE))

# Passports: the cue names a passport, the shape the country: the US's 9 digits or a
# letter and 8 (since 2021), India's letter and 7 digits, Italy's 2 letters and 7 digits.
_PASSPORT_CUE = Cue(rb"passport(?:[ _-]?(?:no|num|number|nr))?|passaporto|passeport|pasaporte"
                    rb"|reisepass|paspoort|paszport",
                    (b"passport", b"passaporto", b"passeport", b"pasaporte", b"reisepass",
                     b"paspoort", b"paszport"), any_id=False)
us_passport = national_id(
    "us_passport", "US_PASSPORT", Shaped(_shape_only, b"A00000000", cue=_PASSPORT_CUE),
    DigitId(_shape_only, (9,), (), b"", _PASSPORT_CUE), canonical=alnum_upper)
in_passport = national_id("in_passport", "IN_PASSPORT", Shaped(
    _shape_only, b"A0000000", cue=_PASSPORT_CUE), canonical=alnum_upper)
it_passport = national_id("it_passport", "IT_PASSPORT", Shaped(
    _shape_only, b"AA0000000", cue=_PASSPORT_CUE), canonical=alnum_upper)

# Italian identity card: the electronic one's `CA00000AA` (3.0) or `0000000AA` (2.0), the
# paper one's `AA 0000000`.
_CIE_CUE = Cue("(?:carta|documento)[ _-]?(?:d'|d\u2019|di[ _-]?|d[ _-])?identit(?:a|à)"
               "|(?:numero[ _-]?)?cie".encode(), (b"identit", b"cie"))
it_identity_card = national_id("it_identity_card", "IT_IDENTITY_CARD", Shaped(
    _shape_only, b"AA00000AA", b"0000000AA", b"AA0000000", b"AA 0000000", cue=_CIE_CUE),
    canonical=alnum_upper)

# Indian voter id (EPIC): the constituency's 3 letters and 7 digits.
_EPIC_CUE = Cue(rb"voter(?:[ _-]?(?:id|card))?|epic(?:[ _-]?(?:no|number))?|electors?'? photo",
                (b"voter", b"epic", b"elector"))
in_voter = national_id("in_voter", "IN_VOTER", Shaped(
    _shape_only, b"AAA0000000", cue=_EPIC_CUE), canonical=alnum_upper)

# Driving licences: a US state's (AAMVA's formats: a letter or two and 4-14 digits, 5-13
# digits, and the few mixed ones), Italy's (`U1` and 7 letters or digits and a letter, or
# 2 letters, 7 digits and a letter).
_DRIVING = rb"driv(?:er'?s?|ing)[ _-]?licen[cs]e"
_DL_CUE = Cue(_DRIVING + rb"|licen[cs]e[ _-]?(?:no|num|number|#)|dl[ _-]?(?:no|num|number|#)"
              rb"|dln|lic[ _-]?(?:no|#)",
              (b"driv", *joined(b"license", b"no", b"num", b"#"),
               *joined(b"licence", b"no", b"num", b"#"), *joined(b"dl", b"no", b"num", b"#"),
               b"dln", *joined(b"lic", b"no", b"#")), any_id=False, placed=True)
us_driver_license = national_id("us_driver_license", "US_DRIVER_LICENSE", Matched(
    rb"[A-Z]{1,2}[0-9]{4,14}|[0-9]{5,13}|[0-9]{3}[A-Z]{2}[0-9]{4}|[0-9]{2}[A-Z]{3}[0-9]{5}"
    rb"|[A-Z]{2}[0-9]{6}[A-Z]|[0-9]{7,8}[A-Z]|[A-Z]{3}[0-9]{6}|[A-Z][0-9]{18}"
    rb"|WDL[A-Z0-9]{9}|[A-Z]{7}[0-9]{3}[A-Z0-9]{2}", _DL_CUE, 19), canonical=alnum_upper)
_PATENTE_CUE = Cue(rb"(?:numero[ _-]?)?patente(?:[ _-]?di[ _-]?guida)?"
                   rb"|licenza[ _-]?di[ _-]?guida|" + _DRIVING,
                   (b"patente", b"licenza", b"driv"), any_id=False, placed=True)
it_driver_license = national_id("it_driver_license", "IT_DRIVER_LICENSE", Matched(
    rb"U1[A-Z0-9]{7}[A-Z]|[A-Z]{2}[0-9]{7}[A-Z]", _PATENTE_CUE, 10), canonical=alnum_upper)

# US bank account numbers: 8-17 digits after an account's word.
_BANK_CUE = Cue(rb"(?:bank|checking|chequing|savings)[ _-]?(?:account|acct|a/c)"
                rb"|account[ _-]?(?:no|num|number|nr|#)|acct(?:[ _-]?(?:no|num|number|nr|#))?|a/c",
                (*joined(b"account", b"no", b"num", b"nr", b"#"), b"acct", b"a/c",
                 *(stem for kind in (b"bank", b"checking", b"chequing", b"savings")
                   for stem in joined(kind, b"acc"))), any_id=False, placed=True)
us_bank_number = national_id("us_bank_number", "US_BANK_NUMBER", Matched(
    rb"[0-9]{8,17}", _BANK_CUE, 17))

# Indian vehicle registration: a state's code, the district's number, a series of letters
# and 4 digits (`MH 12 AB 1234`, Delhi's `DL 3C AB 1234`), or the Bharat series
# (`22 BH 1234 AA`).
_IN_STATES = (rb"AN|AP|AR|AS|BR|CG|CH|DD|DL|DN|GA|GJ|HP|HR|JH|JK|KA|KL|LA|LD|MH|ML|MN|MP|MZ"
              rb"|NL|OD|OR|PB|PY|RJ|SK|TN|TR|TS|UK|UP|WB")
_VEHICLE_CUE = Cue(rb"vehicle(?:[ _-]?(?:no|num|number|reg|registration))?"
                   rb"|registration(?:[ _-]?(?:no|num|number))?|reg[ _-]?(?:no|num|number)|rto"
                   rb"|(?:number|licen[cs]e|registration)[ _-]?plate|plate[ _-]?(?:no|num|number)"
                   rb"|vahan",
                   (b"vehicle", b"registration", *joined(b"reg", b"no", b"num"), b"rto",
                    *(stem for word in (b"number", b"license", b"licence")
                      for stem in joined(word, b"plate")), *joined(b"plate", b"no", b"num"),
                    b"vahan"), any_id=False, placed=True)
in_vehicle_registration = national_id(
    "in_vehicle_registration", "IN_VEHICLE_REGISTRATION",
    Matched(rb"(?:%s)[ -]?[0-9]{1,2}[ -]?(?:[A-Z]{1,3}[ -]?){0,2}[0-9]{4}"
            rb"|[0-9]{2}[ -]?BH[ -]?[0-9]{4}[ -]?[A-HJ-NP-Z]{1,2}" % _IN_STATES, _VEHICLE_CUE, 18),
    canonical=alnum_upper)

DETECTORS: tuple[Detector, ...] = (
    us_ssn, uk_nino, in_aadhaar, de_tax_id, nl_bsn, es_nif, it_fiscal_code, fr_nir, pl_pesel,
    se_personnummer, dk_cpr, ca_sin, au_tfn, fi_hetu, br_cpf, ch_ahv, us_itin, mx_curp,
    jp_my_number, kr_rrn, cn_resident_id, sg_nric, za_id, tr_kimlik, il_id, uk_nhs, br_cnpj,
    au_medicare, au_abn, in_pan, au_acn, th_tnin, it_vat, sg_uen, ng_nin, us_passport,
    in_passport, it_passport, it_identity_card, in_voter, us_driver_license,
    it_driver_license, us_bank_number, in_vehicle_registration,
)
