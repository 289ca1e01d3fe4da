"""Exec, attach and port-forward sessions of the Kubernetes stand-in, over an accepted
WebSocket (websockets' sans-I/O protocol on the request's own, possibly TLS, socket).

One thread owns the socket (the request's handler thread, in `Connection.run`): it reads
the client's frames and writes everything queued for the client, so a TLS socket is never
used from two threads at once. Processes' output reaches it through `Connection.send`
from the pump threads; stdin goes out through k8s_pods.Writer threads.

The sequence is kube's: after the 101, an empty message on the lowest channel the client
asked for (stdout, else stderr, else the error channel), which tells the client the
session is up; output as it comes; when the command has exited and its output is drained,
the exit Status on channel 3 (k8s_channels words it as the API server's translator for v5,
as the kubelet for older subprotocols), a close frame (1000) and a wait for the client's
own close. A client that goes away first takes its command with it (killed: kube would let
it run on unread). A message after which kube ends the connection is answered with close
1002 (kube: 1000) naming what was wrong, and the command is killed.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import select
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from extproc.codecs import k8s_channels as ch
from tests.standins.k8s_pods import Container, Pods, StartError, Writer, pump

RECORD_LIMIT = 64 * 1024  # bytes kept per channel and direction; totals are always counted


@dataclass(eq=False)
class Transcript:
    """What went over one streaming session, as the stand-in (the "pod") saw it."""

    subprotocol: str | None = None  # None: no WebSocket session took place
    received: dict[int, bytearray] = field(default_factory=dict)  # client -> pod, by channel
    sent: dict[int, bytearray] = field(default_factory=dict)  # pod -> client
    received_bytes: collections.Counter[int] = field(default_factory=collections.Counter)
    sent_bytes: collections.Counter[int] = field(default_factory=collections.Counter)
    resizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height)
    closed: list[int] = field(default_factory=list)  # channels the client closed (v5)
    ignored: list[str] = field(default_factory=list)  # messages dropped, and why
    exit_code: int | None = None
    status: Any = None  # what channel 3 carried: the Status as JSON, or pre-v4 text
    close: tuple[int, str] | None = None  # the close frame the stand-in sent
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, timeout: float = 30) -> Transcript:
        """This transcript once the session is over (the handler may still be finishing
        when the client has returned)."""
        if not self.done.wait(timeout):
            raise TimeoutError("the streaming session did not end")
        return self

    def text(self, channel: int, *, sent: bool = True) -> str:
        """What the pod sent (or, `sent=False`, received) on `channel`, decoded."""
        with self.lock:
            return bytes((self.sent if sent else self.received).get(channel, b"")).decode(
                errors="replace")

    def _record(self, into: dict[int, bytearray], counter: collections.Counter[int],
                channel: int, data: bytes) -> None:
        with self.lock:
            kept = into.setdefault(channel, bytearray())
            kept += data[:max(0, RECORD_LIMIT - len(kept))]
            counter[channel] += len(data)


class Connection:
    """An accepted WebSocket speaking one channel subprotocol; `run` is its I/O loop."""

    def __init__(self, sock: socket.socket, protocol: ServerProtocol,
                 subprotocol: ch.Subprotocol, channels: int, transcript: Transcript) -> None:
        self.subprotocol, self.channels, self.transcript = subprotocol, channels, transcript
        self._sock, self._protocol = sock, protocol
        self._outgoing: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_read, self._wake_write = os.pipe()
        self._wake_lock = threading.Lock()
        self._ended = False
        self._fragments: list[bytes] = []
        self._eof = False
        self.on_message: Callable[[ch.Message], None] = lambda _message: None
        self.on_gone: Callable[[], None] = lambda: None

    # -- from any thread --------------------------------------------------------

    def send(self, channel: int, payload: bytes) -> None:
        self._queue(lambda: self._send_now(channel, payload))

    def finish(self, status: bytes | None) -> None:
        """The status on the error channel (if the subprotocol sends one), then close."""
        def now() -> None:
            if status is not None:
                self._send_now(ch.ERROR, status)
                with self.transcript.lock:
                    self.transcript.status = (json.loads(status) if self.subprotocol.status_json
                                              else status.decode())
            self._close_now(1000, "")
        self._queue(now)

    def end(self, code: int, reason: str) -> None:
        self._queue(lambda: self._close_now(code, reason))

    def shutdown(self) -> None:
        """Cut the connection (the stand-in is stopping)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def _queue(self, action: Callable[[], None]) -> None:
        with self._wake_lock:  # never write to the pipe's fd once closed (and reused)
            if not self._ended:
                self._outgoing.append(action)
                os.write(self._wake_write, b"x")

    # -- the I/O loop (the handler's thread) -----------------------------------------

    def run(self) -> None:
        """Serve the connection until the close handshake completes or the client goes;
        then tell the session (`on_gone`)."""
        self._sock.settimeout(None)  # kube's idle timeout is hours; stop() ends it sooner
        try:
            while not self._eof and self._protocol.state is not State.CLOSED:
                pending = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending()
                socket_fd = self._sock.fileno()
                readable = [socket_fd] if pending else select.select(
                    [socket_fd, self._wake_read], [], [])[0]
                if self._wake_read in readable:
                    os.read(self._wake_read, 4096)
                while self._outgoing and not self._eof:
                    self._outgoing.popleft()()
                if socket_fd in readable:
                    self._receive()
                self._flush()
        finally:
            self.on_gone()
            with self._wake_lock:
                self._ended = True
                os.close(self._wake_read)
                os.close(self._wake_write)

    def _receive(self) -> None:
        try:
            data = self._sock.recv(65536)
        except ssl.SSLWantReadError:
            return
        except OSError:
            data = b""
        if not data:
            self._protocol.receive_eof()
            self._eof = True
            return
        self._protocol.receive_data(data)
        for frame in self._protocol.events_received():
            assert isinstance(frame, Frame)
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                self._fragments.append(bytes(frame.data))
                if frame.fin:
                    message, self._fragments = b"".join(self._fragments), []
                    self._message(message)

    def _message(self, raw: bytes) -> None:
        try:
            message = ch.decode(self.subprotocol, raw, self.channels)
        except ch.ProtocolError as exc:
            self.transcript.ignored.append(f"protocol error: {exc}")
            self._close_now(1002, str(exc))
            return
        if isinstance(message, ch.Data):
            self.transcript._record(self.transcript.received, self.transcript.received_bytes,
                                    message.channel, message.payload)
        elif isinstance(message, ch.Closed):
            self.transcript.closed.append(message.channel)
        else:
            self.transcript.ignored.append(message.why)
        self.on_message(message)

    def _send_now(self, channel: int, payload: bytes) -> None:
        if self._protocol.state is not State.OPEN:
            return
        frame = ch.encode(self.subprotocol, channel, payload)
        if isinstance(frame, str):
            self._protocol.send_text(frame.encode())
        else:
            self._protocol.send_binary(frame)
        self.transcript._record(self.transcript.sent, self.transcript.sent_bytes, channel,
                                payload)
        self._flush()

    def _close_now(self, code: int, reason: str) -> None:
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(code, reason)
            self.transcript.close = (code, reason)
            self.on_gone()  # nothing more goes to the client: stop what feeds it
            self._flush()

    def _flush(self) -> None:
        for chunk in self._protocol.data_to_send():
            try:
                if chunk:
                    self._sock.sendall(chunk)
                else:  # the close handshake is over: the server closes TCP
                    self._eof = True
            except OSError:
                self._eof = True


# -- sessions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Streams:
    """The streams an exec or attach asked for (PodExecOptions/PodAttachOptions)."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    def opening_channel(self) -> int:
        """Where kube sends its empty "session is up" message."""
        return ch.STDOUT if self.stdout else ch.STDERR if self.stderr else ch.ERROR


def serve_exec(connection: Connection, pods: Pods, namespace: str, pod: str,
               argv: Sequence[str], streams: Streams) -> None:
    """Run `argv` in the pod as a real process and relay it until it ends."""
    connection.send(streams.opening_channel(), b"")
    try:
        process = pods.spawn(namespace, pod, argv, stdin=streams.stdin, tty=streams.tty)
    except StartError as exc:
        connection.finish(ch.internal_error(connection.subprotocol, str(exc)))
        connection.run()
        return
    resizes = ch.ResizeReader()
    finished = threading.Event()
    remaining = [len(process.outputs)]
    lock = threading.Lock()

    def output_done() -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        code = process.exit_code()
        pods.finished(process)
        with connection.transcript.lock:
            connection.transcript.exit_code = code
        finished.set()
        connection.finish(ch.success(connection.subprotocol) if code == 0 else
                          ch.exited(connection.subprotocol, argv, code))

    def on_message(message: ch.Message) -> None:
        _stdin_and_resize(message, process.stdin, process.resize, resizes, connection,
                          streams)

    def on_gone() -> None:
        if not finished.is_set():
            process.kill()  # first: closing stdin could let it exit by itself
        if process.stdin is not None:
            process.stdin.close()

    connection.on_message, connection.on_gone = on_message, on_gone
    for channel, fd in process.outputs.items():
        wanted = streams.stdout if channel == ch.STDOUT else streams.stderr
        pump(fd, functools.partial(connection.send, channel) if wanted else _discard,
             output_done)
    connection.run()
    finished.wait()  # a client gone early killed it: the transcript gets its exit code


def serve_attach(connection: Connection, container: Container, streams: Streams) -> None:
    """Join the pod's container process: its output from now on, stdin if asked. The
    "session is up" message goes out once joined (output meanwhile waits behind it), so a
    client that has read it knows it sees everything printed after."""

    class Attached:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.waiting: list[tuple[int, bytes]] | None = []  # None: the session is up

        def output(self, channel: int, data: bytes) -> None:
            if not (streams.stdout if channel == ch.STDOUT else streams.stderr):
                return
            with self.lock:
                if self.waiting is not None:
                    self.waiting.append((channel, data))
                    return
            connection.send(channel, data)

        def up(self) -> None:
            with self.lock:
                connection.send(streams.opening_channel(), b"")
                for channel, data in self.waiting or ():
                    connection.send(channel, data)
                self.waiting = None

        def exited(self) -> None:
            connection.finish(ch.success(connection.subprotocol))

    attached = Attached()
    writer = container.process.stdin if streams.stdin else None

    def on_message(message: ch.Message) -> None:
        # stdin EOF from one client does not close the container's stdin (stdinOnce
        # is false), and the container has no terminal to resize.
        _stdin_and_resize(message, writer, lambda _w, _h: None, ch.ResizeReader(),
                          connection, streams, close_stdin=False)

    connection.on_message = on_message
    connection.on_gone = lambda: container.detach(attached)
    joined = container.attach(attached)
    attached.up()
    if not joined:
        connection.finish(ch.success(connection.subprotocol))
    connection.run()


def _stdin_and_resize(message: ch.Message, stdin: Writer | None,
                      resize: Callable[[int, int], None], reader: ch.ResizeReader,
                      connection: Connection, streams: Streams, *,
                      close_stdin: bool = True) -> None:
    """What the client may send an exec or attach: stdin (when asked for), its close,
    resizes; anything else is dropped, as kube drops it."""
    transcript = connection.transcript
    if isinstance(message, ch.Closed):
        if message.channel == ch.STDIN and stdin is not None and close_stdin:
            stdin.close()
        return
    if not isinstance(message, ch.Data):
        return
    if message.channel == ch.STDIN and stdin is not None:
        if ch.STDIN in transcript.closed:
            transcript.ignored.append("stdin data after the client closed stdin")
        else:
            stdin.write(message.payload)
    elif message.channel == ch.RESIZE:
        try:
            sizes = reader.feed(message.payload)
        except ValueError as exc:
            transcript.ignored.append(str(exc))
            return
        for width, height in sizes:
            transcript.resizes.append((width, height))
            if streams.tty:
                resize(width, height)
    else:
        transcript.ignored.append(f"channel {message.channel} is not read from the client")


def serve_port_forward(connection: Connection, pod: str, uid: str, ports: Sequence[int],
                       targets: dict[int, int]) -> None:
    """Connect each requested pod port to the local TCP port `targets` maps it to, as
    the kubelet connects it to the pod's localhost; data on 2i, errors on 2i+1."""
    sockets: dict[int, socket.socket] = {}
    writers: dict[int, Writer] = {}
    remaining = [len(ports)]
    lock = threading.Lock()

    def port_done() -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:  # the kubelet closes the WebSocket once every forward has returned
            connection.end(1000, "")

    for index, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        connection.send(2 * index, prefix)
        connection.send(2 * index + 1, prefix)
        try:
            sock = _connect(targets.get(port))
        except OSError as exc:
            connection.send(2 * index + 1, (
                f"error forwarding port {port} to pod {pod}, uid {uid}: failed to connect "
                f"to localhost:{port} inside the pod: {exc.strerror or exc}").encode())
            port_done()
            continue
        sockets[index] = sock
        writers[index] = Writer(os.dup(sock.fileno()))
        pump(os.dup(sock.fileno()), functools.partial(connection.send, 2 * index), port_done)

    def on_message(message: ch.Message) -> None:
        if isinstance(message, ch.Data) and message.channel % 2 == 0 and (
                message.channel // 2 in writers):
            writers[message.channel // 2].write(message.payload)
        elif isinstance(message, ch.Data):
            connection.transcript.ignored.append(
                f"channel {message.channel} is not read from the client")

    def on_gone() -> None:
        for index, sock in sockets.items():
            writers[index].close()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    connection.on_message, connection.on_gone = on_message, on_gone
    connection.run()
    for sock in sockets.values():
        sock.close()


def _discard(_data: bytes) -> None:
    """Output of a stream the client did not ask for: read, so the process never blocks."""


def _connect(target: int | None) -> socket.socket:
    """A connection to the local port standing in for a pod port (None: nothing listens)."""
    if target is None:
        raise ConnectionRefusedError(111, "connection refused")
    sock = socket.create_connection(("127.0.0.1", target), timeout=5)
    sock.settimeout(None)
    return sock


def serve_echo(connection: Connection, text: bytes, streams: Streams) -> None:
    """No pod root given: answer with `text` on stdout and Success, running nothing."""
    connection.send(streams.opening_channel(), b"")
    connection.send(ch.STDOUT, text)
    connection.finish(ch.success(connection.subprotocol))
    connection.run()
