"""Masking a body that arrives in chunks, so that a secret cut across chunks is still caught.

The stream releases text only once nothing later can change how it masks:

- it holds back the last `hold` bytes: what decides a finding of the chosen detectors
  other than JWTs and private keys, plus a margin (356 bytes with all of them: an
  e-mail address is read over up to 348), so any finding that could still grow is held
  whole;
- a JWT or a private key block can be kilobytes long, so rather than always holding that
  much, the stream holds back from where one is still open (an `eyJ...` run, or a key
  block's first line followed by nothing but printable text up to the end of what has
  arrived), up to the detector's bound: 40 KiB for a JWT (a JWE has five parts), 16 KiB
  for a private key block; a block longer than that is masked in 16 KiB pieces, as
  `mask_text` does. A block whose END line never comes (truncated) is held until
  something unprintable follows or the bound passes, since its END line could still;
- the released text's last bytes stay as context for what follows (context words, the
  byte before a finding), and are not released twice.

So the concatenated output of `feed`s and `finish` is exactly `mask_text` of the
concatenated input, wherever the chunks were cut, as long as no `flush` came between.

`flush` is for a pause in the input (a host's output that stops for a while: a slow
command, a prompt): what is held goes now, masked, but for what could still be the start
of a finding, a suffix of what arrived (`_START`): the run of non-space characters it
ends with, extended back over groups of digits and capitals joined as numbers are
written (`4111 1111 `, `DE89 3704 `, `+1 (555) `, `-----BEGIN RSA `), `hold` bytes at
most; and, as `feed` holds them, an open JWT, key block (not one past its END line) or
run of key characters, up to its detector's bound. So a line that ended waits for
nothing, unless a key block is open in it.

What a flush guarantees (tests/masking/test_stream_flush.py): a value comes out as
`mask_text` of the whole masks it if, at each pause inside it, what had arrived of it was
such a suffix: a value that is a run of non-space characters (a key, a token, a JWT, an
address, a connection string) or digits and capitals in groups (a card, an IBAN, a
phone, an SSN), or a key block, within its bound, is masked whole however slowly it is
written. Otherwise (a space inside it that no group covers: a passphrase, `jo (at)
example (dot) com`, a lowercase IBAN in groups; a start longer than the bound; a value
that only words after it make one) a pause inside it releases what had arrived of it as
it was, unmasked, and the rest is masked when it comes. The other way round, a finding
complete at a pause that later text would have undone (more digits after a space) is
masked all the same. Without a pause the output is exactly `mask_text`'s.

To bound CPU when something is held long, a stream re-scans only once the unreleased
text has grown by 64 bytes, or by half its excess over the hold: nothing open, text is
released at most `hold` + 64 bytes (plus one chunk) behind; a JWT or key block open, at
most 1.5 times its bound (~61 KiB).

A PartStream releases only at the cuts between the parts fed, each part whole and
masked, for text whose pieces must stay pieces (the events of an event stream).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

from extproc.masking.detectors import (
    Detector,
    Text,
    gate_passes,
    pem_ended,
    pem_starts_at,
    private_key,
    scan,
)
from extproc.masking.strategies import TOKEN_MAX, unmasked, unredacted

if TYPE_CHECKING:
    from extproc.masking.masker import Masker, MaskSpec

_MIN_STEP = 64
_CONTEXT = 512  # > the widest look-back of any detector (AWS: 160 + "secret_access_key";
# a value a URL carries: the URL's 400 bytes and a cue's 96, detectors.Text.carrier_start)

# What a flush keeps back (on the text's fold): a suffix that could be the start of a
# finding. Groups of up to ten digits or capitals, each maybe after "+", "(" or a key
# block's dashes and before ")", joined by one to three of the separators numbers are
# written with (cards, IBANs, phones, SSNs, a key block's BEGIN line), then the run of
# non-space characters the text ends with (every other detector's findings are such
# runs, or start as one), from a word's start. Searched from `hold` bytes before the end
# at most: the leftmost match is the longest suffix.
_START = re.compile(rb"(?<![0-9A-Za-z])(?:(?:[+(]|-{1,5})?[0-9A-Z]{1,10}\)?[ \t./_-]{1,3})*"
                    rb"[^\s\x00\x01]*\Z")


class MaskingStream:
    """Feed chunks in order, then finish; each call returns what may be released now."""

    def __init__(self, masker: Masker, spec: MaskSpec) -> None:
        self._masker, self._spec = masker, spec
        self._detectors = masker.detectors(spec)
        self._long: tuple[Detector, ...] = tuple(d for d in self._detectors if d.pending)
        self.hold = 8 + max((d.max_len for d in self._detectors if not d.pending), default=0)
        if spec.keep_masked:  # a token around a finding arrives whole before it is released
            self.hold = max(self.hold, TOKEN_MAX)
        self._context = b""  # released already, kept as what precedes the rest
        self._pending = b""  # not released yet
        self._scan_at = self.hold + _MIN_STEP
        self._pem_open = False  # the text held begins inside a private key block
        self._parts = False  # a PartStream: its output keeps the cuts between parts
        self._ends: list[int] = []  # where each part held ends (a PartStream's)
        # The body's first line (a table's header, for the cells of every later row) once
        # known, and how many bytes were released: past _CONTEXT, the text scanned no
        # longer begins with that line, and the scan is given it (`Text.head`).
        self._head: bytes | None = None
        self._released = 0
        self.counts: Counter[str] = Counter()

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the masked text that can be released now (maybe "")."""
        self._pending += chunk.encode("utf-8", "surrogatepass")
        if len(self._pending) < self._scan_at:
            return ""
        return "".join(self._release(final=False))

    def finish(self) -> str:
        """The end of the body: return the rest, masked."""
        return "".join(self._release(final=True))

    def flush(self) -> str:
        """A pause in the input: return what is held, masked, but for what could still be
        the start of a finding (see the module's docstring); the stream goes on."""
        if not self._pending:
            return ""
        return "".join(self._release(final=False, pause=True))

    @property
    def held(self) -> int:
        """How many bytes of input are held, not released yet."""
        return len(self._pending)

    def _release(self, final: bool, pause: bool = False) -> list[str]:
        """The masked text that may be released now: one piece, or a PartStream's parts."""
        text = self._context + self._pending
        base, end = len(self._context), len(text)
        whole = self._released <= _CONTEXT  # the text still begins with the body's start
        if whole and self._head is None and (line := text.find(b"\n")) != -1:
            self._head = text[:line]
        t = Text(text, base if self._pem_open else None, None if whole else self._head)
        found = scan(t, self._detectors)
        if found:
            found = unmasked(text, found) if self._spec.keep_masked else unredacted(text, found)
        cut = end if final else self._safe_cut(t, base, found, pause)
        if not self._parts:
            cuts = [cut]
        else:
            cuts = _part_ends(self._ends, base, cut, found)
            cut = cuts[-1] if cuts else base
            self._ends = [x - (cut - base) for x in self._ends[len(cuts):]]
        out, start = [], base
        for c in cuts:  # a finding goes with the piece it starts in (or the first)
            spans = [(max(s, start) - start, e - start, d) for s, e, d in found
                     if e > start and max(s, start) < c]
            out.append(self._masker.splice(text[start:c], spans, self._spec, self.counts)
                       .decode("utf-8", "surrogatepass"))
            start = c
        self._pem_open = any(
            d is private_key and s == cut and not pem_starts_at(text, s)
            for s, _, d in found
        )
        self._context = text[max(0, cut - _CONTEXT) : cut]
        self._pending = text[cut:]
        self._released += cut - base
        held = len(self._pending)
        floor = self.hold + (self._ends[0] if self._ends else 0)
        self._scan_at = held + max(_MIN_STEP, (held - floor) // 2)
        if self._parts:  # nothing can be released before the first part's end
            self._scan_at = max(self._scan_at, floor)
        return out

    def _safe_cut(self, t: Text, base: int, found: list[tuple[int, int, Detector]],
                  pause: bool) -> int:
        """How far text can be released: before anything that could still grow or change
        (at a pause: before what could still start a finding).

        Detectors read the text's fold (see shadow.py), so what they may still read is
        measured there, and mapped back."""
        text, end, folded_end = t.source, len(t.source), len(t.raw)
        cut = max(0, folded_end - self.hold)
        if pause:
            start = _START.search(t.raw, max(cut, t.to_raw(base)))
            cut = start.start() if start is not None else folded_end
        cut = t.to_source(cut)
        for d in self._long:  # a gate (memoised by the scan) spares most texts the search
            # At a pause, a pattern may hold back less (decoding.py's: only what reaches
            # the end).
            if d.pending is None or not gate_passes(d, t):
                continue
            search = (pause and getattr(d.pending, "at_pause", None)) or d.pending.search
            m = search(t.raw, t.to_raw(base))
            if m is None or folded_end - m.start() > d.max_len:
                continue
            # At a pause, a key block past its END line is whole: nothing of it is open.
            if not (pause and d is private_key and pem_ended(t.raw, m.start())):
                cut = min(cut, t.to_source(m.start()))
        for s, e, _ in reversed(found):
            if s < cut < e or (e >= end and s < cut):
                cut = s
        cut = max(cut, base)
        while base < cut < end and text[cut] & 0xC0 == 0x80:  # not inside a UTF-8 sequence
            cut -= 1
        return cut


class PartStream(MaskingStream):
    """A MaskingStream whose output keeps the cuts between the parts fed: each part
    comes back whole, masked, in order, once nothing later can change how it masks (a
    finding cut between parts goes into the part it starts in, and the parts it covers
    lose what it took of them). So the joined output is still `mask_text` of the joined
    input, and where nothing is found each part comes back as it went in: what streams
    in pieces that must stay pieces (the events of an event stream whose data is text).
    """

    def __init__(self, masker: Masker, spec: MaskSpec) -> None:
        super().__init__(masker, spec)
        self._parts = True

    def feed_part(self, part: str) -> list[str]:
        """Take the next part; return the parts (masked) that can be released now."""
        self._pending += part.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._pending))
        if len(self._pending) < self._scan_at:
            return []
        return self._release(final=False)

    def finish_parts(self) -> list[str]:
        """The end: every part still held, masked."""
        return self._release(final=True)


def _part_ends(ends: list[int], base: int, cut: int,
               found: list[tuple[int, int, Detector]]) -> list[int]:
    """Where the parts that end by `cut` end in the text (their held bytes from `base`
    on), each moved past a finding it would cut."""
    out = []
    for rel in ends:
        b = base + rel
        for s, e, _ in found:
            if s < b < e:
                b = e
        if b > cut:
            break
        out.append(b)
    return out
