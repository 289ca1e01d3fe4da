"""Moving one channel's bytes between the agent and the host: output masked on its way out.

Shared by commands (exec) and interactive shells. Output is masked with the decision's
mask as it streams; what the stream masker holds back (a secret may still be growing) is
released when more comes or the stream ends, or, for a terminal, once the host has been
quiet for `idle` seconds, so a prompt shows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncssh

from extproc.recording import BodyCapture
from extproc.ssh.output import MaskedOutput

READ_SIZE = 64 * 1024


async def pump_output(read: Callable[[int], Any], writer: asyncssh.SSHWriter[bytes],
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


async def _out(shown: bytes, writer: asyncssh.SSHWriter[bytes], capture: BodyCapture | None,
               seen: Callable[[bytes], None] | None) -> None:
    if not shown:
        return
    writer.write(shown)
    if capture is not None:
        capture.add(shown)
    if seen is not None:
        seen(shown)
    await writer.drain()


async def pump_input(process: asyncssh.SSHServerProcess[bytes],
                     remote: asyncssh.SSHClientProcess[bytes],
                     take: Callable[[bytes | asyncssh.TerminalSizeChanged], Any] | None = None
                     ) -> None:
    """The agent's stdin to the host, with its resizes, signals and breaks; EOF passed on.
    `take(data)`: instead of writing as is, hand each read (and each resize) to the
    caller (a terminal decides each line first), awaited."""
    while True:
        try:
            data = await process.stdin.read(READ_SIZE)
        except asyncssh.TerminalSizeChanged as change:
            remote.change_terminal_size(change.width, change.height, change.pixwidth,
                                        change.pixheight)
            if take is not None:
                await take(change)
            continue
        except asyncssh.SignalReceived as sig:
            remote.send_signal(sig.signal)
            continue
        except asyncssh.BreakReceived as brk:
            remote.send_break(brk.msec)
            continue
        if not data:
            if take is not None:
                await take(data)  # the end, for a last line without its newline
            with contextlib.suppress(OSError, asyncssh.Error):
                remote.stdin.write_eof()
            return
        if take is not None:
            await take(data)
        else:
            remote.stdin.write(data)
            await remote.stdin.drain()


def exit_with(process: asyncssh.SSHServerProcess[bytes],
              remote: asyncssh.SSHClientProcess[bytes]) -> int | None:
    """End the agent's channel as the host's command ended: its status, or its signal.
    The status the record keeps (None: killed by a signal)."""
    signal = remote.exit_signal
    if signal is not None:
        name, core, message, lang = signal
        process.exit_with_signal(name, core, message, lang)
        return None
    status = remote.exit_status if remote.exit_status is not None else 255
    process.exit(status)
    return status
