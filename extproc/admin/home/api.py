"""`/ui/me`: the caller as every admin API sees it (caller.py) and what it may do, by the
rules those APIs apply: the monitor's viewers (`monitor.viewers`), the record's readers
(recordings/readers.py), the live sessions' viewers and moderators (`sessions.viewers`,
the monitor's unless named; `sessions.moderators`). Which approvals the caller may decide
is each approval's own (`may_decide` in the approvals API, which the landing page asks),
so it is not here.

    GET /          the landing page
    GET /ui/me     {sub, name, email, groups, via: session|token, sign_in: oidc|token,
                    monitor: {may, viewers|null}, recordings: {may, targets|null, why},
                    sessions: {may, moderator, viewers, moderators}}
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import orjson
from aiohttp import web

from extproc import admin
from extproc.admin.caller import SIGN_IN, caller_of
from extproc.admin.recordings.readers import NotAReader, Readers
from extproc.approvals.auth import AuthError, Verifier
from extproc.identity import Authenticated, principals

log = logging.getLogger("tollgate.admin")


class HomeApi:
    def __init__(self, verifier: Verifier, viewers: Collection[str] | None,
                 readers: Readers, sessions_viewers: Collection[str],
                 sessions_moderators: Collection[str]) -> None:
        """`viewers`: the monitor's (None: everyone signed in), as MonitorApi takes them;
        the live sessions' as SessionsApi takes them."""
        self._verifier, self._readers = verifier, readers
        self._viewers = None if viewers is None else frozenset(viewers)
        self._sessions_viewers = frozenset(sessions_viewers)
        self._sessions_moderators = frozenset(sessions_moderators)

    def routes(self) -> list[web.RouteDef]:
        return [*admin.page_routes("/", "extproc.admin.home", script="/ui/home.js"),
                web.get("/ui/me", self._me)]

    async def _me(self, request: web.Request) -> web.Response:
        try:
            caller = await caller_of(self._verifier, request)
        except AuthError as exc:
            return _json(401, {"error": "unauthenticated", "message": str(exc)})
        via = "token" if request.headers.get("Authorization") else "session"
        return _json(200, {
            "sub": caller["sub"], "email": caller["email"], "groups": caller["groups"],
            "via": via, "sign_in": "oidc" if SIGN_IN in request.app else "token",
            "monitor": {"may": self._viewers is None or bool(principals(caller)
                                                             & self._viewers),
                        "viewers": None if self._viewers is None else sorted(self._viewers)},
            "recordings": self._recordings(caller), "sessions": self._sessions(caller)})

    def _sessions(self, caller: Authenticated) -> dict[str, Any]:
        """Whether the caller may see the live sessions (and watch them), and end them."""
        mine = principals(caller)
        moderator = bool(mine & self._sessions_moderators)
        return {"may": moderator or bool(mine & self._sessions_viewers),
                "moderator": moderator, "viewers": sorted(self._sessions_viewers),
                "moderators": sorted(self._sessions_moderators)}

    def _recordings(self, caller: Authenticated) -> dict[str, Any]:
        try:
            scope = self._readers.scope(caller)
        except NotAReader as exc:
            return {"may": False, "targets": [], "why": str(exc)}
        targets = None if scope.targets is None else sorted(scope.targets)
        return {"may": True, "targets": targets, "why": None}


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        body=orjson.dumps(body), headers={"Cache-Control": "no-store"})
