"""Moving one output stream from the host to the agent, masked on its way out.

Shared by commands (exec) and interactive sessions of every front. Output is masked with
the decision's mask as it streams; what the stream masker holds back (a secret may still
be growing) is released when more comes, when the stream ends, or at the latest `quiet`
seconds (`idle_release_ms`) after it was read, but for what could still be a secret's
start: so a slow command's lines, and a prompt, show as they are written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from extproc.terminal.output import MaskedOutput

if TYPE_CHECKING:
    from extproc.exchange.streamed import StreamReading
    from extproc.recording import BodyCapture

READ_SIZE = 64 * 1024


class Sink(Protocol):
    """Where the agent reads a stream: written, then drained (the agent's pace)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


async def pump_output(read: Callable[[int], Any], writer: Sink,
                      masked: MaskedOutput, capture: BodyCapture | None,
                      quiet: float, seen: Callable[[bytes], None] | None = None,
                      kept: StreamReading | None = None) -> None:
    """Relay one output stream to its end, no faster than the agent reads it (a host
    faster than its agent must not pile its output up in the gateway). What the masker
    holds is flushed `quiet` seconds after the first byte read since the last flush, more
    read meanwhile or not, so output reaches the agent within `quiet` of the host writing
    it (but for a secret's possible start: MaskedOutput.flush). `seen(shown)`: each piece
    the agent was shown (a terminal's recording); `kept`: what reads each piece for the
    flow before it goes (exchange/streamed.py). An agent gone (its channel or stream
    closed under the relay) ends it: nobody is left to show anything."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await _relay(read, writer, masked, capture, quiet, seen, kept)


async def _relay(read: Callable[[int], Any], writer: Sink, masked: MaskedOutput,
                 capture: BodyCapture | None, quiet: float,
                 seen: Callable[[bytes], None] | None, kept: StreamReading | None) -> None:
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[Any] | None = None
    due: float | None = None  # when what was read since the last flush goes out
    try:
        while True:
            if due is not None and loop.time() >= due:
                await _out(masked.flush(), writer, capture, seen, kept)
                due = None
            if pending is None:
                pending = asyncio.ensure_future(read(READ_SIZE))
            wait = None if due is None else due - loop.time()
            done, _ = await asyncio.wait({pending}, timeout=wait)
            if not done:
                continue
            data = pending.result()
            pending = None
            if not data:
                break
            await _out(masked.feed(data), writer, capture, seen, kept)
            if due is None:
                due = loop.time() + quiet
    finally:
        if pending is not None:
            pending.cancel()
    await _out(masked.finish(), writer, capture, seen, kept)


async def _out(shown: bytes, writer: Sink, capture: BodyCapture | None,
               seen: Callable[[bytes], None] | None, kept: StreamReading | None) -> None:
    if not shown:
        return
    if kept is not None:
        await kept(shown)
    writer.write(shown)
    if capture is not None:
        capture.add(shown)
    if seen is not None:
        seen(shown)
    await writer.drain()
