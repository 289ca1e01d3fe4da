"""What a PostgreSQL column holds in place of a masked value (`extproc/masking/fitting.py`),
from what a RowDescription says of it: its type OID, its typmod and its format.

A text type's value is fitted to its declared length: `varchar(n)` and `char(n)` (typmod
n + 4) hold n characters, `char(n)` padded with blanks as PostgreSQL pads it; `"char"`
one; `name` 63 bytes; a binary array of one of them (its values masked each) so each of
its values. A text-format array is masked as one text, not fitted.

Any other type's value becomes NULL, where its column may hold one; in a column the
catalog says is NOT NULL (a table's COPY, copy_rows.py: a result's columns do not say)
its type's stand-in, as PostgreSQL writes it in text: a number `0` (a `numeric` with its
scale's zeros), a boolean `f`, a date `2000-01-01`, a time `00:00:00`, a timestamp both
(`+00` with a time zone), an interval `00:00:00`, the nil UUID, `0.0.0.0`, a zero MAC
address, an empty `bytea` or `varbit`, a `bit(n)` of n zeros, an empty range; NULL for
the rest (money, geometry, full-text search, arrays, an extension's type), whose NOT
NULL the restore of a dump then refuses.
"""

from __future__ import annotations

from extproc.masking import fitting
from extproc.masking.fitting import Slot
from extproc.postgres.binary import ARRAYS, RECORD, TEXT_TYPES
from extproc.postgres.messages import Column

# Type OIDs whose text-format values a masked text can replace (text, varchar, bpchar,
# name, "char", unknown, xml, json, jsonb, text[], varchar[], cstring).
_TEXT = frozenset({25, 1043, 1042, 19, 18, 705, 142, 114, 3802, 1009, 1015, 2275})
_VARCHAR, _BPCHAR, _CHAR, _NAME, _NUMERIC, _BIT = 1043, 1042, 18, 19, 1700, 1560
_NAME_BYTES = 63  # NAMEDATALEN - 1
# Integers, oid, floats.
_NUMBERS = frozenset({21, 23, 20, 26, 700, 701})
_STAND_INS = {
    16: "f", 1082: fitting.DATE, 1114: fitting.TIMESTAMP, 1184: fitting.TIMESTAMP + "+00",
    1083: fitting.TIME, 1266: fitting.TIME + "+00", 1186: fitting.TIME, 2950: fitting.UUID,
    869: fitting.IPV4, 650: fitting.IPV4 + "/32", 829: fitting.MAC,
    774: fitting.MAC + ":00:00", 17: "\\x", 1562: "",
    **dict.fromkeys((3904, 3906, 3908, 3910, 3912, 3926), "empty"),
}


def slot(column: Column, nullable: bool = True) -> Slot:
    """What `column` holds in place of a masked value, in its format; `nullable`: it
    may hold NULL (a binary value's column always may: only a result has one)."""
    oid, typmod, binary = column.type_oid, column.type_modifier, column.format == 1
    if binary and (oid in ARRAYS or oid == RECORD):
        # Written back by binary.encode, each value where it sits: a text one fitted
        # as the array's type says (a record's fields have no typmod).
        return _text(ARRAYS.get(oid, RECORD), typmod)
    if oid in (TEXT_TYPES if binary else _TEXT):
        return _text(oid, typmod)
    return fitting.typed(None if nullable or binary else _stand_in(oid, typmod))


def _text(oid: int, typmod: int) -> Slot:
    """A text type's slot: its declared length, if it has one."""
    if oid == _NAME:
        return Slot(_NAME_BYTES, in_bytes=True)
    if oid == _CHAR:
        return Slot(1)
    if oid in (_VARCHAR, _BPCHAR) and typmod >= 4:
        return Slot(typmod - 4, pad=" " if oid == _BPCHAR else "")
    return fitting.TEXT


def _stand_in(oid: int, typmod: int) -> bytes | None:
    """A type's stand-in in text (None: it has none)."""
    if oid in _NUMBERS:
        return fitting.ZERO.encode()
    if oid == _NUMERIC:
        scale = (typmod - 4) & 0xFFFF if typmod >= 4 else 0
        return (fitting.ZERO + ("." + "0" * scale if scale else "")).encode()
    if oid == _BIT:
        return b"0" * max(typmod, 1)
    text = _STAND_INS.get(oid)
    return None if text is None else text.encode()
