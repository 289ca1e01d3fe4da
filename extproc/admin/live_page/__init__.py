"""The live sessions page on the admin port (GET /sessions/ui): the sessions open now on
every replica, and the identities locked, drawn by `page.js` from the live sessions API
(extproc/admin/live/api.py); a moderator also gets an End button on each session (a
reason asked, a lock optional) and Lock and Unlock for identities."""

from aiohttp import web

from extproc import admin


def routes() -> list[web.RouteDef]:
    return admin.page_routes("/sessions/ui", "extproc.admin.live_page")
