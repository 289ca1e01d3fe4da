"""The gateway's own connection to a target's MySQL or MariaDB server: TLS as the
target's `tls` says (libpq's sslmode, by name and meaning), then the gateway's
credential, never the agent's.

The login speaks mysql_native_password, caching_sha2_password (fast path, and full
authentication over TLS) and mysql_clear_password (over TLS only): a password never
crosses the wire in clear, and is never in an error's message nor a repr. What goes
wrong becomes an `UpstreamError` with a MySQL error code and SQLSTATE, the server's own
when it refused, so the front can answer its client with an ERR packet as a client
library would have reported it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from extproc.exchange.database_roles import owned_settings
from extproc.exchange.tls import client_context
from extproc.mysql import auth
from extproc.mysql.flags import (
    CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS,
    CLIENT_COMPRESS,
    CLIENT_CONNECT_ATTRS,
    CLIENT_CONNECT_WITH_DB,
    CLIENT_LOCAL_FILES,
    CLIENT_MULTI_FACTOR_AUTHENTICATION,
    CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    CLIENT_PROTOCOL_41,
    CLIENT_REMEMBER_OPTIONS,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
    CLIENT_SSL_VERIFY_SERVER_CERT,
    CLIENT_ZSTD_COMPRESSION_ALGORITHM,
    COM_INIT_DB,
    COM_QUERY,
    COM_QUIT,
)
from extproc.mysql.framing import Framer, Packet, ProtocolViolation, encode
from extproc.mysql.handshake import (
    AuthSwitchRequest,
    Handshake,
    HandshakeResponse,
    SslRequest,
    encode_handshake_response,
    encode_ssl_request,
    parse_auth_more_data,
    parse_auth_switch,
    parse_handshake,
)
from extproc.mysql.responses import Err, Ok, is_err, parse_err, parse_ok

TlsMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]

# libmysqlclient's own error codes (CR_*), for what goes wrong on tollgate's side.
CR_CONN_HOST_ERROR = 2003
CR_VERSION_ERROR = 2007
CR_SERVER_LOST = 2013
CR_SSL_CONNECTION_ERROR = 2026
CR_MALFORMED_PACKET = 2027
CR_AUTH_PLUGIN_CANNOT_LOAD = 2059
CR_AUTH_PLUGIN_ERR = 2061
_CLIENT_SQLSTATE = "HY000"  # what libmysqlclient gives its own errors

_LOGIN_MAX = 1 << 16  # the login's packets are small; a bigger one is not the protocol
_CLOSE_SECONDS = 5.0  # a server that never acknowledges COM_QUIT is let go after this

# Asked of every server (and refused if it lacks them: MySQL older than 4.1 does).
_NEEDED = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION
# Asked whenever offered, whatever the caller passes: plugin names in the login, and
# an auth response longer than 255 bytes.
_ALWAYS = _NEEDED | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
# Never taken from the caller: compression and LOAD DATA LOCAL (a server asking for the
# gateway's files), which the session does not speak; attributes and further
# authentication factors, which the login does not send; an expired password's sandbox
# (the gateway's credential expired is a refused login, not a session where every
# statement fails); a client's own options (verify, remember), not the gateway's; TLS
# and the database, which the settings decide.
_NEVER = (CLIENT_COMPRESS | CLIENT_ZSTD_COMPRESSION_ALGORITHM | CLIENT_LOCAL_FILES
          | CLIENT_CONNECT_ATTRS | CLIENT_MULTI_FACTOR_AUTHENTICATION
          | CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS | CLIENT_SSL_VERIFY_SERVER_CERT
          | CLIENT_REMEMBER_OPTIONS | CLIENT_SSL | CLIENT_CONNECT_WITH_DB)
# The plugins whose first answer proves the password without revealing it.
_HASHED = frozenset({auth.NATIVE_PASSWORD, auth.CACHING_SHA2_PASSWORD})


class UpstreamError(Exception):
    """The server could not be reached or refused the gateway: `code` and `sqlstate` as
    an ERR packet carries them (the server's own, or libmysqlclient's CR_* codes for
    what failed on tollgate's side)."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(code, sqlstate, message)
        self.code, self.sqlstate, self.message = code, sqlstate, message

    def __str__(self) -> str:
        return f"ERROR {self.code} ({self.sqlstate}): {self.message}"


def _failed(code: int, message: str) -> UpstreamError:
    return UpstreamError(code, _CLIENT_SQLSTATE, message)


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """How to reach one target's server, as the gateway.

    `tls`: disable (never), prefer (when the server offers it, unverified), require
    (always, unverified), verify-ca (the chain checked against `ca_file`, else the
    system's CAs), verify-full (and the certificate names `host`). `cert_file` and
    `key_file`: a client certificate, for accounts that REQUIRE X509.
    """

    host: str
    port: int
    user: str
    password: str | None = field(default=None, repr=False)
    database: str = ""
    tls: TlsMode = "prefer"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    connect_timeout: float = 10.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


async def _next(reader: asyncio.StreamReader, framer: Framer,
                pending: list[Packet]) -> Packet:
    """The next packet: one already framed first, else read until one completes."""
    while not pending:
        data = await reader.read(65536)
        if not data:
            raise _failed(CR_SERVER_LOST, "Lost connection to the server")
        pending.extend(framer.feed(data))
    return pending.pop(0)


@dataclass(slots=True)
class Upstream:
    """A logged-in connection to the server, ready for the session's first command.

    `capabilities`: those agreed, i.e. the flags tollgate sent (already masked by the
    server's). `framer` and `pending`: where the login stopped reading (a partial packet
    in the framer, whole ones the login read past its OK in `pending`), so the session
    reads on from exactly there, through `read`; the framer is now bounded by the
    `max_packet` the login announced.
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    handshake: Handshake
    capabilities: int
    status: int
    tls: bool
    auth_plugin: str
    framer: Framer
    pending: list[Packet] = field(default_factory=list)
    # The role the session runs as (None: the gateway's account) and the commands that
    # set it up so (setup_commands), run again after a reset of the session.
    role: str | None = None
    setup: tuple[bytes, ...] = ()
    # An agent's MariaDB session's bound on idling while it holds row locks, and the
    # idle bound to return to (lock_bound).
    lock_bound: tuple[int, int] | None = None

    @property
    def connection_id(self) -> int:
        """The server's id of this session (its thread id), which KILL QUERY names."""
        return self.handshake.connection_id

    @property
    def server_version(self) -> str:
        """As the greeting says it: MariaDB before 11 prefixes "5.5.5-" (for old
        replicas), which its clients strip."""
        return self.handshake.server_version

    async def read(self) -> Packet:
        """The server's next packet (UpstreamError 2013 if the connection closed)."""
        return await _next(self.reader, self.framer, self.pending)

    async def close(self) -> None:
        """COM_QUIT, then the connection closed; never raises (a server already gone is
        as good as one that said goodbye)."""
        with contextlib.suppress(Exception):
            self.writer.write(encode(0, bytes((COM_QUIT,))))
        self.writer.close()
        with contextlib.suppress(OSError):  # TimeoutError too
            async with asyncio.timeout(_CLOSE_SECONDS):
                await self.writer.wait_closed()


class _Login:
    """The login's packets, each sequence id checked and given as the protocol numbers
    them: the handshake is 0, and every packet after it, either side's, the next one
    (an SSLRequest included: the response after it continues the sequence)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = Framer(_LOGIN_MAX)
        self.pending: list[Packet] = []
        self.seq = 0

    async def receive(self) -> bytes:
        packet = await _next(self.reader, self.framer, self.pending)
        if packet.seq != self.seq:
            raise ProtocolViolation(
                f"a packet with sequence id {packet.seq} during the login, not {self.seq}")
        self.seq = (packet.last_seq + 1) & 0xFF
        return packet.payload

    def send(self, payload: bytes) -> None:
        self.writer.write(encode(self.seq, payload))
        self.seq = (self.seq + 1) & 0xFF  # a login packet is never 16 MiB

    def read_ahead(self) -> bool:
        """Whether the server sent more than was asked (bytes TLS would not cover)."""
        buffered = len(self.reader._buffer)  # type: ignore[attr-defined]
        return bool(self.pending or self.framer.buffered or buffered)


async def connect(settings: UpstreamSettings, capabilities: int, charset: int,
                  max_packet: int) -> Upstream:
    """A logged-in connection, or UpstreamError; all of it within `connect_timeout`.

    `capabilities`: the flags the session wants (its client's, typically); those the
    server does not offer, and those tollgate never asks for (`_NEVER`), are dropped.
    `charset`: the connection's collation id; `max_packet`: the largest payload tollgate
    accepts from the server (announced to it, and the session's framer's bound).
    """
    try:
        async with asyncio.timeout(settings.connect_timeout):
            return await _connect(settings, capabilities, charset, max_packet)
    except TimeoutError:
        raise _failed(CR_SERVER_LOST, f"no answer from {settings.where} within "
                      f"{settings.connect_timeout:g} s") from None
    except ProtocolViolation as exc:
        raise _failed(CR_MALFORMED_PACKET, f"{settings.where}: {exc}") from None
    except OSError as exc:
        raise _failed(CR_SERVER_LOST, f"Lost connection to {settings.where} during the "
                      f"login: {_reason(exc)}") from None


async def _connect(settings: UpstreamSettings, capabilities: int, charset: int,
                   max_packet: int) -> Upstream:
    context = _tls_context(settings)
    try:
        reader, writer = await asyncio.open_connection(settings.host, settings.port)
    except OSError as exc:
        raise _failed(CR_CONN_HOST_ERROR, f"Can't connect to {settings.where}: "
                      f"{_reason(exc)}") from None
    try:
        login = _Login(reader, writer)
        greeting = await login.receive()
        if is_err(greeting):  # too many connections, a blocked host
            raise _refused(parse_err(greeting))
        if greeting[:1] != b"\x0a":
            raise _failed(CR_VERSION_ERROR, f"{settings.where} speaks protocol version "
                          f"{greeting[0] if greeting else 'none'}; tollgate speaks 10")
        handshake = parse_handshake(greeting)
        caps = _capabilities(settings, handshake, capabilities)
        tls = await _tls(settings, login, handshake, context, caps, charset, max_packet)
        if tls:
            caps |= CLIENT_SSL
        plugin = handshake.auth_plugin if handshake.auth_plugin in _HASHED else (
            auth.NATIVE_PASSWORD)  # the server switches to the account's if it differs
        password = (settings.password or "").encode()
        login.send(encode_handshake_response(HandshakeResponse(
            caps, max_packet, charset, settings.user,
            auth.auth_response(plugin, password, handshake.scramble),
            settings.database if caps & CLIENT_CONNECT_WITH_DB else "",
            plugin if caps & CLIENT_PLUGIN_AUTH else "")))
        plugin, ok = await _authenticate(login, plugin, password, tls, caps)
        login.framer.max_size = max_packet
        return Upstream(reader, writer, handshake, caps, ok.status, tls, plugin,
                        login.framer, login.pending)
    except BaseException:
        writer.close()
        raise


# MariaDB's: how long a session may sit idle inside a transaction (MySQL has none).
IDLE_SETTING = "idle_transaction_timeout"
# The timeouts setup_commands may give a session.
# MariaDB's bound on a session idle in a transaction that wrote (lock_idle_seconds).
WRITE_IDLE_SETTING = "idle_write_transaction_timeout"
_TIMEOUTS = (IDLE_SETTING, WRITE_IDLE_SETTING, "max_statement_time", "max_execution_time")


def lock_bound(idle_seconds: float, server_version: str, statement_seconds: int | None,
               lock_seconds: float) -> tuple[int, int] | None:
    """(seconds a transaction holding row locks may idle, seconds any may) for an agent's
    session (its login's decision gives a statement timeout) on MariaDB, where the first
    is shorter; None elsewhere: MySQL has no such settings."""
    if "mariadb" not in server_version.lower() or statement_seconds is None or \
            not lock_seconds or (idle_seconds and lock_seconds >= idle_seconds):
        return None
    return math.ceil(lock_seconds), math.ceil(idle_seconds)


def setup_commands(role: str | None, idle_seconds: float, server_version: str,
                   statement_seconds: int | None = None,
                   lock_seconds: float = 0.0) -> tuple[bytes, ...]:
    """The COM_QUERYs that set a session up as the gateway keeps it: its role; (on
    MariaDB, which has the settings; MySQL has none) how long it may sit idle inside a
    transaction before the server ends it, and, an agent's (its login's decision gives a
    statement timeout), inside one that wrote (`lock_seconds`, where shorter); how long
    one statement may run (the login's decision: MariaDB's max_statement_time, MySQL's
    max_execution_time, its SELECTs')."""
    mariadb = "mariadb" in server_version.lower()
    out = []
    if role is not None:
        out.append(f"SET ROLE `{role.replace('`', '``')}`")
    if idle_seconds and mariadb:
        out.append(f"SET SESSION {IDLE_SETTING} = {math.ceil(idle_seconds)}")
    bound = lock_bound(idle_seconds, server_version, statement_seconds, lock_seconds)
    if bound is not None:
        out.append(f"SET SESSION {WRITE_IDLE_SETTING} = {bound[0]}")
    if statement_seconds is not None:
        out.append(f"SET SESSION max_statement_time = {statement_seconds}" if mariadb else
                   f"SET SESSION max_execution_time = {statement_seconds * 1000}")
    return tuple(bytes((COM_QUERY,)) + text.encode() for text in out)


def setup_detail(setup: tuple[bytes, ...]) -> str:
    """What the record's outcome says the gateway ran to set a session up ("" if
    nothing): the server's statement log holds these too."""
    return "".join(f"; set up: {command[1:].decode()}" for command in setup)


def owned(role: str | None, setup: tuple[bytes, ...],
          restricted: bool) -> dict[str, int | None]:
    """The settings a session set up by `setup` keeps from its client: its role, and its
    timeouts where the pack restricts the session (its login's decision set a statement
    timeout: agents'). MySQL's SET is not read for values: no change at all."""
    timeouts = [name for name in _TIMEOUTS
                if restricted and any(name.encode() in command for command in setup)]
    return owned_settings(role, dict.fromkeys(timeouts))


async def set_up(upstream: Upstream, commands: tuple[bytes, ...],
                 database: str | None) -> None:
    """`commands` run, then `database` (if any) made the session's (its status updated),
    or UpstreamError with the server's reason: the gateway's account was not granted the
    role, say. A session with a role logs in to no database: the account alone may use
    none."""
    enter = () if database is None else (bytes((COM_INIT_DB,)) + database.encode(),)
    for command in (*commands, *enter):
        upstream.writer.write(encode(0, command))
        answer = (await upstream.read()).payload
        if is_err(answer):
            raise _refused(parse_err(answer))
        upstream.status = parse_ok(answer, upstream.capabilities).status


def _tls_context(settings: UpstreamSettings) -> ssl.SSLContext | None:
    if settings.tls == "disable":
        return None
    try:
        return client_context(settings.tls, settings.ca_file, settings.cert_file,
                              settings.key_file)
    except OSError as exc:  # ssl.SSLError too: a file that is not a key or certificate
        raise _failed(CR_SSL_CONNECTION_ERROR, f"the target's TLS files for "
                      f"{settings.where}: {exc}") from None


def _capabilities(settings: UpstreamSettings, handshake: Handshake, wanted: int) -> int:
    """The flags to send: the caller's and tollgate's own, as far as the server offers."""
    offered = handshake.capabilities
    if missing := _NEEDED & ~offered:
        raise _failed(CR_VERSION_ERROR, f"{settings.where} ({handshake.server_version}) "
                      f"lacks capabilities 0x{missing:x}: a server older than 4.1")
    caps = (wanted & ~_NEVER) | _ALWAYS
    if settings.database:
        if not offered & CLIENT_CONNECT_WITH_DB:
            raise _failed(CR_VERSION_ERROR, f"{settings.where} cannot take a database at "
                          "login (no CLIENT_CONNECT_WITH_DB)")
        caps |= CLIENT_CONNECT_WITH_DB
    return caps & offered


async def _tls(settings: UpstreamSettings, login: _Login, handshake: Handshake,
               context: ssl.SSLContext | None, caps: int, charset: int,
               max_packet: int) -> bool:
    """TLS started if the settings and the server say so; whether it was."""
    if context is None:
        return False
    if not handshake.capabilities & CLIENT_SSL:
        if settings.tls == "prefer":
            return False
        raise _failed(CR_SSL_CONNECTION_ERROR, f"{settings.where} does not offer TLS, and "
                      f"the target's tls is {settings.tls}")
    if login.read_ahead():
        raise ProtocolViolation("the server spoke before it was asked")
    login.send(encode_ssl_request(SslRequest(
        caps | CLIENT_SSL, max_packet, charset)))
    try:
        await login.writer.start_tls(context, server_hostname=settings.host)
    except ssl.SSLCertVerificationError as exc:
        raise _failed(CR_SSL_CONNECTION_ERROR, f"the certificate of {settings.where} is "
                      f"refused: {exc.verify_message}") from None
    except OSError as exc:  # a TLS alert, a reset
        raise _failed(CR_SSL_CONNECTION_ERROR, f"TLS with {settings.where} failed: "
                      f"{_reason(exc)}") from None
    return True


async def _authenticate(login: _Login, plugin: str, password: bytes, tls: bool,
                        caps: int) -> tuple[str, Ok]:
    """The server's requests answered until its OK: the plugin it ended with, and the OK.

    caching_sha2_password's full authentication (the server had no cached hash) wants
    the password itself: tollgate sends it over TLS, and without TLS refuses rather than
    asking for the server's RSA key (a key fetched over the same unverified connection
    proves nothing about who receives the password).
    """
    switched = False
    while True:
        payload = await login.receive()
        header = payload[:1]
        if header == b"\x00":
            return plugin, parse_ok(payload, caps)
        if header == b"\xff":
            raise _refused(parse_err(payload))
        if header == b"\xfe" and not switched:  # an AuthSwitchRequest, once
            switch = parse_auth_switch(payload)
            plugin, switched = switch.plugin, True
            login.send(_switched(switch, password, tls))
        elif header == b"\x01" and plugin == auth.CACHING_SHA2_PASSWORD:
            state = parse_auth_more_data(payload)
            if state == bytes((auth.CACHING_SHA2_FAST_AUTH_SUCCESS,)):
                continue  # the OK follows
            if state != bytes((auth.CACHING_SHA2_PERFORM_FULL_AUTHENTICATION,)):
                raise ProtocolViolation(f"caching_sha2_password's AuthMoreData {state!r}")
            if not tls:
                raise _failed(CR_AUTH_PLUGIN_ERR, "caching_sha2_password asks for the "
                              "password itself (the server has no cached hash of it), "
                              "which tollgate sends over TLS only: set the target's tls")
            login.send(auth.clear_password(password))
        else:
            what = f"a packet starting with 0x{payload[0]:02x}" if payload else "an empty packet"
            raise ProtocolViolation(f"{what} during {plugin}'s login")


def _switched(switch: AuthSwitchRequest, password: bytes, tls: bool) -> bytes:
    """The answer to an AuthSwitchRequest, if tollgate may give it."""
    if switch.plugin == auth.CLEAR_PASSWORD and not tls:
        raise _failed(CR_AUTH_PLUGIN_CANNOT_LOAD, "the server asks for mysql_clear_password, "
                      "which sends the password as it is; tollgate does so over TLS only")
    try:
        return auth.auth_response(switch.plugin, password, switch.scramble)
    except ValueError as exc:
        raise _failed(CR_AUTH_PLUGIN_CANNOT_LOAD, str(exc)) from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _refused(err: Err) -> UpstreamError:
    return UpstreamError(err.code, err.sqlstate, err.message)
