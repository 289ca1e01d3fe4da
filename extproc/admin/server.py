"""The admin HTTP server itself: its listener, the headers every page is served with, and
the JSON error shape for whatever it cannot route or fails at.

The surfaces it serves (approvals/, monitor/, recordings/, home/, metrics.py's /metrics)
bring only their routes: what each of them needs of the server is here, once. With a
sign-in provider (signin.py), each page is told whether its request came with a session
(`data-session` on its root element) and how viewers sign in (`data-signin`), and a
request riding on the session cookie alone must pass the CSRF check first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import resources

import orjson
from aiohttp import web

from extproc.admin.caller import SIGN_IN, signed_in
from extproc.admin.signin import SignIn, csrf_refusal

log = logging.getLogger("tollgate.admin")

# Approvers send a reason, nothing more.
_MOST_BODY_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A page's own scripts and nothing else: what it shows is set as text, never markup.
_PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
_PAGE_HEADERS = {"Content-Security-Policy": _PAGE_POLICY, "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
# What every page's script builds on (the token, the API call, text made visible).
COMMON_SCRIPT = "/ui/common.js"


def page_routes(path: str, package: str, script: str | None = None,
                headers: dict[str, str] | None = None) -> list[web.RouteDef]:
    """`path` serving `package`'s page.html, `script` (default `path`.js) its page.js,
    read once; `headers`: the page's own, if not the pages' usual ones."""
    html, js = (resources.files(package).joinpath(name).read_text(encoding="utf-8")
                for name in ("page.html", "page.js"))
    headers = headers or _PAGE_HEADERS
    return [web.get(path, _page(html, headers)),
            web.get(script or f"{path}.js", _asset(js, "text/javascript", headers))]


def _page(html: str, headers: dict[str, str]) -> Handler:
    """The page, its root element saying how its viewer signs in and whether this request
    came signed in (admin_page.js reads both)."""
    head, _, rest = html.partition("<html")
    token, oidc, session = (f"{head}<html {attributes}{rest}" for attributes in (
        'data-signin="token"', 'data-signin="oidc"',
        'data-signin="oidc" data-session="cookie"'))

    async def serve(request: web.Request) -> web.Response:
        text = token if SIGN_IN not in request.app \
            else session if signed_in(request) else oidc
        return web.Response(text=text, content_type="text/html", headers=headers)

    return serve


def _asset(text: str, content_type: str, headers: dict[str, str] = _PAGE_HEADERS) -> Handler:
    async def serve(_request: web.Request) -> web.Response:
        return web.Response(text=text, content_type=content_type, headers=headers)

    return serve


class AdminError(Exception):
    """The admin server cannot start (its address is taken, say)."""


@web.middleware
async def _csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    why = csrf_refusal(request) if SIGN_IN in request.app else None
    if why is not None:
        log.warning("admin: %s %s refused: %s", request.method, request.path, why)
        return _error(403, "csrf", why)
    return await handler(request)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed",
                413: "payload_too_large"}.get(exc.status, "bad_request")
        return _error(exc.status, code, f"{request.method} {request.path}: {exc.reason}")
    except Exception:
        log.exception("admin: %s %s failed", request.method, request.path)
        return _error(500, "internal_error", "tollgate could not process this request")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        body=orjson.dumps({"error": code, "message": message}))


async def start(address: str, routes: list[web.RouteDef],
                sign_in: SignIn | None = None) -> web.AppRunner:
    """Serve `routes` on HOST:PORT until the runner is cleaned up; with `sign_in`, its
    routes and sessions too."""
    app = web.Application(middlewares=[_json_errors, _csrf], client_max_size=_MOST_BODY_BYTES)
    if sign_in is not None:
        app[SIGN_IN] = sign_in
        routes = [*routes, *sign_in.routes()]
    common = resources.files("extproc.admin").joinpath("admin_page.js").read_text(encoding="utf-8")
    app.add_routes([*routes, web.get(COMMON_SCRIPT, _asset(common, "text/javascript"))])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, _, port = address.rpartition(":")
    try:
        await web.TCPSite(runner, host, int(port), reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        raise AdminError(f"listen.admin {address}: cannot listen ({exc.strerror or exc})") \
            from None
    log.info("admin API on http://%s (approvals: /approvals/ui, monitor: /monitor/ui, "
             "recordings: /recordings/ui, metrics: /metrics)", address)
    return runner
