"""A PostgreSQL statement read once per shape: the same statement with other literals
is not read again.

Agents repeat a few statements with new values (`... WHERE aid = 4711`, then `= 815`);
the exact-text cache (`analyze`) misses on each, and reading one costs ~45 µs of Python
walking its tree, against ~5 µs for libpg_query to parse it. So a reading is also kept
under its statement's *shape*: its parse tree with every constant's value and every
position taken out (`shape_of`). Two texts of one shape have the same tree but for the
values of their constants (`A_Const`: their kinds stay in the shape), and a reading
depends on a tree and its text only, so:

- a reading that never looked at a constant's value is the reading of every text of
  its shape, but for each statement's `text`, which is cut from the new text where its
  parse says the statement is (`_Kept.bound`);
- a reading that looked at one (a write's bounds compare `id = 5`, a SET's value, a
  set_config's name: each reader of a value calls `value_read`) is that text's own:
  the shape is marked so, and its texts are read whole (and cached by their exact text).

Whether a reading looks at a value depends on the tree alone (what a reader does next
never depends on a value it did not read), so one reading decides for its whole shape.
Only what is read the same on every lexing is shaped: one statement (a batch's
statements are cut from the text by position, one per top-level statement), in ASCII
without a backslash (Unicode spaces and backslash escapes read a text two ways:
`read_safely`, `either_lexing`), of a kind whose constants are all expressions (a
COPY's file or a function's body are strings of the tree, not constants). What is kept
is checked once: the kept reading bound to its own text must give that text's reading.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from extproc.interpret.sql import Analysis

# Shapes kept (each a tree's JSON without values, and a reading: a few KB at most).
KEPT = 512
# Statement kinds whose literals are all `A_Const` expressions of the tree.
_SHAPED_KINDS = frozenset({"select", "insert", "update", "delete"})
# What a shape has none of: a constant's value (zero, false and '' are an empty object),
# whose kind stays; and a position in the text (a position this misses makes texts of
# one shape two: never two shapes one).
_VALUES = re.compile(
    r'("A_Const":\{"(ival|fval|sval|boolval|bsval)":\{)'
    r'(?:"\2":(?:"(?:[^"\\]|\\.)*"|-?[0-9]+|true|false))?\}')
_POSITIONS = re.compile(
    r'"(?:location|stmt_location|stmt_len|rexpr_list_start|rexpr_list_end)":-?[0-9]+')
# Where the one statement of a tree is in its text (a quote inside a JSON string is
# escaped: only the tree's own keys match).
_START = re.compile(r'"stmt_location":([0-9]+)')
_LENGTH = re.compile(r'"stmt_len":([0-9]+)')
# A shape whose reading looks at a value.
_OWN = object()

_seen = threading.local()


def value_read() -> None:
    """A reader looked at a constant's value: the reading is its text's own."""
    _seen.value = True


def shape_of(tree: str) -> str:
    """A parse tree's JSON without its constants' values and its positions."""
    return _POSITIONS.sub("", _VALUES.sub(r"\1}", tree))


class _Kept:
    """A shape's reading, its statements' texts left out."""

    __slots__ = ("_reading",)

    def __init__(self, reading: Analysis) -> None:
        self._reading = orjson.dumps({**reading, "statements": [
            {**s, "text": ""} for s in reading["statements"]]})

    def bound(self, text: str, tree: str) -> Analysis:
        """The reading of `text` (whose parse tree is `tree`): every statement's text is
        the one statement's, as the reader cuts it."""
        from extproc.interpret.sql import MAX_TEXT

        found = _START.search(tree)
        start = int(found[1]) if found else 0
        found = _LENGTH.search(tree)
        length = int(found[1]) if found else len(text) - start
        own = text[start:start + length].strip()[:MAX_TEXT]
        reading: Analysis = orjson.loads(self._reading)
        for statement in reading["statements"]:
            statement["text"] = own
        return reading


class Shapes:
    """Readings by shape, the `KEPT` last used (thread-safe: large texts are read on
    worker threads)."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept: OrderedDict[str, _Kept | object] = OrderedDict()
        self._most = kept
        self._lock = threading.Lock()
        self.hits = 0

    def analysis(self, text: str, read: Callable[[str], Analysis],
                 exact: Callable[[str], Analysis]) -> Analysis:
        """The reading of `text`: its shape's, else `read`'s (a fresh reading, kept when
        its shape allows); `exact` (the exact-text cache) where its shape is not kept."""
        if not (text.isascii() and "\\" not in text and "\x00" not in text):
            return exact(text)
        from extproc.interpret.sql import pg_parse  # loaded with the postgres reader

        try:
            tree = pg_parse.parse_json(text)
        except pg_parse.ParseError:
            return exact(text)
        key = shape_of(tree)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
        if isinstance(kept, _Kept):
            self.hits += 1
            return kept.bound(text, tree)
        if kept is _OWN:
            return exact(text)
        _seen.value = False
        reading = read(text)
        shaped = (not _seen.value and reading["error"] is None and reading["statements"]
                  and len(orjson.loads(tree)["stmts"]) == 1
                  and all(s["kind"] in _SHAPED_KINDS for s in reading["statements"]))
        found: _Kept | object = _Kept(reading) if shaped else _OWN
        if isinstance(found, _Kept) and found.bound(text, tree) != reading:
            found = _OWN  # never expected: the text is read whole, as before
        self._keep(key, found)
        return reading

    def _keep(self, key: str, found: _Kept | object) -> None:
        with self._lock:
            self._kept[key] = found
            while len(self._kept) > self._most:
                self._kept.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
