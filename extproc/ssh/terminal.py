"""An interactive shell: each line the agent enters decided before the host runs it.

    ssh -t web-1@gateway            →  SHELL exchange (may this agent open a shell?)
      keystrokes                    →  to the host as typed (its shell echoes and edits),
                                       except Enter, held while the line is decided
      Enter                         →  LINE exchange: input.ssh.command is the line as the
                                       shell's editor would have it (lines.py)
        allowed                     →  Enter goes on; the line's output is its response
        refused                     →  the agent is told why; the host gets Ctrl-U and
                                       an empty Enter in the Enter's place, which drop the
                                       line and prompt anew (Ctrl-C inside a paste)
      output                        →  masked (released when the host pauses, so a prompt
                                       shows), recorded as asciicast v2 (cast.py) in the
                                       store in chunks; its size and SHA-256 in the SHELL
                                       exchange's record, which replay checks

Without a terminal (`ssh host < script`), keystrokes are not sent as typed: each decided
line goes to the host whole, so nothing undecided sits in its input.

Best effort, and written down in docs/architecture.md: what a line runs is read from
what was typed, so commands a script or a program produces on the host are not seen; a
line edited with keys tollgate does not follow (tab completion, history, cursor movement)
is not readable, and the default pack refuses it; a line typed into another program
(an editor, a REPL, a password prompt) is read as a command line too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncssh

from extproc.masking import Masker
from extproc.recording import BodyCapture
from extproc.ssh.cast import MEDIA_TYPE, CastWriter
from extproc.ssh.commands import Connect, say, start_on_host
from extproc.ssh.gate import FAILED_STATUS, Gate, Verdict
from extproc.ssh.lines import LineTracker, Submitted
from extproc.ssh.output import MaskedOutput
from extproc.ssh.recordings import TerminalRecordings
from extproc.ssh.relay import exit_with, pump_input, pump_output

log = logging.getLogger("tollgate.ssh")

# The recording goes to the store in chunks of about this size, or this often.
_CHUNK_BYTES = 16 * 1024
_CHUNK_SECONDS = 1.0
_CTRL_C = b"\x03"
# In a refused line's Enter's place: Ctrl-U erases the line (the shell's editor's, or the
# terminal's own in a program reading lines), and an empty Enter prompts anew. Ctrl-C
# would too, but its signal flushes lines the agent typed ahead, unread.
_DROP_LINE = b"\x15\r"


class RecordingFailed(Exception):
    """The session's recording could not be stored: the session does not go on."""


async def run_shell(process: asyncssh.SSHServerProcess[bytes], gate: Gate, connect: Connect,
                    masker: Masker, idle: float, recordings: TerminalRecordings) -> None:
    started = await start_on_host(process, gate, connect, "SHELL", {"request": "shell"},
                                  None, "open a shell")
    if started is None:
        return
    verdict, remote = started
    term = process.get_terminal_type()
    shell = _Shell(process, remote, gate, verdict, masker, recordings)
    status: int | None = FAILED_STATUS
    feeding = asyncio.ensure_future(pump_input(process, remote, shell.take))
    try:
        streams = [pump_output(remote.stdout.read, process.stdout, shell.out,
                               None, idle if term else None, shell.seen)]
        if not term:  # with a terminal, the host's stderr is on the same pty
            streams.append(pump_output(remote.stderr.read, process.stderr,
                                       shell.err, None, None, shell.seen))
        await asyncio.gather(*streams)
        await remote.wait_closed()
        status = exit_with(process, remote)
    except RecordingFailed as exc:
        say(process, f"tollgate: the session ends: {exc} [trace {verdict.trace_id}]")
        remote.close()
        process.exit(FAILED_STATUS)
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        await shell.close(status)


class _Shell:
    """One interactive session's state: the line being typed, the line running, the
    recording."""

    def __init__(self, process: asyncssh.SSHServerProcess[bytes],
                 remote: asyncssh.SSHClientProcess[bytes], gate: Gate, verdict: Verdict,
                 masker: Masker, recordings: TerminalRecordings) -> None:
        self._process, self._remote, self._gate = process, remote, gate
        self._verdict, self._masker = verdict, masker
        self._pty = process.get_terminal_type() is not None
        exchange = verdict.exchange
        self.out = MaskedOutput(masker, exchange.mask)
        self.err = MaskedOutput(masker, exchange.mask)
        self._lines = LineTracker()
        self._line: Verdict | None = None  # the line whose output is showing
        self._line_output: BodyCapture | None = None
        self._started = time.time()
        width, height = process.get_terminal_size()[:2]
        self._cast = CastWriter(width or 80, height or 24, process.get_terminal_type() or "",
                                f"{gate.target.name} ({gate.session_id})", self._started)
        self._recording_id = exchange.trace_id
        self._recordings = recordings
        self._seq = 0
        self._flushed = time.monotonic()
        self._storing: asyncio.Future[Any] | None = None
        # The record keeps the recording's size and SHA-256 (replay checks the stored
        # recording against them), not its bytes: they are in the store already.
        self._capture = exchange.evidence.response_body = BodyCapture(0)
        exchange.evidence.response_type = MEDIA_TYPE
        exchange.evidence.response_read = True

    # -- the agent's keystrokes ---------------------------------------------------------

    async def take(self, data: bytes | asyncssh.TerminalSizeChanged) -> None:
        if isinstance(data, asyncssh.TerminalSizeChanged):
            self._cast.resize(self._now(), data.width, data.height)
            return
        if not data:  # the agent's input ended: a last line without a newline is one too
            last = self._lines.finish()
            if last is not None:
                await self._submitted(last)
            return
        for piece in self._lines.feed(data):
            if isinstance(piece, Submitted):
                await self._submitted(piece)
            elif self._pty:  # the host's shell echoes and edits; without one, lines go whole
                self._remote.stdin.write(piece)
        await self._remote.stdin.drain()

    async def _submitted(self, line: Submitted) -> None:
        self._end_line()
        if not line.line.strip() and line.readable:
            self._send(line)
            return
        verdict = await self._gate.decide(
            "LINE", {"request": "line", "command": line.line, "pty": self._pty,
                     "readable": line.readable}, self._say)
        self._cast.marker(self._now(), f"{verdict.exchange.decision.action} "
                                       f"[trace {verdict.trace_id}]")
        if verdict.refusal is not None:
            self._say(verdict.refusal)
            if self._pty and self._lines.pasting:
                # Keys in a paste are text to the host's editor: only Ctrl-C (a signal
                # from its terminal) drops the line, and the paste with it.
                self._remote.stdin.write(_CTRL_C)
                self._lines.abandon()
            elif self._pty:
                self._remote.stdin.write(_DROP_LINE)
            self._gate.end(verdict)
            return
        self._send(line)
        self._line, self._line_output = verdict, self._gate.capture(verdict)

    def _send(self, line: Submitted) -> None:
        self._remote.stdin.write(line.enter if self._pty
                                 else line.line.encode("utf-8", "surrogateescape") + line.enter)

    def _say(self, text: str) -> None:
        """A line of tollgate's own: on the terminal, or on stderr without one."""
        if self._pty:
            shown = f"\r\n{text}\r\n"
            self._process.stdout.write(shown.encode())
        else:
            shown = f"{text}\n"
            self._process.stderr.write(shown.encode())
        self._cast.output(self._now(), shown)

    def _end_line(self) -> None:
        if self._line is not None:
            self._gate.end(self._line, outcome={"tollgate.outcome": "sent"})
            self._line = self._line_output = None

    # -- the host's output --------------------------------------------------------------

    def seen(self, shown: bytes) -> None:
        if self._line_output is not None:
            self._line_output.add(shown)
        self._cast.output(self._now(), shown)
        if (len(self._cast.pending) >= _CHUNK_BYTES
                or time.monotonic() - self._flushed >= _CHUNK_SECONDS):
            self._store()

    def _store(self) -> None:
        """The recording written since the last chunk, to the store, in order; a store
        that fails ends the session (RecordingFailed from the next output)."""
        if self._storing is not None and self._storing.done():
            exc = self._storing.exception()
            if exc is not None:
                raise RecordingFailed(f"its recording cannot be stored: {exc}")
        data = self._cast.take()
        if not data:
            return
        self._capture.add(data)
        self._flushed = time.monotonic()
        seq, self._seq = self._seq, self._seq + 1
        previous = self._storing
        self._storing = asyncio.ensure_future(self._append(previous, seq, data))

    async def _append(self, previous: asyncio.Future[Any] | None, seq: int,
                      data: bytes) -> None:
        if previous is not None:
            await previous
        await self._recordings.append(self._gate.session_id, self._recording_id, seq, data)

    async def close(self, status: int | None) -> None:
        """The session's end: the last line's record, the rest of the recording, and the
        SHELL exchange's record with the recording's size and SHA-256."""
        self._end_line()
        outcome: dict[str, Any] = {"tollgate.outcome": "closed"}
        try:
            self._cast.finish(self._now())
            self._store()
            if self._storing is not None:
                await self._storing
        except Exception as exc:  # said in the record, never lost silently
            log.error("session %s: recording not stored: %s", self._gate.session_id, exc)
            outcome["tollgate.outcome"] = f"closed; its recording was not stored: {exc}"
        exchange = self._verdict.exchange
        exchange.record_masking(self.out.counts + self.err.counts)
        self._gate.end(self._verdict, status=status, outcome=outcome)

    def _now(self) -> float:
        return time.time() - self._started


