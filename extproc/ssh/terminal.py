"""An interactive shell over SSH: the SSH channel's ends given to the session every front
shares (terminal/session.py), which decides each line before the host gets it.

    ssh -t web-1@gateway            →  SHELL exchange (may this agent open a shell?)
      then                          →  terminal/session.py: each line a LINE exchange

Resizes go to the host as they come, and into the recording.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncssh

from extproc.codecs.refusal import Refusal
from extproc.exchange.streamed import reading
from extproc.ssh.commands import Connect, say, start_on_host
from extproc.ssh.relay import exit_with, pump_input
from extproc.terminal.gate import FAILED_STATUS, Gate
from extproc.terminal.relay import pump_output
from extproc.terminal.session import RecordingFailed, Session

if TYPE_CHECKING:
    from extproc.recording.terminal import TerminalRecordings


class _Agent:
    """The agent's SSH channel as the session's Agent."""

    def __init__(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        self._process = process

    def write(self, data: bytes) -> None:
        self._process.stdout.write(data)

    def write_error(self, data: bytes) -> None:
        self._process.stderr.write(data)


class _Host:
    """The host's process as the session's Host."""

    def __init__(self, remote: asyncssh.SSHClientProcess[bytes]) -> None:
        self._remote = remote

    def write(self, data: bytes) -> None:
        self._remote.stdin.write(data)

    async def drain(self) -> None:
        await self._remote.stdin.drain()

    async def read(self, size: int) -> bytes:
        return await self._remote.stdout.read(size)


async def run_shell(process: asyncssh.SSHServerProcess[bytes], gate: Gate, connect: Connect,
                    idle: float, recordings: TerminalRecordings) -> None:
    started = await start_on_host(process, gate, connect, "SHELL", {"request": "shell"},
                                  None, "open a shell")
    if started is None:
        return
    verdict, remote = started
    term = process.get_terminal_type()
    width, height = process.get_terminal_size()[:2]
    shell = Session(_Agent(process), _Host(remote), gate, verdict, recordings, idle,
                    (term, width, height) if term else None)

    async def take(data: bytes | asyncssh.TerminalSizeChanged) -> None:
        if isinstance(data, asyncssh.TerminalSizeChanged):
            shell.resize(data.width, data.height)
        else:
            await shell.take(data)

    status: int | None = FAILED_STATUS
    feeding = asyncio.ensure_future(pump_input(process, remote, take))
    joined = asyncio.ensure_future(shell.take_joined())
    try:
        streams = [pump_output(shell.read_host, process.stdout, shell.out,
                               None, idle, shell.seen, kept=reading(verdict.act))]
        if not term:  # with a terminal, the host's stderr is on the same pty
            streams.append(pump_output(remote.stderr.read, process.stderr,
                                       shell.err, None, idle, shell.seen,
                                       kept=reading(verdict.act)))
        await asyncio.gather(*streams)
        await remote.wait_closed()
        status = exit_with(process, remote)
    except (RecordingFailed, Refusal) as exc:  # the recording, or the flow, cannot keep
        why = exc.message if isinstance(exc, Refusal) else str(exc)
        say(process, f"tollgate: the session ends: {why} [trace {verdict.trace_id}]")
        remote.close()
        process.exit(FAILED_STATUS)
    finally:
        feeding.cancel()
        joined.cancel()
        await asyncio.gather(feeding, joined, return_exceptions=True)
        await shell.close(status)
