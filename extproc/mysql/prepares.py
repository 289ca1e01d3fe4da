"""Prepared statements: COM_STMT_PREPARE decided, the commands naming one relayed.

    COM_STMT_PREPARE      its text decided as a COM_QUERY's (a KILL is not prepared: it is
                          tollgate's to do); prepared, the statement gets an id of
                          tollgate's own (statements.py)
    COM_STMT_EXECUTE      an exchange of its own under its prepare's decision (its
                          parameters in the record), its binary rows masked
    COM_STMT_SEND_LONG_DATA, COM_STMT_RESET, COM_STMT_CLOSE
                          sent on under the server's id of the statement
    COM_STMT_FETCH        refused, and so is an execute asking for a cursor: server-side
                          cursors are not relayed

A command naming a prepared statement by an id tollgate did not hand out, or one closed,
is refused (ER_UNKNOWN_STMT_HANDLER; CLOSE and SEND_LONG_DATA have no answer in the
protocol, so theirs is none, as the server's would be) and recorded, never sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from extproc.codecs.refusal import OverLimit, Refusal, Refused
from extproc.mysql.flags import (
    CLIENT_DEPRECATE_EOF,
    COM_STMT_CLOSE,
    COM_STMT_EXECUTE,
    COM_STMT_FETCH,
    COM_STMT_RESET,
    COM_STMT_SEND_LONG_DATA,
    command_name,
)
from extproc.mysql.framing import ProtocolViolation, encode
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
from extproc.mysql.responses import is_err
from extproc.mysql.resultsets import parse_column_definition
from extproc.mysql.runs import Run
from extproc.mysql.state import read_sql
from extproc.mysql.statements import LongData, Prepared

if TYPE_CHECKING:
    from extproc.mysql.framing import Packet
    from extproc.mysql.measured import Measure
    from extproc.mysql.queries import Queries
    from extproc.mysql.runs import Runs
    from extproc.mysql.state import SessionState
    from extproc.mysql.wire import Wire

# The commands naming a prepared statement, as the record names them; those the server
# never answers (a refusal of theirs is answered with nothing either).
STATEMENT_METHODS = {COM_STMT_EXECUTE: "EXECUTE", COM_STMT_SEND_LONG_DATA: "LONG_DATA",
                     COM_STMT_RESET: "RESET", COM_STMT_CLOSE: "CLOSE",
                     COM_STMT_FETCH: "FETCH"}
UNANSWERED = frozenset({COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE})
_CURSORS = CURSOR_TYPE_READ_ONLY | CURSOR_TYPE_FOR_UPDATE | CURSOR_TYPE_SCROLLABLE
_NO_CURSORS = ("tollgate does not relay server-side cursors (COM_STMT_FETCH, an execute "
               "asking for a cursor): execute without one, and read the rows as they come")


class Prepares:
    """The session's prepared statements' commands."""

    def __init__(self, state: SessionState, wire: Wire, runs: Runs, queries: Queries,
                 measure: Measure) -> None:
        self._state, self._wire, self._runs = state, wire, runs
        self._queries, self._measure = queries, measure

    async def prepare(self, packet: Packet) -> None:
        """COM_STMT_PREPARE: its text decided as a COM_QUERY's, so a statement refused or
        held and denied never exists on the server; prepared, it gets an id of tollgate's
        own (statements.py)."""
        state = self._state
        text = read_sql(packet.payload[1:], state.backslashes)
        run = Run(state.act("PREPARE"))
        refusal = await self._queries.decide(run, "PREPARE", text)
        if refusal is None:
            try:
                state.statements.next_id()
            except ValueError as exc:
                refusal = run.exchange.refuse(OverLimit(429, "statement_ids", str(exc)))
        if refusal is not None:
            state.statements.not_prepared()
            self._runs.refused(run, refusal)
            return
        assert text is not None  # a text that is not UTF-8 was refused
        self._wire.send(packet.raw())
        await self._runs.answered(run, self._prepared(run, text))

    async def _prepared(self, run: Run, text: str) -> None:
        """The server's answer to a prepare: an ERR, or its statement under tollgate's id,
        the definitions of its parameters and columns after it as they came."""
        state, wire = self._state, self._wire
        first = await wire.server_packet()
        if is_err(first.payload):
            state.statements.not_prepared()
            self._runs.error(run, first)
            return
        ok = parse_prepare_ok(first.payload)
        exchange = run.exchange
        decided = exchange.evidence.decisions[-1]
        prepared = state.statements.add(Prepared(
            state.statements.next_id(), ok.statement_id, text, ok.num_params,
            exchange.meaning, exchange.decision, decided.revision, decided.duration_us,
            exchange.approval))
        out = [encode(first.seq, encode_prepare_ok(ok._replace(statement_id=prepared.id)))]
        for count in (ok.num_params, ok.num_columns):
            for _ in range(count):
                packet = await wire.server_packet()
                parse_column_definition(packet.payload)
                out.append(packet.raw())
            if count and not state.capabilities & CLIENT_DEPRECATE_EOF:
                out.append((await wire.server_packet()).raw())
        wire.write(b"".join(out))
        run.results.append(f"statement {prepared.id}: {ok.num_params} parameters, "
                           f"{ok.num_columns} columns")

    async def statement_command(self, packet: Packet) -> None:
        """A command naming a prepared statement: by an id tollgate handed out, sent on
        under the server's id; by any other, refused (recorded), never sent."""
        state, wire, runs = self._state, self._wire, self._runs
        command = packet.payload[0]
        method = STATEMENT_METHODS[command]
        answered = command not in UNANSWERED
        try:
            statement = statement_id(packet.payload)
        except ProtocolViolation as exc:
            runs.refuse(method, Refused(400, "protocol_violation", f"a "
                                        f"{command_name(command)} that cannot be read: "
                                        f"{exc}"), answered)
            return
        prepared = state.statements.get(statement)
        if prepared is None:
            runs.refuse(method, Refused(
                400, "unknown_statement", f"statement {statement} was not prepared "
                "through tollgate in this session (or was closed): tollgate runs only "
                "statements it decided"), answered, named=f"statement {statement}")
        elif command == COM_STMT_EXECUTE:
            await self._execute(packet, prepared)
        elif command == COM_STMT_FETCH:
            runs.refuse(method, Refused(400, "unsupported_cursor", _NO_CURSORS),
                        named=prepared.text)
        elif command == COM_STMT_SEND_LONG_DATA:
            self._long_data(packet, prepared)
        else:
            if command == COM_STMT_CLOSE:
                state.statements.close(statement)
            wire.send(encode(packet.seq, with_statement_id(
                packet.payload, prepared.server_id)))
            if command == COM_STMT_RESET:
                answer = await wire.server_packet()
                if not is_err(answer.payload):
                    prepared.long_data.clear()
                wire.write(answer.raw())

    def _long_data(self, packet: Packet, prepared: Prepared) -> None:
        """A piece of a parameter's value: sent on, and kept (its first bytes) for the
        execute's record."""
        try:
            piece = parse_long_data(packet.payload)
        except ProtocolViolation as exc:
            self._runs.refuse("LONG_DATA", Refused(400, "protocol_violation", "a "
                                                   "COM_STMT_SEND_LONG_DATA that cannot be "
                                                   f"read: {exc}"), answered=False)
            return
        prepared.long_data.setdefault(piece.parameter, LongData()).add(piece.data)
        self._wire.send(encode(packet.seq, with_statement_id(
            packet.payload, prepared.server_id)))

    async def _execute(self, packet: Packet, prepared: Prepared) -> None:
        """COM_STMT_EXECUTE: an exchange of its own, under its prepare's decision (the
        parameters in its record); its binary rows masked as text rows are."""
        state, runs = self._state, self._runs
        run = Run(state.act("EXECUTE"))
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
        state.last_text = prepared.text
        state.request(exchange, "EXECUTE", prepared.text, None if execute is None else {
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
            runs.refused(run, run.act.refusal(problem, "statement"))
            return
        payload = packet.payload
        if prepared.ran(execute):
            assert prepared.types is not None
            payload = bind_types(payload, prepared.num_params, prepared.types)
        raw = encode(packet.seq, with_statement_id(payload, prepared.server_id))
        try:
            measure = await self._measure.measurable(run)
        except Exception as exc:  # the catalog could not be read: fail closed
            runs.refused(run, run.act.refusal(exc, "statement"))
            return
        if measure:
            await runs.answered(run, self._measure.measured(run, raw, binary=True))
        else:
            self._wire.send(raw)
            await runs.answered(run, runs.answer(run, binary=True))
        state.follow_sql_mode(prepared.text, run.error is None)

    async def _reset_quietly(self, prepared: Prepared) -> None:
        """The long data of an execute tollgate refused, dropped on the server as that
        execute would have (its answer is tollgate's alone)."""
        self._wire.send_own(encode(0, encode_statement_command(
            COM_STMT_RESET, prepared.server_id)))
        await self._wire.server_packet()
