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
concatenated input, wherever the chunks were cut. To bound CPU when something is held
long, a stream re-scans only once the unreleased text has grown by 64 bytes, or by half
its excess over the hold: nothing open, text is released at most `hold` + 64 bytes
(plus one chunk) behind; a JWT or key block open, at most 1.5 times its bound (~61 KiB).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from extproc.masking.detectors import (
    Detector,
    Text,
    gate_passes,
    pem_starts_at,
    private_key,
    scan,
)
from extproc.masking.strategies import TOKEN_MAX, unmasked, unredacted

if TYPE_CHECKING:
    from extproc.masking.masker import Masker, MaskSpec

_MIN_STEP = 64
_CONTEXT = 512  # > the widest look-back of any detector (AWS: 160 + "secret_access_key")


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
        self.counts: Counter[str] = Counter()

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the masked text that can be released now (maybe "")."""
        self._pending += chunk.encode("utf-8", "surrogatepass")
        if len(self._pending) < self._scan_at:
            return ""
        return self._release(final=False)

    def finish(self) -> str:
        """The end of the body: return the rest, masked."""
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        text = self._context + self._pending
        base, end = len(self._context), len(text)
        t = Text(text, base if self._pem_open else None)
        found = scan(t, self._detectors)
        if found:
            found = unmasked(text, found) if self._spec.keep_masked else unredacted(text, found)
        cut = end if final else self._safe_cut(t, base, found)
        released = [
            (max(s, base) - base, e - base, d) for s, e, d in found if e > base and e <= cut
        ]
        out = self._masker.splice(text[base:cut], released, self._spec, self.counts)
        self._pem_open = any(
            d is private_key and s == cut and not pem_starts_at(text, s)
            for s, _, d in found
        )
        self._context = text[max(0, cut - _CONTEXT) : cut]
        self._pending = text[cut:]
        self._scan_at = len(self._pending) + max(_MIN_STEP, (len(self._pending) - self.hold) // 2)
        return out.decode("utf-8", "surrogatepass")

    def _safe_cut(self, t: Text, base: int, found: list[tuple[int, int, Detector]]) -> int:
        """How far text can be released: before anything that could still grow or change.

        Detectors read the text's fold (see shadow.py), so what they may still read is
        measured there, and mapped back."""
        text, end, folded_end = t.source, len(t.source), len(t.raw)
        cut = t.to_source(max(0, folded_end - self.hold))
        for d in self._long:  # a gate (memoised by the scan) spares most texts the search
            m = (d.pending.search(t.raw, t.to_raw(base))
                 if d.pending is not None and gate_passes(d, t) else None)
            if m is not None and folded_end - m.start() <= d.max_len:
                cut = min(cut, t.to_source(m.start()))
        for s, e, _ in reversed(found):
            if s < cut < e or (e >= end and s < cut):
                cut = s
        cut = max(cut, base)
        while base < cut < end and text[cut] & 0xC0 == 0x80:  # not inside a UTF-8 sequence
            cut -= 1
        return cut
