"""The analyzer side of masking: detectors find spans of secrets and personal data.

Detectors never rewrite text (strategies.py does). They read a `Text`: the UTF-8 bytes
of a string plus its *shape*, the same bytes reclassified by one `bytes.translate` call
(every digit becomes `0`, every capital `A`, a dash a space). Formats of digits then
become literal strings (`000 00 0000` for an SSN), and `re` finds a literal prefix at
memchr speed, where a leading character class costs an attempt at every digit. So every
pattern here starts with a literal, on the raw bytes or on the shape, and the checks
(Luhn, mod-97, SSN rules, context words) run on the few candidates only. A text with
other scripts' digits, Unicode spaces or invisible characters is read as its ASCII fold
(shadow.py), and findings are mapped back to it.

Everything is compiled at import, once per process.
"""

from __future__ import annotations

import base64
import html
import ipaddress
import itertools
import re
import unicodedata
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

from extproc.masking import checks
from extproc.masking.prefilter import PASS, Hits
from extproc.masking.shadow import ASCII_DIGITS, fold

Found = Iterable[tuple[int, int]]

# Shape: digits -> "0", A-Z -> "A", a-z -> "a", "-" -> " "; every other byte stays itself.
_SHAPE = bytes(
    0x30 if 0x30 <= b <= 0x39 else 0x41 if 0x41 <= b <= 0x5A else 0x61 if 0x61 <= b <= 0x7A
    else 0x20 if b == 0x2D else b
    for b in range(256)
)


def table(chars: bytes) -> bytes:
    return bytes(1 if b in chars else 0 for b in range(256))


ALNUM = table(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
DIGIT = table(b"0123456789")
WORD = table(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
NOT_DIGIT = bytes(b for b in range(256) if not 0x30 <= b <= 0x39)
BASE64 = table(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/")
TOKEN = table(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-")

_DIGIT_RUN = re.compile(rb"000000000+")
# How far a value that words or a key name say is a credential (`Bearer …`,
# `access_token=…`) is followed and masked whole: what runs on further is a document.
# What decides it is read near its start, so a stream holds back only that much; a value
# still open at the end of what a stream holds is a finding to that end, held until it
# ends (key_rules.py).
LONGEST_VALUE = 64 * 1024
# A URL or a form carrying a value (`Text.carrier_start`): how far back its start is
# looked for; what starts a token (the last such run before a parameter's name); what
# the token holds before the name (after a key it may be the value of: `id=https://…`): a
# URL's start to a `?` or `&` (URLs carried in others too), or a form's earlier
# parameters (none for its first).
# The reach and the widest cue before it (96 bytes) stay within what a stream keeps of
# the text it released (stream.py's _CONTEXT, 512), so that a stream reads a carried
# value's context as the whole text does.
_CARRIER_REACH = 400
_TOKEN_ENDS = bytes(0 if b in b" \t\r\n\f\v\"'<>,;|\x00\x01(" else 1 for b in range(256))
# A URL's scheme and a query parameter's name, as patterns (generic_secrets.py's too).
URL_SCHEME = rb"[A-Za-z][A-Za-z0-9+.-]{0,15}://"
PARAM_NAME = rb"[A-Za-z0-9_.\-\[\]]{1,64}"
_CARRIER = re.compile(rb"(?:%s=)?(%s\S*[?&]|(?:%s=[^\s&]*&)*)"
                      % (PARAM_NAME, URL_SCHEME, PARAM_NAME))


class Text:
    """A text as detectors read it: UTF-8 bytes (`raw`: the fold of `source`, the text
    given, or that text itself), their shape, lowercase on demand.

    `pem_resume` is where a private key block, cut into pieces by a stream, carries on
    (see `private_key`), in `source`. `hits` is what the detectors look for first, found
    by one pass (prefilter.py). `memo` holds what a family of detectors reads once per
    text and shares among its detectors, keyed by module. `head` is the first line of
    what a stream's text continues (its body's first line, a table's header:
    national_ids.column_name), when the text no longer begins with it.
    """

    __slots__ = ("_folded", "_key_ids", "_lower", "_runs", "head", "hits", "memo",
                 "pem_resume", "raw", "shape", "source")

    def __init__(self, source: bytes, pem_resume: int | None = None,
                 head: bytes | None = None) -> None:
        self.source = source
        self._folded = folded = fold(source)
        self.raw = source if folded is None else folded.shadow
        self.head = head if head is None or (f := fold(head)) is None else f.shadow
        self.shape = self.raw.translate(_SHAPE)
        self.pem_resume = pem_resume if pem_resume is None else self.to_raw(pem_resume)
        self._lower: bytes | None = None
        self._runs: list[tuple[int, int]] | None = None
        self._key_ids: list[tuple[int, int]] | None = None  # AWS's, for two detectors
        self.hits: Hits = PASS.scan(self.raw, self.shape)  # every text is scanned
        self.memo: dict[str, object] = {}

    def to_source(self, pos: int) -> int:
        """Where position `pos` of `raw` is in `source`."""
        return pos if self._folded is None else self._folded.to_source(pos)

    def to_raw(self, pos: int) -> int:
        """Where position `pos` of `source` is in `raw`."""
        return pos if self._folded is None else self._folded.to_shadow(pos)

    @property
    def lower(self) -> bytes:
        if self._lower is None:
            self._lower = self.raw.lower()
        return self._lower

    @property
    def digit_runs(self) -> list[tuple[int, int]]:
        """Spans of the runs of 9 digits or more: cards, SSNs and phone numbers share them."""
        if self._runs is None:
            self._runs = [m.span() for m in _DIGIT_RUN.finditer(self.shape)]
        return self._runs

    def before(self, pos: int, width: int) -> bytes:
        """Up to `width` bytes before `pos`, lowercase, back to a NUL at most.

        JSON masking scans all of a document's values as one text, each written as
        `key SOH value NUL`: no pattern matches across either byte, and context stops at
        the NUL, so a value's key is its context and no other value is.
        """
        window = self.raw[max(0, pos - width) : pos].lower()
        return window[window.rfind(b"\x00") + 1 :]

    def carrier_start(self, pos: int) -> int:
        """Where the URL or form starts whose parameter's value starts at `pos`, else
        `pos`: a value a URL or a form carries stands in its carrier's place, where its
        context is (`?id=` says nothing; "social security number: https://…?id=…", or a
        CSV column of `v=…&submit=Send` cells, does)."""
        raw = self.raw
        if pos == 0 or raw[pos - 1] != 0x3D:  # `=`
            return pos
        name = pos - 1
        while name > 0 and WORD[raw[name - 1]] | (raw[name - 1] in b".-[]") and pos - name < 66:
            name -= 1
        lo = max(0, name - _CARRIER_REACH)
        start = lo + raw[lo:name].translate(_TOKEN_ENDS).rfind(b"\x00") + 1
        carrier = _CARRIER.fullmatch(raw, start, name) if name < pos - 1 else None
        return carrier.start(1) if carrier is not None else pos

    def at(self, table: bytes, pos: int) -> bool:
        """Whether the byte at `pos` is in `table` (False outside the text)."""
        return 0 <= pos < len(self.raw) and table[self.raw[pos]] == 1


@dataclass(frozen=True, eq=False, slots=True)
class Detector:
    """One kind of secret or personal datum.

    `max_len` bounds how many bytes from a finding's start decide it (its length, and
    what its pattern reads past it): a stream holds back that much. The two detectors
    whose findings can be kilobytes long (JWTs, private keys) have a `pending` pattern
    instead, matching a finding still in progress at the end of a text, so that a stream
    holds back only while one is open. `reveal` is how many trailing letters and digits
    the `partial` strategy may show: 4 for identifiers, 0 for secrets. `canonical` is the
    form that is hashed, so that one value written two ways hashes the same.

    `gate` is a necessary condition, a literal or two looked for with `in`: where it is
    False, `find` cannot find anything, and `scan` does not ask it. Most texts (a header,
    a reason, a short JSON document) hold nothing for most detectors, and a `find` costs
    its regular expressions' calls whatever the text's size (~50 µs for all sixteen);
    the gates cost ~2 µs. Most gates are a `HitGate`, which `scan` reads without calling
    it. `family` is the same for a family of detectors that share one
    reading of a text (national_ids.py's prefilter): it gives the names of the members
    that may find something, and `scan` asks it once per text, so that a member it rules
    out costs a set lookup and no gate call of its own. tests/masking/conftest.py runs
    every finder a gate or a family refuses and fails if it finds anything.
    """

    name: str
    entity: str
    find: Callable[[Text], Found]
    max_len: int
    reveal: int = 0
    pending: re.Pattern[bytes] | None = None
    canonical: Callable[[str], str] = str
    gate: Callable[[Text], bool] | None = None
    family: Callable[[Text], frozenset[str]] | None = None


@dataclass(frozen=True, slots=True)
class HitGate:
    """A gate that passes where the one pass found one of `ids`, or else where `more`
    says so. `scan` reads `ids` as a set lookup, with no call: a call per detector and
    text is most of what the gates cost."""

    ids: frozenset[int]
    more: Callable[[Text], bool] | None = None

    def __call__(self, t: Text) -> bool:
        return not self.ids.isdisjoint(t.hits) or (self.more is not None and self.more(t))


_NOT_DECIMAL = re.compile(r"[^0-9]", re.ASCII)


def digits(value: str) -> str:
    """The ASCII digits of a value, whatever script it is written in (an ASCII one, most
    of them, by deleting bytes: ~5x faster than the translation and the pattern)."""
    if value.isascii():
        return value.encode().translate(None, NOT_DIGIT).decode()
    return _NOT_DECIMAL.sub("", value.translate(ASCII_DIGITS))


def alnum_upper(value: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", value) if c.isalnum()).upper()


def bounded(t: Text, s: int, e: int, table: bytes = ALNUM) -> bool:
    """Neither the byte before `s` nor the one at `e` continues the finding."""
    return not t.at(table, s - 1) and not t.at(table, e)


def continues(t: Text, e: int, seps: bytes) -> bool:
    """The finding at `e` goes on as another number: a separator then a digit."""
    return e < len(t.raw) and t.raw[e] in seps and t.at(DIGIT, e + 1)


def extends_back(t: Text, s: int, seps: bytes) -> bool:
    return s > 1 and t.raw[s - 1] in seps and t.at(DIGIT, s - 2)


def matches(
    pattern: re.Pattern[bytes],
    check: Callable[[Text, int, int], tuple[int, int] | None],
    *,
    shape: bool = False,
    group: int = 0,
) -> Callable[[Text], Found]:
    """A find function: every match of `pattern` that `check` accepts (and may move)."""

    def find(t: Text) -> list[tuple[int, int]]:
        view = t.shape if shape else t.raw
        return [span for m in pattern.finditer(view) if (span := check(t, *m.span(group)))]

    return find


def runs(
    shortest: int, longest: int, check: Callable[[Text, int, int], tuple[int, int] | None]
) -> Callable[[Text], Found]:
    """A find function: every run of `shortest` to `longest` digits that `check` accepts."""

    def find(t: Text) -> list[tuple[int, int]]:
        return [span for s, e in t.digit_runs
                if shortest <= e - s <= longest and (span := check(t, s, e))]

    return find


def both(*finds: Callable[[Text], Found]) -> Callable[[Text], Found]:
    return lambda t: [span for find in finds for span in find(t)]


# Every byte but a-z as a space: what splits lowercase text into its words.
_NOT_AZ_SPACED = bytes(b if 0x61 <= b <= 0x7A else 0x20 for b in range(256))


def context(words: Iterable[bytes], width: int) -> Callable[[Text, int], bool]:
    """Whether one of `words` (lowercase a-z), or its plural, stands as a word (between
    bytes other than a-z) within `width` bytes before a finding: a set lookup of the
    window's words, where a regular expression of the alternatives tries each byte."""
    either = frozenset(w + plural for w in words for plural in (b"", b"s"))
    return lambda t, s: not either.isdisjoint(t.before(s, width).translate(_NOT_AZ_SPACED)
                                              .split())


# Where a URL's authority (`scheme://user@host:port`) ends: the path, query or fragment
# starts, or the URL does.
_AUTHORITY_END = re.compile(rb"[\s\"'<>\x00\x01/?#]")
_AUTHORITY_REACH = 256


def in_authority(t: Text, s: int) -> bool:
    """Whether `s` is inside a URL's authority: its host (or user) is structure a link
    needs to work, not personal data. What follows the authority is read as any text."""
    scheme = t.raw.rfind(b"://", max(0, s - _AUTHORITY_REACH), s)
    return (scheme != -1 and t.at(ALNUM, scheme - 1)
            and _AUTHORITY_END.search(t.raw, scheme + 3, s) is None)


# Rare marks some detectors look for before anything else (an address spelled out, in any
# case), and the literals of other detectors' gates: found by
# the one pass (prefilter.py), where `in` would cost a pass over the text each.
_SPELLED_EMAIL = PASS.add(rb"[(\[{<][ \t]*(?:at|@)[ \t]*[)\]}>]|%40|&#(?:0*64|x0*40);"
                          rb"|[ \t]dot[ \t]|[(\[{<][ \t]*dot[ \t]*[)\]}>]|%2e| @[ \t]",
                          caseless=True, first=True)
_GROUP_OF_4 = PASS.literal(b"0000", shape=True, first=True)  # cards
_DIGIT_DOT = PASS.literal(b"0.", shape=True, first=True)  # IPv4
_JWT_HEADER = PASS.literal(b"eyJ", first=True)
_SCHEME = PASS.literal(b"://", first=True)  # connection strings


# --- payment cards ---------------------------------------------------------------------

# Contiguous 12-19 digits, or groups: 4-4-4(-1..4)(-1..4) and Amex/Diners 4-6-4/5,
# separated by spaces, dashes, dots, slashes, underscores or tabs, or by a run of up to
# three of them (`4111 - 1111`, double spaces). A comma next to one is a delimiter (CSV),
# never a thousands separator: a thousands group has exactly 3 digits, and no card or
# group does. A number written with a zero fraction (`….0`) or an exponent
# (`4.111111111111111e15`: a float printed) is read as its integer. Letters glued to
# either end (`card4111…`, `…1111x`) do not hide a card; digits do (see `_glued`), and
# so do digits a dash joins to a run (`ansible-tmp-…-3151-378282246310005`: a name a tool
# made up, which its client reads back).
_CARD_SEP = rb"[ \t./_]{1,3}"  # on the shape, where a dash is a space
_CARD_GROUPS = re.compile(
    rb"0000%s(?:0000%s0000(?:%s0{1,4}){0,2}|000000%s0{4,5})" % ((_CARD_SEP,) * 4))
_CARD_SEPS = b" -./"
_SEP_RUN_BACK = re.compile(rb"[0-9][ \t./_-]{1,3}\Z")
_GROUP_AFTER = re.compile(rb"[ \t./_-]{1,3}[0-9]{4}")
_ZERO_FRACTION = re.compile(rb"\.0+(?![0-9])")
_EXPONENT = re.compile(rb"[eE]\+?[0-9]{1,2}")  # after a run of digits: `d.ddd…e15`
_DIGITS = re.compile(rb"[0-9]+")
_LETTER = table(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def _word_edge(t: Text, pos: int, step: int) -> int:
    """Past the letters glued at `pos` (going back from `pos - 1` when `step` is -1)."""
    raw, i = t.raw, pos if step > 0 else pos - 1
    while 0 <= i < len(raw) and _LETTER[raw[i]]:
        i += step
    return i


def _glued(t: Text, s: int, e: int) -> bool:
    """Whether a number at `s:e` stands on its own: nothing but letters glued to it, up
    to a word's edge. A word of letters around it (`card4111…`, `cc…exp`) is a label; a
    word that also holds other digits (`c0ffee4111…`, UPS's `1Z…`, `0x…`) is an id."""
    return not t.at(DIGIT, _word_edge(t, s, -1)) and not t.at(DIGIT, _word_edge(t, e, 1))


def _card_number(digits: str) -> bool:
    return checks.card_issuer_plausible(digits) and checks.luhn(digits)


def _card_run(t: Text, s: int, e: int) -> tuple[int, int] | None:
    # Digits going on past a "." make a decimal number, not a card, unless all zeros.
    if extends_back(t, s, b".") and (exponent := _EXPONENT.match(t.raw, e)) is not None:
        return _card_exponent(t, s - 2, exponent.end())
    if not _glued(t, s, e) or extends_back(t, s, b".-") or continues(t, e, b"-"):
        return None
    end = e
    if continues(t, e, b"."):
        if (fraction := _ZERO_FRACTION.match(t.raw, e)) is None:
            return None
        end = fraction.end()
    if not _card_number(t.raw[s:e].decode()):
        return None
    return s, end


def _card_exponent(t: Text, s: int, e: int) -> tuple[int, int] | None:
    """A float in exponent notation (`d.ddd…e15`) whose value is a whole card number."""
    if t.at(WORD, s - 1) or extends_back(t, s, _CARD_SEPS) or t.at(WORD, e):
        return None
    mantissa, _, exponent = t.raw[s:e].lower().partition(b"e")
    whole, _, fraction = mantissa.partition(b".")
    shift = int(exponent) - len(fraction)
    if shift < 0 and fraction[shift:].strip(b"0"):
        return None  # a fraction remains: not an integer
    digits = (whole + fraction + b"0" * shift) if shift >= 0 else (whole + fraction[:shift])
    return (s, e) if _card_number(digits.decode()) else None


def _card_groups(t: Text, s: int, e: int) -> tuple[int, int] | None:
    """Grouped digits; trailing groups that are not part of the card (an expiry) fall off.

    Groups apart by one space, dash, dot or slash are how cards are printed. Other
    separators (tabs, underscores, runs, a mix) are also how a table or a list of numbers
    is laid out, so there the card must be 15 digits or more, and no 4-digit group may
    follow it."""
    if t.at(DIGIT, _word_edge(t, s, -1)) or _SEP_RUN_BACK.search(t.raw, max(0, s - 4), s):
        return None
    groups = [m.span() for m in _DIGITS.finditer(t.raw, s, e)]
    seps = {t.raw[a[1] : b[0]] for a, b in itertools.pairwise(groups)}
    printed = len(seps) == 1 and len(sep := next(iter(seps))) == 1 and sep in _CARD_SEPS
    for n in range(len(groups), 2, -1):
        end = groups[n - 1][1]
        number = b"".join(t.raw[a:b] for a, b in groups[:n])
        if len(number) < 13 or not _card_number(number.decode()):
            continue  # a 12-digit card (Maestro) is printed whole, not as 4-4-4
        if not printed and (len(number) < 15 or _GROUP_AFTER.match(t.raw, end)):
            return None
        return None if t.at(DIGIT, _word_edge(t, end, 1)) else (s, end)
    return None


credit_card = Detector(
    "credit_card", "CREDIT_CARD",
    both(runs(12, 19, _card_run), matches(_CARD_GROUPS, _card_groups, shape=True)),
    max_len=26, reveal=4, canonical=digits,
    gate=HitGate(frozenset({_GROUP_OF_4})),  # 12 digits in a run, or a group of 4
)

# --- IBAN -------------------------------------------------------------------------------

# In upper or lower case (banks and their APIs take both), single spaces anywhere.
_IBAN = re.compile(rb"AA00(?: ?[A0]){11,32}")
_IBAN_LOWER = re.compile(rb"aa00(?: ?[a0]){11,32}")
_IBAN_COUNTRIES = frozenset(c.encode() for code in checks.IBAN_LENGTHS
                            for c in (code, code.lower()))


# Per IBAN length: the country's number of letters and digits, single spaces between.
_IBAN_EXACT = {
    n: re.compile(rb"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){%d}" % (n - 4), re.IGNORECASE)
    for n in set(checks.IBAN_LENGTHS.values())
}


def _iban(t: Text, s: int, _e: int) -> tuple[int, int] | None:
    """Cut the candidate at its country's length, then check mod-97."""
    if t.raw[s : s + 2] not in _IBAN_COUNTRIES or t.at(ALNUM, s - 1):
        return None
    length = checks.IBAN_LENGTHS[t.raw[s : s + 2].upper().decode()]
    m = _IBAN_EXACT[length].match(t.raw, s)
    if m is None or t.at(ALNUM, m.end()):
        return None
    return m.span() if checks.iban_valid(m[0].replace(b" ", b"").upper().decode()) else None


# Where a candidate starts, each place found by the one pass (prefilter.py): `re` looking
# for `aa00` stops at every lower-case letter of the shape, `bytes.find` at most (~2 µs on
# 2 KB of prose); hex ids (UUIDs) are full of `aa00`.
_IBAN_UPPER_START, _IBAN_LOWER_START = (PASS.literal(start, shape=True)
                                        for start in (b"AA00", b"aa00"))


def _iban_upper(t: Text) -> Iterator[tuple[int, int]]:
    """Upper-case candidates, read as `re.finditer` reads `_IBAN`: from each start, past
    the last match."""
    shape, last = t.shape, 0
    for end in t.hits.get(_IBAN_UPPER_START, ()):
        if end - 4 >= last and (m := _IBAN.match(shape, end - 4)) is not None:
            last = m.end()
            if span := _iban(t, *m.span()):
                yield span


def _iban_lower(t: Text) -> Iterator[tuple[int, int]]:
    """Lower-case candidates, a country first."""
    shape, raw, last = t.shape, t.raw, 0
    for end in t.hits.get(_IBAN_LOWER_START, ()):
        pos = end - 4
        if (pos >= last and raw[pos : pos + 2] in _IBAN_COUNTRIES
                and (m := _IBAN_LOWER.match(shape, pos)) and (span := _iban(t, *m.span()))):
            yield span
            last = span[1]


iban = Detector("iban", "IBAN_CODE", both(_iban_upper, _iban_lower), max_len=70, reveal=4,
                canonical=alnum_upper,
                gate=HitGate(frozenset({_IBAN_UPPER_START, _IBAN_LOWER_START})))

# --- e-mail -----------------------------------------------------------------------------

# Found from the "@": the domain forward by pattern, the local part backward by pattern.
# Both may hold other scripts' letters (an internationalised address: `jürgen@müller.de`,
# `用户@例子.中国`), read as any non-ASCII byte and then cut at the first character
# that is no letter or digit (`。`, a CJK full stop, ends a sentence, not a domain). An
# ASCII top-level domain ends where another script begins: Korean and Japanese glue
# their particles to the word before (`iboram@example.net입니다`). A
# quoted local part (`"john doe"@example.com`, its quotes escaped in JSON) is read whole.
_EMAIL_DOMAIN = re.compile(
    rb"@(?:[A-Za-z0-9\x80-\xff](?:[A-Za-z0-9\x80-\xff-]{0,61}[A-Za-z0-9\x80-\xff])?\.){1,4}"
    rb"(?:[A-Za-z]{2,24}(?![A-Za-z0-9-])|[\x80-\xff]{4,64}(?![A-Za-z0-9\x80-\xff-]))"
    rb"(?!\.[A-Za-z0-9\x80-\xff])"
)
# What is left of a non-ASCII domain once cut: still two labels or more, a top-level one
# of letters.
_EMAIL_IDN = re.compile(rb"@(?:[^.@]+\.){1,4}(?:[A-Za-z]{2,24}|[\x80-\xff]{4,64})")
_EMAIL_LOCAL_REVERSED = re.compile(rb"[A-Za-z0-9._%+\x80-\xff-]{1,64}")
_EMAIL_QUOTED_REVERSED = re.compile(rb'"\\?[^"\\\r\n\x00\x01]{1,62}"\\?')
_EMAIL_LOCAL_REACH = 66  # how far back from the "@" a local part is read


def _letters(part: bytes, back: bool) -> int:
    """How many bytes of `part` (from its end when `back`) are ASCII, letters or digits,
    up to the first other character."""
    chars = part.decode("utf-8", "ignore")
    n = 0
    for c in reversed(chars) if back else chars:
        if not (c.isascii() or c.isalnum()):
            break
        n += len(c.encode())
    return n


def _email_at(t: Text) -> Iterator[tuple[int, int]]:
    """Addresses written with an "@". An ASCII part is all letters and digits to
    `_letters` (and an ASCII domain that `_EMAIL_DOMAIN` matched is one `_EMAIL_IDN`
    matches), so only a part with other bytes is cut: most texts with an accent
    somewhere hold ASCII addresses."""
    raw = t.raw
    foreign = not raw.isascii()
    for m in _EMAIL_DOMAIN.finditer(raw):
        at, end = m.span()
        if foreign and not raw[at:end].isascii():
            end = at + 1 + _letters(raw[at + 1 : end], back=False)
            if _EMAIL_IDN.fullmatch(raw, at, end) is None:
                continue
        before = raw[max(0, at - _EMAIL_LOCAL_REACH) : at][::-1]
        if (local := _EMAIL_LOCAL_REVERSED.match(before)) is not None:
            s = at - local.end()
            if foreign and not raw[s:at].isascii():
                s = at - _letters(raw[s:at], back=True)
            while s < at and raw[s] == 0x2E:  # a local part does not start with a dot
                s += 1
        elif (quoted := _EMAIL_QUOTED_REVERSED.match(before)) is not None:
            s = at - quoted.end()
        else:
            continue
        if s < at and not t.at(ALNUM, s - 1) and not in_authority(t, s):
            yield s, end  # (a URL's user and host, scheme://user@host, are no address)


# An address spelled to slip past a pattern: the "@" as `(at)`, `[at]`, `{at}`, `<at>`,
# ` at `, ` @ `, `%40` (URL-encoded) or `&#64;` (an HTML entity), the dots as `(dot)`,
# ` dot `, `%2e` or `.`, in any case. ` at ` is a word of prose ("look at example.com"),
# so there the dots must be spelled too: `john at example dot com`.
_OPEN, _CLOSE = rb"[ \t]*[(\[{<][ \t]*", rb"[ \t]*[)\]}>][ \t]*"
# Groups: 1 an "@" between spaces, 2 ` at `, 3 an "@" alone (its dots are spelled).
_SPELLED_AT = re.compile(
    rb"[(\[{<][ \t]*(?:at|@)%s|%%40|&#(?:0*64|x0*40);| (?:(@)|(at))[ \t]+|(@)" % _CLOSE)
_SPELLED_DOT = rb"%sdot%s|[ \t]+dot[ \t]+|%%2e" % (_OPEN, _CLOSE)
_LABEL = rb"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# Keyed by whether the dots must be spelled.
_SPELLED_DOMAIN = {
    spelled: re.compile(rb"[ \t]*(?:%s(?:%s)){1,4}[a-z]{2,24}(?![a-z0-9-]|\.[a-z0-9])"
                        % (_LABEL, _SPELLED_DOT if spelled else rb"\.|" + _SPELLED_DOT))
    for spelled in (False, True)
}
_SPELLED_LOCAL_REVERSED = re.compile(
    rb"[ \t]*[a-z0-9_%%+-]{1,64}(?:(?:\.|%stod%s|[ \t]+tod[ \t]+)[a-z0-9_%%+-]{1,64}){0,4}"
    % (_CLOSE, _OPEN))
_BLANK = table(b" \t")


def _email_spelled(t: Text) -> Iterator[tuple[int, int]]:
    """Addresses written with the "@" or the dots spelled out (see `_SPELLED_AT`)."""
    if _SPELLED_EMAIL not in t.hits:
        return
    lower = t.lower
    for m in _SPELLED_AT.finditer(lower):
        at = m.start()
        if m.start(3) != -1 and t.at(_BLANK, at - 1):
            continue  # `ping @john.doe`: a handle, not an address
        domain = _SPELLED_DOMAIN[m.start(2) != -1].match(lower, m.end())
        local = _SPELLED_LOCAL_REVERSED.match(lower[max(0, at - 256) : at][::-1])
        if domain is None or local is None:
            continue
        s = at - local.end()
        if not t.at(ALNUM, s - 1) and not in_authority(t, s):
            yield s, domain.end()


# An address's spelled "@" and dots, in a finding already decoded and in lower case.
_CANONICAL_AT = re.compile(r"\s*[(\[{<]\s*(?:at|@)\s*[)\]}>]\s*|\s+(?:at|@)\s+")
_CANONICAL_DOT = re.compile(r"\s*[(\[{<]\s*dot\s*[)\]}>]\s*|\s+dot\s+")


def _email_canonical(value: str) -> str:
    """An address however it was spelled (`Bob%40Example.com`, `bob (at) example dot
    com`): what the `hash` strategy hashes and the flow fingerprints."""
    value = value.lower()
    if "%" in value or "&" in value:
        value = html.unescape(unquote(value))
    if "@" in value and value.isascii() and " " not in value and "\t" not in value \
            and "(" not in value and "[" not in value and "{" not in value and "<" not in value:
        return value
    return _CANONICAL_DOT.sub(".", _CANONICAL_AT.sub("@", value, count=1))


email = Detector(
    "email", "EMAIL_ADDRESS", both(_email_at, _email_spelled), max_len=420, reveal=4,
    canonical=_email_canonical, gate=HitGate(frozenset({_SPELLED_EMAIL}), lambda t: b"@" in t.raw),
)

# --- IP addresses -----------------------------------------------------------------------

_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4_SHAPE = re.compile(rb"0\.0{1,3}\.0{1,3}\.0")
# Not followed by more parts: a fifth number, or a name's (`foo-1.2.3.4.tar.gz`).
_IPV4 = re.compile(_OCTET + rb"(?:\." + _OCTET + rb"){3}(?![0-9]|\.[0-9A-Za-z])")
# A dotted quad right after a version word or a product name ("Chrome/120.0.0.1") is a
# version, not an address; so is one a package manager pins (`pkg==1.2.3.4`, `>=`, `~=`,
# `pkg@1.2.3.4`), one after a package's name and a dash (`foo-1.2.3.4`), or one quoted
# as an argument of a version word (`AssemblyVersion("1.0.0.0")`). Anything else
# shaped and ranged like an address is one. A name that is itself after a "/" is a
# path's segment (`/hosts/10.1.2.3`), not a product.
_VERSION_BEFORE = re.compile(
    rb"(?:(?:version|(?<![a-z])(?:ver\.?|release|build|firmware|fw|rev))[ :=(\"'\[]*"
    rb"|[=<>~!^]=|[a-z0-9]@|[a-z]-)\Z")
_PRODUCT_BEFORE = re.compile(rb"(?<![/A-Za-z0-9._-])[A-Za-z0-9._-]{1,64}/\Z")


def _ipv4(t: Text, s: int, _e: int) -> tuple[int, int] | None:
    """The shape match starts at the first octet's last digit: step back to its first."""
    for _ in range(2):
        if t.at(DIGIT, s - 1):
            s -= 1
    if t.at(WORD, s - 1) or (s > 0 and t.raw[s - 1] == 0x2E):
        return None
    if s > 1 and t.raw[s - 1] == 0x2F and _PRODUCT_BEFORE.search(t.raw, max(0, s - 66), s):
        return None
    m = _IPV4.match(t.raw, s)
    if m is None or t.at(WORD, m.end()) or _VERSION_BEFORE.search(t.before(s, 16)):
        return None
    if m[0] == b"0.0.0.0":  # "any address" (`listening on 0.0.0.0:80`): no host
        return None
    return None if in_authority(t, s) else m.span()


_IPV6_GATE = re.compile(rb":(?::|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:)")
_IPV6_BACK_REVERSED = re.compile(rb"[0-9A-Fa-f:]{0,40}")
_IPV6_FORWARD = re.compile(rb"[0-9A-Fa-f:.]{0,45}")
# One group and `::` alone: all zeros but the first, written only as a prefix (`2001::/16`).
_CAST = re.compile(r"[0-9A-Fa-f]{1,4}::")


def _ipv6(t: Text) -> Iterator[tuple[int, int]]:
    last_end = -1
    for g in _IPV6_GATE.finditer(t.raw):
        if g.start() < last_end:
            continue
        back = _IPV6_BACK_REVERSED.match(t.raw[max(0, g.start() - 40) : g.start()][::-1])
        forward = _IPV6_FORWARD.match(t.raw, g.start())
        if back is None or forward is None:  # never: both match the empty string
            continue
        s, e = g.start() - back.end(), forward.end()
        while e > s and t.raw[e - 1] == 0x2E:  # a full stop after an address
            e -= 1
        last_end = e
        candidate = t.raw[s:e].decode()
        if t.at(WORD, s - 1) or t.at(WORD, e) or not any(c.isdigit() for c in candidate):
            continue
        if in_authority(t, s):  # http://[fe80::1]:8080/
            continue
        if _CAST.fullmatch(candidate) and not t.raw.startswith(b"/", e):
            continue  # SQL's cast of a number or a parameter, `$1::"char"`: no address
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield s, e


ip_address = Detector("ip_address", "IP_ADDRESS",
                      both(matches(_IPV4_SHAPE, _ipv4, shape=True), _ipv6),
                      max_len=90, reveal=4,
                      gate=HitGate(frozenset({_DIGIT_DOT}), lambda t: b":" in t.raw))

# --- JWT --------------------------------------------------------------------------------

# A JWS (header.payload.signature, the payload empty when detached) or a JWE (five
# parts: header.key.iv.ciphertext.tag), found from its header: base64url of a JSON
# object, `{"…` (`eyJ`). It is found glued to what precedes it (`Bearer` without a
# space, `tokeneyJ…`): the header's JSON naming `alg` (checks.jwt_header) tells a token,
# not a word's edge.
_JWT_PART = 8192
_JWT = re.compile(
    rb"eyJ[A-Za-z0-9_-]{5,%d}(?:\.[A-Za-z0-9_-]{0,%d}){2}(?:(?:\.[A-Za-z0-9_-]{0,%d}){2})?"
    rb"(?![A-Za-z0-9_-])" % ((_JWT_PART,) * 3)
)


def _jwt(t: Text) -> Iterator[tuple[int, int]]:
    """Five parts are a JWE only if the header names its `enc`; else the token is its
    first three. A candidate whose header is not a JWT's may hold one further on."""
    raw, pos = t.raw, 0
    while (m := _JWT.search(raw, pos)) is not None:
        s, e = m.span()
        header = checks.jwt_header(raw[s : raw.index(b".", s)])
        if header is None:  # not a token; one may start inside (`eyJ…` glued by a dot)
            pos = s + 1
            continue
        if m[0].count(b".") == 4 and "enc" not in header:
            e = s + len(b".".join(m[0].split(b".", 3)[:3]))
        yield s, e
        pos = e


jwt = Detector(
    "jwt", "JWT", _jwt, max_len=5 * _JWT_PART + 8, gate=HitGate(frozenset({_JWT_HEADER})),
    pending=re.compile(rb"eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,4}\Z"),
)

# --- PEM private keys ---------------------------------------------------------------------

# From the BEGIN line to the END line, in any of the spellings keys are written in: PEM
# (`-----BEGIN RSA PRIVATE KEY-----`, EC, DSA, OPENSSH, ENCRYPTED, PKCS#8, a PGP PRIVATE
# KEY BLOCK), an SSH2 (RFC 4716) encrypted key, a PuTTY key file (its `Private-MAC`
# line ends it), and a PEM file encoded as base64 once more (`LS0tLS1CRUdJTi…` is
# `-----BEGIN`: a Kubernetes secret's data, an environment variable), which is masked
# whole. Between the two lines anything printable may come: line breaks real or escaped
# (`\n` in JSON, `\\n` twice escaped, CRLF, `<br>`), indentation (YAML), quotes of a
# string split over lines, headers (`Proc-Type`, `DEK-Info`, a PGP `Comment:` with an
# address in it). A block with no END line within PEM_MAX bytes (truncated, or longer
# than any real key: RSA-16384 is ~12.7 KB) is masked through its last line that looks
# like a key's (see `_pem_end`), in pieces of at most PEM_MAX bytes, so that no piece of
# it passes in clear and a stream never holds back more than PEM_MAX.
PEM_MAX = 16 * 1024
_PEM_LABEL = rb"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?"
_PEM_START = (rb"-----BEGIN %s-----|---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----"
              rb"|PuTTY-User-Key-File-[0-9]: " % _PEM_LABEL)
_PEM_END = (rb"-----END %s-----|---- END SSH2 ENCRYPTED PRIVATE KEY ----"
            rb"|Private-MAC: [0-9A-Fa-f]{1,128}" % _PEM_LABEL)
# Printable ASCII and line breaks, up to another block's start.
_PEM_BODY = rb"(?:[\t\n\r !-,.-~]|-(?!----BEGIN ))"
_PEM = re.compile(rb"(?:%s)(?:%s{0,%d}?(?:%s)|%s{0,%d})"
                  % (_PEM_START, _PEM_BODY, PEM_MAX, _PEM_END, _PEM_BODY, PEM_MAX))
_PEM_STARTS = re.compile(_PEM_START)
_PEM_PIECE = re.compile(rb"%s{1,%d}?(?:%s)|%s{1,%d}"
                        % (_PEM_BODY, PEM_MAX, _PEM_END, _PEM_BODY, PEM_MAX))
_PEM_ENDS = re.compile(rb"(?:%s)\Z" % _PEM_END)
_PEM_ENDED = re.compile(_PEM_END)
_B64_LINES = rb"(?:[A-Za-z0-9+/=]|\r?\n|\\r?\\n)"
_PEM_BASE64 = re.compile(rb"LS0tLS1CRUdJTi%s{0,%d}" % (_B64_LINES, PEM_MAX - 14))
_PEM_LABEL_START = re.compile(rb"-----BEGIN %s" % _PEM_LABEL)
# Where a line ends, and what a line of a key is: base64, or a header.
_LINE_BREAK = re.compile(rb"\r\n|\n|\r|(?:\\{1,2}r)?\\{1,2}n|<br\s*/?>")
_KEY_LINE = re.compile(rb"[A-Za-z0-9+/=]+|[A-Za-z][A-Za-z0-9-]{0,40}: .*", re.DOTALL)
_KEY_WORD = re.compile(rb"[A-Za-z0-9+/=]{12,}")


def pem_starts_at(raw: bytes, pos: int) -> bool:
    """Whether a key block (not a piece of one) starts at `pos`: a stream resumes inside
    a block only after a piece."""
    return _PEM_STARTS.match(raw, pos) is not None or raw.startswith(b"LS0tLS1CRUdJTi", pos)


def _pem_end(t: Text, s: int, e: int) -> int:
    """Where a block without its END line stops: after its last line of base64 or of a
    header, or its last long base64 word, so that prose after a truncated key stays."""
    head = _PEM_STARTS.match(t.raw, s)
    floor = head.end() if head is not None else s
    line_end = e
    for brk in reversed([*_LINE_BREAK.finditer(t.raw, floor, e), None]):
        line_start = brk.end() if brk is not None else floor
        line = t.raw[line_start:line_end]
        stripped = line.strip(b" \t\"',;+")
        if stripped and _KEY_LINE.fullmatch(stripped):
            return line_start + line.rindex(stripped[-1:]) + 1
        words = list(_KEY_WORD.finditer(line))
        if words:
            return line_start + words[-1].end()
        if brk is not None:
            line_end = brk.start()
    return floor


def _pem_pieces(t: Text, s: int, e: int) -> Iterator[tuple[int, int]]:
    """A capped piece is followed by the next one for as long as the body goes on; the
    last one of a block without its END line stops at `_pem_end`."""
    while True:
        ended = _PEM_ENDS.search(t.raw, s, e) is not None
        if not ended and e - s < PEM_MAX:
            e = _pem_end(t, s, e)
        if e > s:
            yield s, e
        if ended or e - s < PEM_MAX or (m := _PEM_PIECE.match(t.raw, e)) is None:
            return
        s, e = m.span()


# Where a key block's first line can start: each spelling's place, found by the one pass
# (prefilter.py) with how far before its end the block starts. `_PEM` starts with an
# alternation, which `re` tries at every byte (~4 ms on 750 KB); tried at these places
# only, in order and past the last block, it finds what `finditer` finds.
_PEM_OPENINGS = tuple((PASS.literal(opening), len(opening)) for opening in (
    b"-----BEGIN ", b"---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----", b"PuTTY-User-Key-File-"))
_PEM_ENCODED = PASS.literal(b"LS0tLS1CRUdJTi", first=True)
_KEY_BLOCK_IDS = frozenset({_PEM_ENCODED, *(i for i, _ in _PEM_OPENINGS)})


def _pem_blocks(t: Text) -> Iterator[re.Match[bytes]]:
    """`_PEM.finditer(t.raw)`, tried only where an opening is."""
    hits, last = t.hits, 0
    for start in sorted(end - length for i, length in _PEM_OPENINGS for end in hits.get(i, ())):
        if start >= last and (m := _PEM.match(t.raw, start)) is not None:
            last = m.end()
            yield m


def _private_key(t: Text) -> Iterator[tuple[int, int]]:
    raw = t.raw
    if t.pem_resume is not None and (m := _PEM_PIECE.match(raw, t.pem_resume)) is not None:
        yield from _pem_pieces(t, *m.span())
    for m in _pem_blocks(t):
        yield from _pem_pieces(t, *m.span())
    if _PEM_ENCODED in t.hits:
        for m in _PEM_BASE64.finditer(raw):
            chunk = re.sub(rb"[^A-Za-z0-9+/]", b"", m[0][:96])[:64]
            head = base64.b64decode(chunk[: len(chunk) // 4 * 4])
            if _PEM_LABEL_START.match(head):
                yield from _pem_pieces(t, *m.span())


def pem_ended(raw: bytes, start: int) -> bool:
    """Whether the key block whose first line is at `start` has its END line in `raw`."""
    return _PEM_ENDED.search(raw, start) is not None


private_key = Detector(
    "private_key", "PRIVATE_KEY", _private_key, max_len=PEM_MAX + 64,
    gate=HitGate(_KEY_BLOCK_IDS, lambda t: t.pem_resume is not None),
    pending=re.compile(rb"(?:(?:%s)%s*|LS0tLS1CRUdJTi%s*)\Z"
                       % (_PEM_START, _PEM_BODY, _B64_LINES)),
)

# --- passwords in connection strings ------------------------------------------------------

# scheme://user:PASSWORD@host: only the password is the finding. It runs to the last "@"
# before the host, since unescaped "@" in passwords is common.
_CONN = re.compile(
    rb"://[^\s:/?#@\"'<>\x00\x01]{0,64}:([^\s/?#\"'<>\x00\x01]{1,128})@(?=[A-Za-z0-9\[])"
)

connection_password = Detector(
    "connection_password", "PASSWORD",
    matches(_CONN, lambda t, s, e: (s, e) if t.at(ALNUM, t.raw.rfind(b"://", 0, s) - 1)
             else None, group=1),
    max_len=200, gate=HitGate(frozenset({_SCHEME})),
)


def gate_passes(d: Detector, t: Text) -> bool:
    """Whether `d` may find anything in `t` (tests replace this with a checking one)."""
    return d.gate is None or d.gate(t)


Family = Callable[[Text], Container[str]]
# A detector as `scan` asks it: its index, itself, and its gate read apart: the pass's ids
# one of which passes it (None: no gate), and a call that passes it else (None: none).
Member = tuple[int, Detector, frozenset[int] | None, Callable[[Text], bool] | None]
Runs = tuple[tuple[Family | None, tuple[Member, ...]], ...]


def _member(i: int, d: Detector) -> Member:
    if isinstance(d.gate, HitGate):
        return i, d, d.gate.ids, d.gate.more
    return i, d, None if d.gate is None else frozenset(), d.gate


@lru_cache(maxsize=256)
def runs_of(chosen: tuple[Detector, ...]) -> Runs:
    """`chosen`, each with its index and gate, in runs as `scan` asks them: a family's
    members under the family's one verdict (where its first member is), and the
    detectors of no family in between (None), so that a text costs a loop over members,
    not a family lookup per detector (tests replace this with one whose gates and
    families check what they refuse)."""
    runs: list[tuple[Family | None, list[Member]]] = []
    families: dict[Family, list[Member]] = {}
    for i, d in enumerate(chosen):
        if d.family is None:
            if not runs or runs[-1][0] is not None:
                runs.append((None, []))
            runs[-1][1].append(_member(i, d))
        elif d.family in families:
            families[d.family].append(_member(i, d))
        else:
            runs.append((d.family, families.setdefault(d.family, [_member(i, d)])))
    return tuple((family, tuple(members)) for family, members in runs)


# Text.memo's key of the findings of decoding.py's detector, by their span of `Text.raw`:
# each is a detector of its own (a `Recoded`), which `scan` puts in its detector's place.
RECODED = "recoded"
# Text.memo's key of the findings `scan` has so far, (start, minus end, index) in
# `Text.raw`: the decoding detector, asked last, decodes no unit one of them covers whole.
FOUND = "found"


def _with_recoded(found: list[tuple[int, int, int]], chosen: tuple[Detector, ...],
                  recoded: dict[tuple[int, int], Detector]) -> tuple[Detector, ...]:
    """`chosen` and the recoded findings, each at a new index that `found` (the scan's
    findings, start, minus end, index) now names in place of the decoding detector's."""
    extra = list(chosen)
    for k, (s, neg_e, i) in enumerate(found):
        if (r := recoded.get((s, -neg_e))) is not None and chosen[i].entity == "DECODED":
            found[k] = (s, neg_e, len(extra))
            extra.append(r)
    return tuple(extra)


def _whole_characters(source: bytes, found: list[tuple[int, int, int]]
                      ) -> list[tuple[int, int, int]]:
    """`found` with each span widened to whole UTF-8 characters: a pattern's bound in
    bytes (a value's longest) can end inside a letter of another script, and a span cut
    there would be no text to rewrite."""
    out = []
    for s, neg_e, i in found:
        e = -neg_e
        while s > 0 and source[s] & 0xC0 == 0x80:
            s -= 1
        while e < len(source) and source[e] & 0xC0 == 0x80:
            e += 1
        out.append((s, -e, i))
    return out


def scan(t: Text, detectors: Iterable[Detector]) -> list[tuple[int, int, Detector]]:
    """Findings of `detectors` in `t`, overlapping ones merged, in order, in `t.source`.

    A detector is asked only if its family (asked once per text) admits it and its gate
    passes. Overlaps are merged rather than one dropped, so that nothing of either passes
    in clear; the merged finding takes the longest member's detector.
    """
    chosen = tuple(detectors)
    found: list[tuple[int, int, int]] = []
    t.memo[FOUND] = found
    add, hits = found.append, t.hits
    for family, members in runs_of(chosen):
        names = None if family is None else family(t)
        for i, d, ids, more in members:
            if names is not None and d.name not in names:
                continue
            if ids is None or not ids.isdisjoint(hits) or (more is not None and more(t)):
                for s, e in d.find(t):  # most find nothing: a loop costs less than a generator
                    add((s, -e, i))
    found.sort()
    if recoded := t.memo.get(RECODED):  # findings in the text's decoded views
        chosen = _with_recoded(found, chosen, recoded)  # type: ignore[arg-type]
    if t.raw is not t.source:
        found = [(t.to_source(s), -t.to_source(-neg_e), i) for s, neg_e, i in found]
    if found and not t.source.isascii():
        found = _whole_characters(t.source, found)
    merged: list[list[int]] = []  # start, end, detector index, its finding's length
    for s, neg_e, i in found:
        e = -neg_e
        if merged and s < merged[-1][1]:
            last = merged[-1]
            last[1] = max(last[1], e)
            if e - s > last[3]:
                last[2:] = [i, e - s]
        else:
            merged.append([s, e, i, e - s])
    return [(s, e, chosen[i]) for s, e, i, _ in merged]
