"""The PostgreSQL front: where agents' psql, psycopg, asyncpg and pg8000 log in.

    client ─TCP─► Envoy (tcp_proxy) ─► this worker's port
      SSLRequest      → 'S', then TLS with tollgate's certificate ('N' without one)
      GSSENCRequest   → 'N': clients fall back to TLS or a plain connection
      CancelRequest   → the session its key names, here or on the front the store names
                        (store/session_keys.py)
      StartupMessage  → the target by database; protocol 3.0 (newer minors negotiated
                        down); the agent's token asked for as the password, over TLS
      token verified  → issuer, audience, expiry, signature, as Envoy verifies them
      upstream        → the database, with the gateway's own role and credential
      → session.Session relays and decides every statement

Envoy's network ext_proc filter streams TCP reads and cannot originate bytes: it could
not answer an SSLRequest, ask for a password, run SCRAM with the database or hold a
statement while a human decides. So Envoy terminates the TCP connection (tcp_proxy:
connection limits, access log) and tollgate speaks the protocol itself
(docs/architecture.md, "PostgreSQL targets", measures the choice).

The login is an exchange of its own in the record (`CONNECT`), refused or not, so a
wrong token leaves a trace though the database never sees it.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import math
import re
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from extproc.codecs.refusal import Refusal, Refused, refusal_of
from extproc.config import PostgresFront, PostgresTarget, Target
from extproc.exchange import cancels
from extproc.exchange.act import Act, Opener
from extproc.exchange.database_roles import login_role, owned_settings, refuse_owned_change
from extproc.exchange.listener import SHUTTING_DOWN, DatabaseFront
from extproc.exchange.lock_waits import Holding, Waiter
from extproc.exchange.pipeline import Pipeline
from extproc.postgres import encodings
from extproc.postgres import messages as pg
from extproc.postgres.lock_waits import waiters
from extproc.postgres.refusals import refusal_message, sqlstate_of
from extproc.postgres.session import Session
from extproc.postgres.upstream import (
    Upstream,
    UpstreamError,
    UpstreamSettings,
    cancel,
    connect,
    send_cancel,
)

if TYPE_CHECKING:
    from extproc.approvals.auth import Verifier
    from extproc.policy import Decision
    from extproc.store.session_keys import SessionKeys

log = logging.getLogger("tollgate.postgres")

# Startup parameters passed to the database as they are (client_encoding as PostgreSQL
# names the encoding the session reads in: encodings.py). Any other setting a client
# names at startup (asyncpg's server_settings, libpq's PGOPTIONS-free ones) is decided as
# the `SET name TO 'value'` it stands for, in the login's decision; `options` (it can
# set anything, a role too, in words the server parses) and `replication` (another
# protocol) are refused.
PASSED_PARAMETERS = frozenset({
    "application_name", "client_encoding", "DateStyle", "TimeZone", "IntervalStyle",
    "extra_float_digits", "datestyle", "timezone", "intervalstyle",
})
_NEVER_PASSED = frozenset({"options", "replication"})
# A setting's name as SET takes it unquoted (a custom one with its prefix).
_SETTING = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?")
_ENCODING = "client_encoding"


# How long handing a CancelRequest to the front holding its session may take.
_HANDOVER_SECONDS = 5.0


class LoginRefused(Exception):
    """The client may not log in: `message` is the ErrorResponse it gets (FATAL)."""

    def __init__(self, message: bytes) -> None:
        super().__init__("login refused")
        self.message = message


@dataclass(slots=True)
class _Key:
    """A cancel key tollgate gave a client, and the database's own it stands for."""

    secret: bytes
    upstream: UpstreamSettings
    process_id: int
    upstream_secret: bytes
    opener: Opener  # opens an act in the session it cancels
    # The session, once it relays: it says when the database's cancel may go.
    session: Session | None = None


class Front(DatabaseFront):
    """One worker's PostgreSQL listener: its TLS, its sessions and their cancel keys."""

    def __init__(self, settings: PostgresFront, worker: int, pipeline: Pipeline,
                 verifier: Verifier, targets: Sequence[Target], tls: ssl.SSLContext | None,
                 resolve: Callable[[Path], Path], keys: SessionKeys) -> None:
        super().__init__("PostgreSQL", "postgres", settings.address_of(worker), pipeline,
                         targets, tls, resolve, log)
        self._settings, self._verifier = settings, verifier
        # The cancel keys of this front's sessions; every front's are in the store.
        self._keys: dict[int, _Key] = {}
        self._shared = keys

    def holdings(self) -> Iterator[Holding]:
        for key in self._keys.values():
            if key.session is not None and (holding := key.session.holding()) is not None:
                yield holding

    async def lock_waits(self, target: Target, upstream_ids: Sequence[int]) -> list[Waiter]:
        return await waiters(self._upstream_settings(target), upstream_ids)

    def goodbye(self, reason: str = SHUTTING_DOWN) -> bytes:
        # 57P01 admin_shutdown: what pg_terminate_backend's end says (psycopg's
        # AdminShutdown), the server's own words for an administrator's end.
        return pg.error("57P01", reason, severity="FATAL")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    gone: asyncio.Event) -> None:
        login = _LoginReader(reader, pg.Framer(pg.FRONTEND_KINDS,
                                               self._settings.max_message_bytes, untyped=True),
                             time.monotonic() + self._settings.login_seconds)
        tls = False
        try:
            while True:
                startup = pg.startup((await login.next()).body)
                if startup.code == pg.SSL_REQUEST and self._tls is not None and not tls:
                    if login.holds_more:
                        # Bytes sent after the request, before TLS, would be read as if
                        # they came over it (CVE-2021-23214): refused.
                        raise LoginRefused(pg.error("08P01", "tollgate: data after an "
                                                    "SSLRequest", severity="FATAL"))
                    writer.write(b"S")
                    # The handshake is part of the login, and of its deadline: a client
                    # that sends half a ClientHello, or nothing, is closed by it.
                    async with asyncio.timeout(login.remaining()):
                        await writer.drain()
                        await writer.start_tls(self._tls)
                    tls = True
                elif startup.code in (pg.SSL_REQUEST, pg.GSSENC_REQUEST):
                    writer.write(b"N")  # no TLS here (or already), no GSSAPI: fall back
                elif startup.code == pg.CANCEL_REQUEST and startup.cancel is not None:
                    await self._cancel(*startup.cancel)
                    return
                else:
                    break
            login.framer.untyped = False
            session, key, release = await self._login(startup, login, writer, tls, gone)
        except pg.ProtocolViolation as exc:
            writer.write(self._refused_login(None, 400, "protocol_violation", str(exc)))
            return
        except LoginRefused as refused:
            writer.write(refused.message)
            return
        try:
            with encodings.speaking(session.wire):
                await self.relay_until_ended(session.relay(), session.live, writer)
        finally:
            release()
            self._keys.pop(key, None)
            await self._shared.forget(key)

    def _refused_login(self, target: Target | None, status: int, error: str,
                       message: str, code: str | None = None) -> bytes:
        """A login refused before anyone is identified: recorded (what was tried, and
        why it was refused), and answered with a FATAL error."""
        answer = self._pipeline.act(
            f"tollgate postgres LOGIN {target.name if target else 'unknown'}",
            {":method": "LOGIN", ":path": ""}, dict(_DB_SYSTEM), target, None,
        ).refuse(refusal_of(status, error, message))
        return pg.error(code or sqlstate_of(status), f"tollgate: {message}",
                        detail=f"trace id {answer.trace_id}", severity="FATAL")

    async def _login(self, startup: pg.Startup, login: _LoginReader,
                     writer: asyncio.StreamWriter, tls: bool, gone: asyncio.Event
                     ) -> tuple[Session, int, Callable[[], None]]:
        """The client's startup, token and upstream: a session, its cancel key's process
        id and what gives its slot back (session_limits.py), or LoginRefused."""
        version = startup.code
        parameters = startup.parameters
        role = parameters.get("user", "")
        database = parameters.get("database") or role
        target = self._targets.get(database)
        if version >> 16 != 3:
            raise LoginRefused(self._refused_login(
                target, 400, "unsupported_protocol", f"unsupported frontend protocol "
                f"{version >> 16}.{version & 0xFFFF}: tollgate speaks 3.0", "0A000"))
        extensions = sorted(p for p in parameters if p.startswith("_pq_."))
        if version & 0xFFFF or extensions:
            writer.write(pg.encode_negotiate_version(0, extensions))
        if not role:
            raise LoginRefused(self._refused_login(
                target, 401, "unauthenticated", "no user in the startup message"))
        if target is None:
            raise LoginRefused(self._refused_login(
                None, 404, "unknown_target", f'no target serves database "{database}"',
                "3D000"))
        assert target.postgres is not None
        if not tls and not target.postgres.plaintext_token:
            raise LoginRefused(self._refused_login(
                target, 401, "tls_required", "tollgate takes tokens only over TLS: connect "
                "with sslmode=require" + ("" if self._tls else " (and give tollgate a "
                                          "certificate: postgres.tls_cert_file)")))
        # client_encoding in any case (a setting's name is case-blind) is the session's
        # encoding, read below, never a setting passed beside it.
        settings = {p: v for p, v in parameters.items() if p not in PASSED_PARAMETERS
                    and p.lower() != _ENCODING and p not in ("user", "database")
                    and not p.startswith("_pq_.")}
        unpassed = sorted(p for p in settings
                          if p in _NEVER_PASSED or not _SETTING.fullmatch(p))
        if unpassed:
            raise LoginRefused(self._refused_login(
                target, 400, "startup_parameter", f"startup parameter {', '.join(unpassed)} "
                "is not passed to the database: `options` sets anything in words only the "
                "server parses, `replication` opens another protocol; set what a session "
                "needs as startup settings by name, or with SET statements, which the "
                "policy decides", "0A000"))
        encoding = self._encoding(target, [v for k, v in parameters.items()
                                           if k.lower() == _ENCODING])
        writer.write(pg.encode_authentication(3))  # the token, as a cleartext password
        await writer.drain()
        reply = await login.next()
        if reply.kind != b"p":
            raise LoginRefused(self._refused_login(
                target, 400, "protocol_violation", "expected a password message", "08P01"))
        token = pg.password(reply.body)
        passed = {k: v for k, v in parameters.items()
                  if k in PASSED_PARAMETERS and k != _ENCODING}
        passed[_ENCODING] = encoding.name
        session_id = str(uuid.uuid4())
        context = {"database": database, "role": role,
                   "application_name": parameters.get("application_name"),
                   "session_id": session_id, "tls": tls,
                   "roles": list(target.postgres.roles), "database_role": None}
        claims, problem = await self._verifier.verdict(token.strip())
        del token
        opener = Opener(self._pipeline, "postgres", target, claims, session_id,
                        f"/{database}", {"user-agent": parameters.get("application_name", "")},
                        {**_DB_SYSTEM, "db.namespace": database, "db.user": role}, gone)
        act = opener("CONNECT", {**context, "message": "connect", "statement_name": None,
                                 "transaction_status": "idle"})
        exchange = act.exchange
        # The settings named at startup, decided with the login as the SETs they are.
        statements = "; ".join(f"SET {name} TO '{value.replace(chr(39), chr(39) * 2)}'"
                               for name, value in sorted(settings.items()))
        exchange.request = exchange.evidence.request = {
            "method": "CONNECT", "path": f"/{database}", "query": {}, "headers": passed,
            "body": statements or None}
        if statements:
            exchange.evidence.request_body = exchange.kept(statements.encode())
        upstream_settings = self._upstream_settings(target)
        try:
            upstream, release = await self._connect(act, target, upstream_settings,
                                                    {**passed, **settings}, problem)
        finally:
            act.end()
        # Every later exchange of the session says which role it runs as.
        context["database_role"] = upstream.role
        try:
            process_id, secret = await self._key(upstream, upstream_settings, opener, writer)
        except BaseException:
            release()
            upstream.close()
            raise
        writer.write(b"".join([
            pg.encode_authentication(0),
            *upstream.statuses,
            pg.encode_backend_key(process_id, secret),
            *upstream.notices,
            pg.encode_ready(upstream.transaction_status),
        ]))
        opener.listed("postgres")
        session = Session(opener, login.reader, writer,
                          upstream, {"database": database, "parameters": passed,
                                     "policy": context, "encoding": encoding,
                                     "owned": _owned(upstream.role, target.postgres,
                                                     exchange.decision),
                                     "lock_idle_ms": _lock_idle_ms(target.postgres,
                                                                   exchange.decision)},
                          self._settings.max_message_bytes, login.rest())
        self._keys[process_id].session = session
        return session, process_id, release

    def _encoding(self, target: Target, asked: list[str]) -> encodings.Encoding:
        """The encoding the session speaks, by its client_encoding (LoginRefused, saying
        which are read, for one the front does not read, or one named twice: the
        database would take the last, a reader here might take another)."""
        try:
            if len(asked) > 1:
                raise encodings.UnreadEncoding("client_encoding is given twice")
            return encodings.for_session(asked[0] if asked else None)
        except encodings.UnreadEncoding as refused:
            raise LoginRefused(self._refused_login(
                target, 400, "client_encoding", str(refused), "0A000")) from None

    async def _connect(self, act: Act, target: Target, settings: UpstreamSettings,
                       passed: dict[str, str], problem: str | None
                       ) -> tuple[Upstream, Callable[[], None]]:
        """The login's exchange: the token's verdict, then the database reached with
        the gateway's own credential (LoginRefused, recorded, when either fails); and
        what gives the identity's session slot back."""
        assert target.postgres is not None
        release: Callable[[], None] | None = None
        connected: Callable[[], None] | None = None
        exchange = act.exchange
        try:
            act.admit()
            if problem is not None:
                raise Refused(401, "unauthenticated", problem)
            act.check(f"database {target.match.database!r}")
            statements = exchange.request["body"] if exchange.request else None
            if statements:
                await act.read(len(str(statements)))
            role = await login_role(act, target.postgres.roles)
            refuse_owned_change(exchange.meaning,
                                _owned(role, target.postgres, exchange.decision))
            release = self._limits.take(target.name, exchange.who,
                                        target.postgres.max_sessions_per_identity)
            started = time.perf_counter()
            # The role as a startup parameter, not a SET: it is then the session's reset
            # value too, so RESET ROLE or RESET ALL keep it (the gateway refuses them
            # anyway; this is the database's own line).
            upstream = await connect(settings, {**passed, **_kept(
                role, target.postgres, exchange.decision.statement_timeout_seconds)})
            upstream.role = role
            exchange.evidence.upstream_ms = (time.perf_counter() - started) * 1000
            connected = release
        except Refusal as bad:
            answer = exchange.refuse(bad)
            message = refusal_message(answer, "FATAL")
            if bad.status == 401:  # what libpq shows as a wrong password
                message = pg.error("28P01", f"tollgate: {bad.message}",
                                   detail=f"trace id {exchange.trace_id}", severity="FATAL")
            raise LoginRefused(message) from None
        except UpstreamError as exc:
            fields = exc.fields
            exchange.outcome["tollgate.outcome"] = f"upstream refused: {fields.get('M')}"
            log.warning("trace %s: database of target %s refused the gateway: %s",
                        exchange.trace_id, target.name, fields.get("M"))
            raise LoginRefused(pg.error(
                fields.get("C", "08001"), "tollgate could not open the database: "
                f"{fields.get('M', 'no answer')}", detail=f"trace id {exchange.trace_id}",
                severity="FATAL")) from None
        finally:
            if release is not None and connected is None:
                release()  # refused after its slot was taken
        exchange.outcome.update({
            "tollgate.outcome": "connected" if role is None else f"connected as {role}",
            "tollgate.decision.action": "allow",
            "tollgate.postgres.upstream_auth": upstream.auth_method,
            "tollgate.postgres.upstream_tls": upstream.tls,
        })
        assert connected is not None
        return upstream, connected

    def _upstream_settings(self, target: Target) -> UpstreamSettings:
        """How the target's database is reached, with the gateway's credential."""
        settings = target.postgres
        assert settings is not None and target.match.database is not None
        host, port = settings.address
        return UpstreamSettings(
            host=host, port=port, user=settings.user,
            database=settings.database or target.match.database,
            password=self._password(target), sslmode=settings.sslmode,
            ca_file=self._path(settings.ca_file), cert_file=self._path(settings.cert_file),
            key_file=self._path(settings.key_file), channel_binding=settings.channel_binding,
            connect_timeout=settings.connect_timeout_seconds)

    async def _key(self, upstream: Upstream, settings: UpstreamSettings, opener: Opener,
                   writer: asyncio.StreamWriter) -> tuple[int, bytes]:
        """The client's cancel key: the server's pid where no other session holds it (so
        the pid the client holds is the one pg_terminate_backend, NOTIFY and
        pg_stat_activity name), a secret of tollgate's own (the database's never leaves);
        registered in the store with the address the client reached this front at."""
        host, port = writer.get_extra_info("sockname")[:2]
        process_id, secret = await self._shared.new(f"{host}:{port}", 4, upstream.process_id)
        self._keys[process_id] = _Key(secret, settings,
                                      upstream.process_id, upstream.secret, opener)
        return process_id, secret

    async def _cancel(self, process_id: int, secret: bytes) -> None:
        """Ctrl+C: the database's own cancel for the session the key names, when this
        front holds it; else handed to the front the store says holds it."""
        key = self._keys.get(process_id)
        if key is None:
            holder = await self._shared.holder(process_id)
            if holder is None or self._shared.here(holder.address) or \
                    not hmac.compare_digest(holder.secret, secret):
                log.warning("a cancel request with an unknown key (process id %d)",
                            process_id)
                return
            host, _, port = holder.address.rpartition(":")
            await send_cancel(host, int(port), process_id, secret, _HANDOVER_SECONDS)
            return
        if not hmac.compare_digest(key.secret, secret):
            log.warning("a cancel request with a wrong secret (process id %d)", process_id)
            return
        act = key.opener("CANCEL")
        try:
            act.admit()
            send = functools.partial(cancel, key.upstream, key.process_id,
                                     key.upstream_secret)
            if key.session is None:  # the session not relaying yet: nothing of its own runs
                await send()
                outcome = cancels.SENT
            else:
                outcome = await key.session.cancel(send)
            act.exchange.outcome.update({"tollgate.outcome": outcome,
                                         "tollgate.decision.action": "allow"})
        except Refusal as unrecorded:  # the record cannot take it
            act.exchange.outcome["tollgate.outcome"] = f"cancel not sent: {unrecorded}"
        finally:
            act.end()


# Every exchange of the front, its logins too: the conventions' name, and the older one
# (tests/support/semconv.py's LEGACY) that searches written against it still find.
_DB_SYSTEM = {"db.system": "postgresql", "db.system.name": "postgresql"}


def _kept(role: str | None, settings: PostgresTarget,
          statement_seconds: int | None) -> dict[str, str]:
    """The startup parameters the gateway gives a session and keeps from its client: its
    role, how long it may sit idle in a transaction before the server ends it, how long
    one statement may run (the login's decision) — as startup parameters they are the
    session's reset values too: RESET keeps them."""
    kept = {} if role is None else {"role": role}
    if settings.idle_in_transaction_seconds:
        kept["idle_in_transaction_session_timeout"] = str(
            math.ceil(settings.idle_in_transaction_seconds * 1000))
    if statement_seconds is not None:
        kept["statement_timeout"] = str(statement_seconds * 1000)
    return kept


def _owned(role: str | None, settings: PostgresTarget,
           decision: Decision) -> dict[str, int | None]:
    """What the client may not change of what the gateway kept (database_roles.py): its
    role; and its timeouts where the pack restricts the session (its login's decision set
    a statement timeout: agents'), which it may only lower. A dba's pg_dump turns the
    idle timeout off for its long transaction."""
    timeouts = {}
    if decision.statement_timeout_seconds is not None:
        timeouts = {name: int(value) for name, value in _kept(
            None, settings, decision.statement_timeout_seconds).items()}
    return owned_settings(role, timeouts)


def _lock_idle_ms(settings: PostgresTarget, decision: Decision) -> int | None:
    """How long an agent's transaction may sit idle once it locked rows (locks.py), in
    milliseconds; None: as long as any (not an agent's session, or no shorter bound)."""
    bound, idle = settings.lock_idle_seconds, settings.idle_in_transaction_seconds
    if decision.statement_timeout_seconds is None or not bound or (idle and bound >= idle):
        return None
    return math.ceil(bound * 1000)


class _LoginReader:
    """The login's messages one at a time, by a deadline (a read may hold several)."""

    def __init__(self, reader: asyncio.StreamReader, framer: pg.Framer,
                 deadline: float) -> None:
        self.reader, self.framer, self._deadline = reader, framer, deadline
        self._read: deque[pg.Message] = deque()

    @property
    def holds_more(self) -> bool:
        """Whether the client sent more than the messages taken so far."""
        return bool(self._read) or self.framer.buffered > 0

    def rest(self) -> bytes:
        """What the client sent after the messages taken: the session's first bytes."""
        return b"".join(m.raw() for m in self._read) + self.framer.take_rest()

    def remaining(self) -> float:
        """The seconds left of the login."""
        return max(0.0, self._deadline - time.monotonic())

    async def next(self) -> pg.Message:
        while not self._read:
            data = await asyncio.wait_for(self.reader.read(65536), self.remaining())
            if not data:
                if self.framer.buffered:  # bad input, recorded; a bare probe is not
                    raise pg.ProtocolViolation(
                        f"the connection closed {self.framer.buffered} bytes into a "
                        "message (a truncated message)")
                raise ConnectionError("the client left during its login")
            self._read.extend(self.framer.feed(data))
        return self._read.popleft()
