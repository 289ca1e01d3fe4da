"""What a statement may write besides the rows its text writes: the database's code.

The planner's estimate and the measured effect (estimate.py, effect.py) start from a
text that names a write (UPDATE, DELETE, MERGE, INSERT from a query). The database's
owners can make other texts write: a trigger or a rule on the table an `INSERT ...
VALUES` or a `COPY ... FROM` fills (it may delete from another table), a function a
`SELECT` calls (`SELECT purge()`, one inside a `WHERE`, a SECURITY DEFINER one that
writes what the caller's role may not), a procedure a `CALL` runs, a `DO` block. Such a
text is as much a write as a DELETE, and it is measured as one: its effect, counted by
the database, is what the policy decides on (`input.effect`), or it waits for a person
where it cannot be measured (COPY ... FROM, CALL and DO: effect.unmeasurable).

What can write is read from the catalog, in the client's own upstream session at rest
(as estimate.py asks it: read-only, under a savepoint, with short timeouts), for the
names the text holds: each table an INSERT or a COPY ... FROM fills — a trigger of its
own (not a foreign key's) that is enabled, a rule, a view (its rules or INSTEAD OF
triggers write elsewhere), on it or on a partition — and each function it calls by a
name defined outside pg_catalog (any such function, whatever its volatility: a stable one
may call a volatile one). PostgreSQL's catalog is readable by every role, so the agent's
role reads what the owner's would. A text whose catalog cannot be read (a pipeline, a
failed transaction, a timeout) is measured: not knowing is treated as reaching.

What was read is kept for the session (exchange/effect.py's `Remembered`) for
REMEMBER_SECONDS, and forgotten at once after a statement the session ran that changes the
schema (its `effects` say so): a trigger another session's owner adds is seen within
REMEMBER_SECONDS.

A plain read runs the owners' code too where what it reads is a view whose definition
calls a function, or a table whose row security policy's expression does: each relation
a text names is asked about, through the views beneath it (to DEPTH), for a function
outside pg_catalog that a view's SELECT rule or a policy depends on (pg_depend).

Not read here: a column's type's input function, an operator, a cast, which any text
may run without naming them.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pglast import parser as pg_parser

from extproc.exchange.effect import Remembered
from extproc.interpret.sql.pg_parse import parse_json
from extproc.postgres import messages as pg
from extproc.postgres.estimate import Ask, Questions, dollar_tag, fences, parse_nodes, quoted

# No text without one of these calls a function, fills or reads a relation or runs a
# block (a prefilter: what matches is parsed; PostgreSQL folds ASCII letters alone, this
# more).
_MAY_REACH = re.compile(r"\(|insert|copy|\bdo\b|from|join|table", re.IGNORECASE)
# How deep views over views are followed.
DEPTH = 8

# Each table asked about ($1: {"tables": [...], "functions": [...]}) that has code of its
# owners' that a row written to it runs; each function name defined outside pg_catalog.
_CATALOG = """WITH RECURSIVE asked AS (SELECT CAST({tag}{asked}{tag} AS pg_catalog.jsonb) AS j),
{reads}SELECT 'table', r.name, CASE WHEN c.relkind = 'v' THEN 'a view'
    WHEN EXISTS (SELECT FROM pg_catalog.pg_rewrite w WHERE w.ev_class = ANY (tree.oids)
        AND w.rulename <> '_RETURN') THEN 'a rule'
    WHEN EXISTS (SELECT FROM pg_catalog.pg_trigger g WHERE g.tgrelid = ANY (tree.oids)
        AND NOT g.tgisinternal AND g.tgenabled <> 'D') THEN 'a trigger'
    END
FROM asked CROSS JOIN pg_catalog.jsonb_array_elements_text(asked.j -> 'tables') AS r(name)
JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(r.name)
-- the table and its partitions (pg_partition_tree has no rows for a plain table)
CROSS JOIN LATERAL (SELECT pg_catalog.array_append(pg_catalog.array_agg(t.relid::oid),
    c.oid) AS oids FROM pg_catalog.pg_partition_tree(c.oid) t) tree
UNION ALL
SELECT DISTINCT 'function', p.proname, n.nspname || '.' || p.proname
FROM asked CROSS JOIN pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname IN (SELECT pg_catalog.jsonb_array_elements_text(asked.j -> 'functions'))
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT DISTINCT 'relation', reached.root, n.nspname || '.' || p.proname
FROM reached JOIN code ON code.rel = reached.oid
JOIN pg_catalog.pg_depend d ON d.classid = code.cls AND d.objid = code.obj
  AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
# What reading a relation runs of its owners' code: a view's SELECT rule, a table's row
# security policies (each a pg_depend object); and each relation asked about with the
# relations its views read, followed DEPTH deep.
_READS = """code(obj, rel, cls) AS (
    SELECT w.oid, w.ev_class, 'pg_catalog.pg_rewrite'::pg_catalog.regclass
    FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_class c ON c.oid = w.ev_class
    WHERE w.ev_type = '1' AND c.relkind = 'v'
    UNION ALL
    SELECT po.oid, po.polrelid, 'pg_catalog.pg_policy'::pg_catalog.regclass
    FROM pg_catalog.pg_policy po),
reached(root, oid, depth) AS (
    SELECT r.name, pg_catalog.to_regclass(r.name)::pg_catalog.oid, 0
    FROM asked CROSS JOIN pg_catalog.jsonb_array_elements_text(asked.j -> 'relations') r(name)
    WHERE pg_catalog.to_regclass(r.name) IS NOT NULL
    UNION
    SELECT reached.root, d.refobjid, reached.depth + 1
    FROM reached JOIN code ON code.rel = reached.oid
    JOIN pg_catalog.pg_depend d ON d.classid = code.cls AND d.objid = code.obj
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refobjid <> reached.oid
    WHERE reached.depth < {depth})
"""


@dataclass(frozen=True, slots=True)
class Names:
    """What a text may reach the database's code through."""

    tables: frozenset[str]  # filled by INSERT or COPY ... FROM, in SQL syntax (quoted)
    functions: frozenset[str]  # called, by name, but those qualified with pg_catalog
    runs: str | None  # a DO block or a procedure it runs, said
    # Every relation it names (read or written), in SQL syntax: a view's or a policy's
    # functions run as it is read.
    relations: frozenset[str] = frozenset()
    # It holds transaction control (a ROLLBACK TO SAVEPOINT ends a failed state).
    controls: bool = False


@functools.lru_cache(maxsize=1024)
def names(text: str) -> Names | None:
    """What `text` may reach (pure: no I/O; a statement's text repeats, its reading is
    kept); None: nothing."""
    if _MAY_REACH.search(text) is None:
        return None
    try:
        tree = orjson.loads(parse_json(text))
    except (pg_parser.ParseError, orjson.JSONDecodeError):
        return None  # the interpreter's reading has the error, which the pack refuses
    found = _Walk()
    found.walk(tree.get("stmts", ()))
    if not (found.tables or found.functions or found.runs or found.relations):
        return None
    if found.path and found.runs is None:
        found.runs = _PATH_CHANGED
    return Names(frozenset(found.tables), frozenset(found.functions), found.runs,
                 frozenset(found.relations), found.controls)


# What a text that also names relations or functions says when it changes search_path:
# the catalog is asked before it runs, under the search_path it leaves behind.
_PATH_CHANGED = ("it changes search_path before names it holds are resolved: what they "
                 "name is not known before it runs")


@dataclass(slots=True)
class _Walk:
    tables: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    runs: str | None = None
    relations: set[str] = field(default_factory=set)
    controls: bool = False
    path: bool = False  # it changes search_path (SET, RESET ALL, DISCARD, set_config)

    def walk(self, tree: Any) -> None:
        for key, value in parse_nodes(tree):
            if key == "RangeVar":
                self.relations.add(quoted(value))
            elif key == "TransactionStmt":
                self.controls = True
            elif key == "DiscardStmt" or (key == "VariableSetStmt" and (
                    value.get("name") == "search_path" or value.get("kind") == "VAR_RESET_ALL")):
                self.path = True
            if key == "InsertStmt" or (key == "CopyStmt" and value.get("is_from")
                                       and "relation" in value):
                self.tables.add(quoted(value["relation"]))
            elif key == "FuncCall":
                parts = [p["String"]["sval"] for p in value["funcname"]]
                self.path = self.path or parts[-1] == "set_config"
                if parts[:-1] != ["pg_catalog"]:
                    self.functions.add(parts[-1])
            elif key == "DoStmt":
                self.runs = "it runs a DO block"
            elif key == "CallStmt":
                called = ".".join(p["String"]["sval"] for p in value["funccall"]["funcname"])
                self.runs = f"it calls procedure {called}"


async def reaches(ask: Ask, at_rest: Callable[[], Awaitable[str | None]],
                  status: Callable[[], bytes], found: Names, remembered: Remembered[str]
                  ) -> str | None:
    """Why the text whose names are `found` may write through the database's code (a
    reason for the record), or None: it cannot. `at_rest` waits until the session can be
    asked (None) or says why it cannot (then the text may write); `status` is then its
    transaction's (ReadyForQuery's byte)."""
    if found.runs is not None:
        return found.runs
    now = time.monotonic()
    said: dict[str, str | None] = {}
    asked: tuple[set[str], set[str], set[str]] = (set(), set(), set())
    for names_of, kind, ask_for in ((found.tables, "table", asked[0]),
                                    (found.functions, "function", asked[1]),
                                    (found.relations, "relation", asked[2])):
        for name in names_of:
            known, what = remembered.get(f"{kind} {name}", now)
            if known:
                said[f"{kind} {name}"] = what
            else:
                ask_for.add(name)
    if any(asked):
        problem = await at_rest()
        if problem is None and status() == b"E":
            if not found.controls:
                return None  # a failed transaction runs nothing until it ends: no code
            problem = "the transaction has failed: the database runs nothing until it ends"
        if problem is not None:
            return f"what it may run of the database's code is not known: {problem}"
        read = await _catalog(ask, status(), *asked)
        if isinstance(read, str):
            return f"what it may run of the database's code is not known: {read}"
        for kind, sent, answers in zip(("table", "function", "relation"), asked, read,
                                       strict=True):
            for name in sent:
                said[f"{kind} {name}"] = answers.get(name)
                remembered.remember(f"{kind} {name}", answers.get(name), now)
    return "; ".join(_said(key, what) for key, what in sorted(said.items()) if what) or None


def _said(key: str, what: str) -> str:
    kind, _, name = key.partition(" ")
    if kind == "table":
        return f"{name} has {what}"
    if kind == "relation":
        return f"reading {name} runs {what}, defined in the database"
    return f"it calls {what}, defined in the database"


async def _catalog(ask: Ask, status: bytes, tables: set[str], functions: set[str],
                   relations: set[str]
                   ) -> tuple[dict[str, str], dict[str, str], dict[str, str]] | str:
    """For the tables, what of the owners' code a row written to each runs; for the
    function names, one defined outside pg_catalog; for the relations, the functions
    reading each runs; or why the catalog could not be read."""
    asked = orjson.dumps({"tables": sorted(tables), "functions": sorted(functions),
                          "relations": sorted(relations)}).decode()
    enter, leave = fences(status)
    questions = Questions(enter)
    catalog = questions.query(_CATALOG.format(tag=dollar_tag(asked), asked=asked,
                                              reads=_READS.format(depth=DEPTH)))
    questions.query(leave)
    try:
        await questions.ask(ask)
    except TimeoutError:
        return "the database did not answer in time"
    rows, error = questions.result(catalog)
    if error is not None:
        return f"the catalog could not be read: {pg.error_text(error)}"
    read: tuple[dict[str, str], dict[str, str], dict[str, str]] = ({}, {}, {})
    index = {"table": 0, "function": 1, "relation": 2}
    for row in rows:
        kind, name, how = ("" if v is None else pg.value_text(v) for v in row)
        if how:
            found = read[index[kind]]
            found[name] = f"{found[name]}, {how}" if name in found else how
    return read
