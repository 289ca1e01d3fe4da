"""A result's rows masked by column: the policy's detectors on the values, its field
rules on the column names (`ssn`, `email` ... as on JSON keys), by the rule the MySQL
front shares (`extproc/masking/rows.py`); here, how PostgreSQL's values are read and
written back.

A value is read in the format its column travels in. Text-format values are text in the
session's encoding (bytea's hex or escape form is read as the bytes it stands for);
under a mask, one not valid in it is refused with its result, as it cannot be read for
sure. Binary values are read by `binary`: texts, numbers, addresses, and arrays, ranges
and records of them, each masked where it sits and written back with its new length. A
type tollgate does not know (an extension's, an enum, a composite, a domain inside an
array or a record) cannot be read under detectors, so its result is refused
(`ResultRefused`), as an unreadable body is on HTTP. A masked value of a text type
becomes its masked text, fitted to the column's declared length; of any other type
NULL (in a column `not_null`, a table's COPY's, its type's stand-in), which every client
can decode where `[REDACTED:...]` in an integer column would break it (slots.py says
what each column holds). A column the mask names `derived` (computed by the SQL from a
protected column) is masked whole, by its name as the RowDescription gives it:
`[REDACTED:DERIVED]` in a text column (fitted; a JSON string in a json one), NULL (or
the stand-in) in any other; an array of a built-in type (`array_agg(email)`, which asyncpg
asks for in binary) stays an array, each value so replaced (NULL where not text), its
NULLs, dimensions and bounds kept, its values never read.

The server's errors and notices quote values (a cast's input, a unique key, a failing
row), derived ones too: `error_fields` keeps what the statement's text or the error's
own names hold, and masks or withholds the rest (the rule MySQL's front shares:
`extproc/masking/server_text.py`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection
from typing import Any

from extproc.codecs.rows import rows_sample
from extproc.masking import Masker, fitting
from extproc.masking.fitting import Slot
from extproc.masking.masker import MaskSpec
from extproc.masking.rows import RowMasker
from extproc.masking.server_text import WITHHELD, kept, masks
from extproc.masking.strategies import DERIVED
from extproc.postgres import binary, encodings, slots
from extproc.postgres.encodings import Reading
from extproc.postgres.messages import Column

_JSON, _JSONB, _BYTEA = 114, 3802, 17
# Scalar text types, whose values `[REDACTED:DERIVED]` can replace in either format.
_SCALAR_TEXT = frozenset({25, 1043, 1042, 19, 705, 142, 2275})
# box[], the one built-in array whose text form separates its values with `;`.
_BOX_ARRAY = 1020


class ResultRefused(Exception):
    """A result the mask cannot be applied to: the statement is refused."""


def _bytea(value: bytes) -> bytes:
    """The bytes a text-format bytea stands for (`\\x` hex, or the escape form)."""
    if value.startswith(b"\\x"):
        return bytes.fromhex(value[2:].decode("ascii"))
    out, at = bytearray(), 0
    while at < len(value):
        if value[at:at + 2] == b"\\\\":
            out.append(0x5C)
            at += 2
        elif value[at:at + 1] == b"\\":
            out.append(int(value[at + 1:at + 4], 8))
            at += 4
        else:
            out.append(value[at])
            at += 1
    return bytes(out)


class ResultMasker(RowMasker[binary.Node | None]):
    """One result's masking (`extproc/masking/rows.py`): `rows` of values as they
    travel, masked; their texts in `encoding` (None: the session's)."""

    def __init__(self, masker: Masker, spec: MaskSpec | None, columns: list[Column],
                 encoding: Reading | None = None, not_null: Collection[int] = ()) -> None:
        detects = spec is not None and bool(spec.detectors)
        super().__init__(masker, spec, [c.name for c in columns],
                         _Columns(columns, encoding or encodings.wire(), detects, not_null))
        if not detects:
            return
        for column in columns:
            if column.format == 1 and not binary.known(column.type_oid):
                raise ResultRefused(
                    f"column {column.name!r} comes in binary (type {column.type_oid}), as the "
                    "client library asked for it, which tollgate cannot read to mask it: "
                    f"{_as_text(column)}")

    def text(self, text: str, delimiter: str | None) -> tuple[str, Counter[str]]:
        """COPY's text or CSV lines, masked by the detectors (and by the header's column
        names where `delimiter` says the text is a table)."""
        if not self.masks:
            return text, Counter()
        assert self._spec is not None
        return self._masker.mask_text(text, self._spec, delimiter)


class _Columns:
    """A RowDescription's columns as the masker reads and writes their values
    (`extproc/masking/rows.py`'s ColumnCodec): a binary value's tree is what it keeps."""

    def __init__(self, columns: list[Column], encoding: Reading, detects: bool,
                 not_null: Collection[int]) -> None:
        self._columns, self._encoding, self._detects = columns, encoding, detects
        self._slots = [slots.slot(c, i not in not_null) for i, c in enumerate(columns)]

    def read(self, index: int, value: bytes) -> tuple[Any, binary.Node | None] | None:
        """A value as the masker scans it, and its binary tree if it is binary (None: a
        value past the described columns, left unread)."""
        if index >= len(self._columns):
            return None
        column = self._columns[index]
        oid = column.type_oid
        if column.format == 1:
            try:
                node = binary.decode(oid, value, self._encoding)
            except binary.Unreadable as exc:
                raise ResultRefused(f"column {column.name!r}: {exc}") from None
            if self._detects and (unknown := binary.opaque(node)) is not None:
                raise ResultRefused(
                    f"column {column.name!r} holds a binary value of type {unknown} "
                    "(an extension's type, an enum, a composite or a domain, inside an "
                    "array or a record), which tollgate cannot read to mask it: "
                    f"{_as_text(column)}")
            return binary.view(node), node
        if oid == _BYTEA:
            try:
                # Bytes in no encoding: read for the detectors as UTF-8, where it is.
                text = _bytea(value).decode("utf-8", "replace")
            except ValueError:
                raise ResultRefused(f"column {column.name!r}: a bytea that does not "
                                    "parse") from None
        else:
            try:
                text = self._encoding.decode(value)
            except UnicodeDecodeError as exc:
                raise ResultRefused(
                    f"column {column.name!r} holds a value that is not "
                    f"{self._encoding.name} text ({exc.reason}), which tollgate cannot "
                    "read to mask it") from None
        if oid in (_JSON, _JSONB):
            try:
                return {"json": json.loads(text)}, None
            except ValueError:
                return text, None
        return text, None

    def slot(self, index: int, _node: binary.Node | None) -> Slot:
        return self._slots[index]

    def written(self, index: int, node: binary.Node | None, read: Any, value: Any
                ) -> bytes | None:
        """A masked value in its column's type and format, fitted to the column (NULL
        where it cannot be)."""
        slot = self._slots[index]
        if node is not None:
            return binary.encode(node, value, self._encoding, slot)
        text = binary.masked_text(self._columns[index].type_oid, value)
        if text is None:
            return None
        return self._encoding.encode(
            fitting.fit(text, read if isinstance(read, str) else None, slot), "replace")

    def derived(self, index: int, value: bytes) -> bytes | None:
        return _derived_value(self._columns[index], self._slots[index], value,
                              self._encoding)


def _as_text(column: Column) -> str:
    """What to do about a binary column: a driver picks the format (asyncpg asks for
    binary wherever it has a codec), the query can still make it text."""
    return (f"cast it to text in the query ({column.name}::text), which every client "
            "receives as text")


def _derived_value(column: Column, slot: Slot, value: bytes, encoding: Reading
                   ) -> bytes | None:
    """What a derived column's value becomes: the token where its type is text, fitted
    to `slot` (a JSON string in json; jsonb's binary form has a version byte); an array
    of the built-in types the same array, each value so replaced (NULL where not text,
    or where the array's text does not read in `encoding`); else the type's stand-in."""
    oid, binary_format = column.type_oid, column.format == 1
    if oid not in binary.ARRAYS:
        item = _derived_item(oid, binary_format, slot)
        return slot.stand_in if item is None else item
    element = binary.ARRAYS[oid]
    item = _derived_item(element, binary_format,
                         slots.slot(column._replace(type_oid=element)))
    if binary_format:
        try:
            return binary.each_replaced(oid, value, lambda _: item)
        except binary.Unreadable:
            return None
    try:
        text = encoding.decode(value)
    except UnicodeDecodeError:
        return None
    return _text_array_replaced(text, item, ";" if oid == _BOX_ARRAY else ",")


def _derived_item(oid: int, binary_format: bool, slot: Slot) -> bytes | None:
    """A derived value of type `oid`, as a text type holds it, fitted to `slot` (else
    NULL)."""
    if oid in _SCALAR_TEXT:
        return fitting.fit(DERIVED, None, slot).encode()
    if oid in (_JSON, _JSONB):
        text = json.dumps(DERIVED).encode()
        return b"\x01" + text if binary_format and oid == _JSONB else text
    return None


def _text_array_replaced(text: str, item: bytes | None, delimiter: str) -> bytes | None:
    """A text-format array (`[0:1]={{"a",NULL},...}`, as PostgreSQL writes one) with
    every value replaced by `item` (None: NULL), its bounds, dimensions and NULLs kept;
    None where the text is not one."""
    if item is None:
        shown = "NULL"
    else:
        escaped = item.decode().replace("\\", "\\\\").replace('"', '\\"')
        shown = f'"{escaped}"'
    bounds, _, body = text.partition("=") if text.startswith("[") else ("", "", text)
    out, at, depth = [bounds + ("=" if bounds else "")], 0, 0
    try:
        while at < len(body):
            char = body[at]
            if char in "{}":
                depth += 1 if char == "{" else -1
                out.append(char)
                at += 1
            elif char == delimiter and depth:
                out.append(char)
                at += 1
            elif char == '"':
                at += 1
                while body[at] != '"':
                    at += 2 if body[at] == "\\" else 1
                out.append(shown)
                at += 1
            else:
                end = at
                while body[end] not in (delimiter, "}"):
                    end += 1
                out.append("NULL" if body[at:end] == "NULL" else shown)
                at = end
            if depth < 0 or (not depth and at < len(body)):
                return None
    except IndexError:
        return None
    return "".join(out).encode() if depth == 0 and body.startswith("{") else None


def record_sample(columns: list[Column], rows: list[list[bytes | None]], limit: int) -> bytes:
    """Rows as the record keeps them (JSON: columns, rows, how many left out), within
    `limit` bytes; a value the record cannot read as text is shown by its size."""
    shown = ([_shown(columns[i] if i < len(columns) else None, v) for i, v in enumerate(row)]
             for row in rows)
    return rows_sample([c.name for c in columns], shown, len(rows), limit)


def _shown(column: Column | None, value: bytes | None) -> Any:
    if value is None:
        return None
    if column is None or column.format == 0:
        return encodings.wire().decode(value, "replace")
    if column.type_oid == _BYTEA:  # as the text format shows it
        return "\\x" + value.hex()
    try:
        node = binary.decode(column.type_oid, value, encodings.wire())
    except binary.Unreadable:
        node = binary.Opaque(column.type_oid, value)
    if isinstance(node, binary.Opaque):
        return f"<{len(value)} bytes, binary>"
    return node.text if isinstance(node, binary.Text) else binary.view(node)


# The texts of an ErrorResponse or a NoticeResponse: message, detail, hint, context.
_TEXTS = "MDHW"
# The names the server gives beside its texts (schema, table, column, type, constraint):
# catalog names, never values, so a text may quote them.
_NAMES = "stcdn"
# SQLSTATE classes whose texts can carry a value unquoted (a data exception's, an
# integrity violation's `Failing row contains (...)`, a function's RAISE of any class,
# notices and warnings): a line without a quote, of no known form, is withheld.
_UNQUOTED_VALUES = ("00", "01", "22", "23", "2F", "38", "39", "P0", "XX")
# Forms whose values are not (only) in double quotes; a group is a value, the rest
# PostgreSQL's words or names (an index's columns, a referenced table).
_PG_FORMS = tuple(re.compile(form) for form in (
    r"Key \((?:.*?)\)=\((.*)\)(?: already exists| is not present in table \"[^\"]*\""
    r"| is still referenced from table \"[^\"]*\")?\.",
    r"Failing row contains \((.*)\)\.",
    r"JSON data, line \d+: (.*)",
    r"invalid byte sequence for encoding \"[^\"]*\": (.*)",
    r"character with byte sequence (.*) in encoding \"[^\"]*\" has no equivalent in "
    r"encoding \"[^\"]*\"",
    r"Character with value (.*) must be escaped\.",
    # `invalid input syntax for type integer: "..."` and every message ending so: from
    # the first quote to the last, one value (it may hold a quote).
    r"[^\"]*: \"(.*)\"",
    # Data exceptions that quote nothing.
    r"division by zero|(?:small|big)?int(?:eger)? out of range|numeric field overflow"
    r"|value overflows numeric format|value too long for type [a-z ]+\(\d+\)"
    r"|invalid input syntax for type json|The input string ended unexpectedly\."
    r"|A field with precision \d+, scale \d+ must round to an absolute value less than "
    r"10\^-?\d+\.|Value must be an integer\.|cannot cast jsonb [a-z]+ to type [a-z ]+"
    r"|Perhaps you need a different \"datestyle\" setting\.",
))


def error_fields(fields: dict[str, str], statement: str,
                 spec: MaskSpec | None) -> dict[str, str]:
    """An error's or a notice's fields as a client under `spec` may read them
    (`extproc/masking/server_text.py`): each line of a text keeps the values it quotes
    that `statement` or the error's own names hold, the others masked; a message that
    cannot be kept so is withheld (its SQLSTATE kept), any other text dropped; the
    internal query (a function's statement) is kept only if the statement holds it."""
    if not masks(spec):
        return fields
    names = {fields[k] for k in _NAMES if k in fields}
    unquoted = fields.get("C", "XX")[:2] in _UNQUOTED_VALUES
    out = dict(fields)
    for key in _TEXTS:
        if key not in fields:
            continue
        lines = [_line(line, statement, names, unquoted) for line in fields[key].split("\n")]
        if all(line is not None for line in lines):
            out[key] = "\n".join(line for line in lines if line is not None)
        elif key == "M":
            out[key] = f"{WITHHELD}: SQLSTATE {fields.get('C', '')}"
        else:
            del out[key]
    if "q" in fields and fields["q"] not in statement:
        out.pop("q")
        out.pop("p", None)
    return out


def _line(line: str, statement: str, names: set[str], unquoted: bool) -> str | None:
    """A line of a text as `error_fields` shows it (None: withheld)."""
    shown = kept(line, statement, _PG_FORMS, quote='"', names=names)
    if shown is None and '"' not in line and not unquoted:
        return line  # no quote, no known form: PostgreSQL's own words
    return shown
