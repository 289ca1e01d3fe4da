"""The MySQL front: where agents' mariadb and mysql clients, PyMySQL and their kin log in.

    client ─TCP─► Envoy (tcp_proxy) ─► this worker's port
      handshake        ← tollgate's own: a fresh scramble, `mysql_native_password` named,
                         a connection id of tollgate's (kills.py), unique across processes
      SSLRequest       → TLS with tollgate's certificate (offered only with one)
      HandshakeResponse→ the target by database; over TLS unless the target allows not,
                         the agent's token as the password (an AuthSwitchRequest to
                         mysql_clear_password when the client offered another plugin;
                         login.py: COM_CHANGE_USER takes the same steps)
      token verified   → issuer, audience, expiry, signature, as Envoy verifies them
      upstream         → the server, as the gateway's own account (upstream.py)
      → session.Session decides every command

A login naming no database is the mariadb client's Ctrl-C, connecting again to send
KILL QUERY: its token is verified all the same, and it reaches no server (a session for
KILL only). A KILL another front hands over comes in a login's place (kills.py).

Envoy's MySQL filter only reads the protocol (for statistics); it cannot answer a client
or hold a statement, so Envoy terminates TCP and tollgate speaks the protocol itself
(docs/architecture.md, "MySQL targets").

The login is an exchange of its own in the record (`CONNECT`), refused or not.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extproc.codecs.refusal import Refusal, Refused, refusal_of
from extproc.config import MysqlFront, Target
from extproc.exchange.act import Act
from extproc.exchange.database_roles import login_role
from extproc.exchange.listener import SHUTTING_DOWN, DatabaseFront
from extproc.exchange.lock_waits import Holding, Waiter
from extproc.exchange.pipeline import Pipeline
from extproc.mysql.auth import NATIVE_PASSWORD
from extproc.mysql.catalog import Catalog
from extproc.mysql.flags import (
    CLIENT_CONNECT_ATTRS,
    CLIENT_CONNECT_WITH_DB,
    CLIENT_FOUND_ROWS,
    CLIENT_INTERACTIVE,
    CLIENT_LONG_FLAG,
    CLIENT_LONG_PASSWORD,
    CLIENT_MULTI_RESULTS,
    CLIENT_MULTI_STATEMENTS,
    CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    CLIENT_PROTOCOL_41,
    CLIENT_PS_MULTI_RESULTS,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
    CLIENT_TRANSACTIONS,
    COM_QUERY,
    SERVER_STATUS_AUTOCOMMIT,
)
from extproc.mysql.framing import MAX_PAYLOAD, Framer, Packet, ProtocolViolation, encode
from extproc.mysql.handshake import (
    Handshake,
    HandshakeResponse,
    encode_handshake,
    is_ssl_request,
    parse_handshake_response,
)
from extproc.mysql.kills import Connections, Kill, is_handover
from extproc.mysql.lock_waits import waiters
from extproc.mysql.login import DB_SYSTEM, Bound, Logins, opener
from extproc.mysql.refusals import refusal_packet
from extproc.mysql.responses import encode_err, encode_ok, is_err, parse_err
from extproc.mysql.session import Session
from extproc.mysql.upstream import (
    Upstream,
    UpstreamError,
    UpstreamSettings,
    connect,
    lock_bound,
    owned,
    set_up,
    setup_commands,
    setup_detail,
)

if TYPE_CHECKING:
    from extproc.approvals.auth import Verifier
    from extproc.policy import Decision
    from extproc.store.session_keys import SessionKeys

log = logging.getLogger("tollgate.mysql")

# The version the greeting announces. It comes before the client names its database, so
# before tollgate knows which server it will reach: the servers' own where every target's
# server announces the same (Front.greeting_version: clients choose their SQL by it, MariaDB's
# or MySQL's), else this one. Clients pick defaults by it: mysql-connector-python asks 8.0
# and later for utf8mb4_0900_ai_ci, a collation MariaDB lacks, and older servers for
# utf8mb4_general_ci, which all have (UTF8MB4 below). 5.7's last release, so what clients
# gate on a 5.7 release (COM_RESET_CONNECTION) still applies.
SERVER_VERSION = "5.7.44-tollgate"
_VERSION_SECONDS = 2.0  # how long a server's login may take as the front starts
# The plugin the greeting names, which a client answers first with, before the front knows
# whether TLS is required: a hash of the password. Named mysql_clear_password, a client
# (libmariadb's) sends the token itself, in clear when it forgot TLS. The front asks for
# the token once the login is known to be encrypted, or allowed not to be.
GREETING_PLUGIN = NATIVE_PASSWORD
UTF8MB4 = 45  # utf8mb4_general_ci: what tollgate asks the server for, and reads texts in
# What tollgate offers a client. Never CLIENT_LOCAL_FILES (the server asking the client
# for a file), CLIENT_COMPRESS (bytes tollgate would have to inflate to read) or
# CLIENT_DEPRECATE_EOF and CLIENT_SESSION_TRACK (answers framed otherwise than the
# server's, which tollgate does not translate).
_OFFERED = (CLIENT_LONG_PASSWORD | CLIENT_FOUND_ROWS | CLIENT_LONG_FLAG
            | CLIENT_CONNECT_WITH_DB | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_STATEMENTS
            | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS | CLIENT_PLUGIN_AUTH
            | CLIENT_CONNECT_ATTRS | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CLIENT_INTERACTIVE)
# What a client's choice passes on to the server (how answers count or come).
_PASSED = (CLIENT_FOUND_ROWS | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS
           | CLIENT_PS_MULTI_RESULTS | CLIENT_INTERACTIVE)
_UPSTREAM = (CLIENT_LONG_PASSWORD | CLIENT_LONG_FLAG | CLIENT_PROTOCOL_41
             | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
             | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_CONNECT_WITH_DB)


class LoginRefused(Exception):
    """The client may not log in: `packet` is the ERR it gets."""

    def __init__(self, packet: bytes) -> None:
        super().__init__("login refused")
        self.packet = packet


class Front(DatabaseFront):
    """One worker's MySQL listener: its TLS, its sessions and their connection ids."""

    def __init__(self, settings: MysqlFront, worker: int, pipeline: Pipeline,
                 verifier: Verifier, targets: Sequence[Target], tls: ssl.SSLContext | None,
                 resolve: Callable[[Path], Path], keys: SessionKeys) -> None:
        super().__init__("MySQL", "mysql", settings.address_of(worker), pipeline, targets,
                         tls, resolve, log)
        self._settings = settings
        self._offered = _OFFERED | (CLIENT_SSL if tls is not None else 0)
        self._logins = Logins(verifier, self._targets, tls is not None)
        self._connections = Connections(keys, self._kill_thread)
        # The catalogs a write's measurement reads, as each target's catalog_role.
        self._catalogs = {
            t.name: Catalog(functools.partial(self._own_connection, t), t.mysql.catalog_role,
                            t.mysql.connect_timeout_seconds)
            for t in self._targets.values()
            if t.mysql is not None and t.mysql.catalog_role is not None}
        # Each session's slot among its identity's (session_limits.py), by connection id.
        self._slots: dict[int, Callable[[], None]] = {}
        # The sessions relaying, by connection id.
        self._relaying: dict[int, Session] = {}
        # The version each target's server announced (read as the front starts, and at
        # each login since: a server upgraded under it is followed).
        self._versions: dict[str, str | None] = {}

    @property
    def greeting_version(self) -> str:
        """The servers' version, where every target's announced the same; else tollgate's."""
        versions = {self._versions.get(t.name) for t in self._targets.values()}
        version = versions.pop() if len(versions) == 1 else None
        return version or SERVER_VERSION

    async def start(self) -> None:
        targets = list(self._targets.values())
        found = await asyncio.gather(*(self._announced(t) for t in targets))
        self._versions = {t.name: v for t, v in zip(targets, found, strict=True)}
        await super().start()

    async def _announced(self, target: Target) -> str | None:
        """The version `target`'s server announces (None: not reached in time). A whole
        login to no database, then COM_QUIT: a connection dropped before its login
        counts against the gateway's host on the server (max_connect_errors)."""
        try:
            async with asyncio.timeout(_VERSION_SECONDS):
                upstream = await connect(replace(self._upstream_settings(target, ""),
                                                 database=""), _UPSTREAM, UTF8MB4,
                                         self._settings.max_message_bytes)
                await upstream.close()
        except Exception as exc:  # the server down, its credential missing: not fatal
            log.warning("target %s: its server's version not read (%s): the greeting "
                        "announces %s until a login reads it", target.name, exc,
                        SERVER_VERSION)
            return None
        return upstream.server_version

    def holdings(self) -> Iterator[Holding]:
        for session in self._relaying.values():
            if (holding := session.holding()) is not None:
                yield holding

    async def lock_waits(self, target: Target, upstream_ids: Sequence[int]) -> list[Waiter]:
        return await waiters(self._catalogs.get(target.name), upstream_ids)

    def goodbye(self, reason: str = SHUTTING_DOWN) -> bytes:
        if reason == SHUTTING_DOWN:  # ER_SERVER_SHUTDOWN
            return encode(0, encode_err(1053, "08S01", reason))
        # ER_CONNECTION_KILLED: what the server says of a connection an administrator
        # killed.
        return encode(0, encode_err(1927, "70100", reason))

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    gone: asyncio.Event) -> None:
        """A connection: an id of tollgate's (KILL names it), the login, the session."""
        host, port = writer.get_extra_info("sockname")[:2]
        connection_id = await self._connections.open(f"{host}:{port}")
        try:
            session = await self._login(reader, writer, connection_id, gone)
            if session is not None:
                self._relaying[connection_id] = session
                await self.relay_until_ended(self._relay(session), session.live, writer)
        finally:
            self._relaying.pop(connection_id, None)
            self._slots.pop(connection_id, _nothing)()
            await self._connections.close(connection_id)

    async def _relay(self, session: Session) -> None:
        """The session's id bound to it in the store (a KILL finds it), then relayed."""
        await self._connections.bind(session)
        await session.relay()

    async def _login(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     connection_id: int, gone: asyncio.Event) -> Session | None:
        login = _LoginReader(reader, self._settings.max_message_bytes,
                             time.monotonic() + self._settings.login_seconds)
        scramble = bytes(0x21 + b % 0x5E for b in os.urandom(20))  # printable, no NUL
        writer.write(encode(0, encode_handshake(Handshake(
            server_version=self.greeting_version, connection_id=connection_id,
            scramble=scramble, capabilities=self._offered, charset=UTF8MB4,
            status=SERVER_STATUS_AUTOCOMMIT, auth_plugin=GREETING_PLUGIN))))
        try:
            packet = await login.next()
            if is_handover(packet.payload):  # a KILL another front hands to this one
                writer.write(encode((packet.seq + 1) & 0xFF,
                                       await self._connections.serve(packet.payload)))
                return None
            tls = False
            if is_ssl_request(packet.payload):
                if self._tls is None:
                    raise ProtocolViolation("an SSL request where TLS was not offered")
                async with asyncio.timeout(login.remaining()):
                    await _start_tls(reader, writer, self._tls)
                tls = True
                packet = await login.next()
            response = parse_handshake_response(packet.payload)
            return await self._logged_in(response, packet.seq, login, writer, tls,
                                         connection_id, gone)
        except ProtocolViolation as exc:
            writer.write(self._refused_login(None, 400, "protocol_violation", str(exc)))
        except LoginRefused as refused:
            writer.write(refused.packet)
        return None

    async def _logged_in(self, response: HandshakeResponse, seq: int,
                         login: _LoginReader, writer: asyncio.StreamWriter,
                         tls: bool, connection_id: int, gone: asyncio.Event) -> Session:
        """The client's token and target, the server reached: a session, or
        LoginRefused. A login naming no database reaches no server (KILL only)."""
        database = response.database
        target = self._logins.target(database) if database else None
        refuse = self._refuser(target, seq + 1)
        if database and target is None:
            raise refuse(404, "unknown_target", f"no target serves database {database!r}",
                         1049, "42000")
        plaintext = self._logins.plaintext_refused(target, tls)
        if plaintext is not None:
            raise refuse(401, "tls_required", plaintext, 1045, "28000")
        token, seq = await self._logins.token(response.auth_plugin, response.auth_response,
                                              seq, writer, login.next)
        claims, problem = await self._logins.identify(token)
        del token
        bound = Bound(target, claims, response.username, database, str(uuid.uuid4()), tls,
                      response.capabilities & self._offered, gone=gone)
        act = opener(self._pipeline, bound)("CONNECT", {**bound.context(),
                                                        "command": "connect"})
        exchange = act.exchange
        exchange.request = exchange.evidence.request = {
            "method": "CONNECT", "path": f"/{database}", "query": {}, "headers": {},
            "body": None}
        try:
            upstream = await self._connect(act, target, response, problem, seq + 1,
                                           connection_id)
        finally:
            act.end()
        if upstream is not None:
            bound = _set_up(bound, upstream, exchange.decision)
        writer.write(encode((seq + 1) & 0xFF, encode_ok(
            status=upstream.status if upstream else SERVER_STATUS_AUTOCOMMIT,
            capabilities=bound.capabilities)))
        return Session(self._pipeline, self._logins, bound,
                       self._connections, connection_id, login.reader, writer,
                       Framer(self._settings.max_message_bytes), upstream,
                       None if upstream else functools.partial(self._bind, response,
                                                               connection_id),
                       self._catalogs)

    async def _bind(self, response: HandshakeResponse, connection_id: int, bound: Bound,
                    database: str) -> tuple[Upstream, Bound] | bytes:
        """A login that named no database (mysqldump's) bound to `database`'s target once
        it names one: the login's steps then, recorded as a CONNECT; the server and the
        session's Bound, or the ERR refusing it (session_commands.py, bind)."""
        target = self._logins.target(database)
        bound = replace(bound, target=target, database=database)
        act = opener(self._pipeline, bound)("CONNECT", {**bound.context(),
                                                        "command": "connect"})
        exchange = act.exchange
        exchange.request = exchange.evidence.request = {
            "method": "CONNECT", "path": f"/{database}", "query": {}, "headers": {},
            "body": None}
        try:
            upstream = await self._connect(act, target, replace(response, database=database),
                                           None, 1, connection_id)
        except LoginRefused as refused:
            return refused.packet
        finally:
            act.end()
        assert upstream is not None
        return upstream, _set_up(bound, upstream, exchange.decision)

    async def _connect(self, act: Act, target: Target | None,
                       response: HandshakeResponse,
                       problem: str | None, seq: int, connection_id: int) -> Upstream | None:
        """The login's exchange: the token's verdict, then the server reached as the
        gateway's own account (LoginRefused, recorded, when either fails); no server
        for a login naming no database."""
        exchange = act.exchange
        try:
            act.admit()
            if problem is not None:
                raise Refused(401, "unauthenticated", problem)
            if target is None:
                act.identified()
                exchange.outcome.update({
                    "tollgate.outcome": "connected: no database (KILL only)",
                    "tollgate.decision.action": "allow"})
                return None
            act.check(f"database {target.match.database!r}")
            assert target.mysql is not None
            role = await login_role(act, target.mysql.roles)
            release = self._limits.take(target.name, exchange.who,
                                        target.mysql.max_sessions_per_identity)
            self._slots[connection_id] = release
            started = time.perf_counter()
            settings = self._upstream_settings(target, response.database)
            upstream = await connect(settings if role is None else replace(settings, database=""),
                                     _UPSTREAM | (response.capabilities & _PASSED),
                                     UTF8MB4, self._settings.max_message_bytes)
            upstream.role = role
            self._versions[target.name] = upstream.server_version
            bounds = (target.mysql.idle_in_transaction_seconds, upstream.server_version,
                      exchange.decision.statement_timeout_seconds,
                      target.mysql.lock_idle_seconds)
            upstream.setup = setup_commands(role, *bounds)
            upstream.lock_bound = lock_bound(*bounds)
            if upstream.setup:
                try:
                    await set_up(upstream, upstream.setup,
                                 None if role is None else settings.database)
                except BaseException:
                    await upstream.close()
                    raise
            exchange.evidence.upstream_ms = (time.perf_counter() - started) * 1000
        except Refusal as bad:
            raise LoginRefused(refusal_packet(exchange.refuse(bad), seq)) from None
        except UpstreamError as exc:
            exchange.outcome["tollgate.outcome"] = f"upstream refused: {exc.message}"
            log.warning("trace %s: server of target %s refused the gateway: %s",
                        exchange.trace_id, getattr(target, "name", None), exc.message)
            raise LoginRefused(encode(seq, encode_err(
                exc.code, exc.sqlstate, f"tollgate could not open the database: "
                f"{exc.message} (trace id {exchange.trace_id})"))) from None
        exchange.outcome.update({
            "tollgate.outcome": ("connected" if role is None else f"connected as {role}")
                                + setup_detail(upstream.setup),
            "tollgate.decision.action": "allow",
            "tollgate.mysql.upstream_auth": upstream.auth_plugin,
            "tollgate.mysql.upstream_tls": upstream.tls,
        })
        return upstream

    async def _own_connection(self, target: Target) -> Upstream:
        """A connection of the gateway's own account to the target's server, no database
        entered (UpstreamError when it cannot be had)."""
        return await connect(replace(self._upstream_settings(target, ""), database=""),
                             _UPSTREAM, UTF8MB4, self._settings.max_message_bytes)

    async def _kill_thread(self, target: Target, thread: int, query: bool) -> None:
        """KILL [QUERY] of a session's thread on its target's server, on a connection of
        the gateway's own account (the session's own is busy with the statement);
        UpstreamError when the server refuses."""
        upstream = await self._own_connection(target)
        try:
            upstream.writer.write(encode(0, bytes((COM_QUERY,))
                                            + Kill(thread, query).text().encode()))
            answer = (await upstream.read()).payload
        finally:
            await upstream.close()
        if is_err(answer):
            err = parse_err(answer)
            raise UpstreamError(err.code, err.sqlstate, err.message)

    def _refuser(self, target: Target | None, seq: int) -> Callable[..., LoginRefused]:
        def refuse(status: int, error: str, message: str, code: int,
                   sqlstate: str) -> LoginRefused:
            return LoginRefused(self._refused_login(target, status, error, message, seq,
                                                    (code, sqlstate)))
        return refuse

    def _refused_login(self, target: Target | None, status: int, error: str, message: str,
                       seq: int = 2, code: tuple[int, str] = (1045, "28000")) -> bytes:
        """A login refused before anyone is identified: recorded, answered with ERR."""
        answer = self._pipeline.act(
            f"tollgate mysql LOGIN {target.name if target else 'unknown'}",
            {":method": "LOGIN", ":path": ""}, dict(DB_SYSTEM), target, None,
        ).refuse(refusal_of(status, error, message))
        return encode(seq, encode_err(*code, f"tollgate: {message} (trace id "
                                            f"{answer.trace_id})"))

    def _upstream_settings(self, target: Target, database: str) -> UpstreamSettings:
        settings = target.mysql
        assert settings is not None
        host, port = settings.address
        return UpstreamSettings(
            host=host, port=port, user=settings.user, password=self._password(target),
            database=settings.database or database, tls=settings.tls,
            ca_file=self._path(settings.ca_file), cert_file=self._path(settings.cert_file),
            key_file=self._path(settings.key_file),
            connect_timeout=settings.connect_timeout_seconds)


async def _start_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     context: ssl.SSLContext) -> None:
    """TLS on a client's connection, as StreamWriter.start_tls, but for what the client
    sent after its SSLRequest: a MySQL client does not wait for an answer to it and sends
    its ClientHello at once, so that may already sit in the stream's buffer. Those bytes
    go to the TLS layer first, as the bytes it would have read; read as TLS, never as
    the login's packets."""
    loop = asyncio.get_running_loop()
    transport: Any = writer.transport  # a socket's: it reads too
    stream: Any = transport.get_protocol()  # asyncio's (or uvloop's) StreamReaderProtocol
    # Nothing more reaches the stream from here: what it holds is all the TLS layer misses.
    transport.pause_reading()
    stream_reader: Any = reader
    buffered: bytearray = stream_reader._buffer  # what the stream read past the request
    early = bytes(buffered)
    buffered.clear()
    starting = asyncio.ensure_future(loop.start_tls(transport, stream, context,
                                                    server_side=True))
    # start_tls says nothing when its TLS protocol is in place (its first step, a turn of
    # the loop away): the loop is turned until it is.
    while transport.get_protocol() is stream and not starting.done():  # noqa: ASYNC110
        await asyncio.sleep(0)
    if starting.done():
        await starting  # it failed before: raises why
    tls: Any = transport.get_protocol()
    if not hasattr(tls, "buffer_updated"):
        raise RuntimeError("the TLS protocol takes no bytes handed to it")
    # Before its connection_made (scheduled, not yet run) the TLS protocol only stores
    # what it is given, and reads it as the handshake's first bytes.
    while early:
        into = memoryview(tls.get_buffer(len(early)))
        taken = min(len(into), len(early))
        into[:taken] = early[:taken]
        tls.buffer_updated(taken)
        early = early[taken:]
    stream_writer: Any = writer
    stream_writer._transport = await starting  # as StreamWriter.start_tls does
    stream._replace_writer(writer)


class _LoginReader:
    """The login's packets one at a time, by a deadline, each read exactly: what the
    client sends after an SSLRequest is TLS (_start_tls), never a packet read ahead."""

    def __init__(self, reader: asyncio.StreamReader, max_size: int,
                 deadline: float) -> None:
        self.reader, self._max, self._deadline = reader, max_size, deadline

    def remaining(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    async def next(self) -> Packet:
        async with asyncio.timeout(self.remaining()):
            header = await self.reader.readexactly(4)
            length = int.from_bytes(header[:3], "little")
            if length >= min(self._max, MAX_PAYLOAD):
                raise ProtocolViolation(f"a login packet of {length} bytes")
            return Packet(header[3], await self.reader.readexactly(length))


def _set_up(bound: Bound, upstream: Upstream, decision: Decision) -> Bound:
    """The session as its login set it up: its role, the commands that did, and what of
    it the client may not change (the timeouts where the pack restricts the session)."""
    return replace(bound, role=upstream.role, setup=upstream.setup, owned=owned(
        upstream.role, upstream.setup, decision.statement_timeout_seconds is not None))


def _nothing() -> None:
    """A connection that took no session slot gives none back."""
