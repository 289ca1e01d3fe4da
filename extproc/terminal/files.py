"""A file's bytes masked whole: what an SFTP download or a file in `kubectl cp`'s tar
stream passes through when the decision masks it. The file keeps its size, so what a
client learnt of it before (an SFTP STAT, a tar header) stays true."""

from __future__ import annotations

from collections import Counter

from extproc.masking import Masker, MaskSpec
from extproc.masking.detectors import Text, scan


class Unmaskable(Exception):
    """A file under a mask that cannot be served masked; its text says why."""


def mask_file(masker: Masker, spec: MaskSpec, data: bytes) -> tuple[bytes, Counter[str]]:
    """A file's bytes masked whole, and what each detector masked. Each value the masker
    finds becomes as many `*` as it had bytes (its line breaks kept), whatever the
    strategy: the file keeps its size, which clients learn from a path's STAT before they
    open it (asyncssh's get and `scp -O` read exactly that many bytes). Only text (UTF-8
    without NUL) is read by the detectors as it is meant: anything else is Unmaskable,
    since masked it would be a corrupt file, and unmasked a leak."""
    if b"\0" in data:
        raise Unmaskable("binary (it holds NUL bytes)")
    try:
        data.decode()
    except UnicodeDecodeError:
        raise Unmaskable("not UTF-8 text") from None
    found = scan(Text(data), masker.detectors(spec))
    out = bytearray(data)
    for start, end, _ in found:
        out[start:end] = bytes(c if c in b"\r\n" else 0x2A for c in data[start:end])  # "*"
    return bytes(out), Counter(detector.name for _, _, detector in found)
