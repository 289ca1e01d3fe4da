"""One Kubernetes stream relayed between kubectl and the API server, read as it passes.

Both sides speak the channel protocol the API server chose (codecs/k8s_channels.py):
stdin (0), stdout (1), stderr (2), the error channel (3: the Status that ends a command),
resize (4), and v5's close signal. What the stream is decides how it is read:

    exec, no stdin or a program's data on it  →  output masked as it streams (byte-exact
                                               where nothing matches), stdin passed on
    a terminal (-t), or stdin into a shell    →  a session (terminal/session.py): each
      or an attach with stdin                    line decided before the pod gets it,
                                                 output masked, recorded as an asciicast
    tar to stdout / from stdin (kubectl cp)   →  the archive read (copy.py): each file
                                                 decided, a download's contents masked
    port-forward                              →  passed unread, and the record says so

Whatever tollgate cannot read ends the stream with a close frame naming it (an unknown
channel, a malformed message, output to a channel the client did not ask for, data after
a close, a resize flood, a client that reads nothing for `client_read_seconds`), and the
exchange's record says so; nothing it did not read is passed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from extproc.codecs import k8s_channels as ch
from extproc.codecs.refusal import Refusal
from extproc.exchange.streamed import reading
from extproc.interpret.shell import session_shell
from extproc.kube.copy import Archive, ArchiveRefused, archive_mode
from extproc.terminal.gate import FAILED_STATUS, Gate, Verdict, refusal_text
from extproc.terminal.output import MaskedOutput
from extproc.terminal.relay import pump_output
from extproc.terminal.session import RecordingFailed, Session

if TYPE_CHECKING:
    from extproc.exchange.live import LiveSession
    from extproc.recording.terminal import TerminalRecordings

log = logging.getLogger("tollgate.kube")

Peer = ServerConnection | ClientConnection
# An outbox holding more than this waits for its peer before taking more.
_OUTBOX_BYTES = 256 * 1024
# Resizes a client may send at once beyond its rate.
_RESIZE_BURST = 20
# How long a stream's end may wait on each step (its tasks, each peer's close).
_ENDING_SECONDS = 1.0


@dataclass(frozen=True)
class StreamSettings:
    idle: float  # output held by the masker goes out after at most this many seconds
    masked_max: int  # the largest file kubectl cp masks whole
    resizes_per_second: int
    client_read_seconds: float


class StreamClosed(Exception):
    """The stream ends at tollgate's word: the close frame's code and reason; `stalled`
    when the client is the one reading nothing (it gets no close frame: its connection
    is dropped)."""

    def __init__(self, code: int, reason: str, stalled: bool = False) -> None:
        super().__init__(reason)
        self.code, self.reason, self.stalled = code, reason, stalled


class SessionEnded(Exception):
    """A moderator ended the stream's session, or locked its identity (live.py)."""


class Outbox:
    """What goes to one peer, in order, at the peer's pace. `put` queues (sync: a session
    echoes keys from a callback); `drain` waits while much is queued; a peer that takes
    nothing for `patience` seconds ends the stream (a client that never reads).

    `outlived`: the peer may close before all is sent (the pod, whose command can end
    before the client's stdin does): what is left for it is dropped, for its own close,
    read with its output and Status, ends the stream; failing here would end it before
    that output went out."""

    def __init__(self, peer: Peer, patience: float, who: str = "the client",
                 outlived: bool = False) -> None:
        self._peer, self._patience, self._who = peer, patience, who
        self._outlived, self._gone = outlived, False
        self._queue: collections.deque[bytes | str] = collections.deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._empty = asyncio.Event()
        self._empty.set()

    def put(self, message: bytes | str) -> None:
        if self._gone:
            return
        self._queue.append(message)
        self._bytes += len(message)
        self._ready.set()
        self._empty.clear()
        if self._bytes > _OUTBOX_BYTES:
            self._room.clear()

    async def drain(self) -> None:
        try:
            async with asyncio.timeout(self._patience):
                await self._room.wait()
        except TimeoutError:
            raise self._stalled() from None

    def _stalled(self) -> StreamClosed:
        return StreamClosed(1008, f"tollgate: {self._who} read nothing for "
                                  f"{self._patience:g} s", self._who == "the client")

    async def flushed(self) -> None:
        await self._empty.wait()

    def _closed(self) -> None:
        """The peer closed: nothing more goes to it, and nobody waits to send it more."""
        self._gone = True
        self._queue.clear()
        self._bytes = 0
        self._room.set()
        self._empty.set()

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            while self._queue:
                message = self._queue[0]
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the
                    # cancellation that ends the stream (bpo-42130), and the stream hangs.
                    async with asyncio.timeout(self._patience):
                        await self._peer.send(message)
                except TimeoutError:
                    raise self._stalled() from None
                except ConnectionClosed:
                    if not self._outlived:
                        raise
                    self._closed()
                    return
                self._queue.popleft()
                self._bytes -= len(message)
                if self._bytes <= _OUTBOX_BYTES:
                    self._room.set()
            self._ready.clear()
            self._empty.set()


class Channel:
    """One channel of a peer, as a writer the relays and sessions write to."""

    def __init__(self, outbox: Outbox, protocol: ch.Subprotocol, channel: int) -> None:
        self._outbox, self._protocol, self._channel = outbox, protocol, channel

    def write(self, data: bytes) -> None:
        if data:
            self._outbox.put(ch.encode(self._protocol, self._channel, data))

    async def drain(self) -> None:
        await self._outbox.drain()


class Pipe:
    """One output stream of the pod, demultiplexed: read in order, b"" at its end; the
    reader of the pod's messages waits while it is full (the client's pace)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(16)
        self._ended = False

    async def put(self, data: bytes) -> None:
        if data and not self._ended:
            await self._queue.put(data)

    async def end(self) -> None:
        if not self._ended:
            self._ended = True
            await self._queue.put(b"")

    async def read(self, _size: int) -> bytes:
        return await self._queue.get()


@dataclass
class _Agent:
    """The client's side of a session: stdout, and where tollgate's own words go."""

    out: Channel
    err: Channel

    def write(self, data: bytes) -> None:
        self.out.write(data)

    def write_error(self, data: bytes) -> None:
        self.err.write(data)


@dataclass
class _Host:
    """The pod's side of a session: its stdin (a channel upstream), its output (a pipe)."""

    stdin: Channel
    output: Pipe

    def write(self, data: bytes) -> None:
        self.stdin.write(data)

    async def drain(self) -> None:
        await self.stdin.drain()

    async def read(self, size: int) -> bytes:
        return await self.output.read(size)


@dataclass
class _Resizes:
    """A token bucket: a client may resize `rate` times a second, `_RESIZE_BURST` at once."""

    rate: int
    tokens: float = _RESIZE_BURST
    at: float = field(default_factory=time.monotonic)

    def take(self) -> None:
        now = time.monotonic()
        self.tokens = min(_RESIZE_BURST, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            raise StreamClosed(1008, f"tollgate: more than {self.rate} resizes a second")
        self.tokens -= 1


async def relay(client: ServerConnection, upstream: ClientConnection, gate: Gate,
                verdict: Verdict, protocol: ch.Subprotocol | None, meaning: dict[str, Any],
                recordings: TerminalRecordings, settings: StreamSettings,
                live: LiveSession | None = None) -> None:
    """The stream, relayed until either side ends it, or its session is ended (`live`:
    the session listed); its exchange ended and recorded."""
    if protocol is None:
        await _port_forward(client, upstream, gate, verdict)
        return
    stream = _Stream(client, upstream, gate, verdict, protocol, meaning, recordings, settings,
                     live)
    await stream.run()


class _Stream:
    """An exec or attach: the client's messages, the pod's, and what reads each."""

    def __init__(self, client: ServerConnection, upstream: ClientConnection, gate: Gate,
                 verdict: Verdict, protocol: ch.Subprotocol, meaning: dict[str, Any],
                 recordings: TerminalRecordings, settings: StreamSettings,
                 live: LiveSession | None = None) -> None:
        self._client, self._upstream, self._gate = client, upstream, gate
        self._live = live
        self._verdict, self._protocol, self._settings = verdict, protocol, settings
        streams = meaning["exec"]
        self._streams = streams
        argv = [str(a) for a in streams["command"]]
        self._to_client = Outbox(client, settings.client_read_seconds)
        self._to_pod = Outbox(upstream, settings.client_read_seconds, "the pod",
                              outlived=True)
        self._stdout, self._stderr = Pipe(), Pipe()
        self._stdin = Channel(self._to_pod, protocol, ch.STDIN)
        self._out = Channel(self._to_client, protocol, ch.STDOUT)
        self._err = Channel(self._to_client, protocol, ch.STDERR)
        self._resizes = _Resizes(settings.resizes_per_second)
        self._resize_reader = ch.ResizeReader()
        self._stdin_closed = False
        self._status: bytes | None = None
        self._exit: int | None = None
        exchange = verdict.exchange
        self._mask = exchange.mask
        tty = bool(streams["tty"])
        self._tty = tty
        mode, base = archive_mode(argv)
        self._session: Session | None = None
        self._archive: Archive | None = None
        if streams["stdin"] and (tty or meaning.get("verb") == "attach"
                                 or session_shell(argv)):
            self._session = Session(self._agent(), _Host(self._stdin, self._stdout), gate,
                                    verdict, recordings, settings.idle,
                                    ("", 80, 24) if tty else None)
        elif mode is not None:
            self._archive = Archive(gate, mode, base, settings.masked_max,
                                    self._archive_out if mode == "download" else
                                    self._archive_in, self._tell)
        self._capture = gate.capture(verdict) if self._session is None else None
        self._masker = gate.masker
        self._status_counts: Counter[str] = Counter()
        self._out_masked = MaskedOutput(self._masker, self._mask)
        self._err_masked = MaskedOutput(self._masker, self._mask)

    def _agent(self) -> _Agent:
        """The client's side of a session: its stdout, and without a terminal its stderr
        (where a session says tollgate's own words) when it asked for one."""
        quiet = self._tty or not self._streams["stderr"]
        return _Agent(self._out, self._out if quiet else self._err)

    # -- running -------------------------------------------------------------------------

    async def run(self) -> None:
        outcome = "ran" if self._session is None else "closed"
        close: tuple[int, str] = (1000, "")
        stalled = False  # the client reads nothing: no close handshake to wait for
        senders = [asyncio.ensure_future(self._to_client.run()),
                   asyncio.ensure_future(self._to_pod.run())]
        from_client = asyncio.ensure_future(self._from_client())
        readers = [from_client, asyncio.ensure_future(self._from_pod())]
        if self._live is not None:
            readers.append(asyncio.ensure_future(self._until_ended(self._live)))
        if self._session is not None:  # lines a moderator who joined types, as an SSH shell's
            readers.append(asyncio.ensure_future(self._session.take_joined()))
        outputs = asyncio.ensure_future(self._outputs())
        try:
            if not await _first_of(outputs, from_client, {*senders, *readers, outputs}):
                outcome = "the client left"
            elif self._status is None and self._protocol.status_json:
                outcome = "the API server ended the stream without its status"
        except StreamClosed as exc:
            outcome, close = f"ended by tollgate: {exc.reason}", (exc.code, exc.reason)
            stalled = exc.stalled
        except SessionEnded:
            assert self._live is not None
            outcome = f"ended by {self._live.by}: {self._live.reason}"
            await self._end_with(ch.refused(self._protocol, self._live.farewell()))
        except ArchiveRefused as exc:
            outcome = f"refused: {exc}"
            await self._end_with(ch.internal_error(self._protocol, str(exc)) or b"")
        except Refusal as bad:  # output the flow could not keep (503): none of it goes
            text = refusal_text(self._verdict.exchange.refuse(bad))
            outcome = f"refused: {bad.message}"
            await self._end_with(ch.refused(self._protocol, text))
        except RecordingFailed as exc:
            outcome, close = f"ended: {exc}", (1011, f"tollgate: {exc}")
        except ConnectionClosed as exc:
            outcome = _closed_outcome(exc, self._client, outcome)
        except Exception as exc:  # fail closed: whatever else ends the stream, said so
            log.exception("Kubernetes stream of %s failed", self._gate.session_id)
            outcome = f"ended by tollgate: an internal error ({type(exc).__name__})"
            close = (1011, "tollgate: an internal error")
        finally:
            await self._end(senders, [*readers, outputs], close, stalled)
            await self._finish(outcome)

    @staticmethod
    async def _until_ended(live: LiveSession) -> None:
        """Raises SessionEnded once the session is ended: its Status (Forbidden, the
        reason) goes to the client on the error channel, which kubectl prints and exits
        1 on, and the stream closes."""
        await live.ended.wait()
        raise SessionEnded

    async def _end(self, senders: Sequence[asyncio.Future[Any]],
                   others: Sequence[asyncio.Future[Any]], close: tuple[int, str],
                   stalled: bool) -> None:
        """Every task stopped (what the client was sent goes first, unless it reads
        nothing), then both peers closed; each step bounded."""
        for task in others:
            task.cancel()
        if not stalled:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_ENDING_SECONDS):
                    await self._to_client.flushed()
        for task in senders:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_ENDING_SECONDS):
                await asyncio.gather(*senders, *others, return_exceptions=True)
        if stalled:
            self._client.transport.abort()
        else:
            await closed(self._client, *close)
        await closed(self._upstream, 1000, "")

    async def _end_with(self, status: bytes) -> None:
        """The stream's end said on the error channel (an archive refused mid-way)."""
        if status:
            self._to_client.put(ch.encode(self._protocol, ch.ERROR, status))
        self._exit = FAILED_STATUS

    async def _finish(self, outcome: str) -> None:
        exchange = self._verdict.exchange
        detail = {"tollgate.outcome": outcome}
        if self._session is not None:
            await self._session.close(self._exit)
            return
        exchange.record_masking(self._out_masked.counts + self._err_masked.counts
                                + self._status_counts)
        if self._archive is not None:
            self._archive.close()
        self._gate.end(self._verdict, status=self._exit, outcome=detail)

    # -- the client's messages ----------------------------------------------------------

    async def _from_client(self) -> None:
        async for message in self._client:
            try:
                read = ch.decode(self._protocol, message, 5)
            except ch.ProtocolError as exc:
                raise StreamClosed(1002, f"tollgate: {exc}") from None
            if isinstance(read, ch.Ignored):
                raise StreamClosed(1002, f"tollgate relays no message it cannot read: "
                                         f"{read.why}")
            if isinstance(read, ch.Closed):
                await self._client_closed(read.channel)
            elif read.channel == ch.STDIN:
                await self._stdin_data(read.payload)
            elif read.channel == ch.RESIZE:
                self._resize(read.payload)
            else:
                raise StreamClosed(1002, f"tollgate: a client writes stdin and resize, "
                                         f"not channel {read.channel}")
        await self._client_closed(ch.STDIN, gone=True)

    async def _stdin_data(self, payload: bytes) -> None:
        if not self._streams["stdin"]:
            raise StreamClosed(1002, "tollgate: stdin the stream did not ask for")
        if self._stdin_closed:
            raise StreamClosed(1002, "tollgate: stdin after the client closed it")
        if self._session is not None:
            await self._session.take(payload)
        elif self._archive is not None and self._archive.direction == "upload":
            await self._archive.feed(payload)
        else:
            self._stdin.write(payload)
            await self._stdin.drain()

    async def _client_closed(self, channel: int, gone: bool = False) -> None:
        """v5's close signal (or the client gone): its stdin ends, passed on."""
        if channel != ch.STDIN or self._stdin_closed:
            if gone:
                return
            raise StreamClosed(1002, f"tollgate: a close of channel {channel} "
                                     f"{'twice' if channel == ch.STDIN else ''}".rstrip())
        self._stdin_closed = True
        if self._session is not None:
            await self._session.take(b"")
        elif self._archive is not None and self._archive.direction == "upload":
            await self._archive.finish()
        if not gone and self._protocol.close_signal:
            self._to_pod.put(bytes((ch.CLOSE, ch.STDIN)))

    def _resize(self, payload: bytes) -> None:
        try:
            sizes = self._resize_reader.feed(payload)
        except ValueError as exc:  # UnicodeDecodeError too
            raise StreamClosed(1002, f"tollgate: {exc}") from None
        for _ in range(max(1, len(sizes))):  # each size counts, and a message without one
            self._resizes.take()
        for width, height in sizes:
            if self._session is not None:
                self._session.resize(width, height)
        self._to_pod.put(ch.encode(self._protocol, ch.RESIZE, payload))

    # -- the pod's messages -------------------------------------------------------------

    async def _from_pod(self) -> None:
        try:
            async for message in self._upstream:
                try:
                    read = ch.decode(self._protocol, message, 5)
                except ch.ProtocolError as exc:
                    raise StreamClosed(1011, f"tollgate: the API server sent {exc}") from None
                if isinstance(read, ch.Ignored | ch.Closed) \
                        or read.channel in (ch.STDIN, ch.RESIZE):
                    why = read.why if isinstance(read, ch.Ignored) else "a client's message"
                    raise StreamClosed(1011, f"tollgate: the API server sent {why}")
                await self._pod_data(read.channel, read.payload)
        except ConnectionClosed:
            pass
        await self._stdout.end()
        await self._stderr.end()

    async def _pod_data(self, channel: int, payload: bytes) -> None:
        if channel == ch.ERROR:
            self._status = (self._status or b"") + payload
            return
        if not payload:  # kube's "the session is up": passed on as it is
            self._to_client.put(ch.encode(self._protocol, channel, b""))
            return
        await (self._stdout if channel == ch.STDOUT else self._stderr).put(payload)

    async def _outputs(self) -> None:
        """The pod's output to the client, read as the stream's kind says; once it has
        ended, the Status (masked as text), then the close."""
        pause = self._settings.idle
        pumps: list[Awaitable[None]]
        if self._session is not None:
            session = self._session
            pumps = [pump_output(session.read_host, self._out, session.out, None, pause,
                                 session.seen, kept=reading(self._verdict.act))]
            if not self._tty:
                pumps.append(pump_output(self._stderr.read, self._err, session.err, None,
                                         pause, session.seen, kept=reading(self._verdict.act)))
        else:
            stdout: Awaitable[None]
            if self._archive is not None and self._archive.direction == "download":
                stdout = self._archive.pump(self._stdout.read)
            else:
                stdout = pump_output(self._stdout.read, self._out, self._out_masked,
                                     self._capture, pause, kept=reading(self._verdict.act))
            pumps = [stdout, pump_output(self._stderr.read, self._err, self._err_masked,
                                         self._capture, pause,
                                         kept=reading(self._verdict.act))]
        await asyncio.gather(*pumps)
        if self._status is not None:
            self._exit = _exit_code(self._status)
            status = self._status
            if self._exit == 0 and self._archive is not None and self._archive.refused:
                # The pod's tar did its part; tollgate left files out: not a success.
                count = len(self._archive.refused)
                status = ch.refused(self._protocol, (
                    f"tollgate left {count} file{'s' if count > 1 else ''} of the upload "
                    f"out: {self._archive.refused[0]}"))
                self._exit = FAILED_STATUS
            if self._mask is not None:
                status = self._masked_status(status)
            self._to_client.put(ch.encode(self._protocol, ch.ERROR, status))
        elif self._protocol.status_json:
            # v4 and later always end with a Status: without it the command's end (and
            # its last output) is unknown, which a clean close would tell as a success.
            self._exit = FAILED_STATUS
            self._to_client.put(ch.encode(self._protocol, ch.ERROR, ch.refused(
                self._protocol, "tollgate: the API server ended the stream without its "
                "status: the command's end, and its last output, are unknown")))
        await self._to_client.flushed()

    def _masked_status(self, status: bytes) -> bytes:
        """The Status's text masked as output is (its message may quote the command's)."""
        assert self._mask is not None
        text, counts = self._masker.mask_text(status.decode("utf-8", "surrogateescape"),
                                              self._mask)
        self._status_counts = counts
        return text.encode("utf-8", "surrogateescape")

    # -- what the archive reader emits ----------------------------------------------------

    async def _archive_out(self, data: bytes) -> None:
        """A downloaded archive's bytes, read: to the client's stdout."""
        self._out.write(data)
        if self._capture is not None:
            self._capture.add(data)
        await self._out.drain()

    async def _archive_in(self, data: bytes) -> None:
        """An uploaded archive's bytes, read: to the pod's stdin."""
        self._stdin.write(data)
        await self._stdin.drain()

    def _tell(self, text: str) -> None:
        """tollgate's own line to the client, on stderr (kubectl prints it)."""
        (self._err if self._streams["stderr"] else self._out).write(f"{text}\n".encode())


async def _first_of(outputs: asyncio.Future[Any], from_client: asyncio.Future[Any],
                    tasks: set[asyncio.Future[Any]]) -> bool:
    """Until the pod's output has gone out (True: the command ended) or the client left
    (False); the first task that fails raises its error."""
    waiting = tasks
    while not (outputs.done() or from_client.done()):
        done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            failed = task.exception()
            if failed is not None:
                raise failed
    return outputs.done()


async def closed(peer: Peer, code: int = 1000, reason: str = "") -> None:
    """`peer` closed with `code`: its close handshake if it takes part within
    _ENDING_SECONDS, else its connection dropped (a peer that reads nothing would hold
    the close, and the stream's record, for ever)."""
    try:
        async with asyncio.timeout(_ENDING_SECONDS):
            await peer.close(code, reason)
    except TimeoutError:
        peer.transport.abort()


def _closed_outcome(exc: ConnectionClosed, client: ServerConnection, default: str) -> str:
    """What the record says of a stream a close ended: tollgate's own close (a message
    over the size limit, say), the client's, or the pod's (`default`)."""
    sent = exc.sent
    if sent is not None and (exc.rcvd is None or exc.rcvd_then_sent is False):
        return f"ended by tollgate: close {sent.code} {sent.reason}".rstrip()
    return "the client left" if client.close_code is not None else default


def _exit_code(status: bytes) -> int | None:
    """The exit status a Status on the error channel says (0: Success; pre-v4
    subprotocols send nothing on success, a message on failure)."""
    try:
        found = json.loads(status)
    except ValueError:
        return FAILED_STATUS if status else 0
    if not isinstance(found, dict):
        return FAILED_STATUS
    if found.get("status") == "Success":
        return 0
    for cause in (found.get("details") or {}).get("causes") or []:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            with contextlib.suppress(TypeError, ValueError):
                return int(str(cause.get("message")))
    return FAILED_STATUS


async def _port_forward(client: ServerConnection, upstream: ClientConnection, gate: Gate,
                        verdict: Verdict) -> None:
    """A port-forward: its bytes pass unread both ways (the pack decided on the ports it
    names); the record says how many and that they were not read."""
    counts = {"client": 0, "pod": 0}

    async def copy(source: Peer, sink: Peer, side: str) -> None:
        async for message in source:
            counts[side] += len(message)
            await sink.send(message)

    tasks = [asyncio.ensure_future(copy(client, upstream, "client")),
             asyncio.ensure_future(copy(upstream, client, "pod"))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
        await upstream.close()
        gate.end(verdict, outcome={
            "tollgate.outcome": f"port-forward closed: {counts['client']} bytes from the "
                                f"client, {counts['pod']} from the pod, not read",
            "tollgate.k8s.unread": True})

