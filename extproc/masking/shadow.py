"""The text detectors read: other scripts' digits, Unicode spaces and dashes, full-width
forms folded to ASCII, invisible format characters dropped, with the map back.

A card written in full-width digits (U+FF14 U+FF11...), in Arabic-Indic ones, with
no-break or thin spaces between its groups, or a zero-width space or a soft hyphen
inside, is a card to a reader and to many programs that parse numbers (Python's `int`
takes any script's digits), but not to patterns written for ASCII. Rather than widen
every pattern, detectors run once on a folded *shadow* of the text, and their findings
are mapped back onto the original bytes, which the strategies rewrite.

Folding is per character, so a piece of a text folds as the same piece of its fold (a
stream's chunks fold alike). What folds:

- decimal digits of every script (Unicode `Nd`: full-width, Arabic-Indic, Devanagari,
  mathematical...) -> their ASCII digit;
- space separators (`Zs`: no-break, narrow no-break, thin, figure, ideographic...) -> " ";
- dashes (`Pd`: hyphen, non-breaking hyphen, en dash, full-width...) and the minus sign
  -> "-";
- full-width ASCII forms (U+FF01-U+FF5E: letters, `@`, `.`) -> ASCII;
- format characters (`Cf`: zero-width space, joiners, soft hyphen, word joiner, BOM,
  direction marks) -> nothing, up to 16 in a row (a longer run stays as it is, a
  separator): so that what a stream holds back stays bounded.

A text with nothing to fold (ASCII, most text) is not copied: `fold` returns None at the
cost of `isascii`, or of one `translate` for other text.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_right

_MAX_RUN = 16  # format characters dropped in a row, at most


# Unicode 14 (Python 3.11's `unicodedata`), listed rather than derived at import (a scan
# of every code point costs ~100 ms a process); tests/masking/test_unicode.py checks them
# against `unicodedata`. Where each decimal digit run (`Nd`) starts, at its zero:
_DIGIT_ZEROS = (
    0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80,
    0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50,
    0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450,
    0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0,
    0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140,
    0x1E2F0, 0x1E950, 0x1FBF0,
)
# Inclusive ranges: space separators (`Zs`), dashes (`Pd`, and U+2212 minus), format
# characters (`Cf`).
_SPACES = ((0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A), (0x202F, 0x202F),
           (0x205F, 0x205F), (0x3000, 0x3000))
_DASHES = ((0x58A, 0x58A), (0x5BE, 0x5BE), (0x1400, 0x1400), (0x1806, 0x1806),
           (0x2010, 0x2015), (0x2212, 0x2212), (0x2E17, 0x2E17), (0x2E1A, 0x2E1A),
           (0x2E3A, 0x2E3B), (0x2E40, 0x2E40), (0x2E5D, 0x2E5D), (0x301C, 0x301C),
           (0x3030, 0x3030), (0x30A0, 0x30A0), (0xFE31, 0xFE32), (0xFE58, 0xFE58),
           (0xFE63, 0xFE63), (0xFF0D, 0xFF0D), (0x10EAD, 0x10EAD))
_FORMATS = ((0xAD, 0xAD), (0x600, 0x605), (0x61C, 0x61C), (0x6DD, 0x6DD), (0x70F, 0x70F),
            (0x890, 0x891), (0x8E2, 0x8E2), (0x180E, 0x180E), (0x200B, 0x200F),
            (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF),
            (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438),
            (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F))


def _chars(ranges: tuple[tuple[int, int], ...]) -> list[str]:
    return [chr(cp) for a, b in ranges for cp in range(a, b + 1)]


def _folds() -> dict[str, str]:
    """Each character that folds to one ASCII character -> that character."""
    table = {chr(zero + d): str(d) for zero in _DIGIT_ZEROS for d in range(10)}
    table.update(dict.fromkeys(_chars(_SPACES), " "))
    table.update(dict.fromkeys(_chars(_DASHES), "-"))
    table.update({chr(cp): chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)})  # full-width
    return table


def _alternation(chars: list[str]) -> bytes:
    """A bytes pattern matching the UTF-8 of any of `chars`: a trie on their bytes, so
    that `re` tries few branches at a byte (and skips ASCII at its first-byte check)."""
    trie: dict[int, dict] = {}
    for c in chars:
        node = trie
        for b in c.encode():
            node = node.setdefault(b, {})

    def emit(node: dict[int, dict]) -> bytes:
        leaves = sorted(b for b, child in node.items() if not child)
        branches = [re.escape(bytes([b])) + emit(child)
                    for b, child in sorted(node.items()) if child]
        if leaves:
            branches.append(b"[" + b"".join(b"\\x%02x" % b for b in leaves) + b"]")
        return branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"

    return emit(trie)


_FOLD = {c.encode(): f.encode() for c, f in _folds().items()}  # UTF-8 -> its fold
# `str.translate` table: any script's decimal digit -> its ASCII digit.
ASCII_DIGITS = {zero + d: 0x30 + d for zero in _DIGIT_ZEROS for d in range(10)}
_FOLD.update(dict.fromkeys((c.encode() for c in _chars(_FORMATS)), b""))
# One alternation whose branches all start with a lead byte: `re` then skips the bytes no
# branch starts with (ASCII, most letters) at its first-byte check, ~6x faster than
# grouping format characters into runs in the pattern.
_FOLDABLE = re.compile(_alternation([c.decode() for c in _FOLD]))
# Every byte but those a folding character starts with: a text without any (most
# European and CJK text: accents, Cyrillic, ideographs) has nothing to fold, which one
# `translate` (~10x faster than the search) tells.
_NOT_LEAD = bytes(b for b in range(256) if b not in {c[0] for c in _FOLD})


class Folded:
    """A text's shadow and the map between the two: positions where a fold starts and
    ends, in the shadow (`at`) and in the original (`source`)."""

    __slots__ = ("at", "shadow", "source")

    def __init__(self, shadow: bytes, at: list[int], source: list[int]) -> None:
        self.shadow, self.at, self.source = shadow, at, source

    def to_source(self, pos: int) -> int:
        """The original position of shadow position `pos` (after what was dropped there)."""
        i = bisect_right(self.at, pos) - 1
        return self.source[i] + pos - self.at[i]

    def to_shadow(self, pos: int) -> int:
        i = bisect_right(self.source, pos) - 1
        return min(self.at[i] + pos - self.source[i], self.at[i + 1] if i + 1 < len(
            self.at) else sys.maxsize)


def fold(raw: bytes) -> Folded | None:
    """`raw` folded, or None when nothing in it folds."""
    if raw.isascii() or not raw.translate(None, _NOT_LEAD):
        return None
    folds = [(m.start(), m.end(), _FOLD[m[0]]) for m in _FOLDABLE.finditer(raw)]
    if not folds:
        return None
    out: list[bytes] = []
    at, source = [0], [0]
    pos = size = 0
    for s, e, to in _without_long_runs(folds):
        out += (raw[pos:s], to)
        size += s - pos
        at.append(size)
        source.append(s)
        size += len(to)
        at.append(size)
        source.append(e)
        pos = e
    out.append(raw[pos:])
    return Folded(b"".join(out), at, source)


def _without_long_runs(folds: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """`folds` without runs of more than `_MAX_RUN` adjacent dropped characters."""
    kept: list[tuple[int, int, bytes]] = []
    run: list[tuple[int, int, bytes]] = []
    for f in folds:
        if not f[2] and (not run or run[-1][1] == f[0]):
            run.append(f)
            continue
        if len(run) <= _MAX_RUN:
            kept += run
        run = [] if f[2] else [f]
        if f[2]:
            kept.append(f)
    if len(run) <= _MAX_RUN:
        kept += run
    return kept
