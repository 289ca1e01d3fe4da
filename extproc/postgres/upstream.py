"""The gateway's own connection to a target's database: TLS as the target's `sslmode`
says, then the gateway's credential (SCRAM-SHA-256, with channel binding over TLS
where offered, MD5, a cleartext password, or a client certificate), never the agent's.

The database's cancel key stays here; the client gets one of tollgate's own (front.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from extproc.exchange.tls import client_context
from extproc.postgres import messages as pg
from extproc.postgres.scram import (
    MECHANISM,
    MECHANISM_PLUS,
    ScramClient,
    ScramError,
    end_point_binding,
)

_MAX_MESSAGE = 1 << 20  # the login's messages are small; a bigger one is not PostgreSQL


class UpstreamError(Exception):
    """The database could not be reached or refused the gateway: `fields` as an
    ErrorResponse's (C: SQLSTATE, M: message)."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(fields.get("M", "the database refused the connection"))
        self.fields = fields


def _failed(message: str, code: str = "08001") -> UpstreamError:
    return UpstreamError({"S": "FATAL", "C": code, "M": message})


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """How to reach one target's database, as the gateway."""

    host: str
    port: int
    user: str
    database: str
    password: str | None = None
    sslmode: str = "prefer"  # disable, allow, prefer, require, verify-ca, verify-full
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    channel_binding: str = "prefer"  # disable, prefer, require
    connect_timeout: float = 10.0


@dataclass(slots=True)
class Upstream:
    """A logged-in connection to the database, ready for the client's first query."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    parameters: dict[str, str]
    process_id: int
    secret: bytes
    transaction_status: bytes
    auth_method: str
    tls: bool
    notices: list[bytes] = field(default_factory=list)
    # The ParameterStatus messages, as they came: relayed to the client as they are
    # (their values are in the session's encoding, which the login does not read in).
    statuses: list[bytes] = field(default_factory=list)
    # The role the session runs as (the login's decision), None: the gateway's account.
    role: str | None = None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.write(pg.encode(b"X", b""))
        self.writer.close()


async def connect(settings: UpstreamSettings, parameters: dict[str, str]) -> Upstream:
    """A logged-in connection, or UpstreamError."""
    try:
        return await asyncio.wait_for(_connect(settings, parameters), settings.connect_timeout)
    except TimeoutError:
        raise _failed(f"no answer from {settings.host}:{settings.port} within "
                      f"{settings.connect_timeout:g} s") from None
    except OSError as exc:
        raise _failed(f"cannot reach {settings.host}:{settings.port}: "
                      f"{exc.strerror or exc}") from None
    except (pg.ProtocolViolation, ScramError) as exc:
        raise _failed(f"{settings.host}:{settings.port}: {exc}", "08P01") from None


async def _connect(settings: UpstreamSettings, parameters: dict[str, str]) -> Upstream:
    reader, writer = await asyncio.open_connection(settings.host, settings.port)
    try:
        tls = await _tls(settings, reader, writer)
        writer.write(pg.encode_startup(
            {**parameters, "user": settings.user, "database": settings.database}))
        framer = pg.Framer(pg.BACKEND_KINDS, _MAX_MESSAGE)
        messages = _Messages(reader, framer)
        method = await _authenticate(settings, messages, writer, tls)
        out = Upstream(reader, writer, {}, 0, b"", b"I", method, tls)
        while True:
            message = await messages.next()
            if message.kind == b"S":
                name, value = pg.parameter_status(message.body)
                out.parameters[name] = value
                out.statuses.append(message.raw())
            elif message.kind == b"K":
                out.process_id, out.secret = pg.backend_key_data(message.body)
            elif message.kind == b"N":
                out.notices.append(message.raw())
            elif message.kind == b"E":
                raise UpstreamError(pg.fields(message.body))
            elif message.kind == b"Z":
                out.transaction_status = pg.ready_for_query(message.body)
                if framer.buffered or messages.queued:
                    raise pg.ProtocolViolation("the database spoke before it was asked")
                return out
            elif message.kind != b"v":  # a newer minor version negotiated down: fine
                raise pg.ProtocolViolation(f"a {message.kind!r} message during the login")
    except BaseException:
        writer.close()
        raise


async def _tls(settings: UpstreamSettings, reader: asyncio.StreamReader,
               writer: asyncio.StreamWriter) -> bool:
    if settings.sslmode in ("disable", "allow"):
        return False
    writer.write(pg.encode_request(pg.SSL_REQUEST))
    answer = await reader.readexactly(1)
    if answer == b"S":
        if reader._buffer:  # type: ignore[attr-defined]
            # Bytes before the handshake would be read as if TLS had protected them.
            raise pg.ProtocolViolation("data after the database's answer to SSLRequest")
        context = client_context(settings.sslmode, settings.ca_file, settings.cert_file,
                                 settings.key_file)
        await writer.start_tls(context, server_hostname=(
            settings.host if settings.sslmode == "verify-full" else None))
        return True
    if answer != b"N":
        raise pg.ProtocolViolation(f"an answer of {answer!r} to SSLRequest")
    if settings.sslmode != "prefer":
        raise _failed(f"{settings.host}:{settings.port} does not offer TLS, and the "
                      f"target's sslmode is {settings.sslmode}")
    return False


async def _authenticate(settings: UpstreamSettings, messages: _Messages,
                        writer: asyncio.StreamWriter, tls: bool) -> str:
    """The database's challenges answered; the method it asked for."""
    password = settings.password
    scram: ScramClient | None = None
    method = "trust"
    while True:
        code, rest = await messages.challenge()
        if code == 0:
            if settings.channel_binding == "require" and method != MECHANISM_PLUS:
                raise _failed(f"the database logged the gateway in by {method}, and the "
                              "target requires channel binding", "28000")
            return "certificate" if method == "trust" and settings.cert_file and tls else (
                method)
        if settings.channel_binding == "require" and code not in (10, 11, 12):
            raise _failed("the database asked for another method than SCRAM, and the "
                          "target requires channel binding", "28000")
        if code in (3, 5):
            method = "password" if code == 3 else "md5"
            writer.write(_password(settings, code, rest))
        elif code == 10:
            if password is None:
                raise _failed("the database asks for SCRAM and the target's credential "
                              "has no password", "28P01")
            offered = pg.sasl_mechanisms(rest)
            scram = _scram(settings, offered, password, writer, tls)
            method = scram.mechanism
            writer.write(pg.encode_sasl_initial(scram.mechanism, scram.first()))
        elif code == 11 and scram is not None:
            writer.write(pg.encode_sasl_response(scram.final(rest)))
        elif code == 12 and scram is not None:
            scram.verify(rest)
        else:
            raise _failed(f"the database asks for authentication method {code}, which "
                          "tollgate does not speak", "28000")


def _password(settings: UpstreamSettings, code: int, salt: bytes) -> bytes:
    """The answer to a cleartext (3) or MD5 (5) password request."""
    password = settings.password
    if password is None:
        raise _failed("the database asks for a password and the target's credential has "
                      "none", "28P01")
    if code == 3:
        return pg.encode_password(password)
    inner = hashlib.md5((password + settings.user).encode()).hexdigest()
    return pg.encode_password("md5" + hashlib.md5(inner.encode() + salt[:4]).hexdigest())


def _scram(settings: UpstreamSettings, offered: list[str], password: str,
           writer: asyncio.StreamWriter, tls: bool) -> ScramClient:
    can_bind = tls and settings.channel_binding != "disable"
    if can_bind and MECHANISM_PLUS in offered:
        ssl_object = writer.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if certificate:
            return ScramClient(password, end_point_binding(certificate))
    if settings.channel_binding == "require":
        raise _failed("the database does not offer SCRAM-SHA-256-PLUS (channel binding), "
                      "which the target requires", "28000")
    if MECHANISM not in offered:
        raise _failed(f"the database offers {', '.join(offered)}; tollgate speaks "
                      f"{MECHANISM}", "28000")
    return ScramClient(password, binding_supported=can_bind)


class _Messages:
    """The database's login messages one at a time."""

    def __init__(self, reader: asyncio.StreamReader, framer: pg.Framer) -> None:
        self._reader, self._framer = reader, framer
        self._queue: list[pg.Message] = []

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def challenge(self) -> tuple[int, bytes]:
        """The next Authentication request's code and data (UpstreamError on an error)."""
        while True:
            message = await self.next()
            if message.kind == b"E":
                raise UpstreamError(pg.fields(message.body))
            if message.kind == b"R":
                return pg.authentication(message.body)
            if message.kind != b"v":
                raise pg.ProtocolViolation(
                    f"a {message.kind!r} message before the login ended")

    async def next(self) -> pg.Message:
        while not self._queue:
            data = await self._reader.read(65536)
            if not data:
                raise _failed("the database closed the connection during the login")
            self._queue.extend(self._framer.feed(data))
        return self._queue.pop(0)


async def cancel(settings: UpstreamSettings, process_id: int, secret: bytes) -> None:
    """The database's own CancelRequest for one of its sessions."""
    await send_cancel(settings.host, settings.port, process_id, secret,
                      settings.connect_timeout)


async def send_cancel(host: str, port: int, process_id: int, secret: bytes,
                      within_seconds: float) -> None:
    """A CancelRequest to a server (the database, or the front holding the session);
    never raises (a cancel that cannot be sent is as if the query had finished first)."""
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(within_seconds):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(pg.encode_request(pg.CANCEL_REQUEST,
                                           process_id.to_bytes(4, "big") + secret))
            await writer.drain()
            await reader.read(1)  # the server closes once it has the request
            writer.close()
