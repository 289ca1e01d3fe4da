"""A real OpenID provider for the sign-in tests: the quickstart's development one
(extproc/quickstart/dev_oidc.mjs, the npm package oidc-provider under Node), its demo users
signing in through its own login form, driven in Chromium."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from extproc.quickstart import dev_oidc, stack
from extproc.quickstart.dev_oidc import DEMO_USERS, DemoUser

DANA, SAM, AVA = DEMO_USERS


def oidc_settings(port: int, folder: Path) -> dict[str, Any]:
    """`admin.oidc` signing in with the provider that will serve on `port`, its session
    key in `folder`."""
    return dev_oidc.admin_oidc(port, folder / "session.key")


@contextmanager
def dev_provider(port: int, admin_url: str, log_dir: Path, secret: str | None = None,
                 users: Iterable[DemoUser] = DEMO_USERS) -> Iterator[str]:
    """The development provider on `port`, its web client returning to `admin_url` (a
    confidential one with `secret`), signing `users` in, until the block ends; yields its
    issuer once it serves its discovery document."""
    why = dev_oidc.missing()
    if why is not None:
        pytest.fail(f"no development OpenID provider: {why}; `make test` installs it")
    process = dev_oidc.start(port, admin_url, log_dir, users, secret=secret)
    try:
        yield dev_oidc.issuer(port)
    finally:
        process.stop()


def free_port() -> int:
    return stack.free_port()


def sign_in_at_provider(page: Page, user: DemoUser, password: str | None = None) -> None:
    """At the provider's login form (waited for), sign in as `user`."""
    page.wait_for_selector("form input#login")
    page.fill("#login", user.id)
    page.fill("#password", user.password if password is None else password)
    page.click("form button[type=submit]")
