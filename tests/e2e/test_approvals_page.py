"""The approvals page in a real browser: Debian's Chromium (/usr/bin/chromium, headless),
driven by Playwright's sync API, against a real Envoy, tollgate and the demo's SQL upstream.

An agent's unbounded write is held (the default pack holds an UPDATE or DELETE without
WHERE for `group:dba`); an approver opens `/approvals/ui` on tollgate's admin port, gives
their own token, and approves or denies the held request with the page's buttons; the
held HTTP request then completes (200) or is refused (403). The page is served under a
Content-Security-Policy, and what agents sent is shown as text, never as markup.

Playwright never downloads a browser here: it launches the distribution's Chromium
(`apt-get install chromium`); without it these tests fail, they do not skip.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import Page, expect

from extproc.codecs.inert import UNSAFE, terminal
from tests.e2e.test_approvals_e2e import AGENT, DBA, OTHER_DBA, Held, api, pending_for, sql
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.test_inert import ERASE, FORGED, raw

WAIT_MS = 10_000  # the longest any condition is waited for in the browser
# The page lists again every 5 s; a condition that needs one such refresh waits longer.
REFRESH_MS = 12_000


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    """The default pack; a hold waits up to 30 s (the page decides within it)."""
    with module_gateway(tmp_path_factory, otlp, "approvals_page",
                        settings={"approvals": {"max_hold_seconds": 30}}) as running:
        yield running


def open_page(page: Page, gw: Gateway, token: str | None = None) -> None:
    """Open the approvals page and, given a token, sign in with it."""
    page.goto(gw.admin_url + "/approvals/ui")
    if token is not None:
        page.fill("#token", token)
        page.click("#login button[type=submit]")


def foreign_token(sub: str, groups: list[str]) -> str:
    """A well-formed token with the gateway's issuer, audience and key id, signed by a key
    the gateway does not trust."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": sub, "groups": groups,
              "exp": 2**31 - 1}
    return jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "test-rsa"})


def test_the_page_is_served_under_a_content_security_policy(gw: Gateway, page: Page) -> None:
    """`/approvals/ui` and its script carry a CSP that allows only the page's own script,
    and Chromium enforces it: an inline script added to the page does not run."""
    response = page.goto(gw.admin_url + "/approvals/ui")
    assert response is not None and response.status == 200
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().partition(" ")[::2] for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    script = page.request.get(gw.admin_url + "/approvals/ui.js")
    assert script.headers["content-security-policy"] == policy
    assert script.headers["content-type"].startswith("text/javascript")
    ran = page.evaluate("""() => {
        const inline = document.createElement("script");
        inline.textContent = "window.__inline = 1";
        document.body.append(inline);
        return window.__inline;
    }""")
    assert ran is None


def test_without_a_token_or_with_a_bad_one_nothing_is_listed(gw: Gateway, page: Page) -> None:
    """Without a token the page asks for one and shows no table; a token signed by a key
    the gateway does not trust gets the API's 401 error in the status line."""
    open_page(page, gw)
    status, table = page.locator("#status"), page.locator("table#approvals")
    expect(status).to_have_text(re.compile("Paste your token"))
    expect(status).not_to_have_class("error")
    expect(table).to_be_hidden()

    page.fill("#token", foreign_token("mallory", ["dba"]))
    page.click("#login button[type=submit]")
    expect(status).to_have_class("error", timeout=WAIT_MS)
    expect(status).to_have_text(
        re.compile(r"^unauthenticated: the token does not verify"), timeout=WAIT_MS)
    expect(table).to_be_hidden()


def test_an_approver_approves_a_held_request_and_it_completes(gw: Gateway, page: Page) -> None:
    """A held UPDATE appears as a row with who asks, the target, the SQL and the
    approvers; Approve with a reason lets the held request complete with 200, the row
    goes, and the API shows the approval decided by the approver with that reason."""
    text = "UPDATE customers SET phone = phone"
    held = Held(lambda: sql(gw, text))
    approval = pending_for(gw, text)
    open_page(page, gw, DBA)

    row = page.locator(f'table#approvals tr[data-id="{approval["id"]}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text(approval["id"])
    expect(cells.nth(1)).to_have_text("svc-autogen")
    expect(cells.nth(2)).to_have_text(approval["target"])
    expect(cells.nth(3)).to_have_text(text)
    expect(cells.nth(5)).to_have_text("group:dba")
    assert approval["target"]
    assert not held.answered

    row.locator("input").fill("ticket 42: phones normalised")
    row.locator("button.approve").click()
    status = page.locator("#status")
    expect(status).to_have_text(f"{approval['id']} approved by dana.", timeout=WAIT_MS)
    expect(status).not_to_have_class("error")
    expect(row).to_have_count(0)
    reply = held.result()
    assert reply.status == 200, reply.body

    code, shown = api(gw, "GET", f"/approvals/{approval['id']}", DBA)
    assert code == 200
    assert shown["status"] in ("approved", "used")
    assert (shown["decided_by"], shown["reason"]) == ("dana", "ticket 42: phones normalised")


def test_a_denial_needs_a_reason_and_then_refuses_the_request(gw: Gateway, page: Page) -> None:
    """Deny without a reason shows the API's `reason_required` error and the request stays
    held; a reason typed in the row survives the page's periodic refresh (text and focus);
    Deny with it refuses the held request with 403 `approval_denied`."""
    text = "UPDATE customers SET email = email"
    held = Held(lambda: sql(gw, text))
    approval = pending_for(gw, text)
    open_page(page, gw, DBA)

    row = page.locator(f'table#approvals tr[data-id="{approval["id"]}"]')
    status = page.locator("#status")
    row.locator("button.deny").click()
    expect(status).to_have_text(re.compile(r"^reason_required: "), timeout=WAIT_MS)
    expect(status).to_have_class("error")
    expect(row).to_be_visible()
    assert not held.answered
    assert api(gw, "GET", f"/approvals/{approval['id']}", DBA)[1]["status"] == "pending"

    reason = row.locator("input")
    reason.fill("not during the freeze")
    # The next periodic listing replaces the status line (the error, or an older
    # listing's time); the typed reason must outlive it.
    before = status.inner_text()
    expect(status).not_to_have_text(before, timeout=REFRESH_MS)
    expect(status).to_have_text(re.compile(r"^1 pending\. Updated"))
    expect(reason).to_have_value("not during the freeze")
    expect(reason).to_be_focused()

    row.locator("button.deny").click()
    expect(status).to_have_text(f"{approval['id']} denied by dana.", timeout=WAIT_MS)
    expect(row).to_have_count(0)
    reply = held.result()
    assert reply.status == 403
    body = reply.json()
    assert (body["error"], body["approval_id"]) == ("approval_denied", approval["id"])
    assert "not during the freeze" in body["message"]


def test_what_agents_send_is_shown_as_text_never_markup(gw: Gateway, page: Page) -> None:
    """SQL carrying an <img onerror=...> (and a requester named like one) appears
    literally in the row; no element is made from it and its handler never runs."""
    markup = "<img src=x onerror=window.__pwned=1>"
    text = f"UPDATE customers SET name = '{markup}'"
    requester = "<img src=x onerror=window.__pwned=2>"
    agent = tokens.token(requester, ["agents"], ttl=600)
    held = Held(lambda: sql(gw, text, token=agent))
    approval = pending_for(gw, text)
    assert approval["requester"] == requester
    open_page(page, gw, DBA)

    row = page.locator(f'table#approvals tr[data-id="{approval["id"]}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    summary = row.locator("td.summary")
    expect(summary).to_contain_text(markup)
    assert markup in summary.inner_text()
    expect(row.locator("td").nth(1)).to_have_text(requester)
    expect(page.locator("table#approvals img")).to_have_count(0)
    assert page.locator("img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"

    code, _ = api(gw, "POST", f"/approvals/{approval['id']}/deny", OTHER_DBA,
                  {"reason": "markup in a customer's name"})
    assert code == 200
    assert held.result().status == 403


def test_control_and_bidi_characters_are_shown_as_escapes(gw: Gateway, page: Page) -> None:
    """A held statement that would erase a terminal line and reverse text with a bidi
    override is shown with both as escapes (as `tollgate approvals` shows them), so the
    approver sees they are there; the row's text holds no such character."""
    text = f"UPDATE customers SET name = '{ERASE}{FORGED} \u202egnp.exe'"
    held = Held(lambda: sql(gw, text))
    approval = pending_for(gw, text)
    open_page(page, gw, DBA)

    row = page.locator(f'table#approvals tr[data-id="{approval["id"]}"]')
    summary = row.locator("td.summary")
    expect(summary).to_have_text(terminal(text), timeout=WAIT_MS)
    assert "\\x1b[2K\\r" in summary.inner_text() and "\\u202egnp.exe" in summary.inner_text()
    assert [raw(cell) for cell in row.locator("td").all_inner_texts()] == [[]] * 9

    code, _ = api(gw, "POST", f"/approvals/{approval['id']}/deny", OTHER_DBA,
                  {"reason": "terminal tricks"})
    assert code == 200
    assert held.result().status == 403


def test_the_page_and_the_terminal_escape_the_same_characters(gw: Gateway, page: Page) -> None:
    """The admin pages' shared script's `visible` (extproc/admin/admin_page.js, which the monitor
    page loads too) and extproc.codecs.inert's `terminal` give the same text for the first
    0x3000 code points (controls, bidi, zero-width, separators among them) and on either
    side of every edge of the unsafe class."""
    inside = [UNSAFE.match(chr(c)) is not None for c in range(sys.maxunicode + 1)]
    edges = {c + step for c in range(1, len(inside)) if inside[c] != inside[c - 1]
             for step in (-1, 0)}
    # One apart from the next: two lone surrogates side by side would make a pair.
    text = " ".join(chr(c) for c in sorted(edges | set(range(0x3000))))
    open_page(page, gw)
    assert page.evaluate("(text) => visible(text)", text) == terminal(text)


def test_the_agents_own_token_sees_nothing_to_decide(gw: Gateway, page: Page) -> None:
    """An agent's token is valid but names no approver group: the page lists only what
    the agent itself asked for, which it cannot decide (the API refuses it)."""
    text = "UPDATE customers SET ssn = ssn"
    held = Held(lambda: sql(gw, text))
    approval = pending_for(gw, text)
    open_page(page, gw, AGENT)

    row = page.locator(f'table#approvals tr[data-id="{approval["id"]}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    row.locator("button.approve").click()
    status = page.locator("#status")
    expect(status).to_have_class("error", timeout=WAIT_MS)
    expect(status).to_have_text(re.compile(r"^self_approval: "))
    assert not held.answered

    code, _ = api(gw, "POST", f"/approvals/{approval['id']}/deny", OTHER_DBA,
                  {"reason": "agents do not approve themselves"})
    assert code == 200
    assert held.result().status == 403
