"""What the admin pages' browser tests share: one headless Chromium per module, and a
fresh tab per test, of the module's VIEWPORT when it sets one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browser import chromium, tab


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    with chromium(f"the tests in {request.module.__name__}") as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    viewport = getattr(request.module, "VIEWPORT", None)
    with tab(browser, **({"viewport": viewport} if viewport else {})) as opened:
        yield opened
