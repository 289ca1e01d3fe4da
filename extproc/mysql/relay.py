"""The server's answer to one command, decided packet by packet, with no I/O (sans-IO).

An answer is a sequence of results, each an OK or a result set (a column count, a
definition a column, an EOF unless CLIENT_DEPRECATE_EOF, the rows, and an EOF, OK or
ERR ending them), the last without SERVER_MORE_RESULTS_EXISTS in its status; or an ERR;
or the server asking for a local file (0xFB). `Relay` takes the server's packets one at
a time and says what the client gets: each packet relayed as it is, or rewritten (rows
masked by column as the exchange's decision says; a column definition saying binary
while the client's view of character_set_results is binary; status bits the client does
not see cleared, while the front holds a transaction of its own around a measured
write), and when the answer is over. What it learns goes in the command's `Run` (rows,
results, a sample for the record, the error) and `status` (the server's, as the answer
last gave it).

Rows are masked a batch at a time: those the loop has framed already wait in the relay
until the loop has no more without a read (`flush`), then go out together, and the loop
waits for the client to take them before it reads on. A binary result (an execute's)
whose column the masker cannot read is not relayed at all: its rows, and every result
after it, are read to the end of the answer and the client gets a refusal instead.

COM_FIELD_LIST's answer (`field_list`) is definitions alone, up to an EOF.

The loop (runs.py, `Runs.answer`) feeds it, writes what a `Step` says, and answers the
server's request for a local file, which needs the server's stream.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import TYPE_CHECKING

from extproc.codecs.refusal import Refused
from extproc.masking.record_mask import RECORD_MASK
from extproc.mysql.flags import CLIENT_DEPRECATE_EOF, SERVER_MORE_RESULTS_EXISTS
from extproc.mysql.framing import Packet, Reader, encode
from extproc.mysql.refusals import PRIVILEGE_ERRORS, refusal_packet
from extproc.mysql.responses import (
    encode_err,
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
)

if TYPE_CHECKING:
    from extproc.codecs.rows import Rows
    from extproc.masking import Masker
    from extproc.mysql.runs import Run

_BINARY = 63  # the binary character set's id, in a column definition


def more_results(end: Packet, capabilities: int) -> tuple[int, bool]:
    """The server's status as an OK or EOF ending a result gives it, and whether
    another result of the same command follows."""
    status = (parse_ok(end.payload, capabilities).status if is_ok(end.payload, capabilities)
              else parse_eof(end.payload).status)
    return status, bool(status & SERVER_MORE_RESULTS_EXISTS)


def error_packet(run: Run, packet: Packet, masker: Masker) -> bytes:
    """The server's error for the client, its message masked (a duplicate key quotes
    the row); the run's error, and the exchange's error.type, say which."""
    err = parse_err(packet.payload)
    request = run.exchange.request
    message = error_message(err.message, err.code,
                            str(request["body"]) if request else "", run.exchange.mask)
    masked, _ = masker.mask_json(message, RECORD_MASK)
    run.error = (f"{'refused by the database' if err.code in PRIVILEGE_ERRORS else 'error'}"
                 f" {err.code} ({err.sqlstate})")
    run.exchange.outcome["error.type"] = str(err.code)
    return encode(packet.seq, encode_err(err.code, err.sqlstate, str(masked)))


@dataclass(slots=True)
class Step:
    """What one packet gave: bytes for the client (one write each, in order), whether
    to wait for the client to take them, whether the answer is over, and the server's
    request for a local file (the loop answers it: the answer is then over)."""

    writes: list[bytes] = field(default_factory=list)
    drain: bool = False
    done: bool = False
    local_file: Packet | None = None


class _Phase(Enum):
    FIRST = auto()          # a result's first packet: OK, ERR, 0xFB or a column count
    COLUMNS = auto()        # its column definitions
    COLUMNS_END = auto()    # the EOF after them (no CLIENT_DEPRECATE_EOF)
    ROWS = auto()           # its rows, up to the packet ending them
    SKIP_ROWS = auto()      # an unmaskable result's rows, read and dropped
    SKIP_FIRST = auto()     # the results after it, read and dropped
    SKIP_COLUMNS = auto()
    FIELDS = auto()         # COM_FIELD_LIST's definitions, up to its EOF
    DONE = auto()


class Relay:
    """One command's answer (`binary`: its rows are the binary protocol's, an
    execute's; `field_list`: COM_FIELD_LIST's), packet by packet."""

    def __init__(self, run: Run, masker: Masker, capabilities: int, status: int, *,
                 binary: bool = False, binary_results: bool = False,
                 hidden_status: int = 0, field_list: bool = False) -> None:
        self._run, self._masker, self._capabilities = run, masker, capabilities
        self._binary, self._binary_results = binary, binary_results
        self._hidden_status = hidden_status
        self._deprecate_eof = bool(capabilities & CLIENT_DEPRECATE_EOF)
        # The server's status as the answer last gave it.
        self.status = status
        self._phase = _Phase.FIELDS if field_list else _Phase.FIRST
        # The result set read now: its first packet, column count and definitions,
        # what is yet to go to the client, the rows waiting to be masked.
        self._first: Packet | None = None
        self._count = self._left = 0
        self._columns: list[ColumnDefinition] = []
        self._out: list[bytes] = []
        self._batch: list[Packet] = []
        self._row_masker: ResultMasker | None = None
        self._problem = ""
        # What takes a packet, by the phase the answer is in.
        self._takes: dict[_Phase, Callable[[Packet], Step]] = {
            _Phase.FIRST: self._first_packet, _Phase.COLUMNS: self._column,
            _Phase.COLUMNS_END: self._columns_end, _Phase.ROWS: self._row,
            _Phase.SKIP_ROWS: self._skipped_row, _Phase.SKIP_FIRST: self._skipped_first,
            _Phase.SKIP_COLUMNS: self._skipped_column, _Phase.FIELDS: self._field,
            _Phase.DONE: self._after_end}

    @property
    def done(self) -> bool:
        return self._phase is _Phase.DONE

    @property
    def holding(self) -> bool:
        """Whether rows wait to be masked and sent (`flush` sends them)."""
        return bool(self._batch)

    def feed(self, packet: Packet) -> Step:
        """The server's next packet of the answer: what the client gets for it."""
        return self._takes[self._phase](packet)

    def flush(self) -> Step:
        """The rows waiting, masked, sent with what came before them; the client is
        waited for before more is read."""
        assert self._phase is _Phase.ROWS
        self._out += self._masked(self._batch)
        self._batch = []
        out, self._out = self._out, []
        return Step([b"".join(out)], drain=True)

    # -- results ------------------------------------------------------------------------

    def _first_packet(self, first: Packet) -> Step:
        payload = first.payload
        if is_err(payload):
            return self._over([error_packet(self._run, first, self._masker)])
        if payload[:1] == b"\x00":
            step = Step([self._relayed(first)])
            self._run.results.append("OK")
            if not self._more(first):
                self._phase = _Phase.DONE
                step.done = True
            return step
        if payload[:1] == b"\xfb":
            self._phase = _Phase.DONE
            return Step(done=True, local_file=first)
        self._first, self._out, self._columns = first, [first.raw()], []
        self._count = self._left = Reader(payload).lenenc_int()
        self._phase = _Phase.COLUMNS
        return self._columns_read() if self._left == 0 else Step()

    def _column(self, packet: Packet) -> Step:
        column = parse_column_definition(packet.payload)
        self._columns.append(column)
        self._out.append(
            packet.raw() if not self._binary_results or column.charset == _BINARY
            else encode(packet.seq, encode_column_definition(column._replace(
                charset=_BINARY, length=column.length // 4))))
        self._left -= 1
        return self._columns_read() if self._left == 0 else Step()

    def _columns_end(self, packet: Packet) -> Step:
        self._out.append(packet.raw())
        return self._rows_start()

    def _columns_read(self) -> Step:
        if not self._deprecate_eof:
            self._phase = _Phase.COLUMNS_END
            return Step()
        return self._rows_start()

    def _rows_start(self) -> Step:
        if self._binary and (problem := unreadable(self._columns)) is not None:
            self._problem, self._out = problem, []
            self._phase = _Phase.SKIP_ROWS
            return Step()
        self._row_masker = ResultMasker(self._masker, self._run.exchange.mask, self._columns)
        self._phase = _Phase.ROWS
        return Step()

    def _row(self, packet: Packet) -> Step:
        if not ends_rows(packet.payload, self._capabilities):
            self._batch.append(packet)
            return Step()
        return self._result_end(packet)

    def _result_end(self, end: Packet) -> Step:
        self._out += self._masked(self._batch)
        self._batch = []
        out, self._out = self._out, []
        if is_err(end.payload):
            return self._over([b"".join(out), error_packet(self._run, end, self._masker)])
        out.append(self._relayed(end))
        self._run.results.append(f"{self._count} columns")
        step = Step([b"".join(out)], drain=True)
        if self._more(end):
            self._phase = _Phase.FIRST
        else:
            self._phase, step.done = _Phase.DONE, True
        return step

    def _skipped_row(self, packet: Packet) -> Step:
        """A row of a result not relayed, dropped; at its end, what follows."""
        if not ends_rows(packet.payload, self._capabilities):
            return Step()
        if not is_err(packet.payload) and self._more(packet):
            self._phase = _Phase.SKIP_FIRST
            return Step()
        return self._unmaskable()

    def _skipped_column(self, _packet: Packet) -> Step:
        self._left -= 1
        if self._left == 0:
            self._phase = _Phase.SKIP_ROWS
        return Step()

    def _skipped_first(self, first: Packet) -> Step:
        """A result after an unmaskable one, dropped as it comes."""
        if is_err(first.payload):
            return self._unmaskable()
        if first.payload[:1] == b"\x00":
            return Step() if self._more(first) else self._unmaskable()
        self._left = Reader(first.payload).lenenc_int() + (0 if self._deprecate_eof else 1)
        self._phase = _Phase.SKIP_COLUMNS if self._left else _Phase.SKIP_ROWS
        return Step()

    def _unmaskable(self) -> Step:
        """The answer read to its end, none of it relayed: the client's refusal."""
        assert self._first is not None
        refusal = self._run.exchange.refuse(Refused(403, "unmaskable_result", self._problem))
        self._run.error = "refused: unmaskable result"
        return self._over([refusal_packet(refusal, self._first.seq)])

    def _field(self, packet: Packet) -> Step:
        """COM_FIELD_LIST's answer: a column definition a column (no rows: names, types
        and defaults, relayed as they are), then EOF, or ERR."""
        if is_err(packet.payload) and not is_eof(packet.payload):
            out, self._out = self._out, []
            return self._over([b"".join(out), error_packet(self._run, packet, self._masker)])
        if not is_eof(packet.payload):
            self._columns.append(parse_column_definition(packet.payload, field_list=True))
            self._out.append(packet.raw())
            return Step()
        self.status = parse_eof(packet.payload).status
        out, self._out = self._out, []
        self._run.results.append(f"{len(self._columns)} columns")
        self._run.sample += record_sample(self._columns, [], self._run.exchange.record_limit)
        return self._over([b"".join(out) + packet.raw()])

    def _after_end(self, _packet: Packet) -> Step:
        raise AssertionError("a packet after the answer ended")

    def _over(self, writes: list[bytes]) -> Step:
        self._phase = _Phase.DONE
        return Step(writes, done=True)

    def _more(self, end: Packet) -> bool:
        self.status, more = more_results(end, self._capabilities)
        return more

    def _relayed(self, end: Packet) -> bytes:
        """An OK or EOF for the client: the status bits it does not see cleared."""
        if not self._hidden_status:
            return end.raw()
        return encode(end.seq, without_status(end.payload, self._capabilities,
                                              self._hidden_status))

    def _masked(self, packets: list[Packet]) -> list[bytes]:
        """A result's rows, masked as the exchange's decision says; recorded."""
        if not packets:
            return []
        run, columns, masker = self._run, self._columns, self._row_masker
        assert masker is not None
        if self._binary:
            parsed = [parse_binary_row(p.payload, columns) for p in packets]

            def binary() -> tuple[tuple[Rows, Rows], Counter[str]]:
                sent, rows, counts = masker.binary_rows(parsed)
                return (sent, rows), counts

            sent, rows = run.masked(binary)
        else:
            rows = [parse_text_row(p.payload, len(columns)) for p in packets]
            if masker.masks:
                rows = run.masked(functools.partial(masker.rows, rows))
            sent = rows
        run.rows += len(rows)
        run.delivering(functools.partial(masker.values, rows))
        run.kept(functools.partial(record_sample, columns, rows))
        if self._binary:
            return [encode(p.seq, encode_binary_row(r, columns))
                    for p, r in zip(packets, sent, strict=True)]
        return [encode(p.seq, encode_text_row(r)) for p, r in zip(packets, sent, strict=True)]
