"""Who calls the admin API: the one question every surface (approvals, monitor,
recordings, and whatever page comes next) asks of a request, so that every way of
signing in is honoured by every page and API alike.

Today a caller is the bearer token in its Authorization header, verified as Envoy
verifies agents' ones (approvals/auth.py).
"""

from __future__ import annotations

from aiohttp import web

from extproc.approvals.auth import Verifier
from extproc.identity import Authenticated


async def caller_of(verifier: Verifier, request: web.Request) -> Authenticated:
    """The signed-in caller of `request` (AuthError, saying why, when there is none)."""
    return await verifier.identity(request.headers.get("Authorization"))
