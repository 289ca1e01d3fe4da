"""What the e2e modules share: one headless Chromium per module and a fresh tab per test
(of the module's VIEWPORT when it sets one), for the admin pages' browser tests; a real
sshd per module, for the SSH ones.

Not one Chromium per test process: Playwright's synchronous API keeps its event loop
marked running on the thread for as long as it is started, and every `async def` test
after it, in any module, then fails (`Runner.run() cannot be called from a running event
loop`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browser import chromium, tab
from tests.support.sshd import Sshd, start_sshd


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    with chromium(f"the tests in {request.module.__name__}") as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    viewport = getattr(request.module, "VIEWPORT", None)
    with tab(browser, **({"viewport": viewport} if viewport else {})) as opened:
        yield opened


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """Debian's sshd on a port of its own, for the module's SSH targets."""
    with start_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
