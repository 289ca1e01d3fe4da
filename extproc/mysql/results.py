"""A MySQL result's rows masked by column: the policy's detectors on the values, its field
rules on the column names, by the rule the PostgreSQL front shares
(`extproc/masking/rows.py`); here, how MySQL's values are read and written back.

Rows of the text protocol (COM_QUERY's) carry every value as text in the connection's
character set, which the front fixes to utf8mb4. A masked value of a string type (CHAR,
VARCHAR, TEXT and the BLOBs, JSON) becomes its masked text, fitted to the column
(`extproc/masking/fitting.py`): a column definition's length is in bytes, the most its
character set takes for the column's declared characters (4 a character in utf8mb4, 1 in
binary); a VARCHAR or a CHAR holds that many characters, a TEXT or a BLOB that many
bytes, a BINARY is padded with zero bytes. Of any other type it becomes NULL (a client
parses an INT or a DATETIME column's text, and `[REDACTED:...]` there would break it),
or, where the column definition says NOT NULL of a table's column, the type's stand-in
(`_stand_in`), which the column takes back when a dump is restored (an expression's NOT
NULL is no column's: NULL there); an ENUM or a SET (whose members tollgate
does not know) and a GEOMETRY have none. A column the mask names `derived` is masked
whole, by its name: `[REDACTED:DERIVED]` where its type is a string (fitted), else NULL
or the stand-in.

Rows of the binary protocol (COM_STMT_EXECUTE's) carry each value as its type lays it
out. They are read as the text protocol would have written them (`binary_text`: an
integer's digits, a date's `YYYY-MM-DD`) and masked as text rows are; a value that
changes is written back in its type: a string as its masked text, anything else as its
type's stand-in laid out so (`binary_stand_in`), or NULL (its bit set in the row's NULL
bitmap). A column whose binary values cannot be read (a type the codec does not know) is
refused before its rows go by (`unreadable`).

The server's error messages can quote what a statement read: `XPATH syntax error:
'~<ssn>'` (EXTRACTVALUE and UPDATEXML of a column), `Duplicate entry '<ssn>' for key`,
`Unknown or incorrect time zone: '<ssn>'`. Where a mask applies, `error_message` keeps a
message only when it can quote nothing but names and the statement's own text, or when the
value it quotes is in that text (the client sent it); it masks any other value it quotes,
and withholds any other message: the rule is shared with the PostgreSQL front
(`extproc/masking/server_text.py`), the forms (MariaDB's templates by code) are this
module's.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from extproc.codecs.rows import Rows, rows_sample
from extproc.masking import Masker, fitting
from extproc.masking.fitting import Slot
from extproc.masking.masker import MaskSpec
from extproc.masking.rows import RowMasker
from extproc.masking.server_text import WITHHELD, kept, masks
from extproc.mysql.binary import NUMBERS, binary_readable, binary_stand_in, binary_text
from extproc.mysql.flags import (
    CHARSET_BINARY,
    ENUM_FLAG,
    MYSQL_TYPE_BIT,
    MYSQL_TYPE_DATE,
    MYSQL_TYPE_DATETIME,
    MYSQL_TYPE_DECIMAL,
    MYSQL_TYPE_ENUM,
    MYSQL_TYPE_JSON,
    MYSQL_TYPE_NEWDATE,
    MYSQL_TYPE_NEWDECIMAL,
    MYSQL_TYPE_SET,
    MYSQL_TYPE_STRING,
    MYSQL_TYPE_TIME,
    MYSQL_TYPE_TIMESTAMP,
    MYSQL_TYPE_VAR_STRING,
    MYSQL_TYPE_VARCHAR,
    MYSQL_TYPE_YEAR,
    NOT_NULL_FLAG,
    SET_FLAG,
    STRING_TYPES,
    UNSIGNED_FLAG,
    type_name,
)
from extproc.mysql.resultsets import ColumnDefinition


def slot(column: ColumnDefinition) -> Slot:
    """What the column holds in place of a masked value (see the module's docstring)."""
    kind = column.type
    if kind not in STRING_TYPES or kind in (MYSQL_TYPE_ENUM, MYSQL_TYPE_SET) \
            or column.flags & (ENUM_FLAG | SET_FLAG):
        # A table's column NOT NULL (a dump's), not an expression the server says is.
        stored = column.flags & NOT_NULL_FLAG and column.org_table
        stand_in = _stand_in(column) if stored else None
        return fitting.typed(None if stand_in is None else stand_in.encode())
    if kind == MYSQL_TYPE_JSON:
        return fitting.TEXT
    binary = column.charset == CHARSET_BINARY
    # The front's results are utf8mb4 or binary; any other character set takes at most
    # 4 bytes a character too, so the length read is never more than the column holds.
    limit = column.length // (1 if binary else 4)
    return Slot(limit, in_bytes=binary or kind not in _CHARACTERS,
                pad="\0" if binary and kind == MYSQL_TYPE_STRING else "")


# Where a column's length counts characters (CHAR, VARCHAR); a TEXT's counts bytes.
_CHARACTERS = frozenset({MYSQL_TYPE_VARCHAR, MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_STRING})


def _stand_in(column: ColumnDefinition) -> str | None:
    """The text-protocol stand-in of a column of no string type (None: NULL), as the
    server writes a value of it (a DECIMAL(10,2)'s `0.00`, a DATETIME(3)'s fraction)."""
    kind = column.type
    fraction = ("." + "0" * column.decimals) if 0 < column.decimals <= 6 else ""
    if kind in (MYSQL_TYPE_DECIMAL, MYSQL_TYPE_NEWDECIMAL):
        return fitting.ZERO + fraction
    if kind == MYSQL_TYPE_YEAR:
        return fitting.DATE[:4]
    if kind in (MYSQL_TYPE_DATE, MYSQL_TYPE_NEWDATE):
        return fitting.DATE
    if kind in (MYSQL_TYPE_DATETIME, MYSQL_TYPE_TIMESTAMP):
        return fitting.TIMESTAMP + fraction
    if kind == MYSQL_TYPE_TIME:
        return fitting.TIME + fraction
    if kind == MYSQL_TYPE_BIT:
        return "\0" * ((column.length + 7) // 8)
    return fitting.ZERO if kind in NUMBERS else None


class ResultMasker(RowMasker[None]):
    """One result's masking (`extproc/masking/rows.py`): `rows` of text-protocol
    values, masked."""

    def __init__(self, masker: Masker, spec: MaskSpec | None,
                 columns: list[ColumnDefinition]) -> None:
        super().__init__(masker, spec, [c.name for c in columns], _Columns(columns))
        self._columns = columns

    def binary_rows(self, rows: Rows) -> tuple[Rows, Rows, Counter[str]]:
        """Binary-protocol rows masked: as they go to the client, as text (for the
        record), and what was masked by detector."""
        columns = self._columns
        texts: Rows = [[None if v is None else binary_text(
            c.type, bool(c.flags & UNSIGNED_FLAG), v) for c, v in zip(columns, row, strict=True)]
            for row in rows]
        masked, counts = self.rows(texts)
        if not counts:
            return rows, texts, counts
        # A string's binary value is its text; a stand-in is laid out as its type says.
        strings = [c.type in STRING_TYPES for c in columns]
        out = [[value if after == before else after if after is None or string
                else binary_stand_in(c.type, after)
                for value, before, after, c, string in zip(
                    row, text, new, columns, strings, strict=True)]
               for row, text, new in zip(rows, texts, masked, strict=True)]
        return out, masked, counts


def unreadable(columns: list[ColumnDefinition]) -> str | None:
    """Why a binary result of these columns cannot be masked (None: it can)."""
    for column in columns:
        if not binary_readable(column.type):
            return (f"column {column.name!r} is of type {type_name(column.type)}, whose "
                    "binary-protocol values tollgate cannot read to mask them")
    return None


class _Columns:
    """A result's columns as the masker reads and writes their values
    (`extproc/masking/rows.py`'s ColumnCodec): every value is text in utf8mb4."""

    def __init__(self, columns: list[ColumnDefinition]) -> None:
        self._columns = columns
        self._slots = [slot(c) for c in columns]

    def read(self, _index: int, value: bytes) -> tuple[Any, None]:
        return value.decode("utf-8", "replace"), None

    def slot(self, index: int, _state: None) -> Slot:
        return self._slots[index] if index < len(self._slots) else fitting.typed(None)

    def written(self, index: int, _state: None, read: Any, masked: Any) -> bytes:
        text = masked if isinstance(masked, str) else json.dumps(masked)
        if self._columns[index].type == MYSQL_TYPE_JSON and not _is_json(text):
            text = json.dumps(text)  # a whole JSON value masked: a JSON string
        return fitting.fit(text, read, self._slots[index]).encode("utf-8")

    def derived(self, index: int, _value: bytes) -> bytes | None:
        text = fitting.derived(self._slots[index])
        return self._slots[index].stand_in if text is None else text.encode()


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def record_sample(columns: list[ColumnDefinition], rows: Rows, limit: int) -> bytes:
    """Rows as the record keeps them (JSON: columns, rows, how many left out), within
    `limit` bytes."""
    shown = ([None if v is None else v.decode("utf-8", "replace") for v in row] for row in rows)
    return rows_sample([c.name for c in columns], shown, len(rows), limit)


# Errors whose message quotes only names (of a table, a column, a key, a user) or the
# statement's own text (a syntax error's `near '...'`), never a value read: MariaDB's
# errmsg templates.
_NAMES_ONLY = frozenset({
    1040, 1044, 1045, 1046, 1047, 1048, 1049, 1050, 1051, 1052, 1054, 1060, 1061, 1064,
    1065, 1066, 1067, 1068, 1075, 1090, 1091, 1094, 1099, 1100, 1109, 1110, 1113, 1136,
    1142, 1143, 1146, 1153, 1156, 1166, 1175, 1192, 1205, 1213, 1215, 1216, 1217, 1222,
    1226, 1227, 1235, 1241, 1242, 1248, 1264, 1265, 1290, 1305, 1317, 1327, 1356, 1364,
    1365, 1406, 1451, 1452, 1630, 1701, 1969, 4025,
})
# From the first quote to the last: the one value these messages quote, e.g.
# `Incorrect integer value: '...' for column `db`.`t`.`c` at row 1`.
_ONE_VALUE = re.compile(r"[^']*'(.*)'[^']*", re.DOTALL)
# Errors that quote a value: their form, the value its group.
_QUOTED_VALUE = {
    1062: re.compile(r"Duplicate entry '(.*)' for key (?:'[^']*'|\d+)", re.DOTALL),
    1231: re.compile(r"Variable '[^']*' can't be set to the value of '(.*)'", re.DOTALL),
    1292: _ONE_VALUE, 1298: _ONE_VALUE, 1366: _ONE_VALUE, 1411: _ONE_VALUE, 1525: _ONE_VALUE,
}


def error_message(message: str, code: int, statement: str, spec: MaskSpec | None) -> str:
    """The server's error message as a client under `spec` may read it
    (`extproc/masking/server_text.py`): quoting only names or the statement's text, or a
    value the statement holds; a value it does not masked; any other message withheld.
    Unmasked, as the server wrote it."""
    if not masks(spec) or code in _NAMES_ONLY:
        return message
    pattern = _QUOTED_VALUE.get(code)
    shown = kept(message, statement, () if pattern is None else (pattern,))
    return f"{WITHHELD}: error {code}" if shown is None else shown
