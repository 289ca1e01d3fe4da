"""The live sessions page in a real browser (Debian's Chromium, headless): a moderator
sees an agent's HTTP session listed, ends it with a reason from its End button (the
agent's next request is then refused, saying so), and locks and unlocks an identity; a
viewer sees the lists without any of those buttons. axe-core finds no serious violation
with the End form open.

Real Envoy and tollgate (the gateway of test_live_http_e2e.py) and the page's own API
calls, with the pages' CSRF header, as a browser makes them.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e import test_live_http_e2e as live_http
from tests.e2e.test_approvals_page import WAIT_MS
from tests.e2e.test_live_http_e2e import ask
from tests.e2e.test_live_sessions_e2e import SECURITY, VIEWER, listed
from tests.support import tokens
from tests.support.axe import serious_violations
from tests.support.gateway import Gateway

gw = live_http.gw


def open_page(page: Page, gw: Gateway, token: str) -> None:
    page.goto(gw.admin_url + "/sessions/ui")
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    expect(page.locator("#live")).to_be_visible(timeout=WAIT_MS)


def test_a_moderator_ends_a_session_from_its_button(page: Page, gw: Gateway) -> None:
    sub, session = "svc-page-end", "page-run-1"
    token = tokens.token(sub, ["agents"])
    assert ask(gw, token, session).status == 200
    listed(gw, sub)
    open_page(page, gw, SECURITY)
    expect(page.locator("nav.site a[aria-current=page]")).to_have_text("Sessions")
    row = page.locator(f'#sessions tr[data-session="{session}"]')
    expect(row).to_contain_text(sub, timeout=WAIT_MS)
    expect(row).to_contain_text("http")
    row.get_by_role("button", name=re.compile(f"End session {session}")).click()
    expect(page.locator("#end-form")).to_be_visible()
    expect(page.locator("#end-reason")).to_be_focused()
    assert serious_violations(page) == [], "the End form open"
    page.fill("#end-reason", "from the page")
    page.click("#end-confirm")
    expect(page.locator("#status")).to_have_text(
        re.compile(f"^session {session} ended on "), timeout=WAIT_MS)
    expect(row).to_have_count(0, timeout=WAIT_MS)
    reply = ask(gw, token, session)
    assert reply.status == 403 and reply.json()["error"] == "session_ended", reply.body
    assert "ended by sec-sam: from the page" in reply.json()["message"]


def test_a_moderator_locks_and_unlocks_an_identity(page: Page, gw: Gateway) -> None:
    sub = "svc-page-lock"
    token = tokens.token(sub, ["agents"])
    open_page(page, gw, SECURITY)
    page.fill("#lock-identity", sub)
    page.fill("#lock-reason", "checking it")
    page.click("#lock-form button[type=submit]")
    expect(page.locator("#status")).to_have_text(
        re.compile(f"^identity {sub} is locked until "), timeout=WAIT_MS)
    locked = page.locator("#locks tbody tr", has_text=sub)
    expect(locked).to_contain_text("checking it", timeout=WAIT_MS)
    reply = ask(gw, token, "page-lock-1")
    assert reply.status == 403 and reply.json()["error"] == "locked", reply.body
    locked.get_by_role("button", name=f"Unlock {sub}").click()
    expect(page.locator("#status")).to_have_text(f"{sub} may act again", timeout=WAIT_MS)
    expect(locked).to_have_count(0, timeout=WAIT_MS)
    assert ask(gw, token, "page-lock-1").status == 200


def test_a_viewer_sees_the_lists_without_the_moderators_buttons(
        page: Page, gw: Gateway) -> None:
    sub, session = "svc-page-view", "page-view-1"
    assert ask(gw, tokens.token(sub, ["agents"]), session).status == 200
    listed(gw, sub)
    open_page(page, gw, VIEWER)
    row = page.locator(f'#sessions tr[data-session="{session}"]')
    expect(row).to_contain_text(sub, timeout=WAIT_MS)
    expect(row.get_by_role("button")).to_have_count(0)
    expect(page.locator("#lock-form")).to_be_hidden()
    assert serious_violations(page) == [], "a viewer's page"


def test_someone_neither_viewer_nor_moderator_is_told_so(page: Page, gw: Gateway) -> None:
    page.goto(gw.admin_url + "/sessions/ui")
    page.fill("#token", tokens.token("svc-nosy", ["agents"]))
    page.click("#login button[type=submit]")
    expect(page.locator("#status")).to_have_text(
        re.compile("^forbidden: svc-nosy is not in sessions.viewers"), timeout=WAIT_MS)
    expect(page.locator("#live")).to_be_hidden()
