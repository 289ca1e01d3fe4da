"""One logged-in MySQL client and the gateway's connection to its server.

MySQL's protocol is a conversation: the client sends one command (sequence id 0) and
reads the server's whole answer before the next. So the session is one loop: a command
is read, decided where it carries SQL, sent on or refused with the protocol's ERR packet
(the session goes on), and its answer relayed packet by packet, each result's rows
masked by column.

Every command is decided or refused; none passes undecided:

    COM_QUERY             the text read by the MySQL dialect, each statement decided; a
                          KILL of a connection id tollgate gave out is done by tollgate
                          (kills.py)
    COM_INIT_DB           decided as the `USE` it stands for
    COM_FIELD_LIST        decided as the `SHOW COLUMNS FROM t [LIKE 'w']` it stands for;
                          its column definitions relayed
    COM_PROCESS_KILL      decided as the `KILL CONNECTION n` it stands for, done as a KILL
    COM_STMT_PREPARE      its text decided as a COM_QUERY's (a KILL is not prepared: it is
                          tollgate's to do); prepared, the statement gets an id of
                          tollgate's own (statements.py)
    COM_STMT_EXECUTE      an exchange of its own under its prepare's decision (its
                          parameters in the record), its binary rows masked
    COM_STMT_SEND_LONG_DATA, COM_STMT_RESET, COM_STMT_CLOSE
                          sent on under the server's id of the statement
    COM_STMT_FETCH        refused, and so is an execute asking for a cursor: server-side
                          cursors are not relayed
    COM_RESET_CONNECTION  relayed: it carries nothing; the statement ids go with it
    COM_CHANGE_USER       a token asked for and verified as at login, the session rebound to
                          it on the same target; the server's session reset by the gateway's
                          own account (COM_RESET_CONNECTION, COM_INIT_DB if a database was
                          asked), the statement ids with it. Refused, the connection ends, as
                          a failed login's would
    COM_PING              carries nothing: relayed
    COM_QUIT              ends the session
    COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_REGISTER_SLAVE, COM_TABLE_DUMP
                          refused: replication reads every change of the server, which no
                          decision covers
    any other             refused (ER_UNKNOWN_COM_ERROR): COM_STMT_BULK_EXECUTE (tollgate
                          offers no MariaDB capability it needs), COM_SET_OPTION ...

A command naming a prepared statement by an id tollgate did not hand out, or one closed,
is refused (ER_UNKNOWN_STMT_HANDLER; CLOSE and SEND_LONG_DATA have no answer in the
protocol, so theirs is none, as the server's would be) and recorded, never sent.

A connection that named no database (the mariadb client's Ctrl-C opens one to send its
KILL) has no server: it takes KILL, COM_PING (answered by tollgate) and COM_QUIT, and a
KILL there is decided on the target of the session it names.

A text is read as the server lexes it: backslashes as escapes or not as the server's
status said where it is the session's (_follow_sql_mode), bytes that are no UTF-8 (and
NUL) taken inside string literals alone (_sql).

The server never asks for a local file: tollgate does not offer CLIENT_LOCAL_FILES
upstream, and a LOAD DATA LOCAL request arriving anyway is answered with no file. A
command whose sequence id is not 0, and a packet the framer refuses (too large, a
continuation out of sequence), are answered with an ERR and end the session, as the
server would end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from extproc import ledger
from extproc.codecs.refusal import OverLimit, Refusal, Refused, Unavailable
from extproc.exchange.act import Act, Opener
from extproc.exchange.cancels import SENT, CancelGate
from extproc.exchange.database_roles import login_role, refuse_owned_change
from extproc.exchange.effect import (
    Effect,
    Measured,
    Remembered,
    judged,
    to_come,
    unmeasured,
)
from extproc.exchange.lock_waits import Holding
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.state import Answer, Exchange, held_because, refusal_reasons
from extproc.interpret import BACKSLASH_ESCAPES, SERVER_VERSION
from extproc.interpret.sql import analyze
from extproc.interpret.sql.sqlglot_reader import sql_mode_change, within_strings
from extproc.masking.record_mask import RECORD_MASK
from extproc.mysql import effect
from extproc.mysql.catalog import Catalog, CatalogUnavailable
from extproc.mysql.commands import parse_change_user, parse_field_list, parse_process_kill
from extproc.mysql.flags import (
    CLIENT_DEPRECATE_EOF,
    CLIENT_PROTOCOL_41,
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
    COM_STMT_CLOSE,
    COM_STMT_EXECUTE,
    COM_STMT_FETCH,
    COM_STMT_PREPARE,
    COM_STMT_RESET,
    COM_STMT_SEND_LONG_DATA,
    COM_TABLE_DUMP,
    SERVER_MORE_RESULTS_EXISTS,
    SERVER_STATUS_AUTOCOMMIT,
    SERVER_STATUS_IN_TRANS,
    SERVER_STATUS_NO_BACKSLASH_ESCAPES,
    command_name,
)
from extproc.mysql.framing import Framer, Packet, ProtocolViolation, Reader, encode
from extproc.mysql.kills import CODES, Connections, Kill, Victim, read_kill
from extproc.mysql.locks import locking_read
from extproc.mysql.login import Bound, Logins, opener
from extproc.mysql.prepared import (
    CURSOR_TYPE_FOR_UPDATE,
    CURSOR_TYPE_READ_ONLY,
    CURSOR_TYPE_SCROLLABLE,
    StmtExecute,
    bind_types,
    encode_prepare_ok,
    encode_statement_command,
    parse_long_data,
    parse_prepare_ok,
    parse_stmt_execute,
    statement_id,
    with_statement_id,
)
from extproc.mysql.responses import (
    Err,
    encode_err,
    encode_ok,
    ends_rows,
    is_eof,
    is_err,
    is_ok,
    parse_eof,
    parse_err,
    parse_ok,
    without_status,
)
from extproc.mysql.results import ResultMasker, error_message, record_sample, unreadable
from extproc.mysql.resultsets import (
    ColumnDefinition,
    encode_binary_row,
    encode_column_definition,
    encode_text_row,
    parse_binary_row,
    parse_column_definition,
    parse_text_row,
    text_rows,
)
from extproc.mysql.statements import LongData, Prepared, Statements
from extproc.mysql.upstream import (
    IDLE_SETTING,
    Upstream,
    UpstreamError,
    lock_bound,
    owned,
    setup_commands,
    setup_detail,
)

if TYPE_CHECKING:
    from extproc.config import Target
    from extproc.policy import Decision

log = logging.getLogger("tollgate.mysql")

_READ_SIZE = 256 * 1024
# How long a KILL QUERY waits for the front's own statements to end.
_KILL_WAIT_SECONDS = 10.0
_REPLICATION = frozenset({COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID,
                          COM_REGISTER_SLAVE, COM_TABLE_DUMP})
# ER_TABLEACCESS_DENIED_ERROR, and ER_SPECIFIC_ACCESS_DENIED_ERROR for what needs a
# privilege beyond tables (the server's, roles, settings).
_ACCESS_DENIED, _PRIVILEGE_DENIED = 1142, 1227
_PRIVILEGE_RULES = frozenset({"sql.privilege", "sql.configuration", "sql.server_access",
                              "sql.setting", "sql.dynamic"})
# The server's own code for what tollgate refuses, where the client knows one:
# ER_DBACCESS_DENIED_ERROR, ER_NO_DB_ERROR, ER_SPECIFIC_ACCESS_DENIED_ERROR (a
# replication privilege), ER_UNKNOWN_COM_ERROR, ER_UNKNOWN_STMT_HANDLER,
# ER_NOT_SUPPORTED_YET, and KILL's (kills.py).
_CODES = {**CODES, "database_refused": (1044, "42000"), "no_database": (1046, "3D000"),
          "replication": (_PRIVILEGE_DENIED, "42000"),
          "unsupported_command": (1047, "08S01"), "unknown_statement": (1243, "HY000"),
          "unsupported_cursor": (1235, "42000"),
          "packets_out_of_order": (1156, "08S01")}
_NO_DATABASE = ("this connection named no database: it takes KILL [QUERY] <connection id> "
                "alone, as the mariadb client's Ctrl-C sends; name a target's database to "
                "run statements (mariadb -D DATABASE)")
# The commands naming a prepared statement, as the record names them; those the server
# never answers (a refusal of theirs is answered with nothing either).
_STATEMENT_METHODS = {COM_STMT_EXECUTE: "EXECUTE", COM_STMT_SEND_LONG_DATA: "LONG_DATA",
                      COM_STMT_RESET: "RESET", COM_STMT_CLOSE: "CLOSE",
                      COM_STMT_FETCH: "FETCH"}
_UNANSWERED = frozenset({COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE})
# Why a command is not relayed, where more can be said than that it is not.
_UNRELAYED = {COM_STMT_BULK_EXECUTE: (
    "COM_STMT_BULK_EXECUTE (MariaDB's array binding) is not relayed: tollgate offers none "
    "of MariaDB's extended capabilities, so a client executes once per row")}
_CURSORS = CURSOR_TYPE_READ_ONLY | CURSOR_TYPE_FOR_UPDATE | CURSOR_TYPE_SCROLLABLE
_NO_CURSORS = ("tollgate does not relay server-side cursors (COM_STMT_FETCH, an execute "
               "asking for a cursor): execute without one, and read the rows as they come")


# The server's errors that say the account (or its role) lacks a privilege: access to a
# database, a table, a column, a routine, or one of the global privileges.
_PRIVILEGE_ERRORS = frozenset({1044, 1142, 1143, 1227, 1370})


# `SET [SESSION] character_set_results = binary | utf8mb4`, alone: what mysqldump sends
# around SHOW CREATE TABLE (and back). The front answers it itself (_results_view).
_RESULTS_VIEW = re.compile(
    r"\s*SET\s+(?:SESSION\s+|LOCAL\s+|@@SESSION\.|@@LOCAL\.|@@)?character_set_results\s*=\s*"
    r"(?P<q>'?)(?P<set>binary|utf8mb4)(?P=q)\s*;?\s*", re.IGNORECASE)
_BINARY = 63  # the binary character set's id, in a column definition
# What a statement's text may hold inside its string literals alone: a byte no UTF-8
# reading took (kept as a surrogate), and NUL (a BLOB's, under NO_BACKSLASH_ESCAPES).
_UNREAD = re.compile("[\x00\udc80-\udcff]")
# Where a connection that named no database may keep a setting until it names one.
_KEPT = ("kept: a connection that named no database runs its settings once it names "
         "one (COM_INIT_DB), each decided then on that database's target")
# A binder: a connection that named no database bound to the target of `database`, as
# its login would have (the front's steps, recorded as a CONNECT): the server reached
# and the session's new Bound, or the ERR packet refusing it.
Binder = Callable[[Bound, str], Awaitable["tuple[Upstream, Bound] | bytes"]]


class Closed(Exception):
    """Either side went away, or sent what is not the protocol: the session ends."""


def refusal_packet(answer: Answer, seq: int = 1) -> bytes:
    """tollgate's refusal as an ERR packet: the reasons (a held statement's: where its
    approval stands, who denied it and why), the rules, an approval's state, why it was
    held and the trace id in its message, which every client shows; its code the server's own
    for that refusal where there is one (_CODES), else the one its status stands for."""
    body = answer.body
    reasons = refusal_reasons(answer)
    notes = [f"trace id {answer.trace_id}"]
    rules = body.get("rules") or []
    if rules:
        notes.insert(0, "rules: " + ", ".join(rules))
    if body.get("approval_id"):
        notes.insert(0, f"approval {body['approval_id']} ({body.get('status')})"
                     + held_because(answer))
    if answer.error in _CODES:
        code, sqlstate = _CODES[answer.error]
    elif answer.status == 403:
        code = _PRIVILEGE_DENIED if _PRIVILEGE_RULES & set(rules) else _ACCESS_DENIED
        sqlstate = "42000"
    elif answer.status in (401, 407):
        code, sqlstate = 1045, "28000"
    else:
        code, sqlstate = 1105, "HY000"  # ER_UNKNOWN_ERROR
    message = "tollgate: " + "; ".join(map(str, reasons)) + f" ({'; '.join(notes)})"
    return encode(seq, encode_err(code, sqlstate, message))


@dataclass(slots=True)
class Run:
    """An exchange in flight: a command and its answer (`kill`: a KILL tollgate does,
    and the session it names)."""

    act: Act
    rows: int = 0
    results: list[str] = field(default_factory=list)
    sample: bytearray = field(default_factory=bytearray)
    error: str | None = None
    kill: tuple[Kill, Victim] | None = None
    # A write whose effect the server is to measure before the verdict (effect.py).
    measure: bool = False
    # The stored functions a text that names no write calls (effect.py: measured too).
    routines: list[effect.Target] = field(default_factory=list)

    @property
    def exchange(self) -> Exchange:
        return self.act.exchange


@dataclass(slots=True)
class Measuring:
    """A write run where its effect is measured: its answer held back (`answer`) until
    the verdict, in the front's transaction (`mode` "commit": to commit; "keep": left
    open, as autocommit off would leave it) or a savepoint of the client's."""

    raw: bytes
    binary: bool
    mode: str
    ran: bool = False
    answer: list[bytes] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        self.answer.append(data)

    async def drain(self) -> None:
        pass


class Session:
    """A client's commands, decided, and their answers, relayed and masked. `upstream`
    None: a connection that named no database (KILL only)."""

    def __init__(self, pipeline: Pipeline, logins: Logins, bound: Bound,
                 connections: Connections, connection_id: int,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 framer: Framer, upstream: Upstream | None,
                 binder: Binder | None = None,
                 catalogs: Mapping[str, Catalog] | None = None) -> None:
        # The pipeline opens the session's acts (again as it is bound to another
        # identity or database); the masker masks what it relays beside them.
        self._pipeline, self._logins = pipeline, logins
        self._bound, self._open = bound, opener(pipeline, bound)
        self._masker = self._open.masker
        # The session as listed among those open (live.py): every opener of its acts,
        # as it is bound again, counts into it.
        self.live = self._open.listed("mysql")
        self._connections, self.connection_id = connections, connection_id
        self._reader, self._framer = reader, framer
        # The client's stream; where answers go (held back while a write is measured).
        self._client = writer
        self._writer: asyncio.StreamWriter | Measuring = writer
        self._upstream = upstream
        self._capabilities = upstream.capabilities if upstream else CLIENT_PROTOCOL_41
        # The server's status as its last answer gave it (in a transaction or not).
        self._status = upstream.status if upstream else SERVER_STATUS_AUTOCOMMIT
        # How the server lexes a backslash in a string (True: an escape), as its status
        # said where it is the session's (_follow_sql_mode); None: not known, every text
        # read both ways. A connection that named no database has no server.
        self._backslashes = _escapes(self._status) if upstream else None
        # What the catalog said of the stored functions statements called (_routines).
        self._remembered: Remembered[effect.Target] = Remembered()
        # Packets framed and not yet taken; the server's login may have read past its end.
        self._from_client: deque[Packet] = deque()
        self._from_server: deque[Packet] = deque(upstream.pending if upstream else ())
        self._statements = Statements()
        # The commands of a session with a server, beside COM_QUERY and COM_PROCESS_KILL.
        self._handlers: dict[int, Callable[[Packet], Awaitable[None]]] = {
            COM_PING: self._ping, COM_INIT_DB: self._init_db,
            COM_FIELD_LIST: self._field_list, COM_STMT_PREPARE: self._prepare,
            **dict.fromkeys(_STATEMENT_METHODS, self._statement_command),
            COM_RESET_CONNECTION: self._reset_connection,
            COM_CHANGE_USER: self._change_user}
        # A statement waiting for approval (a KILL QUERY ends it); a command in flight;
        # a KILL CONNECTION's end, once that command is answered.
        self._hold: asyncio.Future[None] | None = None
        self._busy = self._ending = False
        # A KILL QUERY never lands on the front's own statements (exchange/cancels.py):
        # how many of them are running, and a future that ends with the last.
        self._cancels = CancelGate()
        self._owning = 0
        self._own_done: asyncio.Future[None] | None = None
        # The text of the client's last statement, and whether the front has lowered
        # the session's idle bound for the transaction it locked rows in (_bound_locks).
        self._last_text: str | None = None
        self._locks_bounded = False
        # The catalog a write's measurement reads, by target, where it has a catalog
        # role (catalog.py); elsewhere the session's own role reads it.
        self._catalogs = catalogs or {}
        # A connection that named no database: its settings kept until it names one,
        # and how it is bound then.
        self._kept: list[str] = []
        self._binder = binder
        # The client's view of character_set_results: binary (mysqldump's, around SHOW
        # CREATE TABLE) while the server's stays utf8mb4 (_results_view).
        self._binary_results = False
        # Status bits the client's answers do not show: the front's transaction around
        # a write it measures, where the client opened none.
        self._hidden_status = 0

    def _opener(self, bound: Bound, target: Target | None = None) -> Opener:
        """An opener of the session's acts as `bound` (with `target`, else the bound
        one), counting into its listing, which names who and where it is bound now."""
        opens = opener(self._pipeline, bound, target)
        opens.live = self.live
        self.live.identity = self._pipeline.subject(bound.claims)
        self.live.target = bound.target.name if bound.target is not None else None
        return opens

    def holding(self) -> Holding | None:
        """The session, while its transaction is open (the locks its statements took
        are held till it ends: exchange/lock_waits.py asks who waits on them)."""
        if self._upstream is None or self._bound.target is None \
                or not self._status & SERVER_STATUS_IN_TRANS:
            return None
        return Holding(self.live.session_id, self._open.identity, self._bound.target,
                       self._upstream.connection_id)

    @property
    def subject(self) -> str:
        """Whose session it is: the token's subject."""
        return str((self._bound.claims or {}).get("sub") or "")

    @property
    def target_name(self) -> str | None:
        return self._bound.target.name if self._bound.target is not None else None

    async def relay(self) -> None:
        """Commands until the client quits or either side goes away."""
        try:
            while not self._ending and (packet := await self._client_packet()) is not None:
                self._busy = True
                self._last_text = None
                try:
                    await self._command(packet)
                    await self._bound_locks()
                finally:
                    self._busy = False
        except (Closed, ProtocolViolation, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if self._upstream is not None:
                await self._upstream.close()

    # -- reading ------------------------------------------------------------------------

    async def _client_packet(self) -> Packet | None:
        while not self._from_client:
            data = await self._reader.read(_READ_SIZE)
            if not data:
                return None
            try:
                self._from_client.extend(self._framer.feed(data))
            except ProtocolViolation as exc:
                # Told why before the session ends (ER_NET_PACKET_TOO_LARGE's code).
                if exc.reply_seq is not None:
                    self._writer.write(encode(exc.reply_seq, encode_err(
                        1153, "08S01", f"tollgate: {exc}; the session ends")))
                    with contextlib.suppress(ConnectionError):
                        await self._writer.drain()
                raise
        return self._from_client.popleft()

    async def _next_client_packet(self) -> Packet:
        """The client's next packet, inside a command (Closed when it left)."""
        packet = await self._client_packet()
        if packet is None:
            raise Closed("the client left inside a command")
        return packet

    @property
    def _server(self) -> Upstream:
        assert self._upstream is not None, "a connection naming no database has no server"
        return self._upstream

    async def _server_packet(self) -> Packet:
        while not self._from_server:
            data = await self._server.reader.read(_READ_SIZE)
            if not data:
                raise Closed("the server closed the connection")
            self._from_server.extend(self._server.framer.feed(data))
        return self._from_server.popleft()

    # -- commands -----------------------------------------------------------------------

    async def _command(self, packet: Packet) -> None:
        payload = packet.payload
        command = payload[0] if payload else -1
        if packet.seq != 0:
            await self._out_of_order(packet.seq, command_name(command))
        if command == COM_QUIT:
            raise Closed("the client quit")
        if command == COM_QUERY:
            text = _sql(payload[1:], self._backslashes)
            if text is not None and (view := _RESULTS_VIEW.fullmatch(text)) is not None \
                    and self._upstream is not None:
                self._results_view(text, view.group("set").lower() == "binary")
            elif self._upstream is None and text is not None and _a_setting(text):
                self._keep(text)
            else:
                await self._statement(packet, "QUERY", text)
        elif command == COM_PROCESS_KILL:
            await self._process_kill(packet)
        elif self._upstream is None and command == COM_INIT_DB and self._binder:
            await self._bind(packet)
        elif self._upstream is None:
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
        bound = self._upstream.lock_bound if self._upstream is not None else None
        if bound is None:
            return
        open_ = bool(self._status & SERVER_STATUS_IN_TRANS)
        if open_ and not self._locks_bounded and self._last_text is not None \
                and locking_read(self._last_text):
            seconds, self._locks_bounded = bound[0], True
        elif not open_ and self._locks_bounded:
            seconds, self._locks_bounded = bound[1], False
        else:
            return
        answer = await self._own_packet(f"SET SESSION {IDLE_SETTING} = {seconds}")
        if is_err(answer.payload):
            log.warning("the session's idle bound could not be set: %s",
                        parse_err(answer.payload).message)

    async def _ping(self, packet: Packet) -> None:
        self._server.writer.write(packet.raw())
        self._writer.write((await self._server_packet()).raw())

    async def _out_of_order(self, seq: int, name: str) -> None:
        """A command starts a conversation at sequence id 0; the server answers any other
        with ER_NET_PACKETS_OUT_OF_ORDER and hangs up, so the front does, recorded, never
        relaying a command the server would not take."""
        self._refuse(name, Refused(400, "packets_out_of_order", f"a command with sequence "
                                    f"id {seq}, not 0: the session ends"),
                     seq=(seq + 1) & 0xFF)
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()
        raise Closed("a command out of sequence")

    async def _init_db(self, packet: Packet) -> None:
        """COM_INIT_DB, decided as its USE; the target's own database name (the one the
        client logs in with) sent on as the server's database it stands for."""
        name = _name(packet.payload[1:])
        target = self._bound.target
        if name == self._bound.database and target is not None and target.mysql is not None \
                and target.mysql.database:
            packet = Packet(packet.seq, bytes((COM_INIT_DB,))
                               + target.mysql.database.encode())
        await self._statement(packet, "INIT_DB", None if name is None
                              else "USE `" + name.replace("`", "``") + "`")

    def _results_view(self, text: str, binary: bool) -> None:
        """`SET character_set_results = binary` (or back to utf8mb4), answered by the front:
        the server's results stay utf8mb4, which the front reads and masks, and the
        column definitions the client reads say binary (63) until it sets them back, as
        the server's would. Nothing reaches the server; recorded all the same."""
        if self._answered_here(text, {
                "tollgate.outcome": "answered by tollgate: the server's results stay utf8mb4; "
                                    f"column definitions say {'binary' if binary else 'utf8mb4'}",
                "tollgate.decision.action": "allow"}):
            self._binary_results = binary

    def _keep(self, text: str) -> None:
        """A setting on a connection that named no database (mysqldump's, before its
        COM_INIT_DB): answered OK, recorded as kept, run once the connection names its
        database, decided then (_bind)."""
        if self._answered_here(text, {"tollgate.outcome": _KEPT}):
            self._kept.append(text)

    def _answered_here(self, text: str, outcome: dict[str, Any]) -> bool:
        """A statement the front answers itself, with OK (nothing reaches the server),
        recorded with `outcome`; False when it cannot be recorded (then refused)."""
        act = self._act("QUERY")
        try:
            act.admit()
        except Refusal as exc:  # the record cannot take it
            self._writer.write(refusal_packet(act.refusal(exc, "statement")))
            return False
        self._request(act.exchange, "QUERY", text)
        act.exchange.outcome.update(outcome)
        act.end()
        self._writer.write(encode(1, encode_ok(status=self._status,
                                                     capabilities=self._bound.capabilities)))
        return True

    async def _bind(self, packet: Packet) -> None:
        """COM_INIT_DB on a connection that named no database: the session bound to the
        target of the database it names, as a login naming it would have been (the
        front's binder), its kept settings decided and run in order, then the
        COM_INIT_DB itself. Any refused: the COM_INIT_DB answered with that refusal, and
        the connection names no database still."""
        assert self._binder is not None
        name = _name(packet.payload[1:]) or ""
        if self._logins.target(name) is None:
            self._refuse("INIT_DB", Refused(404, "database_refused", f"no target serves "
                                             f"database {name!r}"), named=f"USE `{name}`")
            return
        bound = await self._binder(self._bound, name)
        if isinstance(bound, bytes):
            self._writer.write(bound)
            return
        unbound = self._bound
        upstream, self._bound = bound
        self._open = self._opener(self._bound)
        self._upstream, self._capabilities = upstream, upstream.capabilities
        self._status = upstream.status
        self._backslashes = _escapes(self._status)
        self._from_server = deque(upstream.pending)
        kept, self._kept = self._kept, []
        for text in kept:
            if not await self._run_kept(text):
                await upstream.close()
                self._upstream, self._bound = None, unbound
                self._open = self._opener(unbound)
                self._from_server.clear()
                return
        await self._connections.bind(self)
        await self._init_db(packet)

    async def _run_kept(self, text: str) -> bool:
        """A kept setting decided on the bound target and run; refused or failed, the
        COM_INIT_DB that bound it is answered so. Whether it ran."""
        run = Run(self._act("QUERY"))
        refusal = await self._decide(run, "QUERY", text)
        if refusal is not None:
            self._refused(run, refusal)
            return False
        self._server.writer.write(encode(0, bytes((COM_QUERY,))
                                            + text.encode("utf-8", "surrogateescape")))
        try:
            while True:
                answer = await self._server_packet()
                if is_err(answer.payload):
                    self._error(run, answer)
                    return False
                run.results.append("OK")
                if not self._more_results(answer):
                    return True
        finally:
            self._follow_sql_mode(text, run.error is None)
            self._end(run)

    def _unrelayed(self, command: int) -> None:
        """A command tollgate does not relay: replication, saying so, and any other."""
        name = command_name(command)
        if command in _REPLICATION:
            self._refuse(name, Refused(
                403, "replication", f"{name} is replication, which tollgate refuses: a "
                "replica reads every change the server makes, which no decision covers"))
            return
        self._refuse(name, Refused(400, "unsupported_command", _UNRELAYED.get(command, (
            f"{name} is not relayed by tollgate's MySQL front (COM_QUERY, COM_INIT_DB, "
            "COM_FIELD_LIST, COM_PROCESS_KILL, prepared statements, COM_RESET_CONNECTION, "
            "COM_CHANGE_USER, COM_PING and COM_QUIT are)"))))

    def _without_database(self, command: int) -> None:
        """A connection that named no database: COM_PING answered here; no command but
        KILL reaches anything."""
        if command == COM_PING:
            self._writer.write(encode(1, encode_ok(
                status=self._status, capabilities=self._bound.capabilities)))
        else:
            self._refuse(command_name(command), Refused(400, "no_database", _NO_DATABASE),
                         answered=command not in _UNANSWERED)

    def _refuse(self, method: str, bad: Refusal, answered: bool = True,
                named: str | None = None, seq: int = 1) -> None:
        """A command refused before any decision, recorded (`named`: the statement it
        names, as its request); answered with ERR (sequence id `seq`) unless the protocol
        has no answer to it (the server answers those with nothing too)."""
        act = self._act(method)
        if named is not None:
            self._request(act.exchange, method, named)
        answer = act.refuse(bad)
        if answered:
            self._writer.write(refusal_packet(answer, seq))

    async def _process_kill(self, packet: Packet) -> None:
        try:
            connection_id = parse_process_kill(packet.payload)
        except ProtocolViolation as exc:
            self._refuse("PROCESS_KILL", Refused(400, "protocol_violation",
                                                  f"COM_PROCESS_KILL: {exc}"))
            return
        await self._statement(packet, "PROCESS_KILL", Kill(connection_id, False).text())

    async def _field_list(self, packet: Packet) -> None:
        try:
            request = parse_field_list(packet.payload)
        except ProtocolViolation as exc:
            self._refuse("FIELD_LIST", Refused(400, "protocol_violation",
                                                f"COM_FIELD_LIST: {exc}"))
            return
        text = None
        if request.table is not None and request.wildcard is not None:
            text = "SHOW COLUMNS FROM `" + request.table.replace("`", "``") + "`"
            if request.wildcard:
                escaped = request.wildcard.replace("\\", "\\\\").replace("'", "''")
                text += f" LIKE '{escaped}'"
        await self._statement(packet, "FIELD_LIST", text, self._columns)

    async def _statement(self, packet: Packet, method: str, text: str | None,
                         answer: Callable[[Run], Awaitable[None]] | None = None) -> None:
        """A command that carries SQL: decided, then sent on and its answer relayed
        (`answer`: how, a statement's by default), or refused. A KILL goes to no server
        as sent: tollgate does it."""
        self._last_text = text
        opens = self._open
        if self._upstream is None:
            found = await self._kill_opener(method, text)
            if found is None:
                return
            opens = found
        run = Run(self._act(method, opens))
        refusal = await self._decide(run, method, text)
        if refusal is not None:
            self._refused(run, refusal)
            return
        if run.kill is not None:
            self._writer.write(encode(1, encode_ok(
                status=self._status, capabilities=self._bound.capabilities)))
            self._end(run)
            return
        if run.measure and answer is None:
            await self._answered(run, self._measured(run, packet.raw(), binary=False))
        else:
            self._server.writer.write(packet.raw())
            await self._answered(run, (answer or self._answer)(run))
        if method == "QUERY" and text is not None:
            self._follow_sql_mode(text, run.error is None)

    def _refused(self, run: Run, refusal: Answer) -> None:
        self._writer.write(refusal_packet(refusal))
        run.error = "refused"
        self._end(run)

    async def _answered(self, run: Run, answer: Awaitable[None]) -> None:
        """A command sent on: its answer relayed (`answer` reads it), then its record."""
        try:
            await answer
        except Closed as exc:
            run.error = str(exc)  # the server went away mid-answer (a KILL CONNECTION)
            raise
        finally:
            self._end(run)

    async def _decide(self, run: Run, method: str, text: str | None) -> Answer | None:
        """A command's SQL text read, decided, held if the policy says, and a KILL done:
        the refusal, if it is refused (every failure is one: fail closed)."""
        act, exchange = run.act, run.exchange
        try:
            act.admit(f"database {self._bound.database!r}")
            if text is None:
                raise Refused(400, "client_encoding", "the command's text is not UTF-8 "
                               "outside its string literals (or holds a NUL there), the "
                               "character set tollgate reads statements in: connect "
                               "with --default-character-set=utf8mb4")
            self._request(exchange, method, text)
            await act.read(len(text))
            refuse_owned_change(exchange.meaning, self._bound.owned)
            run.kill = await self._victim(exchange, method, text)
            if run.kill is None and self._upstream is None:
                raise Refused(400, "no_database", _NO_DATABASE)
            self._remembered.forget_after(exchange.meaning)
            run.measure = await self._measurable(run)
            decision = await act.decide()
            if decision.action == "hold":
                await self._held(act, decision)
            if exchange.decision.action != "allow":
                return exchange.refuse_decided(exchange.decision)
            await act.forward()
            if run.kill is not None:
                kill, victim = run.kill
                run.results.append(await self._connections.kill(victim, kill.query,
                                                                self.subject))
        except Exception as exc:
            return act.refusal(exc, "statement")
        return None

    def _follow_sql_mode(self, text: str, ran: bool) -> None:
        """How the server lexes the next text, once `text` ran (`ran`: answered without
        error): as its status says after a SET of sql_mode; as before after a text that
        cannot change it, whatever the status says then (a stored program's SET leaves
        its mode in the status bit though the caller's mode is back: MariaDB 10.11);
        not known after anything else, until a SET of it or a reset says."""
        change = sql_mode_change(_UNREAD.sub("\ufffd", text), self._backslashes,
                                 self._upstream.server_version if self._upstream else None)
        if change is False:
            return
        self._backslashes = _escapes(self._status) if change and ran else None

    async def _held(self, act: Act, decision: Decision,
                    asked: Callable[[], None] | None = None) -> None:
        """The policy's hold, until a human decides or it ends; a KILL QUERY of this
        session ends it sooner, the statement then refused as interrupted (its approval
        stays pending: the same statement sent again waits on it)."""

        async def waiting() -> None:
            async for _ in act.hold(decision):
                if asked is not None:  # MySQL has no notice a waiting client would show
                    asked()

        self._hold = asyncio.ensure_future(waiting())
        try:
            await self._hold
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the front is stopping
            raise Refused(409, "interrupted", "the statement held for approval was "
                           "interrupted by a KILL; its approval stays pending, and the "
                           "same statement sent again waits on it", action="hold") from None
        finally:
            self._hold = None

    # -- measured effect ----------------------------------------------------------------

    async def _measurable(self, run: Run) -> bool:
        """Whether a write's effect is to be measured (effect.py): its decisions are told
        so (`input.effect`, `measured` null), or why it cannot be (false: what it allows
        runs unmeasured). A text that names no write but calls a stored function is one
        (the record says so: `tollgate.sql.reaches`). Neither: not measured, no
        input.effect."""
        exchange = run.exchange
        statements = (exchange.meaning or {}).get("statements") or []
        if self._upstream is None:
            return False
        if not effect.writes(statements):
            run.routines = await self._routines(effect.called(statements))
            if not run.routines:
                return False
            exchange.outcome["tollgate.sql.reaches"] = (
                f"it calls {', '.join(map(str, run.routines))}, defined in the database")
        problem = effect.unmeasurable(statements)
        exchange.effect = to_come() if problem is None else unmeasured(problem)
        return problem is None

    async def _measured(self, run: Run, raw: bytes, binary: bool) -> None:
        """The write run where its effect is measured, and the verdict on it: its answer
        relayed if it stands, else its refusal (rolled back). Failing, it is refused."""
        exchange = run.exchange
        write: Measured[Measuring] = Measured(
            lambda: self._run_measured(run, raw, binary),
            lambda pending, keep: self._settle(run, pending, keep),
            lambda decision, asked: self._held(run.act, decision, asked))
        try:
            refusal = await judged(run.act.decide, exchange, write)
        except Exception as exc:  # fail closed: refused, the write undone
            refusal = run.act.refusal(exc, "statement")
        if refusal is not None:
            self._writer.write(refusal_packet(refusal))
            run.error = run.error or "refused"

    async def _run_measured(self, run: Run, raw: bytes, binary: bool
                            ) -> tuple[Effect, Measuring] | None:
        """The write between two readings, in a savepoint of the client's transaction or
        a transaction of the front's: its effect, and its answer held back. What cannot
        be measured is not run: its effect says why. None: the write failed (the client
        has the server's error; the front's transaction rolled back)."""
        mode = ("savepoint" if self._status & SERVER_STATUS_IN_TRANS else
                "commit" if self._status & SERVER_STATUS_AUTOCOMMIT else "keep")
        pending = Measuring(raw, binary, mode)
        run.error, run.results, run.rows = None, [], 0  # a retry's: its own
        await self._own_command(
            f"SAVEPOINT {effect.SAVEPOINT}" if mode == "savepoint" else "START TRANSACTION")
        try:
            assert run.exchange.request is not None
            plan = await self._effect_plan(str(run.exchange.request["body"]), (
                run.exchange.meaning or {}).get("statements") or [], run.routines)
            if isinstance(plan, str):
                return unmeasured(plan), pending
            written, reached, sizes = plan
            counted, failed = await self._own_query(effect.reading_query(reached))
            if failed is not None:  # a table it reaches the session's role cannot count
                return unmeasured("what it reaches could not be counted by the session's "
                                  f"role: {failed.message}"), pending
            before = effect.reading(counted)
            pending.ran = True
            self._hidden_status = SERVER_STATUS_IN_TRANS if mode == "commit" else 0
            self._writer = pending
            self._server.writer.write(raw)
            await self._answer(run, binary)
        except BaseException:
            await self._leave(mode, keep=False)
            raise
        finally:
            self._writer, self._hidden_status = self._client, 0
        if run.error is not None:  # the write failed: the server's error relayed
            await self._leave(mode, keep=False)
            self._writer.write(b"".join(pending.answer))
            return None
        try:
            after = await self._effect_reading(reached)
        except BaseException:
            await self._leave(mode, keep=False)
            raise
        return effect.difference(before, after, written, reached, sizes), pending

    async def _effect_plan(self, text: str, statements: list[dict[str, Any]],
                           routines: list[effect.Target]) -> tuple[
            list[effect.Target], list[effect.Reached], dict[effect.Target, int | None]] | str:
        """What the write's tables are, as the catalog has them: the tables written, the
        tables their triggers and cascades reach, each written one's size; or why its
        effect cannot be measured. A text that writes through stored functions alone
        (`routines`) has its rows charged to them: which tables they write, a role that
        may only execute them cannot read."""
        ((current,),) = await self._own_rows("SELECT DATABASE()")
        write = effect.written(text, None if current is None else current.decode(),
                               statements, self._backslashes)
        if isinstance(write, str):
            return write
        if not write.tables and routines:  # what they wrote, no catalog names
            return [effect.Target(r.schema, f"{r.table}()") for r in routines], [], {}
        if not write.tables:
            return "which tables it writes could not be read"
        catalog = effect.read_catalog(await self._catalog_rows(effect.catalog_query(write.tables)))
        direct = [t for t in write.tables if t in catalog.engines]
        bases, triggered = list(direct), list[effect.Target]()
        views, frontier, asked = list(catalog.views), list(direct), set()
        for _ in range(effect.DEPTH):  # views over views; triggers writing with triggers
            if not views and not frontier:
                break
            found = await self._view_bases(views) if views else []
            if isinstance(found, str):
                return found
            ask = [t for t in dict.fromkeys(frontier + found) if t not in asked]
            asked.update(ask)
            bodies = effect.trigger_tables(await self._catalog_rows(
                effect.triggers_query(ask))) if ask else []
            if isinstance(bodies, str):
                return bodies
            fired = [t for t in bodies if t not in bases and t not in triggered]
            more = effect.read_catalog(await self._catalog_rows(effect.catalog_query(
                found + fired))) if found or fired else effect.Catalog()
            catalog.add(more)
            frontier = [t for t in dict.fromkeys(found + fired) if t in more.engines
                        and t not in bases and t not in triggered]
            bases += [t for t in frontier if t in found]
            triggered += [t for t in frontier if t not in found]
            views = list(more.views)
        schemas = {t.schema for t in bases + triggered}
        rules = await self._catalog_rows(effect.rules_query(schemas)) if schemas else []
        keys = effect.keys(rules, await self._catalog_rows(effect.columns_query(
            {(r[0] or b"").decode() for r in rules}))) if rules else []
        # Through a view, which of its base's columns an UPDATE sets is not read: any.
        reached = effect.cascades(keys, [
            (t, write.deletes, write.columns if t in direct else None) for t in bases],
            triggered)
        if isinstance(reached, str):
            return reached
        unknown = [r.target for r in reached if r.target not in catalog.engines]
        if unknown:
            catalog.add(effect.read_catalog(await self._catalog_rows(
                effect.catalog_query(unknown))))
        problem = effect.not_transactional(catalog, bases + [r.target for r in reached])
        if problem is not None:
            return problem
        return write.tables, reached, await self._sizes(write.tables, reached, catalog)

    async def _sizes(self, written: list[effect.Target], reached: list[effect.Reached],
                     catalog: effect.Catalog) -> dict[effect.Target, int | None]:
        """Each table's size: a written one's counted (to a cap), else the statistics'."""
        sizes: dict[effect.Target, int | None] = {}
        for target in written:
            counted, failed = await self._own_query(effect.size_query(target))
            sizes[target] = (int(counted[0][0] or 0) if failed is None and counted
                             else catalog.sizes.get(target))
        for r in reached:
            sizes.setdefault(r.target, catalog.sizes.get(r.target))
        return sizes

    async def _routines(self, names: list[str]) -> list[effect.Target]:
        """The stored functions of these names the session can call (information_schema
        shows a role the routines it may execute), as the catalog said within
        REMEMBER_SECONDS."""
        now = time.monotonic()
        said = {name: self._remembered.get(name, now) for name in names}
        unknown = [name for name, (known, _) in said.items() if not known]
        if unknown:
            found = {(name or b"").decode().lower(): effect.Target(
                (schema or b"").decode(), (name or b"").decode())
                for schema, name in await self._own_rows(effect.routines_query(unknown))}
            for name in unknown:
                said[name] = (True, found.get(name))
                self._remembered.remember(name, found.get(name), now)
        return [routine for _, routine in said.values() if routine is not None]

    async def _effect_reading(self, reached: list[effect.Reached]) -> list[int]:
        return effect.reading(await self._own_rows(effect.reading_query(reached)))

    async def _settle(self, run: Run, pending: Measuring, keep: bool) -> None:
        """The measured write kept (its answer relayed) or undone. One that could not be
        measured, and is let through (approved), runs now, as any statement."""
        if not pending.ran:
            await self._leave(pending.mode, keep=False)
            if keep:
                self._server.writer.write(pending.raw)
                await self._answer(run, pending.binary)
            return
        if not keep:
            await self._leave(pending.mode, keep=False)
            run.error, run.results, run.rows = (
                "rolled back: its measured effect was not allowed", [], 0)
            return
        failed = await self._leave(pending.mode, keep=True)
        if failed is not None:  # the commit failed (a deadlock): its error, not its OK
            self._error(run, failed)
            return
        self._writer.write(b"".join(pending.answer))

    async def _leave(self, mode: str, keep: bool) -> Packet | None:
        """The front's transaction (or savepoint) ended: kept, or rolled back. The
        server's error, if committing failed; rolling back, a savepoint the server
        already lost with its transaction (a deadlock) is no error."""
        if mode == "keep" and keep:
            return None
        text = ("ROLLBACK" if mode != "savepoint" else
                f"ROLLBACK TO SAVEPOINT {effect.SAVEPOINT}") if not keep else (
            "COMMIT" if mode == "commit" else f"RELEASE SAVEPOINT {effect.SAVEPOINT}")
        answer = await self._own_packet(text)
        if mode == "savepoint" and not keep and not is_err(answer.payload):
            answer = await self._own_packet(f"RELEASE SAVEPOINT {effect.SAVEPOINT}")
        return answer if keep and is_err(answer.payload) else None

    async def _own_command(self, text: str) -> None:
        """A statement of the front's own, answered OK, or Refusal with the server's
        reason (the write is then refused)."""
        answer = await self._own_packet(text)
        if is_err(answer.payload):
            raise _unmeasured(parse_err(answer.payload).message)

    @contextlib.asynccontextmanager
    async def _own(self) -> AsyncIterator[None]:
        """The front's own statements run inside: never while a KILL QUERY is on its way,
        and none goes while they run."""
        if self._owning == 0:
            await self._cancels.turn()
            self._own_done = asyncio.get_running_loop().create_future()
        self._owning += 1
        try:
            yield
        finally:
            self._owning -= 1
            if self._owning == 0 and self._own_done is not None:
                self._own_done.set_result(None)
                self._own_done = None

    async def _own_packet(self, text: str) -> Packet:
        """A statement of the front's own, its OK or ERR (the status kept)."""
        async with self._own():
            self._server.writer.write(encode(0, bytes((COM_QUERY,))
                                                + (effect.MARK + text).encode()))
            answer = await self._server_packet()
        if is_ok(answer.payload, self._capabilities):
            self._status = parse_ok(answer.payload, self._capabilities).status
        return answer

    async def _view_bases(self, views: list[effect.Target]) -> list[effect.Target] | str:
        """The tables `views` read, by their definitions (the catalog role's reading, else
        the session's); or why one cannot be followed (a write through it is then not
        measured: what it changes beneath is not known)."""
        said = effect.view_definitions(await self._catalog_rows(effect.views_query(views)))
        missing = [v for v in views if v not in said]
        if missing and self._catalog() is not None:
            said.update(effect.view_definitions(
                await self._own_rows(effect.views_query(missing))))
        bases: list[effect.Target] = []
        for view in views:
            found = effect.view_bases(said.get(view, ""))
            if not found:
                return (f"the definition of view {view.schema}.{view.table} could not be "
                        "read (SHOW VIEW and SELECT on it), or names no table")
            bases += found
        return bases

    def _catalog(self) -> Catalog | None:
        target = self._bound.target
        return self._catalogs.get(target.name) if target is not None else None

    async def _catalog_rows(self, text: str) -> list[list[bytes | None]]:
        """A catalog question of the measurement: as the target's catalog role where it
        has one (catalog.py), else in the session; Refusal when it cannot be read."""
        catalog = self._catalog()
        if catalog is None:
            return await self._own_rows(text)
        try:
            return _rows(*await catalog.rows(effect.MARK + text))
        except CatalogUnavailable as exc:
            raise _unmeasured(str(exc)) from None

    async def _own_rows(self, text: str) -> list[list[bytes | None]]:
        """A query of the front's own: its rows, or Refusal with the server's reason."""
        return _rows(*await self._own_query(text))

    async def _own_query(self, text: str) -> tuple[list[list[bytes | None]], Err | None]:
        """A query of the front's own (its text starts with effect.MARK): its rows in
        text, or the server's error."""
        async with self._own():
            first = await self._own_packet(text)
            rows, failed, end = await text_rows(first, self._server_packet,
                                                self._capabilities)
        if failed is None and end is not first:
            self._more_results(end)
        return rows, failed

    # -- KILL ---------------------------------------------------------------------------

    async def _kill_opener(self, method: str, text: str | None) -> Opener | None:
        """Where a connection naming no database decides a statement: on the target of
        the session its KILL names. None when it is no KILL of a session tollgate
        knows: refused here."""
        kill = read_kill(text) if text is not None else None
        victim = await self._connections.find(kill.connection_id) if kill else None
        target = self._logins.named(victim.target) if victim and victim.target else None
        if target is not None:
            return self._opener(self._bound, target)
        self._refuse(method, Refused(400, "no_database", _NO_DATABASE) if kill is None
                     else Refused(404, "unknown_connection", _unknown(kill.connection_id)))
        return None

    async def _victim(self, exchange: Exchange, method: str,
                      text: str) -> tuple[Kill, Victim] | None:
        """A KILL, alone in its text, of a session of the same identity and target: what
        it names (input.mysql.kill says so to the policy). None: the text kills
        nothing; Refusal for any other KILL, and for one prepared (tollgate does a KILL
        when it comes: a prepared one would reach the server as written)."""
        statements = (exchange.meaning or {}).get("statements") or []
        if not any(s.get("kind") == "kill" for s in statements):
            return None
        kill = read_kill(text)
        if kill is None or len(statements) != 1 or method == "PREPARE":
            raise Refused(400, "kill_form", "tollgate does a KILL sent alone, as KILL "
                           "[QUERY|CONNECTION] <connection id> (the id a connection's "
                           "handshake announced) in a COM_QUERY, or COM_PROCESS_KILL; "
                           "never prepared")
        identity = exchange.identity
        if not identity["authenticated"]:
            raise Refused(401, "unauthenticated", "a KILL needs a verified token: it ends "
                           "only its identity's own connections' statements")
        n = kill.connection_id
        victim = await self._connections.find(n)
        if victim is None:
            raise Refused(404, "unknown_connection", _unknown(n))
        if victim.subject != identity["sub"]:
            raise Refused(403, "kill_denied", f"connection {n} is another identity's: a "
                           "KILL ends only your own connections' statements")
        target = exchange.target.name if exchange.target is not None else None
        if victim.target != target:
            raise Refused(403, "kill_denied", f"connection {n} is a session of "
                           f"{'target ' + victim.target if victim.target else 'no target'}, "
                           f"not of {target}: KILL it from a connection to its target, or "
                           "from one naming no database")
        exchange.context["kill"] = {"connection_id": n, "own": True,
                                    "scope": "query" if kill.query else "connection"}
        return kill, victim

    async def killed(self, query: bool, by: str) -> str:
        """A KILL naming this session, from a connection of `by` (here or handed over
        by another front): a statement held for approval ends; else its thread's
        statement (KILL QUERY) or the thread (KILL CONNECTION), by the gateway's own
        account, and then the session. What was done, or Refusal."""
        if not by or by != self.subject:
            raise Refused(403, "kill_denied", f"connection {self.connection_id} is "
                           "another identity's: a KILL ends only your own connections' "
                           "statements")
        what = "statement" if query else "connection"
        if self._hold is not None and not self._hold.done():
            self._hold.cancel()
            done = f"connection {self.connection_id}: its statement held for approval " \
                   "refused as interrupted"
        elif self._upstream is not None and self._bound.target is not None:
            target, thread = self._bound.target, self._upstream.connection_id

            async def kill() -> None:
                await self._connections.kill_thread(target, thread, query)

            try:
                if query:  # only while what runs is the client's (exchange/cancels.py)
                    outcome = await self._cancels.cancel(
                        lambda: [] if self._own_done is None else [self._own_done],
                        lambda: self._busy, kill, _KILL_WAIT_SECONDS)
                else:
                    await kill()
                    outcome = SENT
            except UpstreamError as exc:
                raise Unavailable(502, "kill_failed", f"the server did not kill connection "
                               f"{self.connection_id}'s {what}: {exc.message}") from None
            done = f"connection {self.connection_id}: " + (
                f"its {what} killed on the server" if outcome == SENT else
                outcome.replace("cancel", "KILL QUERY", 1))
        else:
            done = f"connection {self.connection_id}: nothing to kill"
        if not query:
            self._ending = True
            if not self._busy:
                self._client.close()  # the loop's read ends; else once its command is done
            done += "; the connection closed"
        return done

    # -- prepared statements -------------------------------------------------------------

    async def _prepare(self, packet: Packet) -> None:
        """COM_STMT_PREPARE: its text decided as a COM_QUERY's, so a statement refused or
        held and denied never exists on the server; prepared, it gets an id of tollgate's
        own (statements.py)."""
        text = _sql(packet.payload[1:], self._backslashes)
        run = Run(self._act("PREPARE"))
        refusal = await self._decide(run, "PREPARE", text)
        if refusal is None:
            try:
                self._statements.next_id()
            except ValueError as exc:
                refusal = run.exchange.refuse(OverLimit(429, "statement_ids", str(exc)))
        if refusal is not None:
            self._statements.not_prepared()
            self._refused(run, refusal)
            return
        assert text is not None  # a text that is not UTF-8 was refused
        self._server.writer.write(packet.raw())
        await self._answered(run, self._prepared(run, text))

    async def _prepared(self, run: Run, text: str) -> None:
        """The server's answer to a prepare: an ERR, or its statement under tollgate's id,
        the definitions of its parameters and columns after it as they came."""
        first = await self._server_packet()
        if is_err(first.payload):
            self._statements.not_prepared()
            self._error(run, first)
            return
        ok = parse_prepare_ok(first.payload)
        exchange = run.exchange
        decided = exchange.evidence.decisions[-1]
        prepared = self._statements.add(Prepared(
            self._statements.next_id(), ok.statement_id, text, ok.num_params, exchange.meaning,
            exchange.decision, decided.revision, decided.duration_us, exchange.approval))
        out = [encode(first.seq, encode_prepare_ok(ok._replace(statement_id=prepared.id)))]
        for count in (ok.num_params, ok.num_columns):
            for _ in range(count):
                packet = await self._server_packet()
                parse_column_definition(packet.payload)
                out.append(packet.raw())
            if count and not self._capabilities & CLIENT_DEPRECATE_EOF:
                out.append((await self._server_packet()).raw())
        self._writer.write(b"".join(out))
        run.results.append(f"statement {prepared.id}: {ok.num_params} parameters, "
                           f"{ok.num_columns} columns")

    async def _statement_command(self, packet: Packet) -> None:
        """A command naming a prepared statement: by an id tollgate handed out, sent on
        under the server's id; by any other, refused (recorded), never sent."""
        command = packet.payload[0]
        method = _STATEMENT_METHODS[command]
        answered = command not in _UNANSWERED
        try:
            statement = statement_id(packet.payload)
        except ProtocolViolation as exc:
            self._refuse(method, Refused(400, "protocol_violation", f"a "
                                          f"{command_name(command)} that cannot be read: "
                                          f"{exc}"), answered)
            return
        prepared = self._statements.get(statement)
        if prepared is None:
            self._refuse(method, Refused(
                400, "unknown_statement", f"statement {statement} was not prepared "
                "through tollgate in this session (or was closed): tollgate runs only "
                "statements it decided"), answered, named=f"statement {statement}")
        elif command == COM_STMT_EXECUTE:
            await self._execute(packet, prepared)
        elif command == COM_STMT_FETCH:
            self._refuse(method, Refused(400, "unsupported_cursor", _NO_CURSORS),
                         named=prepared.text)
        elif command == COM_STMT_SEND_LONG_DATA:
            self._long_data(packet, prepared)
        else:
            if command == COM_STMT_CLOSE:
                self._statements.close(statement)
            self._server.writer.write(encode(packet.seq, with_statement_id(
                packet.payload, prepared.server_id)))
            if command == COM_STMT_RESET:
                answer = await self._server_packet()
                if not is_err(answer.payload):
                    prepared.long_data.clear()
                self._writer.write(answer.raw())

    def _long_data(self, packet: Packet, prepared: Prepared) -> None:
        """A piece of a parameter's value: sent on, and kept (its first bytes) for the
        execute's record."""
        try:
            piece = parse_long_data(packet.payload)
        except ProtocolViolation as exc:
            self._refuse("LONG_DATA", Refused(400, "protocol_violation", "a "
                                               "COM_STMT_SEND_LONG_DATA that cannot be "
                                               f"read: {exc}"), answered=False)
            return
        prepared.long_data.setdefault(piece.parameter, LongData()).add(piece.data)
        self._server.writer.write(encode(packet.seq, with_statement_id(
            packet.payload, prepared.server_id)))

    async def _execute(self, packet: Packet, prepared: Prepared) -> None:
        """COM_STMT_EXECUTE: an exchange of its own, under its prepare's decision (the
        parameters in its record); its binary rows masked as text rows are."""
        run = Run(self._act("EXECUTE"))
        exchange = run.exchange
        execute: StmtExecute | None = None
        problem: Exception | None = None
        try:
            run.act.admit()
        except Refusal as exc:  # the record cannot take it
            problem = exc
        try:
            execute = parse_stmt_execute(packet.payload, prepared.num_params,
                                            prepared.types, prepared.long_data)
        except ProtocolViolation as exc:
            problem = problem or Refused(400, "protocol_violation", "a COM_STMT_EXECUTE "
                                          f"that cannot be read: {exc}")
        self._last_text = prepared.text
        self._request(exchange, "EXECUTE", prepared.text, None if execute is None else {
            "parameters": prepared.parameters(execute)})
        exchange.interpret(prepared.meaning)
        # The prepare's decision, as it stood once settled (an approved hold's allow): the
        # approval that let it through covers its executions.
        exchange.decided("request", prepared.decision, prepared.revision, prepared.duration_us)
        exchange.approval = prepared.approval
        if problem is None and execute is not None and execute.flags:
            problem = Refused(400, "unsupported_cursor", _NO_CURSORS if (
                execute.flags & _CURSORS) else f"execute flags 0x{execute.flags:02x}, "
                "which tollgate does not relay")
        if problem is not None or execute is None:
            if prepared.refused(execute):
                await self._reset_quietly(prepared)
            assert problem is not None
            self._refused(run, run.act.refusal(problem, "statement"))
            return
        payload = packet.payload
        if prepared.ran(execute):
            assert prepared.types is not None
            payload = bind_types(payload, prepared.num_params, prepared.types)
        raw = encode(packet.seq, with_statement_id(payload, prepared.server_id))
        try:
            measure = await self._measurable(run)
        except Exception as exc:  # the catalog could not be read: fail closed
            self._refused(run, run.act.refusal(exc, "statement"))
            return
        if measure:
            await self._answered(run, self._measured(run, raw, binary=True))
        else:
            self._server.writer.write(raw)
            await self._answered(run, self._answer(run, binary=True))
        self._follow_sql_mode(prepared.text, run.error is None)

    async def _reset_quietly(self, prepared: Prepared) -> None:
        """The long data of an execute tollgate refused, dropped on the server as that
        execute would have (its answer is tollgate's alone)."""
        self._server.writer.write(encode(0, encode_statement_command(
            COM_STMT_RESET, prepared.server_id)))
        await self._server_packet()

    # -- the server's session reset -----------------------------------------------------

    async def _reset_connection(self, packet: Packet) -> None:
        """COM_RESET_CONNECTION: relayed; once the server reset its session, so does
        tollgate its picture of it (_session_reset)."""
        self._server.writer.write(packet.raw())
        answer = await self._server_packet()
        if not is_err(answer.payload):
            self._session_reset()
            self._status = parse_ok(answer.payload, self._capabilities).status
            # The reset took the session back to the gateway's account's default role
            # and the server's defaults: the session's own are set again first.
            try:
                for command in self._bound.setup:
                    self._status = await self._server_command(command)
            except Refusal as exc:
                raise Closed(f"the session could not be set up again: {exc.message}"
                             ) from None
            self._backslashes = _escapes(self._status)
        self._writer.write(answer.raw())

    async def _change_user(self, packet: Packet) -> None:
        """Another identity for the session: its token asked for and verified as at login
        (mysql_clear_password, inside TLS), the same target only, the server's session
        reset by the gateway's own account. Recorded under the new identity; refused, the
        connection ends (Closed), as a failed login's would."""
        request, seq, claims, problem = None, packet.seq, None, None
        try:
            request = parse_change_user(packet.payload, self._bound.capabilities)
        except ProtocolViolation as exc:
            problem = Refused(400, "protocol_violation", f"COM_CHANGE_USER: {exc}")
        if request is not None:
            refused = self._logins.plaintext_refused(self._bound.target, self._bound.tls)
            if refused is not None:
                problem = Refused(401, "tls_required", refused)
            else:
                token, seq = await self._logins.token(
                    request.auth_plugin, request.auth_response, seq, self._client,
                    self._next_client_packet)
                claims, unverified = await self._logins.identify(token)
                del token
                if unverified is not None:
                    problem = Refused(401, "unauthenticated", unverified)
        was = self.subject
        bound = replace(self._bound, claims=claims,
                        user=request.username if request else self._bound.user)
        opens = self._opener(bound)
        act = opens("CHANGE_USER", {**bound.context(), "command": "change_user"})
        exchange = act.exchange
        exchange.request = exchange.evidence.request = {
            "method": "CHANGE_USER", "path": f"/{bound.database}", "query": {},
            "headers": {}, "body": None}
        try:
            act.admit()
            if problem is not None:
                raise problem
            status, setup = await self._reset(act, request.database if request else "")
            decided = exchange.decision
            bound = replace(bound, role=decided.database_role, setup=setup, owned=owned(
                decided.database_role, setup, decided.statement_timeout_seconds is not None))
            exchange.outcome.update({"tollgate.outcome": f"user changed (from {was})"
                                                         + setup_detail(setup),
                                     "tollgate.decision.action": "allow"})
        except Exception as exc:
            answer = act.refusal(exc, "change of user")
            exchange.outcome["tollgate.outcome"] = answer.body.get("message") or "refused"
            self._writer.write(refusal_packet(answer, (seq + 1) & 0xFF))
            raise Closed("a change of user refused") from None
        finally:
            act.end()
        self._session_reset()
        self._bound, self._open, self._status = bound, opens, status
        self._backslashes = _escapes(status)
        await self._connections.bind(self)
        self._writer.write(encode((seq + 1) & 0xFF, encode_ok(
            status=status, capabilities=bound.capabilities)))

    async def _reset(self, act: Act, database: str
                     ) -> tuple[int, tuple[bytes, ...]]:
        """The new identity admitted to the session's target (`database`, if named, must
        be its) and its role decided, and the server's session reset: COM_RESET_CONNECTION,
        then the session set up (its role, its timeouts), then COM_INIT_DB to the
        target's database when one was asked. The server's status after, and the setup."""
        target = self._bound.target
        assert target is not None and target.mysql is not None
        if database and self._logins.target(database) is not target:
            raise Refused(403, "database_refused", f"COM_CHANGE_USER keeps the session's "
                           f"target ({target.name}, database {self._bound.database!r}): "
                           f"{database!r} is not its database; connect anew for another")
        exchange = act.exchange
        act.check(f"database {self._bound.database!r}")
        role = await login_role(act, target.mysql.roles)
        bounds = (target.mysql.idle_in_transaction_seconds, self._server.server_version,
                  exchange.decision.statement_timeout_seconds, target.mysql.lock_idle_seconds)
        setup = setup_commands(role, *bounds)
        self._server.lock_bound = lock_bound(*bounds)
        started = time.perf_counter()
        status = await self._server_command(bytes((COM_RESET_CONNECTION,)))
        for command in setup:  # first: the gateway's account alone may use no database
            status = await self._server_command(command)
        if database:
            status = await self._server_command(
                bytes((COM_INIT_DB,)) + (target.mysql.database or database).encode())
        exchange.evidence.upstream_ms = (time.perf_counter() - started) * 1000
        return status, setup

    async def _server_command(self, payload: bytes) -> int:
        """A command of tollgate's own to the server, answered OK (its status), or
        Refusal with the server's reason."""
        self._server.writer.write(encode(0, payload))
        answer = (await self._server_packet()).payload
        if is_err(answer):
            err = parse_err(answer)
            raise Unavailable(502, "session_reset", f"the server did not reset the session "
                           f"({command_name(payload[0])}): {err.message}")
        return parse_ok(answer, self._capabilities).status

    def _session_reset(self) -> None:
        """What tollgate keeps of the server's session, forgotten once the server reset
        it (COM_RESET_CONNECTION, COM_CHANGE_USER): the prepared statements, which the
        server dropped, and their ids with them (the status comes with the reset's OK)."""
        self._statements.clear()
        self._binary_results = False
        self._locks_bounded = False

    # -- answers ------------------------------------------------------------------------

    async def _answer(self, run: Run, binary: bool = False) -> None:
        """The server's answer to a statement, every result of it, relayed; `binary`: its
        rows are the binary protocol's (an execute's)."""
        while True:
            first = await self._server_packet()
            payload = first.payload
            if is_err(payload):
                self._error(run, first)
                return
            if payload[:1] == b"\x00":
                self._writer.write(self._relayed(first))
                run.results.append("OK")
                if not self._more_results(first):
                    return
                continue
            if payload[:1] == b"\xfb":
                await self._no_local_file(run, first)
                return
            if not await self._result(run, first, binary):
                return

    async def _result(self, run: Run, first: Packet, binary: bool) -> bool:
        """A result set: its columns, its rows masked, its end. Whether another result
        of the same statement follows."""
        out = [first.raw()]
        count = Reader(first.payload).lenenc_int()
        columns = []
        for _ in range(count):
            packet = await self._server_packet()
            columns.append(column := parse_column_definition(packet.payload))
            out.append(packet.raw() if not self._binary_results or column.charset == _BINARY
                       else encode(packet.seq, encode_column_definition(column._replace(
                           charset=_BINARY, length=column.length // 4))))
        if not self._capabilities & CLIENT_DEPRECATE_EOF:
            out.append((await self._server_packet()).raw())
        if binary and (problem := unreadable(columns)) is not None:
            await self._skip(await self._skip_rows())
            refusal = run.exchange.refuse(Refused(403, "unmaskable_result", problem))
            self._writer.write(refusal_packet(refusal, first.seq))
            run.error = "refused: unmaskable result"
            return False
        masker = ResultMasker(self._masker, run.exchange.mask, columns)
        while True:
            rows: list[Packet] = []
            end: Packet | None = None
            while end is None and (rows == [] or self._from_server):
                packet = await self._server_packet()
                if ends_rows(packet.payload, self._capabilities):
                    end = packet
                else:
                    rows.append(packet)
            out += self._rows(run, masker, columns, rows, binary)
            if end is not None:
                break
            self._writer.write(b"".join(out))
            out = []
            await self._writer.drain()
        if is_err(end.payload):
            self._writer.write(b"".join(out))
            self._error(run, end)
            return False
        out.append(self._relayed(end))
        self._writer.write(b"".join(out))
        await self._writer.drain()
        run.results.append(f"{count} columns")
        return self._more_results(end)

    def _relayed(self, end: Packet) -> bytes:
        """An OK or EOF for the client: the status bits it does not see cleared."""
        if not self._hidden_status:
            return end.raw()
        return encode(end.seq, without_status(end.payload, self._capabilities,
                                                     self._hidden_status))

    def _more_results(self, end: Packet) -> bool:
        """Whether another result follows the one this OK or EOF ends; the server's
        status, as it gives it there, kept."""
        self._status = (parse_ok(end.payload, self._capabilities).status
                        if is_ok(end.payload, self._capabilities)
                        else parse_eof(end.payload).status)
        return bool(self._status & SERVER_MORE_RESULTS_EXISTS)

    async def _skip_rows(self) -> bool:
        """A result's rows the client will not get, read to their end; whether another
        result follows."""
        while not ends_rows((end := await self._server_packet()).payload,
                               self._capabilities):
            pass
        return not is_err(end.payload) and self._more_results(end)

    async def _skip(self, more: bool) -> None:
        """The results left of an answer the client will not get, read to its end."""
        while more:
            first = await self._server_packet()
            if is_err(first.payload):
                return
            if first.payload[:1] == b"\x00":
                more = self._more_results(first)
                continue
            count = Reader(first.payload).lenenc_int()
            for _ in range(count + (0 if self._capabilities & CLIENT_DEPRECATE_EOF else 1)):
                await self._server_packet()
            more = await self._skip_rows()

    async def _columns(self, run: Run) -> None:
        """COM_FIELD_LIST's answer: a column definition a column (no rows: names, types
        and defaults, relayed as they are), then EOF, or ERR."""
        out: list[bytes] = []
        columns: list[ColumnDefinition] = []
        while not is_eof((packet := await self._server_packet()).payload):
            if is_err(packet.payload):
                self._writer.write(b"".join(out))
                self._error(run, packet)
                return
            columns.append(parse_column_definition(packet.payload, field_list=True))
            out.append(packet.raw())
        self._status = parse_eof(packet.payload).status
        self._writer.write(b"".join(out) + packet.raw())
        run.results.append(f"{len(columns)} columns")
        run.sample += record_sample(columns, [], run.exchange.record_limit)

    def _rows(self, run: Run, masker: ResultMasker, columns: list[ColumnDefinition],
              packets: list[Packet], binary: bool) -> list[bytes]:
        """A result's rows, masked as the exchange's decision says; recorded."""
        if not packets:
            return []
        counts: Counter[str] = Counter()
        if binary:
            with ledger.stage(run.exchange.front, "mask"):
                sent, rows, counts = masker.binary_rows(
                    [parse_binary_row(p.payload, columns) for p in packets])
        else:
            rows = [parse_text_row(p.payload, len(columns)) for p in packets]
            if masker.masks:
                with ledger.stage(run.exchange.front, "mask"):
                    rows, counts = masker.rows(rows)
            sent = rows
        run.rows += len(rows)
        if counts:
            run.exchange.record_masking(counts)
        limit = run.exchange.record_limit
        if len(run.sample) < limit:
            run.sample += b"\n" if run.sample else b""
            run.sample += record_sample(columns, rows, limit)
        if binary:
            return [encode(p.seq, encode_binary_row(r, columns))
                    for p, r in zip(packets, sent, strict=True)]
        return [encode(p.seq, encode_text_row(r)) for p, r in zip(packets, sent, strict=True)]

    def _error(self, run: Run, packet: Packet) -> None:
        """The server's error, its message masked (a duplicate key quotes the row)."""
        err = parse_err(packet.payload)
        request = run.exchange.request
        message = error_message(err.message, err.code,
                                str(request["body"]) if request else "", run.exchange.mask)
        masked, _ = self._masker.mask_json(message, RECORD_MASK)
        run.error = (f"{'refused by the database' if err.code in _PRIVILEGE_ERRORS else 'error'}"
                     f" {err.code} ({err.sqlstate})")
        run.exchange.outcome["error.type"] = str(err.code)
        self._writer.write(encode(packet.seq, encode_err(err.code, err.sqlstate,
                                                               str(masked))))

    async def _no_local_file(self, run: Run, request: Packet) -> None:
        """LOAD DATA LOCAL: the server asks the client for a file. None is sent (an empty
        packet ends it), and the client is told why."""
        self._server.writer.write(encode((request.seq + 1) & 0xFF, b""))
        answer = await self._server_packet()
        while is_ok(answer.payload, self._capabilities) and parse_ok(
                answer.payload, self._capabilities).status & SERVER_MORE_RESULTS_EXISTS:
            answer = await self._server_packet()  # what followed it in a multi-statement
        refusal = run.exchange.refuse(Refused(
            403, "local_infile", "the server asked for a local file (LOAD DATA LOCAL): "
            "tollgate sends none"))
        run.error = "refused: local file"
        self._writer.write(refusal_packet(refusal, request.seq))

    # -- exchanges ----------------------------------------------------------------------

    def _act(self, method: str, opens: Opener | None = None) -> Act:
        return (opens or self._open)(method, {**self._bound.context(),
                                              "command": method.lower()})

    def _request(self, exchange: Exchange, method: str, text: str,
                 query: dict[str, list[str]] | None = None) -> None:
        """The statement as the exchange's request (input.request, and the record's);
        `query`: an execute's parameters (the record masks them as it masks queries)."""
        headers = {} if self._upstream is None else {
            SERVER_VERSION: self._upstream.server_version}
        if self._backslashes is not None:
            headers[BACKSLASH_ESCAPES] = "on" if self._backslashes else "off"
        exchange.request = exchange.evidence.request = {
            "method": method, "path": f"/{self._bound.database}", "query": query or {},
            "headers": headers, "body": _UNREAD.sub("\ufffd", text)}
        exchange.evidence.request_body = exchange.kept(
            text.encode("utf-8", "surrogateescape"))

    def _end(self, run: Run) -> None:
        """A command's answer went by (or never will): its record."""
        exchange = run.exchange
        outcome = exchange.outcome
        outcome["tollgate.outcome"] = run.error or "; ".join(run.results) or "done"
        outcome["tollgate.mysql.rows"] = run.rows
        run.act.answered(
            {"results": "; ".join(run.results), "rows": str(run.rows)}, bytes(run.sample))


def _unknown(connection_id: int) -> str:
    return (f"KILL names connection {connection_id}, which is no connection id tollgate "
            "gave out: a server thread id (CONNECTION_ID()'s) is not taken; KILL the id the "
            "connection's handshake announced (mariadb's `status` shows it as "
            "\"Connection id\", PyMySQL's thread_id() returns it)")


def _a_setting(text: str) -> bool:
    """Whether a connection that named no database may keep `text` until it names one:
    SET statements alone, read with every versioned comment that could run running (the
    reading that decides them comes once the server's version is known)."""
    reading = analyze(text, "mysql", "999.99.99-MariaDB")
    statements = reading["statements"]
    return reading["error"] is None and bool(statements) and all(
        s["kind"] == "set" and not s["nested"] for s in statements)


def _escapes(status: int) -> bool:
    """Whether the server whose status this is reads a backslash in a string as an
    escape (no NO_BACKSLASH_ESCAPES in its sql_mode)."""
    return not status & SERVER_STATUS_NO_BACKSLASH_ESCAPES


def _name(payload: bytes) -> str | None:
    """A name a command carries (COM_INIT_DB's), as UTF-8 (None when it is not)."""
    with contextlib.suppress(UnicodeDecodeError):
        return payload.decode("utf-8")
    return None


def _sql(payload: bytes, backslashes: bool | None) -> str | None:
    """A command's SQL text, as UTF-8 (None when it is not: refused, never guessed).
    Bytes that are not UTF-8, and NUL, are taken inside string literals alone (a BLOB
    sent as `_binary'...'`, PyMySQL's and mysqlclient's way), as the server lexes the
    text (`backslashes`: its escaping, None when not known: every way); kept as
    surrogates (the record keeps the bytes; the policy reads U+FFFD). The server lexes
    them as single bytes, which never end a literal, so the reading of the SQL around
    them is the server's."""
    escaped = payload.decode("utf-8", "surrogateescape")
    positions = [found.start() for found in _UNREAD.finditer(escaped)]
    if not positions or within_strings(escaped, "mysql", positions, backslashes):
        return escaped
    return None


def _unmeasured(why: str) -> Refused:
    return Refused(403, "effect_unmeasured", f"the write's effect could not be measured: {why}")


def _rows(rows: list[list[bytes | None]], failed: Err | None) -> list[list[bytes | None]]:
    """A measurement's question's rows, or its refusal with the server's reason."""
    if failed is not None:
        raise _unmeasured(failed.message)
    return rows
