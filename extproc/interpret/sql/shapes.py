"""A statement read once per shape: the same statement with other literals is not read
again.

Agents repeat a few statements with new values (`... WHERE aid = 4711`, then `= 815`);
the exact-text cache (`analyze`) misses on each, and reading one costs ~45 µs of Python
for PostgreSQL (~450 µs for MySQL, sqlglot's parse and walk), against ~5 µs for
libpg_query's parse and ~40 µs for sqlglot's tokens. So a reading is also kept under
its statement's *shape*, which each dialect's reader draws (`Shaper`):

- PostgreSQL's (pglast_reader.shape): the parse tree's JSON without its constants'
  values (`A_Const`, whose kind stays) and without positions;
- MySQL's (sqlglot_reader.shape): the tokens, each literal's text left out where it is
  an operand of a comparison or an item of an IN list or a VALUES row (nowhere else:
  sqlglot's parser reads a string after INTERVAL or DATE into the tree, and a LIMIT's
  number is a bound).

Two texts of one shape have one structure but for those values, and a reading depends
on the structure and the text only, so:

- a reading that never looked at a literal's value is the reading of every text of its
  shape, but for each statement's `text`, which the shaper cuts from the new text as the
  reader would (`_Kept.bound`);
- a reading that looked at one (a write's bounds compare `id = 5`, a LIMIT honoured, a
  SET's value, a set_config's name: each reader of a value calls `value_read`) is that
  text's own: the shape is marked so, and its texts are read whole (and cached by their
  exact text).

Whether a reading looks at a value depends on the structure alone (what a reader does
next never depends on a value it did not read), so one reading decides for its whole
shape. Only what every lexing reads the same is shaped (each shaper says what it
refuses: non-ASCII, backslashes, MySQL's double quotes and comments), one statement (a
batch's statements are cut from the text by position) of a kind whose literals are all
expressions (a COPY's file or a function's body are strings, not constants). What is
kept is checked once: the kept reading bound to its own text must be that text's reading.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from extproc.interpret.sql import Analysis

# Shapes kept (each a structure without values, and a reading: a few KB at most).
KEPT = 512
# Statement kinds whose literals are all expressions.
_SHAPED_KINDS = frozenset({"select", "insert", "update", "delete"})
# A shape whose reading looks at a value.
_OWN = object()

# A text's shape and its one statement's text as the reader cuts it; None where the
# text is not shaped (read as it is).
Shaper = Callable[[str], "tuple[str, str] | None"]

_seen = threading.local()


def value_read() -> None:
    """A reader looked at a literal's value: the reading is its text's own."""
    _seen.value = True


class _Kept:
    """A shape's reading, its statements' texts left out."""

    __slots__ = ("_reading",)

    def __init__(self, reading: Analysis) -> None:
        self._reading = orjson.dumps({**reading, "statements": [
            {**s, "text": ""} for s in reading["statements"]]})

    def bound(self, own: str) -> Analysis:
        """The reading of a text whose one statement is `own`: every statement read in
        it (nested ones too) carries its text, as the reader gives it."""
        from extproc.interpret.sql import MAX_TEXT

        own = own[:MAX_TEXT]
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

    def analysis(self, text: str, shaper: Shaper, read: Callable[[str], Analysis],
                 exact: Callable[[str], Analysis]) -> Analysis:
        """The reading of `text`: its shape's, else `read`'s (a fresh reading, kept when
        its shape allows); `exact` (the exact-text cache) where it has no shape, or its
        shape's readings look at values."""
        shaped = shaper(text)
        if shaped is None:
            return exact(text)
        key, own = shaped
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
        if isinstance(kept, _Kept):
            self.hits += 1
            return kept.bound(own)
        if kept is _OWN:
            return exact(text)
        _seen.value = False
        reading = read(text)
        found: _Kept | object = _OWN
        if (not _seen.value and reading["error"] is None and reading["statements"]
                and all(s["kind"] in _SHAPED_KINDS for s in reading["statements"])):
            found = _Kept(reading)
            if found.bound(own) != reading:  # never expected: read whole, as before
                found = _OWN
        self._keep(key, found)
        return reading

    def _keep(self, key: str, found: _Kept | object) -> None:
        with self._lock:
            self._kept[key] = found
            while len(self._kept) > self._most:
                self._kept.popitem(last=False)
