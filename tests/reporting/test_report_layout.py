"""The report's page in a real Chromium, at a phone's width (390 px, as a phone lays it
out: its viewport meta heeded) and a desktop's (1280 px): no word is broken inside (a
line wraps at spaces and hyphens; only a word longer than any column, an identity or a
hash, wraps anywhere), nothing sticks out of the page (a table wider than the screen
scrolls in its own box, which the keyboard reaches), and axe-core finds no serious or
critical issue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extproc.recording.chain import Signer
from tests.reporting.conftest import write_period
from tests.reporting.test_evidence import page_of, report_of
from tests.support.axe import serious_violations
from tests.support.browser import chromium, tab
from tests.support.layout import broken_words

pytestmark = pytest.mark.e2e  # a real Chromium

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

@pytest.fixture
async def page_file(sqlite_url: str, signer: Signer, tmp_path: Path) -> Path:
    """The period's report as one HTML file, as `tollgate audit report` writes it."""
    await write_period(sqlite_url, signer, tmp_path)
    written = tmp_path / "report.html"
    written.write_text(page_of(report_of(sqlite_url, signer, tmp_path), signer),
                       encoding="utf-8")
    return written


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1280px"])
def test_no_word_is_broken_nothing_sticks_out_and_axe_is_clean(
        page_file: Path, viewport: dict[str, int]) -> None:
    # Chromium is started here, once the store is written: Playwright's synchronous API
    # must not run beside the test's event loop (tests/e2e/conftest.py says why).
    with chromium("the report's layout test") as browser, \
            tab(browser, viewport=viewport, is_mobile=viewport is PHONE,
                has_touch=viewport is PHONE) as page:
        page.goto(page_file.as_uri())
        laid: dict[str, Any] = page.evaluate(
            "() => ({inner: window.innerWidth, wide: document.documentElement.scrollWidth})")
        # A phone lays the page out at its own width only where the page asks it to.
        assert laid["inner"] == viewport["width"], laid
        assert laid["wide"] <= viewport["width"], laid
        # No word cut between lines, outside the long words marked to wrap anywhere
        # (.id) and what draws no words (scripts, styles, the charts' SVG).
        assert broken_words(page, "body", unless=".id, script, style, svg") == []
        assert page.locator(".id").count() > 0  # the long identity and table name
        assert serious_violations(page) == []
        # A table wider than the phone scrolls in its box, and the keyboard gets there.
        boxes = page.locator(".scroll")
        wider = [i for i in range(boxes.count()) if boxes.nth(i).evaluate(
            "box => box.scrollWidth > box.clientWidth")]
        if viewport is PHONE:
            assert wider, "no table scrolls at a phone's width"
            first = boxes.nth(wider[0])
            for _ in range(200):
                page.keyboard.press("Tab")
                if first.evaluate("box => box === document.activeElement"):
                    break
            else:
                pytest.fail("Tab never reached the scrolling table")
            page.keyboard.press("ArrowRight")
            page.wait_for_function("box => box.scrollLeft > 0", arg=first.element_handle())
        else:
            assert wider == []  # a desktop shows every table whole
