"""The session's two streams: the client's and its server's, read packet by packet.

This is all the I/O a MySQL session does; every other module of the session decides
what to send and what to make of what came, and asks the wire to move it. A packet is
framed as it arrives and kept until taken: a read may bring several (a result's rows),
and the server's login may have read past its end (`Upstream.pending`).

Where the client's answers go can change: while a write's effect is measured its answer
is held back (measured.py's `Measuring` takes the writes) until the verdict, so every
answer is written through `writer`, never to the client's stream directly.

The wire counts the client's bytes for a KILL QUERY (exchange/cancels.py): those that
had arrived when it came (`arrived`, read or not), and those of the packets taken that
the session has passed on (`passed`: sent to the server, refused or answered). A KILL
waits for what had arrived before it; the client's command sent meanwhile meets it on
the server (`send`, which marks the command running), one refused before it runs takes
it. The front's own statements go by `send_own`, which marks nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Protocol

from extproc.exchange.cancels import unread
from extproc.mysql.framing import Framer, Packet, ProtocolViolation, encode
from extproc.mysql.responses import encode_err

if TYPE_CHECKING:
    from extproc.mysql.state import SessionState
    from extproc.mysql.upstream import Upstream

_READ_SIZE = 256 * 1024


class Closed(Exception):
    """Either side went away, or sent what is not the protocol: the session ends."""


class Sink(Protocol):
    """Where the client's answers are written: its stream, or a measured write's hold."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class Wire:
    """The client's stream and the server's (the state's `upstream`: None for a
    connection that named no database, which has no server), each with the packets
    framed and not yet taken."""

    def __init__(self, state: SessionState, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, framer: Framer) -> None:
        self._state = state
        self._reader, self._framer = reader, framer
        # The client's bytes read; those of its packets taken; how many of these the
        # session's cancel gate was told are passed on.
        self._read = self._taken = self._passed = 0
        # The client's stream; where answers go (held back while a write is measured).
        self.client = writer
        self.writer: Sink = writer
        # Packets framed and not yet taken; the server's login may have read past its end.
        self.from_client: deque[Packet] = deque()
        upstream = state.upstream
        self.from_server: deque[Packet] = deque(upstream.pending if upstream else ())

    def rebound(self) -> None:
        """The state's server changed (or is gone): what was framed of the last one
        forgotten, what the new one's login read past its end kept."""
        upstream = self._state.upstream
        self.from_server = deque(upstream.pending if upstream else ())

    def write(self, data: bytes) -> None:
        """Bytes for the client (held back while a write is measured)."""
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    def send(self, data: bytes) -> None:
        """The client's command (or what it stands for) for the server: from here a KILL
        QUERY meets it there. Written before the session next waits, so before any KILL
        that this wakes reaches the server."""
        self.server.writer.write(data)
        self._state.running = True
        self.passed()

    def send_own(self, data: bytes) -> None:
        """A statement of the front's own for the server (own.py): no KILL goes for it."""
        self.server.writer.write(data)

    def passed(self) -> None:
        """The client's packets taken so far are passed on (sent, refused or answered)."""
        self._state.cancels.passed(self._taken - self._passed)
        self._passed = self._taken

    def arrived(self) -> int:
        """The client's bytes that reached this host, read or not, counted as `passed`
        counts them."""
        return self._read + unread(self._reader, self.client)

    async def client_packet(self) -> Packet | None:
        """The client's next packet; None once it left."""
        while not self.from_client:
            data = await self._reader.read(_READ_SIZE)
            if not data:
                return None
            self._read += len(data)
            try:
                self.from_client.extend(self._framer.feed(data))
            except ProtocolViolation as exc:
                # Told why before the session ends (ER_NET_PACKET_TOO_LARGE's code).
                if exc.reply_seq is not None:
                    self.writer.write(encode(exc.reply_seq, encode_err(
                        1153, "08S01", f"tollgate: {exc}; the session ends")))
                    with contextlib.suppress(ConnectionError):
                        await self.writer.drain()
                raise
        packet = self.from_client.popleft()
        self._taken += packet.size
        return packet

    async def next_client_packet(self) -> Packet:
        """The client's next packet, inside a command (Closed when it left)."""
        packet = await self.client_packet()
        if packet is None:
            raise Closed("the client left inside a command")
        return packet

    @property
    def server(self) -> Upstream:
        upstream = self._state.upstream
        assert upstream is not None, "a connection naming no database has no server"
        return upstream

    async def server_packet(self) -> Packet:
        """The server's next packet (Closed when it went away)."""
        while not self.from_server:
            data = await self.server.reader.read(_READ_SIZE)
            if not data:
                raise Closed("the server closed the connection")
            self.from_server.extend(self.server.framer.feed(data))
        return self.from_server.popleft()

    @property
    def buffered(self) -> bool:
        """Whether a packet of the server's is framed already, to be had with no read."""
        return bool(self.from_server)
