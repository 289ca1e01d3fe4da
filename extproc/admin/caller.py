"""Who calls the admin API: the one question every surface (approvals, monitor,
recordings, the landing page) asks of a request, so that every way of signing in is
honoured by every page and API alike.

A caller is the bearer token in its Authorization header, verified as Envoy verifies
agents' ones (approvals/auth.py) or, with `admin.oidc`, an ID token of the sign-in
provider (`tollgate login`'s); without a header, the session cookie of a sign-in at the
provider (signin.py). Each becomes an identity through identity_of alike, so every rule
about approvers, readers and viewers reads them the same.
"""

from __future__ import annotations

import logging

from aiohttp import web

from extproc.admin.oidc import OidcError
from extproc.admin.signin import SignIn
from extproc.approvals.auth import AuthError, Verifier
from extproc.identity import Authenticated

log = logging.getLogger("tollgate.admin")
SIGN_IN = web.AppKey("sign_in", SignIn)


async def caller_of(verifier: Verifier, request: web.Request) -> Authenticated:
    """The signed-in caller of `request` (AuthError, saying why, when there is none)."""
    sign_in = request.app.get(SIGN_IN)
    authorization = request.headers.get("Authorization")
    if sign_in is None:
        return await verifier.identity(authorization)
    if authorization is None:
        session = sign_in.session_of(request)
        if session is not None:
            return session
        raise AuthError("sign in (open the page to sign in with your identity provider), "
                        "or send your token: Authorization: Bearer <token>")
    try:
        return await verifier.identity(authorization)
    except AuthError as refused:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise
        try:
            return await sign_in.bearer(token.strip())
        except OidcError as exc:
            log.info("admin: %s %s: nor is the token the sign-in provider's: %s",
                     request.method, request.path, exc)
            raise refused from None


def signed_in(request: web.Request) -> bool:
    """Whether the request comes with a valid session cookie (pages say so to their
    script)."""
    sign_in = request.app.get(SIGN_IN)
    return sign_in is not None and sign_in.session_of(request) is not None
