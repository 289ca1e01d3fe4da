"""MySQL's packets on the wire, and the values inside their payloads.

Every packet is a 3-byte little-endian payload length, a 1-byte sequence id and the
payload. A payload of 2^24 - 1 bytes or more travels as several packets: each full one
(exactly 0xFFFFFF bytes) says "more follows", and the first shorter one (possibly empty)
ends it. TCP reads do not follow packets, so `Framer` keeps what it has not yet framed
and hands out logical payloads whole.

Nothing in a packet says what it is: an OK, a row and a column count all start with a
number, and 0xFE is an EOF, an auth switch or a row's first value by where it comes. The
codecs beside this module (handshake.py, commands.py, responses.py, resultsets.py,
binary.py, prepared.py) read what the caller says a payload is, with `Reader`, and raise
`ProtocolViolation` for bytes that are not that (a length past the end, a missing
terminator, bytes left over): the gateway answers such input with an error, never by
passing it on unread.

Text fields (names, messages) decode as UTF-8, undecodable bytes kept as surrogate
escapes (`as_text`): the encoders give back the same bytes (`as_bytes`), and a policy
compares names as text.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

MAX_PAYLOAD = 0xFFFFFF  # a packet of this size continues in the next one

INT2 = struct.Struct("<H")
INT4 = struct.Struct("<I")
_INT8 = struct.Struct("<Q")


class ProtocolViolation(Exception):
    """Bytes that are not MySQL's protocol: the connection cannot go on. `reply_seq`: the
    sequence id an answer to the offending packet takes, where the framer read its header
    (the sender can then be told why, before the end)."""

    def __init__(self, message: str, reply_seq: int | None = None) -> None:
        super().__init__(message)
        self.reply_seq = reply_seq


# -- framing ----------------------------------------------------------------------------------


class Packet(NamedTuple):
    """One logical packet: its (first) sequence id and its whole payload."""

    seq: int
    payload: bytes

    @property
    def last_seq(self) -> int:
        """The sequence id of the last wire packet it took (the reply takes the next)."""
        return (self.seq + len(self.payload) // MAX_PAYLOAD) & 0xFF

    def raw(self) -> bytes:
        """The packet as it goes on the wire."""
        return encode(self.seq, self.payload)

    @property
    def size(self) -> int:
        """Its bytes on the wire: the payload and a header per wire packet (encode's)."""
        return len(self.payload) + 4 * (len(self.payload) // MAX_PAYLOAD + 1)


def encode(seq: int, payload: bytes) -> bytes:
    """`payload` framed, split at 0xFFFFFF bytes; one that is an exact multiple of that
    ends with an empty packet, so the reader knows it ended."""
    parts = []
    for i in range(len(payload) // MAX_PAYLOAD + 1):
        chunk = payload[i * MAX_PAYLOAD:(i + 1) * MAX_PAYLOAD]
        parts.append(INT4.pack(len(chunk) | ((seq + i) & 0xFF) << 24) + chunk)
    return b"".join(parts)


class Framer:
    """Logical packets out of a byte stream, as they complete.

    `max_size`: the largest logical payload accepted, refused from a packet's header
    before its bytes arrive. The wire packets of one split payload must carry
    consecutive sequence ids (MySQL's "packets out of order"); between logical packets the
    framer checks none: which exchange a packet starts is the session's to know.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._parts = bytearray()  # a split payload's packets so far
        self._split = False
        self._first_seq = self._next_seq = 0

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole logical packet."""
        return len(self._buffer) + len(self._parts)

    def feed(self, data: bytes) -> list[Packet]:
        """The logical packets `data` completes, in order."""
        buffer = self._buffer
        buffer += data
        out: list[Packet] = []
        pos, end = 0, len(buffer)
        while end - pos >= 4:
            (header,) = INT4.unpack_from(buffer, pos)
            length, seq = header & MAX_PAYLOAD, header >> 24
            if self._split and seq != self._next_seq:
                raise ProtocolViolation(
                    f"a continuation packet with sequence id {seq}, not {self._next_seq}",
                    (seq + 1) & 0xFF)
            if len(self._parts) + length > self.max_size:
                raise ProtocolViolation(
                    f"a payload of {len(self._parts) + length} bytes or more, over the "
                    f"{self.max_size} this gateway accepts", (seq + 1) & 0xFF)
            if end - pos < 4 + length:
                break
            body = buffer[pos + 4:pos + 4 + length]
            pos += 4 + length
            if not self._split:
                self._first_seq = seq
            if length == MAX_PAYLOAD:
                self._parts += body
                self._split, self._next_seq = True, (seq + 1) & 0xFF
                continue
            if self._split:
                self._parts += body
                out.append(Packet(self._first_seq, bytes(self._parts)))
                self._parts.clear()
                self._split = False
            else:
                out.append(Packet(seq, bytes(body)))
        if pos:
            del buffer[:pos]
        return out


# -- values -----------------------------------------------------------------------------------


class Reader:
    """A cursor over one payload; every read checks the bounds."""

    __slots__ = ("payload", "pos")

    def __init__(self, payload: bytes, pos: int = 0) -> None:
        self.payload, self.pos = payload, pos

    @property
    def remaining(self) -> int:
        return len(self.payload) - self.pos

    def fixed(self, n: int) -> bytes:
        """The next `n` bytes."""
        if n < 0 or self.pos + n > len(self.payload):
            raise ProtocolViolation(f"a payload ends inside a value of {n} bytes")
        value = self.payload[self.pos:self.pos + n]
        self.pos += n
        return value

    def int1(self) -> int:
        if self.pos >= len(self.payload):
            raise ProtocolViolation("a payload ends inside a number")
        self.pos += 1
        return self.payload[self.pos - 1]

    def int2(self) -> int:
        return self._unpack(INT2)

    def int3(self) -> int:
        return int.from_bytes(self.fixed(3), "little")

    def int4(self) -> int:
        return self._unpack(INT4)

    def int8(self) -> int:
        return self._unpack(_INT8)

    def _unpack(self, s: struct.Struct) -> int:
        if self.pos + s.size > len(self.payload):
            raise ProtocolViolation("a payload ends inside a number")
        (value,) = s.unpack_from(self.payload, self.pos)
        self.pos += s.size
        return int(value)

    def nullable_int(self) -> int | None:
        """A length-encoded integer, or None for 0xFB (a row value's NULL)."""
        first = self.int1()
        if first < 0xFB:
            return first
        if first == 0xFB:
            return None
        if first == 0xFC:
            return self.int2()
        if first == 0xFD:
            return self.int3()
        if first == 0xFE:
            return self.int8()
        raise ProtocolViolation("0xFF does not start a length-encoded integer")

    def lenenc_int(self) -> int:
        """A length-encoded integer: 1 byte below 251, else 0xFC/0xFD/0xFE and 2/3/8 bytes."""
        value = self.nullable_int()
        if value is None:
            raise ProtocolViolation("a NULL (0xFB) where a length-encoded integer belongs")
        return value

    def lenenc_str(self) -> bytes:
        return self.fixed(self.lenenc_int())

    def nullable_str(self) -> bytes | None:
        """A text row's value: a length-encoded string, or None for 0xFB."""
        length = self.nullable_int()
        return None if length is None else self.fixed(length)

    def cstring(self) -> bytes:
        """A NUL-terminated string, without its NUL."""
        end = self.payload.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolViolation("a string without its NUL terminator")
        value = self.payload[self.pos:end]
        self.pos = end + 1
        return value

    def rest(self) -> bytes:
        """What is left (a string that runs to the payload's end)."""
        value = self.payload[self.pos:]
        self.pos = len(self.payload)
        return value

    def done(self) -> None:
        if self.pos != len(self.payload):
            raise ProtocolViolation(f"{self.remaining} bytes past a packet's contents")


def lenenc_int(n: int) -> bytes:
    """`n` as a length-encoded integer, in its shortest form."""
    if n < 0:
        raise ValueError(f"a length-encoded integer of {n}")
    if n < 0xFB:
        return bytes((n,))
    if n < 1 << 16:
        return b"\xfc" + INT2.pack(n)
    if n < 1 << 24:
        return b"\xfd" + INT4.pack(n)[:3]
    if n < 1 << 64:
        return b"\xfe" + _INT8.pack(n)
    raise ValueError(f"a length-encoded integer of {n}, past 64 bits")


def lenenc_str(value: bytes) -> bytes:
    return lenenc_int(len(value)) + value


def as_text(raw: bytes) -> str:
    """A text field's bytes as text, undecodable bytes kept (surrogate escapes)."""
    return raw.decode("utf-8", "surrogateescape")


def as_bytes(text: str) -> bytes:
    """A text field's bytes again, as `as_text` read them."""
    return text.encode("utf-8", "surrogateescape")


def cstring(text: str | bytes) -> bytes:
    """`text` NUL-terminated (what `Reader.cstring` reads)."""
    raw = as_bytes(text) if isinstance(text, str) else text
    if b"\x00" in raw:
        raise ValueError("a NUL-terminated string cannot hold a NUL")
    return raw + b"\x00"


def expect_header(r: Reader, expected: int, what: str) -> None:
    """The next byte, a packet's first, which must be `expected` (`what` names the packet)."""
    header = r.int1()
    if header != expected:
        raise ProtocolViolation(f"{what} starting with 0x{header:02x}, not 0x{expected:02x}")
