"""The binary protocol's values: how each column type lays a value out, read, written, and
shown as the text protocol would show it.

One table of layouts for both places they occur: the rows of a prepared statement's
result (resultsets.py) and the parameters a COM_STMT_EXECUTE binds (prepared.py).
"""

from __future__ import annotations

import struct

from extproc.mysql.flags import (
    MYSQL_TYPE_BIT,
    MYSQL_TYPE_DATE,
    MYSQL_TYPE_DATETIME,
    MYSQL_TYPE_DECIMAL,
    MYSQL_TYPE_DOUBLE,
    MYSQL_TYPE_FLOAT,
    MYSQL_TYPE_GEOMETRY,
    MYSQL_TYPE_INT24,
    MYSQL_TYPE_LONG,
    MYSQL_TYPE_LONGLONG,
    MYSQL_TYPE_NEWDATE,
    MYSQL_TYPE_NEWDECIMAL,
    MYSQL_TYPE_NULL,
    MYSQL_TYPE_SHORT,
    MYSQL_TYPE_TIME,
    MYSQL_TYPE_TIMESTAMP,
    MYSQL_TYPE_TINY,
    MYSQL_TYPE_YEAR,
    STRING_TYPES,
    type_name,
)
from extproc.mysql.framing import ProtocolViolation, Reader, lenenc_str

# The types whose binary-protocol value is a length-encoded string: the string-like ones,
# and decimals (as their digits), BITs and geometries (as their bytes), which are not text.
LENGTH_ENCODED_TYPES = STRING_TYPES | {
    MYSQL_TYPE_DECIMAL, MYSQL_TYPE_NEWDECIMAL, MYSQL_TYPE_BIT, MYSQL_TYPE_GEOMETRY}
# Fixed-size binary values: integers, floats (IEEE 754), NULL (no bytes at all).
_FIXED_SIZES = {
    MYSQL_TYPE_TINY: 1, MYSQL_TYPE_SHORT: 2, MYSQL_TYPE_YEAR: 2, MYSQL_TYPE_INT24: 4,
    MYSQL_TYPE_LONG: 4, MYSQL_TYPE_LONGLONG: 8, MYSQL_TYPE_FLOAT: 4, MYSQL_TYPE_DOUBLE: 8,
    MYSQL_TYPE_NULL: 0}
# Temporal binary values: a length byte, then that many bytes (what is zero is left off:
# a date without a time is 4 bytes, a time without microseconds 8).
_DATE_LENGTHS = frozenset({0, 4, 7, 11})
_TEMPORAL_LENGTHS = {
    MYSQL_TYPE_DATE: _DATE_LENGTHS, MYSQL_TYPE_NEWDATE: _DATE_LENGTHS,
    MYSQL_TYPE_DATETIME: _DATE_LENGTHS, MYSQL_TYPE_TIMESTAMP: _DATE_LENGTHS,
    MYSQL_TYPE_TIME: frozenset({0, 8, 12})}


def read_binary_value(r: Reader, column_type: int) -> bytes:
    size = _FIXED_SIZES.get(column_type)
    if size is not None:
        return r.fixed(size)
    lengths = _TEMPORAL_LENGTHS.get(column_type)
    if lengths is not None:
        length = r.int1()
        if length not in lengths:
            raise ProtocolViolation(f"a {type_name(column_type)} value of {length} bytes")
        return r.fixed(length)
    if column_type in LENGTH_ENCODED_TYPES:
        return r.lenenc_str()
    raise ProtocolViolation(f"a column of type {type_name(column_type)}, which the binary "
                            "protocol does not carry")


def encode_binary_value(column_type: int, value: bytes) -> bytes:
    """One value as a binary row (or a COM_STMT_EXECUTE's parameters) carries it."""
    size = _FIXED_SIZES.get(column_type)
    if size is not None:
        if len(value) != size:
            raise ValueError(f"a {type_name(column_type)} value of {len(value)} bytes, "
                             f"not {size}")
        return value
    lengths = _TEMPORAL_LENGTHS.get(column_type)
    if lengths is not None:
        if len(value) not in lengths:
            raise ValueError(f"a {type_name(column_type)} value of {len(value)} bytes")
        return bytes((len(value),)) + value
    if column_type in LENGTH_ENCODED_TYPES:
        return lenenc_str(value)
    raise ValueError(f"no binary encoding for {type_name(column_type)}")


def binary_readable(column_type: int) -> bool:
    """Whether the binary protocol's values of `column_type` can be read here."""
    return (column_type in _FIXED_SIZES or column_type in _TEMPORAL_LENGTHS
            or column_type in LENGTH_ENCODED_TYPES)


_INTEGERS = {MYSQL_TYPE_TINY: "b", MYSQL_TYPE_SHORT: "h", MYSQL_TYPE_YEAR: "h",
             MYSQL_TYPE_INT24: "i", MYSQL_TYPE_LONG: "i", MYSQL_TYPE_LONGLONG: "q"}
_DATES = frozenset({MYSQL_TYPE_DATE, MYSQL_TYPE_NEWDATE})
# The numeric types whose binary value is fixed-size (a YEAR is a number of its own).
NUMBERS = frozenset(_FIXED_SIZES) - {MYSQL_TYPE_YEAR, MYSQL_TYPE_NULL}


def binary_stand_in(column_type: int, text: bytes) -> bytes:
    """A masked value's stand-in (`2000-01-01`, `0`: results.py's), of a type that holds
    no string, laid out as the binary protocol carries it: `binary_text`'s inverse, for
    stand-ins only (a date or a time without its fraction, a number that is zero)."""
    if column_type == MYSQL_TYPE_YEAR:
        return struct.pack("<h", int(text))
    if column_type in _FIXED_SIZES:
        return bytes(_FIXED_SIZES[column_type])  # zero, as an integer and as a float
    if column_type == MYSQL_TYPE_TIME:
        return bytes(8)
    if column_type in _TEMPORAL_LENGTHS:
        year, month, day = (int(part) for part in text[:10].split(b"-"))
        return struct.pack("<HBB", year, month, day) + (
            b"" if column_type in _DATES else bytes(3))
    return text


def binary_text(column_type: int, unsigned: bool, value: bytes) -> bytes:
    """A binary value (as parse_binary_row gives it) as the text protocol writes it: an
    integer's digits, a float's shortest digits, a date `YYYY-MM-DD[ hh:mm:ss[.ffffff]]`,
    a time `[-]hhh:mm:ss[.ffffff]`; a string's (a decimal's, a BIT's) bytes as they are."""
    code = _INTEGERS.get(column_type)
    if code is not None:
        (number,) = struct.unpack("<" + (code.upper() if unsigned else code), value)
        return str(number).encode()
    if column_type in (MYSQL_TYPE_FLOAT, MYSQL_TYPE_DOUBLE):
        (real,) = struct.unpack("<f" if column_type == MYSQL_TYPE_FLOAT else "<d", value)
        text = f"{real:.7g}" if column_type == MYSQL_TYPE_FLOAT else repr(real)
        return text.removesuffix(".0").encode()
    if column_type == MYSQL_TYPE_TIME:
        return _time_text(value).encode()
    if column_type in _TEMPORAL_LENGTHS:
        return _date_text(value, column_type in _DATES).encode()
    return value


def _date_text(value: bytes, date_only: bool) -> str:
    year, month, day, hour, minute, second, micro = (
        struct.unpack("<HBBBBBI", value.ljust(11, b"\x00")))
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if date_only:
        return text
    text += f" {hour:02d}:{minute:02d}:{second:02d}"
    return text + (f".{micro:06d}" if len(value) == 11 else "")


def _time_text(value: bytes) -> str:
    negative, days, hour, minute, second, micro = (
        struct.unpack("<BIBBBI", value.ljust(12, b"\x00")))
    text = f"{'-' if negative else ''}{days * 24 + hour:02d}:{minute:02d}:{second:02d}"
    return text + (f".{micro:06d}" if len(value) == 12 else "")
