"""SQL interpreter: what a SQL text means, as policy input (`input.sql`).

Regexes over raw SQL are how gateways get bypassed (`DrOp/**/TABLE`, `SELECT 1; DROP TABLE x`,
a DELETE inside a CTE). So the text is parsed by a real parser — PostgreSQL's own (pglast) for
the "postgres" dialect, sqlglot for every other dialect — and each statement is described in a
fixed shape that the Rego policies are written against:

    {"dialect": "postgres", "multiple": false, "error": null, "statements": [
        {"kind": "delete", "object": null, "text": "DELETE FROM users", "tables": ["users"],
         "has_where": false, "functions": [], "nested": false, "program": null,
         "alter_actions": [], "effects": ["write"], "bounded": false}]}

- `statements`: every top-level statement in order (`nested: false`), each followed by the
  significant statements found inside it (`nested: true`): a DML statement in a CTE at any
  depth, the statement under EXPLAIN / PREPARE / DECLARE, the query of CREATE TABLE AS /
  SELECT INTO / CREATE VIEW / COPY (...), the actions of CREATE RULE, the elements of CREATE
  SCHEMA, the statements of the string MySQL's `PREPARE s FROM '...'` and `EXECUTE
  IMMEDIATE '...'` run (from anything but one string literal: effect `dynamic`). A
  parent's `tables` and `functions` include those of everything nested in it.
- `kind`: select insert update delete merge drop truncate alter create grant revoke copy do
  call set show explain prepare execute transaction vacuum analyze lock notify comment reindex
  cluster refresh discard close reset load, plus pragma and attach (sqlite); "other" for
  anything else — including cursors (DECLARE/FETCH; CLOSE, which only ends one, is "close":
  asyncpg's pool sends CLOSE ALL; DEALLOCATE, which only drops prepared statements, is
  "discard", as DISCARD and MySQL's DROP PREPARE), CHECKPOINT, and any statement sqlglot
  could only read as an opaque `Command`, so a policy can deny what nobody understood.
  SELECT ... INTO is kind "create" (it creates a table), with the SELECT nested under it.
- `object`: for drop/create/alter/truncate/comment, what kind of object ("table", "view",
  "materialized_view", "function", "role", "column", ...); null otherwise.
- `text`: the statement's own source, stripped, cut at `MAX_TEXT` characters without a marker.
  Nested statements carry their top-level statement's text: neither parser reports where an
  inner statement starts, and the enclosing statement is what actually runs.
- `tables`: sorted relation names read or written, folded as PostgreSQL folds identifiers
  (unquoted lower-cased, quoted kept), "schema.name" / "db.schema.name". CTE names in scope are
  not tables; the target of INSERT/UPDATE/DELETE/MERGE always is (a CTE cannot be a target).
  DROP/COMMENT of a relation (table, view, index, sequence...) list it; DROP TRIGGER/POLICY/RULE
  and COMMENT ON COLUMN list the table they belong to. For sqlglot dialects whose identifiers
  are case-insensitive (sqlite, tsql, duckdb, ...) quoted names are lower-cased too, and for
  upper-casing ones (snowflake, oracle, exasol) a quoted all-upper name is the unquoted name, so
  `"USERS"` cannot hide `users` from a policy.
- `has_where`: update/delete only (true also for WHERE CURRENT OF); null for every other kind.
- `functions`: sorted lower-case unqualified names of functions called anywhere in the
  statement. sqlglot reports functions it knows under its canonical name (sqlite `json_extract`
  is "json_extract_scalar"); CAST and CASE are syntax, not calls.
- `program`: the command of COPY ... TO/FROM PROGRAM; `alter_actions`: snake_case names of ALTER
  actions ("drop_column", "alter_column_type", "rename", ...), deduplicated in order.
- `settings` (postgres dialect; [] for the others): each run-time setting the statement
  changes, in order, once: `{"name": "search_path", "value": "app", "reset": false}`. From
  SET / SET LOCAL / RESET (`reset: true` for RESET, SET ... TO DEFAULT and RESET ALL, named
  "all") and from every set_config(name, value, is_local) call anywhere in it, nested ones
  included. `name` is lower-cased (PostgreSQL compares setting names so, quoted or not):
  SET TRANSACTION and SET SESSION CHARACTERISTICS give the settings they change
  (`transaction_isolation`, `default_transaction_read_only`, ...), SET NAMES is
  `client_encoding`, SET TIME ZONE `timezone`; a set_config whose name is not a string
  literal gives "*" (any setting). `value`: the new value when it is one constant, else
  null. SHOW and current_setting read and change nothing.
- `effects`: what running the statement does, whatever its kind (read, write, destroy, server,
  privilege, configuration, dynamic, ...: see effects.py; `destroy` covers data taken away
  from applications too: a renamed table, row-level security switched on); `bounded`: for a
  write, true only when the text shows its rows limited (an equality or a short IN list on
  the written table's columns, CURRENT OF, an honoured LIMIT: see bounds.py); null otherwise.
- A text with a backslash is read as the server's escaping settings allow it both ways
  (standard_conforming_strings, NO_BACKSLASH_ESCAPES), and the statements of both readings
  are listed (see either_lexing), unless the caller knows the server's (`backslashes`: the
  MySQL front, from the server's status); a MySQL text with a `"`, with `"..."` as a
  string and as a name too (ANSI_QUOTES).
- `columns`: a top-level statement's result columns with their lineage (lineage.py);
  `stores`: what it stores for a later statement to read back (a table's or a view's
  column, a MySQL variable, a PostgreSQL setting), by the name it is stored under, with
  the lineage of each value; null when it stores nothing.
- `estimate` (PostgreSQL's wire protocol only; absent elsewhere and from every reading this
  module makes): on a top-level statement that writes rows the planner can count (UPDATE,
  DELETE, MERGE, INSERT from a query, EXECUTE, a CTE that writes), what the database's
  planner estimated before it ran, per table written: `{"writes": [{"table":
  "public.customers", "operation": "delete", "rows": 4, "table_rows": 4, "counted": true,
  "statistics": "fresh"}], "unavailable": null}`; or, when it could not be asked, `writes`
  [] and `unavailable` saying why. The PostgreSQL front adds it (extproc/postgres/
  estimate.py); `Estimate` is its shape.
- `error`: a one-line message when the text does not parse; `statements` is then [] and the
  caller fails closed. Empty or comment-only text is no statement and no error.

Unicode spaces (U+00A0, U+2028, U+3000, ...) are read as spaces and zero-width characters as
nothing, as a client that normalises them would send the text; when that reading and the
literal one both parse but mean different things, the answer is an error (see
`read_safely`). A NUL byte is an error (PostgreSQL's parser would stop at it). The text is not
parsed in the bodies of DO blocks and of functions given as strings: kind "do" and "create
function" are what a policy has to judge there.

Speed: PostgreSQL is parsed in C and walked as JSON (~30 µs a typical statement); sqlglot is
pure Python (~400 µs). Texts up to CACHE_MAX_CHARS are cached per (text, dialect); a
PostgreSQL or MySQL statement's reading also per shape, for the same statement with other
literals (shapes.py).

Two back-ends read the text: pglast_reader.py for postgres, sqlglot_reader.py for every other
dialect. Each is imported when its dialect is first read (or `load`ed, as an interpreter does
at start), so what only checks a dialect's name (dialects.py, the configuration) loads no
parser; this module holds what they share and the reading of their results.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

import orjson

from extproc.codecs.sql_dialects import DIALECTS
from extproc.interpret.sql.effects import SETTING_FUNCTIONS, classify, setting_effects
from extproc.interpret.sql.lineage import Column
from extproc.interpret.sql.shapes import Shaper, Shapes

__all__ = ["DIALECTS", "MAX_TEXT", "Estimate", "EstimatedWrite", "analyze", "load"]

MAX_TEXT = 2000
# Agents repeat their queries; texts up to this size are answered from an LRU cache.
CACHE_MAX_CHARS = 4096
CACHE_SIZE = 1024
_PAUSE_GC_CHARS = 65536
# PostgreSQL's readings, also by their statement's shape (shapes.py).
SHAPES = Shapes()

# Relations (pg_class entries): DROP/COMMENT/CREATE/ALTER of these name tables.
RELATION_OBJECTS = frozenset(
    {"table", "view", "materialized_view", "foreign_table", "sequence", "index"}
)
NO_SCOPE: frozenset[str] = frozenset()


class Setting(TypedDict):
    """A run-time setting a statement changes (`Statement.settings`)."""

    name: str
    value: str | None
    reset: bool


class EstimatedWrite(TypedDict):
    """One table a statement writes, as the planner estimated it (`Estimate.writes`)."""

    table: str  # "schema.name", as the plan names it
    operation: str  # insert, update, delete, merge
    rows: int  # the rows the planner expects the write to touch
    table_rows: int | None  # the table's rows (None: the plan wrote a table not named)
    counted: bool  # table_rows is an exact count (a small table), not statistics
    statistics: str  # fresh, stale (changed a lot since ANALYZE), none (never analysed)


class Estimate(TypedDict):
    """What the database's planner said a write touches; `unavailable`: why it could not
    be asked (then `writes` is [])."""

    writes: list[EstimatedWrite]
    unavailable: str | None


class Statement(TypedDict):
    """One statement of `input.sql.statements` (docs/policies.md lists its fields)."""

    kind: str
    object: str | None
    text: str  # cut at MAX_TEXT
    tables: list[str]
    has_where: bool | None
    functions: list[str]
    nested: bool
    program: str | None
    alter_actions: list[str]
    settings: list[Setting]
    effects: list[str]
    bounded: bool | None
    columns: list[Column] | None  # a top-level statement's result columns (lineage.py)
    stores: list[Column] | None  # what a top-level statement stores (lineage.py)
    estimate: NotRequired[Estimate]  # added by the PostgreSQL front, never by `analyze`


class Analysis(TypedDict):
    """What `analyze` reads a SQL text to mean."""

    dialect: str
    statements: list[Statement]
    multiple: bool
    error: str | None


class SqlReading(Analysis):
    """`input.sql`: every SQL text a request carries, read; and whether it writes with none."""

    unread_write: bool


class Unparsable(Exception):
    """The text is not SQL the parser can read; the message is one line."""


@dataclass(slots=True)
class Entry:
    """One statement being described while its tree is walked."""

    kind: str
    object: str | None
    text: str
    nested: bool
    has_where: bool | None = None
    program: str | None = None
    alter_actions: list[str] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    # Effects only the back-end's tree shows (effects.classify adds the rest).
    effects: set[str] = field(default_factory=set)
    # For a write of rows: whether the rows are limited (see Entry.as_dict).
    bounded: bool | None = None
    # sqlglot read part of it as an opaque Command: report it as "other", never as harmless.
    opaque: bool = False
    settings: list[Setting] = field(default_factory=list)
    # A top-level statement's result columns; None where the back-end computed none.
    columns: list[Column] | None = None
    # What a top-level statement stores for later statements to read; None: nothing.
    stores: list[Column] | None = None

    def as_dict(self) -> Statement:
        opaque = self.opaque
        kind = "other" if opaque else self.kind
        obj = None if opaque else self.object
        actions = list(dict.fromkeys(self.alter_actions))
        settings = list({tuple(s.values()): s for s in self.settings}.values())
        found = set(self.effects)
        for setting in settings:
            found |= {"session", *setting_effects(**setting)}
        # A setting function's effect is that of the settings it was read to change.
        functions = self.functions - SETTING_FUNCTIONS if settings else self.functions
        effects = classify(kind, obj, actions, functions, found)
        # A write the back-end did not bound itself is one through a function (nextval,
        # lo_put): it changes the one object named.
        bounded = self.bounded
        if bounded is None and "write" in effects:
            bounded = True
        return {
            "kind": kind,
            "object": obj,
            "text": self.text[:MAX_TEXT],
            "tables": sorted(self.tables),
            "has_where": self.has_where,
            "functions": sorted(self.functions),
            "nested": self.nested,
            "program": self.program,
            "alter_actions": actions,
            "settings": settings,
            "effects": effects,
            "bounded": bounded,
            "columns": self.columns,
            "stores": self.stores,
        }


class Collector:
    """Statement entries in source order, each parent before the statements inside it.

    Names go to the innermost open entry; closing an entry folds its names (and opacity) into
    its parent, so a statement's description covers everything that runs when it runs.
    """

    __slots__ = ("_open", "entries")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._open: list[Entry] = []

    @property
    def current(self) -> Entry:
        return self._open[-1]

    def open(self, kind: str, obj: str | None, text: str) -> Entry:
        entry = Entry(kind, obj, text, nested=bool(self._open))
        self.entries.append(entry)
        self._open.append(entry)
        return entry

    def close(self) -> None:
        entry = self._open.pop()
        if self._open:
            parent = self._open[-1]
            parent.tables |= entry.tables
            parent.functions |= entry.functions
            parent.opaque |= entry.opaque
            parent.settings += entry.settings


def cte_scopes(names: list[str], recursive: bool, scope: frozenset[str]) -> list[frozenset[str]]:
    """The CTE names each CTE body can see: all of them if RECURSIVE, else the earlier ones.

    A name a body cannot see as a CTE is a real table there, so it must stay in `tables`.
    """
    if recursive:
        return [scope.union(names)] * len(names)
    return [scope.union(names[:i]) for i in range(len(names))]


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def one_line(message: str, limit: int = 300) -> str:
    return " ".join(message.split())[:limit]


# --- Unicode spaces, results, cache ----------------------------------------------------------

# Non-ASCII whitespace (and ASCII separators Python's str.split treats as space) become a
# space; zero-width characters disappear. A database or client that treats them so would run
# `DROP\u00a0TABLE x` or `DR\u200bOP TABLE x`, so the analysis reads the text that way too.
_SPACES = "".join(
    ch for ch in map(chr, range(0x1C, 0x3001)) if ch.isspace() and ch not in " \t\n\r\v\f"
) + "\u180e\ufeff"
_INVISIBLE = "\u200b\u200c\u200d\u2060"
_UNICODE_FIX = str.maketrans(dict.fromkeys(_SPACES, " ") | dict.fromkeys(_INVISIBLE))
_UNICODE_FOUND = re.compile(f"[{re.escape(_SPACES + _INVISIBLE)}]")
# What read_safely reads a second time as a space, or as nothing.
UNICODE_SPACE = _UNICODE_FOUND
_AMBIGUOUS = (
    "the text means different things with and without Unicode spaces read as spaces"
)


Reader = Callable[[str], list[Entry]]
Reading = tuple[list[Statement], str | None]


@contextlib.contextmanager
def _collector_paused(text: str) -> Iterator[None]:
    """Pause the cyclic garbage collector while a large text is parsed and walked.

    1 MB of SQL builds millions of containers, and each allocation burst triggers collections
    that rescan everything alive: measured, 60% of the time (935 ms of 1 MB for postgres, 350
    without). pglast's trees hold no cycles and sqlglot's are freed after; nothing is lost.
    Small texts leave the collector alone.
    """
    if len(text) < _PAUSE_GC_CHARS or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _attempt(read: Reader, text: str) -> Reading:
    try:
        with _collector_paused(text):
            return [entry.as_dict() for entry in read(text)], None
    except Unparsable as error:
        return [], str(error)
    except RecursionError:
        return [], "statement nests too deeply to analyse"
    # Parsers and walker on hostile input: anything else they raise still means "could not
    # read it", which the caller refuses — an exception would only make that answer unclear.
    except Exception as error:
        return [], one_line(f"SQL could not be analysed: {type(error).__name__}: {error}")


def _meaning(statements: Iterable[Statement]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "text"} for s in statements]


def read_safely(read: Reader, text: str) -> Reading:
    """Statements of `text`, or an error; with Unicode spaces, the reading that is safe.

    The text is read both as is (what PostgreSQL itself does: it takes U+00A0 for a letter)
    and with Unicode spaces as spaces. When only one reading parses, it is the one that can
    run. When both parse, they must agree: normalising can open a comment or a dollar quote
    (`-\u200b-`, `x\u00a0$$`) and hide a statement the server would run, so disagreement is
    an error rather than a guess (so is a quoted name or a COPY program holding such a
    character, whose two readings differ). Agreeing readings keep the original text, string
    literals included.
    """
    if not _UNICODE_FOUND.search(text):
        return _attempt(read, text)
    raw, raw_error = _attempt(read, text)
    spaced, spaced_error = _attempt(read, text.translate(_UNICODE_FIX))
    if raw_error is not None:
        return spaced, spaced_error
    if spaced_error is not None or _meaning(raw) == _meaning(spaced):
        return raw, None
    return [], _AMBIGUOUS


# --- backslashes: the server's lexing settings -----------------------------------------------
#
# PostgreSQL with standard_conforming_strings off, and MySQL without NO_BACKSLASH_ESCAPES (its
# default), read a backslash in a '...' string as an escape; the other setting reads it as
# itself. A server or database can be set either way, so a text with a backslash is read
# both ways and the statements of both are described: `SELECT 'a\', 'b; DROP TABLE t; --'`
# is one harmless SELECT one way, a SELECT and a DROP TABLE the other. (A statement of the
# PostgreSQL escaping reading shows `\'` as `''` in its text.)


def either_lexing(statements: list[Statement], other: Reading) -> Reading:
    """The statements of either lexing (the other's only if it parses), each once: the
    server runs one of them, which one depends on a setting the gateway cannot see."""
    other_statements, other_error = other
    if other_error is not None:
        return statements, None
    seen = {orjson.dumps(s) for s in statements}
    return statements + [s for s in other_statements if orjson.dumps(s) not in seen], None


def _is_utf8_encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@functools.lru_cache(maxsize=CACHE_SIZE)
def _cached(text: str, dialect: str, server_version: str | None,
            backslashes: bool | None) -> bytes:
    # Kept as JSON bytes: every hit decodes a fresh copy, so no caller can alter the cache.
    return orjson.dumps(_analyze(text, dialect, server_version, backslashes))


def analyze(text: str, dialect: str = "postgres", server_version: str | None = None,
            backslashes: bool | None = None) -> Analysis:
    """What the SQL `text` means, in the shape policies match on (see the module docstring).
    `server_version`: the version the server announced, where its reading depends on it
    (MySQL's executable comments, /*!NNNNN ... */); unknown, what depends on it is an error.
    `backslashes`: whether the MySQL server escapes with a backslash in strings, where its
    front knows it (no NO_BACKSLASH_ESCAPES in its status); None, both lexings are read.

    Never raises for bad SQL — that is `error` — only ValueError for a dialect outside
    DIALECTS, which configuration validates at start.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    if len(text) > CACHE_MAX_CHARS:
        return _analyze(text, dialect, server_version, backslashes)
    if dialect not in _SHAPED_DIALECTS:
        return orjson.loads(_cached(text, dialect, server_version, backslashes))
    return SHAPES.analysis(
        text, _shaper(dialect, server_version, backslashes),
        lambda t: _analyze(t, dialect, server_version, backslashes),
        lambda t: orjson.loads(_cached(t, dialect, server_version, backslashes)))


# The dialects whose readings are also kept by shape (shapes.py).
_SHAPED_DIALECTS = frozenset({"postgres", "mysql"})


def _shaper(dialect: str, server_version: str | None,
            backslashes: bool | None) -> Shaper:
    """The dialect's reader's shape of a text (its back-end is loaded already)."""
    if dialect == "postgres":  # which reads neither the version nor the escaping
        from extproc.interpret.sql import pglast_reader

        return pglast_reader.shape
    from extproc.interpret.sql import sqlglot_reader

    return functools.partial(sqlglot_reader.shape, dialect=dialect,
                             server_version=server_version, backslashes=backslashes)


def load(dialect: str) -> None:
    """Import the back-end that reads `dialect` now: an interpreter calls this at start, so
    no request waits for a parser to load."""
    _back_end(dialect)


@functools.cache
def _back_end(dialect: str) -> Callable[[str, str, str | None, bool | None], Reading]:
    if dialect == "postgres":
        from extproc.interpret.sql import pglast_reader

        return lambda text, name, _version, _backslashes: pglast_reader.read(text, name)
    from extproc.interpret.sql import sqlglot_reader

    return sqlglot_reader.read


def _analyze(text: str, dialect: str, server_version: str | None = None,
             backslashes: bool | None = None) -> Analysis:
    statements: list[Statement] = []
    if "\x00" in text:
        error: str | None = "NUL byte in SQL text"
    elif not text.isascii() and not _is_utf8_encodable(text):
        error = "SQL text is not valid Unicode (lone surrogate)"
    else:
        statements, error = _back_end(dialect)(text, dialect, server_version, backslashes)
    return {
        "dialect": dialect,
        "statements": statements,
        "multiple": sum(not s["nested"] for s in statements) > 1,
        "error": error,
    }
