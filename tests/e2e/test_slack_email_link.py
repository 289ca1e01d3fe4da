"""Linking a Slack user by verified e-mail (approvals.slack.link_by_email), end to end: a
real Envoy and tollgate, people signing in to the admin pages in Chromium with a real
OpenID provider (the development one, releasing `email_verified` as real providers do:
tests/support/oidc.py), and Slack played by its stand-in (tests/standins/slack_api.py).

A person signed in with an e-mail their provider verified decides with their first click
in Slack, when Slack has confirmed the same e-mail for their Slack user; anything less
gets the one-time link, saying why; with the option off, nothing of it happens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from extproc.quickstart import stack
from extproc.store import connect
from tests.e2e.test_approvals_e2e import DBA, api, held_sql
from tests.e2e.test_oidc_signin import Signing, signed_in
from tests.e2e.test_slack_e2e import (  # noqa: F401
    actions_url,
    decision_record,
    link_code,
    posted,
    shows,
    slack,
    slack_settings,
)
from tests.standins.slack_api import TEAM, SlackStandIn
from tests.support.browser import tab
from tests.support.gateway import POLICIES, Gateway, GatewayFactory, module_gateway
from tests.support.oidc import DANA, SAM, dev_provider, free_port, oidc_settings

pytestmark = [pytest.mark.e2e]

# The provider verified dana's e-mail, not sam's.
USERS = (DANA, dataclasses.replace(SAM, email_verified=False))


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory, otlp,  # type: ignore[no-untyped-def]
            slack: SlackStandIn) -> Iterator[Signing]:  # noqa: F811
    """A gateway whose admin pages sign in with the development provider and whose Slack
    app links by verified e-mail; a hold waits up to 30 s."""
    port = free_port()
    folder = tmp_path_factory.mktemp("slack-email")
    settings = {"admin": {"oidc": oidc_settings(port, folder)},
                "approvals": {"max_hold_seconds": 30, "poll_seconds": 0.5, "slack": {
                    **slack_settings(folder, slack), "link_by_email": True}}}
    with module_gateway(tmp_path_factory, otlp, "slack_email", settings=settings) as gw, \
            dev_provider(port, gw.admin_url, folder, users=USERS) as issuer:
        yield Signing(gw, issuer, folder / "session.key")


def remembered(gw: Gateway) -> set[tuple[str, str]]:
    """The (e-mail, subject) pairs tollgate keeps of sign-ins now."""
    connection = connect(gw.store_url)
    try:
        return {(str(e), str(s)) for e, s in connection.execute(
            "SELECT email, subject FROM verified_emails")}
    finally:
        connection.close()


def answer_to(slack: SlackStandIn, user: str, seen: int) -> str:  # noqa: F811
    """The answer `user` is given in Slack after the `seen` first."""
    stack.wait_until(lambda: len(slack.ephemeral_to(user)) > seen, 10, f"{user}'s answer")
    return slack.ephemeral_to(user)[seen]


def test_a_person_signed_in_with_a_verified_email_approves_with_one_click(
        signing: Signing, slack: SlackStandIn, page: Page) -> None:  # noqa: F811
    """dana signed in (her provider verified dana@example.test); her Slack user, whose
    e-mail Slack confirmed (in other letters' case), clicks Approve once: the held
    request completes, she is told how she was linked, and the record says so. Signed
    out, her e-mail links nobody any more."""
    gw, user = signing.gw, "U0DANAMAIL"
    signed_in(page, signing, "/", DANA)
    assert ("dana@example.test", "dana") in remembered(gw)
    slack.add_person(user, "Dana@Example.TEST")
    held, approval = held_sql(gw, "UPDATE customers SET email = email -- one click")
    message = posted(slack, approval["id"])
    seen = len(slack.ephemeral_to(user))
    status, _ = slack.click(actions_url(gw), message, "tollgate_approve", user)
    assert status == 200
    reply = held.result()
    assert reply.status == 200, reply.body
    told = answer_to(slack, user, seen)
    assert told.startswith("Linked by your verified e-mail as dana, as you signed in on "
                           f"tollgate. Approved {approval['id']} as dana: "), told
    assert "/slack/link?code=" not in told
    shows(slack, approval["id"], "Approved by dana")
    # Slack was asked as its users.info takes it: a form.
    asked = [c for c in slack.calls if c.method == "users.info" and c.body["user"] == user]
    assert asked and asked[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    record = decision_record(gw, approval["id"], "approve")
    assert record["identity"]["sub"] == "dana"
    assert record["approval"]["slack"] == {"user_id": user, "team_id": TEAM,
                                           "linked_by": "email"}
    # Signed out: forgotten; another Slack user with her e-mail gets the one-time link.
    page.click("#sign-out")
    page.wait_for_url(gw.admin_url + "/?signed-out")
    stack.wait_until(lambda: ("dana@example.test", "dana") not in remembered(gw), 10,
                     "dana's e-mail forgotten")
    other = "U0DANAOTHER"
    slack.add_person(other, "dana@example.test")
    held, approval = held_sql(gw, "UPDATE customers SET email = email -- signed out")
    status, _ = slack.click(actions_url(gw), posted(slack, approval["id"]),
                            "tollgate_approve", other)
    assert status == 200
    code = link_code(slack, other, 0)
    assert slack.ephemeral_to(other)[0].startswith(
        "Not linked by e-mail: nobody is signed in on tollgate with dana@example.test now: "
        "sign in once on tollgate's pages to be linked by e-mail. To decide in Slack, "
        f"first link your Slack user to your tollgate sign-in: <{gw.admin_url}/slack/link?"
        f"code={code}|")
    assert api(gw, "GET", f"/approvals/{approval['id']}", DBA)[1]["status"] == "pending"
    api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA, {"reason": "tidy up"})
    assert held.result().status == 403


def test_deny_by_a_person_linked_by_email_opens_its_dialog_at_once(
        signing: Signing, slack: SlackStandIn, page: Page) -> None:  # noqa: F811
    gw, user = signing.gw, "U0DANADENY"
    signed_in(page, signing, "/", DANA)
    slack.add_person(user, "dana@example.test")
    held, approval = held_sql(gw, "DELETE FROM customers -- by email")
    views = len(slack.views)
    status, _ = slack.click(actions_url(gw), posted(slack, approval["id"]), "tollgate_deny",
                            user)
    assert status == 200 and len(slack.views) == views + 1
    assert answer_to(slack, user, 0) == ("Linked by your verified e-mail as dana, as you "
                                         "signed in on tollgate.")
    status, body = slack.submit(actions_url(gw), slack.views[-1], user,
                                {"reason": "not during the freeze"})
    assert (status, body) == (200, b"")
    assert "denied by dana: not during the freeze" in held.result().json()["message"]
    record = decision_record(gw, approval["id"], "deny")
    assert record["approval"]["slack"]["linked_by"] == "email"


@pytest.mark.parametrize(("user", "email", "confirmed", "why"), [
    ("U0UNCONFIRMED", "dana@example.test", False,
     "Slack has not confirmed your e-mail dana@example.test"),
    ("U0SAMMAIL", "sam@example.test", True,
     "nobody is signed in on tollgate with sam@example.test now: sign in once on "
     "tollgate's pages to be linked by e-mail"),
    ("U0NOMAIL", None, True,
     "Slack shows tollgate no e-mail of yours (the app needs the scope users:read.email)"),
    ("U0UNKNOWN", "", True, "Slack did not tell tollgate your e-mail: user_not_found"),
], ids=["unconfirmed", "nobody-signed-in", "no-email", "slack-error"])
def test_anything_less_gets_the_one_time_link_saying_why(
        signing: Signing, slack: SlackStandIn, page: Page,  # noqa: F811
        user: str, email: str | None, confirmed: bool, why: str) -> None:
    """dana is signed in, her e-mail verified; a Slack user whose e-mail Slack has not
    confirmed (hers), who has none, or whom nobody signed in as, or one Slack cannot tell
    of (an error: it does not know them), is not linked, told why, and given the one-time
    link; nothing is decided."""
    gw = signing.gw
    signed_in(page, signing, "/", DANA)
    if email != "":  # "": Slack does not know them
        slack.add_person(user, email, confirmed)
    held, approval = held_sql(gw, f"UPDATE customers SET email = email -- {user}")
    status, _ = slack.click(actions_url(gw), posted(slack, approval["id"]),
                            "tollgate_approve", user)
    assert status == 200
    code = link_code(slack, user, 0)
    assert slack.ephemeral_to(user)[0].startswith(
        f"Not linked by e-mail: {why}. To decide in Slack, first link your Slack user to "
        f"your tollgate sign-in: <{gw.admin_url}/slack/link?code={code}|")
    assert api(gw, "GET", f"/approvals/{approval['id']}", DBA)[1]["status"] == "pending"
    assert not held.answered
    api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA, {"reason": "tidy up"})
    held.result()


def test_an_email_the_provider_did_not_verify_links_nobody(
        signing: Signing, slack: SlackStandIn, browser: Browser) -> None:  # noqa: F811
    """sam signs in, but the provider says it did not verify sam@example.test: tollgate
    keeps nothing of it, and his Slack user, its e-mail confirmed, gets the one-time link."""
    gw, user = signing.gw, "U0SAMSIGNED"
    with tab(browser) as page:
        signed_in(page, signing, "/", SAM)
        expect(page.locator("#signed-in-as")).to_contain_text("sam")
    assert not {s for _, s in remembered(gw)} & {"sam"}
    slack.add_person(user, "sam@example.test")
    held, approval = held_sql(gw, "UPDATE customers SET email = email -- sam")
    slack.click(actions_url(gw), posted(slack, approval["id"]), "tollgate_approve", user)
    link_code(slack, user, 0)
    assert slack.ephemeral_to(user)[0].startswith(
        "Not linked by e-mail: nobody is signed in on tollgate with sam@example.test now")
    api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA, {"reason": "tidy up"})
    held.result()


def test_without_the_option_a_verified_sign_in_links_nobody_and_is_not_kept(
        make_gateway: GatewayFactory, slack: SlackStandIn, page: Page,  # noqa: F811
        tmp_path: Path) -> None:
    """link_by_email off (the default), with the same provider and people: dana's sign-in
    leaves no e-mail in the store, Slack is not asked for hers, her Slack user gets the
    one-time link as before, and a decision after it says it was linked by that code."""
    port = free_port()
    settings: dict[str, Any] = {
        "admin": {"oidc": oidc_settings(port, tmp_path)},
        "approvals": {"max_hold_seconds": 30, "poll_seconds": 0.5,
                      "slack": slack_settings(tmp_path, slack)}}
    gw = make_gateway(POLICIES, settings=settings)
    user = "U0DANAOFF"
    with dev_provider(port, gw.admin_url, tmp_path, users=USERS) as issuer:
        signed_in(page, Signing(gw, issuer, tmp_path / "session.key"), "/", DANA)
        assert remembered(gw) == set()
        slack.add_person(user, "dana@example.test")
        asked = len([c for c in slack.calls if c.method == "users.info"])
        held, approval = held_sql(gw, "UPDATE customers SET email = email -- option off")
        message = posted(slack, approval["id"])
        slack.click(actions_url(gw), message, "tollgate_approve", user)
        code = link_code(slack, user, 0)
        assert slack.ephemeral_to(user)[0].startswith("To decide in Slack, first link")
        assert len([c for c in slack.calls if c.method == "users.info"]) == asked
        assert not held.answered
        status, _ = api(gw, "POST", "/slack/link", DBA, {"code": code})
        assert status == 200
        slack.click(actions_url(gw), message, "tollgate_approve", user)
        assert held.result().status == 200
        record = decision_record(gw, approval["id"], "approve")
        assert record["approval"]["slack"] == {"user_id": user, "team_id": TEAM,
                                               "linked_by": "code"}
