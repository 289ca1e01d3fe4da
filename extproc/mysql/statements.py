"""The prepared statements of one MySQL session, under ids of tollgate's own (pure).

The server numbers the statements COM_STMT_PREPARE creates; a client names them by
number in COM_STMT_EXECUTE, SEND_LONG_DATA, RESET, CLOSE and FETCH. The front decides a
statement on its text when it is prepared, so every number the server runs must be one
whose text the front decided. The client never sees the server's numbers: each prepared
statement gets an id of the front's own (counted from 1 in the session, never reused),
and a command naming any other id (one never handed out, or closed) is refused, never
forwarded. MariaDB's "the statement prepared last" (0xFFFFFFFF) is read as the one the
front prepared last in this session, and sent on as that statement's server id; after a
prepare that was refused or failed, it names none.

The map follows the server's: a statement goes when the client closes it, and all of
them when the server drops its own (a reset connection: `clear`).

Each statement keeps what its executions need: the decision they run under, and the
parameter types the client bound last (an execute that binds none reuses them) and the
long data sent since (parameters whose values are not in the next execute). A client
takes both as spent once it sent an execute, whatever the answer; so when tollgate
refuses an execute, the server is brought to the same point: the types it bound are
bound with the next execute that goes, and long data is dropped (COM_STMT_RESET).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from extproc.mysql.binary import binary_text
from extproc.mysql.flags import (
    MYSQL_TYPE_DOUBLE,
    MYSQL_TYPE_FLOAT,
    MYSQL_TYPE_INT24,
    MYSQL_TYPE_LONG,
    MYSQL_TYPE_LONGLONG,
    MYSQL_TYPE_SHORT,
    MYSQL_TYPE_TINY,
    MYSQL_TYPE_YEAR,
)
from extproc.mysql.prepared import LAST_STATEMENT_ID, ParameterType, StmtExecute

if TYPE_CHECKING:
    from extproc.approvals.model import Approval
    from extproc.policy import Decision

# The most of each long-data parameter kept for the record (the rest is counted).
LONG_DATA_KEPT = 4096
_LAST_OWN_ID = LAST_STATEMENT_ID - 1
# Parameter types written as numbers: integers and floats.
_NUMBERS = frozenset({MYSQL_TYPE_TINY, MYSQL_TYPE_SHORT, MYSQL_TYPE_INT24,
                      MYSQL_TYPE_LONG, MYSQL_TYPE_LONGLONG, MYSQL_TYPE_YEAR,
                      MYSQL_TYPE_FLOAT, MYSQL_TYPE_DOUBLE})


@dataclass(slots=True)
class LongData:
    """A parameter's value as COM_STMT_SEND_LONG_DATA sent it: its first bytes, and the
    size of all of it."""

    head: bytearray = field(default_factory=bytearray)
    size: int = 0

    def add(self, data: bytes) -> None:
        self.size += len(data)
        room = LONG_DATA_KEPT - len(self.head)
        if room > 0:
            self.head += data[:room]


@dataclass(slots=True)
class Prepared:
    """A statement the server prepared, as its text was decided."""

    id: int  # the client's: tollgate's own
    server_id: int
    text: str
    num_params: int
    meaning: Any
    decision: Decision
    revision: str
    duration_us: int
    approval: Approval | None = None
    # The parameter types the client bound last; whether the server missed them (they
    # came with an execute tollgate refused); the long data sent since the last execute.
    types: tuple[ParameterType, ...] | None = None
    unbound: bool = False
    long_data: dict[int, LongData] = field(default_factory=dict)

    def parameters(self, execute: StmtExecute) -> list[str]:
        """An execute's parameters as the record shows them: SQL literals, long data
        included."""
        types = execute.types if execute.types is not None else self.types
        if types is None:
            return []
        return [_literal(self.long_data.get(i), kind, value)
                for i, (kind, value) in enumerate(zip(types, execute.values, strict=True))]

    def ran(self, execute: StmtExecute) -> bool:
        """The execute goes to the server, which then binds its types (if it carries
        any) and spends the long data; whether its packet must bind the types the
        server missed (`bind_types`)."""
        rebind = execute.types is None and self.unbound
        if execute.types is not None:
            self.types = execute.types
        self.unbound = False
        self.long_data.clear()
        return rebind

    def refused(self, execute: StmtExecute | None) -> bool:
        """tollgate refused the execute: the client takes its types as bound and its
        long data as spent, as after any execute. The types are bound with the next one
        that goes; whether the server holds long data that a COM_STMT_RESET must drop."""
        if execute is not None and execute.types is not None:
            self.types, self.unbound = execute.types, True
        held = bool(self.long_data)
        self.long_data.clear()
        return held


class Statements:
    """The session's prepared statements by tollgate's ids."""

    def __init__(self) -> None:
        self._by_id: dict[int, Prepared] = {}
        self._next = 1
        self.last: Prepared | None = None

    def __len__(self) -> int:
        return len(self._by_id)

    def next_id(self) -> int:
        """The id the next statement gets (ValueError once the session used them all)."""
        if self._next > _LAST_OWN_ID:
            raise ValueError("this session prepared 2^32 - 2 statements: reconnect")
        return self._next

    def add(self, prepared: Prepared) -> Prepared:
        """A statement the server prepared, under the id `next_id` gave; the last one."""
        if prepared.id != self.next_id():
            raise ValueError(f"statement id {prepared.id} is not the next, {self._next}")
        self._next += 1
        self._by_id[prepared.id] = self.last = prepared
        return prepared

    def not_prepared(self) -> None:
        """A prepare was refused or failed: "the statement prepared last" names none."""
        self.last = None

    def get(self, statement_id: int) -> Prepared | None:
        """The statement a client's id names (None: tollgate handed out no such id, or
        the statement is gone)."""
        if statement_id == LAST_STATEMENT_ID:
            return self.last
        return self._by_id.get(statement_id)

    def close(self, statement_id: int) -> Prepared | None:
        """The statement closed (None: there was none)."""
        prepared = self.get(statement_id)
        if prepared is not None:
            del self._by_id[prepared.id]
            if self.last is prepared:
                self.last = None
        return prepared

    def clear(self) -> None:
        """Every statement gone, as the server drops them on a reset connection."""
        self._by_id.clear()
        self.last = None

    def server_ids(self) -> dict[int, int]:
        """tollgate's id -> the server's, of every statement open."""
        return {i: p.server_id for i, p in self._by_id.items()}


def _literal(long_data: LongData | None, kind: ParameterType, value: bytes | None) -> str:
    """A parameter as SQL would write it: NULL, a number's digits, a quoted string
    (bytes that are not UTF-8 as a hex literal)."""
    if long_data is not None:
        shown = _quoted(bytes(long_data.head))
        cut = long_data.size - len(long_data.head)
        return shown + (f" (long data, {cut} more bytes)" if cut else "")
    if value is None:
        return "NULL"
    text = binary_text(kind.type, kind.unsigned, value)
    return text.decode("ascii") if kind.type in _NUMBERS else _quoted(text)


def _quoted(raw: bytes) -> str:
    try:
        return "'" + raw.decode("utf-8").replace("'", "''") + "'"
    except UnicodeDecodeError:
        return "x'" + raw.hex() + "'"

