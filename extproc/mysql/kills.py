"""KILL from one connection to another: the connection ids tollgate gives out, and the way
a KILL naming one reaches the session, wherever it is held.

A client stops its statement from a second connection: the mariadb client's Ctrl-C
connects again (no database) and sends `KILL QUERY <id>`, drivers send the same or
COM_PROCESS_KILL, with the id the first connection's handshake announced. That id is
tollgate's own (the server's thread id never reaches the client), unique across the
workers and replicas behind one Envoy listener (store/session_keys.py, as PostgreSQL's
cancel keys):

    KILL QUERY 1234567, on any worker of any replica (front A)
      whose is it? held here, or the store names the front holding it (B)
        no id of tollgate's (a server thread id), another identity's, another
        target's session: refused, saying which
      the pack decides the KILL (input.mysql.kill)
      held here: done here; else handed over to B (its address, the session's secret)
    the session's front (B)
      a statement held for approval: ends, refused as interrupted (ER_QUERY_INTERRUPTED)
      else KILL [QUERY] <its thread id>, on a connection of the gateway's own account
        (a KILL QUERY only while what the server runs is the client's, never the
        front's own statements: exchange/cancels.py);
      KILL CONNECTION then ends the session

The handover is a connection to B's listener, sending in its login's place a packet no
client sends (a HandshakeResponse41 has CLIENT_PROTOCOL_41 set; this one's first four
bytes are zero): the id, the session's secret from the store, what to kill and for whom.
B answers OK, or ERR with the refusal.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from extproc.codecs.refusal import Refusal, Refused, Unavailable, refusal_of
from extproc.config import Target
from extproc.mysql.flags import CLIENT_PROTOCOL_41
from extproc.mysql.framing import Framer, Packet, ProtocolViolation, Reader, encode, lenenc_str
from extproc.mysql.responses import Err, encode_err, encode_ok, is_err, parse_err, parse_ok

if TYPE_CHECKING:
    from extproc.store.session_keys import SessionKeys

log = logging.getLogger("tollgate.mysql")

_HANDOVER = b"\x00\x00\x00\x00tollgate-kill\x00"
_SECRET_BYTES = 16
# How long handing a KILL to the front holding its session may take.
_HANDOVER_SECONDS = 5.0
# The server's own codes for these refusals, which clients and drivers know:
# ER_NO_SUCH_THREAD, ER_KILL_DENIED_ERROR, ER_QUERY_INTERRUPTED.
CODES = {"unknown_connection": (1094, "HY000"), "kill_denied": (1095, "HY000"),
         "interrupted": (1317, "70100")}
_ERRORS = {1094: ("unknown_connection", 404), 1095: ("kill_denied", 403)}
# The forms tollgate translates: what clients send (mariadb's Ctrl-C: KILL QUERY n).
# HARD/SOFT, KILL QUERY ID (a query id) and KILL USER name the server's own, and are
# not read (the pack refuses what sqlglot cannot read).
_KILL = re.compile(r"\s*KILL\s+(?:(QUERY|CONNECTION)\s+)?(\d{1,10})\s*;?\s*",
                   re.IGNORECASE | re.ASCII)


class Kill(NamedTuple):
    """A KILL: the connection id it names, and whether only its statement ends
    (KILL QUERY) or the connection too."""

    connection_id: int
    query: bool

    def text(self) -> str:
        return f"KILL {'QUERY' if self.query else 'CONNECTION'} {self.connection_id}"


def read_kill(text: str) -> Kill | None:
    """The KILL `text` is, alone (None: another form, or more than a KILL)."""
    match = _KILL.fullmatch(text)
    if match is None:
        return None
    return Kill(int(match[2]), (match[1] or "").upper() == "QUERY")


class Killable(Protocol):
    """What a session shows and does for a KILL naming it."""

    @property
    def connection_id(self) -> int: ...

    @property
    def subject(self) -> str: ...

    @property
    def target_name(self) -> str | None: ...

    async def killed(self, query: bool, by: str) -> str:
        """What was done (for the killer's record), or Refusal."""
        ...


@dataclass(frozen=True, slots=True)
class Victim:
    """The session a KILL names: whose, on which target (None: a connection naming no
    database), and where: held by this process (`session`), else by the front at
    `address`, which takes it with the session's `secret`."""

    connection_id: int
    subject: str
    target: str | None
    session: Killable | None = None
    address: str = ""
    secret: bytes = b""


class Handover(NamedTuple):
    connection_id: int
    query: bool
    secret: bytes
    by: str


def is_handover(payload: bytes) -> bool:
    return payload.startswith(_HANDOVER)


def encode_handover(handover: Handover) -> bytes:
    return b"".join([_HANDOVER, bytes((handover.query,)),
                     handover.connection_id.to_bytes(4, "little"),
                     lenenc_str(handover.secret), lenenc_str(handover.by.encode())])


def parse_handover(payload: bytes) -> Handover:
    r = Reader(payload, len(_HANDOVER))
    query, connection_id = r.int1(), r.int4()
    secret, by = r.lenenc_str(), r.lenenc_str()
    r.done()
    return Handover(connection_id, bool(query), secret, by.decode("utf-8", "replace"))


def refusal_err(refused: Refusal) -> bytes:
    """A refusal as the ERR a handover answers with (the killer's front reads it back)."""
    code, sqlstate = CODES.get(refused.error, (1105, "HY000"))
    return encode_err(code, sqlstate, refused.message)


def _refusal_of(err: Err) -> Refusal:
    error, status = _ERRORS.get(err.code, ("kill_failed", 502))
    return refusal_of(status, error, err.message)


class Connections:
    """One front's connection ids: given out at each handshake, bound to their session
    once it logs in, forgotten when it ends; and KILL between sessions, here or handed
    over. `kill_thread`: KILL [QUERY] of a server thread of a target, on a connection of
    the gateway's own (UpstreamError when the server refuses)."""

    def __init__(self, keys: SessionKeys,
                 kill_thread: Callable[[Target, int, bool], Awaitable[None]]) -> None:
        self._keys, self.kill_thread = keys, kill_thread
        self._secrets: dict[int, bytes] = {}
        self._sessions: dict[int, Killable] = {}

    async def open(self, address: str) -> int:
        """An id for the connection a client opened to this front at `address`."""
        connection_id, secret = await self._keys.new(address, _SECRET_BYTES)
        self._secrets[connection_id] = secret
        return connection_id

    async def bind(self, session: Killable) -> None:
        """The session its id names, from its login on (again when it changes user)."""
        self._sessions[session.connection_id] = session
        unshared = await self._keys.bind(session.connection_id, session.target_name,
                                         session.subject)
        if unshared is not None:
            log.warning("connection %d: its identity not shared (%s): a KILL naming it "
                        "from another worker or replica is refused or decided on the one "
                        "before", session.connection_id, unshared)

    async def close(self, connection_id: int) -> None:
        self._sessions.pop(connection_id, None)
        self._secrets.pop(connection_id, None)
        await self._keys.forget(connection_id)

    async def find(self, connection_id: int) -> Victim | None:
        """The logged-in session `connection_id` names, here or elsewhere (None: no such
        session; a store that cannot answer finds only this process's)."""
        session = self._sessions.get(connection_id)
        if session is not None:
            return Victim(connection_id, session.subject, session.target_name, session)
        if connection_id in self._secrets:
            return None  # here, and not logged in
        holder = await self._keys.holder(connection_id)
        if holder is None or holder.subject is None or self._keys.here(holder.address):
            return None
        return Victim(connection_id, holder.subject, holder.target, None, holder.address,
                      holder.secret)

    async def kill(self, victim: Victim, query: bool, by: str) -> str:
        """The KILL done by the session's own front: what was done, or Refusal."""
        if victim.session is not None:
            return await victim.session.killed(query, by)
        host, _, port = victim.address.rpartition(":")
        request = Handover(victim.connection_id, query, victim.secret, by)
        try:
            async with asyncio.timeout(_HANDOVER_SECONDS):
                reader, writer = await asyncio.open_connection(host, int(port))
                try:
                    packets = _Packets(reader)
                    greeting = await packets.next()
                    writer.write(encode((greeting.seq + 1) & 0xFF,
                                           encode_handover(request)))
                    reply = (await packets.next()).payload
                finally:
                    writer.close()
        except (OSError, TimeoutError, ProtocolViolation) as exc:
            raise Unavailable(502, "kill_failed", f"the front holding connection "
                           f"{victim.connection_id} ({victim.address}) did not answer: "
                           f"{exc or type(exc).__name__}") from None
        if is_err(reply):
            raise _refusal_of(parse_err(reply))
        return parse_ok(reply, CLIENT_PROTOCOL_41).info

    async def serve(self, payload: bytes) -> bytes:
        """A KILL handed over by another front: the answer's payload (OK, or ERR)."""
        request = parse_handover(payload)
        secret = self._secrets.get(request.connection_id, b"")
        session = self._sessions.get(request.connection_id)
        if session is None or not hmac.compare_digest(secret, request.secret):
            log.warning("a KILL handed over for connection %d, which no session here "
                        "holds (or with a wrong secret)", request.connection_id)
            return refusal_err(Refused(404, "unknown_connection", f"connection "
                                        f"{request.connection_id} ended"))
        try:
            done = await session.killed(request.query, request.by)
        except Refusal as refused:
            return refusal_err(refused)
        return encode_ok(info=done)


class _Packets:
    """A handover's packets, as they complete."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader, self._framer = reader, Framer(1 << 16)
        self._read: list[Packet] = []

    async def next(self) -> Packet:
        while not self._read:
            data = await self._reader.read(4096)
            if not data:
                raise ConnectionResetError("the connection closed")
            self._read.extend(self._framer.feed(data))
        return self._read.pop(0)
