"""The image masker on images drawn here with Pillow, read by the real OCR engine: what a
detector finds is covered, the rest stays readable; an image with nothing protected
passes byte for byte; the bounds refuse."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest
from PIL import Image, ImageDraw, ImageFont

from extproc.masking import Masker, MaskSpec
from extproc.masking.images import Char, ImageLimits, ImageMasker, UnreadableImage

CARD = "4111 1111 1111 1111"
MAIL = "alice@example.com"
MASKER = Masker(b"k" * 32)
IMAGES = ImageMasker()


def drawn(lines: list[str], size: tuple[int, int] = (420, 240), kind: str = "PNG") -> bytes:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=20)
    for i, line in enumerate(lines):
        draw.text((12, 16 + 48 * i), line, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, format=kind)
    return out.getvalue()


def text_in(data: bytes) -> str:
    """What OCR reads in an image, spaces left out (the model writes some, not all)."""
    lines = IMAGES.read(Image.open(io.BytesIO(data)))
    return "\n".join("".join(c.text for c in line if not c.text.isspace()) for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_a_card_number_and_an_address_are_covered_and_nothing_else(kind: str) -> None:
    data = drawn([f"Card {CARD}", f"Mail: {MAIL}", "Invoice total"], kind=kind)
    assert CARD.replace(" ", "") in text_in(data)  # the OCR reads it before

    out, counts = IMAGES.mask_now(data, MaskSpec(), MASKER)

    assert counts == {"credit_card": 1, "email": 1}
    image = Image.open(io.BytesIO(out))
    assert image.format == kind and image.size == (420, 240)
    after = text_in(out)
    assert "4111" not in after and "@" not in after and "example" not in after
    assert "Invoicetotal" in after and "Card" in after and "Mail" in after


def test_an_image_with_nothing_protected_passes_byte_for_byte() -> None:
    data = drawn(["Build passed", "12 tests, 0 failures"])
    out, counts = IMAGES.mask_now(data, MaskSpec(), MASKER)
    assert out is data and not counts


def test_what_the_spec_does_not_name_stays() -> None:
    data = drawn([f"Mail {MAIL}"])
    out, counts = IMAGES.mask_now(data, MaskSpec(detectors=frozenset({"credit_card"}),
                                                 fields=frozenset()), MASKER)
    assert out is data and not counts


def test_an_image_over_the_bytes_or_pixels_or_of_no_image_is_refused() -> None:
    data = drawn(["hello"], size=(200, 100))
    small = ImageMasker(ImageLimits(max_bytes=len(data) - 1))
    with pytest.raises(UnreadableImage, match="bytes"):
        asyncio.run(small.mask(data, MaskSpec(), MASKER))
    with pytest.raises(UnreadableImage, match="200x100 pixels"):
        ImageMasker(ImageLimits(max_pixels=200 * 100 - 1)).mask_now(data, MaskSpec(), MASKER)
    with pytest.raises(UnreadableImage, match="cannot be decoded"):
        IMAGES.mask_now(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, MaskSpec(), MASKER)
    with pytest.raises(UnreadableImage, match="cannot be decoded"):
        IMAGES.mask_now(data[: len(data) // 2], MaskSpec(), MASKER)


def test_an_animated_image_is_refused_for_its_frames_unread() -> None:
    frames = [Image.new("RGB", (60, 40), c) for c in ("white", "black")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(UnreadableImage, match="more than one frame"):
        IMAGES.mask_now(out.getvalue(), MaskSpec(), MASKER)


class _Stalled(ImageMasker):
    """An OCR that does not finish until let go: the time bound, without a slow image."""

    def __init__(self) -> None:
        super().__init__(ImageLimits(ocr_ms=50))
        self.go = threading.Event()

    def read(self, image: Image.Image) -> list[list[Char]]:
        self.go.wait(10)
        return []


def test_reading_past_the_time_bound_is_refused() -> None:
    stalled = _Stalled()
    try:
        with pytest.raises(UnreadableImage, match="over 50 ms"):
            asyncio.run(stalled.mask(drawn(["x"]), MaskSpec(), MASKER))
    finally:
        stalled.go.set()
