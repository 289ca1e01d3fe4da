"""The prepared statements' packets: COM_STMT_PREPARE's answer, the commands that name a
statement by its id (EXECUTE, SEND_LONG_DATA, CLOSE, RESET, FETCH) and the parameters a
COM_STMT_EXECUTE binds.

Only their layout: statements.py keeps a session's statements under tollgate's own ids.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from extproc.mysql.binary import encode_binary_value, read_binary_value
from extproc.mysql.flags import COM_STMT_EXECUTE, COM_STMT_SEND_LONG_DATA, OK_HEADER
from extproc.mysql.framing import INT2, INT4, ProtocolViolation, Reader, expect_header

_PREPARE_OK = struct.Struct("<BIHHxH")


class PrepareOk(NamedTuple):
    """COM_STMT_PREPARE's answer; the parameters' and the columns' definitions follow."""

    statement_id: int
    num_columns: int
    num_params: int
    warnings: int = 0


def parse_prepare_ok(payload: bytes) -> PrepareOk:
    r = Reader(payload)
    expect_header(r, OK_HEADER, "a COM_STMT_PREPARE_OK")
    statement_id, num_columns, num_params = r.int4(), r.int2(), r.int2()
    r.int1()  # filler
    warnings = r.int2() if r.remaining else 0
    r.done()
    return PrepareOk(statement_id, num_columns, num_params, warnings)


def encode_prepare_ok(ok: PrepareOk) -> bytes:
    return _PREPARE_OK.pack(OK_HEADER, ok.statement_id, ok.num_columns, ok.num_params,
                            ok.warnings)


# The statement id MariaDB reads as "the statement prepared last on this connection" (its
# Connector/C sends a COM_STMT_EXECUTE naming it right behind the COM_STMT_PREPARE).
LAST_STATEMENT_ID = 0xFFFFFFFF
# COM_STMT_EXECUTE's flags: the cursor types (MySQL 8 adds a parameter count, 1 << 3, with
# CLIENT_QUERY_ATTRIBUTES only, which no front here offers).
CURSOR_TYPE_READ_ONLY = 1 << 0
CURSOR_TYPE_FOR_UPDATE = 1 << 1
CURSOR_TYPE_SCROLLABLE = 1 << 2
_PARAMETER_UNSIGNED = 0x8000  # a bound parameter type's flag, in its 2 bytes


def statement_id(payload: bytes) -> int:
    """The statement id a COM_STMT_* command names (EXECUTE, SEND_LONG_DATA, CLOSE, RESET,
    FETCH, BULK_EXECUTE: its first field)."""
    return Reader(payload, 1).int4()


def encode_statement_command(command: int, statement: int) -> bytes:
    """A command that is a statement id alone (COM_STMT_CLOSE, COM_STMT_RESET)."""
    return bytes((command,)) + INT4.pack(statement)


def with_statement_id(payload: bytes, statement: int) -> bytes:
    """A COM_STMT_* command naming `statement` instead, its other bytes as they were."""
    statement_id(payload)  # the command has one to replace
    return payload[:1] + INT4.pack(statement) + payload[5:]


class ParameterType(NamedTuple):
    """A parameter's type as COM_STMT_EXECUTE binds it (a MYSQL_TYPE_* and its sign)."""

    type: int
    unsigned: bool = False


class StmtExecute(NamedTuple):
    """A COM_STMT_EXECUTE. `types`: the parameter types it binds, None when it binds none
    (the previous execute's stand); `values`: each parameter's value as the binary
    protocol lays it out, None for NULL and for a parameter sent as long data (whose
    value is not in the packet)."""

    statement_id: int
    flags: int
    iterations: int
    types: tuple[ParameterType, ...] | None
    values: tuple[bytes | None, ...]


def parse_stmt_execute(payload: bytes, num_params: int,
                       bound: Sequence[ParameterType] | None,
                       long_data: Iterable[int] = ()) -> StmtExecute:
    """A COM_STMT_EXECUTE of a statement of `num_params` parameters, the types `bound`
    by an earlier execute (None: none yet), `long_data` the parameters whose values came
    by COM_STMT_SEND_LONG_DATA since (the server reads no value of theirs here)."""
    r = Reader(payload)
    expect_header(r, COM_STMT_EXECUTE, "a COM_STMT_EXECUTE")
    statement, flags, iterations = r.int4(), r.int1(), r.int4()
    types: tuple[ParameterType, ...] | None = None
    values: list[bytes | None] = []
    if num_params:
        nulls = r.fixed((num_params + 7) // 8)
        if r.int1():
            codes = [r.int2() for _ in range(num_params)]
            types = tuple(ParameterType(c & 0xFF, bool(c & _PARAMETER_UNSIGNED))
                          for c in codes)
        reading = types if types is not None else bound
        if reading is None or len(reading) != num_params:
            raise ProtocolViolation("a COM_STMT_EXECUTE binds no parameter types, and no "
                                    "earlier one did")
        skipped = frozenset(long_data)
        for i, parameter in enumerate(reading):
            if i in skipped or nulls[i >> 3] >> (i & 7) & 1:
                values.append(None)
            else:
                values.append(read_binary_value(r, parameter.type))
    r.done()
    return StmtExecute(statement, flags, iterations, types, tuple(values))


def encode_stmt_execute(statement: int, types: Sequence[ParameterType] | None,
                        values: Sequence[bytes | None], flags: int = 0,
                        bound: Sequence[ParameterType] | None = None) -> bytes:
    """A COM_STMT_EXECUTE binding `types` (None: those `bound` before, not sent again)
    to `values` (None: NULL)."""
    out = [bytes((COM_STMT_EXECUTE,)), INT4.pack(statement), bytes((flags,)), INT4.pack(1)]
    if values:
        reading = types if types is not None else bound
        if reading is None or len(reading) != len(values):
            raise ValueError(f"{len(values)} values for the parameter types given")
        nulls = bytearray((len(values) + 7) // 8)
        for i, value in enumerate(values):
            if value is None:
                nulls[i >> 3] |= 1 << (i & 7)
        out += [bytes(nulls), b"\x01" + _type_codes(types) if types is not None else b"\x00"]
        out += [encode_binary_value(t.type, v) for t, v in zip(reading, values, strict=True)
                if v is not None]
    return b"".join(out)


class LongData(NamedTuple):
    """A COM_STMT_SEND_LONG_DATA: a piece of one parameter's value."""

    statement_id: int
    parameter: int
    data: bytes


def parse_long_data(payload: bytes) -> LongData:
    r = Reader(payload)
    expect_header(r, COM_STMT_SEND_LONG_DATA, "a COM_STMT_SEND_LONG_DATA")
    return LongData(r.int4(), r.int2(), r.rest())


def encode_long_data(data: LongData) -> bytes:
    return (bytes((COM_STMT_SEND_LONG_DATA,)) + INT4.pack(data.statement_id)
            + INT2.pack(data.parameter) + data.data)


def bind_types(payload: bytes, num_params: int, types: Sequence[ParameterType]) -> bytes:
    """A COM_STMT_EXECUTE that binds no types, binding `types` instead (its values as
    they were)."""
    at = 10 + (num_params + 7) // 8  # command, id, flags, iterations, NULL bitmap
    if not num_params or len(types) != num_params or payload[at:at + 1] != b"\x00":
        raise ValueError("not a COM_STMT_EXECUTE of these parameters binding no types")
    return payload[:at] + b"\x01" + _type_codes(types) + payload[at + 1:]


def _type_codes(types: Sequence[ParameterType]) -> bytes:
    return b"".join(INT2.pack(t.type | (_PARAMETER_UNSIGNED if t.unsigned else 0))
                    for t in types)
