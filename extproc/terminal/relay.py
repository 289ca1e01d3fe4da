"""Moving one output stream from the host to the agent, masked on its way out.

Shared by commands (exec) and interactive sessions of every front. Output is masked with
the decision's mask as it streams; what the stream masker holds back (a secret may still
be growing) is released when more comes or the stream ends, or, for a terminal, once the
host has been quiet for `idle` seconds, so a prompt shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from extproc.recording import BodyCapture
from extproc.terminal.output import MaskedOutput

READ_SIZE = 64 * 1024


class Sink(Protocol):
    """Where the agent reads a stream: written, then drained (the agent's pace)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


async def pump_output(read: Callable[[int], Any], writer: Sink,
                      masked: MaskedOutput, capture: BodyCapture | None,
                      idle: float | None, seen: Callable[[bytes], None] | None = None
                      ) -> None:
    """Relay one output stream to its end, no faster than the agent reads it (a host
    faster than its agent must not pile its output up in the gateway). `seen(shown)`:
    each piece the agent was shown (a terminal's recording)."""
    pending: asyncio.Future[Any] | None = None
    unreleased = False
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(read(READ_SIZE))
            done, _ = await asyncio.wait({pending}, timeout=idle if unreleased else None)
            if not done:
                await _out(masked.release(), writer, capture, seen)
                unreleased = False
                continue
            data = pending.result()
            pending = None
            if not data:
                break
            await _out(masked.feed(data), writer, capture, seen)
            unreleased = True
    finally:
        if pending is not None:
            pending.cancel()
    await _out(masked.finish(), writer, capture, seen)


async def _out(shown: bytes, writer: Sink, capture: BodyCapture | None,
               seen: Callable[[bytes], None] | None) -> None:
    if not shown:
        return
    writer.write(shown)
    if capture is not None:
        capture.add(shown)
    if seen is not None:
        seen(shown)
    await writer.drain()
