"""The catalog a write's measurement reads, on a connection of the gateway's own.

A MariaDB or MySQL role sees in information_schema only the tables it holds a privilege
on: an agent's role given DELETE on `p` sees no foreign key of an owner's table `c` that
cascades from `p`, and a trigger's body only with the TRIGGER privilege. What the
measurement does not see it does not count (effect.py), so the front asks the catalog
as the target's `catalog_role` (REFERENCES, TRIGGER, SHOW VIEW: it sees every key,
trigger and view, and reads no row), on one connection per target and worker that runs
nothing but these questions. The sessions' roles never hold it, and the client cannot
take it (SET ROLE is the gateway's alone). The rows a write reaches are still counted
in the session's own transaction, where its effect is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from extproc.mysql.flags import COM_QUERY
from extproc.mysql.framing import ProtocolViolation, encode
from extproc.mysql.responses import Err
from extproc.mysql.resultsets import text_rows
from extproc.mysql.upstream import Upstream, UpstreamError, set_up

Rows = list[list[bytes | None]]


class CatalogUnavailable(Exception):
    """The catalog's connection could not be opened or did not answer."""


class Catalog:
    """One target's catalog connection: opened at the first question, as the role, and
    opened again once after it broke; one question at a time."""

    def __init__(self, connect: Callable[[], Awaitable[Upstream]], role: str,
                 timeout: float) -> None:
        self._connect, self._role, self._timeout = connect, role, timeout
        self._upstream: Upstream | None = None
        self._lock = asyncio.Lock()

    async def rows(self, text: str) -> tuple[Rows, Err | None]:
        """The rows `text` reads, or the server's error; CatalogUnavailable when the
        connection fails twice."""
        async with self._lock:
            for attempt in (1, 2):
                try:
                    async with asyncio.timeout(self._timeout):
                        upstream = self._upstream or await self._open()
                        upstream.writer.write(encode(0, bytes((COM_QUERY,)) + text.encode()))
                        first = await upstream.read()
                        rows, failed, _ = await text_rows(first, upstream.read,
                                                          upstream.capabilities)
                    return rows, failed
                except (UpstreamError, ProtocolViolation, OSError, TimeoutError,
                        asyncio.IncompleteReadError) as exc:
                    await self.close()
                    if attempt == 2:
                        raise CatalogUnavailable(
                            f"the catalog could not be read as role {self._role}: "
                            f"{getattr(exc, 'message', None) or exc or type(exc).__name__}"
                        ) from None
        raise AssertionError("unreachable")

    async def _open(self) -> Upstream:
        upstream = await self._connect()
        try:
            role = "`" + self._role.replace("`", "``") + "`"
            await set_up(upstream, (bytes((COM_QUERY,)) + f"SET ROLE {role}".encode(),),
                         None)
        except BaseException:
            await upstream.close()
            raise
        self._upstream = upstream
        return upstream

    async def close(self) -> None:
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            with contextlib.suppress(Exception):
                await upstream.close()
