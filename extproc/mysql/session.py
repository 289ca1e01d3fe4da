"""One logged-in MySQL client and the gateway's connection to its server.

MySQL's protocol is a conversation: the client sends one command (sequence id 0) and
reads the server's whole answer before the next. So the session is one loop: a command
is read, decided where it carries SQL, sent on or refused with the protocol's ERR packet
(the session goes on), and its answer relayed packet by packet, each result's rows
masked by column.

Every command is decided or refused; none passes undecided:

    COM_QUERY     the text read by the MySQL dialect, each statement decided
    COM_INIT_DB   decided as the `USE` it stands for
    COM_PING      carries nothing: relayed
    COM_QUIT      ends the session
    any other     refused (ER_UNKNOWN_COM_ERROR): prepared statements, COM_FIELD_LIST,
                  COM_CHANGE_USER, replication, COM_PROCESS_KILL ... are not relayed yet

The server never asks for a local file: tollgate does not offer CLIENT_LOCAL_FILES
upstream, and a LOAD DATA LOCAL request arriving anyway is answered with no file. A
command whose sequence id is not 0, and a packet the framer refuses (too large, a
continuation out of sequence), are answered with an ERR and end the session, as the
server would end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from extproc.codecs.refusal import BadInput
from extproc.exchange.pipeline import Pipeline, failure
from extproc.exchange.recorded import Admission
from extproc.exchange.state import Answer, Exchange
from extproc.masking import Masker
from extproc.mysql import packets as my
from extproc.mysql.results import ResultMasker, error_message, record_sample
from extproc.mysql.upstream import Upstream
from extproc.recording import BodyCapture
from extproc.recording.record import RECORD_MASK

_READ_SIZE = 256 * 1024
_RELAYED = frozenset({my.COM_PING})
# ER_TABLEACCESS_DENIED_ERROR, and ER_SPECIFIC_ACCESS_DENIED_ERROR for what needs a
# privilege beyond tables (the server's, roles, settings).
_ACCESS_DENIED, _PRIVILEGE_DENIED = 1142, 1227
_PRIVILEGE_RULES = frozenset({"sql.privilege", "sql.configuration", "sql.server_access",
                              "sql.setting", "sql.dynamic"})


class Closed(Exception):
    """Either side went away, or sent what is not the protocol: the session ends."""


def refusal_packet(answer: Answer, seq: int = 1) -> bytes:
    """tollgate's refusal as an ERR packet: the reasons, the rules, an approval's state
    and the trace id in its message, which every client shows."""
    body = answer.body
    reasons = body.get("reasons") or [body.get("message") or answer.error]
    notes = [f"trace id {answer.trace_id}"]
    rules = body.get("rules") or []
    if rules:
        notes.insert(0, "rules: " + ", ".join(rules))
    if body.get("approval_id"):
        notes.insert(0, f"approval {body['approval_id']} ({body.get('status')})")
    if answer.status == 403:
        code = _PRIVILEGE_DENIED if _PRIVILEGE_RULES & set(rules) else _ACCESS_DENIED
        sqlstate = "42000"
    elif answer.status in (401, 407):
        code, sqlstate = 1045, "28000"
    else:
        code, sqlstate = 1105, "HY000"  # ER_UNKNOWN_ERROR
    message = "tollgate: " + "; ".join(map(str, reasons)) + f" ({'; '.join(notes)})"
    return my.encode(seq, my.encode_err(code, sqlstate, message))


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
            try:
                self._from_client.extend(self._framer.feed(data))
            except my.ProtocolViolation as exc:
                # Told why before the session ends (ER_NET_PACKET_TOO_LARGE's code).
                if exc.reply_seq is not None:
                    self._writer.write(my.encode(exc.reply_seq, my.encode_err(
                        1153, "08S01", f"tollgate: {exc}; the session ends")))
                    with contextlib.suppress(ConnectionError):
                        await self._writer.drain()
                raise
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
        if packet.seq != 0:
            await self._out_of_order(packet.seq, my.command_name(command))
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
        else:
            await self._unrelayed(my.command_name(command))

    async def _out_of_order(self, seq: int, name: str) -> None:
        """A command starts a conversation at sequence id 0; the server answers any other
        with ER_NET_PACKETS_OUT_OF_ORDER and hangs up, so the front does, recorded, never
        relaying a command the server would not take."""
        exchange, admission = self._exchange(name)
        answer = self._pipeline.refuse_recorded(exchange, admission, BadInput(
            400, "packets_out_of_order", f"a command with sequence id {seq}, not 0: the "
            "session ends"))
        self._writer.write(my.encode((seq + 1) & 0xFF, my.encode_err(
            1156, "08S01", f"tollgate: {answer.body.get('message')} "
            f"(trace id {answer.trace_id})")))
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()
        raise Closed("a command out of sequence")

    async def _unrelayed(self, name: str) -> None:
        exchange, admission = self._exchange(name)
        answer = self._pipeline.refuse_recorded(exchange, admission, BadInput(
            400, "unsupported_command", f"{name} is not relayed by tollgate's MySQL front "
            "(COM_QUERY, COM_INIT_DB, COM_PING and COM_QUIT are)"))
        self._writer.write(my.encode(1, my.encode_err(1047, "08S01", "tollgate: "
                                                      f"{answer.body.get('message')} "
                                                      f"(trace id {answer.trace_id})")))

    async def _statement(self, packet: my.Packet, method: str, text: str | None) -> None:
        """A command that carries SQL: decided, then sent on and its answer relayed, or
        refused."""
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
        if refusal is not None:
            self._writer.write(refusal_packet(refusal))
            run.error = "refused"
            self._end(run)
            return
        self._upstream.writer.write(packet.raw())
        try:
            await self._answer(run)
        finally:
            self._end(run)

    # -- answers ------------------------------------------------------------------------

    async def _answer(self, run: Run) -> None:
        """The server's answer to a statement, every result of it, relayed."""
        while True:
            first = await self._server_packet()
            payload = first.payload
            if my.is_err(payload):
                self._error(run, first)
                return
            if payload[:1] == b"\x00":
                self._writer.write(first.raw())
                run.results.append("OK")
                if not my.parse_ok(payload, self._capabilities).status \
                        & my.SERVER_MORE_RESULTS_EXISTS:
                    return
                continue
            if payload[:1] == b"\xfb":
                await self._no_local_file(run, first)
                return
            if not await self._result(run, first):
                return

    async def _result(self, run: Run, first: my.Packet) -> bool:
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
            out += self._rows(run, masker, columns, rows)
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
        status = (my.parse_ok(end.payload, self._capabilities).status
                  if my.is_ok(end.payload, self._capabilities)
                  else my.parse_eof(end.payload).status)
        return bool(status & my.SERVER_MORE_RESULTS_EXISTS)

    def _rows(self, run: Run, masker: ResultMasker, columns: list[my.ColumnDefinition],
              packets: list[my.Packet]) -> list[bytes]:
        """Text-protocol rows, masked as the exchange's decision says; recorded."""
        if not packets:
            return []
        rows = [my.parse_text_row(p.payload, len(columns)) for p in packets]
        run.rows += len(rows)
        if masker.masks:
            rows, counts = masker.rows(rows)
            if counts:
                run.exchange.record_masking(counts)
        limit = run.exchange.record_limit
        if len(run.sample) < limit:
            run.sample += b"\n" if run.sample else b""
            run.sample += record_sample(columns, rows, limit)
        return [my.encode(p.seq, my.encode_text_row(r))
                for p, r in zip(packets, rows, strict=True)]

    def _error(self, run: Run, packet: my.Packet) -> None:
        """The server's error, its message masked (a duplicate key quotes the row)."""
        err = my.parse_err(packet.payload)
        request = run.exchange.request
        message = error_message(err.message, err.code,
                                str(request["body"]) if request else "", run.exchange.mask)
        masked, _ = self._masker.mask_json(message, RECORD_MASK)
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

    def _request(self, exchange: Exchange, method: str, text: str) -> None:
        """The statement as the exchange's request (input.request, and the record's)."""
        exchange.request = exchange.evidence.request = {
            "method": method, "path": f"/{self.context['database']}", "query": {},
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
