"""A PostgreSQL session (sans-IO, tests/support/wire_session.py) whose database is kept
busy answering the gateway's question when the client's cancel comes: the cancel never
lands on it (extproc/exchange/cancels.py)."""

from __future__ import annotations

import asyncio

from extproc.exchange.cancels import SENT
from extproc.postgres import messages as pg
from tests.exchange.test_cancels import pending
from tests.support.wire_session import INT4, Result, pg_answers, postgres_session

RESULTS = {"SELECT 1": Result((("?column?", INT4),), ((b"1",),))}


async def test_a_cancel_in_a_session_waits_out_the_gateways_question() -> None:
    """`SELECT f(1)` calls a function the catalog is asked about (reach.py) before the
    statement goes; the cancel that comes meanwhile is sent once no question of the
    gateway's is outstanding, or taken by the decision: either way what the client is
    told matches what the database ran."""
    async with postgres_session(RESULTS) as wired:
        database, session = wired.database, wired.session
        database.hold()
        wired.client.send(pg.encode_query("SELECT f(1)"))
        await database.sent(lambda received: any(
            m.kind == b"Q" and "tollgate: estimate" in pg.query(m.body) for m in received))
        outstanding: list[int] = []

        async def send() -> None:
            outstanding.append(sum(
                p.probe is not None and not p.probe.cancellable for p in session.state.pending))

        task = asyncio.ensure_future(session.cancel(send))
        assert await pending(task) and outstanding == []
        database.release()
        outcome = await task
        answers = await pg_answers(wired.client)
        ran = "SELECT f(1)" in database.texts
        if outcome == SENT:
            assert outstanding == [0] and ran
        else:
            assert outcome.startswith("cancel taken") and not ran
            error = pg.fields(next(m for m in answers if m.kind == b"E").body)
            assert error["C"] == "57014"
        wired.client.send(pg.encode_query("SELECT 1"))
        assert [pg.data_row(m.body) for m in await pg_answers(wired.client)
                if m.kind == b"D"] == [[b"1"]]
