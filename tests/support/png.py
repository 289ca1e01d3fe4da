"""PNG screenshots read back for the browser tests, with the standard library alone: the
size, and the pixels of an 8-bit, non-interlaced RGB or RGBA image (what Chromium's
screenshots are), to check a page drew something and in which colours."""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    pixels: list[tuple[int, int, int]]  # row by row, alpha dropped

    def colours(self) -> Counter[tuple[int, int, int]]:
        return Counter(self.pixels)

    def near(self, colour: tuple[int, int, int], tolerance: int = 24) -> int:
        """How many pixels are within `tolerance` of `colour` in every channel
        (anti-aliased lines blend with what is behind them)."""
        return sum(1 for p in self.pixels
                   if all(abs(a - b) <= tolerance for a, b in zip(p, colour, strict=True)))


def size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header."""
    assert data[:8] == SIGNATURE, "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def decode(data: bytes) -> Image:
    assert data[:8] == SIGNATURE, "not a PNG"
    position, compressed = 8, bytearray()
    header: tuple[int, ...] = ()
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        chunk = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            compressed += chunk
        elif kind == b"IEND":
            break
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(bytes(compressed))
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        _unfilter(kind, line, previous, channels)
        pixels += zip(line[0::channels], line[1::channels], line[2::channels], strict=True)
        previous = line
    return Image(width, height, pixels)


def _unfilter(kind: int, line: bytearray, previous: bytearray, channels: int) -> None:
    if kind == 0:
        return
    if kind == 2:
        for i, above in enumerate(previous):
            line[i] = (line[i] + above) & 0xFF
        return
    for i in range(len(line)):
        left = line[i - channels] if i >= channels else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + previous[i]) // 2) & 0xFF
        elif kind == 4:
            above = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            guess = left + above - corner
            pa, pb, pc = abs(guess - left), abs(guess - above), abs(guess - corner)
            best = left if pa <= pb and pa <= pc else above if pb <= pc else corner
            line[i] = (line[i] + best) & 0xFF
        else:
            raise AssertionError(f"unknown PNG filter {kind}")
