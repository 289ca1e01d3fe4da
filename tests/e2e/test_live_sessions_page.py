"""The live sessions page in a real browser (Debian's Chromium, headless): a moderator
sees an agent's HTTP session listed, ends it with a reason from its End button (its
identity locked out for 15 minutes unless they choose "no lock", the page saying which;
the agent's next request is then refused, saying so), and locks and unlocks an identity;
a viewer sees the lists without any of those buttons; each row's Watch link opens the
session's live view. At a desktop's width and a phone's (each session a card), no word
is cut across lines and no button's label wraps; the status line stops asking to sign in
once signed in; axe-core finds no serious violation. The landing page lists Sessions for
those who may see them.

Real Envoy and tollgate (the gateway of test_live_http_e2e.py) and the page's own API
calls, with the pages' CSRF header, as a browser makes them.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect

from extproc.exchange.live import END_LOCK_SECONDS
from tests.e2e import test_live_http_e2e as live_http
from tests.e2e.test_approvals_page import DESKTOP, PHONE, WAIT_MS, tab_to
from tests.e2e.test_live_http_e2e import ask
from tests.e2e.test_live_sessions_e2e import SECURITY, VIEWER, listed
from tests.support import tokens
from tests.support.axe import serious_violations
from tests.support.browser import tab
from tests.support.gateway import Gateway
from tests.support.layout import broken_words, overflowing, wrapped_labels

gw = live_http.gw


SIGNED_IN = "Signed in. The lists refresh every 3 s."
# Where a phone's card or a desktop's table must not cut a word: every text of the page
# but the ids (a session id has no spaces to break at).
TEXTS = "h1, h2, th, td, button, a, label, p, #status"
LABELS = "h1, h2, button, td.actions a, nav.site a"


def open_page(page: Page, gw: Gateway, token: str) -> None:
    page.goto(gw.admin_url + "/sessions/ui")
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    expect(page.locator("#live")).to_be_visible(timeout=WAIT_MS)


def clock(page: Page, seconds_from_now: int) -> re.Pattern[str]:
    """The browser's clock `seconds_from_now`, to the minute ("09:15"), give or take one."""
    near = page.evaluate("""(seconds) => [-60, 0, 60].map((skew) => {
        const at = new Date(Date.now() + (seconds + skew) * 1000);
        return String(at.getHours()).padStart(2, "0") + ":"
          + String(at.getMinutes()).padStart(2, "0"); })""", seconds_from_now)
    return re.compile("(" + "|".join(near) + ")")


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
    # Its default: the identity locked out, for how long and until when said.
    expect(page.locator("#end-lock")).to_have_value(str(END_LOCK_SECONDS))
    expect(page.locator("#end-lock option:checked")).to_have_text("for 15 minutes")
    expect(page.locator("#end-means")).to_have_text(re.compile(
        f"^Ending it locks {sub} out of every front for 15 min, until "
        + clock(page, END_LOCK_SECONDS).pattern + ": its client cannot reconnect"))
    assert serious_violations(page) == [], "the End form open"
    page.fill("#end-reason", "from the page")
    page.click("#end-confirm")
    expect(page.locator("#status")).to_have_text(re.compile(
        f"^Session {session} ended; {sub} is locked out until "
        + clock(page, END_LOCK_SECONDS).pattern + r" \(in 1[45] min\)\.$"), timeout=WAIT_MS)
    expect(row).to_have_count(0, timeout=WAIT_MS)
    for again in (session, "page-run-2"):  # the session, and any other of the identity
        reply = ask(gw, token, again)
        assert reply.status == 403 and reply.json()["error"] == "locked", reply.body
        assert "by sec-sam: from the page" in reply.json()["message"]
    page.locator("#locks tbody tr", has_text=sub).get_by_role(
        "button", name=f"Unlock {sub}").click()
    expect(page.locator("#status")).to_have_text(f"{sub} may act again", timeout=WAIT_MS)


def test_no_lock_is_a_choice_the_page_says_lets_the_client_reconnect(
        page: Page, gw: Gateway) -> None:
    sub, session = "svc-page-nolock", "page-nolock-1"
    token = tokens.token(sub, ["agents"])
    assert ask(gw, token, session).status == 200
    listed(gw, sub)
    open_page(page, gw, SECURITY)
    row = page.locator(f'#sessions tr[data-session="{session}"]')
    row.get_by_role("button", name=re.compile(f"End session {session}")).click()
    page.fill("#end-reason", "just this one")
    page.select_option("#end-lock", label="no lock")
    expect(page.locator("#end-means")).to_have_text(
        f"No lock: its client may reconnect at once, as {sub}, and go on.")
    page.click("#end-confirm")
    expect(page.locator("#status")).to_have_text(
        f"Session {session} ended; not locked: its client may reconnect at once.",
        timeout=WAIT_MS)
    reply = ask(gw, token, session)
    assert reply.status == 403 and reply.json()["error"] == "session_ended", reply.body
    assert ask(gw, token, "page-nolock-2").status == 200


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


def test_once_signed_in_the_status_line_no_longer_asks_to_sign_in(
        page: Page, gw: Gateway) -> None:
    page.goto(gw.admin_url + "/sessions/ui")
    expect(page.locator("#status")).to_have_text("Sign in to see the sessions open now.")
    open_page(page, gw, VIEWER)
    expect(page.locator("#status")).to_have_text(SIGNED_IN, timeout=WAIT_MS)


def test_each_rows_watch_link_opens_its_live_view(page: Page, gw: Gateway) -> None:
    sub, session = "svc-page-watch", "page-watch-1"
    assert ask(gw, tokens.token(sub, ["agents"]), session).status == 200
    listed(gw, sub)
    open_page(page, gw, VIEWER)  # a viewer watches; only a moderator ends
    row = page.locator(f'#sessions tr[data-session="{session}"]')
    watch = row.get_by_role("link", name=f"Watch session {session} of {sub} live")
    expect(watch).to_have_attribute("href", f"/recordings/ui#live={quote(session)}",
                                    timeout=WAIT_MS)
    expect(page.locator("#sessions tbody tr")).to_have_count(
        page.locator("#sessions tbody tr td.actions a", has_text="Watch").count())
    tab_to(page, f'#sessions tr[data-session="{session}"] td.actions a')
    page.keyboard.press("Enter")
    page.wait_for_url(f"{gw.admin_url}/recordings/ui#live={quote(session)}")
    expect(page.locator("#live-id")).to_have_text(session, timeout=WAIT_MS)


def test_the_focus_stays_on_its_button_as_the_list_refreshes(page: Page, gw: Gateway) -> None:
    """Keyboard alone: the End button reached with Tab keeps the focus when the rows are
    drawn again (every 3 s), and Enter opens the End form."""
    sub, session = "svc-page-keys", "page-keys-1"
    assert ask(gw, tokens.token(sub, ["agents"]), session).status == 200
    listed(gw, sub)
    open_page(page, gw, SECURITY)
    button = f'#sessions tr[data-session="{session}"] button'
    expect(page.locator(button)).to_be_visible(timeout=WAIT_MS)
    tab_to(page, button)
    page.evaluate("(s) => { document.querySelector(s).dataset.drawn = 'before'; }", button)
    page.wait_for_function("(s) => document.querySelector(s)?.dataset.drawn === undefined",
                           arg=button, timeout=WAIT_MS)  # the rows drawn again
    assert page.evaluate("(s) => document.activeElement === document.querySelector(s)", button)
    page.keyboard.press("Enter")
    expect(page.locator("#end-reason")).to_be_focused()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_no_word_is_cut_and_no_button_wraps(browser: Browser, gw: Gateway,
                                            viewport: dict[str, int]) -> None:
    """A phone's page shows each session as a card; a desktop's, a table whose headings
    stay whole. Neither cuts a word across lines (but ids), wraps a button's label, or
    scrolls sideways; axe-core finds no serious violation, the End form open or not."""
    sub = "svc-page-layout-nightly-reporting"
    session = "page-layout-7c0f3e9a2b5d4c1a8e6f0b3d9c2a7e5f"
    assert ask(gw, tokens.token(sub, ["agents"]), session).status == 200
    listed(gw, sub)
    with tab(browser, viewport=viewport) as page:
        open_page(page, gw, SECURITY)
        row = page.locator(f'#sessions tr[data-session="{session}"]')
        expect(row).to_contain_text(sub, timeout=WAIT_MS)
        for state in ("listed", "the End form open"):
            if state != "listed":
                row.get_by_role("button", name=re.compile(f"End session {session}")).click()
                expect(page.locator("#end-means")).to_be_visible()
            assert broken_words(page, TEXTS) == [], state
            assert wrapped_labels(page, LABELS) == [], state
            if viewport == DESKTOP:
                assert wrapped_labels(page, "#sessions th, #locks th") == [], state
            assert not overflowing(page), state
            assert serious_violations(page) == [], state
        if viewport == PHONE:  # a card: each value after its label
            label = row.locator("td").nth(2).evaluate(
                "(td) => getComputedStyle(td, '::before').content")
            assert label == '"Identity: "'


@pytest.mark.parametrize(("token", "said"), [
    (VIEWER, "Sessions: you may see the sessions open now and watch them."),
    (SECURITY, "Sessions: you may see the sessions open now, watch them, end them and lock "
               "identities out."),
])
def test_the_landing_page_lists_sessions_for_those_who_may_see_them(
        page: Page, gw: Gateway, token: str, said: str) -> None:
    page.goto(gw.admin_url + "/")
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    expect(page.locator("#may-sessions")).to_have_text(said, timeout=WAIT_MS)
    expect(page.locator("#may-sessions a")).to_have_attribute("href", "/sessions/ui")
    assert serious_violations(page) == []


def test_the_landing_page_tells_others_why_not(page: Page, gw: Gateway) -> None:
    page.goto(gw.admin_url + "/")
    page.fill("#token", tokens.token("pat", ["analysts"]))
    page.click("#login button[type=submit]")
    expect(page.locator("#may-sessions")).to_have_text(
        "Sessions: they are for their viewers (group:dba, group:security) and moderators "
        "(group:security), and you are neither.", timeout=WAIT_MS)
    expect(page.locator("#may-sessions a")).to_have_count(0)
