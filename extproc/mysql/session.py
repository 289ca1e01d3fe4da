"""One logged-in MySQL client and the gateway's connection to its server.

MySQL's protocol is a conversation: the client sends one command (sequence id 0) and
reads the server's whole answer before the next. So the session is one loop: a command
is read, decided where it carries SQL, sent on or refused with the protocol's ERR packet
(the session goes on), and its answer relayed packet by packet, each result's rows
masked by column.

Every command is decided or refused; none passes undecided:

    COM_QUERY             the text read by the MySQL dialect, each statement decided
    COM_INIT_DB           decided as the `USE` it stands for
    COM_STMT_PREPARE      its text decided as a COM_QUERY's; prepared, the statement gets
                          an id of tollgate's own (statements.py)
    COM_STMT_EXECUTE      an exchange of its own under its prepare's decision (its
                          parameters in the record), its binary rows masked
    COM_STMT_SEND_LONG_DATA, COM_STMT_RESET, COM_STMT_CLOSE
                          sent on under the server's id of the statement
    COM_STMT_FETCH        refused, and so is an execute asking for a cursor: server-side
                          cursors are not relayed
    COM_RESET_CONNECTION  relayed: it carries nothing; the statement ids go with it
    COM_PING              carries nothing: relayed
    COM_QUIT              ends the session
    any other             refused (ER_UNKNOWN_COM_ERROR): COM_STMT_BULK_EXECUTE (tollgate
                          offers no MariaDB capability it needs), COM_FIELD_LIST,
                          COM_CHANGE_USER, replication, COM_PROCESS_KILL ...

A command naming a prepared statement by an id tollgate did not hand out, or one closed,
is refused (ER_UNKNOWN_STMT_HANDLER; CLOSE and SEND_LONG_DATA have no answer in the
protocol, so theirs is none, as the server's would be) and recorded, never sent.

The server never asks for a local file: tollgate does not offer CLIENT_LOCAL_FILES
upstream, and a LOAD DATA LOCAL request arriving anyway is answered with no file.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from extproc.codecs.refusal import BadInput
from extproc.exchange.pipeline import Pipeline, failure
from extproc.exchange.recorded import Admission
from extproc.exchange.state import Answer, Exchange
from extproc.masking import Masker
from extproc.mysql import packets as my
from extproc.mysql.results import ResultMasker, record_sample, unreadable
from extproc.mysql.statements import LongData, Prepared, Statements
from extproc.mysql.upstream import Upstream
from extproc.recording import BodyCapture, RecordingQuota, RecordingUnavailable
from extproc.recording.record import RECORD_MASK

_READ_SIZE = 256 * 1024
_RELAYED = frozenset({my.COM_PING})
# ER_TABLEACCESS_DENIED_ERROR, and ER_SPECIFIC_ACCESS_DENIED_ERROR for what needs a
# privilege beyond tables (the server's, roles, settings).
_ACCESS_DENIED, _PRIVILEGE_DENIED = 1142, 1227
_PRIVILEGE_RULES = frozenset({"sql.privilege", "sql.configuration", "sql.server_access",
                              "sql.setting", "sql.dynamic"})
# The commands naming a prepared statement, as the record names them; those the server
# never answers (a refusal of theirs is answered with nothing either).
_STATEMENT_METHODS = {my.COM_STMT_EXECUTE: "EXECUTE", my.COM_STMT_SEND_LONG_DATA: "LONG_DATA",
                      my.COM_STMT_RESET: "RESET", my.COM_STMT_CLOSE: "CLOSE",
                      my.COM_STMT_FETCH: "FETCH"}
_UNANSWERED = frozenset({my.COM_STMT_SEND_LONG_DATA, my.COM_STMT_CLOSE})
# ER_UNKNOWN_STMT_HANDLER, ER_NOT_SUPPORTED_YET, ER_UNKNOWN_COM_ERROR.
_UNKNOWN_STATEMENT, _NOT_SUPPORTED, _UNKNOWN_COMMAND = (
    (1243, "HY000"), (1235, "42000"), (1047, "08S01"))
# Why a command is not relayed, where more can be said than that it is not.
_UNRELAYED = {my.COM_STMT_BULK_EXECUTE: (
    "COM_STMT_BULK_EXECUTE (MariaDB's array binding) is not relayed: tollgate offers none "
    "of MariaDB's extended capabilities, so a client executes once per row")}
_CURSORS = my.CURSOR_TYPE_READ_ONLY | my.CURSOR_TYPE_FOR_UPDATE | my.CURSOR_TYPE_SCROLLABLE
_NO_CURSORS = ("tollgate does not relay server-side cursors (COM_STMT_FETCH, an execute "
               "asking for a cursor): execute without one, and read the rows as they come")


class Closed(Exception):
    """Either side went away, or sent what is not the protocol: the session ends."""


def refusal_packet(answer: Answer, seq: int = 1,
                   code: tuple[int, str] | None = None) -> bytes:
    """tollgate's refusal as an ERR packet: the reasons, the rules, an approval's state
    and the trace id in its message, which every client shows; `code`: the error code
    and SQLSTATE, else those the refusal's status stands for."""
    body = answer.body
    reasons = body.get("reasons") or [body.get("message") or answer.error]
    notes = [f"trace id {answer.trace_id}"]
    rules = body.get("rules") or []
    if rules:
        notes.insert(0, "rules: " + ", ".join(rules))
    if body.get("approval_id"):
        notes.insert(0, f"approval {body['approval_id']} ({body.get('status')})")
    if answer.status == 403:
        number = _PRIVILEGE_DENIED if _PRIVILEGE_RULES & set(rules) else _ACCESS_DENIED
        sqlstate = "42000"
    elif answer.status in (401, 407):
        number, sqlstate = 1045, "28000"
    else:
        number, sqlstate = 1105, "HY000"  # ER_UNKNOWN_ERROR
    if code is not None:
        number, sqlstate = code
    message = "tollgate: " + "; ".join(map(str, reasons)) + f" ({'; '.join(notes)})"
    return my.encode(seq, my.encode_err(number, sqlstate, message))


@dataclass(slots=True)
class Run:
    """An exchange in flight: a command and its answer."""

    exchange: Exchange
    admission: Admission
    rows: int = 0
    results: list[str] = field(default_factory=list)
    sample: bytearray = field(default_factory=bytearray)
    error: str | None = None
    started: float = field(default_factory=time.perf_counter)


class Session:
    """A client's commands, decided, and their answers, relayed and masked."""

    def __init__(self, pipeline: Pipeline, masker: Masker,
                 exchange_for: Callable[[str, dict[str, Any]], Exchange],
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 framer: my.Framer, upstream: Upstream, context: dict[str, Any]) -> None:
        self._pipeline, self._masker, self._open = pipeline, masker, exchange_for
        self._reader, self._writer, self._framer = reader, writer, framer
        self._upstream = upstream
        self._capabilities = upstream.capabilities
        self.context = context
        # Packets framed and not yet taken; the server's login may have read past its end.
        self._from_client: deque[my.Packet] = deque()
        self._from_server: deque[my.Packet] = deque(upstream.pending)
        self._statements = Statements()

    async def relay(self) -> None:
        """Commands until the client quits or either side goes away."""
        try:
            while (packet := await self._client_packet()) is not None:
                await self._command(packet)
        except (Closed, my.ProtocolViolation, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self._upstream.close()

    # -- reading ------------------------------------------------------------------------

    async def _client_packet(self) -> my.Packet | None:
        while not self._from_client:
            data = await self._reader.read(_READ_SIZE)
            if not data:
                return None
            self._from_client.extend(self._framer.feed(data))
        return self._from_client.popleft()

    async def _server_packet(self) -> my.Packet:
        while not self._from_server:
            data = await self._upstream.reader.read(_READ_SIZE)
            if not data:
                raise Closed("the server closed the connection")
            self._from_server.extend(self._upstream.framer.feed(data))
        return self._from_server.popleft()

    # -- commands -----------------------------------------------------------------------

    async def _command(self, packet: my.Packet) -> None:
        payload = packet.payload
        command = payload[0] if payload else -1
        if command == my.COM_QUIT:
            raise Closed("the client quit")
        if command in _RELAYED:
            self._upstream.writer.write(packet.raw())
            answer = await self._server_packet()
            self._writer.write(answer.raw())
            return
        if command == my.COM_QUERY:
            await self._statement(packet, "QUERY", _text(payload[1:]))
        elif command == my.COM_INIT_DB:
            name = _text(payload[1:])
            await self._statement(packet, "INIT_DB", None if name is None
                                  else "USE `" + name.replace("`", "``") + "`")
        elif command == my.COM_STMT_PREPARE:
            await self._prepare(packet)
        elif command in _STATEMENT_METHODS:
            await self._statement_command(packet)
        elif command == my.COM_RESET_CONNECTION:
            await self._reset_connection(packet)
        else:
            name = my.command_name(command)
            self._refuse_command(name, "unsupported_command", _UNRELAYED.get(command, (
                f"{name} is not relayed by tollgate's MySQL front (COM_QUERY, COM_INIT_DB, "
                "COM_PING, COM_QUIT, COM_RESET_CONNECTION and prepared statements are)")),
                _UNKNOWN_COMMAND)

    def _refuse_command(self, method: str, error: str, message: str, code: tuple[int, str],
                        answered: bool = True, named: str | None = None) -> None:
        """A command refused before any decision, recorded; answered with an ERR unless
        the protocol has no answer to it (the server answers those with nothing too)."""
        exchange, admission = self._exchange(method)
        if named is not None:
            self._request(exchange, method, named)
        answer = self._pipeline.refuse_recorded(exchange, admission,
                                                BadInput(400, error, message))
        if answered:
            self._writer.write(refusal_packet(answer, code=code))

    async def _statement(self, packet: my.Packet, method: str, text: str | None) -> None:
        """A command that carries SQL: decided, then sent on and its answer relayed, or
        refused."""
        run, refusal = await self._decided(method, text)
        if refusal is not None:
            self._refused(run, refusal)
            return
        self._upstream.writer.write(packet.raw())
        try:
            await self._answer(run)
        finally:
            self._end(run)

    def _refused(self, run: Run, refusal: Answer, code: tuple[int, str] | None = None) -> None:
        self._writer.write(refusal_packet(refusal, code=code))
        run.error = "refused"
        self._end(run)

    async def _decided(self, method: str, text: str | None) -> tuple[Run, Answer | None]:
        """An exchange for a command's SQL text: read, decided, held if the policy says;
        and its refusal (None: it may go)."""
        exchange, admission = self._exchange(method)
        run = Run(exchange, admission)
        refusal: Answer | None = None
        try:
            admission()
            self._pipeline.admit(exchange, f"database {self.context['database']!r}")
            if text is None:
                raise BadInput(400, "client_encoding", "the command's text is not UTF-8, "
                               "the character set tollgate reads statements in: connect "
                               "with --default-character-set=utf8mb4")
            self._request(exchange, method, text)
            await self._pipeline.interpret(exchange, len(text))
            decision = await self._pipeline.decide(exchange, "request")
            if decision.action == "hold":
                async for _ in self._pipeline.hold(exchange, decision):
                    pass  # MySQL has no notice a waiting client would show
            if exchange.decision.action != "allow":
                refusal = exchange.deny(exchange.decision)
            else:
                await self._pipeline.forward(exchange)
        except Exception as exc:  # every failure is a refusal: fail closed
            refusal = failure(exchange, exc, "statement")
        return run, refusal

    # -- prepared statements -------------------------------------------------------------

    async def _prepare(self, packet: my.Packet) -> None:
        """COM_STMT_PREPARE: its text decided as a COM_QUERY's, so a statement refused or
        held and denied never exists on the server; prepared, it gets an id of tollgate's
        own (statements.py)."""
        text = _text(packet.payload[1:])
        run, refusal = await self._decided("PREPARE", text)
        if refusal is None:
            try:
                self._statements.next_id()
            except ValueError as exc:
                refusal = run.exchange.refuse(BadInput(429, "statement_ids", str(exc)))
        if refusal is not None:
            self._statements.not_prepared()
            self._refused(run, refusal)
            return
        assert text is not None  # a text that is not UTF-8 was refused
        self._upstream.writer.write(packet.raw())
        try:
            await self._prepared(run, text)
        finally:
            self._end(run)

    async def _prepared(self, run: Run, text: str) -> None:
        """The server's answer to a prepare: an ERR, or its statement under tollgate's id,
        the definitions of its parameters and columns after it as they came."""
        first = await self._server_packet()
        if my.is_err(first.payload):
            self._statements.not_prepared()
            self._error(run, first)
            return
        ok = my.parse_prepare_ok(first.payload)
        exchange = run.exchange
        decided = exchange.evidence.decisions[-1]
        prepared = self._statements.add(Prepared(
            self._statements.next_id(), ok.statement_id, text, ok.num_params, exchange.meaning,
            exchange.decision, decided.revision, decided.duration_us, exchange.approval))
        out = [my.encode(first.seq, my.encode_prepare_ok(ok._replace(statement_id=prepared.id)))]
        for count in (ok.num_params, ok.num_columns):
            for _ in range(count):
                packet = await self._server_packet()
                my.parse_column_definition(packet.payload)
                out.append(packet.raw())
            if count and not self._capabilities & my.CLIENT_DEPRECATE_EOF:
                out.append((await self._server_packet()).raw())
        self._writer.write(b"".join(out))
        run.results.append(f"statement {prepared.id}: {ok.num_params} parameters, "
                           f"{ok.num_columns} columns")

    async def _statement_command(self, packet: my.Packet) -> None:
        """A command naming a prepared statement: by an id tollgate handed out, sent on
        under the server's id; by any other, refused (recorded), never sent."""
        command = packet.payload[0]
        method = _STATEMENT_METHODS[command]
        answered = command not in _UNANSWERED
        try:
            statement_id = my.statement_id(packet.payload)
        except my.ProtocolViolation as exc:
            self._refuse_command(method, "protocol_violation", f"a {my.command_name(command)} "
                                 f"that cannot be read: {exc}", _UNKNOWN_STATEMENT, answered)
            return
        prepared = self._statements.get(statement_id)
        if prepared is None:
            self._refuse_command(
                method, "unknown_statement", f"statement {statement_id} was not prepared "
                "through tollgate in this session (or was closed): tollgate runs only "
                "statements it decided", _UNKNOWN_STATEMENT, answered,
                named=f"statement {statement_id}")
        elif command == my.COM_STMT_EXECUTE:
            await self._execute(packet, prepared)
        elif command == my.COM_STMT_FETCH:
            self._refuse_command(method, "unsupported_cursor", _NO_CURSORS, _NOT_SUPPORTED,
                                 named=prepared.text)
        elif command == my.COM_STMT_SEND_LONG_DATA:
            self._long_data(packet, prepared)
        else:
            if command == my.COM_STMT_CLOSE:
                self._statements.close(statement_id)
            self._upstream.writer.write(my.encode(packet.seq, my.with_statement_id(
                packet.payload, prepared.server_id)))
            if command == my.COM_STMT_RESET:
                answer = await self._server_packet()
                if not my.is_err(answer.payload):
                    prepared.long_data.clear()
                self._writer.write(answer.raw())

    def _long_data(self, packet: my.Packet, prepared: Prepared) -> None:
        """A piece of a parameter's value: sent on, and kept (its first bytes) for the
        execute's record."""
        try:
            piece = my.parse_long_data(packet.payload)
        except my.ProtocolViolation as exc:
            self._refuse_command("LONG_DATA", "protocol_violation", "a COM_STMT_SEND_LONG_DATA "
                                 f"that cannot be read: {exc}", _UNKNOWN_STATEMENT, False)
            return
        prepared.long_data.setdefault(piece.parameter, LongData()).add(piece.data)
        self._upstream.writer.write(my.encode(packet.seq, my.with_statement_id(
            packet.payload, prepared.server_id)))

    async def _execute(self, packet: my.Packet, prepared: Prepared) -> None:
        """COM_STMT_EXECUTE: an exchange of its own, under its prepare's decision (the
        parameters in its record); its binary rows masked as text rows are."""
        exchange, admission = self._exchange("EXECUTE")
        run = Run(exchange, admission)
        execute: my.StmtExecute | None = None
        problem: Exception | None = None
        try:
            admission()
        except (RecordingQuota, RecordingUnavailable) as exc:
            problem = exc
        try:
            execute = my.parse_stmt_execute(packet.payload, prepared.num_params,
                                            prepared.types, prepared.long_data)
        except my.ProtocolViolation as exc:
            problem = problem or BadInput(400, "protocol_violation", "a COM_STMT_EXECUTE "
                                          f"that cannot be read: {exc}")
        self._request(exchange, "EXECUTE", prepared.text, None if execute is None else {
            "parameters": prepared.parameters(execute)})
        exchange.interpret(prepared.meaning)
        # The prepare's decision, as it stood once settled (an approved hold's allow): the
        # approval that let it through covers its executions.
        exchange.decided("request", prepared.decision, prepared.revision, prepared.duration_us)
        exchange.approval = prepared.approval
        code: tuple[int, str] | None = None
        if problem is None and execute is not None and execute.flags:
            code = _NOT_SUPPORTED
            problem = BadInput(400, "unsupported_cursor", _NO_CURSORS if (
                execute.flags & _CURSORS) else f"execute flags 0x{execute.flags:02x}, "
                "which tollgate does not relay")
        if problem is not None or execute is None:
            if prepared.refused(execute):
                await self._reset_quietly(prepared)
            assert problem is not None
            self._refused(run, failure(exchange, problem, "statement"), code)
            return
        payload = packet.payload
        if prepared.ran(execute):
            assert prepared.types is not None
            payload = my.bind_types(payload, prepared.num_params, prepared.types)
        self._upstream.writer.write(my.encode(packet.seq, my.with_statement_id(
            payload, prepared.server_id)))
        try:
            await self._answer(run, binary=True)
        finally:
            self._end(run)

    async def _reset_quietly(self, prepared: Prepared) -> None:
        """The long data of an execute tollgate refused, dropped on the server as that
        execute would have (its answer is tollgate's alone)."""
        self._upstream.writer.write(my.encode(0, my.encode_statement_command(
            my.COM_STMT_RESET, prepared.server_id)))
        await self._server_packet()

    async def _reset_connection(self, packet: my.Packet) -> None:
        """COM_RESET_CONNECTION: relayed; the server's prepared statements go with it, and
        so do tollgate's ids of them."""
        self._upstream.writer.write(packet.raw())
        answer = await self._server_packet()
        if not my.is_err(answer.payload):
            self._statements.clear()
        self._writer.write(answer.raw())

    # -- answers ------------------------------------------------------------------------

    async def _answer(self, run: Run, binary: bool = False) -> None:
        """The server's answer to a statement, every result of it, relayed; `binary`: its
        rows are the binary protocol's (an execute's)."""
        while True:
            first = await self._server_packet()
            payload = first.payload
            if my.is_err(payload):
                self._error(run, first)
                return
            if payload[:1] == b"\x00":
                self._writer.write(first.raw())
                run.results.append("OK")
                if not self._more_results(first):
                    return
                continue
            if payload[:1] == b"\xfb":
                await self._no_local_file(run, first)
                return
            if not await self._result(run, first, binary):
                return

    async def _result(self, run: Run, first: my.Packet, binary: bool) -> bool:
        """A result set: its columns, its rows masked, its end. Whether another result
        of the same statement follows."""
        out = [first.raw()]
        count = my.Reader(first.payload).lenenc_int()
        columns = []
        for _ in range(count):
            packet = await self._server_packet()
            columns.append(my.parse_column_definition(packet.payload))
            out.append(packet.raw())
        if not self._capabilities & my.CLIENT_DEPRECATE_EOF:
            out.append((await self._server_packet()).raw())
        if binary and (problem := unreadable(columns)) is not None:
            await self._skip(await self._skip_rows())
            refusal = run.exchange.refuse(BadInput(403, "unmaskable_result", problem))
            self._writer.write(refusal_packet(refusal, first.seq))
            run.error = "refused: unmaskable result"
            return False
        masker = ResultMasker(self._masker, run.exchange.mask, columns)
        while True:
            rows: list[my.Packet] = []
            end: my.Packet | None = None
            while end is None and (rows == [] or self._from_server):
                packet = await self._server_packet()
                if my.ends_rows(packet.payload, self._capabilities):
                    end = packet
                else:
                    rows.append(packet)
            out += self._rows(run, masker, columns, rows, binary)
            if end is not None:
                break
            self._writer.write(b"".join(out))
            out = []
            await self._writer.drain()
        if my.is_err(end.payload):
            self._writer.write(b"".join(out))
            self._error(run, end)
            return False
        out.append(end.raw())
        self._writer.write(b"".join(out))
        await self._writer.drain()
        run.results.append(f"{count} columns")
        return self._more_results(end)

    def _more_results(self, end: my.Packet) -> bool:
        """Whether another result follows the one this OK or EOF ends."""
        status = (my.parse_ok(end.payload, self._capabilities).status
                  if my.is_ok(end.payload, self._capabilities)
                  else my.parse_eof(end.payload).status)
        return bool(status & my.SERVER_MORE_RESULTS_EXISTS)

    async def _skip_rows(self) -> bool:
        """A result's rows the client will not get, read to their end; whether another
        result follows."""
        while not my.ends_rows((end := await self._server_packet()).payload,
                               self._capabilities):
            pass
        return not my.is_err(end.payload) and self._more_results(end)

    async def _skip(self, more: bool) -> None:
        """The results left of an answer the client will not get, read to its end."""
        while more:
            first = await self._server_packet()
            if my.is_err(first.payload):
                return
            if first.payload[:1] == b"\x00":
                more = self._more_results(first)
                continue
            count = my.Reader(first.payload).lenenc_int()
            for _ in range(count + (0 if self._capabilities & my.CLIENT_DEPRECATE_EOF else 1)):
                await self._server_packet()
            more = await self._skip_rows()

    def _rows(self, run: Run, masker: ResultMasker, columns: list[my.ColumnDefinition],
              packets: list[my.Packet], binary: bool) -> list[bytes]:
        """A result's rows, masked as the exchange's decision says; recorded."""
        if not packets:
            return []
        counts: Counter[str] = Counter()
        if binary:
            sent, rows, counts = masker.binary_rows(
                [my.parse_binary_row(p.payload, columns) for p in packets])
        else:
            rows = [my.parse_text_row(p.payload, len(columns)) for p in packets]
            if masker.masks:
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
            return [my.encode(p.seq, my.encode_binary_row(r, columns))
                    for p, r in zip(packets, sent, strict=True)]
        return [my.encode(p.seq, my.encode_text_row(r)) for p, r in zip(packets, sent, strict=True)]

    def _error(self, run: Run, packet: my.Packet) -> None:
        """The server's error, its message masked (a duplicate key quotes the row)."""
        err = my.parse_err(packet.payload)
        masked, _ = self._masker.mask_json(err.message, RECORD_MASK)
        run.error = f"error {err.code} ({err.sqlstate})"
        run.exchange.outcome["error.type"] = str(err.code)
        self._writer.write(my.encode(packet.seq, my.encode_err(err.code, err.sqlstate,
                                                               str(masked))))

    async def _no_local_file(self, run: Run, request: my.Packet) -> None:
        """LOAD DATA LOCAL: the server asks the client for a file. None is sent (an empty
        packet ends it), and the client is told why."""
        self._upstream.writer.write(my.encode((request.seq + 1) & 0xFF, b""))
        answer = await self._server_packet()
        while my.is_ok(answer.payload, self._capabilities) and my.parse_ok(
                answer.payload, self._capabilities).status & my.SERVER_MORE_RESULTS_EXISTS:
            answer = await self._server_packet()  # what followed it in a multi-statement
        refusal = run.exchange.refuse(BadInput(
            403, "local_infile", "the server asked for a local file (LOAD DATA LOCAL): "
            "tollgate sends none"))
        run.error = "refused: local file"
        self._writer.write(refusal_packet(refusal, request.seq))

    # -- exchanges ----------------------------------------------------------------------

    def _exchange(self, method: str) -> tuple[Exchange, Admission]:
        exchange = self._open(method, {**self.context["policy"], "command": method.lower()})
        exchange.response_mode = "body"
        return exchange, Admission(self._pipeline.recorder, exchange.who)

    def _request(self, exchange: Exchange, method: str, text: str,
                 query: dict[str, list[str]] | None = None) -> None:
        """The statement as the exchange's request (input.request, and the record's);
        `query`: an execute's parameters (the record masks them as it masks queries)."""
        exchange.request = exchange.evidence.request = {
            "method": method, "path": f"/{self.context['database']}", "query": query or {},
            "headers": {}, "body": text}
        exchange.evidence.request_body = BodyCapture.of(text.encode(), exchange.record_limit)

    def _end(self, run: Run) -> None:
        """A command's answer went by (or never will): its record."""
        exchange = run.exchange
        outcome = exchange.outcome
        outcome["tollgate.outcome"] = run.error or "; ".join(run.results) or "done"
        outcome["tollgate.mysql.rows"] = run.rows
        exchange.evidence.upstream_ms = (time.perf_counter() - run.started) * 1000
        exchange.evidence.response = exchange.response = {
            "status": 0, "headers": {"results": "; ".join(run.results),
                                     "rows": str(run.rows)}, "body": None}
        if run.sample:
            exchange.evidence.response_type = "application/x-ndjson"
            exchange.delivered(bytes(run.sample), exchange.mask)
        evidence = exchange.finish()
        if run.admission.admitted:
            self._pipeline.recorder.submit(evidence, exchange.who)


def _text(payload: bytes) -> str | None:
    """A command's text, as UTF-8 (None when it is not: refused, never guessed)."""
    with contextlib.suppress(UnicodeDecodeError):
        return payload.decode("utf-8")
    return None
