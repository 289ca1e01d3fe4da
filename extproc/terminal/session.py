"""An interactive session: each line the agent enters decided before any of it reaches
the other side (a host's shell over SSH, a pod's process over Kubernetes exec).

      keystrokes                    →  edited by the gateway (lines.py): echoed, erased;
                                       nothing reaches the host yet
      Enter                         →  LINE exchange: the line, read by the shell reader
        allowed                     →  the line goes to the host whole, with CR; the
                                       host's echo of it is not shown again (HostEcho)
        refused                     →  the agent is told why; the host gets nothing
      keys typed meanwhile          →  wait in the gateway, edited as the next line
      a peer's keys (joined,        →  edited by a line editor of the peer's own; each
      admin/live/watch.py)             line decided as the agent's, one line at a time,
                                       its LINE exchange naming its typist
      Ctrl-C, Ctrl-D on no line     →  to the host (an interrupt, the end of input);
                                       after Ctrl-C an empty Enter, and the next line
                                       once the host answered each
      output                        →  masked (released when the host pauses, so a prompt
                                       shows), recorded as asciicast v2 (codecs/cast.py)
                                       in the store in chunks (within 0.25 s, for those
                                       watching); its size and SHA-256 in the session
                                       exchange's record, which replay checks

A program in the foreground (an editor, a pager, `top`, a REPL, a password prompt) gets
what the shell gets: decided lines, each with its Enter, and Ctrl-C or Ctrl-D alone; a
line typed into it is decided as a command line and recorded as a LINE exchange (`q`
leaves a pager; an editor's own keys — ESC, arrows — are refused).

Without a terminal the input is read as a stream: each line (to LF) decided and sent
whole.

Best effort, and written down in docs/architecture.md: what a line runs is read from
what was typed, so commands a script or a program produces on the host are not seen.

The front gives the session its two ends (`Agent`, `Host`) and pumps: the agent's input
to `take`, the host's output through `read_host` to the agent (terminal/relay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Protocol

from extproc.codecs.cast import MEDIA_TYPE, CastWriter
from extproc.codecs.message import SHELL_LINE
from extproc.terminal.gate import Gate, Verdict
from extproc.terminal.lines import Echo, EndOfInput, Interrupt, LineEditor, Submitted
from extproc.terminal.output import MaskedOutput

if TYPE_CHECKING:
    from extproc.recording import BodyCapture
    from extproc.recording.terminal import TerminalRecordings

log = logging.getLogger("tollgate.sessions")

# The recording goes to the store in chunks of about this size, or this often.
_CHUNK_BYTES = 16 * 1024
_CHUNK_SECONDS = 1.0
# What waits for more output goes at the latest this long after it was written.
_LIVE_SECONDS = 0.25
_CTRL_C, _CTRL_D = b"\x03", b"\x04"
# After Ctrl-C or Ctrl-D went to the host, the next line waits for the host's answer (its
# output, then a pause), at most this long: bash's readline, interrupted, drops the keys
# it read before it handles the signal, which would cut the front off a line sent at once.
# The terminal's own echo of the key (^C) is no answer: it comes before the shell's.
_ANSWER_SECONDS = 2.0
_KEY_ECHO = b"^C"


class RecordingFailed(Exception):
    """The session's recording could not be stored: the session does not go on."""


class Agent(Protocol):
    """The agent's end: its terminal (stdout), and its stderr without one."""

    def write(self, data: bytes) -> None: ...

    def write_error(self, data: bytes) -> None: ...


class Host(Protocol):
    """The other end: its input, and its output (a terminal's: stdout and stderr as one)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    async def read(self, size: int) -> bytes: ...


class Session:
    """One interactive session's state: the line being typed, the line running, the
    recording. `terminal`: the agent's terminal type and size, None without one."""

    def __init__(self, agent: Agent, host: Host, gate: Gate, verdict: Verdict,
                 recordings: TerminalRecordings, idle: float,
                 terminal: tuple[str, int, int] | None) -> None:
        self._agent, self._host, self._gate = agent, host, gate
        self._idle = idle
        self._heard = asyncio.Event()  # the host's answer to the last key sent alone
        self._key_echo = b""  # what of the terminal's echo of that key may come still
        self._heard_at = -math.inf  # never heard: no quiet to wait for
        self._key_sent = False  # a Ctrl-C or Ctrl-D the host may not have answered yet
        self._interrupted = False  # that key was Ctrl-C
        masker = gate.masker
        self._verdict, self._masker = verdict, masker
        self._pty = terminal is not None
        exchange = verdict.exchange
        self.out = MaskedOutput(masker, exchange.mask)
        self.err = MaskedOutput(masker, exchange.mask)
        self._lines = LineEditor(terminal=self._pty)
        # One line decided at a time, the agent's or a peer's; a peer's keys come from
        # the replica they joined through (exchange/presence.py), edited apart.
        self._turn = asyncio.Lock()
        self._peers: dict[str, LineEditor] = {}
        self._joined: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._live = gate.open.live
        if self._live is not None:
            self._live.joined = lambda typist, keys: self._joined.put_nowait((typist, keys))
        self._echo = HostEcho()
        self._line: Verdict | None = None  # the line whose output is showing
        self._line_output: BodyCapture | None = None
        self._started = time.time()
        term, width, height = terminal or ("", 80, 24)
        self._cast = CastWriter(width or 80, height or 24, term,
                                f"{gate.target.name} ({gate.session_id})", self._started)
        self._recording_id = exchange.trace_id
        self._recordings = recordings
        self._seq = 0
        self._flushed = time.monotonic()
        self._storing: asyncio.Future[Any] | None = None
        self._live_flush: asyncio.TimerHandle | None = None
        # The record keeps the recording's size and SHA-256 (replay checks the stored
        # recording against them), not its bytes: they are in the store already.
        self._capture = exchange.evidence.response_body = exchange.capture(0)
        exchange.evidence.response_type = MEDIA_TYPE
        exchange.evidence.response_read = True

    # -- the agent's keystrokes ---------------------------------------------------------

    def resize(self, width: int, height: int) -> None:
        """The agent's terminal changed size (the host was told by the front)."""
        self._cast.resize(self._now(), width, height)
        self._soon()

    async def take(self, data: bytes) -> None:
        """The agent's keys, as they come (b\"\": its input ended)."""
        async with self._turn:
            if not data:  # the agent's input ended: a last line without a newline is one
                last = self._lines.finish()
                if last is not None:
                    await self._submitted(last, b"")
                return
            for piece in self._lines.feed(data):
                if isinstance(piece, Echo):
                    self._show(piece.shown)
                else:
                    await self._piece(piece, None)
            await self._host.drain()

    async def take_joined(self) -> None:
        """The keys peers who joined the session type (LiveSession.joined), for as long
        as it lasts: each peer's through a line editor of their own, and each line they
        enter decided as the agent's are, one line at a time, naming its typist."""
        while True:
            typist, data = await self._joined.get()
            async with self._turn:
                editor = self._peers.setdefault(typist, LineEditor(terminal=self._pty))
                for piece in editor.feed(data):
                    if not isinstance(piece, Echo):  # their echo is their own terminal's
                        await self._piece(piece, typist)
                await self._host.drain()

    async def _piece(self, piece: Submitted | Interrupt | EndOfInput,
                     typist: str | None) -> None:
        if isinstance(piece, Submitted):
            await self._submitted(piece, b"\r" if self._pty else b"\n", typist)
        elif self._pty:
            key = _CTRL_C if isinstance(piece, Interrupt) else _CTRL_D
            by = f" (typed by {typist})" if typist is not None else ""
            self._cast.marker(self._now(), ("Ctrl-C to the host" if key == _CTRL_C
                                            else "Ctrl-D to the host") + by)
            self._soon()
            await self._answered()
            self._host.write(key)
            self._key_sent, self._interrupted = True, key == _CTRL_C
            self._key_echo = _KEY_ECHO
            self._heard.clear()

    async def _submitted(self, line: Submitted, enter: bytes,
                         typist: str | None = None) -> None:
        self._end_line()
        if typist is not None:  # the agent sees what a peer entered, and who did
            self._say(f"tollgate: {typist} typed: {line.line}")
        if not line.line.strip() and line.readable:
            await self._send(line, enter)
            return
        body = {"request": "line", "command": line.line, "pty": self._pty,
                "readable": line.readable}
        if line.why is not None:
            body["unreadable"] = line.why
        verdict = await self._gate.decide(SHELL_LINE, body, self._say, typist=typist)
        self._cast.marker(self._now(), f"{verdict.exchange.decision.action} "
                                       f"[trace {verdict.trace_id}]"
                                       + (f" typed by {typist}" if typist else ""))
        self._soon()
        if verdict.refusal is not None:
            self._say(verdict.refusal if line.why is None
                      else f"{verdict.refusal} (the line: {line.why})")
            self._gate.end(verdict)
            return
        await self._send(line, enter)
        self._line, self._line_output = verdict, self._gate.capture(verdict)

    async def _send(self, line: Submitted, enter: bytes) -> None:
        """A decided line to the host, whole; its echo there is what the agent saw."""
        await self._answered()
        sent = line.line.encode("utf-8", "surrogateescape")
        if self._pty:
            self._echo.expect(sent + b"\r\n")
        self._host.write(sent + enter)

    def _answer(self, data: bytes) -> None:
        """Output from the host: an answer to the key sent alone, past its echo."""
        echo, self._key_echo = self._key_echo, b""
        if data.startswith(echo):
            data = data[len(echo):]
        elif echo.startswith(data):
            self._key_echo, data = echo[len(data):], b""
        if data:
            self._heard.set()

    async def _answered(self) -> None:
        """After a Ctrl-C or Ctrl-D sent alone: until the host answered it. After Ctrl-C,
        an empty Enter too, answered: bash's readline handles the interrupt only when it
        reads the next key, and drops what it read until then."""
        if not self._key_sent:
            return
        self._key_sent = False
        await self._quiet_after_answer()
        if self._interrupted:
            self._interrupted = False
            self._heard.clear()
            self._host.write(b"\r")
            await self._quiet_after_answer()

    async def _quiet_after_answer(self) -> None:
        """Until the host's output since the last key, then `idle` seconds without any;
        _ANSWER_SECONDS at most."""
        deadline = time.monotonic() + _ANSWER_SECONDS
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._heard.wait(), _ANSWER_SECONDS)
        while (quiet := self._heard_at + self._idle - time.monotonic()) > 0:
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(quiet)

    def _show(self, shown: bytes) -> None:
        """The editor's echo, on the agent's terminal and in the recording."""
        self._agent.write(shown)
        self._cast.output(self._now(), shown)
        self._soon()

    def _say(self, text: str) -> None:
        """A line of tollgate's own: on the terminal, or on stderr without one."""
        if self._pty:  # after the editor's echo of the Enter: at a line's start
            shown = f"{text}\r\n"
            self._agent.write(shown.encode())
        else:
            shown = f"{text}\n"
            self._agent.write_error(shown.encode())
        self._cast.output(self._now(), shown)
        self._soon()

    def _end_line(self) -> None:
        if self._line is not None:
            self._gate.end(self._line, outcome={"tollgate.outcome": "sent"})
            self._line = self._line_output = None

    # -- the host's output --------------------------------------------------------------

    async def read_host(self, size: int) -> bytes:
        """The host's terminal output, less its echo of the lines sent (b"": the end)."""
        while True:
            data = await self._host.read(size)
            self._heard_at = time.monotonic()
            self._answer(data)
            shown = self._echo.strip(data) if data else data
            if shown or not data:
                return shown

    def seen(self, shown: bytes) -> None:
        if self._line_output is not None:
            self._line_output.add(shown)
        self._cast.output(self._now(), shown)
        if (len(self._cast.pending) >= _CHUNK_BYTES
                or time.monotonic() - self._flushed >= _CHUNK_SECONDS):
            self._store()
        else:
            self._soon()

    def _soon(self) -> None:
        """What the recording holds goes to the store within _LIVE_SECONDS, more written
        or not: a watcher sees the screen as it is (admin/live/watch.py)."""
        if self._live_flush is None:
            self._live_flush = asyncio.get_running_loop().call_later(
                _LIVE_SECONDS, self._flush_live)

    def _flush_live(self) -> None:
        self._live_flush = None
        # A store that failed is said at the next output (seen), which ends the session.
        with contextlib.suppress(RecordingFailed):
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
        if self._live is not None:
            self._live.joined = None
        if self._live_flush is not None:
            self._live_flush.cancel()
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




class HostEcho:
    """The host's echo of the lines the gateway sent, dropped: the agent saw each line
    already, as the editor echoed it. The output must begin with the echo expected
    (the line, CR LF); at the first byte that differs, nothing more is dropped, and what
    differs is shown (a line wider than the terminal, echoed with readline's redisplay,
    may then show twice)."""

    def __init__(self) -> None:
        self._expected = bytearray()

    def expect(self, echo: bytes) -> None:
        self._expected += echo

    def strip(self, data: bytes) -> bytes:
        expected = self._expected
        same = 0
        while same < min(len(data), len(expected)) and data[same] == expected[same]:
            same += 1
        if same < len(data) or same == len(expected):
            expected.clear()  # it differs, or all that was expected came
        else:
            del expected[:same]
        return data[same:]
