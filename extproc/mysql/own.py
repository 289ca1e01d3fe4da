"""The front's own statements on the session's server: never killed by a client's KILL.

The front runs statements of its own in the client's session: a write's measurement
(measured.py: counting rows, reading the catalog, its savepoint or transaction), the
idle bound of a transaction that locked rows (session.py). Each is marked
(`effect.MARK`) so the record and the server's log tell them apart. A KILL QUERY must
never land on one (exchange/cancels.py): while they run none is sent, and a KILL QUERY
on its way holds them back (`CancelGate.turn`); `done` ends with the last of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from extproc.mysql import effect
from extproc.mysql.flags import COM_QUERY
from extproc.mysql.framing import Packet, encode
from extproc.mysql.responses import Err, is_ok, parse_ok
from extproc.mysql.resultsets import text_rows

if TYPE_CHECKING:
    from extproc.mysql.state import SessionState
    from extproc.mysql.wire import Wire


class Own:
    """The session's own statements, and how many of them run now."""

    def __init__(self, state: SessionState, wire: Wire) -> None:
        self._state, self._wire = state, wire
        # A KILL QUERY never lands on the front's own statements (exchange/cancels.py,
        # the session's gate: state.cancels): how many of them are running, and a future
        # that ends with the last.
        self.owning = 0
        self.done: asyncio.Future[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The front's own statements run inside: never while a KILL QUERY is on its way,
        and none goes while they run."""
        if self.owning == 0:
            await self._state.cancels.turn()
            self.done = asyncio.get_running_loop().create_future()
        self.owning += 1
        try:
            yield
        finally:
            self.owning -= 1
            if self.owning == 0 and self.done is not None:
                self.done.set_result(None)
                self.done = None

    async def packet(self, text: str) -> Packet:
        """A statement of the front's own, its OK or ERR (the status kept)."""
        state = self._state
        async with self.running():
            self._wire.send_own(encode(0, bytes((COM_QUERY,))
                                       + (effect.MARK + text).encode()))
            answer = await self._wire.server_packet()
        if is_ok(answer.payload, state.capabilities):
            state.status = parse_ok(answer.payload, state.capabilities).status
        return answer

    async def query(self, text: str) -> tuple[list[list[bytes | None]], Err | None]:
        """A query of the front's own (its text starts with effect.MARK): its rows in
        text, or the server's error."""
        async with self.running():
            first = await self.packet(text)
            rows, failed, end = await text_rows(first, self._wire.server_packet,
                                                self._state.capabilities)
        if failed is None and end is not first:
            self._state.more_results(end)
        return rows, failed
