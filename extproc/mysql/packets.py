"""MySQL's client/server protocol (MariaDB speaks it too): framing, readers and writers.

Every packet is a 3-byte little-endian payload length, a 1-byte sequence id and the
payload. A payload of 2^24 - 1 bytes or more travels as several packets: each full one
(exactly 0xFFFFFF bytes) says "more follows", and the first shorter one (possibly empty)
ends it. TCP reads do not follow packets, so `Framer` keeps what it has not yet framed
and hands out logical payloads whole.

Nothing in a packet says what it is: an OK, a row and a column count all start with a
number, and 0xFE is an EOF, an auth switch or a row's first value by where it comes. The
parsers here read what the caller says a payload is, and raise `ProtocolViolation` for
bytes that are not that (a length past the end, a missing terminator, bytes left over):
the gateway answers such input with an error, never by passing it on unread.

Text fields (names, messages) decode as UTF-8, undecodable bytes kept as surrogate
escapes: the encoders give back the same bytes, and a policy compares names as text.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

MAX_PAYLOAD = 0xFFFFFF  # a packet of this size continues in the next one

# -- capabilities (the handshake's 32 bits; docs: "Capabilities Flags") ---------------------

CLIENT_LONG_PASSWORD = 1 << 0  # MariaDB: CLIENT_MYSQL, cleared by a MariaDB server
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_LONG_FLAG = 1 << 2
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_NO_SCHEMA = 1 << 4
CLIENT_COMPRESS = 1 << 5
CLIENT_ODBC = 1 << 6
CLIENT_LOCAL_FILES = 1 << 7
CLIENT_IGNORE_SPACE = 1 << 8
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_INTERACTIVE = 1 << 10
CLIENT_SSL = 1 << 11
CLIENT_IGNORE_SIGPIPE = 1 << 12
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_RESERVED = 1 << 14
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24
CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25  # MySQL 8
CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26  # MySQL 8
CLIENT_QUERY_ATTRIBUTES = 1 << 27  # MySQL 8
CLIENT_MULTI_FACTOR_AUTHENTICATION = 1 << 28  # MySQL 8
CLIENT_SSL_VERIFY_SERVER_CERT = 1 << 30
CLIENT_REMEMBER_OPTIONS = 1 << 31

# MariaDB's extended capabilities: bits 32-63 of its 64-bit set, carried in the last 4
# bytes of the handshake's and the response's reserved filler when the server clears
# CLIENT_LONG_PASSWORD (CLIENT_MYSQL). They are kept apart, as `mariadb_capabilities`,
# shifted down: MARIADB_CLIENT_PROGRESS is 1 << 32 in MariaDB's own sources. This codec
# reads neither progress reports nor extended or cached metadata: a front must not
# grant those to a client it parses for.
MARIADB_CLIENT_PROGRESS = 1 << 0
MARIADB_CLIENT_COM_MULTI = 1 << 1  # gone since 10.6; the bit stays reserved
MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 2
MARIADB_CLIENT_EXTENDED_METADATA = 1 << 3
MARIADB_CLIENT_CACHE_METADATA = 1 << 4

# -- server status (OK and EOF packets) -----------------------------------------------------

SERVER_STATUS_IN_TRANS = 1 << 0
SERVER_STATUS_AUTOCOMMIT = 1 << 1
SERVER_MORE_RESULTS_EXISTS = 1 << 3
SERVER_QUERY_NO_GOOD_INDEX_USED = 1 << 4
SERVER_QUERY_NO_INDEX_USED = 1 << 5
SERVER_STATUS_CURSOR_EXISTS = 1 << 6
SERVER_STATUS_LAST_ROW_SENT = 1 << 7
SERVER_STATUS_DB_DROPPED = 1 << 8
SERVER_STATUS_NO_BACKSLASH_ESCAPES = 1 << 9
SERVER_STATUS_METADATA_CHANGED = 1 << 10
SERVER_QUERY_WAS_SLOW = 1 << 11
SERVER_PS_OUT_PARAMS = 1 << 12
SERVER_STATUS_IN_TRANS_READONLY = 1 << 13
SERVER_SESSION_STATE_CHANGED = 1 << 14

# -- commands (a command packet's first byte) -----------------------------------------------

COM_SLEEP = 0x00
COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_FIELD_LIST = 0x04
COM_CREATE_DB = 0x05
COM_DROP_DB = 0x06
COM_REFRESH = 0x07
COM_SHUTDOWN = 0x08
COM_STATISTICS = 0x09
COM_PROCESS_INFO = 0x0A
COM_CONNECT = 0x0B
COM_PROCESS_KILL = 0x0C
COM_DEBUG = 0x0D
COM_PING = 0x0E
COM_TIME = 0x0F
COM_DELAYED_INSERT = 0x10
COM_CHANGE_USER = 0x11
COM_BINLOG_DUMP = 0x12
COM_TABLE_DUMP = 0x13
COM_CONNECT_OUT = 0x14
COM_REGISTER_SLAVE = 0x15
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_SET_OPTION = 0x1B
COM_STMT_FETCH = 0x1C
COM_DAEMON = 0x1D
COM_BINLOG_DUMP_GTID = 0x1E
COM_RESET_CONNECTION = 0x1F
COM_STMT_BULK_EXECUTE = 0xFA  # MariaDB

# -- column types (ColumnDefinition's `type`; docs: "enum_field_types") ---------------------

MYSQL_TYPE_DECIMAL = 0
MYSQL_TYPE_TINY = 1
MYSQL_TYPE_SHORT = 2
MYSQL_TYPE_LONG = 3
MYSQL_TYPE_FLOAT = 4
MYSQL_TYPE_DOUBLE = 5
MYSQL_TYPE_NULL = 6
MYSQL_TYPE_TIMESTAMP = 7
MYSQL_TYPE_LONGLONG = 8
MYSQL_TYPE_INT24 = 9
MYSQL_TYPE_DATE = 10
MYSQL_TYPE_TIME = 11
MYSQL_TYPE_DATETIME = 12
MYSQL_TYPE_YEAR = 13
MYSQL_TYPE_NEWDATE = 14
MYSQL_TYPE_VARCHAR = 15
MYSQL_TYPE_BIT = 16
MYSQL_TYPE_JSON = 245
MYSQL_TYPE_NEWDECIMAL = 246
MYSQL_TYPE_ENUM = 247
MYSQL_TYPE_SET = 248
MYSQL_TYPE_TINY_BLOB = 249
MYSQL_TYPE_MEDIUM_BLOB = 250
MYSQL_TYPE_LONG_BLOB = 251
MYSQL_TYPE_BLOB = 252
MYSQL_TYPE_VAR_STRING = 253
MYSQL_TYPE_STRING = 254
MYSQL_TYPE_GEOMETRY = 255

# The string-like types: CHAR, VARCHAR, TEXT and the BLOBs, JSON, ENUM, SET, whose values
# are strings in either protocol (a text may stand in for one).
STRING_TYPES = frozenset({
    MYSQL_TYPE_VARCHAR, MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_STRING, MYSQL_TYPE_TINY_BLOB,
    MYSQL_TYPE_MEDIUM_BLOB, MYSQL_TYPE_LONG_BLOB, MYSQL_TYPE_BLOB, MYSQL_TYPE_JSON,
    MYSQL_TYPE_ENUM, MYSQL_TYPE_SET})
# The types whose binary-protocol value is a length-encoded string: the string-like ones,
# and decimals (as their digits), BITs and geometries (as their bytes), which are not text.
LENGTH_ENCODED_TYPES = STRING_TYPES | {
    MYSQL_TYPE_DECIMAL, MYSQL_TYPE_NEWDECIMAL, MYSQL_TYPE_BIT, MYSQL_TYPE_GEOMETRY}
# Fixed-size binary values: integers, floats (IEEE 754), NULL (no bytes at all).
_FIXED_SIZES = {
    MYSQL_TYPE_TINY: 1, MYSQL_TYPE_SHORT: 2, MYSQL_TYPE_YEAR: 2, MYSQL_TYPE_INT24: 4,
    MYSQL_TYPE_LONG: 4, MYSQL_TYPE_LONGLONG: 8, MYSQL_TYPE_FLOAT: 4, MYSQL_TYPE_DOUBLE: 8,
    MYSQL_TYPE_NULL: 0}
# Temporal binary values: a length byte, then that many bytes (what is zero is left off:
# a date without a time is 4 bytes, a time without microseconds 8).
_DATE_LENGTHS = frozenset({0, 4, 7, 11})
_TEMPORAL_LENGTHS = {
    MYSQL_TYPE_DATE: _DATE_LENGTHS, MYSQL_TYPE_NEWDATE: _DATE_LENGTHS,
    MYSQL_TYPE_DATETIME: _DATE_LENGTHS, MYSQL_TYPE_TIMESTAMP: _DATE_LENGTHS,
    MYSQL_TYPE_TIME: frozenset({0, 8, 12})}

# -- column flags (ColumnDefinition's `flags`) ----------------------------------------------

NOT_NULL_FLAG = 1 << 0
PRI_KEY_FLAG = 1 << 1
UNIQUE_KEY_FLAG = 1 << 2
MULTIPLE_KEY_FLAG = 1 << 3
BLOB_FLAG = 1 << 4
UNSIGNED_FLAG = 1 << 5
ZEROFILL_FLAG = 1 << 6
BINARY_FLAG = 1 << 7
ENUM_FLAG = 1 << 8
AUTO_INCREMENT_FLAG = 1 << 9
TIMESTAMP_FLAG = 1 << 10
SET_FLAG = 1 << 11
NUM_FLAG = 1 << 15

# -- a response's first byte ----------------------------------------------------------------

OK_HEADER = 0x00
AUTH_MORE_DATA_HEADER = 0x01
LOCAL_INFILE_HEADER = 0xFB  # the server asks the client for one of its files
EOF_HEADER = 0xFE  # also an AuthSwitchRequest's, by where it comes
ERR_HEADER = 0xFF

CHARSET_UTF8MB4_GENERAL_CI = 45
CHARSET_BINARY = 63

_INT2 = struct.Struct("<H")
_INT4 = struct.Struct("<I")
_INT8 = struct.Struct("<Q")
_WORDS = struct.Struct("<HH")  # (status, warnings) or (warnings, status)
_LOGIN = struct.Struct("<IIB")  # capabilities, max packet, charset
_COLUMN_FIXED = struct.Struct("<HIBHBxx")  # charset, length, type, flags, decimals
_PREPARE_OK = struct.Struct("<BIHHxH")
_RESPONSE_FILLER = 19  # then 4 bytes of MariaDB's capabilities: 23 reserved in MySQL's


def _names(prefix: str) -> dict[int, str]:
    return {value: name for name, value in globals().items()
            if name.startswith(prefix) and isinstance(value, int)}


COMMAND_NAMES = _names("COM_")
TYPE_NAMES = _names("MYSQL_TYPE_")


def command_name(command: int) -> str:
    """A command byte's name, for records and errors (`COM_0x42` for an unknown one)."""
    return COMMAND_NAMES.get(command, f"COM_0x{command:02x}")


def type_name(column_type: int) -> str:
    return TYPE_NAMES.get(column_type, f"MYSQL_TYPE_{column_type}")


class ProtocolViolation(Exception):
    """Bytes that are not MySQL's protocol: the connection cannot go on. `reply_seq`: the
    sequence id an answer to the offending packet takes, where the framer read its header
    (the sender can then be told why, before the end)."""

    def __init__(self, message: str, reply_seq: int | None = None) -> None:
        super().__init__(message)
        self.reply_seq = reply_seq


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _cstr(text: str | bytes) -> bytes:
    raw = _raw(text) if isinstance(text, str) else text
    if b"\x00" in raw:
        raise ValueError("a NUL-terminated string cannot hold a NUL")
    return raw + b"\x00"


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


def encode(seq: int, payload: bytes) -> bytes:
    """`payload` framed, split at 0xFFFFFF bytes; one that is an exact multiple of that
    ends with an empty packet, so the reader knows it ended."""
    parts = []
    for i in range(len(payload) // MAX_PAYLOAD + 1):
        chunk = payload[i * MAX_PAYLOAD:(i + 1) * MAX_PAYLOAD]
        parts.append(_INT4.pack(len(chunk) | ((seq + i) & 0xFF) << 24) + chunk)
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
            (header,) = _INT4.unpack_from(buffer, pos)
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
        return self._unpack(_INT2)

    def int3(self) -> int:
        return int.from_bytes(self.fixed(3), "little")

    def int4(self) -> int:
        return self._unpack(_INT4)

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
        return b"\xfc" + _INT2.pack(n)
    if n < 1 << 24:
        return b"\xfd" + _INT4.pack(n)[:3]
    if n < 1 << 64:
        return b"\xfe" + _INT8.pack(n)
    raise ValueError(f"a length-encoded integer of {n}, past 64 bits")


def lenenc_str(value: bytes) -> bytes:
    return lenenc_int(len(value)) + value


def _nullable_str(value: bytes | None) -> bytes:
    return b"\xfb" if value is None else lenenc_str(value)


def _header(r: Reader, expected: int, what: str) -> None:
    header = r.int1()
    if header != expected:
        raise ProtocolViolation(f"{what} starting with 0x{header:02x}, not 0x{expected:02x}")


# -- the handshake ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Handshake:
    """The server's Initial Handshake (protocol version 10).

    `scramble`: the auth plugin's data, both parts, without the NUL that ends the second
    (20 bytes from MySQL and MariaDB; 8 from a server without CLIENT_SECURE_CONNECTION).
    `mariadb_capabilities`: the 4 reserved bytes before the second part, MariaDB's
    extended capabilities (zero from MySQL).
    """

    server_version: str
    connection_id: int
    scramble: bytes
    capabilities: int
    charset: int
    status: int
    auth_plugin: str = ""
    mariadb_capabilities: int = 0
    protocol_version: int = 10


def parse_handshake(payload: bytes) -> Handshake:
    """The server's first packet (an ERR instead, when it refuses the connection: check
    `is_err` first). A pre-4.1 server, whose greeting stops early, is refused."""
    r = Reader(payload)
    version = r.int1()
    if version != 10:
        raise ProtocolViolation(f"a handshake of protocol version {version}, not 10")
    server_version = _text(r.cstring())
    connection_id = r.int4()
    scramble = r.fixed(8)
    r.int1()  # filler
    capabilities = r.int2()
    charset, status = r.int1(), r.int2()
    capabilities |= r.int2() << 16
    data_length = r.int1()
    r.fixed(6)
    mariadb_capabilities = r.int4()
    if capabilities & CLIENT_SECURE_CONNECTION:
        part2 = r.fixed(max(13, data_length - 8))
        scramble += part2[:-1] if part2.endswith(b"\x00") else part2
    auth_plugin = ""
    if capabilities & CLIENT_PLUGIN_AUTH:
        # MySQL 5.5.7-5.5.9 left off the name's terminator.
        raw = r.cstring() if b"\x00" in payload[r.pos:] else r.rest()
        auth_plugin = _text(raw)
    r.done()
    return Handshake(server_version, connection_id, scramble, capabilities, charset,
                     status, auth_plugin, mariadb_capabilities, version)


def encode_handshake(h: Handshake) -> bytes:
    caps = h.capabilities
    secure = bool(caps & CLIENT_SECURE_CONNECTION)
    if len(h.scramble) < 8 or (secure and len(h.scramble) < 20) or (
            not secure and len(h.scramble) != 8):
        raise ValueError(f"a scramble of {len(h.scramble)} bytes")
    out = [bytes((h.protocol_version,)), _cstr(h.server_version),
           _INT4.pack(h.connection_id), h.scramble[:8], b"\x00", _INT2.pack(caps & 0xFFFF),
           bytes((h.charset,)), _INT2.pack(h.status), _INT2.pack(caps >> 16 & 0xFFFF),
           bytes((len(h.scramble) + 1 if caps & CLIENT_PLUGIN_AUTH else 0,)), bytes(6),
           _INT4.pack(h.mariadb_capabilities)]
    if secure:
        out.append(h.scramble[8:] + b"\x00")
    if caps & CLIENT_PLUGIN_AUTH:
        out.append(_cstr(h.auth_plugin))
    return b"".join(out)


class SslRequest(NamedTuple):
    """The client's SSLRequest: a handshake response cut after its fixed part, asking
    for TLS before the rest (the credentials) is sent."""

    capabilities: int
    max_packet: int
    charset: int
    mariadb_capabilities: int = 0


def is_ssl_request(payload: bytes) -> bool:
    """Whether the client's answer to the handshake is an SSLRequest (exactly 32 bytes,
    CLIENT_SSL set) rather than a full response (at least 33: a username's NUL)."""
    return len(payload) == 32 and bool(_INT4.unpack_from(payload)[0] & CLIENT_SSL)


def parse_ssl_request(payload: bytes) -> SslRequest:
    if not is_ssl_request(payload):
        raise ProtocolViolation("not an SSLRequest (32 bytes, CLIENT_SSL set)")
    capabilities, max_packet, charset = _LOGIN.unpack_from(payload)
    (mariadb,) = _INT4.unpack_from(payload, 28)
    return SslRequest(capabilities, max_packet, charset, mariadb)


def _login_head(capabilities: int, max_packet: int, charset: int, mariadb: int) -> bytes:
    return (_LOGIN.pack(capabilities, max_packet, charset) + bytes(_RESPONSE_FILLER)
            + _INT4.pack(mariadb))


def encode_ssl_request(request: SslRequest) -> bytes:
    if not request.capabilities & CLIENT_SSL:
        raise ValueError("an SSLRequest without CLIENT_SSL")
    return _login_head(request.capabilities, request.max_packet, request.charset,
                       request.mariadb_capabilities)


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    """The client's HandshakeResponse41: who logs in, with what, to which database.

    The optional fields are on the wire when `capabilities` says: `database` with
    CLIENT_CONNECT_WITH_DB, `auth_plugin` with CLIENT_PLUGIN_AUTH, `connect_attrs` with
    CLIENT_CONNECT_ATTRS, `zstd_level` with CLIENT_ZSTD_COMPRESSION_ALGORITHM.
    """

    capabilities: int
    max_packet: int
    charset: int
    username: str
    auth_response: bytes = b""
    database: str = ""
    auth_plugin: str = ""
    connect_attrs: dict[str, str] = field(default_factory=dict)
    mariadb_capabilities: int = 0
    zstd_level: int = 0


def parse_handshake_response(payload: bytes) -> HandshakeResponse:
    """The client's login. Trailing optional fields the client's capabilities announce
    but it left off read as empty, as MySQL's server reads them."""
    if is_ssl_request(payload):
        raise ProtocolViolation("an SSLRequest where the handshake response belongs")
    r = Reader(payload)
    capabilities = r.int4()
    if not capabilities & CLIENT_PROTOCOL_41:
        raise ProtocolViolation("a pre-4.1 handshake response (HandshakeResponse320)")
    max_packet, charset = r.int4(), r.int1()
    r.fixed(_RESPONSE_FILLER)
    mariadb = r.int4()
    username = _text(r.cstring())
    if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth_response = r.lenenc_str()
    elif capabilities & CLIENT_SECURE_CONNECTION:
        auth_response = r.fixed(r.int1())
    else:
        auth_response = r.cstring()
    database = auth_plugin = ""
    attrs: dict[str, str] = {}
    zstd_level = 0
    if capabilities & CLIENT_CONNECT_WITH_DB and r.remaining:
        database = _text(r.cstring())
    if capabilities & CLIENT_PLUGIN_AUTH and r.remaining:
        auth_plugin = _text(r.cstring())
    if capabilities & CLIENT_CONNECT_ATTRS and r.remaining:
        attrs = _parse_attrs(r.lenenc_str())
    if capabilities & CLIENT_ZSTD_COMPRESSION_ALGORITHM and r.remaining:
        zstd_level = r.int1()
    r.done()
    return HandshakeResponse(capabilities, max_packet, charset, username, auth_response,
                             database, auth_plugin, attrs, mariadb, zstd_level)


def _parse_attrs(raw: bytes) -> dict[str, str]:
    r = Reader(raw)
    attrs: dict[str, str] = {}
    while r.remaining:
        key = _text(r.lenenc_str())
        if key in attrs:
            raise ProtocolViolation(f"connection attribute {key!r} given twice")
        attrs[key] = _text(r.lenenc_str())
    return attrs


def encode_handshake_response(response: HandshakeResponse) -> bytes:
    caps = response.capabilities
    if not caps & CLIENT_PROTOCOL_41:
        raise ValueError("this codec writes HandshakeResponse41 only (CLIENT_PROTOCOL_41)")
    auth = response.auth_response
    out = [_login_head(caps, response.max_packet, response.charset,
                       response.mariadb_capabilities), _cstr(response.username)]
    if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        out.append(lenenc_str(auth))
    elif caps & CLIENT_SECURE_CONNECTION:
        if len(auth) > 0xFF:
            raise ValueError(f"an auth response of {len(auth)} bytes needs "
                             "CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA")
        out.append(bytes((len(auth),)) + auth)
    else:
        out.append(_cstr(auth))
    if caps & CLIENT_CONNECT_WITH_DB:
        out.append(_cstr(response.database))
    if caps & CLIENT_PLUGIN_AUTH:
        out.append(_cstr(response.auth_plugin))
    if caps & CLIENT_CONNECT_ATTRS:
        out.append(lenenc_str(b"".join(lenenc_str(_raw(k)) + lenenc_str(_raw(v))
                                       for k, v in response.connect_attrs.items())))
    if caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM:
        out.append(bytes((response.zstd_level,)))
    return b"".join(out)


# -- the auth exchange ------------------------------------------------------------------------


class AuthSwitchRequest(NamedTuple):
    """The server asks for another auth plugin, with that plugin's data (a new
    scramble, which mysql_native_password ends with a NUL)."""

    plugin: str
    data: bytes

    @property
    def scramble(self) -> bytes:
        """`data` without its terminating NUL, as the plugins hash it."""
        return self.data[:-1] if self.data.endswith(b"\x00") else self.data


def parse_auth_switch(payload: bytes) -> AuthSwitchRequest:
    """An AuthSwitchRequest; a lone 0xFE is the pre-4.1 one, to mysql_old_password."""
    r = Reader(payload)
    _header(r, EOF_HEADER, "an AuthSwitchRequest")
    if not r.remaining:
        return AuthSwitchRequest("mysql_old_password", b"")
    return AuthSwitchRequest(_text(r.cstring()), r.rest())


def encode_auth_switch(request: AuthSwitchRequest) -> bytes:
    return bytes((EOF_HEADER,)) + _cstr(request.plugin) + request.data


def parse_auth_more_data(payload: bytes) -> bytes:
    """An AuthMoreData's data (caching_sha2_password's state byte, a public key)."""
    r = Reader(payload)
    _header(r, AUTH_MORE_DATA_HEADER, "an AuthMoreData")
    return r.rest()


def encode_auth_more_data(data: bytes) -> bytes:
    return bytes((AUTH_MORE_DATA_HEADER,)) + data


# -- commands with arguments ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeUser:
    """COM_CHANGE_USER: the session goes on as another user, authenticated anew.

    Laid out as the handshake response's tail: the auth response (1-byte length with
    CLIENT_SECURE_CONNECTION), the database, then, when the client sends more, its
    character set, its auth plugin (CLIENT_PLUGIN_AUTH) and attributes
    (CLIENT_CONNECT_ATTRS), by the capabilities the login agreed.
    """

    username: str
    auth_response: bytes = b""
    database: str = ""
    charset: int = 0
    auth_plugin: str = ""
    connect_attrs: dict[str, str] = field(default_factory=dict)


def parse_change_user(payload: bytes, capabilities: int) -> ChangeUser:
    """A COM_CHANGE_USER as servers read it, its auth response's length one byte (with
    CLIENT_SECURE_CONNECTION). mysql-connector-python (pure Python) writes that length
    length-encoded, which differs past 250 bytes (a token as mysql_clear_password's
    answer): a request the one-byte reading cannot take is read so, if that takes it."""
    try:
        return _parse_change_user(payload, capabilities, False)
    except ProtocolViolation as exc:
        if not capabilities & CLIENT_SECURE_CONNECTION:
            raise
        try:
            return _parse_change_user(payload, capabilities, True)
        except ProtocolViolation:
            raise exc from None


def _parse_change_user(payload: bytes, capabilities: int, lenenc: bool) -> ChangeUser:
    r = Reader(payload)
    _header(r, COM_CHANGE_USER, "a COM_CHANGE_USER")
    username = _text(r.cstring())
    secure = capabilities & CLIENT_SECURE_CONNECTION
    auth_response = (r.fixed(r.lenenc_int() if lenenc else r.int1()) if secure
                     else r.cstring())
    database = _text(r.cstring())
    charset, auth_plugin, attrs = 0, "", {}
    if r.remaining:
        charset = r.int2()
    if capabilities & CLIENT_PLUGIN_AUTH and r.remaining:
        auth_plugin = _text(r.cstring())
    if capabilities & CLIENT_CONNECT_ATTRS and r.remaining:
        attrs = _parse_attrs(r.lenenc_str())
    r.done()
    return ChangeUser(username, auth_response, database, charset, auth_plugin, attrs)


def encode_change_user(request: ChangeUser, capabilities: int) -> bytes:
    auth = request.auth_response
    out = [bytes((COM_CHANGE_USER,)), _cstr(request.username)]
    if capabilities & CLIENT_SECURE_CONNECTION:
        if len(auth) > 0xFF:
            raise ValueError(f"an auth response of {len(auth)} bytes in a COM_CHANGE_USER")
        out.append(bytes((len(auth),)) + auth)
    else:
        out.append(_cstr(auth))
    out += [_cstr(request.database), _INT2.pack(request.charset)]
    if capabilities & CLIENT_PLUGIN_AUTH:
        out.append(_cstr(request.auth_plugin))
    if capabilities & CLIENT_CONNECT_ATTRS:
        out.append(lenenc_str(b"".join(lenenc_str(_raw(k)) + lenenc_str(_raw(v))
                                       for k, v in request.connect_attrs.items())))
    return b"".join(out)


class FieldList(NamedTuple):
    """COM_FIELD_LIST (deprecated; the mariadb client's auto-rehash sends it): the
    columns of a table of the current database whose names match a LIKE `wildcard`
    (empty: all). Either is None when its bytes are not UTF-8."""

    table: str | None
    wildcard: str | None


def parse_field_list(payload: bytes) -> FieldList:
    """The table, NUL-terminated, then the wildcard to the end. A table without its NUL
    is refused: MariaDB reads on past the packet's end for one."""
    r = Reader(payload)
    _header(r, COM_FIELD_LIST, "a COM_FIELD_LIST")
    table, wildcard = r.cstring(), r.rest()
    return FieldList(_utf8(table), _utf8(wildcard))


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def encode_field_list(table: str, wildcard: str = "") -> bytes:
    return bytes((COM_FIELD_LIST,)) + _cstr(table) + _raw(wildcard)


def parse_process_kill(payload: bytes) -> int:
    """COM_PROCESS_KILL's connection id (the command form of KILL CONNECTION)."""
    r = Reader(payload)
    _header(r, COM_PROCESS_KILL, "a COM_PROCESS_KILL")
    connection_id = r.int4()
    r.done()
    return connection_id


# -- OK, ERR, EOF -----------------------------------------------------------------------------


class Ok(NamedTuple):
    """An OK packet. `session_state`: the raw session-tracking entries (with
    CLIENT_SESSION_TRACK, when `status` has SERVER_SESSION_STATE_CHANGED)."""

    affected_rows: int = 0
    last_insert_id: int = 0
    status: int = 0
    warnings: int = 0
    info: str = ""
    session_state: bytes = b""


class Err(NamedTuple):
    """An ERR packet. A pre-4.1 one carries no SQLSTATE: it reads as HY000 ("general
    error"), as the client libraries read it. MariaDB's progress reports (code 0xFFFF)
    come only to clients that ask (MARIADB_CLIENT_PROGRESS)."""

    code: int
    sqlstate: str
    message: str


class Eof(NamedTuple):
    warnings: int = 0
    status: int = 0


def is_err(payload: bytes) -> bool:
    return payload[:1] == b"\xff"


def is_eof(payload: bytes) -> bool:
    """An EOF packet: 0xFE and under 9 bytes (a row starting with 0xFE, an 8-byte length,
    is longer)."""
    return payload[:1] == b"\xfe" and len(payload) < 9


def is_ok(payload: bytes, capabilities: int) -> bool:
    """An OK where one may come: 0x00, or, with CLIENT_DEPRECATE_EOF, 0xFE and at least 7
    bytes (the OK that replaces a result set's closing EOF)."""
    return payload[:1] == b"\x00" or (
        payload[:1] == b"\xfe" and bool(capabilities & CLIENT_DEPRECATE_EOF)
        and 7 <= len(payload) < MAX_PAYLOAD)


def ends_rows(payload: bytes, capabilities: int) -> bool:
    """Whether a packet where a row may come ends the rows instead: an ERR, an EOF, or
    with CLIENT_DEPRECATE_EOF an OK-as-EOF (any 0xFE shorter than a split packet: a row
    whose first value's length takes 0xFE is 16 MiB or more)."""
    if payload[:1] == b"\xff":
        return True
    if payload[:1] != b"\xfe":
        return False
    return len(payload) < (MAX_PAYLOAD if capabilities & CLIENT_DEPRECATE_EOF else 9)


def parse_ok(payload: bytes, capabilities: int) -> Ok:
    r = Reader(payload)
    header = r.int1()
    if header != OK_HEADER and not (header == EOF_HEADER and is_ok(payload, capabilities)):
        raise ProtocolViolation(f"an OK packet starting with 0x{header:02x}")
    affected_rows, last_insert_id = r.lenenc_int(), r.lenenc_int()
    status = warnings = 0
    if capabilities & CLIENT_PROTOCOL_41:
        status, warnings = r.int2(), r.int2()
    elif capabilities & CLIENT_TRANSACTIONS:
        status = r.int2()
    session_state = b""
    if capabilities & CLIENT_SESSION_TRACK:
        info = r.lenenc_str() if r.remaining else b""
        if status & SERVER_SESSION_STATE_CHANGED:
            session_state = r.lenenc_str()
    else:
        info = r.rest()
    r.done()
    return Ok(affected_rows, last_insert_id, status, warnings, _text(info), session_state)


def without_status(payload: bytes, capabilities: int, bits: int) -> bytes:
    """An OK or EOF packet's payload with the status `bits` cleared: the front's own
    transaction, around a write it measures, hidden from a client that opened none."""
    if is_ok(payload, capabilities) and capabilities & CLIENT_PROTOCOL_41:
        r = Reader(payload, 1)
        r.lenenc_int()
        r.lenenc_int()
        at = r.pos
    elif is_eof(payload) and len(payload) == 5:
        at = 3
    else:
        return payload
    status = int.from_bytes(payload[at:at + 2], "little") & ~bits
    return payload[:at] + status.to_bytes(2, "little") + payload[at + 2:]


def encode_ok(affected_rows: int = 0, last_insert_id: int = 0, status: int = 0,
              warnings: int = 0, info: str = "", *,
              capabilities: int = CLIENT_PROTOCOL_41, session_state: bytes = b"",
              eof: bool = False) -> bytes:
    """An OK packet as a client of these capabilities reads it; `eof`: the 0xFE one that
    closes a result set under CLIENT_DEPRECATE_EOF."""
    if eof and not capabilities & CLIENT_DEPRECATE_EOF:
        raise ValueError("an OK in an EOF's place without CLIENT_DEPRECATE_EOF")
    out = [bytes((EOF_HEADER if eof else OK_HEADER,)), lenenc_int(affected_rows),
           lenenc_int(last_insert_id)]
    if capabilities & CLIENT_PROTOCOL_41:
        out.append(_WORDS.pack(status, warnings))
    elif capabilities & CLIENT_TRANSACTIONS:
        out.append(_INT2.pack(status))
    if capabilities & CLIENT_SESSION_TRACK:
        changed = bool(status & SERVER_SESSION_STATE_CHANGED)
        if info or changed:  # else left off, as MariaDB leaves it (clients read it optional)
            out.append(lenenc_str(_raw(info)))
        if changed:
            out.append(lenenc_str(session_state))
        elif session_state:
            raise ValueError("session state without SERVER_SESSION_STATE_CHANGED")
    elif session_state:
        raise ValueError("session state without CLIENT_SESSION_TRACK")
    else:
        out.append(_raw(info))
    return b"".join(out)


def parse_err(payload: bytes) -> Err:
    r = Reader(payload)
    _header(r, ERR_HEADER, "an ERR packet")
    code = r.int2()
    sqlstate = "HY000"
    if payload[r.pos:r.pos + 1] == b"#":
        r.pos += 1
        sqlstate = r.fixed(5).decode("latin-1")
    return Err(code, sqlstate, _text(r.rest()))


def encode_err(code: int, sqlstate: str, message: str) -> bytes:
    if len(sqlstate) != 5 or not sqlstate.isascii():
        raise ValueError(f"an SQLSTATE of {sqlstate!r}: five ASCII characters")
    return (bytes((ERR_HEADER,)) + _INT2.pack(code) + b"#" + sqlstate.encode("ascii")
            + _raw(message))


def parse_eof(payload: bytes) -> Eof:
    if not is_eof(payload):
        raise ProtocolViolation("not an EOF packet (0xFE, under 9 bytes)")
    if len(payload) == 1:  # pre-4.1
        return Eof()
    r = Reader(payload, 1)
    eof = Eof(r.int2(), r.int2())
    r.done()
    return eof


def encode_eof(warnings: int = 0, status: int = 0) -> bytes:
    return bytes((EOF_HEADER,)) + _WORDS.pack(warnings, status)


# -- result sets ------------------------------------------------------------------------------


class ColumnDefinition(NamedTuple):
    """A result set's (or a prepared statement's parameter's) ColumnDefinition41:
    `table` and `name` as the statement aliased them, `org_table` and `org_name` as
    the schema has them; `length` the column's display width, `decimals` its scale."""

    catalog: str = "def"
    schema: str = ""
    table: str = ""
    org_table: str = ""
    name: str = ""
    org_name: str = ""
    charset: int = CHARSET_BINARY
    length: int = 0
    type: int = MYSQL_TYPE_VAR_STRING
    flags: int = 0
    decimals: int = 0


def parse_column_definition(payload: bytes, field_list: bool = False) -> ColumnDefinition:
    """A column definition as a client without MariaDB's extended metadata reads it;
    `field_list`: one answering COM_FIELD_LIST, whose default value, when the column
    has one, follows (read past, not kept)."""
    r = Reader(payload)
    catalog, schema, table, org_table, name, org_name = (
        _text(r.lenenc_str()) for _ in range(6))
    fixed = r.lenenc_int()
    if fixed != _COLUMN_FIXED.size:
        raise ProtocolViolation(f"a column definition's fixed part of {fixed} bytes, not 12")
    charset, length, column_type, flags, decimals = _COLUMN_FIXED.unpack(r.fixed(fixed))
    if field_list and r.remaining:
        r.nullable_str()
    r.done()
    return ColumnDefinition(catalog, schema, table, org_table, name, org_name, charset,
                            length, column_type, flags, decimals)


def encode_column_definition(column: ColumnDefinition) -> bytes:
    return b"".join([*(lenenc_str(_raw(text)) for text in column[:6]),
                     lenenc_int(_COLUMN_FIXED.size),
                     _COLUMN_FIXED.pack(column.charset, column.length, column.type,
                                        column.flags, column.decimals)])


def parse_text_row(payload: bytes, count: int) -> list[bytes | None]:
    """A text-protocol row of `count` values (None for SQL NULL)."""
    r = Reader(payload)
    values = [r.nullable_str() for _ in range(count)]
    r.done()
    return values


def encode_text_row(values: Iterable[bytes | None]) -> bytes:
    return b"".join(_nullable_str(v) for v in values)


def _bitmap_size(count: int) -> int:
    return (count + 7 + 2) // 8  # a result row's NULL bitmap starts at bit 2


def parse_binary_row(payload: bytes, columns: Sequence[ColumnDefinition]) -> list[bytes | None]:
    """A binary-protocol row (COM_STMT_EXECUTE's): each value's bytes as its column's type
    lays them out, without the length that frames them. Integers, floats and doubles
    are little-endian fixed-size; a DATE, DATETIME or TIMESTAMP is 0, 4, 7 or 11 bytes
    (year int2, month, day, hour, minute, second, microseconds int4), a TIME 0, 8 or 12
    (sign, days int4, hour, minute, second, microseconds int4); the rest are strings
    (decimals as their digits). None for SQL NULL."""
    r = Reader(payload)
    _header(r, OK_HEADER, "a binary row")
    bitmap = r.fixed(_bitmap_size(len(columns)))
    values: list[bytes | None] = []
    for i, column in enumerate(columns):
        bit = i + 2
        if bitmap[bit >> 3] >> (bit & 7) & 1:
            values.append(None)
            continue
        values.append(_read_binary_value(r, column.type))
    r.done()
    return values


def _read_binary_value(r: Reader, column_type: int) -> bytes:
    size = _FIXED_SIZES.get(column_type)
    if size is not None:
        return r.fixed(size)
    lengths = _TEMPORAL_LENGTHS.get(column_type)
    if lengths is not None:
        length = r.int1()
        if length not in lengths:
            raise ProtocolViolation(f"a {type_name(column_type)} value of {length} bytes")
        return r.fixed(length)
    if column_type in LENGTH_ENCODED_TYPES:
        return r.lenenc_str()
    raise ProtocolViolation(f"a column of type {type_name(column_type)}, which the binary "
                            "protocol does not carry")


def encode_binary_value(column_type: int, value: bytes) -> bytes:
    """One value as a binary row (or a COM_STMT_EXECUTE's parameters) carries it."""
    size = _FIXED_SIZES.get(column_type)
    if size is not None:
        if len(value) != size:
            raise ValueError(f"a {type_name(column_type)} value of {len(value)} bytes, "
                             f"not {size}")
        return value
    lengths = _TEMPORAL_LENGTHS.get(column_type)
    if lengths is not None:
        if len(value) not in lengths:
            raise ValueError(f"a {type_name(column_type)} value of {len(value)} bytes")
        return bytes((len(value),)) + value
    if column_type in LENGTH_ENCODED_TYPES:
        return lenenc_str(value)
    raise ValueError(f"no binary encoding for {type_name(column_type)}")


def encode_binary_row(values: Sequence[bytes | None],
                      columns: Sequence[ColumnDefinition]) -> bytes:
    if len(values) != len(columns):
        raise ValueError(f"{len(values)} values for {len(columns)} columns")
    bitmap = bytearray(_bitmap_size(len(columns)))
    parts = []
    for i, (value, column) in enumerate(zip(values, columns, strict=True)):
        if value is None:
            bitmap[(i + 2) >> 3] |= 1 << ((i + 2) & 7)
        else:
            parts.append(encode_binary_value(column.type, value))
    return bytes((OK_HEADER,)) + bytes(bitmap) + b"".join(parts)


# -- prepared statements ----------------------------------------------------------------------


class PrepareOk(NamedTuple):
    """COM_STMT_PREPARE's answer; the parameters' and the columns' definitions follow."""

    statement_id: int
    num_columns: int
    num_params: int
    warnings: int = 0


def parse_prepare_ok(payload: bytes) -> PrepareOk:
    r = Reader(payload)
    _header(r, OK_HEADER, "a COM_STMT_PREPARE_OK")
    statement_id, num_columns, num_params = r.int4(), r.int2(), r.int2()
    r.int1()  # filler
    warnings = r.int2() if r.remaining else 0
    r.done()
    return PrepareOk(statement_id, num_columns, num_params, warnings)


def encode_prepare_ok(ok: PrepareOk) -> bytes:
    return _PREPARE_OK.pack(OK_HEADER, ok.statement_id, ok.num_columns, ok.num_params,
                            ok.warnings)


# The statement id MariaDB reads as "the statement prepared last on this connection" (its
# Connector/C sends a COM_STMT_EXECUTE naming it right behind the COM_STMT_PREPARE).
LAST_STATEMENT_ID = 0xFFFFFFFF
# COM_STMT_EXECUTE's flags: the cursor types (MySQL 8 adds a parameter count, 1 << 3, with
# CLIENT_QUERY_ATTRIBUTES only, which no front here offers).
CURSOR_TYPE_READ_ONLY = 1 << 0
CURSOR_TYPE_FOR_UPDATE = 1 << 1
CURSOR_TYPE_SCROLLABLE = 1 << 2
_PARAMETER_UNSIGNED = 0x8000  # a bound parameter type's flag, in its 2 bytes


def statement_id(payload: bytes) -> int:
    """The statement id a COM_STMT_* command names (EXECUTE, SEND_LONG_DATA, CLOSE, RESET,
    FETCH, BULK_EXECUTE: its first field)."""
    return Reader(payload, 1).int4()


def encode_statement_command(command: int, statement: int) -> bytes:
    """A command that is a statement id alone (COM_STMT_CLOSE, COM_STMT_RESET)."""
    return bytes((command,)) + _INT4.pack(statement)


def with_statement_id(payload: bytes, statement: int) -> bytes:
    """A COM_STMT_* command naming `statement` instead, its other bytes as they were."""
    statement_id(payload)  # the command has one to replace
    return payload[:1] + _INT4.pack(statement) + payload[5:]


class ParameterType(NamedTuple):
    """A parameter's type as COM_STMT_EXECUTE binds it (a MYSQL_TYPE_* and its sign)."""

    type: int
    unsigned: bool = False


class StmtExecute(NamedTuple):
    """A COM_STMT_EXECUTE. `types`: the parameter types it binds, None when it binds none
    (the previous execute's stand); `values`: each parameter's value as the binary
    protocol lays it out, None for NULL and for a parameter sent as long data (whose
    value is not in the packet)."""

    statement_id: int
    flags: int
    iterations: int
    types: tuple[ParameterType, ...] | None
    values: tuple[bytes | None, ...]


def parse_stmt_execute(payload: bytes, num_params: int,
                       bound: Sequence[ParameterType] | None,
                       long_data: Iterable[int] = ()) -> StmtExecute:
    """A COM_STMT_EXECUTE of a statement of `num_params` parameters, the types `bound`
    by an earlier execute (None: none yet), `long_data` the parameters whose values came
    by COM_STMT_SEND_LONG_DATA since (the server reads no value of theirs here)."""
    r = Reader(payload)
    _header(r, COM_STMT_EXECUTE, "a COM_STMT_EXECUTE")
    statement, flags, iterations = r.int4(), r.int1(), r.int4()
    types: tuple[ParameterType, ...] | None = None
    values: list[bytes | None] = []
    if num_params:
        nulls = r.fixed((num_params + 7) // 8)
        if r.int1():
            codes = [r.int2() for _ in range(num_params)]
            types = tuple(ParameterType(c & 0xFF, bool(c & _PARAMETER_UNSIGNED))
                          for c in codes)
        reading = types if types is not None else bound
        if reading is None or len(reading) != num_params:
            raise ProtocolViolation("a COM_STMT_EXECUTE binds no parameter types, and no "
                                    "earlier one did")
        skipped = frozenset(long_data)
        for i, parameter in enumerate(reading):
            if i in skipped or nulls[i >> 3] >> (i & 7) & 1:
                values.append(None)
            else:
                values.append(_read_binary_value(r, parameter.type))
    r.done()
    return StmtExecute(statement, flags, iterations, types, tuple(values))


def encode_stmt_execute(statement: int, types: Sequence[ParameterType] | None,
                        values: Sequence[bytes | None], flags: int = 0,
                        bound: Sequence[ParameterType] | None = None) -> bytes:
    """A COM_STMT_EXECUTE binding `types` (None: those `bound` before, not sent again)
    to `values` (None: NULL)."""
    out = [bytes((COM_STMT_EXECUTE,)), _INT4.pack(statement), bytes((flags,)), _INT4.pack(1)]
    if values:
        reading = types if types is not None else bound
        if reading is None or len(reading) != len(values):
            raise ValueError(f"{len(values)} values for the parameter types given")
        nulls = bytearray((len(values) + 7) // 8)
        for i, value in enumerate(values):
            if value is None:
                nulls[i >> 3] |= 1 << (i & 7)
        out += [bytes(nulls), b"\x01" + _type_codes(types) if types is not None else b"\x00"]
        out += [encode_binary_value(t.type, v) for t, v in zip(reading, values, strict=True)
                if v is not None]
    return b"".join(out)


class LongData(NamedTuple):
    """A COM_STMT_SEND_LONG_DATA: a piece of one parameter's value."""

    statement_id: int
    parameter: int
    data: bytes


def parse_long_data(payload: bytes) -> LongData:
    r = Reader(payload)
    _header(r, COM_STMT_SEND_LONG_DATA, "a COM_STMT_SEND_LONG_DATA")
    return LongData(r.int4(), r.int2(), r.rest())


def encode_long_data(data: LongData) -> bytes:
    return (bytes((COM_STMT_SEND_LONG_DATA,)) + _INT4.pack(data.statement_id)
            + _INT2.pack(data.parameter) + data.data)


def binary_readable(column_type: int) -> bool:
    """Whether the binary protocol's values of `column_type` can be read here."""
    return (column_type in _FIXED_SIZES or column_type in _TEMPORAL_LENGTHS
            or column_type in LENGTH_ENCODED_TYPES)


_INTEGERS = {MYSQL_TYPE_TINY: "b", MYSQL_TYPE_SHORT: "h", MYSQL_TYPE_YEAR: "h",
             MYSQL_TYPE_INT24: "i", MYSQL_TYPE_LONG: "i", MYSQL_TYPE_LONGLONG: "q"}
_DATES = frozenset({MYSQL_TYPE_DATE, MYSQL_TYPE_NEWDATE})


def binary_text(column_type: int, unsigned: bool, value: bytes) -> bytes:
    """A binary value (as parse_binary_row gives it) as the text protocol writes it: an
    integer's digits, a float's shortest digits, a date `YYYY-MM-DD[ hh:mm:ss[.ffffff]]`,
    a time `[-]hhh:mm:ss[.ffffff]`; a string's (a decimal's, a BIT's) bytes as they are."""
    code = _INTEGERS.get(column_type)
    if code is not None:
        (number,) = struct.unpack("<" + (code.upper() if unsigned else code), value)
        return str(number).encode()
    if column_type in (MYSQL_TYPE_FLOAT, MYSQL_TYPE_DOUBLE):
        (real,) = struct.unpack("<f" if column_type == MYSQL_TYPE_FLOAT else "<d", value)
        text = f"{real:.7g}" if column_type == MYSQL_TYPE_FLOAT else repr(real)
        return text.removesuffix(".0").encode()
    if column_type == MYSQL_TYPE_TIME:
        return _time_text(value).encode()
    if column_type in _TEMPORAL_LENGTHS:
        return _date_text(value, column_type in _DATES).encode()
    return value


def _date_text(value: bytes, date_only: bool) -> str:
    year, month, day, hour, minute, second, micro = (
        struct.unpack("<HBBBBBI", value.ljust(11, b"\x00")))
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if date_only:
        return text
    text += f" {hour:02d}:{minute:02d}:{second:02d}"
    return text + (f".{micro:06d}" if len(value) == 11 else "")


def _time_text(value: bytes) -> str:
    negative, days, hour, minute, second, micro = (
        struct.unpack("<BIBBBI", value.ljust(12, b"\x00")))
    text = f"{'-' if negative else ''}{days * 24 + hour:02d}:{minute:02d}:{second:02d}"
    return text + (f".{micro:06d}" if len(value) == 12 else "")


def bind_types(payload: bytes, num_params: int, types: Sequence[ParameterType]) -> bytes:
    """A COM_STMT_EXECUTE that binds no types, binding `types` instead (its values as
    they were)."""
    at = 10 + (num_params + 7) // 8  # command, id, flags, iterations, NULL bitmap
    if not num_params or len(types) != num_params or payload[at:at + 1] != b"\x00":
        raise ValueError("not a COM_STMT_EXECUTE of these parameters binding no types")
    return payload[:at] + b"\x01" + _type_codes(types) + payload[at + 1:]


def _type_codes(types: Sequence[ParameterType]) -> bytes:
    return b"".join(_INT2.pack(t.type | (_PARAMETER_UNSIGNED if t.unsigned else 0))
                    for t in types)
