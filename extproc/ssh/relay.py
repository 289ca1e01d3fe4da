"""The agent's SSH channel and the host's: input (with resizes, signals, breaks) passed
on, and the channel ended as the host's command ended. Output goes through
terminal/relay.py, which every front shares."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import asyncssh

from extproc.terminal.relay import READ_SIZE


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
