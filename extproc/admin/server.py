"""The admin HTTP server itself: its listener, the headers every page is served with, and
the JSON error shape for whatever it cannot route or fails at.

The surfaces it serves (approvals/, monitor/, recordings/, metrics.py's /metrics) bring
only their routes: what each of them needs of the server is here, once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import resources

import orjson
from aiohttp import web

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


def page_routes(path: str, package: str) -> list[web.RouteDef]:
    """`path` serving `package`'s page.html, `path`.js its page.js, read once."""
    html, js = (resources.files(package).joinpath(name).read_text(encoding="utf-8")
                for name in ("page.html", "page.js"))
    return [web.get(path, _asset(html, "text/html")),
            web.get(f"{path}.js", _asset(js, "text/javascript"))]


def _asset(text: str, content_type: str) -> Handler:
    async def serve(_request: web.Request) -> web.Response:
        return web.Response(text=text, content_type=content_type, headers=_PAGE_HEADERS)

    return serve


class AdminError(Exception):
    """The admin server cannot start (its address is taken, say)."""


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


async def start(address: str, routes: list[web.RouteDef]) -> web.AppRunner:
    """Serve `routes` on HOST:PORT until the runner is cleaned up."""
    app = web.Application(middlewares=[_json_errors], client_max_size=_MOST_BODY_BYTES)
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
