"""A host's output (stdout, stderr) masked as it streams, byte-exact where nothing is masked.

The stream masker (masking/stream.py) reads text and holds back what a later read could
still turn into a secret, so a key cut between two reads is masked whole. A program's
output is bytes, not always UTF-8: they are decoded with `surrogateescape`, which maps
each byte that is not UTF-8 to a code point of its own and back, so binary output passes
unchanged unless a detector matches in it; a multi-byte character cut between reads is
decoded once whole (an incremental decoder).
"""

from __future__ import annotations

import codecs
from collections import Counter

from extproc.masking import Masker, MaskSpec
from extproc.masking.stream import MaskingStream


class MaskedOutput:
    """Feed a stream's bytes in order, then finish; each call returns what may go out now.
    With no mask (`spec` None) bytes pass as they come."""

    def __init__(self, masker: Masker, spec: MaskSpec | None) -> None:
        self._masker, self._spec = masker, spec
        self._stream = MaskingStream(masker, spec) if spec is not None else None
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._released: Counter[str] = Counter()  # counts of the streams released before

    @property
    def counts(self) -> Counter[str]:
        """How many values each detector masked so far."""
        if self._stream is None:
            return Counter()
        return self._released + self._stream.counts

    def feed(self, data: bytes) -> bytes:
        if self._stream is None:
            return data
        return _encode(self._stream.feed(self._decoder.decode(data)))

    def finish(self) -> bytes:
        """The rest, masked: the end of the stream (or a pause a terminal must show)."""
        if self._stream is None:
            return b""
        out = _encode(self._stream.feed(self._decoder.decode(b"", final=True))
                      + self._stream.finish())
        self._decoder.reset()
        return out

    def release(self) -> bytes:
        """Everything held so far, masked as if the stream ended here, and go on: what an
        interactive shell's prompt needs. A secret the host writes slowly, split across
        such a pause, is masked only in the part read whole (docs/architecture.md)."""
        if self._stream is None or self._spec is None:
            return b""
        out = self.finish()
        self._released += self._stream.counts
        self._stream = MaskingStream(self._masker, self._spec)
        return out


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
