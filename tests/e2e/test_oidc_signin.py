"""Signing in to the admin pages with a real OpenID provider (the development one the
quickstart runs: the npm package oidc-provider, under Node), in Debian's Chromium, against a
real Envoy and tollgate: a page opened without a session goes to the provider's login form
and comes back to where it was, signed in, named in the navigation every page shares; the
session cookie then decides approvals (the CSRF check refusing what another origin sends),
a tampered or expired one counts for nothing, signing out ends it; the landing page says who
the viewer is and what they may do; and `tollgate login` signs the CLI in through a loopback
redirect, the provider's form filled in the browser."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from extproc.admin.sessions import SESSION_COOKIE, Sealer, read_keys
from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import DBA, OTHER_DBA, api, held_sql
from tests.e2e.test_approvals_page import DESKTOP, PHONE, inside, row_of, tab_to
from tests.support.axe import serious_violations
from tests.support.browser import tab
from tests.support.gateway import Gateway, GatewayFactory, module_gateway
from tests.support.oidc import (
    AVA,
    DANA,
    dev_provider,
    free_port,
    oidc_settings,
    sign_in_at_provider,
)

WAIT_MS = 10_000
PAGES = ["/", "/approvals/ui", "/monitor/ui", "/recordings/ui", "/sessions/ui"]
NAV = ["Home", "Approvals", "Monitor", "Recordings", "Sessions"]


@dataclass(frozen=True)
class Signing:
    gw: Gateway
    issuer: str
    keys: Path  # the session key file


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Signing]:  # type: ignore[no-untyped-def]
    """A gateway whose admin pages sign in with the development provider; the dbas read
    the record too (the landing page says so), a hold waits up to 30 s."""
    port = free_port()
    folder = tmp_path_factory.mktemp("oidc")
    settings = {"admin": {"oidc": oidc_settings(port, folder)},
                "approvals": {"max_hold_seconds": 30},
                "recordings": {"readers": ["group:dba"]}}
    with module_gateway(tmp_path_factory, otlp, "oidc_signin", settings=settings) as gw, \
            dev_provider(port, gw.admin_url, folder) as issuer:
        yield Signing(gw, issuer, folder / "session.key")


def signed_in(page: Page, signing: Signing, path: str = "/approvals/ui",
              user: Any = DANA) -> None:
    """Open `path`, sign in at the provider as `user`, and be back, named."""
    page.goto(signing.gw.admin_url + path)
    sign_in_at_provider(page, user)
    expect(page.locator("#signed-in-as")).to_have_text(
        f"Signed in as {user.id} ({user.email})", timeout=WAIT_MS)


def session_cookie(page: Page) -> dict[str, Any]:
    (cookie,) = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    return cookie


def post(signing: Signing, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(signing.gw.admin_url + path, method="POST", data=b"{}",
                                     headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def deny(signing: Signing, approval: dict[str, Any]) -> None:
    code, _ = api(signing.gw, "POST", f"/approvals/{approval['id']}/deny", OTHER_DBA,
                  {"reason": "the test is over"})
    assert code == 200


# -- signing in, and what the session then does ---------------------------------------------

def test_a_page_without_a_session_signs_in_at_the_provider_and_comes_back(
        signing: Signing, page: Page) -> None:
    """/approvals/ui#history without a session lands on the provider's login form; signed
    in there, the browser is back at /approvals/ui#history (its fragment kept), the
    navigation names the approver, the token form is not shown, and the session is an
    HttpOnly, SameSite=Lax cookie (not Secure: this admin port is plain http)."""
    page.goto(signing.gw.admin_url + "/approvals/ui#history")
    expect(page.locator("form input#login")).to_be_visible(timeout=WAIT_MS)
    assert page.url.startswith(signing.issuer + "/interaction/")
    sign_in_at_provider(page, DANA)
    expect(page.locator("#signed-in-as")).to_have_text(
        "Signed in as dana (dana@example.test)", timeout=WAIT_MS)
    assert page.url == signing.gw.admin_url + "/approvals/ui#history"
    expect(page.locator("#history-view")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#login")).to_be_hidden()
    cookie = session_cookie(page)
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Lax", False)
    assert page.evaluate("document.cookie").find(SESSION_COOKIE) == -1


def test_a_signed_in_reader_downloads_the_report_with_the_session(
        signing: Signing, page: Page) -> None:
    """The recordings page's export rides on the session too (no token in the tab): the
    zip arrives, and its read is recorded as the provider's subject's."""
    signed_in(page, signing, "/recordings/ui")
    expect(page.locator("#recordings")).to_be_visible(timeout=WAIT_MS)
    page.fill("#report-since", "1h")
    with page.expect_download(timeout=60_000) as downloading:
        page.click("#report button[type=submit]")
    assert downloading.value.suggested_filename.startswith("tollgate-report-")

    def reads() -> list[dict[str, Any]]:
        return [r for r in signing.gw.records("access")
                if r["meaning"]["access"]["endpoint"] == "report"]

    stack.wait_until(lambda: bool(reads()), 10, "the download's access record")
    assert reads()[-1]["identity"]["sub"] == "dana"


def test_a_wrong_password_stays_at_the_provider(signing: Signing, page: Page) -> None:
    page.goto(signing.gw.admin_url + "/monitor/ui")
    sign_in_at_provider(page, DANA, password="not-dana's")
    expect(page.locator("[role=alert]")).to_have_text("Unknown user or wrong password.")
    assert SESSION_COOKIE not in {c["name"] for c in page.context.cookies()}


def test_an_approver_signed_in_approves_with_the_session(signing: Signing, page: Page) -> None:
    """The session alone (no token in the tab) lists the held request and approves it:
    the held request completes with 200, decided by the provider's subject."""
    text = "UPDATE customers SET id = ltrim(id)"
    held, approval = held_sql(signing.gw, text)
    signed_in(page, signing)
    assert page.evaluate("sessionStorage.length") == 0
    row = row_of(page, approval)
    row.locator("button.approve").click()
    page.locator("dialog#confirm textarea").fill("signed in with the provider")
    page.locator("#confirm-yes").click()
    expect(page.locator("#status")).to_have_text(f"{approval['id']} approved by dana.",
                                                 timeout=WAIT_MS)
    assert held.result().status == 200
    code, shown = api(signing.gw, "GET", f"/approvals/{approval['id']}", DBA)
    assert (code, shown["decided_by"]) == (200, "dana")


def test_at_a_phones_width_the_navigation_and_approve_are_in_view(
        signing: Signing, browser: Browser) -> None:
    text = "UPDATE customers SET id = rtrim(id)"
    _, approval = held_sql(signing.gw, text)
    with tab(browser, viewport=PHONE) as page:
        signed_in(page, signing)
        for name in NAV:
            box = page.locator("nav.site").get_by_role("link", name=name).bounding_box()
            assert inside(box, PHONE), (name, box)
        assert inside(page.locator("#sign-out").bounding_box(), PHONE)
        assert inside(row_of(page, approval).locator("button.approve").bounding_box(), PHONE)
        assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    deny(signing, approval)


def test_keyboard_alone_signs_in_and_reaches_every_page(signing: Signing, page: Page) -> None:
    """The provider's form reached with Tab, typed into and sent with Enter; back on the
    page, Tab reaches the navigation's links, Enter follows one, and signs out."""
    page.goto(signing.gw.admin_url + "/recordings/ui")
    page.wait_for_selector("form input#login")
    tab_to(page, "input#login")
    page.keyboard.type(DANA.id)
    page.keyboard.press("Tab")
    page.keyboard.type(DANA.password)
    page.keyboard.press("Enter")
    expect(page.locator("#signed-in-as")).to_have_text(re.compile("^Signed in as dana"),
                                                       timeout=WAIT_MS)
    page.evaluate("document.activeElement.blur()")
    tab_to(page, 'nav.site a[href="/monitor/ui"]')
    page.keyboard.press("Enter")
    page.wait_for_url(signing.gw.admin_url + "/monitor/ui")
    tab_to(page, "#sign-out")
    page.keyboard.press("Enter")
    page.wait_for_url(signing.gw.admin_url + "/?signed-out")


def test_signing_out_ends_the_session(signing: Signing, page: Page) -> None:
    """Sign out: the cookie is gone, the landing page says so and offers to sign in again,
    and the API answers the browser 401."""
    signed_in(page, signing, "/")
    page.click("#sign-out")
    page.wait_for_url(signing.gw.admin_url + "/?signed-out")
    expect(page.locator("#status")).to_have_text("You are signed out.")
    expect(page.locator("#signed-in-as")).to_have_text("Not signed in · Sign in")
    assert SESSION_COOKIE not in {c["name"] for c in page.context.cookies()}
    answer = page.evaluate("fetch('/ui/me').then((r) => r.status)")
    assert answer == 401


# -- what a session cannot be made to do ----------------------------------------------------

def test_a_session_acts_only_from_the_pages_csrf(signing: Signing, page: Page) -> None:
    """With the approver's own session cookie, a POST without the pages' header, or from
    another origin, is refused 403 and decides nothing; from the page's origin with its
    header it decides."""
    _, approval = held_sql(signing.gw, "UPDATE customers SET id = substr(id, 1)")
    signed_in(page, signing)
    cookie = f"{SESSION_COOKIE}={session_cookie(page)['value']}"
    path = f"/approvals/{approval['id']}/approve"
    for headers in ({"cookie": cookie},
                    {"cookie": cookie, "x-requested-by": "tollgate",
                     "origin": "http://attacker.test"},
                    {"cookie": cookie, "origin": signing.gw.admin_url}):
        code, answer = post(signing, path, headers)
        assert (code, answer["error"]) == (403, "csrf"), headers
    code, shown = api(signing.gw, "GET", f"/approvals/{approval['id']}", DBA)
    assert shown["status"] == "pending"
    # A form another site posts: the browser sends its own Origin, refused the same way.
    page.goto("data:text/html,<form method=post action='" + signing.gw.admin_url + path
              + "'><button>go</button></form>")
    page.click("button")
    expect(page.locator("body")).to_contain_text('"error":')
    assert api(signing.gw, "GET", f"/approvals/{approval['id']}", DBA)[1]["status"] == "pending"
    code, answer = post(signing, path, {"cookie": cookie, "x-requested-by": "tollgate",
                                        "origin": signing.gw.admin_url})
    assert (code, answer["status"]) == (200, "approved"), answer


def provider_visits(page: Page, issuer: str) -> list[str]:
    """The provider's addresses the tab goes through from now on (a provider that still
    knows the user signs them in again without its form)."""
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url)
            if request.url.startswith(issuer) else None)
    return visited


def test_a_tampered_session_counts_for_nothing(signing: Signing, browser: Browser) -> None:
    """The cookie's claims changed under its old signature: the API answers 401, and a
    page opened with it (in a browser the provider does not know) goes to sign in."""
    with tab(browser) as page:
        signed_in(page, signing, "/")
        cookie = session_cookie(page)
    version, kid, body, mac = cookie["value"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["c"]["groups"] = ["dba", "security"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with tab(browser) as page:
        page.context.add_cookies([{**cookie, "value": ".".join([version, kid, forged, mac])}])
        page.goto(signing.gw.admin_url + "/ui/me")
        assert json.loads(page.locator("body").inner_text())["error"] == "unauthenticated"
        page.goto(signing.gw.admin_url + "/monitor/ui")
        expect(page.locator("form input#login")).to_be_visible(timeout=WAIT_MS)
        assert page.url.startswith(signing.issuer)


def test_an_expired_session_goes_to_sign_in_again(signing: Signing, browser: Browser) -> None:
    """A session sealed with the gateway's own key but past its end: opening a page goes
    to the provider's sign-in; and a page open when its session ends goes there at its
    next call, back signed in anew (the provider still knows the user)."""
    ended = Sealer(read_keys(signing.keys)).seal("session", {"sub": "dana",
                                                             "groups": ["dba"]}, -1)
    expired = {"name": SESSION_COOKIE, "value": ended, "url": signing.gw.admin_url}
    with tab(browser) as page:
        page.context.add_cookies([expired])
        page.goto(signing.gw.admin_url + "/recordings/ui")
        expect(page.locator("form input#login")).to_be_visible(timeout=WAIT_MS)
        assert page.url.startswith(signing.issuer)
    with tab(browser) as page:
        signed_in(page, signing, "/approvals/ui#history")
        visits = provider_visits(page, signing.issuer)
        page.context.add_cookies([expired])
        stack.wait_until(lambda: session_cookie(page)["value"] != ended, 15,
                         "a new session")
        assert any(url.startswith(signing.issuer + "/auth") for url in visits), visits
        page.wait_for_url(signing.gw.admin_url + "/approvals/ui#history")
        expect(page.locator("#history-view")).to_be_visible(timeout=WAIT_MS)


def test_a_token_still_signs_in_where_the_provider_is_configured(
        signing: Signing, page: Page) -> None:
    """?token keeps the page's token form (scripts, tests): a pasted token signs in, and
    the API keeps taking bearer tokens."""
    page.goto(signing.gw.admin_url + "/approvals/ui?token")
    page.fill("#token", DBA)
    page.click("#login button[type=submit]")
    expect(page.locator("#signed-in-as")).to_have_text("Signed in as dana", timeout=WAIT_MS)
    assert page.url.startswith(signing.gw.admin_url)
    assert api(signing.gw, "GET", "/approvals", DBA)[0] == 200


def test_a_confidential_client_signs_in_with_its_secret(
        tmp_path: Path, otlp, page: Page) -> None:  # type: ignore[no-untyped-def]
    """admin.oidc.client_secret_file: the code is redeemed with the secret (HTTP Basic);
    a provider that knows another secret refuses it, and the sign-in says so."""
    port = free_port()
    (tmp_path / "secret").write_text("the-gateway's-secret\n")
    oidc = {**oidc_settings(port, tmp_path), "client_secret_file": str(tmp_path / "secret")}
    factory = GatewayFactory(tmp_path, otlp)
    try:
        gw = factory(settings={"admin": {"oidc": oidc}})
        with dev_provider(port, gw.admin_url, tmp_path, secret="another-secret"):
            page.goto(gw.admin_url + "/")
            sign_in_at_provider(page, DANA)
            expect(page.locator("body")).to_contain_text(
                "Signing in failed: the provider refused the sign-in's code (401: ",
                timeout=WAIT_MS)
        with dev_provider(port, gw.admin_url, tmp_path, secret="the-gateway's-secret"):
            page.goto(gw.admin_url + "/")
            sign_in_at_provider(page, DANA)
            expect(page.locator("#me-sub")).to_have_text("dana", timeout=WAIT_MS)
    finally:
        factory.stop_all()


# -- the landing page and the navigation ----------------------------------------------------

def test_the_landing_page_says_who_and_what_they_may_do(signing: Signing, page: Page) -> None:
    text = "UPDATE customers SET id = coalesce(id, '')"
    _, approval = held_sql(signing.gw, text)
    signed_in(page, signing, "/")
    expect(page.locator("#me-sub")).to_have_text("dana")
    expect(page.locator("#me-groups")).to_have_text("dba")
    expect(page.locator("#me-via")).to_contain_text("your identity provider")
    expect(page.locator("#may-approvals")).to_contain_text(re.compile(
        r"Approvals: you may decide \d+ of the \d+ requests waiting now \(on demo\)\."))
    expect(page.locator("#may-monitor")).to_have_text(
        "Monitor: you may watch what each identity has been doing.")
    expect(page.locator("#may-recordings")).to_have_text(
        "Recordings: you may read every target's records (each read is recorded).")
    deny(signing, approval)


def test_an_auditor_is_told_what_they_may_not(signing: Signing, page: Page) -> None:
    """The auditors are neither the monitor's viewers nor, here, the record's readers: the
    landing page says so, with the rules' words, and links neither."""
    signed_in(page, signing, "/", AVA)
    expect(page.locator("#may-monitor")).to_have_text(
        "Monitor: it is for its viewers (group:dba, group:security), and you are not one.",
        timeout=WAIT_MS)
    expect(page.locator("#may-recordings")).to_have_text(
        "Recordings: recordings are for their readers only.")
    expect(page.locator("#may-monitor a, #may-recordings a")).to_have_count(0)


def test_every_page_has_the_same_navigation(signing: Signing, page: Page) -> None:
    signed_in(page, signing, "/")
    for path in PAGES:
        page.goto(signing.gw.admin_url + path)
        nav = page.locator("nav.site")
        expect(nav.locator("a")).to_have_text(NAV)
        expect(nav.locator("a[aria-current=page]")).to_have_attribute("href", path)
        expect(page.locator("#signed-in-as")).to_have_text(
            "Signed in as dana (dana@example.test)", timeout=WAIT_MS)
        expect(page.locator("#sign-out")).to_be_visible()


def test_axe_finds_no_serious_violation_on_the_landing_page(
        signing: Signing, browser: Browser) -> None:
    for viewport in (DESKTOP, PHONE):
        with tab(browser, viewport=viewport) as page:
            signed_in(page, signing, "/")
            expect(page.locator("#home")).to_be_visible(timeout=WAIT_MS)
            assert serious_violations(page) == [], viewport
            page.click("#sign-out")
            page.wait_for_url(signing.gw.admin_url + "/?signed-out")
            assert serious_violations(page) == [], ("signed out", viewport)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    """A gateway without admin.oidc: its pages take pasted tokens, as before."""
    with module_gateway(tmp_path_factory, otlp, "token_signin") as gw:
        yield gw


def test_without_a_provider_the_landing_page_takes_a_token(plain: Gateway,
                                                            browser: Browser) -> None:
    """No admin.oidc: / stays put and asks for a token (axe finds nothing serious, at a
    desktop's width and a phone's); pasted, the navigation names its owner, the page says
    what it may do, and Sign out forgets it."""
    for viewport in (DESKTOP, PHONE):
        with tab(browser, viewport=viewport) as page:
            page.goto(plain.admin_url + "/")
            expect(page.locator("#signed-in-as")).to_have_text("Not signed in")
            assert page.url == plain.admin_url + "/"
            assert serious_violations(page) == [], ("token form", viewport)
            page.fill("#token", DBA)
            page.click("#login button[type=submit]")
            expect(page.locator("#signed-in-as")).to_have_text("Signed in as dana",
                                                               timeout=WAIT_MS)
            expect(page.locator("#me-via")).to_have_text("a token, kept for this tab")
            expect(page.locator("#may-recordings")).to_have_text(
                "Recordings: recordings are for their readers only.")
            assert serious_violations(page) == [], ("signed in", viewport)
            page.click("#sign-out")
            expect(page.locator("#signed-in-as")).to_have_text("Not signed in",
                                                               timeout=WAIT_MS)
            assert page.evaluate("sessionStorage.length") == 0


# -- the CLI --------------------------------------------------------------------------------

def test_tollgate_login_signs_in_through_the_loopback(
        signing: Signing, page: Page, tmp_path: Path) -> None:
    """`tollgate login --no-browser` prints the provider's address; signed in there, the
    provider's answer comes back to the CLI's loopback, the ID token is kept 0600 in the
    user's config folder, `tollgate approvals list` then works without a token, and
    `tollgate logout` forgets it."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("TOLLGATE_TOKEN", None)
    url = ["--url", signing.gw.admin_url]
    login = subprocess.Popen([sys.executable, "-m", "extproc", "login", "--no-browser", *url],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert login.stdout is not None
        lines = [login.stdout.readline(), login.stdout.readline()]
        assert lines[0].startswith("Sign in at this address"), lines
        page.goto(lines[1].strip())
        sign_in_at_provider(page, DANA)
        expect(page.locator("body")).to_have_text(
            "Signed in to tollgate: you may close this tab.", timeout=WAIT_MS)
        out, err = login.communicate(timeout=30)
    finally:
        if login.poll() is None:
            login.kill()
    kept = tmp_path / "config" / "tollgate" / "login.json"
    assert (login.returncode, err) == (0, "")
    assert out == f"tollgate login: signed in as dana; kept in {kept} (mode 0600)\n"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    def tollgate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "extproc", *args, *url], env=env,
                              capture_output=True, text=True, timeout=30, check=False)

    listed = tollgate("approvals", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["caller"] == {"sub": "dana", "groups": ["dba"]}
    assert tollgate("logout").stdout == f"tollgate logout: signed out for {signing.gw.admin_url}\n"
    refused = tollgate("approvals", "list")
    assert refused.returncode == 2 and "no token: run `tollgate login`" in refused.stderr
