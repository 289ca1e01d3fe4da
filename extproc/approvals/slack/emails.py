"""Linking a Slack user by e-mail (`approvals.slack.link_by_email`): the e-mail Slack has
confirmed for the Slack user who clicked, matched with the one an identity signed in to
the admin pages with, which the identity provider said it verified.

Neither side alone decides. A Slack user is nobody to the identity provider, and tollgate
knows an identity only from a verified token: so it remembers, as a person signs in
(admin/signin.py), the e-mail their ID token carries with `email_verified: true`, under
their identity, until their session ends or they sign out (`SignedInEmails`). A click
from a Slack user without a link then asks Slack for their e-mail (`users.info`, which
shows `profile.email` only with the scope users:read.email, and `is_email_confirmed`),
and links them (links.py, `linked_by` "email") to the one identity that signed in with
exactly that e-mail, until that sign-in's end at most (`EmailLinker`). Anything less (no
e-mail, not confirmed, nobody or several identities signed in with it, Slack not
answering) leaves the one-time link, saying why (`NotLinked`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from extproc.approvals.model import now
from extproc.approvals.slack.links import EMAIL, Link, SlackLinks, SlackUser
from extproc.approvals.slack.web_api import SlackApi, SlackError
from extproc.identity import Authenticated
from extproc.store.aio import AsyncStore

log = logging.getLogger("tollgate.slack")


class NotLinked(Exception):
    """Why a Slack user was not linked by e-mail, in words for them."""


@dataclass(frozen=True)
class SignedIn:
    """An identity that signed in with a verified e-mail, until when."""

    identity: Authenticated
    until_us: int


def verified_email(claims: dict[str, Any]) -> str | None:
    """The e-mail of verified ID token claims, lower-cased, when the provider says it
    verified it (`email_verified` is true, the boolean); None otherwise."""
    email = claims.get("email")
    if claims.get("email_verified") is not True or not isinstance(email, str):
        return None
    email = email.strip().lower()
    return email if "@" in email else None


class SignedInEmails:
    """Who signed in with which verified e-mail (the store's verified_emails)."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store

    async def remember(self, claims: dict[str, Any], identity: Authenticated,
                       until_us: int) -> str | None:
        """`identity` kept under the verified e-mail of its ID token's `claims` until
        `until_us`; the e-mail (None: the token verified none, nothing is kept)."""
        email = verified_email(claims)
        if email is None:
            return None
        at = now()
        await self._store.execute("DELETE FROM verified_emails WHERE expires_us < ?", (at,))
        await self._store.execute(
            "INSERT INTO verified_emails (email, subject, identity, signed_in_us, expires_us) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (email, subject) DO UPDATE SET identity = "
            "excluded.identity, signed_in_us = excluded.signed_in_us, expires_us = "
            "excluded.expires_us",
            (email, identity["sub"], json.dumps(dict(identity)), at, until_us))
        return email

    async def forget(self, subject: str) -> None:
        """`subject` signed out: no Slack user is linked by its e-mail any more."""
        await self._store.execute("DELETE FROM verified_emails WHERE subject = ?", (subject,))

    async def signed_in_with(self, email: str) -> list[SignedIn]:
        """The identities signed in now with `email` (lower-cased)."""
        rows = await self._store.execute(
            "SELECT identity, expires_us FROM verified_emails WHERE email = ? AND "
            "expires_us > ?", (email, now()))
        return [SignedIn(json.loads(identity), int(until)) for identity, until in rows]


class EmailLinker:
    """Links a Slack user to the identity signed in with the e-mail Slack confirmed."""

    def __init__(self, api: SlackApi, links: SlackLinks, emails: SignedInEmails) -> None:
        self._api, self._links, self._emails = api, links, emails

    async def link(self, user: SlackUser) -> Link:
        """`user` linked by e-mail (NotLinked saying why they cannot be)."""
        email = await self._confirmed_email(user)
        found = await self._emails.signed_in_with(email)
        if not found:
            raise NotLinked(f"nobody is signed in on tollgate with {email} now: sign in "
                            "once on tollgate's pages to be linked by e-mail")
        if len({f.identity["sub"] for f in found}) > 1:
            raise NotLinked(f"{len(found)} identities are signed in on tollgate with "
                            f"{email}, so it names nobody")
        (signed_in,) = found
        return await self._links.bind(user, signed_in.identity, signed_in.until_us, EMAIL)

    async def _confirmed_email(self, user: SlackUser) -> str:
        """The e-mail Slack confirmed for `user`, lower-cased (NotLinked: none)."""
        try:
            # One try: Slack wants its click answered within 3 seconds.
            answer = await self._api.call("users.info", {"user": user.user_id}, form=True,
                                          attempts=1)
        except SlackError as exc:
            log.warning("slack: the e-mail of %s could not be read: %s", user, exc)
            hint = (" (the app needs the scopes users:read and users:read.email)"
                    if exc.error == "missing_scope" else "")
            raise NotLinked(f"Slack did not tell tollgate your e-mail: {exc.error}{hint}") \
                from None
        found = answer.get("user")
        if not isinstance(found, dict) or found.get("id") != user.user_id \
                or found.get("deleted") is True or found.get("is_bot") is True:
            raise NotLinked("Slack told tollgate of no such active person")
        profile = found.get("profile")
        email = profile.get("email") if isinstance(profile, dict) else None
        if not isinstance(email, str) or "@" not in email:
            raise NotLinked("Slack shows tollgate no e-mail of yours (the app needs the "
                            "scope users:read.email)")
        if found.get("is_email_confirmed") is not True:
            raise NotLinked(f"Slack has not confirmed your e-mail {email.strip()}")
        return email.strip().lower()
