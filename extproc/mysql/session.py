"""One logged-in MySQL client and the gateway's connection to its server: the loop.

MySQL's protocol is a conversation: the client sends one command (sequence id 0) and
reads the server's whole answer before the next. So the session is one loop: a command
is read, decided where it carries SQL, sent on or refused with the protocol's ERR packet
(the session goes on), and its answer relayed packet by packet, each result's rows
masked by column. This module is that loop and the dispatch of each command to the
module handling it; what they share is one `SessionState` (state.py), the bytes move
through one `Wire` (wire.py), and the per-packet decisions on an answer are relay.py's,
which does no I/O.

Every command is decided or refused; none passes undecided:

    COM_QUERY             the text read by the MySQL dialect, each statement decided
                          (queries.py); a KILL of a connection id tollgate gave out is done
                          by tollgate (killing.py, kills.py)
    COM_INIT_DB, COM_FIELD_LIST, COM_RESET_CONNECTION, COM_CHANGE_USER, COM_PING
                          the session's own commands (session_commands.py)
    COM_PROCESS_KILL      decided as the `KILL CONNECTION n` it stands for, done as a KILL
    COM_STMT_*            prepared statements (prepares.py): the prepare's text decided,
                          each execute an exchange of its own under that decision
    COM_QUIT              ends the session
    COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_REGISTER_SLAVE, COM_TABLE_DUMP
                          refused: replication reads every change of the server, which no
                          decision covers
    any other             refused (ER_UNKNOWN_COM_ERROR): COM_STMT_BULK_EXECUTE (tollgate
                          offers no MariaDB capability it needs), COM_SET_OPTION ...

A connection that named no database (the mariadb client's Ctrl-C opens one to send its
KILL) has no server: it takes KILL, COM_PING (answered by tollgate) and COM_QUIT, and a
KILL there is decided on the target of the session it names.

The server never asks for a local file: tollgate does not offer CLIENT_LOCAL_FILES
upstream, and a LOAD DATA LOCAL request arriving anyway is answered with no file
(runs.py). A command whose sequence id is not 0, and a packet the framer refuses (too
large, a continuation out of sequence), are answered with an ERR and end the session,
as the server would end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from extproc.codecs.refusal import Refused
from extproc.mysql.flags import (
    COM_BINLOG_DUMP,
    COM_BINLOG_DUMP_GTID,
    COM_CHANGE_USER,
    COM_FIELD_LIST,
    COM_INIT_DB,
    COM_PING,
    COM_PROCESS_KILL,
    COM_QUERY,
    COM_QUIT,
    COM_REGISTER_SLAVE,
    COM_RESET_CONNECTION,
    COM_STMT_BULK_EXECUTE,
    COM_STMT_PREPARE,
    COM_TABLE_DUMP,
    SERVER_STATUS_IN_TRANS,
    command_name,
)
from extproc.mysql.framing import Framer, Packet, ProtocolViolation, encode
from extproc.mysql.killing import Kills
from extproc.mysql.locks import locking_read
from extproc.mysql.measured import Measure
from extproc.mysql.own import Own
from extproc.mysql.prepares import STATEMENT_METHODS, UNANSWERED, Prepares
from extproc.mysql.queries import Queries
from extproc.mysql.refusals import NO_DATABASE
from extproc.mysql.responses import encode_ok, is_err, parse_err
from extproc.mysql.runs import Runs
from extproc.mysql.session_commands import SessionCommands
from extproc.mysql.state import Binder, SessionState
from extproc.mysql.upstream import IDLE_SETTING
from extproc.mysql.wire import Closed, Wire

if TYPE_CHECKING:
    from extproc.exchange.live import LiveSession
    from extproc.exchange.lock_waits import Holding
    from extproc.exchange.pipeline import Pipeline
    from extproc.mysql.catalog import Catalog
    from extproc.mysql.kills import Connections
    from extproc.mysql.login import Bound, Logins
    from extproc.mysql.upstream import Upstream

log = logging.getLogger("tollgate.mysql")

_REPLICATION = frozenset({COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID,
                          COM_REGISTER_SLAVE, COM_TABLE_DUMP})
# Why a command is not relayed, where more can be said than that it is not.
_UNRELAYED = {COM_STMT_BULK_EXECUTE: (
    "COM_STMT_BULK_EXECUTE (MariaDB's array binding) is not relayed: tollgate offers none "
    "of MariaDB's extended capabilities, so a client executes once per row")}


class Session:
    """A client's commands, decided, and their answers, relayed and masked. `upstream`
    None: a connection that named no database (KILL only)."""

    def __init__(self, pipeline: Pipeline, logins: Logins, bound: Bound,
                 connections: Connections, connection_id: int,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 framer: Framer, upstream: Upstream | None,
                 binder: Binder | None = None,
                 catalogs: Mapping[str, Catalog] | None = None) -> None:
        self.state = state = SessionState(pipeline, logins, bound, connections,
                                          connection_id, upstream, binder, catalogs)
        self.wire = wire = Wire(state, reader, writer, framer)
        self.own = Own(state, wire)
        self.runs = runs = Runs(state, wire)
        self.kills = Kills(state, wire, self.own, runs)
        self.measure = Measure(state, wire, runs, self.own)
        self.queries = queries = Queries(state, wire, runs, self.measure, self.kills)
        self.prepares = Prepares(state, wire, runs, queries, self.measure)
        self.commands = commands = SessionCommands(
            state, wire, runs, queries, lambda: connections.bind(self))
        # The commands of a session with a server, beside COM_QUERY and COM_PROCESS_KILL.
        self._handlers: dict[int, Callable[[Packet], Awaitable[None]]] = {
            COM_PING: commands.ping, COM_INIT_DB: commands.init_db,
            COM_FIELD_LIST: commands.field_list, COM_STMT_PREPARE: self.prepares.prepare,
            **dict.fromkeys(STATEMENT_METHODS, self.prepares.statement_command),
            COM_RESET_CONNECTION: commands.reset_connection,
            COM_CHANGE_USER: commands.change_user}

    @property
    def live(self) -> LiveSession:
        """The session as listed among those open (exchange/live.py)."""
        return self.state.live

    @property
    def connection_id(self) -> int:
        return self.state.connection_id

    @property
    def subject(self) -> str:
        """Whose session it is: the token's subject."""
        return self.state.subject

    @property
    def target_name(self) -> str | None:
        return self.state.target_name

    def holding(self) -> Holding | None:
        """The session, while its transaction is open (exchange/lock_waits.py)."""
        return self.state.holding()

    async def killed(self, query: bool, by: str) -> str:
        """A KILL naming this session, from a connection of `by` (killing.py)."""
        return await self.kills.killed(query, by)

    async def relay(self) -> None:
        """Commands until the client quits or either side goes away."""
        state = self.state
        try:
            while not state.ending and (packet := await self.wire.client_packet()) is not None:
                state.busy = True
                state.last_text = None
                try:
                    await self._command(packet)
                    await self._bound_locks()
                finally:
                    state.busy = state.running = False
                    self.wire.passed()  # a KILL QUERY still waiting finds it ended
        except (Closed, ProtocolViolation, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            state.cancels.ended()
            if state.upstream is not None:
                await state.upstream.close()

    async def _command(self, packet: Packet) -> None:
        payload = packet.payload
        command = payload[0] if payload else -1
        upstream = self.state.upstream
        if packet.seq != 0:
            await self._out_of_order(packet.seq, command_name(command))
        if command == COM_QUIT:
            raise Closed("the client quit")
        if command == COM_QUERY:
            await self.queries.query(packet)
        elif command == COM_PROCESS_KILL:
            await self.queries.process_kill(packet)
        elif upstream is None and command == COM_INIT_DB and self.state.binder:
            await self.commands.bind(packet)
        elif upstream is None:
            self._without_database(command)
        elif (handler := self._handlers.get(command)) is not None:
            await handler(packet)
        else:
            self._unrelayed(command)

    async def _bound_locks(self) -> None:
        """On MariaDB, an agent's transaction that wrote idles lock_idle_seconds at most
        (idle_write_transaction_timeout, set with the session); one that only locked rows
        by reading (`SELECT ... FOR UPDATE`, `LOCK IN SHARE MODE`) would idle the minute
        every transaction may, every other session needing those rows waiting: after such
        a read the front lowers idle_transaction_timeout for its transaction, and sets it
        back once the transaction has ended."""
        state = self.state
        bound = state.upstream.lock_bound if state.upstream is not None else None
        if bound is None:
            return
        open_ = bool(state.status & SERVER_STATUS_IN_TRANS)
        if open_ and not state.locks_bounded and state.last_text is not None \
                and locking_read(state.last_text):
            seconds, state.locks_bounded = bound[0], True
        elif not open_ and state.locks_bounded:
            seconds, state.locks_bounded = bound[1], False
        else:
            return
        answer = await self.own.packet(f"SET SESSION {IDLE_SETTING} = {seconds}")
        if is_err(answer.payload):
            log.warning("the session's idle bound could not be set: %s",
                        parse_err(answer.payload).message)

    async def _out_of_order(self, seq: int, name: str) -> None:
        """A command starts a conversation at sequence id 0; the server answers any other
        with ER_NET_PACKETS_OUT_OF_ORDER and hangs up, so the front does, recorded, never
        relaying a command the server would not take."""
        self.runs.refuse(name, Refused(400, "packets_out_of_order", f"a command with "
                                       f"sequence id {seq}, not 0: the session ends"),
                         seq=(seq + 1) & 0xFF)
        with contextlib.suppress(ConnectionError):
            await self.wire.drain()
        raise Closed("a command out of sequence")

    def _unrelayed(self, command: int) -> None:
        """A command tollgate does not relay: replication, saying so, and any other."""
        name = command_name(command)
        if command in _REPLICATION:
            self.runs.refuse(name, Refused(
                403, "replication", f"{name} is replication, which tollgate refuses: a "
                "replica reads every change the server makes, which no decision covers"))
            return
        self.runs.refuse(name, Refused(400, "unsupported_command", _UNRELAYED.get(command, (
            f"{name} is not relayed by tollgate's MySQL front (COM_QUERY, COM_INIT_DB, "
            "COM_FIELD_LIST, COM_PROCESS_KILL, prepared statements, COM_RESET_CONNECTION, "
            "COM_CHANGE_USER, COM_PING and COM_QUIT are)"))))

    def _without_database(self, command: int) -> None:
        """A connection that named no database: COM_PING answered here; no command but
        KILL reaches anything."""
        state = self.state
        if command == COM_PING:
            self.wire.write(encode(1, encode_ok(
                status=state.status, capabilities=state.bound.capabilities)))
        else:
            self.runs.refuse(command_name(command), Refused(400, "no_database", NO_DATABASE),
                             answered=command not in UNANSWERED)
