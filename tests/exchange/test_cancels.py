"""A client's cancel never lands on the gateway's own statements (extproc/exchange/
cancels.py), the gate alone; the fronts' sessions in tests/postgres/test_cancels.py and
tests/mysql/test_cancels.py, asyncpg's COPY through a real gateway in tests/drivers/."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from extproc.exchange.cancels import NOTHING, SENT, TAKEN, CancelGate, unread
from tests.support.wire_session import MemoryWriter

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


async def test_a_cancel_waits_for_what_had_arrived_and_meets_it_upstream() -> None:
    """The client's statement had arrived (10 bytes) but was not yet passed on: the
    cancel waits for it, then goes to the database, where the statement now runs."""
    gate, sent, upstream = CancelGate(), [], []

    async def send() -> None:
        sent.append(list(upstream))

    task = asyncio.ensure_future(gate.cancel(lambda: [], lambda: bool(upstream), send, 5,
                                             lambda: 10))
    assert await pending(task) and sent == []
    gate.deciding(True)
    gate.deciding(False)
    gate.passed(4)  # a Bind: nothing runs yet
    assert await pending(task)  # 6 bytes of it still to come
    upstream.append("Execute")
    gate.passed(6)
    assert await task == SENT and sent == [["Execute"]]


async def test_a_statement_that_had_arrived_takes_the_cancel_as_it_is_decided() -> None:
    """Decided without a pause (the cancel has no turn meanwhile), it takes the cancel
    all the same: it does not run, and the cancel says so."""
    gate = CancelGate()

    async def send() -> None:
        raise AssertionError("a statement that does not run has nothing to cancel upstream")

    task = asyncio.ensure_future(gate.cancel(lambda: [], lambda: False, send, 5, lambda: 8))
    assert await pending(task)
    gate.passed(3)  # a message before it, which took nothing
    gate.deciding(True)
    assert gate.take()
    gate.deciding(False)
    gate.passed(5)
    assert await task == TAKEN


async def test_what_arrives_after_a_cancel_is_not_its() -> None:
    """Once what had arrived is passed on and nothing of it runs, the cancel is dropped:
    the next statement, which came after it, is not cancelled."""
    gate = CancelGate()

    async def send() -> None:
        raise AssertionError("nothing runs")

    task = asyncio.ensure_future(gate.cancel(lambda: [], lambda: False, send, 5, lambda: 5))
    assert await pending(task)
    gate.passed(5)  # a Flush: nothing runs of it
    assert await task == NOTHING
    gate.deciding(True)
    assert not gate.take()


async def test_a_cancel_waiting_on_a_session_that_ends_is_not_sent() -> None:
    gate = CancelGate()

    async def send() -> None:
        raise AssertionError("the session is gone")

    task = asyncio.ensure_future(gate.cancel(lambda: [], lambda: False, send, 5, lambda: 5))
    assert await pending(task)
    gate.ended()
    assert await task == "cancel not sent: the session ended"


async def test_a_cancel_whose_bytes_stay_unread_too_long_is_not_sent() -> None:
    gate = CancelGate()

    async def send() -> None:
        raise AssertionError("nothing of the client's runs")

    outcome = await gate.cancel(lambda: [], lambda: False, send, SETTLE, lambda: 5)
    assert outcome == ("cancel not sent: what the client sent before it was still unread "
                       f"after {SETTLE:g} s")


async def test_unread_counts_what_the_stream_holds() -> None:
    """The stream's buffer, which asyncio keeps without a public count (a connection with
    no socket, as in memory, has nothing more waiting)."""
    reader = asyncio.StreamReader()
    reader.feed_data(b"Q\x00\x00\x00\x0dSELECT 1\x00")
    assert unread(reader, cast(asyncio.StreamWriter, MemoryWriter(asyncio.StreamReader()))) == 14
