"""A client's cancel never lands on the gateway's own statements (extproc/postgres/
cancels.py): the gate alone, then a session (sans-IO, tests/support/wire_session.py)
whose database is kept busy answering the gateway's question when the cancel comes.
asyncpg's COPY through a real gateway and PostgreSQL is in tests/drivers/."""

from __future__ import annotations

import asyncio
from typing import Any

from extproc.postgres import messages as pg
from extproc.postgres.cancels import SENT, CancelGate
from tests.support.wire_session import INT4, Result, pg_answers, postgres_session

RESULTS = {"SELECT 1": Result((("?column?", INT4),), ((b"1",),))}
# Long enough for a task that could go on to have gone on; what it asserts is that it
# did not (a wait that ends early would fail such a test, never pass it).
SETTLE = 0.05


async def _pending(task: asyncio.Future[Any]) -> bool:
    done, _ = await asyncio.wait({task}, timeout=SETTLE)
    return not done


async def test_the_cancel_waits_for_the_gateways_own_statement() -> None:
    gate = CancelGate()
    question: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    sent: list[bool] = []

    async def send() -> None:
        sent.append(question.done())

    task = asyncio.ensure_future(gate.cancel(
        lambda: [] if question.done() else [question], lambda: True, send, 5))
    assert await _pending(task) and sent == []
    question.set_result(None)
    assert await task == SENT
    assert sent == [True]


async def test_the_gateway_sends_nothing_of_its_own_while_a_cancel_is_on_its_way() -> None:
    gate = CancelGate()
    started, answered = asyncio.Event(), asyncio.Event()

    async def send() -> None:
        started.set()
        await answered.wait()

    cancel = asyncio.ensure_future(gate.cancel(lambda: [], lambda: True, send, 5))
    await started.wait()
    turn = asyncio.ensure_future(gate.turn())
    assert gate.sending and await _pending(turn)
    answered.set()
    await turn
    assert await cancel == SENT and not gate.sending


async def test_a_cancel_with_nothing_of_the_clients_running_is_not_sent() -> None:
    gate, sent = CancelGate(), []

    async def send() -> None:
        sent.append(True)

    outcome = await gate.cancel(lambda: [], lambda: False, send, 5)
    assert outcome == "cancel not sent: nothing of the client's was running"
    assert sent == [] and not gate.take()


async def test_a_cancel_during_a_decision_is_the_decisions_once() -> None:
    gate = CancelGate()

    async def send() -> None:
        raise AssertionError("a statement not sent yet has nothing to cancel upstream")

    gate.deciding(True)
    assert (await gate.cancel(lambda: [], lambda: False, send, 5)).startswith("cancel taken")
    assert gate.take() and not gate.take()
    # One its decision did not take goes with the message.
    await gate.cancel(lambda: [], lambda: False, send, 5)
    gate.deciding(False)
    assert not gate.take()


async def test_a_cancel_that_would_wait_too_long_is_not_sent() -> None:
    gate, sent = CancelGate(), []
    question: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def send() -> None:
        sent.append(True)

    outcome = await gate.cancel(lambda: [question], lambda: True, send, SETTLE)
    assert outcome.startswith("cancel not sent: the gateway's own statements were still")
    assert sent == []


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
                p.probe is not None and not p.probe.cancellable for p in session._pending))

        task = asyncio.ensure_future(session.cancel(send))
        assert await _pending(task) and outstanding == []
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
