"""A database front's session driven in memory (sans-IO): no socket, no database, no
gateway process.

A front's Session (extproc/postgres/session.py, extproc/mysql/session.py) reads its
client from an asyncio StreamReader, writes to a StreamWriter, and talks to its database
through an `Upstream` holding a reader and a writer of its own. Here every one of them
is memory, and the Session is built as its front builds it once a login has ended:

    test ─ send() ─► StreamReader ─► Session ─► MemoryWriter ─► Client.next() ─► test
                                       │  ▲
                       upstream.writer ▼  │ upstream.reader
                               PgDatabase / MyDatabase (the database's stand-in)

The client's bytes are built with the fronts' own codecs (postgres/messages.py, the
mysql/ codec modules); what the session writes back is framed with them too, and a test
awaits it message by message: the session runs as one task, and reading what it sent
waits for it to send it. A deadline fails a test that would otherwise hang; nothing is
awaited by sleeping.

The pipeline is the real one (extproc/exchange/pipeline.py) on the in-memory ports of
tests/support/fakes.py, and the policy the real embedded engine on `PACK`, counted
(`CountingEngine.asked`) so that a test can say how often, and on what, it was asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from extproc import config
from extproc.approvals.auth import Verifier
from extproc.config import Target
from extproc.exchange.act import Opener
from extproc.exchange.database_roles import owned_settings
from extproc.exchange.pipeline import Pipeline
from extproc.masking import Masker
from extproc.mysql import session as my_session
from extproc.mysql import upstream as my_upstream
from extproc.mysql.flags import (
    CHARSET_BINARY,
    CHARSET_UTF8MB4_GENERAL_CI,
    CLIENT_LONG_FLAG,
    CLIENT_LONG_PASSWORD,
    CLIENT_MULTI_RESULTS,
    CLIENT_PLUGIN_AUTH,
    CLIENT_PROTOCOL_41,
    CLIENT_PS_MULTI_RESULTS,
    CLIENT_SECURE_CONNECTION,
    CLIENT_TRANSACTIONS,
    COM_PING,
    COM_QUERY,
    COM_QUIT,
    COM_STMT_CLOSE,
    COM_STMT_EXECUTE,
    COM_STMT_PREPARE,
    COM_STMT_RESET,
    MYSQL_TYPE_LONG,
    MYSQL_TYPE_LONGLONG,
    MYSQL_TYPE_VAR_STRING,
    SERVER_STATUS_AUTOCOMMIT,
    STRING_TYPES,
    command_name,
)
from extproc.mysql.framing import Framer, Packet, Reader, encode, lenenc_int
from extproc.mysql.handshake import Handshake
from extproc.mysql.kills import Connections
from extproc.mysql.login import Bound, Logins
from extproc.mysql.prepared import (
    ParameterType,
    PrepareOk,
    encode_prepare_ok,
    parse_stmt_execute,
    statement_id,
)
from extproc.mysql.responses import encode_eof, encode_err, encode_ok, ends_rows, is_eof
from extproc.mysql.resultsets import (
    ColumnDefinition,
    encode_binary_row,
    encode_column_definition,
    encode_text_row,
    parse_binary_row,
    parse_column_definition,
    parse_text_row,
)
from extproc.policy import Decision
from extproc.policy.embedded import EmbeddedEngine
from extproc.postgres import encodings, estimate
from extproc.postgres import messages as pg
from extproc.postgres import session as pg_session
from extproc.postgres import upstream as pg_upstream
from extproc.recording import Evidence
from extproc.store.session_keys import SessionKeys
from extproc.telemetry import Telemetry
from tests.support.fakes import MemoryHolds, MemoryRecorder, StaticCredentials

# How long a test waits for what the session sends before it fails (it never sleeps).
DEADLINE = 5.0
MAX_MESSAGE = 1 << 20
CLAIMS = {"sub": "agent", "groups": ["agents"]}

# The policy: everything allowed, but a DROP (refused, naming its rule) and what reads
# the `staff` table (its `ssn` and `salary` columns masked by name, no detector run).
PACK = """package tollgate

import rego.v1

default decision := {"action": "allow", "rules": ["unit.allow"]}

decision := {"action": "deny", "rules": ["unit.no_drop"],
             "reasons": ["DROP is not for agents"]} if dropping

decision := {"action": "allow", "rules": ["unit.staff_masked"],
             "mask": {"detectors": [], "fields": ["ssn", "salary"]}} if {
	not dropping
	some statement in input.sql.statements
	"staff" in statement.tables
}

dropping if {
	some statement in input.sql.statements
	statement.kind == "drop"
}
"""

PG_TARGET = {"name": "shop", "protocol": "postgres", "match": {"database": "shop"},
             "postgres": {"upstream": "127.0.0.1:9", "user": "gateway", "sslmode": "disable"}}
MY_TARGET = {"name": "shop-my", "protocol": "mysql", "match": {"database": "shop"},
             "mysql": {"upstream": "127.0.0.1:9", "user": "gateway", "tls": "disable"}}


class CountingEngine(EmbeddedEngine):
    """The embedded engine, keeping every input it was asked to decide (`asked`)."""

    def __init__(self, pack: str) -> None:
        super().__init__([("unit.rego", pack)], "data.tollgate.decision")
        self.asked: list[dict[str, Any]] = []

    async def decide(self, input_json: str) -> Decision:
        self.asked.append(json.loads(input_json))
        return await super().decide(input_json)


def gateway(target: dict[str, Any], pack: str = PACK
            ) -> tuple[Pipeline, Target, CountingEngine, MemoryRecorder]:
    """The pipeline of one database target, without stores: its target, engine, recorder."""
    cfg = config.parse({target["protocol"]: {}, "targets": [target]})
    engine, recorder = CountingEngine(pack), MemoryRecorder()
    pipeline = Pipeline(cfg, engine, Telemetry(cfg.telemetry, InMemorySpanExporter()),
                        StaticCredentials(), Masker(b"k" * 32), recorder, MemoryHolds())
    return pipeline, cfg.targets[0], engine, recorder


# -- the connections --------------------------------------------------------------------


class MemoryWriter:
    """What a session uses of an asyncio.StreamWriter, in memory: what is written is fed
    to `peer`, the reader at the connection's other end; closing ends that reader. Once
    closed, writes go nowhere, as on a closed transport."""

    def __init__(self, peer: asyncio.StreamReader) -> None:
        self.peer = peer
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed and data:
            self.peer.feed_data(data)

    def writelines(self, data: Sequence[bytes]) -> None:
        self.write(b"".join(data))

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.peer.feed_eof()

    def is_closing(self) -> bool:
        return self.closed

    async def wait_closed(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


M = TypeVar("M")


class Client(Generic[M]):
    """The client's end: bytes sent to the session (`send`), and the messages it sends
    back, framed by `frame` as they arrive (`next`)."""

    def __init__(self, frame: Callable[[bytes], list[M]]) -> None:
        self.reader = asyncio.StreamReader()  # the session's: what the client sends
        self._inbox = asyncio.StreamReader()
        self.writer = MemoryWriter(self._inbox)  # the session's: what the client gets
        self._frame = frame
        self._framed: deque[M] = deque()

    def send(self, *data: bytes) -> None:
        self.reader.feed_data(b"".join(data))

    def hang_up(self) -> None:
        if not self.reader.at_eof():
            self.reader.feed_eof()

    async def next(self) -> M:
        """The session's next message to the client (EOFError: it closed instead)."""
        async with asyncio.timeout(DEADLINE):
            while not self._framed:
                data = await self._inbox.read(65536)
                if not data:
                    raise EOFError("the session closed the client's connection")
                self._framed.extend(self._frame(data))
        return self._framed.popleft()

    async def rest(self) -> list[M]:
        """Everything the session sends until it closes the client's connection."""
        out = []
        with contextlib.suppress(EOFError):
            while True:
                out.append(await self.next())
        return out


class Database(MemoryWriter):
    """The session's connection to its database, as a stand-in answering each message as
    it is written (`answer`), into `reader`, what the session reads from the database.
    `received`: every message the session sent it, in order, as framed."""

    def __init__(self) -> None:
        self.reader = asyncio.StreamReader()
        super().__init__(self.reader)
        self.received: list[Any] = []
        # Set at every write: what a test waits on to see what the session sent.
        self.wrote = asyncio.Event()
        # Answers kept back, in order, while `hold` is in force (a busy backend).
        self._held: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        for message in self.frame(data):
            self.received.append(message)
            answer = self.answer(message)
            if answer and self._held is not None:
                self._held.append(answer)
            elif answer:
                self.reader.feed_data(answer)
        self.wrote.set()

    def hold(self) -> None:
        """The answers wait, as a busy backend's do, until `release`."""
        self._held = []

    def release(self) -> None:
        held, self._held = self._held or [], None
        self.reader.feed_data(b"".join(held))

    async def sent(self, predicate: Callable[[list[Any]], bool]) -> None:
        """Once what the session sent (`received`) satisfies `predicate`."""
        async with asyncio.timeout(DEADLINE):
            while not predicate(self.received):
                self.wrote.clear()
                await self.wrote.wait()

    def frame(self, data: bytes) -> list[Any]:
        raise NotImplementedError

    def answer(self, message: Any) -> bytes:
        raise NotImplementedError


@dataclass(frozen=True)
class Result:
    """What the database answers a statement with: its columns (name, and type: an OID
    for PostgreSQL, a MYSQL_TYPE_* for MySQL), its rows as text, and the command's tag
    (None: a SELECT's, of its rows)."""

    columns: tuple[tuple[str, int], ...] = ()
    rows: tuple[tuple[bytes | None, ...], ...] = ()
    tag: str | None = None


S = TypeVar("S")


@dataclass
class Wired(Generic[S, M]):
    """A session under test, as its front built it, and what it is wired to."""

    session: S
    client: Client[M]
    database: Any
    engine: CountingEngine
    recorder: MemoryRecorder
    task: asyncio.Task[None] = field(init=False)

    @property
    def records(self) -> list[Evidence]:
        """The exchanges' records, in the order they were submitted."""
        return self.recorder.submitted

    async def ended(self) -> None:
        """The session ended by itself (its relay returned), within the deadline."""
        async with asyncio.timeout(DEADLINE):
            await asyncio.shield(self.task)


@contextlib.asynccontextmanager
async def _running(wired: Wired[S, M], relay: Coroutine[Any, Any, None]
                   ) -> AsyncIterator[Wired[S, M]]:
    """The session relaying for the `async with`; then the client hangs up and the
    session must end (its failure, if it failed, fails the test). Once it ends, the
    client's connection is closed, as the front's listener closes it."""

    async def served() -> None:
        try:
            await relay
        finally:
            wired.client.writer.close()

    wired.task = asyncio.ensure_future(served())
    try:
        yield wired
    finally:
        wired.client.hang_up()
        try:
            async with asyncio.timeout(DEADLINE):
                await asyncio.shield(wired.task)
        finally:
            wired.task.cancel()


# -- PostgreSQL -------------------------------------------------------------------------

# Type OIDs and sizes, as pg_type has them.
TEXT, INT4 = 25, 23
_SIZES = {INT4: 4}


class PgDatabase(Database):
    """A stand-in for a PostgreSQL 18 backend, once logged in, faithful to protocol 3.0's
    wire format: it answers what the front sends, message by message, as the backend
    would. It runs no SQL: each text's answer is scripted in `results`; the front's own
    questions (their texts marked `/* tollgate: estimate */`) find nothing in the catalog
    (no rows).

    A text in `results`: a simple Query answers RowDescription (where it has columns),
    DataRows, CommandComplete and ReadyForQuery; the extended protocol ParseComplete,
    BindComplete, for a Describe of a statement ParameterDescription and RowDescription
    (or NoData), of a portal RowDescription (or NoData), for an Execute DataRows and
    CommandComplete (the portal run to its end), CloseComplete, and ReadyForQuery at a
    Sync. Any other text is answered as PostgreSQL answers one it cannot parse (the
    front's stand-in for a refused statement, `tollgate refused this statement ...`):
    ErrorResponse 42601. A Bind, Describe or Execute of a name that does not exist draws
    the backend's own error (26000, 34000). After an error in the extended protocol the
    backend skips every message to the next Sync, as does this one. No parameters are
    read."""

    def __init__(self, results: dict[str, Result]) -> None:
        super().__init__()
        self.results = results
        self._framer = pg.Framer(pg.FRONTEND_KINDS, MAX_MESSAGE)
        self._statements: dict[str, str] = {}
        self._portals: dict[str, str] = {}
        self._skipping = False

    @property
    def texts(self) -> list[str]:
        """The SQL texts the database was sent (a Query's, a Parse's), in order, but the
        front's own questions."""
        return [text for text in self.all_texts if not text.startswith(_ASKED)]

    @property
    def all_texts(self) -> list[str]:
        return [pg.query(m.body) if m.kind == b"Q" else pg.parse(m.body).text
                for m in self.received if m.kind in (b"Q", b"P")]

    def frame(self, data: bytes) -> list[pg.Message]:
        return self._framer.feed(data)

    def answer(self, message: pg.Message) -> bytes:
        kind, body = message.kind, message.body
        if kind == b"S":
            self._skipping = False
            return pg.encode_ready(b"I")
        if self._skipping or kind in (b"H", b"X"):
            return b""  # skipped to the Sync; Flush and Terminate have no answer
        if kind == b"Q" and pg.query(body).startswith(_ASKED):
            return pg.encode_command_complete("SELECT 0") + pg.encode_ready(b"I")
        if kind == b"Q":
            result = self.results.get(pg.query(body))
            self._statements.pop("", None)
            self._portals.pop("", None)
            if result is None:
                return _syntax_error() + pg.encode_ready(b"I")
            described = _row_description(result) if result.columns else b""
            return described + _rows(result) + pg.encode_ready(b"I")
        try:
            return self._extended(kind, body)
        except _Refused as refused:
            self._skipping = True
            return refused.error

    def _extended(self, kind: bytes, body: bytes) -> bytes:
        if kind == b"P":
            parse = pg.parse(body)
            if parse.text not in self.results:
                raise _Refused(_syntax_error())
            if parse.statement and parse.statement in self._statements:
                raise _Refused(pg.error("42P05", f'prepared statement "{parse.statement}" '
                                        "already exists"))
            self._statements[parse.statement] = parse.text
            return pg.encode(b"1", b"")
        if kind == b"B":
            bind = pg.bind(body)
            self._portals[bind.portal] = self._statement(bind.statement)
            return pg.encode(b"2", b"")
        if kind == b"D":
            which, name = pg.describe(body)
            if which == b"S":
                result = self.results[self._statement(name)]
                return pg.encode(b"t", b"\x00\x00") + _row_description(result)
            return _row_description(self.results[self._portal(name)])
        if kind == b"E":
            portal, _ = pg.execute(body)
            return _rows(self.results[self._portal(portal)])
        if kind == b"C":
            which, name = pg.close(body)
            (self._statements if which == b"S" else self._portals).pop(name, None)
            return pg.encode(b"3", b"")
        raise AssertionError(f"the database's stand-in was sent a {kind!r} message")

    def _statement(self, name: str) -> str:
        if name not in self._statements:
            raise _Refused(pg.error("26000", f'prepared statement "{name}" does not exist'))
        return self._statements[name]

    def _portal(self, name: str) -> str:
        if name not in self._portals:
            raise _Refused(pg.error("34000", f'portal "{name}" does not exist'))
        return self._portals[name]


# The mark of the front's own questions.
_ASKED = estimate.MARK


class _Refused(Exception):
    def __init__(self, error: bytes) -> None:
        super().__init__("an error")
        self.error = error


def _syntax_error() -> bytes:
    return pg.error("42601", 'syntax error at or near "tollgate"')


def _row_description(result: Result) -> bytes:
    if not result.columns:
        return pg.encode(b"n", b"")  # NoData
    return pg.encode_row_description([
        pg.Column(name, 0, 0, oid, _SIZES.get(oid, -1), -1, 0)
        for name, oid in result.columns])


def _rows(result: Result) -> bytes:
    return b"".join([*(pg.encode_data_row(list(row)) for row in result.rows),
                     pg.encode_command_complete(result.tag or f"SELECT {len(result.rows)}")])


PgWired = Wired[pg_session.Session, pg.Message]


def pg_client() -> Client[pg.Message]:
    return Client(pg.Framer(pg.BACKEND_KINDS, MAX_MESSAGE).feed)


@contextlib.asynccontextmanager
async def postgres_session(results: dict[str, Result], pack: str = PACK
                           ) -> AsyncIterator[PgWired]:
    """A logged-in PostgreSQL session relaying, as extproc/postgres/front.py builds it
    after a login to database `shop` as `agent` (UTF8, no TLS, no role of its own)."""
    pipeline, target, engine, recorder = gateway(PG_TARGET, pack)
    database = PgDatabase(results)
    upstream = pg_upstream.Upstream(
        database.reader, cast(asyncio.StreamWriter, database),
        {"server_encoding": "UTF8", "client_encoding": "UTF8"}, 4242, b"\x00" * 4, b"I",
        "trust", False)
    passed = {"client_encoding": "UTF8"}
    session_id = "00000000-0000-4000-8000-000000000001"
    policy: dict[str, Any] = {
        "database": "shop", "role": "agent", "application_name": None,
        "session_id": session_id, "tls": False, "roles": [], "database_role": None}
    client = pg_client()
    opener = Opener(pipeline, "postgres", target, CLAIMS, session_id, "/shop",
                    attributes={"db.system.name": "postgresql", "db.namespace": "shop",
                                "db.user": "agent"})
    session = pg_session.Session(
        opener, client.reader, cast(asyncio.StreamWriter, client.writer), upstream,
        {"database": "shop", "parameters": passed, "policy": policy,
         "encoding": encodings.for_session(None), "owned": owned_settings(None)},
        MAX_MESSAGE)

    async def relay() -> None:
        with encodings.speaking(session.wire):  # as the front runs it
            await session.relay()

    async with _running(Wired(session, client, database, engine, recorder), relay()) as wired:
        yield wired


async def pg_answers(client: Client[pg.Message], readies: int = 1) -> list[pg.Message]:
    """The session's messages up to its `readies`-th ReadyForQuery."""
    out: list[pg.Message] = []
    while readies:
        out.append(message := await client.next())
        readies -= message.kind == b"Z"
    return out


# -- MySQL ------------------------------------------------------------------------------

VAR_STRING, LONG = MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_LONG
# What the client and tollgate agreed, and tollgate and the server (no
# CLIENT_DEPRECATE_EOF: the front offers none).
CAPABILITIES = (CLIENT_LONG_PASSWORD | CLIENT_LONG_FLAG | CLIENT_PROTOCOL_41
                | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION
                | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS
                | CLIENT_PLUGIN_AUTH)
AUTOCOMMIT = SERVER_STATUS_AUTOCOMMIT


class MyDatabase(Database):
    """A stand-in for a MariaDB 10.11 server's side of a logged-in connection, faithful to
    the client/server protocol's wire format (4.1, without CLIENT_DEPRECATE_EOF): it
    answers each command, sequence ids following the command's, as the server would. It
    runs no SQL: each text's answer is scripted in `results`.

    COM_QUERY of a text in `results`: its result set (the column count, a definition a
    column, EOF, text rows, EOF), or OK where it has no columns; any other text ERR 1064
    (a syntax error). COM_STMT_PREPARE of a text in `results`: PREPARE_OK under an id of
    the server's own (from 7), a definition per `?` and per column, each list ended by
    EOF. COM_STMT_EXECUTE: the binary result set of its statement (its parameters read as
    the server reads them, kept in `executed`). COM_STMT_CLOSE and COM_QUIT: no answer;
    COM_PING and COM_STMT_RESET: OK. Integers are written as the binary protocol lays them
    out; every other type as a string."""

    def __init__(self, results: dict[str, Result]) -> None:
        super().__init__()
        self.results = results
        self._framer = Framer(MAX_MESSAGE)
        self._statements: dict[int, tuple[str, int, tuple[ParameterType, ...] | None]] = {}
        self._next_id = 7
        self.executed: list[tuple[str, tuple[bytes | None, ...]]] = []

    @property
    def commands(self) -> list[tuple[str, bytes]]:
        """The commands the server was sent: their names and what follows the byte."""
        return [(command_name(p.payload[0]), p.payload[1:]) for p in self.received]

    def frame(self, data: bytes) -> list[Packet]:
        return self._framer.feed(data)

    def answer(self, packet: Packet) -> bytes:
        command, rest = packet.payload[0], packet.payload[1:]
        if command == COM_QUERY:
            result = self.results.get(rest.decode())
            if result is None:
                return _packets(encode_err(1064, "42000", "You have an error in your "
                                              "SQL syntax"))
            if not result.columns:
                return _packets(encode_ok(status=AUTOCOMMIT))
            return _packets(*_result_set(result, binary=False))
        if command == COM_STMT_PREPARE:
            return self._prepare(rest.decode())
        if command == COM_STMT_EXECUTE:
            return self._execute(packet.payload)
        if command in (COM_PING, COM_STMT_RESET):
            return _packets(encode_ok(status=AUTOCOMMIT))
        if command in (COM_STMT_CLOSE, COM_QUIT):
            return b""
        raise AssertionError(f"the server's stand-in was sent {command_name(command)}")

    def _prepare(self, text: str) -> bytes:
        result = self.results.get(text)
        if result is None:
            return _packets(encode_err(1064, "42000", "You have an error in your SQL "
                                          "syntax"))
        statement, self._next_id = self._next_id, self._next_id + 1
        parameters = text.count("?")
        self._statements[statement] = (text, parameters, None)
        out = [encode_prepare_ok(PrepareOk(statement, len(result.columns), parameters))]
        if parameters:
            out += [encode_column_definition(ColumnDefinition(name="?"))] * parameters
            out.append(encode_eof(status=AUTOCOMMIT))
        if result.columns:
            out += [encode_column_definition(_definition(n, t)) for n, t in result.columns]
            out.append(encode_eof(status=AUTOCOMMIT))
        return _packets(*out)

    def _execute(self, payload: bytes) -> bytes:
        text, parameters, bound = self._statements[statement_id(payload)]
        execute = parse_stmt_execute(payload, parameters, bound)
        if execute.types is not None:
            self._statements[execute.statement_id] = (text, parameters, execute.types)
        self.executed.append((text, execute.values))
        result = self.results[text]
        if not result.columns:
            return _packets(encode_ok(status=AUTOCOMMIT))
        return _packets(*_result_set(result, binary=True))


def _packets(*payloads: bytes) -> bytes:
    """An answer's packets, numbered from 1 (the command was 0)."""
    return b"".join(encode(seq, p) for seq, p in enumerate(payloads, 1))


def _definition(name: str, column_type: int) -> ColumnDefinition:
    text = column_type in STRING_TYPES
    return ColumnDefinition(
        schema="shop", name=name, org_name=name,
        charset=CHARSET_UTF8MB4_GENERAL_CI if text else CHARSET_BINARY,
        length=1020 if text else 11, type=column_type)


def _binary_value(column_type: int, text: bytes) -> bytes:
    if column_type == LONG:
        return struct.pack("<i", int(text))
    if column_type == MYSQL_TYPE_LONGLONG:
        return struct.pack("<q", int(text))
    return text


def _result_set(result: Result, binary: bool) -> list[bytes]:
    columns = [_definition(n, t) for n, t in result.columns]
    out = [lenenc_int(len(columns)), *map(encode_column_definition, columns),
           encode_eof(status=AUTOCOMMIT)]
    for row in result.rows:
        if binary:
            out.append(encode_binary_row(
                [None if v is None else _binary_value(c.type, v)
                 for c, v in zip(columns, row, strict=True)], columns))
        else:
            out.append(encode_text_row(row))
    out.append(encode_eof(status=AUTOCOMMIT))
    return out


class _Unused:
    """What a session holds for paths these tests do not drive (KILL, COM_CHANGE_USER,
    a login naming no database): any use fails the test, saying so."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{self._what}.{name}: not wired in memory (tested end to end)")


async def _no_thread_kill(_target: Target, _thread: int, _query: bool) -> None:
    raise AssertionError("no KILL of a server thread in memory")


MyWired = Wired[my_session.Session, Packet]


def my_client() -> Client[Packet]:
    return Client(Framer(MAX_MESSAGE).feed)


@contextlib.asynccontextmanager
async def mysql_session(results: dict[str, Result], pack: str = PACK
                        ) -> AsyncIterator[MyWired]:
    """A logged-in MySQL session relaying, as extproc/mysql/front.py builds it after a
    login to database `shop` as `agent` (no TLS, the gateway's account's own role)."""
    pipeline, target, engine, recorder = gateway(MY_TARGET, pack)
    database = MyDatabase(results)
    handshake = Handshake("10.11.6-MariaDB", 77, b"s" * 20, CAPABILITIES,
                             CHARSET_UTF8MB4_GENERAL_CI, AUTOCOMMIT,
                             "mysql_native_password")
    upstream = my_upstream.Upstream(
        database.reader, cast(asyncio.StreamWriter, database), handshake, CAPABILITIES,
        AUTOCOMMIT, False, "mysql_native_password", Framer(MAX_MESSAGE))
    bound = Bound(target, CLAIMS, "agent", "shop", "00000000-0000-4000-8000-000000000002",
                  False, CAPABILITIES)
    client = my_client()
    session = my_session.Session(
        pipeline,
        Logins(cast(Verifier, _Unused("verifier")), {"shop": target}, False), bound,
        Connections(cast(SessionKeys, _Unused("session keys")), _no_thread_kill), 1001,
        client.reader, cast(asyncio.StreamWriter, client.writer), Framer(MAX_MESSAGE),
        upstream)
    async with _running(Wired(session, client, database, engine, recorder),
                        session.relay()) as wired:
        yield wired


def command(code: int, payload: bytes = b"", seq: int = 0) -> bytes:
    """A client's command packet."""
    return encode(seq, bytes((code,)) + payload)


@dataclass(frozen=True)
class ResultSet:
    """A result set as the client read it: its columns, rows and closing EOF."""

    columns: list[ColumnDefinition]
    rows: list[list[bytes | None]]
    end: Packet


async def my_result_set(client: Client[Packet], binary: bool = False) -> ResultSet:
    """A result set the session sent (AssertionError for an OK or ERR in its place)."""
    first = await client.next()
    if first.payload[:1] in (b"\x00", b"\xff"):
        raise AssertionError(f"an OK or ERR, not a result set: {first.payload!r}")
    count = Reader(first.payload).lenenc_int()
    columns = [parse_column_definition((await client.next()).payload)
               for _ in range(count)]
    assert is_eof((await client.next()).payload)
    rows = []
    while not ends_rows((packet := await client.next()).payload, CAPABILITIES):
        rows.append(parse_binary_row(packet.payload, columns) if binary
                    else parse_text_row(packet.payload, count))
    return ResultSet(columns, rows, packet)
