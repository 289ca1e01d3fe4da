"""Approvals in Slack, end to end: a real Envoy and tollgate, the default pack holding
writes for group:dba, Slack's Web API and its signed interactivity requests played by a
stand-in (tests/standins/slack_api.py: Slack cannot be installed here).

A held request is posted with Approve and Deny buttons; a click decides only as the
identity the clicking Slack user linked, signed in, on tollgate's page, through the
approvals API's own checks; and the message shows every change, whichever replica made it.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from playwright.sync_api import Browser, expect

from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import (
    DBA,
    NOT_AN_APPROVER,
    OTHER_DBA,
    Held,
    api,
    held_sql,
    pending_for,
    sql,
)
from tests.standins.slack_api import (
    BOT_TOKEN,
    SIGNING_SECRET,
    Message,
    SlackStandIn,
    post,
)
from tests.support.axe import serious_violations
from tests.support.browser import tab
from tests.support.gateway import POLICIES, Gateway, GatewayFactory, module_gateway

pytestmark = [pytest.mark.e2e]

CHANNEL = "C0APPROVALS"
# Slack users, and whom they link to.
U_DANA, U_DMITRI, U_ANN = "U0DANA", "U0DMITRI", "U0ANN"


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn().start()
    yield standin
    standin.stop()


def slack_settings(folder: Path, standin: SlackStandIn) -> dict[str, Any]:
    """approvals.slack for a gateway: the app's token and secret in files of `folder`."""
    (folder / "slack-token").write_text(BOT_TOKEN + "\n")
    (folder / "slack-secret").write_text(SIGNING_SECRET + "\n")
    return {"bot_token_file": str(folder / "slack-token"),
            "signing_secret_file": str(folder / "slack-secret"),
            "channel": "#approvals", "api_url": standin.api_url, "attempts": 2}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp, slack: SlackStandIn  # type: ignore[no-untyped-def]
       ) -> Iterator[Gateway]:
    settings = slack_settings(tmp_path_factory.mktemp("slack-app"), slack)
    with module_gateway(tmp_path_factory, otlp, "slack", settings={"approvals": {
            "max_hold_seconds": 30, "poll_seconds": 0.5, "slack": settings}}) as running:
        yield running


def actions_url(gw: Gateway, replica: int = 0) -> str:
    return f"http://127.0.0.1:{gw.replica_admin_ports[replica]}/slack/actions"


def posted(slack: SlackStandIn, approval_id: str) -> Message:
    """The message posted about `approval_id`, once it is."""
    stack.wait_until(lambda: slack.message_of(approval_id) is not None, 10,
                     f"the Slack message of {approval_id}")
    found = slack.message_of(approval_id)
    assert found is not None
    return found


def shows(slack: SlackStandIn, approval_id: str, text: str, timeout: float = 15) -> Message:
    """The message of `approval_id` once it shows `text`."""
    stack.wait_until(lambda: text in posted(slack, approval_id).shown(), timeout,
                     f"the Slack message of {approval_id} to show {text!r}")
    return posted(slack, approval_id)


def link_code(slack: SlackStandIn, user: str, seen: int) -> str:
    """The code in the link tollgate answered `user` with (after the `seen` first answers)."""
    stack.wait_until(lambda: len(slack.ephemeral_to(user)) > seen, 10,
                     f"an answer to {user} in Slack")
    found = re.search(r"/slack/link\?code=([\w-]+)\|", slack.ephemeral_to(user)[seen])
    assert found, slack.ephemeral_to(user)[seen]
    return found.group(1)


def decision_record(gw: Gateway, approval_id: str, action: str) -> dict[str, Any]:
    """The record (kind `approval`) of the decision `action` (approve, deny) made on
    `approval_id`, once it is written."""
    def found() -> list[dict[str, Any]]:
        return [r for r in gw.records("approval") if (r["approval"] or {}).get("id")
                == approval_id and r["outcome"]["action"] == action]
    stack.wait_until(lambda: bool(found()), 10, "the decision's record")
    (record,) = found()
    return record


def unrelated_message() -> Message:
    """A message about no approval: a click on it decides nothing."""
    return Message(CHANNEL, "1.000001", "", [{
        "type": "actions", "block_id": "x", "elements": [
            {"type": "button", "action_id": "tollgate_deny", "value": "ap-none",
             "text": {"type": "plain_text", "text": "Deny"}}]}])


def linked(gw: Gateway, slack: SlackStandIn, user: str, token: str, replica: int = 0) -> None:
    """`user` linked to `token`'s identity, as a person does: a click without a link (on
    a message about no approval: nothing is decided), then the link page, signed in. A
    user linked already (by an earlier test) is answered as one: there is no such
    approval."""
    seen = len(slack.ephemeral_to(user))
    status, _ = slack.click(actions_url(gw, replica), unrelated_message(), "tollgate_deny",
                            user)
    assert status == 200
    stack.wait_until(lambda: len(slack.ephemeral_to(user)) > seen, 10, f"{user}'s answer")
    if "no approval ap-none" in slack.ephemeral_to(user)[seen]:
        return
    status, made = api(gw, "POST", "/slack/link", token, {"code": link_code(slack, user, seen)},
                       replica=replica)
    assert status == 200, made


def test_a_held_request_is_posted_with_buttons_and_inert_agent_text(
        gw: Gateway, slack: SlackStandIn) -> None:
    text = "UPDATE customers SET name = '<!channel> @here <https://evil.example|ok> \x1b[2K'"
    held, approval = held_sql(gw, text)
    message = posted(slack, approval["id"])
    assert message.channel == CHANNEL
    buttons = message.buttons()
    assert (buttons["tollgate_approve"]["value"], buttons["tollgate_deny"]["value"]) == (
        approval["id"], approval["id"])
    assert buttons["tollgate_open"]["url"] == approval["page_url"]
    shown = message.shown()
    for part in ("Asked by: svc-autogen", "Target: demo", "Approvers: group:dba",
                 "Approving grants: this one request", "A request waits on it"):
        assert part in shown, (part, shown)
    # What the agent wrote: shown, never played (no mention, link or escape sequence).
    assert "&lt;!channel&gt; \uff20here &lt;https://evil.example|ok&gt; \\x1b[2K" in shown
    for played in ("<!channel>", "@here", "<https://", "\x1b"):
        assert played not in shown and played not in message.text
    assert all(t["type"] == "plain_text" for b in message.blocks
               for t in [b.get("text"), *b.get("fields", [])] if t)
    # The call as Slack's API takes it: the bot token, JSON.
    call = next(c for c in slack.calls if c.method == "chat.postMessage"
                and c.body["blocks"] == message.versions[0]["blocks"])
    assert call.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA, {"reason": "tidy up"})
    assert held.result().status == 403


def test_an_unlinked_click_gets_a_one_time_link_that_binds(gw: Gateway,
                                                           slack: SlackStandIn) -> None:
    held, approval = held_sql(gw, "UPDATE customers SET email = email -- unlinked")
    message = posted(slack, approval["id"])
    seen = len(slack.ephemeral_to(U_ANN))
    slack.add_person(U_ANN, "ann@example.test")  # confirmed, but link_by_email is off
    status, _ = slack.click(actions_url(gw), message, "tollgate_approve", U_ANN)
    assert status == 200
    code = link_code(slack, U_ANN, seen)
    assert slack.ephemeral_to(U_ANN)[seen].startswith("To decide in Slack, first link")
    assert f"{gw.admin_url}/slack/link?code={code}" in slack.ephemeral_to(U_ANN)[seen]
    assert "users.info" not in {c.method for c in slack.calls}  # nobody's e-mail asked
    assert api(gw, "GET", f"/approvals/{approval['id']}", DBA)[1]["status"] == "pending"
    # What the link page sends: refused unless signed in; first, whose Slack user it is
    # (the code kept), then the link (the code spent).
    for path in ("/slack/link/check", "/slack/link"):
        status, made = api(gw, "POST", path, None, {"code": code})
        assert (status, made["error"]) == (401, "unauthenticated")
    status, whose = api(gw, "POST", "/slack/link/check", NOT_AN_APPROVER, {"code": code})
    assert status == 200, whose
    assert (whose["slack_user"], whose["slack_name"], whose["team_id"], whose["sub"]) == (
        U_ANN, "u0ann", "T0TOLLGATE", "ann")
    status, made = api(gw, "POST", "/slack/link", NOT_AN_APPROVER, {"code": code})
    assert status == 200, made
    assert (made["sub"], made["groups"], made["slack_user"]) == ("ann", ["agents"], U_ANN)
    # It ends with the sign-in (the token's expiry, sooner than link_minutes' 8 h).
    token_exp = jwt.decode(NOT_AN_APPROVER, options={"verify_signature": False})["exp"]
    assert made["expires_us"] == token_exp * 1_000_000
    status, again = api(gw, "POST", "/slack/link", NOT_AN_APPROVER, {"code": code})
    assert (status, again["error"]) == (410, "link_unknown")
    # Linked, ann is still no approver: her click is refused by the approval's own check.
    seen = len(slack.ephemeral_to(U_ANN))
    slack.click(actions_url(gw), message, "tollgate_approve", U_ANN)
    stack.wait_until(lambda: len(slack.ephemeral_to(U_ANN)) > seen, 10, "ann's answer")
    assert "only group:dba may decide this approval" in slack.ephemeral_to(U_ANN)[seen]
    assert not held.answered
    api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA, {"reason": "tidy up"})
    held.result()


def test_the_link_page_names_the_slack_user_and_links_it(
        gw: Gateway, slack: SlackStandIn, browser: Browser) -> None:
    """The page a Slack user opens from tollgate's answer, in Chromium: signed in with a
    token, it names the Slack user the link speaks for, and links it; axe-core finds no
    serious violation; the code is spent."""
    user = "U0DARIA"
    seen = len(slack.ephemeral_to(user))
    status, _ = slack.click(actions_url(gw), unrelated_message(), "tollgate_deny", user)
    assert status == 200
    code = link_code(slack, user, seen)
    with urllib.request.urlopen(f"{gw.admin_url}/slack/link?code={code}", timeout=10) as reply:
        assert "default-src 'none'" in reply.headers["Content-Security-Policy"]
    for viewport in ({"width": 1280, "height": 800}, {"width": 390, "height": 844}):
        with tab(browser, viewport=viewport) as page:
            page.goto(f"{gw.admin_url}/slack/link?code={code}")
            expect(page.locator("#status")).to_contain_text("Sign in", timeout=10_000)
            assert serious_violations(page) == [], "signed out"
            page.fill("#token", OTHER_DBA)
            page.keyboard.press("Enter")
            expect(page.locator("#whose")).to_have_text(
                "Slack user @u0daria (U0DARIA) of Slack workspace T0TOLLGATE asks to decide "
                "as you, dmitri (groups: dba). Link it only if that Slack user is yours.",
                timeout=10_000)
            assert serious_violations(page) == [], "signed in"
    with tab(browser) as page:
        page.goto(f"{gw.admin_url}/slack/link?code={code}")
        page.fill("#token", OTHER_DBA)
        page.keyboard.press("Enter")
        page.locator("#link").click()
        expect(page.locator("#status")).to_contain_text(
            "Linked: Slack user @u0daria (U0DARIA) of Slack workspace T0TOLLGATE now decides "
            "as dmitri until", timeout=10_000)
        assert "code=" not in page.url
        page.goto(f"{gw.admin_url}/slack/link?code={code}")  # still signed in, this tab
        expect(page.locator("#status")).to_contain_text("used already", timeout=10_000)
        expect(page.locator("#link")).to_be_hidden()


def test_a_click_on_the_longest_message_fits_the_admin_port(
        gw: Gateway, slack: SlackStandIn) -> None:
    """A click's request carries its whole message: an agent's statement of 4,000 ESCs,
    `<`s and `&`s each (52,000 characters made inert) is cut short in Slack (the page
    shows it all), so the click still reaches tollgate (not a 413)."""
    text = "UPDATE customers SET name = '" + "\x1b<&" * 4000 + "'"
    held, approval = held_sql(gw, text)
    message = posted(slack, approval["id"])
    assert message.shown().split("\n")[1].endswith("\u2026")  # the statement, cut
    seen = len(slack.ephemeral_to(U_ANN + "2"))
    status, _ = slack.click(actions_url(gw), message, "tollgate_approve", U_ANN + "2")
    assert status == 200
    link_code(slack, U_ANN + "2", seen)
    api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA, {"reason": "tidy up"})
    held.result()


def test_a_linked_approvers_click_approves_and_the_request_completes(
        gw: Gateway, slack: SlackStandIn) -> None:
    linked(gw, slack, U_DANA, DBA)
    held, approval = held_sql(gw, "UPDATE customers SET email = email -- by slack")
    message = posted(slack, approval["id"])
    status, _ = slack.click(actions_url(gw), message, "tollgate_approve", U_DANA)
    assert status == 200
    reply = held.result()
    assert reply.status == 200, reply.body
    updated = shows(slack, approval["id"], "Approved by dana")
    # Then what the request did, as its record says (never assumed from the approval).
    updated = shows(slack, approval["id"], "; it ran: its target answered 200 OK.")
    assert "tollgate_approve" not in updated.buttons()
    assert "tollgate_deny" not in updated.buttons()
    # The record says it came through Slack, and names the identity, the Slack user and
    # how it was linked to it (the one-time link).
    record = decision_record(gw, approval["id"], "approve")
    assert record["identity"]["sub"] == "dana"
    assert record["approval"]["via"] == "slack"
    assert record["approval"]["slack"] == {"user_id": U_DANA, "team_id": "T0TOLLGATE",
                                           "linked_by": "code"}
    assert record["approval"]["decided_by"] == "dana"
    # So does its span, under the held request's trace.
    spans = gw.otlp.spans_of(record["trace_id"], count=2)
    decided = next(s for s in spans if s.name == "tollgate approval approve")
    assert (decided.attributes["enduser.id"], decided.attributes["tollgate.approval.via"],
            decided.attributes["tollgate.slack.user_id"]) == ("dana", "slack", U_DANA)


def test_bad_and_old_signatures_are_refused(gw: Gateway, slack: SlackStandIn) -> None:
    held, approval = held_sql(gw, "UPDATE customers SET email = email -- forged")
    message = posted(slack, approval["id"])
    url = actions_url(gw)
    status, body = slack.click(url, message, "tollgate_approve", U_DANA, secret="guessed" * 5)
    assert status == 401 and b"does not match the signing secret" in body
    status, body = slack.click(url, message, "tollgate_approve", U_DANA,
                               at=time.time() - 600)
    assert status == 401 and b"s off (at most 300 s)" in body
    status, body = post(url, b"payload=%7B%7D", {})
    assert status == 401 and b"no X-Slack-Request-Timestamp" in body
    assert api(gw, "GET", f"/approvals/{approval['id']}", DBA)[1]["status"] == "pending"
    assert not held.answered
    api(gw, "POST", f"/approvals/{approval['id']}/deny", DBA, {"reason": "tidy up"})
    held.result()


def test_the_requester_cannot_approve_their_own_in_slack(gw: Gateway,
                                                         slack: SlackStandIn) -> None:
    linked(gw, slack, U_DANA, DBA)
    held, approval = held_sql(gw, "UPDATE customers SET email = email -- mine", token=DBA)
    assert approval["requester"] == "dana"
    message = posted(slack, approval["id"])
    seen = len(slack.ephemeral_to(U_DANA))
    slack.click(actions_url(gw), message, "tollgate_approve", U_DANA)
    stack.wait_until(lambda: len(slack.ephemeral_to(U_DANA)) > seen, 10, "dana's answer")
    assert "nobody approves their own request" in slack.ephemeral_to(U_DANA)[seen]
    assert not held.answered
    assert api(gw, "GET", f"/approvals/{approval['id']}", OTHER_DBA)[1]["status"] == "pending"
    # Nor denies it: the dialog does not even open.
    views = len(slack.views)
    slack.click(actions_url(gw), message, "tollgate_deny", U_DANA)
    stack.wait_until(lambda: len(slack.ephemeral_to(U_DANA)) > seen + 1, 10, "dana's answer")
    assert len(slack.views) == views
    api(gw, "POST", f"/approvals/{approval['id']}/deny", OTHER_DBA, {"reason": "not yours"})
    held.result()


def test_a_denial_in_its_dialog_reaches_the_client_with_its_reason(
        gw: Gateway, slack: SlackStandIn) -> None:
    linked(gw, slack, U_DMITRI, OTHER_DBA)
    held, approval = held_sql(gw, "DELETE FROM customers")
    message = posted(slack, approval["id"])
    views = len(slack.views)
    status, _ = slack.click(actions_url(gw), message, "tollgate_deny", U_DMITRI)
    assert status == 200 and len(slack.views) == views + 1
    dialog = slack.views[-1]
    # A reason that is only blanks is refused in the dialog, by the API's own check.
    status, body = slack.submit(actions_url(gw), dialog, U_DMITRI, {"reason": "   "})
    assert status == 200 and b'"response_action":"errors"' in body
    assert b"a denial needs a reason" in body
    status, body = slack.submit(actions_url(gw), dialog, U_DMITRI,
                                {"reason": "not during the freeze"})
    assert (status, body) == (200, b"")
    reply = held.result()
    assert reply.status == 403
    assert "denied by dmitri: not during the freeze" in reply.json()["message"]
    updated = shows(slack, approval["id"], "Denied by dmitri")
    assert "not during the freeze" in updated.shown()
    assert "tollgate_deny" not in updated.buttons()


def test_the_message_shows_that_the_client_left(gw: Gateway, slack: SlackStandIn) -> None:
    text = "UPDATE customers SET email = email -- leaves"
    gone = Held(lambda: sql(gw, text, timeout=3))
    approval = pending_for(gw, text)
    posted(slack, approval["id"])
    with pytest.raises(TimeoutError):
        gone.result()
    message = shows(slack, approval["id"], "withdrawn: its request stopped waiting")
    # Withdrawn: nobody may grant it any more, so its buttons go.
    assert "Abandoned" in message.shown()
    assert "tollgate_approve" not in message.buttons()


# -- expiry, and two replicas sharing a PostgreSQL store --------------------------------


def test_the_message_shows_an_expiry(make_gateway: GatewayFactory, slack: SlackStandIn,
                                     tmp_path: Path) -> None:
    gw = make_gateway(POLICIES, settings={"approvals": {
        "expire_seconds": 3, "max_hold_seconds": 1, "poll_seconds": 0.5,
        "slack": slack_settings(tmp_path, slack)}})
    text = "UPDATE customers SET email = email -- expires"
    assert sql(gw, text).status == 403  # its hold of 1 s ends
    record = gw.the_record(lambda r: r["request"]["body"] is not None
                           and r["request"]["body"].get("value") == {"sql": text},
                           "the exchange held until it expired", kind="exchange")
    approval_id = record["approval"]["id"]
    message = shows(slack, approval_id, "Expired undecided")
    assert "tollgate_approve" not in message.buttons()


def test_a_change_made_through_the_other_replica_reaches_slack(
        make_gateway: GatewayFactory, pg_url: str, slack: SlackStandIn, tmp_path: Path
) -> None:
    gw = make_gateway(POLICIES, replicas=2, settings={
        "store": {"url": pg_url},
        "approvals": {"max_hold_seconds": 30, "poll_seconds": 0.5,
                      "slack": slack_settings(tmp_path, slack)}})
    text = "UPDATE customers SET email = email -- replicas"
    held = Held(lambda: sql(gw, text))
    approval = pending_for(gw, text)
    other = 1 - int(approval["held_by"].rsplit("-", 1)[1])
    message = posted(slack, approval["id"])
    # Linked, and clicked, through the replica that does not hold the request.
    linked(gw, slack, U_DANA, DBA, replica=other)
    status, _ = slack.click(actions_url(gw, other), message, "tollgate_approve", U_DANA)
    assert status == 200
    assert held.result().status == 200
    shows(slack, approval["id"], "Approved by dana")


def test_a_hold_abandoned_by_a_killed_replica_is_shown_abandoned(
        make_gateway: GatewayFactory, pg_url: str, slack: SlackStandIn, tmp_path: Path
) -> None:
    """The replica holding the request is SIGKILLed: the one still alive abandons its
    approval, and the message it never posted shows it, its buttons gone."""
    gw = make_gateway(POLICIES, replicas=2, settings={
        "store": {"url": pg_url, "heartbeat_seconds": 0.5},
        "approvals": {"max_hold_seconds": 30, "poll_seconds": 0.5, "abandon_seconds": 1,
                      "slack": slack_settings(tmp_path, slack)}})
    text = "UPDATE customers SET email = email -- abandoned"
    held = Held(lambda: sql(gw, text))
    approval = pending_for(gw, text)
    holder = int(approval["held_by"].rsplit("-", 1)[1])
    posted(slack, approval["id"])
    stack.wait_until(lambda: api(gw, "GET", f"/approvals/{approval['id']}", DBA)[1]["wait"][
        "waiting"], 10, "the held request to wait on its approval")
    gw.processes[holder].popen.kill()
    gw.processes[holder].popen.wait(10)
    held.result()
    message = shows(slack, approval["id"], "Abandoned at", timeout=30)
    assert "tollgate_approve" not in message.buttons()
    assert "stopped without answering it" in message.shown()
