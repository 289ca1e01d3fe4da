"""Which signed-in identity each Slack user decides as.

A click in Slack names a Slack user, whom tollgate's identity provider does not know: a
Slack user decides nothing until they have linked themselves, signed in on tollgate's
page, to an identity of the provider. A click without a link is answered with a one-time
code (`code_for`) in a link to that page; signed in there, they spend it (`claim`) and
are bound (`bind`) to who they signed in as, with that identity's groups, until the
link's end (`approvals.slack.link_minutes`, never past their sign-in's). Codes are kept
as their SHA-256: the store never holds one that could be spent. A link can also be made
by e-mail (emails.py, approvals.slack.link_by_email); each says how it was made.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from extproc.approvals.model import now
from extproc.identity import Authenticated
from extproc.store.aio import AsyncStore

# A code is spent within this long of the click that asked for it.
CODE_SECONDS = 600
# How a link was made: the one-time link spent on the page, or the verified e-mail.
CODE, EMAIL = "code", "email"


class LinkError(Exception):
    """A code that cannot be spent (unknown, spent already, expired): the message says
    what to do."""


@dataclass(frozen=True)
class SlackUser:
    team_id: str
    user_id: str
    name: str = field(default="", compare=False)  # their Slack username, as Slack said

    def __str__(self) -> str:
        return f"{self.user_id} (team {self.team_id})"


@dataclass(frozen=True)
class Link:
    """A Slack user's link: the identity a click of theirs decides as, until when."""

    user: SlackUser
    identity: Authenticated
    expires_us: int
    linked_by: str = CODE


class SlackLinks:
    def __init__(self, store: AsyncStore, link_minutes: float) -> None:
        self._store, self._link_us = store, int(link_minutes * 60 * 1_000_000)

    async def code_for(self, user: SlackUser) -> str:
        """A new one-time code that links `user`, spent within CODE_SECONDS."""
        code = secrets.token_urlsafe(24)
        at = now()
        await self._store.execute("DELETE FROM slack_link_codes WHERE expires_us < ?", (at,))
        await self._store.execute(
            "INSERT INTO slack_link_codes (code_hash, team_id, slack_user, slack_name, "
            "expires_us) VALUES (?, ?, ?, ?, ?)",
            (_digest(code), user.team_id, user.user_id, user.name,
             at + CODE_SECONDS * 1_000_000))
        return code

    async def peek(self, code: str) -> SlackUser:
        """The Slack user `code` would link, the code kept (LinkError if it cannot be)."""
        return _user(await self._store.execute(
            "SELECT team_id, slack_user, slack_name FROM slack_link_codes "
            "WHERE code_hash = ? AND expires_us > ?", (_digest(code), now())))

    async def claim(self, code: str) -> SlackUser:
        """The Slack user `code` links, the code spent (LinkError if it cannot be)."""
        return _user(await self._store.execute(
            "DELETE FROM slack_link_codes WHERE code_hash = ? AND expires_us > ? "
            "RETURNING team_id, slack_user, slack_name", (_digest(code), now())))

    async def bind(self, user: SlackUser, identity: Authenticated,
                   signed_in_until_us: int | None, linked_by: str = CODE) -> Link:
        """`user` decides as `identity` from now until the link's end, at most until
        `signed_in_until_us` (the sign-in's end, when known); `linked_by` says how."""
        at = now()
        until = at + self._link_us
        if signed_in_until_us is not None:
            until = min(until, signed_in_until_us)
        saved: dict[str, Any] = dict(identity)
        await self._store.execute(
            "INSERT INTO slack_links (team_id, slack_user, subject, identity, linked_us, "
            "expires_us, linked_by) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (team_id, "
            "slack_user) DO UPDATE SET subject = excluded.subject, identity = "
            "excluded.identity, linked_us = excluded.linked_us, expires_us = "
            "excluded.expires_us, linked_by = excluded.linked_by",
            (user.team_id, user.user_id, identity["sub"], json.dumps(saved), at, until,
             linked_by))
        return Link(user, identity, until, linked_by)

    async def link_of(self, user: SlackUser) -> Link | None:
        """Who `user` decides as now (None: not linked, or the link ended)."""
        rows = await self._store.execute(
            "SELECT identity, expires_us, linked_by FROM slack_links WHERE team_id = ? AND "
            "slack_user = ? AND expires_us > ?", (user.team_id, user.user_id, now()))
        if not rows:
            return None
        identity: Authenticated = json.loads(rows[0][0])
        return Link(user, identity, int(rows[0][1]), str(rows[0][2]))


def _user(rows: list[tuple[Any, ...]]) -> SlackUser:
    if not rows:
        raise LinkError("this link is unknown, used already or older than "
                        f"{CODE_SECONDS // 60} minutes: click a button in Slack again for "
                        "a new one")
    team_id, user_id, name = rows[0]
    return SlackUser(str(team_id), str(user_id), str(name))


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
