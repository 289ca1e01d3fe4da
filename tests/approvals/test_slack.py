"""Slack as an app, piece by piece: its config and secrets refused clearly, Slack's
request signatures checked, and what each state of an approval shows in its message."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from extproc import config
from extproc.admin.slack.signature import refused, sign
from extproc.approvals.answered import Answered
from extproc.approvals.slack.blocks import message, state_of
from extproc.approvals.slack.web_api import SlackSecrets
from tests.approvals.test_model import APPROVAL
from tests.test_config import MINIMAL, write

SLACK = {"bot_token_file": "t", "signing_secret_file": "s", "channel": "#approvals"}
ADMIN = {"listen": {"admin": "127.0.0.1:8081"}}
OIDC = {"issuer": "https://login.example.test", "client_id": "tollgate-admin"}
BY_EMAIL = {"approvals": {"slack": {**SLACK, "link_by_email": True}}}


@pytest.mark.parametrize(("data", "expected"), [
    ({**MINIMAL, "approvals": {"slack": SLACK}},
     "approvals.slack: its buttons are answered on the admin port (/slack/actions) and its "
     "users linked there: set listen.admin too"),
    ({**MINIMAL, **ADMIN, "approvals": {"slack": {**SLACK, "channel": " "}}},
     "approvals.slack.channel: must name a channel"),
    ({**MINIMAL, **ADMIN, "approvals": {"slack": {**SLACK, "api_url": "slack.com/api"}}},
     "approvals.slack.api_url: expected http(s)://HOST[:PORT][/PATH], got 'slack.com/api'"),
    ({**MINIMAL, **ADMIN, "approvals": {"slack": {**SLACK, "attempts": 0}}},
     "approvals.slack.attempts: must be >= 1"),
    ({**MINIMAL, **ADMIN, "approvals": {"slack": {**SLACK, "link_minutes": 0}}},
     "approvals.slack.link_minutes: must be from 1 to 10080"),
    ({**MINIMAL, **ADMIN, "approvals": {"slack": {"channel": "#a"}}},
     "approvals.slack.bot_token_file: required key is missing"),
    ({**MINIMAL, **ADMIN, "approvals": {"slack": {**SLACK, "link_by_email": "yes"}}},
     "approvals.slack.link_by_email: expected true or false, got str 'yes'"),
    ({**MINIMAL, **ADMIN, **BY_EMAIL},
     "approvals.slack.link_by_email: links a Slack user to whoever signed in to the admin "
     "pages with the same verified e-mail: set admin.oidc too"),
    ({**MINIMAL, **ADMIN, **BY_EMAIL, "admin": {"oidc": {**OIDC, "scopes": ["openid"]}}},
     "approvals.slack.link_by_email: needs the provider's e-mail claims (email, "
     "email_verified): add email to admin.oidc.scopes"),
])
def test_slack_settings_mistakes_name_the_key(tmp_path: Path, data: dict[str, Any],
                                              expected: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert expected in str(err.value)


def test_slack_settings_take_their_defaults(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, {**MINIMAL, **ADMIN, "approvals": {"slack": SLACK}}))
    slack = loaded.approvals.slack
    assert slack is not None
    assert (slack.api_url, slack.attempts, slack.link_minutes, slack.link_by_email) == (
        "https://slack.com/api", 5, 480.0, False)
    on = config.load(write(tmp_path, {**MINIMAL, **ADMIN, **BY_EMAIL, "admin": {"oidc": OIDC}}))
    assert on.approvals.slack is not None and on.approvals.slack.link_by_email is True


@pytest.mark.parametrize(("token", "secret", "expected"), [
    (None, "s" * 32, "approvals.slack.bot_token_file: {dir}/token: cannot read: No such file"),
    ("", "s" * 32, "approvals.slack.bot_token_file: {dir}/token is empty"),
    ("xoxp-user-token", "s" * 32, "holds no bot token (xoxb-...)"),
    ("xoxb-1", "short", "approvals.slack.signing_secret_file: {dir}/secret holds 5 "
                        "characters: give the app's Signing Secret"),
])
def test_slack_secrets_that_cannot_serve_say_why(tmp_path: Path, token: str | None,
                                                 secret: str, expected: str) -> None:
    if token is not None:
        (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "secret").write_text(secret)
    with pytest.raises(ValueError) as err:
        SlackSecrets.read(tmp_path / "token", tmp_path / "secret")
    assert expected.format(dir=tmp_path) in str(err.value)


def test_slack_secrets_are_read_without_their_newline(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("xoxb-1-2-abc\n")
    (tmp_path / "secret").write_text("8f742231b10e8888abcd99yyyzzz85a5\n")
    read = SlackSecrets.read(tmp_path / "token", tmp_path / "secret")
    assert (read.bot_token, read.signing_secret) == (
        "xoxb-1-2-abc", b"8f742231b10e8888abcd99yyyzzz85a5")


# -- signatures ------------------------------------------------------------------------

SECRET = b"8f742231b10e8888abcd99yyyzzz85a5"
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
AT = 1_531_420_618


def signed(body: bytes = BODY, at: int = AT, secret: bytes = SECRET) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": str(at), "X-Slack-Signature": sign(secret, str(at), body)}


def test_slacks_documented_example_signature_is_reproduced() -> None:
    """Slack's own example (api.slack.com/authentication/verifying-requests-from-slack)."""
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
            b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
            b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id="
            b"398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    assert sign(SECRET, "1531420618", body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")


def test_a_request_slack_signed_now_passes() -> None:
    assert refused(SECRET, signed(), BODY, at=AT + 299) is None


@pytest.mark.parametrize(("headers", "at", "why"), [
    ({}, AT, "no X-Slack-Request-Timestamp and X-Slack-Signature headers"),
    (signed(secret=b"another-secret-of-32-characters!"), AT,
     "does not match the signing secret"),
    (signed(body=BODY + b"x"), AT, "does not match the signing secret"),
    (signed(), AT + 301, "its timestamp is 301 s off (at most 300 s)"),
    (signed(), AT - 400, "its timestamp is 400 s off"),
    ({**signed(), "X-Slack-Request-Timestamp": "soon"}, AT, "is no Unix time"),
    ({**signed(), "X-Slack-Signature": "v1=00"}, AT, "is not a v0 signature"),
], ids=["none", "other-secret", "other-body", "old", "future", "no-time", "v1"])
def test_anything_else_is_refused_saying_why(headers: dict[str, str], at: int,
                                            why: str) -> None:
    found = refused(SECRET, headers, BODY, at=at)
    assert found is not None and why in found


# -- what a message shows ----------------------------------------------------------------

NOW = 1_795_000_000_000_000
HELD = replace(APPROVAL, created_us=NOW - 60_000_000, expires_us=NOW + 3_600_000_000,
               hold_until_us=NOW + 240_000_000, waiting_until_us=NOW + 6_000_000)


def buttons(approval: Any, at: int = NOW) -> list[str]:
    return [e["action_id"] for b in message(approval, "http://gw/approvals/ui#x", at)["blocks"]
            if b["type"] == "actions" for e in b["elements"]]


@pytest.mark.parametrize(("approval", "state", "final"), [
    (HELD, "pending:0:waits", False),
    (replace(HELD, waiting_until_us=None), "pending:0:gone", False),
    (replace(HELD, waiting_until_us=None, created_us=NOW - 1_000_000), "pending:0:waits",
     False),  # its waiter has not renewed the lease yet
    (replace(HELD, hold_until_us=None, waiting_until_us=None), "pending:0:none", False),
    (replace(HELD, approvals_needed=2, approved_by=("dana",)), "pending:1:waits", False),
    (replace(HELD, expires_us=NOW), "expired", True),
    (replace(HELD, status="approved"), "approved", False),  # a once grant, used later
    (replace(HELD, status="approved", expires_us=NOW), "approved", True),
    (replace(HELD, status="approved", grant_mode="window"), "approved", True),
    (replace(HELD, status="used", used_us=NOW), "used:untold", False),
    (replace(HELD, status="used", used_us=NOW - 601_000_000), "used:untold", True),
    (replace(HELD, status="denied"), "denied", True),
    (replace(HELD, status="abandoned"), "abandoned", True),
])
def test_each_state_is_told_apart(approval: Any, state: str, final: bool) -> None:
    assert state_of(approval, at_us=NOW) == (state, final)


# How a used approval's request was answered, as its record says (answered.py).
RAN = Answered(at_us=NOW, status=200, action="allow", refusal=None, approval_status="used",
               client_left=False, detail="DELETE 3")
REFUSED = replace(RAN, status=403, action="deny", refusal="effect_unmeasured", detail=None)
USED = replace(HELD, status="used", used_us=NOW, decided_by="dana", decided_us=NOW,
               approved_by=("dana",))


def outcome(shown: dict[str, Any]) -> str:
    return str(shown["blocks"][3]["text"]["text"])


def test_a_used_approval_says_what_its_request_did_as_its_record_says() -> None:
    """Never "it went through" of a request refused afterwards: the record decides."""
    assert state_of(USED, RAN, NOW) == ("used:told", True)
    ran = message(USED, None, NOW, RAN)
    assert outcome(ran) == "Approved by dana at 2026-11-18 11:06:40 UTC; it ran: DELETE 3."
    assert ran["blocks"][0]["text"]["text"] == "Approved"
    refused = message(USED, None, NOW, REFUSED)
    assert outcome(refused) == ("Approved by dana at 2026-11-18 11:06:40 UTC; tollgate "
                                "refused it: its effect could not be measured "
                                "(effect_unmeasured).")
    assert refused["blocks"][0]["text"]["text"] == "Approved, then refused"
    assert "went through" not in str(refused)
    # An earlier try's answer (it gave up while the approval was pending) is not the
    # used request's: the message waits for the record of the one that used it.
    gave_up = replace(REFUSED, approval_status="pending", refusal="approval_required")
    assert state_of(USED, gave_up, NOW) == ("used:untold", False)
    assert outcome(message(USED, None, NOW, gave_up)).endswith(
        "; its answer is not in the record yet.")
    assert outcome(message(USED, None, NOW + 601_000_000)).endswith(
        "; its answer is missing from the record.")


def test_a_two_person_approval_says_so_from_the_first_message_to_the_last() -> None:
    two = replace(HELD, approvals_needed=2)
    first = str(message(two, None, NOW))
    assert "Needs: 2 different approvers" in first
    assert "It needs 2 different approvers; nobody has approved it yet." in first
    half = str(message(replace(two, approved_by=("dana",)), None, NOW))
    assert "Approved so far by dana: 1 more approver needed." in half
    done = replace(USED, approvals_needed=2, approved_by=("dana", "ops-olga"),
                   decided_by="ops-olga")
    assert outcome(message(done, None, NOW, RAN)).startswith(
        "Approved by dana, ops-olga at ")


def test_a_decided_message_shows_no_expiry_that_cannot_come() -> None:
    assert "Expires:" in str(message(HELD, None, NOW))
    assert "Expires:" in str(message(replace(HELD, status="approved"), None, NOW))
    for decided in (USED, replace(HELD, status="denied", decided_by="dana", decided_us=NOW),
                    replace(HELD, status="approved", grant_mode="window")):
        assert "Expires:" not in str(message(decided, None, NOW, RAN))


def test_a_pending_message_has_buttons_and_a_decided_one_its_outcome() -> None:
    assert buttons(HELD) == ["tollgate_approve", "tollgate_deny", "tollgate_open"]
    denied = replace(HELD, status="denied", decided_by="dana", decided_us=NOW,
                     reason="<!here> not now")
    assert buttons(denied) == ["tollgate_open"]
    shown = message(denied, None, NOW)
    assert shown["blocks"][0]["text"]["text"] == "Denied"
    assert "Denied by dana at 2026-11-18 11:06:40 UTC: &lt;!here&gt; not now." in str(shown)
    assert all(b["type"] != "actions" for b in shown["blocks"])  # nor a link, without one
