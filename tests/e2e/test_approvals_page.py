"""The approvals page in a real browser: Debian's Chromium (its headless shell),
driven by Playwright's sync API, against a real Envoy, tollgate and the demo's SQL upstream.

An agent's unbounded write is held (the default pack holds an UPDATE or DELETE without
WHERE for `group:dba`); an approver opens `/approvals/ui` on tollgate's admin port (or an
approval's own view, `/approvals/ui#ID`, the link the webhook gives), gives their own
token, reads what the agent asks, why, what approving grants and how long the agent has
waited, and approves or denies it after a confirmation, with the mouse or the keyboard
alone; the held HTTP request then completes (200) or is refused (403). The page works at a
phone's width (rows become cards, their buttons in view), passes axe-core's check with no
serious violation, loads nothing from outside the gateway, is served under a
Content-Security-Policy, and shows what agents sent as text, never as markup.

Playwright never downloads a browser here: it launches the distribution's Chromium
(`apt-get install chromium-headless-shell`); without it these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import Browser, Locator, Page, expect

from extproc.codecs.inert import UNSAFE, terminal
from extproc.codecs.text import utc
from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import (
    AGENT,
    DBA,
    OTHER_DBA,
    Held,
    api,
    held_sql,
    pending_for,
    sql,
)
from tests.support import tokens
from tests.support.axe import serious_violations
from tests.support.browser import tab
from tests.support.cli import tollgate
from tests.support.gateway import Gateway, module_gateway
from tests.test_inert import ERASE, FORGED, raw

WAIT_MS = 10_000  # the longest any condition is waited for in the browser
# The page lists again every 5 s; a condition that needs one such refresh waits longer.
REFRESH_MS = 15_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# The approvals page keeps the token here, for this tab only (extproc/admin/admin_page.js).
TOKEN_KEY = "tollgate.approver-token"
UTC_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    """The default pack; a hold waits up to 30 s (the page decides within it). The dbas
    read the record too, so an approval's view shows the requester's recent activity."""
    with module_gateway(tmp_path_factory, otlp, "approvals_page",
                        settings={"approvals": {"max_hold_seconds": 30},
                                  "recordings": {"readers": ["group:dba"]}}) as running:
        yield running


def open_page(page: Page, gw: Gateway, token: str | None = None, view: str = "") -> None:
    """Open the approvals page (at `view`, its fragment) and, given a token, sign in."""
    page.goto(gw.admin_url + "/approvals/ui" + view)
    if token is not None:
        page.fill("#token", token)
        page.click("#login button[type=submit]")


def row_of(page: Page, approval: dict[str, Any]) -> Locator:
    return page.locator(f'table#approvals tr[data-id="{approval["id"]}"]')


def confirm(page: Page, reason: str | None) -> None:
    """In the open confirmation, give `reason` and confirm."""
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible(timeout=WAIT_MS)
    if reason is not None:
        dialog.locator("textarea").fill(reason)
    dialog.locator("#confirm-yes").click()


def foreign_token(sub: str, groups: list[str]) -> str:
    """A well-formed token with the gateway's issuer, audience and key id, signed by a key
    the gateway does not trust."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": sub, "groups": groups,
              "exp": 2**31 - 1}
    return jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "test-rsa"})


def deny_with_api(gw: Gateway, approval: dict[str, Any], held: Held[Any]) -> None:
    """End a test's held request: denied by another dba through the API."""
    code, _ = api(gw, "POST", f"/approvals/{approval['id']}/deny", OTHER_DBA,
                  {"reason": "the test is over"})
    assert code == 200
    assert held.result().status == 403


def tab_to(page: Page, selector: str, most: int = 60) -> None:
    """Press Tab until `selector` has the focus (fails after `most` presses)."""
    for _ in range(most):
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Tab")
    pytest.fail(f"{most} presses of Tab never reached {selector}")


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height, read from its IHDR chunk (it must be a PNG)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def inside(box: dict[str, float] | None, viewport: dict[str, int]) -> bool:
    return (box is not None and box["x"] >= 0 and box["y"] >= 0 and box["width"] > 0
            and box["x"] + box["width"] <= viewport["width"]
            and box["y"] + box["height"] <= viewport["height"])


# -- what the page loads, and from where ------------------------------------------------

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


def test_nothing_is_loaded_from_outside_the_gateway(gw: Gateway, page: Page) -> None:
    """Signed in, listing, and an approval's view with the requester's activity: every
    request the browser makes goes to tollgate's admin port."""
    # The held writes transform `id`, a column no rule protects (a protected one's value
    # transformed and stored, `name = trim(name)`, is refused, not held: sql.derived_store).
    text = "UPDATE customers SET id = id || ''"
    held, approval = held_sql(gw, text)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    open_page(page, gw, DBA)
    expect(row_of(page, approval)).to_be_visible(timeout=WAIT_MS)
    page.goto(gw.admin_url + f"/approvals/ui#{approval['id']}")
    expect(page.locator("#detail-activity ul")).to_be_visible(timeout=WAIT_MS)
    assert any(url.startswith(gw.admin_url + "/recordings/search?") for url in asked), asked
    assert [url for url in asked if not url.startswith(gw.admin_url + "/")] == []
    deny_with_api(gw, approval, held)


# -- signing in, and in again -----------------------------------------------------------

def test_without_a_token_or_with_a_bad_one_it_asks_for_a_token(gw: Gateway, page: Page) -> None:
    """Without a token the page asks for one and shows no table; a token signed by a key
    the gateway does not trust gets a sign-in prompt saying why (the API's 401), with the
    form to give another: never an empty page."""
    open_page(page, gw)
    status, table = page.locator("#status"), page.locator("table#approvals")
    expect(status).to_have_text(re.compile("Paste your token"))
    expect(status).not_to_have_class("error")
    expect(table).to_be_hidden()

    page.fill("#token", foreign_token("mallory", ["dba"]))
    page.click("#login button[type=submit]")
    prompt = page.locator("#signin-again")
    expect(prompt).to_be_visible(timeout=WAIT_MS)
    expect(prompt).to_have_text(re.compile(
        r"^That token is not accepted: sign in with your own\. unauthenticated: the token "
        r"does not verify"))
    expect(page.locator("#token")).to_be_visible()
    expect(status).to_have_class("error")
    expect(table).to_be_hidden()


def test_an_expired_token_asks_to_sign_in_again_and_keeps_the_page(gw: Gateway,
                                                                   page: Page) -> None:
    """Rows shown, then the token expires: the next listing asks the approver to sign in
    again, saying the token expired and how old what is shown is; the rows stay. A new
    token takes the prompt away."""
    text = "UPDATE customers SET id = ltrim(id)"
    held, approval = held_sql(gw, text)
    open_page(page, gw, DBA)
    row = row_of(page, approval)
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#who")).to_have_text("dana")

    expired = tokens.token("dana", ["dba"], ttl=-600)
    page.evaluate("([key, token]) => sessionStorage.setItem(key, token)", [TOKEN_KEY, expired])
    prompt = page.locator("#signin-again")
    expect(prompt).to_be_visible(timeout=REFRESH_MS)
    expect(prompt).to_have_text(re.compile(
        r"^Your token is no longer accepted: sign in again\. unauthenticated: the token does "
        r"not verify: it expired at .* UTC .*What is shown below is as of \d{4}-\d\d-\d\d "
        r"\d\d:\d\d:\d\d UTC\.$"))
    expect(page.locator("#token")).to_be_visible()
    expect(row).to_be_visible()  # the page is not emptied
    expect(row.locator("td.summary")).to_contain_text(text)

    page.fill("#token", DBA)
    page.click("#login button[type=submit]")
    expect(prompt).to_be_hidden(timeout=WAIT_MS)
    expect(page.locator("#login")).to_be_hidden()
    expect(row).to_be_visible()

    # "Use another token" opens the form, which the periodic listing leaves open.
    page.click("#switch")
    expect(page.locator("#token")).to_be_focused()
    status = page.locator("#status")
    before = status.inner_text()
    expect(status).not_to_have_text(before, timeout=REFRESH_MS)
    expect(page.locator("#login")).to_be_visible()
    deny_with_api(gw, approval, held)


# -- the list, and deciding from it -------------------------------------------------------

def test_an_approver_approves_a_held_request_and_it_completes(gw: Gateway, page: Page) -> None:
    """A held UPDATE appears as a row with the SQL (a link to its view), who asks, the
    target, why, what approving grants and times relative (UTC on hover); Approve asks
    for confirmation, with the reason, and lets the held request complete with 200; the
    row goes, and the API shows the approval decided by the approver with that reason."""
    text = "UPDATE customers SET phone = phone"
    held, approval = held_sql(gw, text)
    open_page(page, gw, DBA)

    row = row_of(page, approval)
    expect(row).to_be_visible(timeout=WAIT_MS)
    cells = row.locator("td")
    expect(cells.nth(0).locator("a")).to_have_text(text)
    expect(cells.nth(0).locator("a")).to_have_attribute("href", f"#{approval['id']}")
    expect(cells.nth(0).locator(".id")).to_have_text(approval["id"])
    expect(cells.nth(1)).to_have_text("svc-autogen")
    expect(cells.nth(2)).to_have_text(approval["target"])
    expect(cells.nth(4)).to_have_text("this request, once")
    asked = cells.nth(5).locator("time")
    expect(asked).to_have_text(re.compile(r"^(just now|\d+ s ago)$"))
    expect(asked).to_have_attribute("title", utc(approval["created_us"]) + " UTC")
    assert approval["target"]
    assert not held.answered

    row.locator("button.approve").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-what")).to_have_text(text)
    expect(dialog.locator("#confirm-grant")).to_contain_text(
        "Approving grants this request, once.")
    assert not held.answered  # nothing is decided before the confirmation
    confirm(page, "ticket 42: phones normalised")
    status = page.locator("#status")
    expect(status).to_have_text(f"{approval['id']} approved by dana.", timeout=WAIT_MS)
    expect(status).not_to_have_class("error")
    expect(dialog).to_be_hidden()
    expect(row).to_have_count(0)
    reply = held.result()
    assert reply.status == 200, reply.body
    # What it then did, as its record says, stays in view after the status line moves on.
    expect(page.locator("#decided")).to_have_text(
        f"{approval['id']} approved by dana. Then it ran: its target answered 200 OK.",
        timeout=WAIT_MS)

    code, shown = api(gw, "GET", f"/approvals/{approval['id']}", DBA)
    assert code == 200
    assert shown["status"] in ("approved", "used")
    assert (shown["decided_by"], shown["reason"]) == ("dana", "ticket 42: phones normalised")

    # Its view says what it did, and shows no expiry that can no longer come.
    page.goto(approval["page_url"])
    expect(page.locator("#detail-wait")).to_have_text(re.compile(
        r"^Its request was answered .+ \(the approval used then\): it ran: its target "
        r"answered 200 OK\.$"), timeout=WAIT_MS)
    expect(page.locator("#detail-expiry")).to_have_count(0)
    expect(page.locator("#detail-actions")).to_have_text(
        "Approved by dana; a request of it was let through.")
    page.goto(f"{gw.admin_url}/approvals/ui#pending")

    # The history tab lists it, decided by the approver with the reason.
    page.click("#tab-history")
    decided = page.locator(f'table#history tr[data-id="{approval["id"]}"]')
    expect(decided).to_be_visible(timeout=WAIT_MS)
    expect(decided.locator("td").nth(3)).to_have_text(re.compile("^(approved|used)$"))
    expect(decided.locator("td").nth(4)).to_have_text("dana")
    expect(decided.locator("td").nth(6)).to_have_text("ticket 42: phones normalised")


def test_a_denial_needs_a_reason_and_then_refuses_the_request(gw: Gateway, page: Page) -> None:
    """Deny asks for confirmation; confirmed without a reason it says one is needed and
    the request stays held; a reason typed in the confirmation survives the page's
    periodic refresh (text and focus); confirmed with it, the held request is refused 403
    `approval_denied` with that reason."""
    text = "UPDATE customers SET email = email"
    held, approval = held_sql(gw, text)
    open_page(page, gw, DBA)

    row = row_of(page, approval)
    status = page.locator("#status")
    row.locator("button.deny").click()
    confirm(page, None)
    error = page.locator("#confirm-error")
    expect(error).to_have_text("A denial needs a reason: the agent is told it.")
    expect(page.locator("dialog#confirm")).to_be_visible()
    assert not held.answered
    assert api(gw, "GET", f"/approvals/{approval['id']}", DBA)[1]["status"] == "pending"

    reason = page.locator("#confirm-reason")
    expect(reason).to_be_focused()
    reason.type("not during the freeze")
    # The next periodic listing replaces the status line (its time); the typed reason
    # must outlive it.
    before = status.inner_text()
    expect(status).not_to_have_text(before, timeout=REFRESH_MS)
    expect(status).to_have_text(re.compile(r"^\d+ pending, \d+ with an agent waiting\. Updated"))
    expect(reason).to_have_value("not during the freeze")
    expect(reason).to_be_focused()

    page.locator("#confirm-yes").click()
    expect(status).to_have_text(f"{approval['id']} denied by dana.", timeout=WAIT_MS)
    expect(row).to_have_count(0)
    reply = held.result()
    assert reply.status == 403
    body = reply.json()
    assert (body["error"], body["approval_id"]) == ("approval_denied", approval["id"])
    assert "not during the freeze" in body["message"]


def test_keyboard_alone_approves_and_denies(gw: Gateway, page: Page) -> None:
    """Tab to a row's Approve, Enter: the confirmation opens with the focus on its reason;
    Escape cancels (the focus back on the button, nothing decided). Enter again, type a
    reason, Tab to the confirmation's Approve, Enter: approved. Then Tab to another
    request's link, Enter opens its view with the focus on its heading; Tab to Deny,
    Enter, type the reason, Tab, Enter: denied."""
    first, second = "UPDATE customers SET name = name", "UPDATE customers SET id = trim(id)"
    held_first, approval = held_sql(gw, first)
    held_second, other = held_sql(gw, second)
    open_page(page, gw, DBA)
    expect(row_of(page, approval)).to_be_visible(timeout=WAIT_MS)
    expect(row_of(page, other)).to_be_visible(timeout=WAIT_MS)

    approve = f'tr[data-id="{approval["id"]}"] button.approve'
    page.locator("body").focus()
    tab_to(page, approve)
    page.keyboard.press("Enter")
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-reason")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator(approve)).to_be_focused()
    assert api(gw, "GET", f"/approvals/{approval['id']}", DBA)[1]["status"] == "pending"

    page.keyboard.press("Enter")
    expect(page.locator("#confirm-reason")).to_be_focused()
    page.keyboard.type("keyboard approval")
    page.keyboard.press("Tab")
    expect(page.locator("#confirm-yes")).to_be_focused()
    page.keyboard.press("Enter")
    status = page.locator("#status")
    expect(status).to_have_text(f"{approval['id']} approved by dana.", timeout=WAIT_MS)
    assert held_first.result().status == 200
    expect(page.locator("#pending-title")).to_be_focused()  # its row is gone

    tab_to(page, f'tr[data-id="{other["id"]}"] td.summary a')
    page.keyboard.press("Enter")
    expect(page.locator("#detail-title")).to_be_focused(timeout=WAIT_MS)
    expect(page.locator("#detail-what")).to_have_text(second)
    tab_to(page, "#detail-actions button.deny")
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-reason")).to_be_focused()
    page.keyboard.type("keyboard denial")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(status).to_have_text(f"{other['id']} denied by dana.", timeout=WAIT_MS)
    expect(page.locator("#detail-title .state")).to_have_text("denied")
    expect(page.locator("#detail-title")).to_be_focused()
    reply = held_second.result()
    assert reply.status == 403 and "keyboard denial" in reply.json()["message"]


def test_a_confirmation_closed_and_opened_again_at_once_still_decides(
        gw: Gateway, page: Page) -> None:
    """A dialog's close event comes after the close, as a task of its own. Closed and
    opened again within one task (Escape then Enter, as fast as a browser under load
    takes them), that late event must not end the new confirmation: its Approve approves."""
    held, approval = held_sql(gw, "UPDATE customers SET id = coalesce(id, id)")
    open_page(page, gw, DBA)
    approve = f'tr[data-id="{approval["id"]}"] button.approve'
    expect(page.locator(approve)).to_be_visible(timeout=WAIT_MS)
    page.click(approve)
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    page.evaluate("(s) => { document.getElementById('confirm').close(); "
                  "document.querySelector(s).click(); }", approve)
    expect(dialog).to_be_visible()
    page.click("#confirm-yes")
    expect(page.locator("#status")).to_have_text(f"{approval['id']} approved by dana.",
                                                 timeout=WAIT_MS)
    assert held.result().status == 200


# -- an approval's own view -----------------------------------------------------------------

def test_an_approvals_view_shows_what_why_the_grant_the_wait_and_the_links(
        gw: Gateway, page: Page) -> None:
    """The link the API (and so the webhook and `approvals show`) gives opens the
    approval's view once signed in: the SQL, the reasons and rules, what approving grants,
    how long the agent has waited, the masked request, the trace and the record, the
    requester's other pending request and recent activity (from the record)."""
    allowed = "SELECT count(*) FROM customers"
    assert sql(gw, allowed).status == 200
    assert sql(gw, "DROP TABLE customers").status == 403  # what it tried before

    def recorded() -> bool:
        code, found = api(gw, "GET", "/recordings/search?identity=svc-autogen&limit=50", DBA)
        return code == 200 and any(r["action"] == "deny" for r in found["records"])

    stack.wait_until(recorded, 15, "the agent's SELECT and DROP in the record")
    text, other_text = "DELETE FROM customers", "UPDATE customers SET ssn = ssn"
    held, approval = held_sql(gw, text)
    other_held, other = held_sql(gw, other_text)
    assert approval["page_url"] == f"{gw.admin_url}/approvals/ui#{approval['id']}"

    page.goto(approval["page_url"])
    page.fill("#token", DBA)
    page.click("#login button[type=submit]")
    title = page.locator("#detail-title")
    expect(title).to_have_text(re.compile(rf"^Approval {approval['id']} pending$"),
                               timeout=WAIT_MS)
    expect(page.locator("#detail-what")).to_have_text(text)
    reasons = page.locator("#detail-reasons li")
    expect(reasons).to_have_text(approval["reasons"])
    assert approval["reasons"]
    expect(page.locator("#detail-rules")).to_have_text(", ".join(approval["rules"]))
    expect(page.locator("#detail-grant")).to_have_text("this request, once")
    expect(page.locator("#detail-wait")).to_have_text(re.compile(
        r"^The agent has waited \d+ (s|min)\b.* Approving now lets the waiting request "
        r"through at once\."))
    expect(page.locator("#detail-actions button.approve")).to_be_visible()
    expect(page.locator("#detail-actions button.deny")).to_be_visible()
    expect(page.locator("#detail-request")).to_contain_text("POST /sql")
    expect(page.locator("#detail-request")).to_contain_text(text)
    # No trace UI configured: the trace id, as text; the record's link on the page.
    expect(page.locator("#detail-trace")).to_have_text(approval["trace_id"])
    assert page.locator("a#detail-trace").count() == 0
    expect(page.locator("#detail-record")).to_have_attribute(
        "href", f"/recordings/ui#record={approval['trace_id']}")
    others = page.locator("#detail-others a")
    expect(others).to_have_text([other_text])
    expect(others).to_have_attribute("href", f"#{other['id']}")
    activity = page.locator("#detail-activity li a")
    expect(activity.first).to_be_visible(timeout=WAIT_MS)
    # Summed up on the approval's target, the refusal before the hold first to see.
    expect(page.locator("#detail-activity-summary")).to_have_text(re.compile(
        rf"exchanges on {re.escape(approval['target'])} in the last day: [1-9]\d* refused, "
        r"\d+ held, [1-9]\d* allowed\. The latest:$"))
    expect(page.locator("#detail-activity li.refused").first).to_contain_text("deny")
    assert all(href.startswith("/recordings/ui#record=") for href in
               activity.evaluate_all("(links) => links.map((a) => a.getAttribute('href'))"))
    for shown in page.locator("#detail time").all():
        assert UTC_TIME.match(shown.get_attribute("title") or ""), shown.get_attribute("title")

    # The other request's link opens its view; back goes to the list.
    others.click()
    expect(page.locator("#detail-what")).to_have_text(other_text, timeout=WAIT_MS)
    page.click("#detail a.back")
    expect(row_of(page, approval)).to_be_visible(timeout=WAIT_MS)
    deny_with_api(gw, approval, held)
    deny_with_api(gw, other, other_held)


def test_each_trace_a_reason_names_links_to_its_record(gw: Gateway, page: Page) -> None:
    """A flow hold's reason names the answers the agent read before by their traces
    (policies/flow.rego): the view (and the monitor's refusals, with the same function of
    admin_page.js) links each to that exchange in the record, and shows the rest of the
    reason as text, escaped as any."""
    open_page(page, gw)
    read, told = "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"
    reason = (f"DELETE statement after the agent read untrusted content from egress "
              f"(trace {read}); words to the model (action) from <b>tools</b>\u202e "
              f"(trace {told})")
    shown = page.evaluate("""(reason) => {
        const item = document.createElement("li");
        item.append(...traceLinked(reason));
        return {text: item.textContent, html: item.innerHTML,
                links: Array.from(item.querySelectorAll("a"),
                                  (a) => [a.textContent, a.getAttribute("href")])};
    }""", reason)
    assert shown["links"] == [[read, f"/recordings/ui#record={read}"],
                              [told, f"/recordings/ui#record={told}"]]
    assert "<b>" not in shown["html"] and "\u202e" not in shown["text"]
    assert shown["text"].startswith("DELETE statement after the agent read untrusted "
                                    f"content from egress (trace {read}); words")
    # A reason naming no trace is one text.
    plain = page.evaluate("""(r) => {
        const item = document.createElement("li");
        item.append(...traceLinked(r));
        return item.outerHTML;
    }""", "destructive SQL: DROP")
    assert plain == "<li>destructive SQL: DROP</li>"


def test_the_wait_says_until_when_or_that_the_agent_gave_up(gw: Gateway, page: Page) -> None:
    """The sentences the view shows of a wait (the page's own function, given an
    approval as the API answers it): the agent waits at most so long more; it gave up
    (refused 403) and approving now lets its next try through until the approval
    expires; nothing waits on it (a changed MCP tool); a window grant opens from now."""
    open_page(page, gw)
    now_us = 1_800_000_000_000_000
    base = {"grant_mode": "once", "grant_minutes": None, "requester": "svc-autogen",
            "target": "orders", "status": "pending", "created_us": now_us - 90_000_000,
            "expires_us": now_us + 3_000_000_000}

    def said(approval: dict[str, Any]) -> str:
        return page.evaluate("""([approval, nowMs]) => {
            const parts = waitParts(approval, nowMs);
            return sentence(null, parts, nowMs).textContent;
        }""", [approval, now_us / 1000])

    def hovered(approval: dict[str, Any]) -> list[str]:
        return page.evaluate("""([approval, nowMs]) => Array.from(
            sentence(null, waitParts(approval, nowMs), nowMs).querySelectorAll("time"),
            (shown) => shown.title)""", [approval, now_us / 1000])

    until_us = now_us + 210_000_000
    waiting = {**base, "wait": {"since_us": base["created_us"], "until_us": until_us,
                                "answered": None}}
    assert said(waiting) == ("The agent has waited 1 min 30 s and waits at most 3 min 30 s "
                             "more. Approving now lets the waiting request through at once.")
    assert hovered(waiting) == [utc(until_us) + " UTC"]
    gave_up = {**base, "wait": {"since_us": base["created_us"], "until_us": None,
                                "answered": {"at_us": now_us - 60_000_000, "status": 403,
                                             "refusal": "approval_required",
                                             "approval_status": "pending"}}}
    assert said(gave_up) == (
        "The agent gave up waiting 1 min ago after 30 s: its request was refused (403 "
        "approval_required). Approving now lets the agent's next try of exactly this request "
        "through, once, until this approval expires in 50 min.")
    assert hovered(gave_up) == [utc(now_us - 60_000_000) + " UTC",
                                utc(base["expires_us"]) + " UTC"]
    left = {**gave_up, "wait": {**gave_up["wait"], "answered": {
        **gave_up["wait"]["answered"], "status": None, "refusal": None, "client_left": True}}}
    assert said(left) == (
        "The agent left 1 min ago after 30 s: its client went away while it waited, and "
        "nothing waits on it now. Approving now lets the agent's next try of exactly this "
        "request through, once, until this approval expires in 50 min.")
    unwaited = {**base, "wait": {"since_us": base["created_us"], "until_us": None,
                                 "answered": None}}
    assert said(unwaited) == (
        "It was asked 1 min 30 s ago. No request is known to wait on it: approving lets the "
        "next try of exactly this request through, once.")
    # Its waiter's lease lapsed before its wait's end: the client left, or its replica died.
    orphaned = {**base, "wait": {**waiting["wait"], "waiting": False, "held_by": "replica-b"}}
    assert said(orphaned) == (
        "No request waits on it now: its client left, or replica-b, which held it, stopped "
        "(asked 1 min 30 s ago). Approving now lets the agent's next try of exactly this "
        "request through, once, until this approval expires in 50 min.")
    assert said({**base, "wait": {**waiting["wait"], "waiting": True}}) == said(waiting)
    window = {**waiting, "grant_mode": "window", "grant_minutes": 30}
    assert said(window).endswith(
        "Approving now lets the waiting request through at once and opens a 30-minute "
        "window from now for svc-autogen on orders.")


# The browser's notifications, recorded instead of shown (a test stands in for the
# desktop's notification centre, which a headless browser has none of): permission
# granted, every Notification made kept in `window.notified`.
NOTIFICATIONS = """
window.notified = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.notified.push({ title, ...options }); }
};
"""


def test_live_holds_come_first_count_in_the_title_and_notify(gw: Gateway, page: Page) -> None:
    """A request an agent waits on is listed as waiting now, first, counted in the
    tab's title, and the approver is notified of it once; when its agent gives up, its
    approval is withdrawn (nobody may grant it): the row goes and the title no longer
    counts it."""
    page.add_init_script(NOTIFICATIONS)
    open_page(page, gw, DBA)
    expect(page.locator("#status")).to_contain_text("with an agent waiting", timeout=WAIT_MS)
    text = "UPDATE customers SET name = name"
    held = Held(lambda: sql(gw, text, timeout=6))  # the agent gives up after 6 s
    approval = pending_for(gw, text)
    row = row_of(page, approval)
    expect(row.locator("td").nth(7)).to_have_text("waiting now", timeout=REFRESH_MS)
    expect(page.locator("table#approvals tbody tr").first).to_have_attribute(
        "data-waiting", "true")
    expect(page).to_have_title(re.compile(r"^\(\d+ waiting\) Tollgate approvals$"))
    notified = page.evaluate("window.notified")
    assert [n for n in notified if n["tag"] == approval["id"]] == [{
        "title": "An agent waits for your approval", "tag": approval["id"],
        "body": f"svc-autogen on {approval['target']}: {text}"}]
    with pytest.raises(OSError):  # a timeout: the agent gave up
        held.result()
    expect(row).to_have_count(0, timeout=REFRESH_MS)
    live = [a for a in api(gw, "GET", "/approvals?status=pending", DBA)[1]["approvals"]
            if a["waiting"]]
    expect(page).to_have_title(f"({len(live)} waiting) Tollgate approvals" if live
                               else "Tollgate approvals")


def test_the_agents_own_token_never_sees_approve_or_deny(gw: Gateway, page: Page) -> None:
    """An agent's token is valid but names no approver group: the page lists what the
    agent itself asked for, without Approve or Deny, in the list and in its view."""
    text = "UPDATE customers SET id = rtrim(id)"
    held, approval = held_sql(gw, text)
    open_page(page, gw, AGENT)

    row = row_of(page, approval)
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(row.locator("td.actions")).to_have_text("Your own request: group:dba decide it.")
    expect(page.locator("button.approve, button.deny")).to_have_count(0)

    row.locator("td.summary a").click()
    expect(page.locator("#detail-what")).to_have_text(text, timeout=WAIT_MS)
    expect(page.locator("#detail-actions")).to_have_text(
        "Your own request: group:dba decide it.")
    expect(page.locator("button.approve, button.deny")).to_have_count(0)
    # The record is not an agent's to read; the view says so without asking the record
    # (its refusal would count as a read refused that nobody tried: the approval says
    # `reads_record` false, and the page takes its word).
    expect(page.locator("#detail-activity")).to_have_text(
        "Only the record's readers (recordings.readers) and this approval's approvers see "
        "what the requester did; you are neither.", timeout=WAIT_MS)
    assert not held.answered
    deny_with_api(gw, approval, held)


def test_the_pages_own_reads_of_the_record_are_no_persons_attempts(
        gw: Gateway, page: Page, tmp_path: Path) -> None:
    """A reader's view of an approval reads the requester's activity, marked as the
    page's own read (`background`); an agent's view of its own request asks the record
    nothing. The audit report, written by `tollgate audit report` from the gateway's
    store, counts the reader and never the agent as a reader or a refused one."""
    text = "UPDATE customers SET id = ltrim(id)"
    held, approval = held_sql(gw, text)
    before = {r["id"] for r in gw.records("access")}
    open_page(page, gw, DBA, f"#{approval['id']}")
    expect(page.locator("#detail-activity ul")).to_be_visible(timeout=WAIT_MS)
    page.evaluate("sessionStorage.clear()")
    page.goto("about:blank")
    open_page(page, gw, AGENT, f"#{approval['id']}")
    expect(page.locator("#detail-activity")).to_contain_text(
        "you are neither.", timeout=WAIT_MS)
    deny_with_api(gw, approval, held)

    def page_reads() -> list[dict[str, Any]]:
        return [r for r in gw.records("access") if r["id"] not in before
                and r["meaning"]["access"]["endpoint"] == "search"]

    stack.wait_until(lambda: len(page_reads()) >= 1, 10, "the page's read recorded")
    reads = page_reads()
    assert [(r["identity"]["sub"], r["meaning"]["access"]["background"],
             r["outcome"]["status"]) for r in reads] == [("dana", True, 200)]
    out = tmp_path / "report.json"
    made = tollgate("audit", "report", "--since", "1h", "--format", "json", "--out", out,
                    "--config", gw.config_path)
    assert made.returncode == 0, made
    report = json.loads(out.read_bytes())["report"]
    assert "dana" in [r["reader"] for r in report["readers"]]
    everyone = [*(r["reader"] for r in report["readers"]),
                *(r["identity"] for r in report["refused_readers"]),
                *report["background_refused"]]
    assert "svc-autogen" not in everyone


# -- a phone, screenshots, accessibility ----------------------------------------------------

def test_at_a_phones_width_rows_are_cards_with_their_buttons_in_view(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """At 390x844 the newest request is a card whose Approve and Deny lie inside the
    viewport, nothing overflows sideways, and its view's buttons are in view too; the
    screenshots at a desktop's and a phone's width are PNGs of those sizes."""
    text = "UPDATE customers SET id = substr(id, 1)"
    held, approval = held_sql(gw, text)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        with tab(browser, viewport=viewport) as page:
            open_page(page, gw, DBA)
            row = row_of(page, approval)
            expect(row).to_be_visible(timeout=WAIT_MS)
            # Newest first: the held request is the first row.
            assert page.locator("table#approvals tbody tr").first.get_attribute(
                "data-id") == approval["id"]
            for button in ("approve", "deny"):
                box = row.locator(f"button.{button}").bounding_box()
                assert inside(box, viewport), (name, button, box)
            width = page.evaluate("document.scrollingElement.scrollWidth")
            assert width <= viewport["width"], (name, width)
            if name == "phone":
                # A card: its cells stacked, each labelled.
                assert row.evaluate("(r) => getComputedStyle(r).display") == "block"
                label = row.locator("td").nth(1).evaluate(
                    "(td) => getComputedStyle(td, '::before').content")
                assert label == '"Who asks: "'
            shot = tmp_path / f"approvals-{name}.png"
            page.screenshot(path=str(shot))
            assert png_size(shot) == (viewport["width"], viewport["height"])
            assert shot.stat().st_size > 1000

            row.locator("td.summary a").click()
            expect(page.locator("#detail-what")).to_have_text(text, timeout=WAIT_MS)
            for button in ("approve", "deny"):
                box = page.locator(f"#detail-actions button.{button}").bounding_box()
                assert inside(box, viewport), (name, "view", button, box)
            shot = tmp_path / f"approval-view-{name}.png"
            page.screenshot(path=str(shot))
            assert png_size(shot) == (viewport["width"], viewport["height"])
    deny_with_api(gw, approval, held)


def test_axe_finds_no_serious_violation(gw: Gateway, browser: Browser) -> None:
    """axe-core on the list (a row with its buttons), the confirmation, an approval's
    view, and the history, at a desktop's width and a phone's: no violation of impact
    serious or critical."""
    text = "UPDATE customers SET id = coalesce(id, '')"
    held, approval = held_sql(gw, text)
    for viewport in (DESKTOP, PHONE):
        with tab(browser, viewport=viewport) as page:
            open_page(page, gw)
            assert serious_violations(page) == [], "signed out"
            page.fill("#token", DBA)
            page.click("#login button[type=submit]")
            row = row_of(page, approval)
            expect(row.locator("button.approve")).to_be_visible(timeout=WAIT_MS)
            assert serious_violations(page) == [], "the list"
            row.locator("button.deny").click()
            expect(page.locator("dialog#confirm")).to_be_visible()
            assert serious_violations(page) == [], "the confirmation"
            page.keyboard.press("Escape")
            row.locator("td.summary a").click()
            expect(page.locator("#detail-activity ul")).to_be_visible(timeout=WAIT_MS)
            assert serious_violations(page) == [], "the approval's view"
            page.click("#tab-history")
            expect(page.locator("table#history")).to_be_visible(timeout=WAIT_MS)
            assert serious_violations(page) == [], "the history"
    deny_with_api(gw, approval, held)


# -- what agents send, shown inert ------------------------------------------------------

def test_what_agents_send_is_shown_as_text_never_markup(gw: Gateway, page: Page) -> None:
    """SQL carrying an <img onerror=...> (and a requester named like one) appears
    literally in the row and in its view; no element is made from it and its handler
    never runs."""
    markup = "<img src=x onerror=window.__pwned=1>"
    text = f"UPDATE customers SET name = '{markup}'"
    requester = "<img src=x onerror=window.__pwned=2>"
    agent = tokens.token(requester, ["agents"], ttl=600)
    held, approval = held_sql(gw, text, token=agent)
    assert approval["requester"] == requester
    open_page(page, gw, DBA)

    row = row_of(page, approval)
    expect(row).to_be_visible(timeout=WAIT_MS)
    summary = row.locator("td.summary a")
    expect(summary).to_have_text(text)
    assert markup in summary.inner_text()
    expect(row.locator("td").nth(1)).to_have_text(requester)
    summary.click()
    expect(page.locator("#detail-what")).to_have_text(text, timeout=WAIT_MS)
    expect(page.locator("#detail")).to_contain_text(f"{requester} asks, on")
    assert page.locator("img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"

    deny_with_api(gw, approval, held)


def test_control_and_bidi_characters_are_shown_as_escapes(gw: Gateway, page: Page) -> None:
    """A held statement that would erase a terminal line and reverse text with a bidi
    override is shown with both as escapes (as `tollgate approvals` shows them), in the
    row and in its view, so the approver sees they are there; no shown text holds such a
    character."""
    text = f"UPDATE customers SET name = '{ERASE}{FORGED} \u202egnp.exe'"
    held, approval = held_sql(gw, text)
    open_page(page, gw, DBA)

    # The summary is the statement as the record's "what" gives it, masked.
    shown = terminal(approval["summary"])
    assert "\\x1b[2K" in shown and "\\u202egnp.exe" in shown
    row = row_of(page, approval)
    summary = row.locator("td.summary a")
    expect(summary).to_have_text(shown, timeout=WAIT_MS)
    assert [raw(cell) for cell in row.locator("td").all_inner_texts()] == [[]] * 9
    summary.click()
    expect(page.locator("#detail-what")).to_have_text(shown, timeout=WAIT_MS)
    # The request's body, as JSON, shows the statement exactly as sent: JSON's escapes
    # for controls, the page's for what JSON leaves as it is (the bidi override).
    expect(page.locator("#detail-request")).to_contain_text(
        "'\\u001b[2K\\rSELECT count(*) FROM customers \\u202egnp.exe'")
    assert raw(page.locator("#detail").inner_text()) == []

    deny_with_api(gw, approval, held)


def test_the_page_and_the_terminal_escape_the_same_characters(gw: Gateway, page: Page) -> None:
    """The admin pages' shared script's `visible` (extproc/admin/admin_page.js, which the monitor
    page loads too) and extproc.codecs.inert's `terminal` give the same text for the first
    0x3000 code points (controls, bidi, zero-width, separators among them) and on either
    side of every edge of the unsafe class."""
    inside_class = [UNSAFE.match(chr(c)) is not None for c in range(sys.maxunicode + 1)]
    edges = {c + step for c in range(1, len(inside_class))
             if inside_class[c] != inside_class[c - 1] for step in (-1, 0)}
    # One apart from the next: two lone surrogates side by side would make a pair.
    text = " ".join(chr(c) for c in sorted(edges | set(range(0x3000))))
    open_page(page, gw)
    assert page.evaluate("(text) => visible(text)", text) == terminal(text)
