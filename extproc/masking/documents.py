"""Strings that hold JSON documents, read as the documents they hold.

A tool gives its structured result as text more often than not: an MCP tool's `content`
text, and the `structuredContent` the MCP SDKs wrap a returned string in (`{"result":
"..."}`), hold `{"columns": [...], "rows": [...]}` or a list of records as a JSON
string. Read as text, the column names and keys the masker reads values under (a
person's `name`, a `password` column) are words like any other, and a name passes that
the same row read from a database (masking/rows.py) or an API's JSON body loses. Here
each such string stands where it was as the object or array it holds, so that
`Masker.mask_json` reads it by key and by column, as it reads those, with the same rules
and the same markers; then it is written back as a string.

A string is a document when, but for JSON's spaces around it, it is a JSON object or
array (RFC 8259: no NaN or Infinity) that reads without loss: no key twice in one object
(the one kept would hide the other from the masker, and the text would still carry it),
no number whose digits a float loses. Any other text, JSON-like or not, is read as the text it is.
Documents nest (a document's string that holds one) `MAX_DEPTH` deep. One the masker
left as it was is given back as written; one it changed is written anew, in the
server's layout where a usual one (Python's, compact, indented) reproduces the
original, else compact.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MAX_DEPTH = 3  # a document in a document's string in a document's string

# The layouts a server's JSON is tried against (json.dumps options): compact
# (JavaScript's, orjson's; what a document in no known layout is written in, as tollgate
# writes a JSON body), Python's default (the MCP SDK's servers'), and JavaScript's and
# Python's indented forms.
_LAYOUTS: tuple[dict[str, Any], ...] = (
    {"separators": (",", ":"), "ensure_ascii": False},
    {},
    {"indent": 2, "ensure_ascii": False},
    {"indent": 2},
)

_SPACES = " \t\n\r"  # JSON's, around a document
_OPENS = re.compile(f"[{_SPACES}]*[{{\\[]")  # how a document's text begins


class _Lossy(ValueError):
    """A text whose JSON reading would lose part of it."""


@dataclass(frozen=True)
class _Document:
    text: str  # the string as the server wrote it
    held: Any  # the value it holds
    value: Any  # that value as read (its own documents read too)


class Documents:
    """A JSON value with its strings that hold documents read (`value`), and how the
    value masked is written back (`written`)."""

    def __init__(self, value: Any, depth: int = MAX_DEPTH) -> None:
        # Documents by their place, each step an index (of a list's item, of a dict's
        # key in order: a key the masker renames keeps its place), and the places that
        # lead to one.
        self._documents: dict[tuple[int, ...], _Document] = {}
        self._ways: set[tuple[int, ...]] = set()
        self.value = self._read(value, (), depth)

    def __bool__(self) -> bool:
        return bool(self._documents)

    def written(self, masked: Any) -> Any:
        """`masked` (the value masked: its containers where `value` has them) with each
        document a string again: as written where the masker left it as it was."""
        return self._written(masked, ()) if self._documents else masked

    def _read(self, value: Any, at: tuple[int, ...], depth: int) -> Any:
        t = type(value)
        if t is str:
            held = _held(value) if depth else None
            if held is None:
                return value
            read = self._read(held, at, depth - 1)
            self._documents[at] = _Document(value, held, read)
            self._lead_to(at)
            return read
        if t is not dict and t is not list:
            return value
        out = value  # copied once a child is read otherwise
        for i, (k, v) in enumerate(value.items() if t is dict else enumerate(value)):
            tv = type(v)
            if tv is not dict and tv is not list and (tv is not str or not _OPENS.match(v)):
                continue  # most values: no document
            read = self._read(v, (*at, i), depth)
            if read is not v:
                if out is value:
                    out = dict(value) if t is dict else list(value)
                out[k] = read
        return out

    def _lead_to(self, at: tuple[int, ...]) -> None:
        for n in range(len(at) + 1):
            self._ways.add(at[:n])

    def _written(self, node: Any, at: tuple[int, ...]) -> Any:
        if at not in self._ways:
            return node
        document = self._documents.get(at)
        if document is not None and (node is document.value or node == document.value):
            return document.text  # nothing in it masked
        t = type(node)
        if t is dict:
            node = {k: self._written(v, (*at, i)) for i, (k, v) in enumerate(node.items())}
        elif t is list:
            node = [self._written(v, (*at, i)) for i, v in enumerate(node)]
        return node if document is None else _dumps(node, document)


def _held(text: str) -> Any:
    """The object or array `text` holds whole and without loss; None if it holds none."""
    if not _OPENS.match(text) or text.rstrip(_SPACES)[-1:] not in ("]", "}"):
        return None
    try:
        return json.loads(text, object_pairs_hook=_unique, parse_float=_exact,
                          parse_constant=_no_constant)
    except (ValueError, RecursionError):  # not JSON, JSON read with loss, too deep
        return None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Lossy("a key twice in one object")
    return out


def _exact(text: str) -> float:
    """A JSON number with a fraction or exponent, if a float holds its digits."""
    value = float(text)
    if not math.isfinite(value) or Decimal(text).normalize() != Decimal(repr(value)).normalize():
        raise _Lossy(f"{text[:32]} is not a float's")
    return value


def _no_constant(constant: str) -> Any:
    raise _Lossy(f"{constant} is not JSON")


def _dumps(value: Any, document: _Document) -> str:
    """`value` written in the layout of `document`'s text, the spaces around it kept."""
    text = document.text
    start, end = len(text) - len(text.lstrip(_SPACES)), len(text.rstrip(_SPACES))
    layout = next((options for options in _LAYOUTS
                   if json.dumps(document.held, **options) == text[start:end]), _LAYOUTS[0])
    return text[:start] + json.dumps(value, **layout) + text[end:]

