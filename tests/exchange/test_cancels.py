"""A client's cancel never lands on the gateway's own statements (extproc/exchange/
cancels.py), the gate alone; the fronts' sessions in tests/postgres/test_cancels.py and
tests/mysql/test_cancels.py, asyncpg's COPY through a real gateway in tests/drivers/."""

from __future__ import annotations

import asyncio
from typing import Any

from extproc.exchange.cancels import SENT, CancelGate

# Long enough for a task that could go on to have gone on; what it asserts is that it
# did not (a wait that ends early would fail such a test, never pass it).
SETTLE = 0.05


async def pending(task: asyncio.Future[Any]) -> bool:
    """The task is still waiting once it has had SETTLE to end."""
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
    assert await pending(task) and sent == []
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
    assert gate.sending and await pending(turn)
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
