"""Reads raced in tasks of their own: a stream's end is a value, and a read let go leaves
nothing to log.

A front reads the next item of a stream in a task of its own when it races the read
against something else: an exchange's next answer against its session's end
(live_requests.py), an answer's next piece against a refusal aside (mcp_answer.py), Envoy's
next SDS request against a leaf's renewal (egress/sds.py). asyncio logs a task whose
exception nobody took, at ERROR with a traceback, when the task is collected ("Task
exception was never retrieved"). Such a read did so in two ways, once for each exchange
Envoy cut: the stream's end raised as StopAsyncIteration, and a read whose reader stopped
waiting (the stream was cut, the session ended) ending with an error nobody was left to
take. So `read_next` gives the end as `ENDED`, never as an exception; `let_go` stops a read
no longer wanted and takes whatever it ends with, now or later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final, TypeVar

_T = TypeVar("_T")


class Ended:
    """A stream's end, as a value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ENDED"


ENDED: Final = Ended()


async def _next(stream: AsyncIterator[_T]) -> _T | Ended:
    return await anext(stream, ENDED)


def read_next(stream: AsyncIterator[_T]) -> asyncio.Task[_T | Ended]:
    """The next item of `stream`, read in a task of its own; `ENDED` once it has none."""
    return asyncio.ensure_future(_next(stream))


def let_go(read: asyncio.Future[Any]) -> None:
    """A read no longer wanted: cancelled if it still runs, and what it ends with taken
    (an error, or a value its cancellation came too late for): its reader is gone, and
    nobody is left to act on it."""
    read.add_done_callback(_taken)
    read.cancel()


async def stopped(read: asyncio.Future[Any]) -> None:
    """`read` let go, once it has stopped: a generator it reads can then be closed (one
    cannot be while it runs). A cancellation of the caller meanwhile is its own, and
    goes on."""
    let_go(read)
    if not read.done():
        await asyncio.wait({read})


def _taken(read: asyncio.Future[Any]) -> None:
    if not read.cancelled():
        read.exception()
