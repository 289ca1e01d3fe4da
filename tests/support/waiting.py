"""Waiting in async tests for what the code under test does in its own tasks: a condition
polled with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def until(condition: Callable[[], Any], what: str = "the condition",
                seconds: float = 10.0, pause: float = 0.01) -> Any:
    """`condition()`'s first truthy value (awaited, when it is a coroutine's), polled
    every `pause` seconds (the loop's other tasks run meanwhile); the test fails naming
    `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (found := await _value(condition())):
        assert time.monotonic() < deadline, f"{what} never held within {seconds} s"
        await asyncio.sleep(pause)
    return found


async def _value(found: Any) -> Any:
    return await found if inspect.isawaitable(found) else found
