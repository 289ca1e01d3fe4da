"""The link by verified e-mail's two halves on SQLite and PostgreSQL, against the Slack
stand-in: what a sign-in leaves in the store (only an e-mail its provider verified), and
whom a Slack user is linked to (exactly one identity signed in with the e-mail Slack
confirmed, never past its session)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from extproc.approvals.model import now
from extproc.approvals.slack.emails import EmailLinker, NotLinked, SignedInEmails
from extproc.approvals.slack.links import SlackLinks, SlackUser
from extproc.approvals.slack.web_api import SlackApi
from extproc.identity import Authenticated
from extproc.store.aio import AsyncStore
from tests.standins.slack_api import BOT_TOKEN, TEAM, SlackStandIn

HOUR = 3_600_000_000


def identity(sub: str) -> Authenticated:
    return {"authenticated": True, "sub": sub, "iss": "https://login.example.test",
            "aud": ["tollgate-admin"], "email": f"{sub}@example.test", "groups": ["dba"],
            "jti": None}


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    server = SlackStandIn().start()
    yield server
    server.stop()


@pytest.mark.parametrize(("claims", "kept"), [
    ({"email": " Dana@Example.TEST ", "email_verified": True}, "dana@example.test"),
    ({"email": "dana@example.test", "email_verified": "true"}, None),  # no boolean
    ({"email": "dana@example.test", "email_verified": False}, None),
    ({"email": "dana@example.test"}, None),
    ({"email_verified": True}, None),
    ({"email": "dana", "email_verified": True}, None),
])
async def test_a_sign_in_is_remembered_only_by_an_email_its_provider_verified(
        store: AsyncStore, claims: dict[str, Any], kept: str | None) -> None:
    emails = SignedInEmails(store)
    assert await emails.remember(claims, identity("dana"), now() + HOUR) == kept
    rows = await store.execute("SELECT email, subject FROM verified_emails")
    assert [tuple(r) for r in rows] == ([(kept, "dana")] if kept else [])


async def test_a_remembered_sign_in_ends_with_its_session_or_its_sign_out(
        store: AsyncStore) -> None:
    emails = SignedInEmails(store)
    verified = {"email": "dana@example.test", "email_verified": True}
    await emails.remember(verified, identity("dana"), now() - 1)
    assert await emails.signed_in_with("dana@example.test") == []
    await emails.remember(verified, identity("dana"), now() + HOUR)
    (found,) = await emails.signed_in_with("dana@example.test")
    assert (found.identity["sub"], found.identity["groups"]) == ("dana", ["dba"])
    await emails.forget("dana")
    assert await emails.signed_in_with("dana@example.test") == []


async def test_a_slack_user_is_linked_to_the_one_identity_signed_in_with_their_email(
        store: AsyncStore, standin: SlackStandIn) -> None:
    api = SlackApi(standin.api_url, BOT_TOKEN, 1)
    links, emails = SlackLinks(store, 480), SignedInEmails(store)
    linker = EmailLinker(api, links, emails)
    user = SlackUser(TEAM, "U0DANA", "u0dana")
    standin.add_person("U0DANA", "Dana@example.test")
    try:
        session_end = now() + HOUR
        await emails.remember({"email": "dana@example.test", "email_verified": True},
                              identity("dana"), session_end)
        link = await linker.link(user)
        assert (link.identity["sub"], link.linked_by, link.expires_us) == (
            "dana", "email", session_end)  # the session's end, before link_minutes'
        again = await links.link_of(user)
        assert again is not None and (again.identity["sub"], again.linked_by) == (
            "dana", "email")
        # A second identity signed in with the same e-mail: it names nobody.
        await emails.remember({"email": "dana@example.test", "email_verified": True},
                              identity("dana2"), session_end)
        with pytest.raises(NotLinked) as refused:
            await linker.link(SlackUser(TEAM, "U0DANA", "u0dana"))
        assert str(refused.value) == ("2 identities are signed in on tollgate with "
                                      "dana@example.test, so it names nobody")
    finally:
        await api.close()
