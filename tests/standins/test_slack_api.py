"""The Slack stand-in answers as Slack's Web API documents it (checked here with
tollgate's own client, approvals/slack/web_api.py, and with form bodies as other clients
send them), so the end-to-end tests against it mean something."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from extproc.approvals.slack.web_api import SlackApi, SlackError
from tests.standins.slack_api import BOT_TOKEN, SlackStandIn


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    server = SlackStandIn().start()
    yield server
    server.stop()


def form_call(standin: SlackStandIn, method: str, fields: dict[str, str],
              token: str | None = BOT_TOKEN) -> dict[str, Any]:
    """A call as a form (`application/x-www-form-urlencoded`), the other body Slack takes."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{standin.api_url}/{method}", method="POST",
                                     data=urlencode(fields).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200  # Slack answers 200, refusals included
        answer: dict[str, Any] = json.loads(reply.read())
        return answer


async def test_a_message_is_posted_and_updated_in_place(standin: SlackStandIn) -> None:
    api = SlackApi(standin.api_url, BOT_TOKEN, 1)
    try:
        posted = await api.call("chat.postMessage", {"channel": "#approvals", "text": "hi"})
        assert posted["ok"] is True and posted["channel"] == "C0APPROVALS"
        updated = await api.call("chat.update", {"channel": posted["channel"],
                                                 "ts": posted["ts"], "text": "bye"})
        assert updated["ts"] == posted["ts"]
        (message,) = standin.messages.values()
        assert [v["text"] for v in message.versions] == ["hi", "bye"]
    finally:
        await api.close()


@pytest.mark.parametrize(("method", "body", "error"), [
    ("chat.postMessage", {"channel": "#elsewhere", "text": "hi"}, "channel_not_found"),
    ("chat.postMessage", {"channel": "#approvals"}, "no_text"),
    ("chat.postMessage", {"channel": "#approvals", "blocks": [
        {"type": "header", "text": {"type": "mrkdwn", "text": "*x*"}}]}, "invalid_blocks"),
    ("chat.update", {"channel": "C0APPROVALS", "ts": "1.2", "text": "x"}, "message_not_found"),
    ("chat.postEphemeral", {"channel": "C0APPROVALS", "text": "x"}, "user_not_in_channel"),
    ("views.open", {"trigger_id": "made.up", "view": {}}, "invalid_trigger_id"),
    ("chat.delete", {"channel": "C0APPROVALS", "ts": "1.2"}, "unknown_method"),
])
async def test_refusals_are_slacks_error_codes(standin: SlackStandIn, method: str,
                                               body: dict[str, Any], error: str) -> None:
    api = SlackApi(standin.api_url, BOT_TOKEN, 3)
    try:
        with pytest.raises(SlackError) as refused:
            await api.call(method, body)
        assert (refused.value.error, refused.value.retryable) == (error, False)
    finally:
        await api.close()


def test_the_bot_token_is_checked_and_forms_are_read(standin: SlackStandIn) -> None:
    assert form_call(standin, "chat.postMessage", {"channel": "C0APPROVALS", "text": "x"},
                     token=None) == {"ok": False, "error": "not_authed"}
    assert form_call(standin, "chat.postMessage", {"channel": "C0APPROVALS", "text": "x"},
                     token="xoxb-wrong") == {"ok": False, "error": "invalid_auth"}
    blocks = [{"type": "section", "text": {"type": "plain_text", "text": "hello"}}]
    answer = form_call(standin, "chat.postMessage", {"channel": "C0APPROVALS",
                                                     "blocks": json.dumps(blocks)})
    assert answer["ok"] is True and answer["message"]["blocks"] == blocks


async def test_users_info_reads_a_form_and_shows_the_email_its_scope_allows(
        standin: SlackStandIn) -> None:
    """As Slack documents users.info: a form's `user` (a JSON body's arguments go unseen,
    so the user is not found), the e-mail in `profile` only with users:read.email, and
    users:read needed at all."""
    standin.add_person("U0DANA", "Dana@Example.test", confirmed=False)
    api = SlackApi(standin.api_url, BOT_TOKEN, 1)
    try:
        found = (await api.call("users.info", {"user": "U0DANA"}, form=True))["user"]
        assert (found["id"], found["team_id"], found["deleted"], found["is_bot"]) == (
            "U0DANA", "T0TOLLGATE", False, False)
        assert (found["profile"]["email"], found["is_email_confirmed"]) == (
            "Dana@Example.test", False)
        with pytest.raises(SlackError) as unseen:
            await api.call("users.info", {"user": "U0DANA"})
        assert unseen.value.error == "user_not_found"
        with pytest.raises(SlackError) as nobody:
            await api.call("users.info", {"user": "U0NOBODY"}, form=True)
        assert nobody.value.error == "user_not_found"
        standin.scopes.discard("users:read.email")
        found = (await api.call("users.info", {"user": "U0DANA"}, form=True))["user"]
        assert "email" not in found["profile"] and found["profile"]["display_name"] == "u0dana"
    finally:
        await api.close()
    standin.scopes.discard("users:read")
    assert form_call(standin, "users.info", {"user": "U0DANA"}) == {
        "ok": False, "error": "missing_scope", "needed": "users:read",
        "provided": "chat:write"}
