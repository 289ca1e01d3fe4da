"""Secrets known only by the name they are given: `password: hunter2-Xy9`, `API_KEY=…`,
`"token" => "…"`, `--password …`, a JSON value under `db_password`.

A value is a candidate when it is assigned to a key-like name: one ending in a word of
`_ENDINGS` (`db_password`, `GITHUB_TOKEN`, `x-api-key`), after `:`, `=`, `:=`, `=>`, `==`,
a JSON key's SOH, or a space after a `--flag`. Most such values are not secrets: code
(`password = settings.DB_PASSWORD`, `token = get_token()`), prose (`Token: 5 minutes`),
placeholders (`<your-token>`, `${TOKEN}`, `changeme`, `xxxx`), booleans, numbers, dates,
paths and URLs. So a candidate is a finding only if it looks generated: a password (8
characters or more) has letters and digits, or three kinds of character of lower,
upper, digit and symbol; any other secret is 16 characters or more with at least four
letters and a digit, and Shannon entropy of 3 bits a character or more. JSON keys in
masker.DEFAULT_FIELDS (`password`, `token`...) are masked whole before this is asked
(as SECRET when this finds all of the value); this covers the other names.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import cast

from extproc.masking.detectors import LONGEST_VALUE, PARAM_NAME, URL_SCHEME, Text
from extproc.masking.vendor_rules import entropy

# Words one of which a key-like name holds (gate literals; any case).
NAMES: tuple[bytes, ...] = (
    b"secret", b"token", b"password", b"passwd", b"pwd", b"passphrase", b"apikey", b"api_key",
    b"api-key", b"auth", b"credential", b"creds", b"private", b"key", b"cookie", b"basic",
    b"code", b"session",
)
# How a key-like name ends, normalised (lower case, without `_`, `-`, `.`).
_ENDINGS = (b"secret", b"secretkey", b"token", b"apikey", b"password", b"passwd", b"pwd",
            b"passphrase", b"auth", b"credential", b"credentials", b"creds", b"private",
            b"privatekey",
            # keys named for what they sign, encrypt or open (not `primary_key`, `sort_key`)
            b"signingkey", b"encryptionkey", b"masterkey", b"hmackey", b"accesskey",
            b"licensekey", b"sessionkey", b"appkey", b"clientkey", b"cryptokey", b"cipherkey",
            b"webhookkey", b"subscriptionkey", b"servicekey", b"adminkey", b"rootkey",
            b"deploykey", b"authkey",
            # a session cookie, a basic-auth pair, an OAuth authorization code
            b"cookie", b"sessionid", b"basic", b"code")
_PASSWORDS = (b"password", b"passwd", b"pwd", b"passphrase")
# Names that end like a secret's and are not: pagination cursors an agent must pass back.
_NOT_SECRETS = (b"pagetoken", b"nexttoken", b"continuationtoken", b"synctoken",
                b"cursortoken", b"resumetoken")
_NORMALISE = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")

MAX_VALUE = 256
_NAME = re.compile(rb"[A-Za-z0-9_.-]{0,64}")  # read forward, or backward on a reversed slice
_SEPARATOR = re.compile(rb"[\"']?[ \t]{0,4}(?:\x01|=>|:=|==?|:)[ \t]{0,4}")
_FLAG_SEPARATOR = re.compile(rb"(?:=|[ \t]{1,4})")
# A value is read to `LONGEST_VALUE` and judged on its first `MAX_VALUE` bytes: a 2 KB
# token under `signing_key` is masked whole (it was left whole, as too long to judge).
_QUOTED = {q: re.compile(rb"%s([^%s\n\x00]{1,%d})%s" % (q, q, LONGEST_VALUE, q))
           for q in (b'"', b"'", b"`")}
# A bare value ends at a space, a quote, `,` `;`, or an `&` that starts a URL query's
# next parameter (`&page=2`; any other `&` is part of a password). Read in runs (an
# alternation tried per byte costs ~3x), within reach of its longest and the look-ahead
# of an `&` at its end, then cut to that longest (`_bare`).
# The group's repetition is greedy, not possessive: the `re` of some 3.11 releases
# (Debian 12's 3.11.2; 3.11.7 reads it right) lets a possessive repetition of a group
# holding a lookahead skip the lookahead (`a&b=1` read whole), and tollgate runs on any
# 3.11.
_BARE = re.compile(rb"(?:[^\s\"'`,;&\x00\x01]++|&(?![A-Za-z0-9_.-]{1,64}=))+")
_BARE_LONGEST = LONGEST_VALUE
_BARE_REACH = _BARE_LONGEST + 65
_JSON_VALUE = re.compile(rb"[^\x00]{1,%d}" % LONGEST_VALUE)
_TRAILING = b".)]}"

# Values that are not secrets whatever their characters.
# Searched in the value in lower case: a pattern ignoring case costs ~2x.
_PLACEHOLDER = re.compile(
    rb"your|example|placeholder|redacted|changeme|change_me|dummy|sample|xxxx|\*\*\*"
    rb"|^[<$%{]|[>}]$|://|^(?:\.{0,2}/|~/|[a-z]:\\)")
_CODE = re.compile(rb"[A-Za-z0-9_][(\[]|[{}]")  # a call, an index, a template: `get(`
_TIMESTAMP = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DOTTED_NAME = re.compile(rb"[A-Za-z_][A-Za-z_]*(?:\.[A-Za-z_][A-Za-z_]*)+")
_SPACES = b" \t\r\n"
_LOWER, _UPPER, _DIGITS = (bytes(range(a, b + 1)) for a, b in (
    (0x61, 0x7A), (0x41, 0x5A), (0x30, 0x39)))
_ALNUM = _LOWER + _UPPER + _DIGITS


def _but(*kinds: bytes) -> bytes:
    """Every byte but those of `kinds`: what `bytes.translate` deletes to keep them (a
    loop over a value's bytes in Python costs ~10x)."""
    keep = b"".join(kinds)
    return bytes(b for b in range(256) if b not in keep)


_NOT_LOWER, _NOT_UPPER, _NOT_DIGIT = _but(_LOWER), _but(_UPPER), _but(_DIGITS)
_NOT_LETTER = _but(_LOWER, _UPPER)


def _kinds(value: bytes) -> tuple[bool, bool, bool, bool]:
    return (bool(value.translate(None, _NOT_LOWER)), bool(value.translate(None, _NOT_UPPER)),
            bool(value.translate(None, _NOT_DIGIT)), bool(value.translate(None, _ALNUM)))


def looks_generated(value: bytes, password: bool) -> bool:
    """Whether a value assigned to a key-like name is a secret rather than code, prose,
    a placeholder, a number, a path or a URL."""
    if not 8 <= len(value) <= MAX_VALUE or len(value.translate(None, _SPACES)) < len(value):
        return False
    if (_PLACEHOLDER.search(value.lower()) or _DOTTED_NAME.fullmatch(value)
            or _CODE.search(value)):
        return False
    lower, upper, digit, symbol = _kinds(value)
    letters = lower or upper
    if password:
        return letters and (digit or lower + upper + digit + symbol >= 3)
    if _TIMESTAMP.match(value) or len(value.translate(None, _NOT_LETTER)) < 4:
        return False
    return len(value) >= 16 and letters and digit and entropy(value) >= 3.0


def candidates(t: Text, positions: Mapping[bytes, list[int]]) -> list[tuple[int, int, bool]]:
    """Values assigned to key-like names, given where the words of `NAMES` occur in `t`
    (literals.py): start, end, and whether the name is a password's. Read once per
    text (aws_secret_key asks too)."""
    memo = t.memo.get(__name__)
    if memo is None:
        memo = t.memo[__name__] = list(_candidates(t, positions))
    return cast("list[tuple[int, int, bool]]", memo)  # a string: no alias built per call


def _candidates(t: Text, positions: Mapping[bytes, list[int]]) -> Iterator[tuple[int, int, bool]]:
    seen: set[int] = set()
    for word in NAMES:
        for pos in positions.get(word, ()):
            start, end = _name_span(t.raw, pos, pos + len(word))
            if end not in seen:
                seen.add(end)
                found = _value(t, start, end)
                if found is not None:
                    s, e, password = found
                    for vs, ve in _carried(t.raw, s, e):
                        yield vs, ve, password


# A URL with a query (`https://app/cb?token=…`) as a secret's value: its parameters'
# values stand in its place (a URL is no secret, what it carries may be).
_QUERY_URL = re.compile(rb"%s[^?#\s]*\?" % URL_SCHEME)
_PARAM_VALUE = re.compile(rb"%s=([^&#]+)" % PARAM_NAME)


def _carried(raw: bytes, s: int, e: int, depth: int = 3) -> list[tuple[int, int]]:
    """A value's span, or, if it is a URL with a query, its parameters' values (read so
    in turn, to `depth` URLs deep: `?redirect_uri=https://…?key=…`)."""
    if not depth or (url := _QUERY_URL.match(raw, s, e)) is None:
        return [(s, e)]
    return [span for m in _PARAM_VALUE.finditer(raw, url.end(), e)
            for span in _carried(raw, *m.span(1), depth - 1)]


def _name_span(raw: bytes, s: int, e: int) -> tuple[int, int]:
    """The name a word is part of: name characters either side, 64 bytes at most."""
    back = _NAME.match(raw[max(0, s - 64) : s][::-1])
    ahead = _NAME.match(raw, e)
    return s - (back.end() if back else 0), ahead.end() if ahead else e


def secret_name(name: bytes) -> bool:
    """Whether a name, normalised (lower case, without `_`, `-`, `.`), is a secret's."""
    return name.endswith(_ENDINGS) and not name.endswith(_NOT_SECRETS)


def _value(t: Text, start: int, end: int) -> tuple[int, int, bool] | None:
    """The value assigned to the name at `start:end`, if it is a key-like name and a
    value follows it."""
    name = t.raw[start:end].translate(_NORMALISE, b"_-.")
    if not secret_name(name):
        return None
    password = name.endswith(_PASSWORDS)
    flag = t.raw.startswith(b"--", start)
    sep = (_FLAG_SEPARATOR if flag else _SEPARATOR).match(t.raw, end)
    if sep is None:
        return None
    at = sep.end()
    if sep.group().endswith(b"\x01"):  # a JSON value: all of it, up to its NUL
        m = _JSON_VALUE.match(t.raw, at)
        span = m.span() if m else None
    elif (quote := _QUOTED.get(t.raw[at : at + 1])) is not None:
        m = quote.match(t.raw, at)
        span = m.span(1) if m else None
    else:
        span = _bare(t.raw, at)
    return (*span, password) if span else None


def _bare(raw: bytes, at: int) -> tuple[int, int] | None:
    """The bare value at `at`, up to `_BARE_LONGEST` bytes, without trailing punctuation."""
    m = _BARE.match(raw, at, at + _BARE_REACH)
    if m is None:
        return None
    value = raw[at : min(m.end(), at + _BARE_LONGEST)]
    return at, at + len(value.rstrip(_TRAILING))


def find(t: Text, positions: Mapping[bytes, list[int]]) -> list[tuple[int, int]]:
    """The candidates that look generated (see `looks_generated`), and the secrets the
    words of `CUES` lead to."""
    found = [(s, e) for s, e, password in candidates(t, positions)
             if looks_generated(t.raw[s:min(e, s + MAX_VALUE)], password)]
    for word, finder in _CUED:
        for pos in positions.get(word, ()):
            found += finder(t.raw, pos)
    return found


# --- secrets known by the words around them -----------------------------------------------
# An authorization scheme's credential wherever it is written (`Bearer <token>` in a log
# line or a sentence, where no header name precedes it), curl's `-u user:password`, and
# a .netrc entry's password: the value follows a word that says what it is.

_BEARER = re.compile(rb"(?i)bearer[ \t]{1,4}([A-Za-z0-9._~+/-]{16,%d}=*)" % LONGEST_VALUE)
_BASIC = re.compile(rb"(?i)basic[ \t]{1,4}([A-Za-z0-9+/]{4,%d}={0,2})" % LONGEST_VALUE)
_USER_FLAG = re.compile(
    rb"""(?:-u|--user|--proxy-user|-U)(?:[ \t]{1,4}|=)(['"]?)[^\s:'"]{1,64}:([^\s'"]{1,%d})"""
    % LONGEST_VALUE)
# A .netrc entry: `machine <host>` then its tokens in any order, `password` one of them.
_NETRC_ENTRY = re.compile(
    rb"machine[ \t\r\n]+\S+((?:[ \t\r\n]+(?:login|account|port|password)[ \t\r\n]+\S+){1,4})")
_NETRC_PASSWORD = re.compile(rb"password[ \t\r\n]+(\S{1,%d})" % LONGEST_VALUE)


def _word_start(raw: bytes, pos: int) -> bool:
    return pos == 0 or not (raw[pos - 1 : pos].isalnum() or raw[pos - 1] == 0x5F)


def _bearer(raw: bytes, pos: int) -> list[tuple[int, int]]:
    m = _BEARER.match(raw, pos)
    # Judged on its start: a token of kilobytes is masked whole.
    if m is None or not _word_start(raw, pos) or not looks_generated(m[1][:MAX_VALUE], False):
        return []
    return [m.span(1)]


def _basic(raw: bytes, pos: int) -> list[tuple[int, int]]:
    """A basic-auth credential: base64 that decodes to printable `user:password`."""
    m = _BASIC.match(raw, pos)
    if m is None or not _word_start(raw, pos) or len(m[1]) % 4:
        return []
    try:
        pair = base64.b64decode(m[1], validate=True)
    except binascii.Error:
        return []
    return [m.span(1)] if b":" in pair and pair.isascii() and pair.decode().isprintable() else []


def _user_flag(raw: bytes, pos: int) -> list[tuple[int, int]]:
    m = _USER_FLAG.match(raw, pos)
    if m is None or (pos and raw[pos - 1] not in b" \t'\"\n"):
        return []
    if m[1] and (end := raw.find(m[1], m.start(2), m.start(2) + LONGEST_VALUE)) > 0:
        return [(m.start(2), end)]  # quoted: the password may hold spaces
    return [m.span(2)]


def _netrc(raw: bytes, pos: int) -> list[tuple[int, int]]:
    m = _NETRC_ENTRY.match(raw, pos)
    if m is None or not _word_start(raw, pos):
        return []
    tokens = m.start(1)
    return [(tokens + p.start(1), tokens + p.end(1)) for p in _NETRC_PASSWORD.finditer(m[1])]


_CUED = ((b"bearer", _bearer), (b"basic", _basic), (b"-u", _user_flag), (b"--user", _user_flag),
         (b"--proxy-user", _user_flag), (b"machine", _netrc))
# The words whose positions `find` reads (gate literals, any case; `-u` is `-U` too).
CUES: tuple[bytes, ...] = tuple(word for word, _ in _CUED)
