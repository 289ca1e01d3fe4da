"""What reading an image's text costs: ms per image by size, the OCR's share and the
masking's, for an image with nothing to mask and one with a card number and an e-mail.

    .venv/bin/python -m bench.images

Screenshots drawn here with Pillow (lines of text on white, as a terminal or a form
shows them) at 400x300, 1280x800 and 1920x1080, each read by `ImageMasker.mask_now` (the
OCR in the calling thread, no time bound) five times after one warm-up: the median.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from bench.masking import median_seconds
from extproc.masking import Masker, MaskSpec
from extproc.masking.images import ImageLimits, ImageMasker

KEY = b"bench-hmac-key-0123456789abcdef"
SIZES = [(400, 300), (1280, 800), (1920, 1080)]
LINES = ["$ make test", "collected 2137 items", "tests/http passed in 4.21s",
         "Build #4411 finished: 0 failures", "deploy to staging queued"]
SECRETS = ["card 4111 1111 1111 1111", "mail alice@example.com"]


def screenshot(size: tuple[int, int], secrets: bool) -> bytes:
    """Lines of text down the image, every 40 pixels; with the secrets among them."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=18)
    lines = (LINES + SECRETS) if secrets else LINES
    for i in range(size[1] // 40):
        draw.text((16, 12 + 40 * i), lines[i % len(lines)], fill="black", font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def main() -> None:
    images = ImageMasker(ImageLimits())
    masker, spec = Masker(KEY, images=images), MaskSpec()
    print(f"{'image':>12}{'bytes':>10}{'nothing (ms)':>15}{'secrets (ms)':>15}{'boxes':>8}")
    for size in SIZES:
        plain, secret = screenshot(size, False), screenshot(size, True)
        clean = median_seconds(lambda plain=plain: images.mask_now(plain, spec, masker), 5)
        dirty = median_seconds(lambda secret=secret: images.mask_now(secret, spec, masker), 5)
        _, counts = images.mask_now(secret, spec, masker)
        print(f"{size[0]:>6}x{size[1]:<5}{len(secret):>10}{clean * 1e3:>15.0f}"
              f"{dirty * 1e3:>15.0f}{sum(counts.values()):>8}")


if __name__ == "__main__":
    main()
