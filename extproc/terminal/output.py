"""A host's output (stdout, stderr) masked as it streams, byte-exact where nothing is masked.

The stream masker (masking/stream.py) reads text and holds back what a later read could
still turn into a secret, so a key cut between two reads is masked whole; when the host
pauses, `flush` lets all of it go but what could still be a secret's start. A program's
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
        self._stream = MaskingStream(masker, spec) if spec is not None else None
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")

    @property
    def counts(self) -> Counter[str]:
        """How many values each detector masked so far."""
        return Counter() if self._stream is None else Counter(self._stream.counts)

    def feed(self, data: bytes) -> bytes:
        if self._stream is None:
            return data
        return _encode(self._stream.feed(self._decoder.decode(data)))

    def finish(self) -> bytes:
        """The rest, masked: the end of the stream."""
        if self._stream is None:
            return b""
        out = _encode(self._stream.feed(self._decoder.decode(b"", final=True))
                      + self._stream.finish())
        return out

    def flush(self) -> bytes:
        """The host paused: what is held goes now, masked, but for what could still be the
        start of a secret (MaskingStream.flush). A multi-byte character cut by the pause
        waits for its rest in the decoder."""
        if self._stream is None:
            return b""
        return _encode(self._stream.flush())


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
