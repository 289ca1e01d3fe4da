"""Encoded values read as they decode: what the detectors find in a text's decoded forms
is masked over its encoded span, and written back in the same encoding.

Values leave real systems encoded: percent-encoded in URLs and forms (twice, in a URL
that is itself a parameter), as HTML entities and XML character references, as `\\u`
escapes in logs and NDJSON, quoted-printable and MIME encoded-words in mail, base64,
base32 and hex in configs, tokens and API fields; or spelled with letters of another
script that read as Latin ones. A detector written for the value misses each such
spelling. So a text that holds a codec's mark (found by the detectors' one
Hyperscan pass, prefilter.py) is also read as that codec's *view*: the text with each
encoded unit replaced by what it decodes to, and the map back. The detectors (this
module's among them, one level less deep) scan the view; each finding is widened to whole
units and becomes a `Recoded` finding over its span in the text: the decoded text and the
findings in it. The masker's splice masks that decoded text as any other, then encodes it
as the span was (a redaction inside a base64 run is base64, inside a form parameter
percent-encoded), so the text stays valid in its own syntax and a strategy sees the value
itself (a hash of an SSN is the same however the SSN was spelled).

Bounds: views nest `MAX_DEPTH` deep (`%252D` needs two); a block (a base64, base32 or hex
run) is decoded only up to `MAX_BLOCK` bytes and only where it decodes to text (UTF-8,
no control characters but tabs and line breaks); a unit whose bytes are no UTF-8 where
they land is left as written. What the bounds leave encoded is no way around the
detectors: a block run past `MAX_BLOCK` (to `MAX_UNDECODED`) that begins as text, and what
the deepest view still holds encoded, are findings of their own (`UNDECODED`), masked
whole and counted unless a policy's mask leaves `undecoded` out.
A stream (stream.py) holds back from a unit near its end and from an open block run, so
that it masks as the whole text does (`pending`).

Spellings no mark gives away (rot13, lines written backwards: `TRANSFORMS`) are read
only where a spec asks (`MaskSpec.transforms`: the MCP front's, on servers' answers),
whole texts and JSON only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import json
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

from extproc.codecs.lookalikes import LOOKALIKES as _LOOKALIKES
from extproc.masking.detectors import FOUND, RECODED, Detector, HitGate, Text, scan
from extproc.masking.prefilter import PASS

if TYPE_CHECKING:
    from extproc.masking.detectors import Found

MAX_DEPTH = 3  # views of views: a value encoded twice, then wrapped in base64
# The longest block run decoded: a file's contents as an API gives them in base64 (GitHub's
# reach 1 MB), a dump piped through `base64`. A stream holds an open run back up to it.
MAX_BLOCK = 1024 * 1024
_START_READ = 4096  # how much of a longer run is read to tell whether it is text
# The longest run masked whole as `UNDECODED`: a stream holds one back while it is open,
# so this bounds what it holds. A longer run is a document, and passes as it is.
MAX_UNDECODED = 8 * MAX_BLOCK
_MIN_BLOCK = 16  # shorter runs are words and ids, not encoded text
# How far back from a text's end a unit may begin a finding still growing: a finding of
# the detectors' longest (~350 characters) written as entities of up to 10 bytes each.
WINDOW = 4096
_LEAD = 400  # how far before such a unit the finding may begin (plain characters)
_TAIL = 64  # units this close to the text's end, or to each other, may still make one

_HEX = b"0123456789abcdefABCDEF"
_NO_TEXT_START = frozenset(b"ghijklmnopqrstuv+/-_")  # base64 digits 32-47, 62, 63
_TEXT_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Codec:
    """One encoding: `unit` matches an encoded unit, `decode` gives its bytes (None: the
    match is not one, after all), `encode` writes masked text as the span was written
    (its second argument: the span as it was). `units` finds the units of a text whose
    one pass found the codec's mark (`trigger`)."""

    name: str
    unit: re.Pattern[bytes]
    decode: Callable[[re.Match[bytes]], bytes | None]
    encode: Callable[[bytes, bytes], bytes]
    trigger: int
    units: Callable[[Text], Iterator[re.Match[bytes]]]


@dataclass(frozen=True, eq=False, slots=True)
class Recoded(Detector):
    """A finding in a view, over its span of the text: `decoded` is what the span decodes
    to and `found` the findings in it, which the masker's splice masks before `codec`
    writes the span again."""

    decoded: bytes = b""
    found: tuple[tuple[int, int, Detector], ...] = ()
    codec: Codec | None = None


# --- the codecs -----------------------------------------------------------------------

def _percent(m: re.Match[bytes]) -> bytes:
    return bytes([int(m[0][1:], 16)])


def _form(m: re.Match[bytes]) -> bytes:
    return b" " if m[0] == b"+" else _percent(m)


def _percent_encode(masked: bytes, _span: bytes) -> bytes:
    return quote(masked, safe="").encode()


def _form_encode(masked: bytes, _span: bytes) -> bytes:
    return quote_plus(masked, safe="").encode()


def _entity(m: re.Match[bytes]) -> bytes | None:
    text = m[0].decode("ascii")
    decoded = html.unescape(text)
    return None if decoded == text else decoded.encode("utf-8", "surrogatepass")


def _entity_encode(masked: bytes, _span: bytes) -> bytes:
    return html.escape(masked.decode("utf-8", "surrogatepass")).encode()


_SIMPLE_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b'"': b'"', b"\\": b"\\",
                   b"/": b"/", b"'": b"'"}


def _escape(m: re.Match[bytes]) -> bytes | None:
    unit = m[0]
    kind = unit[1:2]
    if kind in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[kind]
    if kind == b"x":
        return bytes([int(unit[2:], 16)])
    if kind == b"u" and len(unit) == 12:  # a surrogate pair, as JSON writes one
        pair = (unit[2:6] + unit[8:12]).decode()
        text = (chr(int(pair[:4], 16)) + chr(int(pair[4:], 16))).encode(
            "utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return text.encode()
    code = int(unit[2:], 16)
    if 0xD800 <= code < 0xE000 or code > 0x10FFFF:
        return None
    return chr(code).encode()


def _escape_encode(masked: bytes, _span: bytes) -> bytes:
    return json.dumps(masked.decode("utf-8", "surrogatepass"))[1:-1].encode()


def _quoted_printable(m: re.Match[bytes]) -> bytes:
    return b"" if m[0][1:2] in b"\r\n" else bytes([int(m[0][1:], 16)])


def _qp_encode(masked: bytes, _span: bytes) -> bytes:
    return b"".join(bytes([c]) if (0x21 <= c <= 0x7E and c != 0x3D) or c == 0x20
                    else b"=%02X" % c for c in masked)


_WORD = re.compile(rb"=\?([^?\s]{1,40})\?([BbQq])\?([^?\s]*)\?=")


def _mime_word(m: re.Match[bytes]) -> bytes | None:
    charset, kind, payload = m[1].decode("ascii", "replace"), m[2].upper(), m[3]
    try:
        data = (base64.b64decode(payload + b"=" * (-len(payload) % 4), validate=True)
                if kind == b"B" else _q_decode(payload))
        return data.decode(charset).encode()
    except (binascii.Error, LookupError, UnicodeDecodeError, ValueError):
        return None


def _q_decode(payload: bytes) -> bytes:
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda q: bytes([int(q[1], 16)]),
                  payload.replace(b"_", b" "))


def _mime_encode(masked: bytes, _span: bytes) -> bytes:
    return b"=?UTF-8?B?" + base64.b64encode(masked) + b"?="


def _texty(data: bytes, cut: bool = False) -> bytes | None:
    """`data` when it reads as text: UTF-8, six bytes or more, without control characters
    but tabs and line breaks (None otherwise: binary, an image, a hash's bytes). `cut`:
    `data` is a run's start, which may end inside a character."""
    if len(data) < 6 or _TEXT_CONTROLS.search(data):
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        if not (cut and error.start >= len(data) - 3 and error.reason == "unexpected end of data"):
            return None
    return data


def _block(m: re.Match[bytes]) -> bytes | None:
    """A run of base64, base64url, base32 or hex characters, decoded if it decodes to text."""
    run = m[0]
    if len(run) > MAX_BLOCK:
        return None
    return _decoded_run(run)


def _starts_as_text(run: bytes) -> bool:
    """Whether a run too long to decode begins as text (its first `_START_READ` bytes,
    cut where its encoding's groups end)."""
    start = run[:_START_READ].replace(b"\r", b"").replace(b"\n", b"").rstrip(b"=")
    return _decoded_run(start[:len(start) // 8 * 8], cut=True) is not None


def _decoded_run(run: bytes, cut: bool = False) -> bytes | None:
    """A block run's text (None: it is none); `cut`: the run's start only."""
    if b"\n" in run:  # wrapped in lines, as mail and PEM write base64
        run = run.replace(b"\r", b"").replace(b"\n", b"")
    body = run.rstrip(b"=")
    if len(body) % 2 == 0 and not body.strip(_HEX):
        return _texty(bytes.fromhex(body.decode()), cut)
    with contextlib.suppress(binascii.Error, ValueError):
        if not body.strip(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") and len(run) % 8 == 0:
            return _texty(base64.b32decode(run), cut)
        # Base64 of text begins with the top six bits of a character's first byte: never
        # a UTF-8 continuation byte's (`g` to `v`) nor 0xF8 and up (`+/`, `-_`), which
        # refuses a quarter of identifiers and words before any decoding.
        if len(body) % 4 != 1 and body[0] not in _NO_TEXT_START:
            padded = body + b"=" * (-len(body) % 4)
            if b"-" in body or b"_" in body:
                return _texty(base64.urlsafe_b64decode(padded), cut)
            return _texty(base64.b64decode(padded, validate=True), cut)
    return None


def _block_encode(masked: bytes, span: bytes) -> bytes:
    """`masked` written as `span` was: hex (in its case), base32, base64url or base64,
    padded where the span was, wrapped at its first line's width where it was wrapped."""
    if b"\n" not in span:
        return _run_encode(masked, span)
    line = span[:span.index(b"\n")]
    out = _run_encode(masked, span.replace(b"\r", b"").replace(b"\n", b""))
    width, end = len(line.rstrip(b"\r")), b"\r\n" if line.endswith(b"\r") else b"\n"
    return end.join(out[k:k + width] for k in range(0, len(out), width))


def _run_encode(masked: bytes, span: bytes) -> bytes:
    body = span.rstrip(b"=")
    if len(body) % 2 == 0 and not body.strip(_HEX):
        digits = masked.hex()
        return (digits.upper() if body.upper() == body else digits).encode()
    if not body.strip(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") and len(span) % 8 == 0:
        return base64.b32encode(masked)
    urlsafe = b"-" in body or b"_" in body
    out = base64.urlsafe_b64encode(masked) if urlsafe else base64.b64encode(masked)
    return out if span.endswith(b"=") or len(span) % 4 == 0 else out.rstrip(b"=")


def _codec(name: str, unit: bytes, decode: Callable[[re.Match[bytes]], bytes | None],
           encode: Callable[[bytes, bytes], bytes], mark: bytes) -> Codec:
    pattern = re.compile(unit)
    return Codec(name, pattern, decode, encode, PASS.add(mark, first=True),
                 lambda t: pattern.finditer(t.raw))


# A block run is found where the one pass saw its first 16 characters after a byte that
# is none of them (a search with a leading class, `re`'s, costs ~40 ns a byte of any
# text), and read from there.
_RUN_CLASS = rb"A-Za-z0-9+/_-"
_BLOCK_START = PASS.add(rb"(?:^|[^%s])[%s]{%d}" % (_RUN_CLASS, _RUN_CLASS, _MIN_BLOCK))
_BLOCK_RUN = re.compile(rb"[%s]{%d,}={0,6}" % (_RUN_CLASS, _MIN_BLOCK))


# Base64 wrapped in lines (mail's 76 characters, PEM's 64): lines of 40 or more, then the
# last one, which ends there (a line going on as `NEXT_KEY=...` is no part of it).
_WRAP = 40
_WRAPPED_RUN = re.compile(rb"(?:[A-Za-z0-9+/]{%d,}\r?\n)+[A-Za-z0-9+/]{4,}={0,2}"
                          rb"(?![A-Za-z0-9+/_=-])" % _WRAP)


def _block_runs(t: Text) -> Iterator[re.Match[bytes]]:
    """Each block run where the one pass saw one start, a wrapped one whole (its later
    lines are not runs of their own)."""
    done = 0
    for end in t.hits.get(_BLOCK_START, ()):
        start = end - _MIN_BLOCK
        if start < done:
            continue
        m = _WRAPPED_RUN.match(t.raw, start) or _BLOCK_RUN.match(t.raw, start)
        if m is not None:
            done = m.end()
            yield m


# Letters of other scripts that read as Latin ones (codecs/lookalikes.py), read as Latin
# only inside a word that mixes them with Latin letters or digits (an address with a
# Cyrillic a and e): a word all in one script is that script's, and stays as it is.
_LOOKALIKE = re.compile(b"|".join(re.escape(c.encode()) for c in _LOOKALIKES))
_LATIN = rb"[A-Za-z0-9@]"
_LOOKALIKE_BYTES = b"(?:" + _LOOKALIKE.pattern + b")"
# A word: what is between spaces, quotes and brackets.
_WORD_RUN = re.compile(rb"[^\s\"'<>()\[\]{},;]+")


def _lookalike(m: re.Match[bytes]) -> bytes:
    return _LOOKALIKES[m[0].decode()].encode()


def _mixed_words(t: Text) -> Iterator[re.Match[bytes]]:
    """The look-alike letters of the words that mix them with Latin letters or digits."""
    raw = t.raw
    for word in _WORD_RUN.finditer(raw):
        s, e = word.span()
        if word[0].isascii() or not re.search(_LATIN, word[0]):
            continue
        yield from _LOOKALIKE.finditer(raw, s, e)


def _as_written(masked: bytes, _span: bytes) -> bytes:
    return masked


# Two JSON strings one after the other in a text (`["4111 1111", "1111 1111"]`, a key
# file as a list of lines in a log): read joined, a value cut between them is one.
_BETWEEN_STRINGS = re.compile(rb'"[ \t]*,[ \t]*(?:\r?\n[ \t]*)?"')


_STRING_END = re.compile(rb'(?:[^"\\]|\\.)*"[ \t]*(:)?')


def _nothing_between(m: re.Match[bytes]) -> bytes | None:
    """Nothing, where the string after is an item (of a list), not an object's key."""
    after = _STRING_END.match(m.string, m.end())
    return None if after is None or after[1] is not None else b""


def _each_piece(masked: bytes, span: bytes) -> bytes:
    """The masked value in each string it was cut into, the strings kept apart."""
    return b"".join(part if k % 2 else masked if part else part
                    for k, part in enumerate(re.split(b"(%s)" % _BETWEEN_STRINGS.pattern, span)))


CODECS: tuple[Codec, ...] = (
    _codec("percent", rb"%[0-9A-Fa-f]{2}", _percent, _percent_encode, rb"%[0-9A-Fa-f]{2}"),
    _codec("form", rb"%[0-9A-Fa-f]{2}|\+", _form, _form_encode,
           rb"=[^\s&=]*[0-9A-Za-z%]\+[0-9A-Za-z%]"),
    _codec("entity", rb"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});",
           _entity, _entity_encode, rb"&#?[0-9A-Za-z]{1,32};"),
    _codec("escape", rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
           rb"|\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\[nrt\"\\/']", _escape, _escape_encode,
           rb"\\(?:u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2})"),
    _codec("quoted-printable", rb"=[0-9A-F]{2}|=\r?\n", _quoted_printable, _qp_encode,
           rb"=[0-9A-F]{2}[^=\s]{0,8}=[0-9A-F]{2}|=\r?\n"),
    # Soft line breaks alone, read in a view of their own too: a text of `key=value`
    # lines (`steuer_id=26=<break>…`) read as quoted-printable is mangled (`=26` is `&`).
    _codec("soft-break", rb"=\r?\n", _quoted_printable, _qp_encode, rb"=\r?\n"),
    _codec("mime-word", _WORD.pattern + rb"(?:[ \t]*\r?\n?[ \t]+(?==\?))?", _mime_word,
           _mime_encode, rb"=\?[^?\s]{1,40}\?[BbQq]\?"),
    _codec("joined", _BETWEEN_STRINGS.pattern, _nothing_between, _each_piece,
           _BETWEEN_STRINGS.pattern),
    Codec("look-alikes", _LOOKALIKE, _lookalike, _as_written, PASS.add(
        rb"%s%s|%s%s" % (_LATIN, _LOOKALIKE_BYTES, _LOOKALIKE_BYTES, _LATIN), first=True),
        _mixed_words),
    Codec("block", _BLOCK_RUN, _block, _block_encode, _BLOCK_START, _block_runs),
)
# Transforms no mark gives away, read only where a mask asks (`MaskSpec.transforms`: an MCP
# server's answers, which a hostile server may spell so): rot13, each word's letters
# rotated (a view of them all, positions kept); each line written backwards (a finding
# in it masks the line, written backwards again).
_ROT13 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                         b"NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm")
_LETTERS = re.compile(rb"[A-Za-z]+")
_LINE = re.compile(rb"[^\r\n\x00\x01]+")
_ANY_TEXT = -1  # a transform's trigger: no mark, every text


def _rot13(m: re.Match[bytes]) -> bytes:
    return m[0].translate(_ROT13)


def _rot13_encode(masked: bytes, _span: bytes) -> bytes:
    return masked.translate(_ROT13)


def _backwards(m: re.Match[bytes]) -> bytes:
    return _backwards_encode(m[0], m[0])


def _backwards_encode(masked: bytes, _span: bytes) -> bytes:
    return masked.decode("utf-8", "surrogatepass")[::-1].encode("utf-8", "surrogatepass")


TRANSFORMS: dict[str, Codec] = {
    "rot13": Codec("rot13", _LETTERS, _rot13, _rot13_encode, _ANY_TEXT,
                   lambda t: _LETTERS.finditer(t.raw)),
    "reversed": Codec("reversed", _LINE, _backwards, _backwards_encode, _ANY_TEXT,
                      lambda t: _LINE.finditer(t.raw)),
}
REVERSED = TRANSFORMS["reversed"]
_HAS_LETTER = re.compile(rb"[A-Za-z]")
_READ_AS_THEY_ARE = frozenset({"email"})

JOINED, QUOTED_PRINTABLE, SOFT_BREAK, BLOCK = (
    next(codec for codec in CODECS if codec.name == name)
    for name in ("joined", "quoted-printable", "soft-break", "block"))


# --- views ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _View:
    """A window of a text with one codec's units decoded: `starts[k]` is where unit k
    begins in `text`, `units[k]` its (view end, source start, source end); `lo` is where
    the window begins in the source."""

    text: bytes
    lo: int
    starts: list[int]
    units: list[tuple[int, int, int]]

    def source(self, s: int, e: int, nested: bool) -> tuple[int, int, int, int] | None:
        """The span `s:e` of the view widened to whole units: (view start, view end,
        source start, source end); None where no unit is in it or next to it (the
        text as it is has that finding: a unit next to it may have hidden its edge),
        unless the finding is `nested` (a view's of the view: it needs this one)."""
        k = bisect_right(self.starts, s) - 1
        if k >= 0 and s < self.units[k][0]:
            vs, ss = self.starts[k], self.units[k][1]
        else:
            vs, ss = s, (self.lo + s if k < 0 else self.units[k][2] + s - self.units[k][0])
        j = bisect_right(self.starts, e - 1) - 1
        if j >= 0 and e - 1 < self.units[j][0]:
            ve, se = self.units[j][0], self.units[j][2]
        elif j == k and vs == s and not nested and not (  # no unit in the span or next to it
                (k >= 0 and self.units[k][0] == s) or self.starts[k + 1:k + 2] == [e]):
            return None
        else:
            ve, se = e, (self.lo + e if j < 0 else self.units[j][2] + e - self.units[j][0])
        return vs, ve, ss, se


def view(raw: bytes, units: list[tuple[re.Match[bytes], bytes]], lo: int, hi: int
         ) -> _View | None:
    """`raw[lo:hi]` with `units` (each a match and what it decodes to, within the window,
    in order) decoded; units whose bytes are no UTF-8 where they land (`%DE` alone, a
    `country=DE` read as quoted-printable) are left as written. None if none is left."""
    units = _utf8_units(units)
    return _view(raw, units, lo, hi) if units else None


def _utf8_units(units: list[tuple[re.Match[bytes], bytes]]
                ) -> list[tuple[re.Match[bytes], bytes]]:
    """`units` but for each run of adjacent ones decoding to more than ASCII whose bytes
    together are no UTF-8 (a character's bytes are written one unit each): in one pass,
    as a window of binary written as `%XX` may hold thousands."""
    kept: list[tuple[re.Match[bytes], bytes]] = []
    run: list[tuple[re.Match[bytes], bytes]] = []

    def close() -> None:
        with contextlib.suppress(UnicodeDecodeError):
            b"".join(decoded for _, decoded in run).decode("utf-8")
            kept.extend(run)
        run.clear()

    for unit in units:
        if unit[1].isascii():
            close()
            kept.append(unit)
            continue
        if run and run[-1][0].end() != unit[0].start():
            close()
        run.append(unit)
    close()
    return kept


def _view(raw: bytes, units: list[tuple[re.Match[bytes], bytes]], lo: int, hi: int
          ) -> _View:
    """The view of valid units (`_utf8_units`)."""
    pieces: list[bytes] = []
    starts: list[int] = []
    spans: list[tuple[int, int, int]] = []
    pos, length = lo, 0
    for m, decoded in units:
        s, e = m.span()
        pieces += (raw[pos:s], decoded)
        length += s - pos
        starts.append(length)
        length += len(decoded)
        spans.append((length, s, e))
        pos = e
    pieces.append(raw[pos:hi])
    return _View(b"".join(pieces), lo, starts, spans)


class _Covered:
    """The spans of a text the detectors found as it is, before the decoding detector
    (masked whole whatever a view of them reads): a unit inside one is not decoded. A
    16-digit card number is also a hex run; its view would scan hundreds of bytes around
    it again to find what the card's mask hides anyway."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, found: list[tuple[int, int, int]]) -> None:
        spans = sorted((s, -neg_e) for s, neg_e, _ in found)
        self._starts = [s for s, _ in spans]
        self._ends, most = [], 0
        for _, e in spans:  # the furthest end of the spans starting at or before each
            most = max(most, e)
            self._ends.append(most)

    def __contains__(self, span: tuple[int, int]) -> bool:
        k = bisect_right(self._starts, span[0])
        return k > 0 and self._ends[k - 1] >= span[1]


def _windows(t: Text, codec: Codec, covered: _Covered,
             oversized: list[re.Match[bytes]] | None = None
             ) -> Iterator[tuple[list[tuple[re.Match[bytes], bytes]], int, int]]:
    """The codec's units in `raw` that decode and no finding `covered` holds, with what
    they decode to, in windows reaching `_LEAD` bytes either side of each (the context a
    detector reads), windows that overlap joined; block runs too long to decode that
    begin as text go to `oversized`."""
    group: list[tuple[re.Match[bytes], bytes]] = []
    lo = hi = 0
    size = len(t.raw)
    for m in codec.units(t):
        if m.span() in covered:
            continue
        if (decoded := codec.decode(m)) is None:
            if (oversized is not None and codec is BLOCK
                    and MAX_BLOCK < len(m[0]) <= MAX_UNDECODED and _starts_as_text(m[0])):
                oversized.append(m)
            continue
        s, e = max(0, m.start() - _LEAD), min(size, m.end() + _LEAD)
        if group and s <= hi:
            hi = max(hi, e)
        else:
            if group:
                yield group, lo, hi
            group, lo, hi = [], s, e
        group.append((m, decoded))
    if group:
        yield group, lo, hi


def _findings(t: Text, inner: tuple[Detector, ...], transforms: tuple[Codec, ...] = ()
              ) -> Iterator[tuple[int, int, Detector]]:
    """Each finding of `inner` in the views of `t` that its marks (and `transforms`) call
    for, over its span of `t.raw`, but for those the text as it is has; and, if `inner`
    has `UNDECODED`, each block run too long to decode that begins as text."""
    raw, hits = t.raw, t.hits
    oversized: list[re.Match[bytes]] | None = [] if UNDECODED in inner else None
    line = raw.find(b"\n")
    quoted: list[tuple[int, int]] = []  # what the quoted-printable view found, whose
    plain: _Plain = {}                   # soft breaks the soft-break view then leaves
    covered = _Covered(t.memo.get(FOUND, []))  # type: ignore[arg-type]
    for codec in (*CODECS, *transforms):
        if codec.trigger not in hits and codec.trigger != _ANY_TEXT:
            continue
        for units, lo, hi in _windows(t, codec, covered, oversized):
            decoded = view(raw, units, lo, hi)
            if decoded is not None:
                head = t.head if t.head is not None else raw[:line] if 0 <= line < lo else None
                yield from _in_view(decoded, head, codec, inner, quoted, t, plain)
    for m in oversized or ():
        yield *m.span(), UNDECODED


# A detector's findings in a text as it is, by name, read once per text where the lines
# read backwards need them (`_in_view`).
_Plain = dict[str, list[tuple[int, int, Detector]]]


def _in_view(decoded: _View, head: bytes | None, codec: Codec, inner: tuple[Detector, ...],
             quoted: list[tuple[int, int]], t: Text, plain: _Plain
             ) -> Iterator[tuple[int, int, Recoded]]:
    """The findings of `inner` in one view of `t`, over their spans of `t`: those in a
    run of units together as one. A line read backwards is masked only for what the line
    as it is does not show (a card's digits read both ways): else the line is left to
    the detectors as it is."""
    group: list[tuple[int, int, Detector]] = []  # findings in one run of units
    vs = ve = ss = se = 0
    own = False  # the group holds a finding the text as it is does not
    for s, e, d in scan(Text(decoded.text, head=head), inner):
        # A deeper view's, or a transform's (its units are words or lines).
        nested = type(d) is Recoded or d.name == UNDECODED.name or codec.trigger == _ANY_TEXT
        if (widened := decoded.source(s, e, nested)) is None or (
                codec is JOINED and not _joined_needed(decoded, s, e, d, inner)) or (
                codec.trigger == _ANY_TEXT and not _HAS_LETTER.search(decoded.text, s, e)) or (
                codec is REVERSED and d.name in _READ_AS_THEY_ARE):
            # Digits a transform left (rot13) or turned (backwards) are read as they are:
            # backwards, any number passes a checksum as often; rot13'd, the words that
            # say a number is no id (`tracking`) are gone. An address written backwards
            # still reads as one (`moc.elpmaxe@eel.nna`), and JSON read backwards makes
            # addresses of its strings' ends and starts.
            continue
        ws, we, wss, wse = widened
        if codec is QUOTED_PRINTABLE:
            quoted.append((wss, wse))
        elif codec is SOFT_BREAK and any(a < wse and wss < b for a, b in quoted):
            continue
        if group and ws < ve:  # in a unit the last finding is in too: one span
            ve, se = max(ve, we), max(se, wse)
        else:
            if group and own:
                yield ss, se, _recoded(decoded.text, vs, ve, group, codec)
            group, vs, ve, ss, se, own = [], ws, we, wss, wse, False
        group.append((s, e, d))
        if not own and codec is REVERSED and d.name not in plain:
            plain[d.name] = scan(t, (d,))
        own = own or codec is not REVERSED or not any(
            a < wss + we - s and wss + we - e < b  # its span in the line as it is
            for a, b, _ in plain[d.name])
    if group and own:
        yield ss, se, _recoded(decoded.text, vs, ve, group, codec)


def _leftover(t: Text) -> list[tuple[int, int]]:
    """What the deepest view still holds encoded (`UNDECODED`'s findings there): the
    words its units that a view would decode are in, units `_TAIL` bytes apart or less in one span
    (`4111%201111%20…`: the value is between the units)."""
    raw = t.raw
    covered = _Covered(t.memo.get(FOUND, []))  # type: ignore[arg-type]
    units = sorted(m.span() for codec in CODECS if codec.trigger in t.hits
                   for group, _, _ in _windows(t, codec, covered)
                   for m, _ in _utf8_units(group))
    spans: list[tuple[int, int]] = []
    for s, e in units:
        lo = max(0, s - _WORD_REACH)
        s = lo + len(raw[lo:s].rstrip(_WORD_BYTES))
        e += len(raw[e:e + _WORD_REACH]) - len(raw[e:e + _WORD_REACH].lstrip(_WORD_BYTES))
        if spans and s <= spans[-1][1] + _TAIL:
            spans[-1] = (spans[-1][0], max(e, spans[-1][1]))
        else:
            spans.append((s, e))
    return spans


# What a word is made of, for `_leftover` (all but spaces, quotes, a parameter's marks
# and the bytes that part JSON scalars), and how far it is read either side of a unit.
_WORD_BYTES = bytes(b for b in range(256) if b not in b" \t\r\n\"'=&\x00\x01")
_WORD_REACH = 256


def _joined_needed(decoded: _View, s: int, e: int, d: Detector,
                   inner: tuple[Detector, ...]) -> bool:
    """Whether a finding across joined strings is a value cut between them, not one
    string's value that took in its neighbour (`"Ada Lovelace", "ada@x.io"` reads
    `Lovelaceada@x.io`): it is not where a string it covers holds a finding of its kind
    on its own, and it covers a string in part or that string is not the first (a key
    block's BEGIN line is one on its own, and the lines after it are the block's)."""
    text = decoded.text
    cuts = [p for p in decoded.starts if s < p < e]
    first, last = text.rfind(b'"', 0, s) + 1, text.find(b'"', e)
    last = len(text) if last < 0 else last
    items = list(zip([first, *cuts], [*cuts, last], strict=True))
    own = [k for k, (a, b) in enumerate(items)
           if any(found.name == d.name for _, _, found in scan(Text(text[a:b]), inner))]
    return cut_between(own, not _blank(text[first:s]) and not _blank(text[e:last]))


def cut_between(own: list[int], whole: bool) -> bool:
    """Whether a finding across strings is a value cut between them, given which of the
    strings it covers (by order) hold a finding of its kind alone and whether it covers
    them whole: none does, or only the first and every one whole (a key block's lines)."""
    return not own or (whole and own == [0])


def _blank(text: bytes) -> bytes:
    """What `text` holds but spaces and line ends (escaped as JSON writes them, too)."""
    return text.replace(b"\\n", b"").replace(b"\\r", b"").strip()


def _recoded(text: bytes, vs: int, ve: int, group: list[tuple[int, int, Detector]],
             codec: Codec) -> Recoded:
    """The findings `group` of a view's `text`, within its span `vs:ve`, as one finding."""
    first = group[0][2]
    return Recoded(first.name, first.entity, _nothing, max_len=0, reveal=first.reveal,
                   canonical=first.canonical, decoded=text[vs:ve],
                   found=tuple((s - vs, e - vs, d) for s, e, d in group), codec=codec)


def _nothing(_t: Text) -> Found:
    return ()


class _Open:
    """What a stream must hold back from (stream.py asks `pending.search`): an open block
    run at the text's end (or lines of one), or an encoded unit in its last `WINDOW`
    bytes, from `_LEAD` bytes before it. At a pause in the input (`at_pause`), only
    units reaching up to the end with no line break after them hold anything back: a
    line that ended waits for nothing, and a `+` or an `&amp;` a shell printed must not
    hold back its output."""

    _UNIT = re.compile(b"|".join(codec.unit.pattern for codec in CODECS[:-1]))
    _RUN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-="

    def search(self, raw: bytes, pos: int = 0) -> _Start | None:
        start = self._open_run(raw, pos)
        if (unit := self._UNIT.search(raw, max(pos, len(raw) - WINDOW))) is not None:
            start = min(start, unit.start() - _LEAD)
        return None if start >= len(raw) else _Start(max(pos, start))

    def at_pause(self, raw: bytes, pos: int = 0) -> _Start | None:
        end, start = len(raw), self._open_run(raw, pos)
        units = [m.span() for m in self._UNIT.finditer(raw, max(pos, end - WINDOW))]
        if units and end - units[-1][1] <= _TAIL and b"\n" not in raw[units[-1][0]:]:
            first = units[-1][0]
            for s, e in reversed(units[:-1]):  # back through the units that run together
                if first - e > _TAIL:
                    break
                first = s
            start = min(start, first - _LEAD)
        return None if start >= end else _Start(max(pos, start))

    def _open_run(self, raw: bytes, pos: int) -> int:
        """Where a block run still open at the end begins (the end: none), with the lines
        of base64 before it, a wrapped block."""
        end = len(raw)
        run = len(raw.rstrip(self._RUN_CHARS))
        start = run if end - run > 64 else end
        line = run
        while line > max(pos, end - MAX_BLOCK) and raw[line - 1] == 0x0A:
            previous = raw.rfind(b"\n", 0, line - 1) + 1
            text = raw[previous:line - 1].rstrip(b"\r")
            if len(text) < _WRAP or text.strip(self._RUN_CHARS):
                break
            start = line = previous
        return start


@dataclass(frozen=True, slots=True)
class _Start:
    at: int

    def start(self) -> int:
        return self.at


_TRIGGERS = frozenset(codec.trigger for codec in CODECS)
_PENDING = _Open()

# What the bounds leave encoded (the module's docstring): a detector of the catalog, so
# that a policy's mask may leave it out, whose findings come from the decoding detector.
UNDECODED = Detector("undecoded", "UNDECODED", _nothing, max_len=0, gate=HitGate(frozenset()))
# In the deepest view, its finder.
_LEFTOVER = Detector(UNDECODED.name, UNDECODED.entity, _leftover, max_len=0,
                     gate=HitGate(_TRIGGERS))


@lru_cache(maxsize=64)
def detector(inner: tuple[Detector, ...], depth: int = MAX_DEPTH,
             transforms: frozenset[str] = frozenset()) -> Detector:
    """The detector of `inner`'s findings in the views of a text (`depth` views deep),
    and in the views `transforms` names (`TRANSFORMS`), at the top only."""
    if depth > 1:
        nested: tuple[Detector, ...] = (*inner, detector(inner, depth - 1))
    else:
        nested = (*inner, _LEFTOVER) if UNDECODED in inner else inner
    views = tuple(TRANSFORMS[name] for name in sorted(transforms))

    def find(t: Text) -> list[tuple[int, int]]:
        found = t.memo[RECODED] = {(s, e): r for s, e, r in _findings(t, nested, views)}
        return sorted(found)

    return Detector("decoded", "DECODED", find, max_len=MAX_BLOCK,
                    pending=_PENDING,  # type: ignore[arg-type]  # what stream.py asks of it
                    gate=None if views else HitGate(_TRIGGERS))
