"""PostgreSQL's wire protocol (version 3.0): a stateful framer, readers and writers.

Every message after the startup is a type byte, a 4-byte big-endian length that counts
itself, and a body; the startup's messages (StartupMessage, SSLRequest, GSSENCRequest,
CancelRequest) have no type byte. TCP reads do not follow messages: one read may hold
several, one message may span many reads, so `Framer` keeps what it has not yet framed.

A reader raises `ProtocolViolation` for a body that is not what its type says (a missing
terminator, a count past the end): the gateway answers such input with an error, never
by passing it on unread.

Strings are in the session's encoding (encodings.wire()). A client's string that is not
valid in it raises `Undecodable`, which the session answers as PostgreSQL does (22021)
and goes on; the database's strings are read leniently, U+FFFD for bytes that do not
read (they are masked and written again: such bytes never pass as they came), and the
front's own texts to the client are written with `?` for what the encoding lacks.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from extproc.postgres import encodings

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3_0 = 196608

# The types each side may send (the protocol's "Message Formats" chapter).
FRONTEND_KINDS = frozenset(b"QPBEDCSHFXpdcf"[i:i + 1] for i in range(14))
BACKEND_KINDS = frozenset(
    b"RKSZTDCENA123ntsIGHWdcvV"[i:i + 1] for i in range(24))

_LENGTH = struct.Struct("!I")
_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")
_STARTUP_MAX = 10_000  # libpq's own bound on a startup packet


class ProtocolViolation(Exception):
    """Bytes that are not PostgreSQL's protocol: the connection cannot go on."""


class Undecodable(ProtocolViolation):
    """A client's string not valid in the session's encoding, as PostgreSQL says it;
    `text`, what could be read of it (U+FFFD for the rest)."""

    def __init__(self, problem: UnicodeDecodeError, text: str) -> None:
        bad = problem.object[problem.start:problem.end][:8]
        reading = encodings.wire()
        why = f" ({problem.reason})" if isinstance(reading, encodings.Unsettled) else ""
        super().__init__(f'invalid byte sequence for encoding "{reading.name}": '
                         + " ".join(f"0x{b:02x}" for b in bad) + why)
        self.text = text


class Message(NamedTuple):
    """One message: its type byte (b"" for a startup-phase message) and its body."""

    kind: bytes
    body: bytes

    def raw(self) -> bytes:
        """The message as it goes on the wire."""
        return self.kind + _LENGTH.pack(len(self.body) + 4) + self.body

    @property
    def size(self) -> int:
        """Its bytes on the wire."""
        return len(self.kind) + 4 + len(self.body)


class Framer:
    """Messages out of a byte stream, as they complete.

    `kinds`: the types the peer may send (any other is a violation); `max_size`: the
    largest body accepted; `untyped`: the startup phase, whose messages have no type.
    """

    def __init__(self, kinds: frozenset[bytes], max_size: int, untyped: bool = False) -> None:
        self.kinds, self.max_size, self.untyped = kinds, max_size, untyped
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole message."""
        return len(self._buffer)

    def take_rest(self) -> bytes:
        """What is buffered, handed over (the framer is empty after)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    def feed(self, data: bytes) -> list[Message]:
        """The messages `data` completes, in order."""
        buffer = self._buffer
        buffer += data
        out: list[Message] = []
        pos, end = 0, len(buffer)
        while True:
            if self.untyped:
                message = self._startup_at(buffer, pos, end)
                if message is None:
                    break
                out.append(message)
                pos += len(message.body) + 4
                continue
            if end - pos < 5:
                break
            kind = bytes(buffer[pos:pos + 1])
            if kind not in self.kinds:
                raise ProtocolViolation(f"unknown message type {kind!r}")
            (length,) = _LENGTH.unpack_from(buffer, pos + 1)
            if length < 4:
                raise ProtocolViolation(f"a {kind.decode()} message of length {length}")
            if length - 4 > self.max_size:
                raise ProtocolViolation(
                    f"a {kind.decode()} message of {length - 4} bytes, over the "
                    f"{self.max_size} this gateway accepts")
            if end - pos < length + 1:
                break
            out.append(Message(kind, bytes(buffer[pos + 5:pos + 1 + length])))
            pos += length + 1
        if pos:
            del buffer[:pos]
        return out


    def _startup_at(self, buffer: bytearray, pos: int, end: int) -> Message | None:
        """The startup-phase message at `pos`, if whole. After a StartupMessage the
        messages have types: the framer says so (`untyped` turns False)."""
        if end - pos < 4:
            return None
        (length,) = _LENGTH.unpack_from(buffer, pos)
        if length < 8 or length > _STARTUP_MAX:
            raise ProtocolViolation(f"a startup packet of {length} bytes")
        if end - pos < length:
            return None
        message = Message(b"", bytes(buffer[pos + 4:pos + length]))
        if _INT32.unpack_from(message.body)[0] not in (SSL_REQUEST, GSSENC_REQUEST,
                                                       CANCEL_REQUEST):
            self.untyped = False
        return message


class _Reader:
    """A cursor over one message's body; every read checks the bounds. `lenient`: the
    database's, whose strings are read with U+FFFD for bytes its encoding does not hold."""

    __slots__ = ("body", "lenient", "pos")

    def __init__(self, body: bytes, lenient: bool = False) -> None:
        self.body, self.pos, self.lenient = body, 0, lenient

    def int16(self) -> int:
        return self._unpack(_INT16)

    def uint16(self) -> int:
        return self.int16() & 0xFFFF

    def int32(self) -> int:
        return self._unpack(_INT32)

    def uint32(self) -> int:
        return self.int32() & 0xFFFFFFFF

    def _unpack(self, s: struct.Struct) -> int:
        if self.pos + s.size > len(self.body):
            raise ProtocolViolation("a message ends inside a number")
        (value,) = s.unpack_from(self.body, self.pos)
        self.pos += s.size
        return int(value)

    def bytes_(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.body):
            raise ProtocolViolation("a message ends inside a value")
        value = self.body[self.pos:self.pos + n]
        self.pos += n
        return value

    def byte(self) -> bytes:
        return self.bytes_(1)

    def cstring(self) -> str:
        end = self.body.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolViolation("a string without its terminator")
        value = self.body[self.pos:end]
        self.pos = end + 1
        encoding = encodings.wire()
        if self.lenient:
            return encoding.decode(value, "replace")
        try:
            return encoding.decode(value)
        except UnicodeDecodeError as problem:
            raise Undecodable(problem, "\ufffd".join(
                encoding.decode(part, "replace")
                for part in (value[:problem.start], value[problem.end:]))) from None

    def value(self) -> bytes | None:
        """A length-prefixed value; -1 is NULL."""
        n = self.int32()
        return None if n == -1 else self.bytes_(n)

    def done(self) -> None:
        if self.pos != len(self.body):
            raise ProtocolViolation("a message longer than its contents")


# -- the startup phase -------------------------------------------------------------------


class Startup(NamedTuple):
    """A startup-phase message: its code (a protocol version or a request code), the
    parameters of a StartupMessage, the (process id, secret) of a CancelRequest."""

    code: int
    parameters: dict[str, str]
    cancel: tuple[int, bytes] | None


def startup(body: bytes) -> Startup:
    r = _Reader(body)
    code = r.int32() & 0xFFFFFFFF
    if code in (SSL_REQUEST, GSSENC_REQUEST):
        r.done()
        return Startup(code, {}, None)
    if code == CANCEL_REQUEST:
        process_id = r.uint32()
        secret = r.body[r.pos:]
        if not 4 <= len(secret) <= 256:
            raise ProtocolViolation("a cancel request without its key")
        return Startup(code, {}, (process_id, secret))
    parameters: dict[str, str] = {}
    while True:
        name = r.cstring()
        if not name:
            break
        if name in parameters:
            raise ProtocolViolation(f"startup parameter {name!r} given twice")
        parameters[name] = r.cstring()
    r.done()
    return Startup(code, parameters, None)


def encode_startup(parameters: dict[str, str], version: int = PROTOCOL_3_0) -> bytes:
    body = _INT32.pack(version) + b"".join(
        _cstr(k) + _cstr(v) for k, v in parameters.items()) + b"\x00"
    return _LENGTH.pack(len(body) + 4) + body


def encode_request(code: int, tail: bytes = b"") -> bytes:
    """An SSLRequest, GSSENCRequest or CancelRequest (with its key as `tail`)."""
    return _LENGTH.pack(8 + len(tail)) + _INT32.pack(code) + tail


# -- the client's messages ---------------------------------------------------------------


def query(body: bytes) -> str:
    r = _Reader(body)
    text = r.cstring()
    r.done()
    return text


class Parse(NamedTuple):
    statement: str
    text: str
    parameter_types: tuple[int, ...]


def parse(body: bytes) -> Parse:
    r = _Reader(body)
    statement, text = r.cstring(), r.cstring()
    types = tuple(r.uint32() for _ in range(r.int16()))
    r.done()
    return Parse(statement, text, types)


class Bind(NamedTuple):
    portal: str
    statement: str
    parameter_formats: tuple[int, ...]
    parameters: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]


def bind(body: bytes) -> Bind:
    r = _Reader(body)
    portal, statement = r.cstring(), r.cstring()
    parameter_formats = tuple(r.int16() for _ in range(r.int16()))
    parameters = tuple(r.value() for _ in range(r.int16()))
    result_formats = tuple(r.int16() for _ in range(r.int16()))
    r.done()
    if any(f not in (0, 1) for f in (*parameter_formats, *result_formats)):
        raise ProtocolViolation("a format code other than text (0) or binary (1)")
    return Bind(portal, statement, parameter_formats, parameters, result_formats)


def execute(body: bytes) -> tuple[str, int]:
    r = _Reader(body)
    portal, max_rows = r.cstring(), r.int32()
    r.done()
    return portal, max_rows


def describe(body: bytes) -> tuple[bytes, str]:
    """A Describe's or Close's target: b"S" (a statement) or b"P" (a portal), its name."""
    r = _Reader(body)
    which, name = r.byte(), r.cstring()
    r.done()
    if which not in (b"S", b"P"):
        raise ProtocolViolation(f"a Describe or Close of {which!r}")
    return which, name


close = describe


def password(body: bytes) -> str:
    r = _Reader(body)
    text = r.cstring()
    r.done()
    return text


def copy_fail(body: bytes) -> str:
    return password(body)


# -- the database's messages -------------------------------------------------------------


class Column(NamedTuple):
    """A RowDescription's field."""

    name: str
    table_oid: int
    attribute: int
    type_oid: int
    type_size: int
    type_modifier: int
    format: int


def row_description(body: bytes) -> list[Column]:
    r = _Reader(body, lenient=True)
    columns = [Column(r.cstring(), r.uint32(), r.int16(), r.uint32(), r.int16(), r.int32(),
                      r.int16()) for _ in range(r.int16())]
    r.done()
    return columns


def encode_row_description(columns: list[Column]) -> bytes:
    return encode(b"T", _INT16.pack(len(columns)) + b"".join(
        _cstr(c.name, "replace") + struct.pack(
            "!IhIhih", c.table_oid, c.attribute, c.type_oid, c.type_size, c.type_modifier,
            c.format)
        for c in columns))


def data_row(body: bytes) -> list[bytes | None]:
    r = _Reader(body)
    values = [r.value() for _ in range(r.int16())]
    r.done()
    return values


def fields(body: bytes) -> dict[str, str]:
    """An ErrorResponse's or NoticeResponse's fields by their code (S, C, M, D, H ...)."""
    out: dict[str, str] = {}
    r = _Reader(body, lenient=True)
    while True:
        code = r.byte()
        if code == b"\x00":
            break
        out[code.decode("latin-1")] = r.cstring()
    r.done()
    return out


def answer_rows(answers: list[Message]) -> tuple[list[list[bytes | None]],
                                                dict[str, str] | None]:
    """The rows of the gateway's own query's answers, or its error's fields."""
    for message in answers:
        if message.kind == b"E":
            return [], fields(message.body)
    return [data_row(m.body) for m in answers if m.kind == b"D"], None


def error_text(error: dict[str, str]) -> str:
    """An error's message and SQLSTATE, for a reason."""
    return f"{error.get('M', 'an error')} (SQLSTATE {error.get('C', '?')})"


def command_complete(body: bytes) -> str:
    r = _Reader(body, lenient=True)
    tag = r.cstring()
    r.done()
    return tag


def value_text(value: bytes) -> str:
    """A text-format value of a row the front asked for itself (its catalog reads, a
    write's counters), in the session's encoding."""
    return encodings.wire().decode(value, "replace")


def ready_for_query(body: bytes) -> bytes:
    if body not in (b"I", b"T", b"E"):
        raise ProtocolViolation(f"a ReadyForQuery with status {body!r}")
    return body


class Notification(NamedTuple):
    process_id: int
    channel: str
    payload: str


def notification(body: bytes) -> Notification:
    r = _Reader(body, lenient=True)
    note = Notification(r.uint32(), r.cstring(), r.cstring())
    r.done()
    return note


def authentication(body: bytes) -> tuple[int, bytes]:
    """An Authentication message's code (0 ok, 3 cleartext, 5 MD5, 10 SASL ...) and rest."""
    r = _Reader(body)
    return r.int32(), body[4:]


def sasl_mechanisms(rest: bytes) -> list[str]:
    r = _Reader(rest, lenient=True)
    names = []
    while True:
        name = r.cstring()
        if not name:
            break
        names.append(name)
    return names


def backend_key_data(body: bytes) -> tuple[int, bytes]:
    r = _Reader(body)
    process_id = r.uint32()
    secret = body[4:]
    if not 4 <= len(secret) <= 256:
        raise ProtocolViolation("a BackendKeyData without its key")
    return process_id, secret


def parameter_status(body: bytes) -> tuple[str, str]:
    r = _Reader(body, lenient=True)
    name, value = r.cstring(), r.cstring()
    r.done()
    return name, value


def copy_response(body: bytes) -> tuple[int, tuple[int, ...]]:
    """A CopyIn/Out/BothResponse: its overall format (0 text, 1 binary), each column's."""
    r = _Reader(body)
    overall = r.byte()[0]
    formats = tuple(r.int16() for _ in range(r.int16()))
    r.done()
    return overall, formats


# -- writers -----------------------------------------------------------------------------


def encode(kind: bytes, body: bytes) -> bytes:
    return kind + _LENGTH.pack(len(body) + 4) + body


def _cstr(text: str, errors: str = "strict") -> bytes:
    """A string in the session's encoding; `errors="replace"` for the front's own texts
    to the client (`?` for what the encoding cannot hold), strict for SQL."""
    raw = encodings.wire().encode(text, errors)
    if b"\x00" in raw:
        raise ValueError("a protocol string cannot hold a NUL")
    return raw + b"\x00"


def encode_query(text: str) -> bytes:
    return encode(b"Q", _cstr(text))


def encode_parse(statement: str, text: str, types: tuple[int, ...] = ()) -> bytes:
    return encode(b"P", _cstr(statement) + _cstr(text) + _INT16.pack(len(types))
                  + b"".join(struct.pack("!I", t) for t in types))


def encode_bind(bind: Bind) -> bytes:
    return encode(b"B", _cstr(bind.portal) + _cstr(bind.statement)
                  + _INT16.pack(len(bind.parameter_formats))
                  + b"".join(_INT16.pack(f) for f in bind.parameter_formats)
                  + _INT16.pack(len(bind.parameters))
                  + b"".join(_INT32.pack(-1) if v is None else _INT32.pack(len(v)) + v
                             for v in bind.parameters)
                  + _INT16.pack(len(bind.result_formats))
                  + b"".join(_INT16.pack(f) for f in bind.result_formats))


def encode_describe(which: bytes, name: str) -> bytes:
    """A Describe of a statement (b"S") or portal (b"P")."""
    return encode(b"D", which + _cstr(name))


def encode_close(which: bytes, name: str) -> bytes:
    """A Close of a statement (b"S") or portal (b"P")."""
    return encode(b"C", which + _cstr(name))


def encode_execute(portal: str, max_rows: int = 0) -> bytes:
    return encode(b"E", _cstr(portal) + _INT32.pack(max_rows))


def encode_password(text: str) -> bytes:
    return encode(b"p", _cstr(text))


def encode_sasl_initial(mechanism: str, data: bytes) -> bytes:
    return encode(b"p", _cstr(mechanism) + _INT32.pack(len(data)) + data)


def encode_sasl_response(data: bytes) -> bytes:
    return encode(b"p", data)


def encode_data_row(values: list[bytes | None]) -> bytes:
    parts = [_INT16.pack(len(values))]
    for v in values:
        parts.append(_INT32.pack(-1) if v is None else _INT32.pack(len(v)) + v)
    return encode(b"D", b"".join(parts))


def encode_fields(kind: bytes, values: dict[str, str]) -> bytes:
    """An ErrorResponse (b"E") or NoticeResponse (b"N") of these fields."""
    return encode(kind, b"".join(
        k.encode("latin-1") + _cstr(v.replace("\x00", ""), "replace")
        for k, v in values.items())
        + b"\x00")


def error(code: str, message: str, *, detail: str | None = None, hint: str | None = None,
          severity: str = "ERROR") -> bytes:
    values = {"S": severity, "V": severity, "C": code, "M": message}
    if detail:
        values["D"] = detail
    if hint:
        values["H"] = hint
    return encode_fields(b"E", values)


def notice(message: str, *, code: str = "01000", detail: str | None = None) -> bytes:
    values = {"S": "NOTICE", "V": "NOTICE", "C": code, "M": message}
    if detail:
        values["D"] = detail
    return encode_fields(b"N", values)


def encode_ready(status: bytes) -> bytes:
    return encode(b"Z", status)


def encode_authentication(code: int, rest: bytes = b"") -> bytes:
    return encode(b"R", _INT32.pack(code) + rest)


def encode_parameter_status(name: str, value: str) -> bytes:
    return encode(b"S", _cstr(name, "replace") + _cstr(value, "replace"))


def encode_backend_key(process_id: int, secret: bytes) -> bytes:
    return encode(b"K", struct.pack("!I", process_id) + secret)


def encode_negotiate_version(minor: int, names: list[str]) -> bytes:
    """NegotiateProtocolVersion: the newest minor version spoken, the options not known."""
    return encode(b"v", _INT32.pack(minor) + _INT32.pack(len(names))
                  + b"".join(_cstr(n) for n in names))


def encode_notification(note: Notification) -> bytes:
    return encode(b"A", struct.pack("!I", note.process_id) + _cstr(note.channel, "replace")
                  + _cstr(note.payload, "replace"))


def encode_command_complete(tag: str) -> bytes:
    return encode(b"C", _cstr(tag, "replace"))
