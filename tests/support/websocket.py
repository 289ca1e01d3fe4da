"""A WebSocket client for tests that drive a server message by message: websockets'
sans-I/O ClientProtocol on a socket (TLS or not) that only the caller's thread reads and
writes.

Not websockets' sync client: it reads its socket in a thread of its own while the caller's
thread writes, and on TLS that is one OpenSSL connection used from two threads at once,
which OpenSSL does not allow and Python 3.11's ssl module does not serialise. Against a
server that sends its TLS 1.3 session tickets right after the handshake (kube-apiserver,
the Kubernetes stand-in) the reading thread was processing them just as the caller wrote
its upgrade request: about one connection in 200 failed with "[SSL] internal error" or a
request the server never got. Envoy holds its tickets back until its first answer, but a
client that writes while the server sends (keys typed while the front echoes them, a
message sent as the front closes) was the same two threads in one connection.

Here nothing reads but the caller: what the server sent is taken in when the caller waits
for something (a message, the close) and, just before each send, whatever has already
come (as the sync client's reading thread would have), so that sending on a connection
the server has closed raises ConnectionClosed as it did.
"""

from __future__ import annotations

import collections
import contextlib
import select
import socket
import ssl
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import USER_AGENT
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri


class WebSocket:
    """One client connection to `url` (ws:// or wss://, verified against `ca` when given),
    open once constructed; the server's refusal raises InvalidStatus, as websockets does.

    `timeout` bounds the opening handshake and each write; `close_timeout` how long
    close() (or a send on a closing connection) waits for the closing handshake.
    `hang_up` ends TCP as soon as the closing handshake is done, as RFC 6455 lets either
    end do (through Envoy, waiting for the server to do it is Envoy's delayed close, a
    second); without it, the client waits for the server to end TCP."""

    def __init__(self, url: str, *, ca: Path | None = None,
                 subprotocols: Iterable[str] | None = None,
                 headers: Iterable[tuple[str, str]] = (), max_size: int | None = 2 ** 20,
                 timeout: float = 10, close_timeout: float = 10,
                 hang_up: bool = False) -> None:
        uri = parse_uri(url)
        self.protocol = ClientProtocol(
            uri, max_size=max_size,
            subprotocols=None if subprotocols is None else [Subprotocol(p) for p in subprotocols])
        self._timeout, self._close_timeout, self._hang_up = timeout, close_timeout, hang_up
        self._messages: collections.deque[bytes | str] = collections.deque()
        self._fragments: list[Frame] = []
        self.socket = socket.create_connection((uri.host, uri.port), timeout=timeout)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if uri.secure:
            context = ssl.create_default_context(cafile=None if ca is None else str(ca))
            self.socket = context.wrap_socket(self.socket, server_hostname=uri.host)
        request = self.protocol.connect()
        request.headers.update(headers)
        request.headers.setdefault("User-Agent", USER_AGENT)
        self.protocol.send_request(request)
        self._flush()
        deadline = time.monotonic() + timeout
        while self.protocol.state is State.CONNECTING and self.protocol.handshake_exc is None:
            if not self._receive(deadline - time.monotonic()):
                self.socket.close()
                raise TimeoutError("timed out while waiting for the handshake response")
        if self.protocol.handshake_exc is not None:
            self.socket.close()
            raise self.protocol.handshake_exc
        self.subprotocol: str | None = self.protocol.subprotocol

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def send(self, message: bytes | str | Iterable[bytes]) -> None:
        """One message: text for a str, binary for bytes, or binary in fragments, one a
        frame; ConnectionClosed once the connection is closing or closed."""
        if isinstance(message, str):
            self._open()
            self.protocol.send_text(message.encode())
            self._send()
        elif isinstance(message, bytes):
            self._open()
            self.protocol.send_binary(message)
            self._send()
        else:
            first = True
            for fragment in message:
                self._open()
                if first:
                    self.protocol.send_binary(fragment, fin=False)
                else:
                    self.protocol.send_continuation(fragment, fin=False)
                self._send()
                first = False
            self._open()
            self.protocol.send_continuation(b"", fin=True)
            self._send()

    def recv(self, timeout: float | None = None) -> bytes | str:
        """The next message (a str when it came as text), waiting `timeout` seconds at
        most (TimeoutError); the connection's ConnectionClosed once it is closed and
        every message before the close has been read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._messages:
            if self.protocol.state is State.CLOSED:
                raise self.protocol.close_exc
            if not self._receive(None if deadline is None else deadline - time.monotonic()):
                raise TimeoutError(f"no WebSocket message within {timeout} s")
        return self._messages.popleft()

    def close_received(self) -> bool:
        """Whether the server's close frame has come (taking in what has come so far,
        without waiting)."""
        self._take_in_arrived()
        return self.protocol.close_rcvd is not None

    def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake (when the connection is still open), waiting
        close_timeout at most for it to end; then the socket is closed."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            try:
                self._flush()
            except OSError:
                self._end_tcp()
        self._closed_within(self._close_timeout)
        self.socket.close()

    # -- one thread's I/O ------------------------------------------------------------------

    def _open(self) -> None:
        """Raise ConnectionClosed when what the server already sent has closed the
        connection (once its closing handshake is done)."""
        self._take_in_arrived()
        if self.protocol.state is not State.OPEN:
            self._closed_within(self._close_timeout)
            raise self.protocol.close_exc

    def _send(self) -> None:
        """Write the frame just added; a connection that cannot be written is gone
        (ConnectionClosed), after what the server sent before it is taken in."""
        try:
            self._flush()
        except OSError as exc:
            self._take_in_arrived()
            self._end_tcp()
            raise self.protocol.close_exc from exc

    def _take_in_arrived(self) -> None:
        while self.protocol.state is not State.CLOSED and self._receive(0):
            pass

    def _closed_within(self, seconds: float) -> None:
        """Read on until the connection is closed, or end it after `seconds`."""
        deadline = time.monotonic() + seconds
        while (self.protocol.state is not State.CLOSED
               and self._receive(deadline - time.monotonic())):
            pass
        self._end_tcp()

    def _receive(self, timeout: float | None) -> bool:
        """Wait up to `timeout` seconds (None: for ever, 0: not at all) for the server,
        and take in what it sent (its end, when it has gone); False when nothing came."""
        if timeout is not None and timeout < 0:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pending = isinstance(self.socket, ssl.SSLSocket) and self.socket.pending()
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not pending and not select.select([self.socket], [], [], remaining)[0]:
                return False
            self.socket.settimeout(0)
            try:
                data = self.socket.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):  # a record's rest, a ticket
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                continue
            except OSError:  # reset, or TLS past a failed write: the server is gone, as at EOF
                data = b""
            break
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        self._take(self.protocol.events_received())
        with contextlib.suppress(OSError):  # a reply (a pong, the close) to a server gone
            self._flush()
        if self._hang_up and self.protocol.close_rcvd is not None:
            self._end_tcp()
        return True

    def _take(self, events: Iterable[object]) -> None:
        for event in events:
            if isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.BINARY,
                                                             Opcode.CONT):
                self._fragments.append(event)
                if event.fin:
                    data = b"".join(bytes(f.data) for f in self._fragments)
                    text = self._fragments[0].opcode is Opcode.TEXT
                    self._messages.append(data.decode() if text else data)
                    self._fragments = []

    def _flush(self) -> None:
        """Write what the protocol has for the server (bounded by `timeout`)."""
        for chunk in self.protocol.data_to_send():
            if chunk:  # b"" asks to half-close: the client only ends TCP whole
                self.socket.settimeout(self._timeout)
                self.socket.sendall(chunk)

    def _end_tcp(self) -> None:
        """End the TCP connection (once the closing handshake is done, or given up on)."""
        if self.protocol.state is not State.CLOSED:
            with contextlib.suppress(OSError):
                self.socket.shutdown(socket.SHUT_RDWR)
            self.protocol.receive_eof()
            self._take(self.protocol.events_received())

