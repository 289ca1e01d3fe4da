"""Headless Chromium for the admin pages' tests: Debian's headless shell (tests/system-deps.sh
says why that build), never one Playwright downloads, and each tab failing its test on
any script error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium-headless-shell")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium(what: str) -> Iterator[Browser]:
    """One headless Chromium; `what` names the tests that need it, for the failure."""
    if not CHROMIUM.exists():
        pytest.fail(f"no {CHROMIUM}: {what} drive Debian's Chromium; install it with `sudo "
                    "DEBIAN_FRONTEND=noninteractive apt-get install -y chromium-headless-shell` "
                    "(never `playwright install`)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def tab(browser: Browser, **context: Any) -> Iterator[Page]:
    """A fresh tab in a fresh context (its own sessionStorage; `context`: its options);
    a script error in it fails the test."""
    opened = browser.new_context(**context)
    page = opened.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        opened.close()
    assert errors == [], f"the page's script failed: {errors}"
