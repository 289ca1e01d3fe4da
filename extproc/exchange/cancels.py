"""A client's cancel and the gateway's own statements, kept apart.

A cancel (PostgreSQL's CancelRequest, MySQL's KILL QUERY) makes the database interrupt
whatever the session's backend runs at that instant. Through tollgate the backend also
runs the gateway's own statements: the estimate's and reach's questions and the
transaction or savepoint around them, the readings of a measured write, the release or
rollback of its savepoint, the COMMIT of a transaction the front opened. A cancel that
lands on one of those leaves the session other than the gateway pictures it: its own
ROLLBACK interrupted before it ran leaves the transaction failed (every later statement
fails with PostgreSQL's 25P02: asyncpg's COPY, which sends its cancel right behind its
CopyFail while the gateway is still asking the catalog about the table, met exactly that
under load), and a refused write whose rollback is interrupted would stay in the
client's transaction.

So the database's cancel goes only while nothing of the gateway's that a cancel could
break is outstanding, and only if something of the client's is; the gateway sends
nothing of its own while a cancel is on its way. A cancel that comes while the gateway
is still deciding the client's statement (asking the catalog) is the gateway's to carry
out, where the front says so (`deciding`): the statement is answered as cancelled and
never runs. One that comes while nothing of the client's is decided or run has nothing
to interrupt, as at an idle backend. The readings around a measured write may be
interrupted: the reading fails, and the write is refused and rolled back, which is what
the client asked for.

Both databases let the cancel's connection end only once the backend is told, and drop
a cancel that reaches a backend waiting for its next statement: once the cancel is done,
what the gateway sends next is safe from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

SENT = "cancel sent"


class CancelGate:
    """One session's cancels, and its own statements' turn."""

    def __init__(self) -> None:
        self._sending: asyncio.Future[None] | None = None
        # A client's message is being read and decided; a cancel came meanwhile.
        self._deciding = self._wanted = False

    def deciding(self, now: bool) -> None:
        """The session begins (True) or ends (False) deciding a client's message; a
        cancel its decision did not take goes with it."""
        self._deciding = now
        self._wanted = False

    def take(self) -> bool:
        """Whether a cancel came for the statement just decided (then it does not run)."""
        wanted, self._wanted = self._wanted, False
        return wanted

    @property
    def sending(self) -> bool:
        """A cancel is on its way to the database."""
        return self._sending is not None

    async def turn(self) -> None:
        """Before the gateway's own statements go upstream: never while a cancel is on its
        way. Nothing may be awaited between this and writing them."""
        while self._sending is not None:
            await asyncio.shield(self._sending)

    async def cancel(self, guarded: Callable[[], list[asyncio.Future[Any]]],
                     running: Callable[[], bool], send: Callable[[], Awaitable[None]],
                     within: float) -> str:
        """The database's cancel (`send`) once none of `guarded()` (the gateway's own
        statements outstanding) is, if `running()` (something of the client's is); what
        became of it, for the record."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                while True:
                    waiting = guarded()
                    if self._sending is not None:
                        waiting.append(self._sending)
                    if not waiting:
                        break
                    await asyncio.wait(waiting)
        except TimeoutError:
            return (f"cancel not sent: the gateway's own statements were still running "
                    f"after {within:g} s")
        if not running():
            if self._deciding:
                self._wanted = True
                return "cancel taken: the statement being decided does not run"
            return "cancel not sent: nothing of the client's was running"
        sending = self._sending = loop.create_future()
        try:
            await send()
        finally:
            self._sending = None
            sending.set_result(None)
        return SENT
