"""A result's rows masked by column: the policy's detectors on the values, its field
rules on the column names (`ssn`, `email` ... as on JSON keys).

A value is read in the format its column travels in. Text-format values are text; in
binary, the types whose encoding is text (text, varchar, json ...) or a number are read,
the types that cannot carry text (bool, dates, uuid ...) need no reading, and any other
binary value under a mask (bytea, arrays, composites) cannot be read, so the result is
refused (`ResultRefused`), as an unreadable body is on HTTP. A masked value of a text
type becomes its masked text; of any other type NULL, which every client can decode
where `[REDACTED:...]` in an integer column would break it.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from extproc.masking import Masker
from extproc.masking.masker import MaskSpec
from extproc.postgres.messages import Column

# Type OIDs (pg_type.dat) whose values are text in either format.
_TEXT = frozenset({25, 1043, 1042, 19, 18, 705, 142, 114, 3802, 1009, 1015, 2275})
_JSON, _JSONB = 114, 3802
# Binary encodings of numbers: OID -> their reader.
_NUMBERS: dict[int, Callable[[bytes], str]] = {
    21: lambda v: str(struct.unpack("!h", v)[0]),
    23: lambda v: str(struct.unpack("!i", v)[0]),
    20: lambda v: str(struct.unpack("!q", v)[0]),
    26: lambda v: str(struct.unpack("!I", v)[0]),
    700: lambda v: repr(struct.unpack("!f", v)[0]),
    701: lambda v: repr(struct.unpack("!d", v)[0]),
}
# Types whose binary values cannot hold text a detector would find: bool, date, time,
# timestamp, timestamptz, interval, timetz, uuid.
_NO_TEXT = frozenset({16, 1082, 1083, 1114, 1184, 1186, 1266, 2950})
_NUMERIC = 1700


class ResultRefused(Exception):
    """A result the mask cannot be applied to: the statement is refused."""


def _numeric(value: bytes) -> str:
    """A binary numeric (base-10000 digits, weight, sign, scale) as its text."""
    count, weight, sign, scale = struct.unpack_from("!hhHh", value)
    if sign == 0xC000:
        return "NaN"
    if sign in (0xD000, 0xF000):
        return "Infinity" if sign == 0xD000 else "-Infinity"
    digits = struct.unpack_from(f"!{count}h", value, 8)
    number = Decimal(0)
    for i, digit in enumerate(digits):
        number += Decimal(digit).scaleb(4 * (weight - i))
    text = f"{number:.{scale}f}"
    return "-" + text if sign == 0x4000 else text


class ResultMasker:
    """One result's masking: `rows` of values as they travel, masked."""

    def __init__(self, masker: Masker, spec: MaskSpec | None, columns: list[Column]) -> None:
        self._masker, self._spec, self._columns = masker, spec, columns
        self.masks = spec is not None and bool(spec.detectors or spec.fields)
        self._names = [c.name for c in columns]
        if not self.masks or not spec or not spec.detectors:
            return
        for column in columns:
            if column.format == 1 and not self._readable_binary(column.type_oid):
                raise ResultRefused(
                    f"column {column.name!r} comes in binary (type {column.type_oid}), which "
                    "tollgate cannot read to mask it: ask for it as text")

    @staticmethod
    def _readable_binary(oid: int) -> bool:
        return oid in _TEXT or oid in _NUMBERS or oid in _NO_TEXT or oid == _NUMERIC

    def _read(self, column: Column, value: bytes) -> Any:
        """A value as the masker scans it (None: nothing to scan)."""
        oid = column.type_oid
        if column.format == 1:
            if oid == _JSONB:
                value = value[1:]  # the binary jsonb's version byte
            elif oid in _NUMBERS:
                return _NUMBERS[oid](value)
            elif oid == _NUMERIC:
                return _numeric(value)
            elif oid not in _TEXT:
                return None
        text = value.decode("utf-8", "replace")
        if oid in (_JSON, _JSONB):
            try:
                return {"json": json.loads(text)}
            except ValueError:
                return text
        return text

    def rows(self, rows: list[list[bytes | None]]) -> tuple[list[list[bytes | None]],
                                                            Counter[str]]:
        """The rows masked, and what was masked by detector."""
        if not self.masks or not rows:
            return rows, Counter()
        assert self._spec is not None
        columns = self._columns
        read = [[None if v is None or i >= len(columns) else self._read(columns[i], v)
                 for i, v in enumerate(row)] for row in rows]
        masked, counts = self._masker.mask_json({"columns": self._names, "rows": read},
                                                self._spec)
        if not counts:
            return rows, counts
        out: list[list[bytes | None]] = []
        for row, before, after in zip(rows, read, masked["rows"], strict=True):
            if before == after:
                out.append(row)
                continue
            new = list(row)
            for i, (old, new_value) in enumerate(zip(before, after, strict=True)):
                if old != new_value:
                    new[i] = self._written(columns[i], new_value)
            out.append(new)
        return out, counts

    @staticmethod
    def _written(column: Column, value: Any) -> bytes | None:
        """A masked value in its column's type and format (NULL where it cannot be)."""
        if column.type_oid not in _TEXT:
            return None
        if isinstance(value, dict) and "json" in value:
            text = json.dumps(value["json"], ensure_ascii=False)
        elif isinstance(value, dict):  # a field rule masked the JSON wrapper whole
            return None
        else:
            text = str(value)
            if column.type_oid in (_JSON, _JSONB):
                text = json.dumps(text)
        raw = text.encode("utf-8")
        if column.format == 1 and column.type_oid == _JSONB:
            raw = b"\x01" + raw
        return raw

    def text(self, text: str, delimiter: str | None) -> tuple[str, Counter[str]]:
        """COPY's text or CSV lines, masked by the detectors (and by the header's column
        names where `delimiter` says the text is a table)."""
        if not self.masks:
            return text, Counter()
        assert self._spec is not None
        return self._masker.mask_text(text, self._spec, delimiter)


def record_sample(columns: list[Column], rows: list[list[bytes | None]], limit: int) -> bytes:
    """Rows as the record keeps them (JSON: columns, rows, how many left out), within
    `limit` bytes; a value the record cannot read as text is shown by its size."""
    names = [c.name for c in columns]
    kept: list[list[Any]] = []
    size = len(json.dumps(names)) + 64
    for row in rows:
        shown = [_shown(columns[i] if i < len(columns) else None, v)
                 for i, v in enumerate(row)]
        cost = len(json.dumps(shown, ensure_ascii=False).encode()) + 2  # and its ", "
        if size + cost > limit:
            break
        kept.append(shown)
        size += cost
    return json.dumps({"columns": names, "rows": kept, "rows_left_out": len(rows) - len(kept)},
                      ensure_ascii=False).encode()


def _shown(column: Column | None, value: bytes | None) -> Any:
    if value is None:
        return None
    if column is None or column.format == 0 or column.type_oid in _TEXT:
        text = value[1:] if column is not None and column.format == 1 and (
            column.type_oid == _JSONB) else value
        return text.decode("utf-8", "replace")
    if column.type_oid in _NUMBERS:
        return _NUMBERS[column.type_oid](value)
    if column.type_oid == _NUMERIC:
        return _numeric(value)
    return f"<{len(value)} bytes, binary>"
