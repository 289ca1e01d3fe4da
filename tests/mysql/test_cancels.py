"""A MySQL session (sans-IO, tests/support/wire_session.py) whose server is kept busy
answering a statement of the front's own when a KILL QUERY for it comes: the KILL waits
for it, never landing on it (extproc/exchange/cancels.py)."""

from __future__ import annotations

import asyncio

from extproc.config import Target
from tests.exchange.test_cancels import pending
from tests.support.wire_session import mysql_session


async def test_a_kill_query_waits_out_the_fronts_own_statement() -> None:
    async with mysql_session({}) as wired:
        session, database = wired.session, wired.database
        owning: list[int] = []

        async def kill_thread(_target: Target, _thread: int, query: bool) -> None:
            assert query
            owning.append(session.own.owning)

        session.state.connections.kill_thread = kill_thread
        database.hold()
        own = asyncio.ensure_future(session.own.packet("SELECT 1"))
        await database.sent(lambda received: len(received) == 1)
        session.state.running = True  # as while a client's command is on the server
        kill = asyncio.ensure_future(session.killed(True, session.subject))
        assert await pending(kill) and owning == []
        database.release()
        await own
        assert (await kill).endswith("its statement killed on the server")
        assert owning == [0]
        session.state.running = False


async def test_a_kill_query_with_nothing_of_the_clients_running_is_not_sent() -> None:
    async with mysql_session({}) as wired:
        session = wired.session

        async def kill_thread(_target: Target, _thread: int, _query: bool) -> None:
            raise AssertionError("nothing runs: no KILL reaches the server")

        session.state.connections.kill_thread = kill_thread
        assert (await session.killed(True, session.subject)).endswith(
            "KILL QUERY not sent: nothing of the client's was running")
