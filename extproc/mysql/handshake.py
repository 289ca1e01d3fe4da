"""MySQL's connection phase: the server's greeting, the client's SSLRequest and login,
and the auth exchange after it (a switch of plugin, a plugin's further data).

Both ends of the gateway speak it: the front reads its clients' logins and writes its
own greeting, the upstream login answers the server's. What the two sides agree here
(the capabilities) lays out every packet after it, so the callers keep it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from extproc.mysql.flags import (
    AUTH_MORE_DATA_HEADER,
    CLIENT_CONNECT_ATTRS,
    CLIENT_CONNECT_WITH_DB,
    CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    CLIENT_PROTOCOL_41,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
    CLIENT_ZSTD_COMPRESSION_ALGORITHM,
    EOF_HEADER,
)
from extproc.mysql.framing import (
    INT2,
    INT4,
    ProtocolViolation,
    Reader,
    as_bytes,
    as_text,
    cstring,
    expect_header,
    lenenc_str,
)

_LOGIN = struct.Struct("<IIB")  # capabilities, max packet, charset
_RESPONSE_FILLER = 19  # then 4 bytes of MariaDB's capabilities: 23 reserved in MySQL's


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
    server_version = as_text(r.cstring())
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
        auth_plugin = as_text(raw)
    r.done()
    return Handshake(server_version, connection_id, scramble, capabilities, charset,
                     status, auth_plugin, mariadb_capabilities, version)


def encode_handshake(h: Handshake) -> bytes:
    caps = h.capabilities
    secure = bool(caps & CLIENT_SECURE_CONNECTION)
    if len(h.scramble) < 8 or (secure and len(h.scramble) < 20) or (
            not secure and len(h.scramble) != 8):
        raise ValueError(f"a scramble of {len(h.scramble)} bytes")
    out = [bytes((h.protocol_version,)), cstring(h.server_version),
           INT4.pack(h.connection_id), h.scramble[:8], b"\x00", INT2.pack(caps & 0xFFFF),
           bytes((h.charset,)), INT2.pack(h.status), INT2.pack(caps >> 16 & 0xFFFF),
           bytes((len(h.scramble) + 1 if caps & CLIENT_PLUGIN_AUTH else 0,)), bytes(6),
           INT4.pack(h.mariadb_capabilities)]
    if secure:
        out.append(h.scramble[8:] + b"\x00")
    if caps & CLIENT_PLUGIN_AUTH:
        out.append(cstring(h.auth_plugin))
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
    return len(payload) == 32 and bool(INT4.unpack_from(payload)[0] & CLIENT_SSL)


def parse_ssl_request(payload: bytes) -> SslRequest:
    if not is_ssl_request(payload):
        raise ProtocolViolation("not an SSLRequest (32 bytes, CLIENT_SSL set)")
    capabilities, max_packet, charset = _LOGIN.unpack_from(payload)
    (mariadb,) = INT4.unpack_from(payload, 28)
    return SslRequest(capabilities, max_packet, charset, mariadb)


def _login_head(capabilities: int, max_packet: int, charset: int, mariadb: int) -> bytes:
    return (_LOGIN.pack(capabilities, max_packet, charset) + bytes(_RESPONSE_FILLER)
            + INT4.pack(mariadb))


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
    username = as_text(r.cstring())
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
        database = as_text(r.cstring())
    if capabilities & CLIENT_PLUGIN_AUTH and r.remaining:
        auth_plugin = as_text(r.cstring())
    if capabilities & CLIENT_CONNECT_ATTRS and r.remaining:
        attrs = parse_connect_attrs(r.lenenc_str())
    if capabilities & CLIENT_ZSTD_COMPRESSION_ALGORITHM and r.remaining:
        zstd_level = r.int1()
    r.done()
    return HandshakeResponse(capabilities, max_packet, charset, username, auth_response,
                             database, auth_plugin, attrs, mariadb, zstd_level)


def parse_connect_attrs(raw: bytes) -> dict[str, str]:
    r = Reader(raw)
    attrs: dict[str, str] = {}
    while r.remaining:
        key = as_text(r.lenenc_str())
        if key in attrs:
            raise ProtocolViolation(f"connection attribute {key!r} given twice")
        attrs[key] = as_text(r.lenenc_str())
    return attrs


def encode_handshake_response(response: HandshakeResponse) -> bytes:
    caps = response.capabilities
    if not caps & CLIENT_PROTOCOL_41:
        raise ValueError("this codec writes HandshakeResponse41 only (CLIENT_PROTOCOL_41)")
    auth = response.auth_response
    out = [_login_head(caps, response.max_packet, response.charset,
                       response.mariadb_capabilities), cstring(response.username)]
    if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        out.append(lenenc_str(auth))
    elif caps & CLIENT_SECURE_CONNECTION:
        if len(auth) > 0xFF:
            raise ValueError(f"an auth response of {len(auth)} bytes needs "
                             "CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA")
        out.append(bytes((len(auth),)) + auth)
    else:
        out.append(cstring(auth))
    if caps & CLIENT_CONNECT_WITH_DB:
        out.append(cstring(response.database))
    if caps & CLIENT_PLUGIN_AUTH:
        out.append(cstring(response.auth_plugin))
    if caps & CLIENT_CONNECT_ATTRS:
        out.append(lenenc_str(b"".join(lenenc_str(as_bytes(k)) + lenenc_str(as_bytes(v))
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
    expect_header(r, EOF_HEADER, "an AuthSwitchRequest")
    if not r.remaining:
        return AuthSwitchRequest("mysql_old_password", b"")
    return AuthSwitchRequest(as_text(r.cstring()), r.rest())


def encode_auth_switch(request: AuthSwitchRequest) -> bytes:
    return bytes((EOF_HEADER,)) + cstring(request.plugin) + request.data


def parse_auth_more_data(payload: bytes) -> bytes:
    """An AuthMoreData's data (caching_sha2_password's state byte, a public key)."""
    r = Reader(payload)
    expect_header(r, AUTH_MORE_DATA_HEADER, "an AuthMoreData")
    return r.rest()


def encode_auth_more_data(data: bytes) -> bytes:
    return bytes((AUTH_MORE_DATA_HEADER,)) + data
