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

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from extproc.masking import checks
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


class Text:
    """A text as detectors read it: UTF-8 bytes (`raw`: the fold of `source`, the text
    given, or that text itself), their shape, lowercase on demand.

    `pem_resume` is where a private key block, cut into pieces by a stream, carries on
    (see `private_key`), in `source`. `memo` holds what a family of detectors reads once
    per text and shares among its detectors (a prefilter's hits, say), keyed by module.
    """

    __slots__ = ("_folded", "_key_ids", "_lower", "_runs", "memo", "pem_resume", "raw",
                 "shape", "source")

    def __init__(self, source: bytes, pem_resume: int | None = None) -> None:
        self.source = source
        self._folded = folded = fold(source)
        self.raw = source if folded is None else folded.shadow
        self.shape = self.raw.translate(_SHAPE)
        self.pem_resume = pem_resume if pem_resume is None else self.to_raw(pem_resume)
        self._lower: bytes | None = None
        self._runs: list[tuple[int, int]] | None = None
        self._key_ids: list[tuple[int, int]] | None = None  # AWS's, for two detectors
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
    the gates cost ~2 µs. tests/masking/conftest.py runs every finder a gate refuses and
    fails if it finds anything.
    """

    name: str
    entity: str
    find: Callable[[Text], Found]
    max_len: int
    reveal: int = 0
    pending: re.Pattern[bytes] | None = None
    canonical: Callable[[str], str] = str
    gate: Callable[[Text], bool] | None = None


_NOT_DECIMAL = re.compile(r"[^0-9]", re.ASCII)


def digits(value: str) -> str:
    """The ASCII digits of a value, whatever script it is written in."""
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


def context(pattern: bytes, width: int) -> Callable[[Text, int], bool]:
    """Whether a context word (regex on lowercase) occurs within `width` bytes before a finding."""
    compiled = re.compile(pattern)
    return lambda t, s: compiled.search(t.before(s, width)) is not None


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


# --- payment cards ---------------------------------------------------------------------

# Contiguous 12-19 digits, or groups: 4-4-4(-1..4)(-1..4) and Amex/Diners 4-6-4/5,
# separated by spaces or dashes, or by dots or slashes alike. A comma next to one is a
# delimiter (CSV), never a thousands separator: a thousands group has exactly 3 digits,
# and no card or group does. A number written with a zero fraction (`….0`) or an
# exponent (`4.111111111111111e15`: a float printed) is read as its integer.
# On the shape, where a dash is a space: one separator throughout.
_CARD_GROUPS = re.compile(
    rb"0000(?P<sep>[ ./])(?:0000(?P=sep)0000(?:(?P=sep)0{1,4}){0,2}|000000(?P=sep)0{4,5})")
_CARD_SEPS = b" -./"
_ZERO_FRACTION = re.compile(rb"\.0+(?![0-9])")
_EXPONENT = re.compile(rb"[eE]\+?[0-9]{1,2}")  # after a run of digits: `d.ddd…e15`


def _card_number(digits: str) -> bool:
    return checks.card_issuer_plausible(digits) and checks.luhn(digits)


def _card_run(t: Text, s: int, e: int) -> tuple[int, int] | None:
    # Digits going on past a "." make a decimal number, not a card, unless all zeros.
    if extends_back(t, s, b".") and (exponent := _EXPONENT.match(t.raw, e)) is not None:
        return _card_exponent(t, s - 2, exponent.end())
    if not bounded(t, s, e, WORD) or extends_back(t, s, b"."):
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
    """Grouped digits; trailing groups that are not part of the card (an expiry) fall off."""
    if t.at(WORD, s - 1) or extends_back(t, s, _CARD_SEPS + b"."):
        return None
    groups = re.split(rb"[ ./-]", t.raw[s:e])
    for n in range(len(groups), 2, -1):
        end = s + sum(len(g) + 1 for g in groups[:n]) - 1
        if _card_number(b"".join(groups[:n]).decode()):
            return (s, end) if not t.at(WORD, end) else None
    return None


credit_card = Detector(
    "credit_card", "CREDIT_CARD",
    both(runs(12, 19, _card_run), matches(_CARD_GROUPS, _card_groups, shape=True)),
    max_len=26, reveal=4, canonical=digits,
    gate=lambda t: b"0000" in t.shape,  # 12 digits in a run, or a group of 4
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


def _iban_lower(t: Text) -> Iterator[tuple[int, int]]:
    """Lower-case candidates, from `bytes.find` and a country first: `re` looking for
    `aa00` stops at every lower-case letter of the shape (~4x slower on text), and hex
    ids (UUIDs) are full of `aa00`."""
    shape, raw = t.shape, t.raw
    pos = shape.find(b"aa00")
    while pos != -1:
        end = pos + 1
        if (raw[pos : pos + 2] in _IBAN_COUNTRIES and (m := _IBAN_LOWER.match(shape, pos))
                and (span := _iban(t, *m.span()))):
            yield span
            end = span[1]
        pos = shape.find(b"aa00", end)


iban = Detector("iban", "IBAN_CODE", both(matches(_IBAN, _iban, shape=True), _iban_lower),
                max_len=70, reveal=4, canonical=alnum_upper,
                gate=lambda t: b"AA00" in t.shape or b"aa00" in t.shape)

# --- e-mail -----------------------------------------------------------------------------

# Found from the "@": the domain forward by pattern, the local part backward by pattern.
_EMAIL_DOMAIN = re.compile(
    rb"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,4}[A-Za-z]{2,24}"
    rb"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
)
_EMAIL_LOCAL_REVERSED = re.compile(rb"[A-Za-z0-9._%+-]{1,64}")


def _email(t: Text) -> Iterator[tuple[int, int]]:
    for m in _EMAIL_DOMAIN.finditer(t.raw):
        at = m.start()
        local = _EMAIL_LOCAL_REVERSED.match(t.raw[max(0, at - 65) : at][::-1])
        if local is None:
            continue
        s = at - local.end()
        while s < at and t.raw[s] == 0x2E:  # a local part does not start with a dot
            s += 1
        if s == at or t.at(ALNUM, s - 1):
            continue
        if in_authority(t, s):
            continue  # a URL's user and host (scheme://user@host), not an address
        yield s, m.end()


email = Detector("email", "EMAIL_ADDRESS", _email, max_len=348, reveal=4,
                 canonical=str.lower, gate=lambda t: b"@" in t.raw)

# --- IP addresses -----------------------------------------------------------------------

_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4_SHAPE = re.compile(rb"0\.0{1,3}\.0{1,3}\.0")
_IPV4 = re.compile(_OCTET + rb"(?:\." + _OCTET + rb"){3}(?![0-9]|\.[0-9])")
# A dotted quad right after a version word or a product name ("Chrome/120.0.0.1") is a
# version, not an address; anything else shaped and ranged like an address is one. A
# name that is itself after a "/" is a path's segment (`/hosts/10.1.2.3`), not a product.
_VERSION_BEFORE = re.compile(rb"(?<![a-z])(?:version|ver\.?|release|build|firmware|fw)[ :=]*\Z")
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
    return None if in_authority(t, s) else m.span()


_IPV6_GATE = re.compile(rb":(?::|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:)")
_IPV6_BACK_REVERSED = re.compile(rb"[0-9A-Fa-f:]{0,40}")
_IPV6_FORWARD = re.compile(rb"[0-9A-Fa-f:.]{0,45}")


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
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield s, e


ip_address = Detector("ip_address", "IP_ADDRESS",
                      both(matches(_IPV4_SHAPE, _ipv4, shape=True), _ipv6),
                      max_len=90, reveal=4, gate=lambda t: b"0." in t.shape or b":" in t.raw)

# --- JWT --------------------------------------------------------------------------------

_JWT_PART = 8192
_JWT = re.compile(
    rb"eyJ[A-Za-z0-9_-]{5,%d}\.[A-Za-z0-9_-]{1,%d}\.[A-Za-z0-9_-]{0,%d}(?![A-Za-z0-9_-])"
    % (_JWT_PART, _JWT_PART, _JWT_PART)
)


def _jwt(t: Text, s: int, e: int) -> tuple[int, int] | None:
    if t.at(TOKEN, s - 1) or t.at(TOKEN, e):
        return None
    return (s, e) if checks.jwt_header_ok(t.raw[s : t.raw.index(b".", s)]) else None


jwt = Detector(
    "jwt", "JWT", matches(_JWT, _jwt), max_len=3 * _JWT_PART + 8,
    gate=lambda t: b"eyJ" in t.raw,
    pending=re.compile(rb"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}\Z"),
)

# --- PEM private keys ---------------------------------------------------------------------

# From the BEGIN line to the END line. A block with no END line within PEM_MAX bytes
# (truncated, or longer than any real key: RSA-16384 is ~12.7 KB) is masked through the
# end of its base64 body, in pieces of at most PEM_MAX bytes, so that no piece of it
# passes in clear and a stream never holds back more than PEM_MAX.
PEM_MAX = 16 * 1024
_PEM_LABEL = rb"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
_PEM_BODY = rb"[A-Za-z0-9+/=\s:,.\\]"  # base64, line breaks (or escaped \n), PEM headers
_PEM = re.compile(
    rb"-----BEGIN " + _PEM_LABEL
    + rb"(?:(?:%s|-){0,%d}?-----END %s|%s{0,%d})" % (_PEM_BODY, PEM_MAX, _PEM_LABEL, _PEM_BODY,
                                                      PEM_MAX)
)
_PEM_PIECE = re.compile(_PEM_BODY + rb"{1,%d}" % PEM_MAX)


def _pem_pieces(t: Text, s: int, e: int) -> Iterator[tuple[int, int]]:
    """A capped piece is followed by the next one for as long as the body goes on."""
    yield s, e
    while e - s >= PEM_MAX and (m := _PEM_PIECE.match(t.raw, e)) is not None:
        s, e = m.span()
        yield s, e


def _private_key(t: Text) -> Iterator[tuple[int, int]]:
    if t.pem_resume is not None and (m := _PEM_PIECE.match(t.raw, t.pem_resume)) is not None:
        yield from _pem_pieces(t, *m.span())
    for m in _PEM.finditer(t.raw):
        yield from _pem_pieces(t, *m.span())


private_key = Detector(
    "private_key", "PRIVATE_KEY", _private_key, max_len=PEM_MAX + 64,
    gate=lambda t: t.pem_resume is not None or b"-----BEGIN " in t.raw,
    pending=re.compile(rb"-----BEGIN " + _PEM_LABEL + rb"(?:%s|-)*\Z" % _PEM_BODY),
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
    max_len=200, gate=lambda t: b"://" in t.raw,
)


def gate_passes(d: Detector, t: Text) -> bool:
    """Whether `d` may find anything in `t` (tests replace this with a checking one)."""
    return d.gate is None or d.gate(t)


def scan(t: Text, detectors: Iterable[Detector]) -> list[tuple[int, int, Detector]]:
    """Findings of `detectors` in `t`, overlapping ones merged, in order, in `t.source`.

    Overlaps are merged rather than one dropped, so that nothing of either passes in
    clear; the merged finding takes the longest member's detector.
    """
    chosen = tuple(detectors)
    found = sorted((s, -e, i) for i, d in enumerate(chosen) if gate_passes(d, t)
                   for s, e in d.find(t))
    if t.raw is not t.source:
        found = [(t.to_source(s), -t.to_source(-neg_e), i) for s, neg_e, i in found]
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
