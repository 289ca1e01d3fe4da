"""COPY ... TO STDOUT's rows masked as a result's are: by their columns' names.

A CopyOutResponse carries formats only, no names. The names are the statement's: its
query's result columns, or the columns it lists, as the SQL reader gave them to the
policy (`input.sql.statements[].columns`, lineage.py, which the mask's `derived`
columns name too); how each line splits into values are its options
(interpret/sql/copy_out.py). Each CopyData line is split into its values, the values
masked by ResultMasker under those names (text: masked values stay text, a derived
column's become `[REDACTED:DERIVED]`), and each changed value written back in the
line's format; the rest of the line is left as it reads (a line where nothing changed,
byte for byte). A header line passes.

The lines are in the COPY's ENCODING if it names one, else in the session's: one in an
encoding the front does not read (encodings.py), or a line not valid in its encoding,
is refused under any mask, as a result value would be.

What cannot be read so is refused when a mask has column rules or derived columns: a
COPY whose columns have no names (a table's every column, `*`), one among other
statements of a Query, a binary one. With detectors only the lines are masked as
text, as before.

A COPY of a table's columns (pg_dump's) writes values of their types, which a restore
reads back into them: before it runs, the front asks the catalog for those types and
which columns are NOT NULL (`column_types`, in a savepoint of its own, as the planner's
estimate is asked), and each masked value is written as a result's would be in a column
of its type: fitted to its length, or NULL, or in a NOT NULL column its type's stand-in
(slots.py). A query's COPY, or one whose types could not be read, has its values masked
as text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from extproc.interpret.sql.copy_out import CopyOut, copy_out
from extproc.masking import Masker
from extproc.masking.masker import MaskSpec
from extproc.postgres import encodings, estimate
from extproc.postgres import messages as pg
from extproc.postgres.encodings import Reading
from extproc.postgres.messages import Column
from extproc.postgres.results import ResultMasker, ResultRefused

_TEXT_OID = 25
# PostgreSQL's escapes of COPY's text format (CopyAttributeOutText / CopyReadAttributes).
_ESCAPES = {"\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t", "\v": "v"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}
_NAME_THEM = ("name them (COPY customers (id, email) TO STDOUT, or COPY (SELECT id, email "
              "FROM customers) TO STDOUT) so that the mask's column rules apply, or SELECT "
              "the rows")


class CopyRows:
    """One COPY's lines on their way to the client, masked; in `encoding`."""

    def __init__(self, masker: ResultMasker, layout: CopyOut | None,
                 encoding: Reading) -> None:
        self._masker, self._layout, self._encoding = masker, layout, encoding
        # The header line names the columns: it passes as it is.
        self._header = layout is not None and layout.header

    def line(self, data: bytes) -> tuple[bytes, Counter[str]]:
        """A CopyData's line masked, and what was masked by detector."""
        layout, encoding = self._layout, self._encoding
        if self._header:
            self._header = False
            return data, Counter()
        try:
            text = encoding.decode(data)
        except UnicodeDecodeError as exc:
            raise ResultRefused(f"a line of the COPY is not {encoding.name} text "
                                f"({exc.reason}): tollgate cannot read it to mask it") from None
        if layout is None:  # detectors only, the line as text
            masked, counts = self._masker.text(text, None)
            return (encoding.encode(masked, "replace") if counts else data), counts
        body, end = (text[:-1], "\n") if text.endswith("\n") else (text, "")
        spans = _split(body, layout)
        values = [_value(body[start:stop], layout) for start, stop in spans]
        (row,), counts = self._masker.rows([[None if v is None else encoding.encode(v)
                                             for v in values]])
        if not counts:
            return data, counts
        out, at = [], 0
        for (start, stop), old, new in zip(spans, values, row, strict=True):
            value = None if new is None else encoding.decode(new, "replace")
            if value != old:
                out += [body[at:start], _written(value, layout)]
                at = stop
        out += [body[at:], end]
        return encoding.encode("".join(out), "replace"), counts


# A table's columns' types, by name: type OID, typmod, NOT NULL.
Types = dict[str, tuple[int, int, bool]]
_TYPES = """SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = pg_catalog.to_regclass({name}) AND a.attnum > 0 AND NOT a.attisdropped"""


def copies_table(meaning: Any) -> bool:
    """Whether a statement's reading is one COPY (whose text `column_types` reads)."""
    statements = meaning.get("statements") if isinstance(meaning, dict) else None
    return isinstance(statements, list) and [s.get("kind") for s in statements] == ["copy"]


async def column_types(ask: estimate.Ask, at_rest: Callable[[], Awaitable[str | None]],
                       status: Callable[[], bytes], statement: str) -> Types:
    """The types of the columns of the table `statement`, a COPY ... TO STDOUT, reads;
    asked through `ask` once the session is `at_rest`, in its transaction (`status`),
    which it leaves as it found it ({}: not a table's COPY, or not asked)."""
    layout = copy_out(statement)
    if layout is None or layout.relation is None or await at_rest() is not None \
            or status() == b"E":
        return {}
    enter, leave = estimate.fences(status())
    questions = estimate.Questions(enter)
    tag = estimate.dollar_tag(layout.relation)
    asked = questions.query(_TYPES.format(name=f"{tag}{layout.relation}{tag}"))
    questions.query(leave)
    try:
        await questions.ask(ask)
    except TimeoutError:
        return {}
    rows, error = questions.result(asked)
    if error is not None:
        return {}
    return {pg.value_text(name): (int(oid), int(typmod), required == b"t")
            for name, oid, typmod, required in rows
            if name is not None and oid is not None and typmod is not None}


def rows_of(masker: Masker, mask: MaskSpec, statement: str, meaning: Any, binary: bool,
            width: int, types: Types | None = None) -> CopyRows:
    """How a COPY's rows are masked (ResultRefused when they cannot be); `types`: its
    table's columns' (`column_types`)."""
    by_columns = bool(mask.fields or mask.derived)
    if binary:
        raise ResultRefused("a binary COPY cannot be read to mask it: COPY it as text or "
                            "CSV, or SELECT the rows")
    layout = copy_out(statement)
    encoding = encodings.wire()
    if layout is not None and layout.encoding is not None:
        named = encodings.readable(layout.encoding)
        if named is None:
            raise ResultRefused(f"a COPY in ENCODING {layout.encoding!r} cannot be read to "
                                "mask it: leave out ENCODING (the rows then come in the "
                                "session's client_encoding)")
        encoding = named
    names = _names(meaning)
    problem = None
    if layout is None:
        problem = ("a COPY TO STDOUT among other statements of one query cannot be read by "
                   "its columns: send it alone")
    elif names is None:
        problem = ("COPY sends its rows without their columns' names, and this one names "
                   f"none (a table's every column, or *): {_NAME_THEM}")
    elif len(names) != width:
        problem = (f"the COPY's rows have {width} columns where tollgate read {len(names)} "
                   f"in its statement: {_NAME_THEM}")
    if problem is None:
        assert names is not None
        typed = [(types or {}).get(name, (_TEXT_OID, -1, False)) for name in names]
        columns = [Column(name, 0, 0, oid, -1, typmod, 0)
                   for name, (oid, typmod, _) in zip(names, typed, strict=True)]
        return CopyRows(ResultMasker(masker, mask, columns, encoding, not_null={
            i for i, (*_, required) in enumerate(typed) if required}), layout, encoding)
    if by_columns:
        raise ResultRefused(problem)
    # Detectors only (no column rules): the rows are text, whatever their format.
    return CopyRows(ResultMasker(masker, mask, [
        Column(f"column{i + 1}", 0, 0, _TEXT_OID, -1, -1, 0) for i in range(width)],
        encoding), None, encoding)


def _names(meaning: Any) -> list[str] | None:
    """The names of the COPY's columns as the SQL reader gave them (None: not all known)."""
    statements = meaning.get("statements") if isinstance(meaning, dict) else None
    top = [s for s in statements or () if not s.get("nested") and s.get("kind") == "copy"]
    if len(top) != 1 or not isinstance(top[0].get("columns"), list):
        return None
    names = [c.get("name") for c in top[0]["columns"]]
    if not names or any(not isinstance(n, str) or n == "*" for n in names):
        return None
    return names


def _split(line: str, layout: CopyOut) -> list[tuple[int, int]]:
    """Where each value of a line is, as (start, end) of its raw text."""
    spans, start, at, size = [], 0, 0, len(line)
    delimiter, quote = layout.delimiter, layout.quote
    quoted = False
    while at < size:
        char = line[at]
        if layout.csv:
            if quoted:
                if char == layout.escape and layout.escape != quote and at + 1 < size \
                        and line[at + 1] in (quote, layout.escape):
                    at += 2
                    continue
                if char == quote:
                    if layout.escape == quote and line[at + 1:at + 2] == quote:
                        at += 2
                        continue
                    quoted = False
            elif char == quote:
                quoted = True
            elif char == delimiter:
                spans.append((start, at))
                start = at + 1
        elif char == "\\":
            at += 2
            continue
        elif char == delimiter:
            spans.append((start, at))
            start = at + 1
        at += 1
    spans.append((start, size))
    return spans


def _value(raw: str, layout: CopyOut) -> str | None:
    """A value as its raw text in the line spells it; None for NULL (an unquoted value
    that is the NULL string)."""
    if raw == layout.null:
        return None
    if not layout.csv:
        return _TEXT_ESCAPE.sub(_unescaped, raw)
    out, at, quoted = [], 0, False
    quote, escape = layout.quote, layout.escape
    while at < len(raw):
        char, following = raw[at], raw[at + 1:at + 2]
        if quoted and char == escape and following and following in (quote, escape):
            out.append(following)  # `""` when the escape is the quote
            at += 2
            continue
        if char == quote:
            quoted = not quoted
        else:
            out.append(char)
        at += 1
    return "".join(out)


# A backslash sequence of COPY's text format: octal, hex, a letter, or any character as
# itself (CopyReadAttributesText).
_TEXT_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)


def _unescaped(match: re.Match[str]) -> str:
    octal, hexadecimal, other = match.groups()
    if octal is not None:
        return chr(int(octal, 8) & 0xFF)
    if hexadecimal is not None:
        return chr(int(hexadecimal, 16))
    return _UNESCAPES.get(other, other)


def _written(value: str | None, layout: CopyOut) -> str:
    """A masked value in the line's format: CSV's always quoted (so that an empty one is
    no NULL), text's escaped as PostgreSQL escapes it."""
    if value is None:
        return layout.null
    if layout.csv:
        quote, escape = layout.quote, layout.escape
        doubled = "".join(escape + c if c == quote or (c == escape and escape != quote)
                          else c for c in value)
        return f"{quote}{doubled}{quote}"
    return "".join("\\" + _ESCAPES[c] if c in _ESCAPES else "\\" + c
                   if c in ("\\", layout.delimiter) else c for c in value)
