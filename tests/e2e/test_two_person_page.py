"""Two-person approval and a grant's length chosen at decision time, in a real browser
against a real Envoy and tollgate: a release (PUT) needs two different dbas, and each
approval opens a window of at most an hour for the agent on its target.

The first dba approves on the page, choosing 15 minutes: the request still waits, the
page says it waits for one more approver, and the same dba cannot count twice. The second
dba's approval lets it through; the window is the 15 minutes chosen, and the record says
who approved.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_approvals_e2e import AGENT, DBA, OTHER_DBA, Held, api, pending_for_case
from tests.e2e.test_approvals_page import WAIT_MS, confirm, open_page, tab_to
from tests.support import tokens
from tests.support.browser import tab
from tests.support.gateway import Gateway, module_gateway

TWO_DBAS = """package tollgate
import rego.v1
default decision := {"action": "allow"}
decision := {"action": "hold", "reasons": ["a release needs two dbas"],
             "rules": ["test.release"], "approvers": ["group:dba"], "hold_seconds": 60,
             "grant": "window", "grant_minutes": 60,
             "approvals_needed": 2} if input.request.method == "PUT"
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    policies = tmp_path_factory.mktemp("two-person-policy")
    (policies / "release.rego").write_text(TWO_DBAS)
    with module_gateway(
        tmp_path_factory, otlp, "two-person", policy_dir=policies,
        targets=[{"name": "releases", "match": {"route": "demo"}, "protocol": "http"}],
    ) as running:
        yield running


def test_two_dbas_must_approve_and_the_first_chooses_a_shorter_window(
        gw: Gateway, page: Page, browser: Browser) -> None:
    held = Held(lambda: gw.request("PUT", "/echo?case=release-7", token=AGENT, timeout=70))
    approval = pending_for_case(gw, "release-7", DBA)
    assert (approval["approvals_needed"], approval["approved_by"]) == (2, [])

    open_page(page, gw, DBA, f"#{approval['id']}")
    expect(page.locator("#detail-quorum")).to_have_text(
        "2 different approvers must approve it; nobody has yet.", timeout=WAIT_MS)
    page.locator("#detail-actions button.approve").click()
    expect(page.locator("#confirm-grant")).to_contain_text(
        "Yours is one of 2 approvals it still needs")
    options = page.locator("#confirm-minutes option")
    expect(options).to_have_text(["1 h", "30 min", "15 min", "5 min"])
    page.select_option("#confirm-minutes", "15")
    confirm(page, "release 7, first look")
    expect(page.locator("#status")).to_have_text(
        f"{approval['id']} approved by dana: it needs 1 more approver before the request "
        "passes.", timeout=WAIT_MS)
    expect(page.locator("#detail-actions")).to_have_text(
        "You approved it: it waits for 1 more approver of group:dba.", timeout=WAIT_MS)
    expect(page.locator("#detail-quorum")).to_have_text(
        "2 different approvers must approve it; approved so far by dana.")
    assert not held.answered  # one approval of two lets nothing through

    status, again = api(gw, "POST", f"/approvals/{approval['id']}/approve", DBA, {})
    assert (status, again["error"]) == (409, "already_approved")

    with tab(browser) as other:  # the second dba, in a browser of their own
        open_page(other, gw, OTHER_DBA, f"#{approval['id']}")
        expect(other.locator("#detail-quorum")).to_have_text(
            "2 different approvers must approve it; approved so far by dana.",
            timeout=WAIT_MS)
        other.locator("#detail-actions button.approve").click()
        expect(other.locator("#confirm-minutes option")).to_have_text(["15 min", "5 min"])
        confirm(other, None)
        expect(other.locator("#status")).to_have_text(
            f"{approval['id']} approved by dmitri.", timeout=WAIT_MS)
    reply = held.result()
    assert reply.status == 200, reply.body
    _, shown = api(gw, "GET", f"/approvals/{approval['id']}", DBA)
    assert (shown["status"], shown["approved_by"], shown["decided_by"]) == (
        "approved", ["dana", "dmitri"], "dmitri")
    assert shown["grant_minutes"] == 15
    assert shown["grant_until_us"] - shown["decided_us"] == 15 * 60 * 1_000_000
    # The held exchange's record names both approvers.
    record = gw.the_record(lambda r: r["trace_id"] == reply.trace_id,
                           "the held exchange's", kind="exchange")
    assert (record["approval"]["approvals_needed"], record["approval"]["approved_by"]) == (
        2, ["dana", "dmitri"])


def test_a_window_longer_than_the_policys_is_refused(gw: Gateway) -> None:
    # Another agent: the first test's window lets the first one through.
    agent = tokens.token("svc-nightly", ["agents"])
    held = Held(lambda: gw.request("PUT", "/echo?case=release-8", token=agent, timeout=70))
    approval = pending_for_case(gw, "release-8", DBA)
    status, refused = api(gw, "POST", f"/approvals/{approval['id']}/approve", DBA,
                          {"grant_minutes": 61})
    assert (status, refused["error"]) == (400, "bad_request")
    assert "1-60 (the policy's bound)" in refused["message"]
    status, _ = api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA,
                    {"reason": "not this one"})
    assert status == 200
    assert held.result().status == 403


def test_the_windows_length_is_chosen_by_keyboard_and_the_text_follows_it(
        gw: Gateway, page: Page) -> None:
    """The confirmation opens on the length (the first thing to choose), Tab and
    Shift+Tab go round the dialog's own controls and never leave it, and the sentence of
    what approving grants names the length chosen, not the policy's."""
    agent = tokens.token("svc-keyboard", ["agents"])
    held = Held(lambda: gw.request("PUT", "/echo?case=release-9", token=agent, timeout=70))
    approval = pending_for_case(gw, "release-9", DBA)
    open_page(page, gw, DBA, f"#{approval['id']}")
    expect(page.locator("#detail-actions button.approve")).to_be_visible(timeout=WAIT_MS)
    tab_to(page, "#detail-actions button.approve")
    page.keyboard.press("Enter")
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-minutes")).to_be_focused()
    grant = page.locator("#confirm-grant")
    expect(grant).to_contain_text("a window of 60 min from the approval")
    page.keyboard.press("ArrowDown")  # 1 h -> 30 min, as a keyboard user chooses
    expect(page.locator("#confirm-minutes")).to_have_value("30")
    expect(grant).to_contain_text("a window of 30 min from the approval")
    expect(grant).not_to_contain_text("60 min")
    inside = "() => document.querySelector('dialog#confirm').contains(document.activeElement)"
    for key in ["Tab"] * 6 + ["Shift+Tab"] * 6:
        page.keyboard.press(key)
        assert page.evaluate(inside), f"{key} left the dialog"
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    status, _ = api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA,
                    {"reason": "the test is over"})
    assert status == 200 and held.result().status == 403
