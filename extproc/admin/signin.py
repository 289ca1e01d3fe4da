"""Signing in to the admin pages with the OpenID provider (`admin.oidc`), and the session
that follows: /auth/login sends the browser to the provider, /auth/callback turns its
answer into a session cookie, /auth/logout ends it, /auth/oidc tells the CLI where to sign
in (`tollgate login`).

A session is only as good as the requests it is sent with: a state-changing request that
rides on the cookie alone must come from the admin pages themselves (`csrf`: its Origin,
when sent, is this server's, and it carries the header only the pages' script sets), so
another site cannot decide an approval in a signed-in approver's name. SameSite=Lax keeps
the cookie off other sites' requests as well, and on the links to a page that the webhook
and chat messages give.

With `emails` (approvals.slack.link_by_email), a sign-in whose ID token carries an
e-mail the provider verified is remembered under that e-mail until the session's end, and
forgotten at sign-out: a Slack user Slack confirmed that e-mail for is then linked to it
(approvals/slack/emails.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from extproc.admin.oidc import Attempt, OidcError, Provider
from extproc.admin.sessions import (
    SESSION_COOKIE,
    Sealer,
    SessionKeyError,
    SessionRefused,
    read_keys,
)
from extproc.approvals.model import now
from extproc.config import Config, Identity, Oidc
from extproc.identity import Authenticated, identity_of
from extproc.store import StoreError

if TYPE_CHECKING:
    from extproc.approvals.slack.emails import SignedInEmails

log = logging.getLogger("tollgate.admin")

# The header the pages' script sends with every call (admin_page.js): a form or an image
# on another site cannot set it, and a script there cannot without this server's leave.
CSRF_HEADER = "X-Requested-By"
CSRF_VALUE = "tollgate"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The sign-in's state cookie lives this long: the time to sign in at the provider.
_ATTEMPT_SECONDS = 600
_ATTEMPT_PURPOSE, _SESSION_PURPOSE = "signin", "session"


def open_sign_in(config: Config, emails: SignedInEmails | None = None) -> SignIn | None:
    """The sign-in `admin.oidc` configures (None: none; SessionKeyError when its key or
    secret file cannot be read), remembering verified e-mails in `emails` if given."""
    settings = config.admin.oidc
    if settings is None:
        return None
    secret = None
    if settings.client_secret_file is not None:
        path = config.resolve(settings.client_secret_file)
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SessionKeyError(f"admin.oidc.client_secret_file {path}: cannot read it "
                                  f"({exc})") from None
        if not secret:
            raise SessionKeyError(f"admin.oidc.client_secret_file {path}: it is empty")
    keys = read_keys(config.resolve(settings.session_key_file))
    return SignIn(settings, Provider(settings, secret), Sealer(keys), config.identity,
                  config.approvals_url, emails)


class SignIn:
    """The provider, the session keys and the identity settings of one admin server."""

    def __init__(self, settings: Oidc, provider: Provider, sealer: Sealer,
                 identity: Identity, public_url: str,
                 emails: SignedInEmails | None = None) -> None:
        self.settings, self.provider, self._sealer = settings, provider, sealer
        self._identity, self._public_url = identity, public_url.rstrip("/")
        self._emails = emails
        self._secure = self._public_url.startswith("https://")

    @property
    def redirect_uri(self) -> str:
        return f"{self._public_url}/auth/callback"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/auth/login", self._login), web.get("/auth/callback", self._callback),
                web.post("/auth/logout", self._logout), web.get("/auth/oidc", self._about)]

    # -- who a request is --------------------------------------------------------------

    def session_of(self, request: web.Request) -> Authenticated | None:
        """The identity of the request's session cookie; None without a valid one."""
        sealed = request.cookies.get(SESSION_COOKIE)
        if not sealed:
            return None
        try:
            claims = self._sealer.open(_SESSION_PURPOSE, sealed)
        except SessionRefused as exc:
            log.info("admin: %s %s: session refused: %s", request.method, request.path, exc)
            return None
        identity = identity_of(claims, self._identity)
        return identity if identity["authenticated"] else None

    async def bearer(self, token: str) -> Authenticated:
        """The identity of an ID token of the provider given as a bearer token (what
        `tollgate login` keeps); OidcError when it is none."""
        audiences = [self.settings.client_id, *filter(None, [self.settings.cli_client_id])]
        identity = identity_of(await self.provider.verify(token, audiences), self._identity)
        if not identity["authenticated"]:
            raise OidcError("the ID token names no subject")
        return identity

    # -- the browser's sign-in ---------------------------------------------------------

    async def _login(self, request: web.Request) -> web.StreamResponse:
        attempt = Attempt.new(local_path(request.query.get("next", "/")))
        try:
            url = await self.provider.authorize_url(attempt, self.redirect_uri,
                                                    self.settings.client_id)
        except OidcError as exc:
            return _refused(503, f"Signing in is not possible now: {exc}.")
        answer = web.HTTPFound(url)
        answer.set_cookie(_attempt_cookie(attempt.state), self._sealer.seal(
            _ATTEMPT_PURPOSE, {"state": attempt.state, "nonce": attempt.nonce,
                               "verifier": attempt.verifier, "next": attempt.next},
            _ATTEMPT_SECONDS), max_age=_ATTEMPT_SECONDS, path="/auth/callback",
            httponly=True, samesite="Lax", secure=self._secure)
        return answer

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        if "error" in query:
            return _refused(403, f"The provider refused the sign-in: "
                            f"{query.get('error_description') or query['error']}.")
        state, code = query.get("state", ""), query.get("code", "")
        cookie = request.cookies.get(_attempt_cookie(state)) if state else None
        if not code or cookie is None:
            return _refused(400, "This sign-in was not started here, or took longer than "
                            f"{_ATTEMPT_SECONDS // 60} minutes.")
        try:
            saved = self._sealer.open(_ATTEMPT_PURPOSE, cookie)
            if saved.get("state") != state:
                raise SessionRefused("the sign-in's state does not match")
            attempt = Attempt(state, str(saved["nonce"]), str(saved["verifier"]),
                              local_path(str(saved["next"])))
            claims = await self.provider.redeem(code, attempt, self.redirect_uri)
            identity = identity_of(claims, self._identity)
            if not identity["authenticated"]:
                raise OidcError("the provider's ID token names no subject")
            sealed = self._sealer.seal(_SESSION_PURPOSE, self._kept(claims),
                                       self.settings.session_minutes * 60)
        except (SessionRefused, OidcError, KeyError) as exc:
            log.warning("admin: sign-in refused: %s", exc)
            return _refused(403, f"Signing in failed: {exc}.")
        log.info("admin: %s signed in (groups %s)", identity["sub"], identity["groups"])
        await self._remember(claims, identity)
        answer = web.HTTPSeeOther(attempt.next)
        answer.del_cookie(_attempt_cookie(state), path="/auth/callback")
        answer.set_cookie(SESSION_COOKIE, sealed, path="/", httponly=True, samesite="Lax",
                          secure=self._secure, max_age=int(self.settings.session_minutes * 60))
        return answer

    async def _remember(self, claims: dict[str, Any], identity: Authenticated) -> None:
        """Its verified e-mail kept until the session's end (with `emails`); a store that
        cannot answer costs the link by e-mail, never the sign-in."""
        if self._emails is None:
            return
        until = now() + int(self.settings.session_minutes * 60 * 1_000_000)
        try:
            email = await self._emails.remember(claims, identity, until)
        except StoreError as exc:
            log.error("admin: the verified e-mail of %s not kept: %s", identity["sub"], exc)
            return
        if email is None:
            log.info("admin: %s signed in without a verified e-mail: no Slack user is "
                     "linked by e-mail to it", identity["sub"])

    def _kept(self, claims: dict[str, Any]) -> dict[str, Any]:
        """What of the ID token makes the identity (and a name to show)."""
        names = {"sub", "iss", "aud", "jti", "name", self._identity.groups_claim,
                 self._identity.email_claim}
        return {name: value for name, value in claims.items() if name in names}

    async def _logout(self, request: web.Request) -> web.Response:
        answer = web.json_response({"signed_out": True})
        answer.del_cookie(SESSION_COOKIE, path="/")
        who = self.session_of(request)
        if who is not None:
            log.info("admin: %s signed out", who["sub"])
            if self._emails is not None:
                try:
                    await self._emails.forget(who["sub"])
                except StoreError as exc:
                    log.error("admin: the verified e-mail of %s not forgotten: %s",
                              who["sub"], exc)
        return answer

    async def _about(self, _request: web.Request) -> web.Response:
        """Where the CLI signs in: public facts, the same the provider publishes."""
        return web.json_response({
            "issuer": self.settings.issuer,
            "client_id": self.settings.cli_client_id or self.settings.client_id,
            "scopes": list(self.settings.scopes)})


def csrf_refusal(request: web.Request) -> str | None:
    """Why a request riding on the session cookie alone may not change anything (None:
    it may, or it does not ride on the cookie)."""
    if request.method in _SAFE_METHODS or SESSION_COOKIE not in request.cookies \
            or request.headers.get("Authorization"):
        return None
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        return (f"a request from {origin} may not act with this site's session: only the "
                "admin pages may")
    if request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        return (f"a request acting with the session cookie needs the header {CSRF_HEADER}: "
                f"{CSRF_VALUE}, which the admin pages send (scripts send a bearer token)")
    return None


def _attempt_cookie(state: str) -> str:
    """One cookie per sign-in under way, so two tabs signing in at once both arrive."""
    return f"tollgate_signin_{''.join(c for c in state if c.isalnum())[:16]}"


def local_path(path: str) -> str:
    """`path` when it is this server's own (a path, no scheme or host), else /: a sign-in
    never leads off the site."""
    # Browsers drop tabs and newlines from an address and read \ as /: "/\t/evil.test"
    # would be "//evil.test", another site.
    if any(c < " " or c in "\\\x7f" for c in path):
        return "/"
    parts = urlsplit(path)
    if not path.startswith("/") or path.startswith("//") or parts.scheme or parts.netloc:
        return "/"
    return path


def _refused(status: int, message: str) -> web.Response:
    """A sign-in that cannot go on, said to the person in the browser."""
    return web.Response(status=status, text=f"{message}\n\nStart again: /auth/login\n",
                        content_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})
