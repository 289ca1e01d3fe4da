"""The admin API's routes on a real admin server (extproc.admin, aiohttp) on a free port,
and a client of it, for the API tests of the approvals, monitor and recordings pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from extproc import admin
from extproc.quickstart.stack import free_port


class AdminClient:
    """Calls to a running admin server, with `token` as the bearer token unless a call
    names another (None: no token)."""

    def __init__(self, url: str, session: aiohttp.ClientSession, token: str | None) -> None:
        self.url, self._session, self._token = url, session, token

    async def fetch(self, path: str, token: str | None = "",
                    ) -> tuple[int, bytes, CIMultiDictProxy[str]]:
        """The answer as sent: status, body, headers."""
        token = self._token if token == "" else token
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        async with self._session.get(self.url + path, headers=headers) as reply:
            return reply.status, await reply.read(), reply.headers

    async def get(self, path: str, token: str | None = "") -> tuple[int, Any]:
        """Status and JSON body."""
        status, body, _ = await self.fetch(path, token)
        return status, orjson.loads(body)

    async def read(self, path: str, token: str | None = "") -> tuple[int, Any, Any]:
        """Status, body (JSON when it says so, else text) and headers."""
        status, body, headers = await self.fetch(path, token)
        json = headers.get("Content-Type", "").startswith("application/json")
        return status, orjson.loads(body) if json else body.decode(), headers


@asynccontextmanager
async def admin_serving(routes: list[web.RouteDef], token: str | None = None,
                        ) -> AsyncIterator[AdminClient]:
    """`routes` served until the block ends; a client calling them with `token`."""
    address = f"127.0.0.1:{free_port()}"
    runner = await admin.start(address, routes)
    try:
        async with aiohttp.ClientSession() as session:
            yield AdminClient(f"http://{address}", session, token)
    finally:
        await runner.cleanup()
