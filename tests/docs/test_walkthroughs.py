"""The walkthrough pages (docs/walkthroughs/) and their screenshots, without a browser:
each page shows each of its walkthrough's steps at 1280 px and at 390 px, with the step's
words as the images' alt text, and no other image; each image is there, a PNG of its
width's viewport; no image lies unused; all of them together stay small. `make
walkthroughs` makes the images (tests/support/walkthroughs.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import png
from tests.support.walkthrough_steps import IMAGES, WALKTHROUGHS, WIDTHS, image_names

PAGES = IMAGES.parent
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
MOST_BYTES = 3_000_000  # every image together, in the repository


def shown(page: Path) -> list[tuple[str, str]]:
    """(alt, path) of each image the page shows, in its order."""
    return IMAGE.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(WALKTHROUGHS))
def test_each_page_shows_its_steps_at_both_widths_and_nothing_else(name: str) -> None:
    wanted = [(step.shows, f"img/{step.name}-{width}.png")
              for step in WALKTHROUGHS[name] for width in WIDTHS]
    assert shown(PAGES / f"{name}.md") == wanted


@pytest.mark.parametrize("name", image_names())
def test_each_image_is_a_png_of_its_widths_viewport(name: str) -> None:
    width = int(name.rsplit("-", 1)[1].removesuffix(".png"))
    data = (IMAGES / name).read_bytes()
    assert png.size(data) == (WIDTHS[width]["width"], WIDTHS[width]["height"])


def test_no_image_is_unused_and_all_stay_small() -> None:
    there = sorted(p.name for p in IMAGES.iterdir())
    assert there == sorted(image_names())
    assert sum(p.stat().st_size for p in IMAGES.iterdir()) < MOST_BYTES
