"""A result set's packets: column definitions, and rows in the text protocol (COM_QUERY's)
and in the binary one (COM_STMT_EXECUTE's).

Only their layout: results.py masks what they carry. A binary row's values are each
laid out as binary.py says.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import NamedTuple

from extproc.mysql.binary import encode_binary_value, read_binary_value
from extproc.mysql.flags import (
    CHARSET_BINARY,
    CLIENT_DEPRECATE_EOF,
    MYSQL_TYPE_VAR_STRING,
    OK_HEADER,
)
from extproc.mysql.framing import (
    Packet,
    ProtocolViolation,
    Reader,
    as_bytes,
    as_text,
    expect_header,
    lenenc_int,
    lenenc_str,
)
from extproc.mysql.responses import (
    Err,
    ends_rows,
    is_err,
    is_ok,
    parse_err,
)

_COLUMN_FIXED = struct.Struct("<HIBHBxx")  # charset, length, type, flags, decimals


class ColumnDefinition(NamedTuple):
    """A result set's (or a prepared statement's parameter's) ColumnDefinition41:
    `table` and `name` as the statement aliased them, `org_table` and `org_name` as
    the schema has them; `length` the column's display width, `decimals` its scale."""

    catalog: str = "def"
    schema: str = ""
    table: str = ""
    org_table: str = ""
    name: str = ""
    org_name: str = ""
    charset: int = CHARSET_BINARY
    length: int = 0
    type: int = MYSQL_TYPE_VAR_STRING
    flags: int = 0
    decimals: int = 0


def parse_column_definition(payload: bytes, field_list: bool = False) -> ColumnDefinition:
    """A column definition as a client without MariaDB's extended metadata reads it;
    `field_list`: one answering COM_FIELD_LIST, whose default value, when the column
    has one, follows (read past, not kept)."""
    r = Reader(payload)
    catalog, schema, table, org_table, name, org_name = (
        as_text(r.lenenc_str()) for _ in range(6))
    fixed = r.lenenc_int()
    if fixed != _COLUMN_FIXED.size:
        raise ProtocolViolation(f"a column definition's fixed part of {fixed} bytes, not 12")
    charset, length, column_type, flags, decimals = _COLUMN_FIXED.unpack(r.fixed(fixed))
    if field_list and r.remaining:
        r.nullable_str()
    r.done()
    return ColumnDefinition(catalog, schema, table, org_table, name, org_name, charset,
                            length, column_type, flags, decimals)


def encode_column_definition(column: ColumnDefinition) -> bytes:
    return b"".join([*(lenenc_str(as_bytes(text)) for text in column[:6]),
                     lenenc_int(_COLUMN_FIXED.size),
                     _COLUMN_FIXED.pack(column.charset, column.length, column.type,
                                        column.flags, column.decimals)])


def parse_text_row(payload: bytes, count: int) -> list[bytes | None]:
    """A text-protocol row of `count` values (None for SQL NULL)."""
    r = Reader(payload)
    values = [r.nullable_str() for _ in range(count)]
    r.done()
    return values


def encode_text_row(values: Iterable[bytes | None]) -> bytes:
    return b"".join(_nullable_str(v) for v in values)


def _nullable_str(value: bytes | None) -> bytes:
    return b"\xfb" if value is None else lenenc_str(value)


def _bitmap_size(count: int) -> int:
    return (count + 7 + 2) // 8  # a result row's NULL bitmap starts at bit 2


def parse_binary_row(payload: bytes, columns: Sequence[ColumnDefinition]) -> list[bytes | None]:
    """A binary-protocol row (COM_STMT_EXECUTE's): each value's bytes as its column's type
    lays them out, without the length that frames them. Integers, floats and doubles
    are little-endian fixed-size; a DATE, DATETIME or TIMESTAMP is 0, 4, 7 or 11 bytes
    (year int2, month, day, hour, minute, second, microseconds int4), a TIME 0, 8 or 12
    (sign, days int4, hour, minute, second, microseconds int4); the rest are strings
    (decimals as their digits). None for SQL NULL."""
    r = Reader(payload)
    expect_header(r, OK_HEADER, "a binary row")
    bitmap = r.fixed(_bitmap_size(len(columns)))
    values: list[bytes | None] = []
    for i, column in enumerate(columns):
        bit = i + 2
        if bitmap[bit >> 3] >> (bit & 7) & 1:
            values.append(None)
            continue
        values.append(read_binary_value(r, column.type))
    r.done()
    return values


def encode_binary_row(values: Sequence[bytes | None],
                      columns: Sequence[ColumnDefinition]) -> bytes:
    if len(values) != len(columns):
        raise ValueError(f"{len(values)} values for {len(columns)} columns")
    bitmap = bytearray(_bitmap_size(len(columns)))
    parts = []
    for i, (value, column) in enumerate(zip(values, columns, strict=True)):
        if value is None:
            bitmap[(i + 2) >> 3] |= 1 << ((i + 2) & 7)
        else:
            parts.append(encode_binary_value(column.type, value))
    return bytes((OK_HEADER,)) + bytes(bitmap) + b"".join(parts)


async def text_rows(first: Packet, read: Callable[[], Awaitable[Packet]], capabilities: int
                    ) -> tuple[list[list[bytes | None]], Err | None, Packet]:
    """A COM_QUERY's answer read to its end from its first packet (`read` gives the
    next): its rows in text, or the server's error; and the packet that ended it (the
    first, an OK, where it has no rows)."""
    if is_err(first.payload):
        return [], parse_err(first.payload), first
    if is_ok(first.payload, capabilities):
        return [], None, first
    count = Reader(first.payload).lenenc_int()
    for _ in range(count + (0 if capabilities & CLIENT_DEPRECATE_EOF else 1)):
        await read()
    rows = []
    while not ends_rows((packet := await read()).payload, capabilities):
        rows.append(parse_text_row(packet.payload, count))
    if is_err(packet.payload):
        return [], parse_err(packet.payload), packet
    return rows, None, packet
