"""Text in an image, read by OCR and masked by drawing over it.

An image (an MCP tool's screenshot, a binary resource) cannot be masked as bytes: its
text is read by OCR (RapidOCR's ONNX models, shipped in `rapidocr-onnxruntime`), each
line's text is scanned by the masker's detectors as any text is, and every character of
a finding is covered by a filled box drawn over its bounding box (Presidio's image
redactor does the same). The image is then encoded again in its own format; one with
nothing to mask is returned as it came, byte for byte.

Fail closed: an image that cannot be decoded, holds more than one frame (only the first
would be read), is over the bounds in bytes or pixels, or whose reading takes longer than
its time bound raises `UnreadableImage` — never passed unread.

OCR takes tenths of a second on a CPU (bench/images.py): it runs in a thread of its
own, off the event loop, and the engine (and its imports) are loaded on the first image
only, so a process that never sees one pays nothing for it.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, UnidentifiedImageError

if TYPE_CHECKING:
    from extproc.masking.masker import Masker, MaskSpec

# Formats an image is encoded again in; any other is refused (it could not be written
# back as it came).
_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"})
_PAD = 2  # pixels a box reaches past a character's, so no stroke's edge stays readable
_FILL = "black"  # opaque, in every mode drawn on
# Two characters further apart than this share of a line's median character width have
# a space between them (the recognition model writes none: "Card4111...").
_SPACE_GAP = 0.45


class UnreadableImage(Exception):
    """An image that cannot be read whole within the bounds: refused, never passed."""


@dataclass(frozen=True)
class ImageLimits:
    """The bounds an image is read within (config `masking.image_*`, whose defaults
    these are): the encoded image's bytes, width x height, and how long reading it may
    take, waiting for the reader included."""

    max_bytes: int = 8 << 20
    max_pixels: int = 8_300_000  # a 3840x2160 screen fits
    ocr_ms: float = 10_000.0

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_pixels <= 0 or self.ocr_ms <= 0:
            raise ValueError("image bounds must be more than 0")


@dataclass(frozen=True)
class Char:
    """One character the OCR read and where: (left, top, right, bottom)."""

    text: str
    box: tuple[int, int, int, int]


class ImageMasker:
    """Masks the text in images, within `limits`; one per process, shared."""

    def __init__(self, limits: ImageLimits | None = None) -> None:
        self.limits = limits or ImageLimits()
        self._engine: Any = None
        self._loading = threading.Lock()
        # One image read at a time per process: the ONNX runtime uses every core already.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollgate-ocr")

    def __getstate__(self) -> ImageLimits:
        """Only the bounds: the masker goes to the record's writer process, which builds
        an engine of its own if it ever reads an image."""
        return self.limits

    def __setstate__(self, limits: ImageLimits) -> None:
        self.__init__(limits)  # type: ignore[misc]

    async def mask(self, data: bytes, spec: MaskSpec, masker: Masker
                   ) -> tuple[bytes, Counter[str]]:
        """`data` with what `spec` masks drawn over (`data` itself: nothing was), and
        what was masked, by detector; `UnreadableImage` when it cannot be read."""
        if len(data) > self.limits.max_bytes:
            raise UnreadableImage(f"the image is {len(data)} bytes, over the "
                                  f"{self.limits.max_bytes} bytes an image may have")
        loop = asyncio.get_running_loop()
        reading = loop.run_in_executor(self._pool, self.mask_now, data, spec, masker)
        try:
            return await asyncio.wait_for(reading, self.limits.ocr_ms / 1000)
        except TimeoutError:
            raise UnreadableImage(f"reading the image's text took over "
                                  f"{self.limits.ocr_ms:.0f} ms") from None

    def mask_now(self, data: bytes, spec: MaskSpec, masker: Masker
                 ) -> tuple[bytes, Counter[str]]:
        """`mask`, in the calling thread and without its time bound."""
        image = self._opened(data)
        boxes, counts = _findings(self.read(image), spec, masker)
        if not boxes:
            return data, counts
        return _drawn(image, boxes), counts

    def read(self, image: Image.Image) -> list[list[Char]]:
        """The lines of text OCR finds in `image`, character by character."""
        import numpy as np  # with the engine: only a process that reads images needs it

        rgb = np.asarray(image.convert("RGB"))
        found, _ = self._ocr()(rgb, use_cls=False, return_word_box=True)
        return [_line(entry) for entry in found or ()]

    def _opened(self, data: bytes) -> Image.Image:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))
                width, height = image.size
                if width * height > self.limits.max_pixels:
                    raise UnreadableImage(
                        f"the image is {width}x{height} pixels, over the "
                        f"{self.limits.max_pixels} pixels an image may have")
                if image.format not in _FORMATS:
                    raise UnreadableImage(f"images of format {image.format} are not read")
                if getattr(image, "n_frames", 1) > 1:
                    raise UnreadableImage("the image has more than one frame: only one "
                                          "would be read")
                image.load()
        except UnreadableImage:
            raise
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError,
                Image.DecompressionBombWarning, SyntaxError) as exc:
            raise UnreadableImage(f"the image cannot be decoded: {exc}") from None
        return image

    def _ocr(self) -> Any:
        with self._loading:
            if self._engine is None:
                from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-untyped]

                # Detection at the image's own scale (up to the engine's 2000 pixels a
                # side): its default enlarges every image to 736 pixels on its short
                # side, which costs a small screenshot three times as much and reads
                # no better.
                self._engine = RapidOCR(det_limit_type="max", det_limit_side_len=2000)
            return self._engine


def _line(entry: Sequence[Any]) -> list[Char]:
    """One OCR line (box, text, score, character boxes, characters, scores) as characters."""
    return [Char(t, _bounds(b)) for b, t in zip(entry[3], entry[4], strict=False)]


def _spaced(line: list[Char]) -> list[Char]:
    """`line` with a space where two characters stand apart: the recognition model
    writes none between words ("Card4111..."), and some detectors need them."""
    if len(line) < 2:
        return line
    widths = sorted(c.box[2] - c.box[0] for c in line)
    gap = max(1.0, widths[len(widths) // 2] * _SPACE_GAP)
    out = [line[0]]
    for prev, char in itertools.pairwise(line):
        if char.box[0] - prev.box[2] > gap and not (prev.text + char.text).isspace():
            out.append(Char(" ", (prev.box[2], prev.box[1], char.box[0], prev.box[3])))
        out.append(char)
    return out


def _bounds(points: Sequence[Sequence[float]]) -> tuple[int, int, int, int]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1


def _findings(lines: list[list[Char]], spec: MaskSpec, masker: Masker
              ) -> tuple[list[tuple[int, int, int, int]], Counter[str]]:
    """The boxes over every character a finding covers, and the findings by detector.
    The lines are scanned as one text, a line a line (no finding spans two), twice: as
    read, and with spaces where the characters stand apart (a card number's groups);
    what either reading finds is covered."""
    boxes: list[tuple[int, int, int, int]] = []
    counts: Counter[str] = Counter()
    for reading in (lines, [_spaced(line) for line in lines]):
        chars: list[Char | None] = []
        for line in reading:
            chars += [*line, None]
        text = "".join("\n" if c is None else c.text for c in chars)
        found: Counter[str] = Counter()
        for start, end, name in masker.analyze(text, spec):
            covered = [c.box for c in chars[start:end] if c is not None and not c.text.isspace()]
            if covered:
                boxes.append((min(b[0] for b in covered) - _PAD,
                              min(b[1] for b in covered) - _PAD,
                              max(b[2] for b in covered) + _PAD,
                              max(b[3] for b in covered) + _PAD))
                found[name] += 1
        counts |= found  # a finding both readings make counts once
    return boxes, counts


def _drawn(image: Image.Image, boxes: list[tuple[int, int, int, int]]) -> bytes:
    """`image` with each box filled, encoded again in its format."""
    kind = image.format
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    draw = ImageDraw.Draw(image)
    for box in boxes:
        draw.rectangle(box, fill=_FILL)
    out = io.BytesIO()
    image.save(out, format=kind)
    return out.getvalue()
