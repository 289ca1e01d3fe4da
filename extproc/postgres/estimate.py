"""How many rows a write touches, by the database's planner, asked before it is decided.

A statement's text says which rows a write may change; only the database knows how many
that is. So before a write (UPDATE, DELETE, MERGE, INSERT from a query, EXECUTE, a CTE that
writes) is decided, the front asks the planner — EXPLAIN (FORMAT JSON), never ANALYZE: the
statement is planned, never run — and the size of each table it writes, and puts both in
the statement's `estimate` (input.sql; policies/blast.rego holds what is over its limits).

Where: in the client's own upstream session, between two of its batches. A separate
connection would not see what the statement sees: the session's temp tables, the DDL and
rows its open transaction has not committed, its snapshot, its search_path (it could size
`public.customers` while the statement deletes from another schema's `customers`). The
session is used only at rest — every answer to what the client sent before has come back,
and no extended-protocol batch is open (a Sync after its last message), or only one that
prepares (Parse, Describe, Close: asyncpg's) and did not fail — so nothing the client
pipelined changes: a query slipped into a batch that binds or executes would end the
transaction its portals live in, or be skipped after an error in it. A write that arrives
inside such a batch (a pipeline) gets no estimate, and says so.

The session is left as it was found: outside a transaction the questions run in one that
is rolled back; inside one, under a savepoint rolled back to and released, so an EXPLAIN
that fails cannot abort the client's transaction, and the locks planning took are let go.
Each question follows a rollback to the savepoint (one failure spoils no other), read-only
(a function the planner evaluates cannot write), with short statement and lock timeouts.
A failed transaction runs nothing: no estimate.

What planning could run is looked at first: a function the statement calls that is
defined outside pg_catalog (the planner evaluates immutable and stable calls while it
estimates), or a foreign table (planning may ask its server): no estimate. Code the
database's owners attached to operators, defaults or types is theirs; an agent cannot
create functions through the default pack.

Parameters: a Parse is decided before its values are bound, so a statement with $n is
prepared under the front's own name and planned generically (plan_cache_mode =
force_generic_plan, what PostgreSQL 16's EXPLAIN (GENERIC_PLAN) does): with NULL values,
a custom plan folds `id = $1` to no rows at all.

Estimates are not counts. A table's size is its statistics scaled to its current pages, as
the planner scales them. A table under COUNT_BELOW rows by its statistics (or with none) is
counted, reading at most COUNT_CAP rows; an UPDATE's or DELETE's estimate there is the
planner's share of the table it assumed (its plan of the whole table) applied to the count:
a table never analysed looks like ten pages to the planner, so four rows could show as
eleven. `statistics` says whether the estimate rests on fresh statistics, stale ones (more
rows changed since the last ANALYZE than autovacuum lets pass before it analyses again) or
none (the planner's default guesses: a third of the rows for a range); the pack decides how
far it trusts them.

Only the tables a statement names are sized: what a view or an EXECUTE writes has its
rows, and `table_rows` null. An EXECUTE first in its text, of a name the session never
prepared, runs nothing (the database refuses it): no writes, and nothing unavailable.

Two round trips, each pipelined whole: the catalog (tables, functions), then the planner
(and the counts). Only writes pay them. Each query begins with MARK, so the database's
log tells the gateway's questions from the client's statements.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pglast import parser as pg_parser

from extproc.interpret.sql import MAX_TEXT, Estimate, EstimatedWrite
from extproc.interpret.sql.pg_parse import parse_json
from extproc.postgres import messages as pg

COUNT_BELOW = 1000
COUNT_CAP = 10000
# The front's name for the statement it prepares to plan: its prefix is the front's own
# (namespace.PREFIX), which no statement of a client is ever given.
NAME = "tollgate_estimate"
# What begins each of the front's own queries: the database's log (log_statement,
# pg_stat_activity) tells them from the client's statements by it.
MARK = "/* tollgate: estimate */ "
_SETTINGS = ("SET LOCAL transaction_read_only = on; SET LOCAL statement_timeout = '2s'; "
             "SET LOCAL lock_timeout = '1s'; SET LOCAL plan_cache_mode = force_generic_plan")
# A rollback to it ends each question: what one did (an error, locks) is undone.
_SEPARATE = f"ROLLBACK TO SAVEPOINT {NAME}; {_SETTINGS}"
_EXPLAIN = "EXPLAIN (FORMAT JSON, VERBOSE) "
# Top-level statements EXPLAIN takes as they are.
_EXPLAINABLE = frozenset({"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt",
                          "MergeStmt", "ExecuteStmt"})
# Statements that hold a write which does not run now (PREPARE: at EXECUTE; a rule: when
# it fires; EXPLAIN without ANALYZE: never).
_LATER = frozenset({"PrepareStmt", "RuleStmt"})
# Modified rows by autovacuum's rule (50 rows and a share of the table) past which the
# statistics are stale; its default share is 10%, stale here is twice that.
_STALE_ROWS, _STALE_SHARE = 50, 0.2
# The keywords without which no statement writes, nor runs a prepared one: a text naming
# none of them is not parsed again (a read, most statements). PostgreSQL matches keywords
# folding ASCII letters alone; this matches more, which only costs the parse.
_WRITES = re.compile("insert|update|delete|merge|execute", re.IGNORECASE)
_UNDEFINED_STATEMENT = "26000"  # invalid_sql_statement_name: no such prepared statement

# Sends the front's own messages upstream; the answers up to the `cycles`-th ReadyForQuery.
Ask = Callable[[list[bytes], int], Awaitable[list[pg.Message]]]


@dataclass(frozen=True, slots=True)
class Planned:
    """A top-level statement whose write the planner is asked about."""

    index: int  # among the text's top-level statements
    text: str  # its source, stripped, as input.sql has it (before the cut)
    targets: tuple[str, ...]  # the tables it writes, in SQL syntax (quoted)
    relations: tuple[str, ...]  # every relation it names, in SQL syntax
    functions: tuple[str, ...]
    parameters: int  # the highest $n
    problem: str | None = None  # why it cannot be planned alone
    # The text's first statement is an EXECUTE: of a name this session has not prepared,
    # it runs nothing (a session's prepared statements are its own: none can appear
    # between the question and the statement, the session being at rest).
    first_execute: bool = False


def planned(text: str) -> list[Planned]:
    """The statements of `text` that write rows the planner can count (pure: no I/O)."""
    if _WRITES.search(text) is None:
        return []
    try:
        tree = orjson.loads(parse_json(text))
    except (pg_parser.ParseError, orjson.JSONDecodeError):
        return []  # the interpreter's reading has the error, which the pack refuses
    source = text.encode()
    out = []
    for index, raw in enumerate(tree.get("stmts", ())):
        ((kind, node),) = raw["stmt"].items()
        found = _Found()
        found.walk(raw["stmt"])
        if kind in _LATER or (kind == "ExplainStmt" and not _analyzes(node)):
            continue
        # EXECUTE runs a statement SQL's PREPARE made: what it writes, only its plan says.
        runs_prepared = kind == "ExecuteStmt" or (
            kind == "ExplainStmt" and "ExecuteStmt" in node.get("query", {}))
        if not runs_prepared and not found.targets:
            continue
        problem = None if kind in _EXPLAINABLE else (
            "EXPLAIN ANALYZE runs the write; plain EXPLAIN would show its estimate"
            if kind == "ExplainStmt" else
            f"the write is inside {kind.removesuffix('Stmt').upper()}, which the planner "
            "cannot be asked about alone")
        start = raw.get("stmt_location", 0)
        length = raw.get("stmt_len", 0) or len(source) - start
        out.append(Planned(index, source[start:start + length].decode().strip(),
                           tuple(dict.fromkeys(found.targets)),
                           tuple(dict.fromkeys(found.relations)),
                           tuple(sorted(found.functions)), found.parameters, problem,
                           index == 0 and kind == "ExecuteStmt"))
    return out


def _analyzes(explain: dict[str, Any]) -> bool:
    for option in explain.get("options", ()):
        element = option.get("DefElem", {})
        if element.get("defname") == "analyze":
            value = element.get("arg", {})
            return not (str(value.get("String", {}).get("sval")).lower() in ("false", "off")
                        or value == {"Integer": {}})
    return False


@dataclass(slots=True)
class _Found:
    """What a statement's tree holds: the tables it writes, every relation, the
    functions it calls, its parameters."""

    targets: list[str] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)
    functions: set[str] = field(default_factory=set)
    parameters: int = 0

    def walk(self, tree: Any) -> None:
        for key, value in parse_nodes(tree):
            if key in ("UpdateStmt", "DeleteStmt", "MergeStmt") or (
                    key == "InsertStmt" and not _values_only(value)):
                self._relation(value["relation"], written=True)
            elif key == "RangeVar":
                self._relation(value, written=False)
            elif key == "FuncCall":
                self.functions.add(value["funcname"][-1]["String"]["sval"])
            elif key == "ParamRef":
                self.parameters = max(self.parameters, value.get("number", 0))

    def _relation(self, relation: dict[str, Any], written: bool) -> None:
        if "catalogname" in relation:
            return  # another database's: PostgreSQL refuses it, the catalog cannot size it
        name = quoted(relation)
        self.relations.append(name)
        if written:
            self.targets.append(name)


def parse_nodes(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of a parse tree (parse_sql_json's, loaded), each before what
    its value holds."""
    if isinstance(tree, list):
        for item in tree:
            yield from parse_nodes(item)
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield key, value
            yield from parse_nodes(value)


def quoted(relation: dict[str, Any]) -> str:
    """A RangeVar's name (schema and relation) in SQL syntax."""
    parts = [relation[k] for k in ("schemaname", "relname") if k in relation]
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def _values_only(insert: dict[str, Any]) -> bool:
    """INSERT ... VALUES (one row each) or DEFAULT VALUES: its rows are in its text."""
    select = insert.get("selectStmt")
    return select is None or "valuesLists" in select.get("SelectStmt", {})


def missing(why: str) -> Estimate:
    return {"writes": [], "unavailable": why}


@dataclass(slots=True)
class _Table:
    """A relation as the catalog describes it."""

    name: str  # "schema.name", as plans name it
    quoted: str  # the same in SQL syntax
    kind: str  # pg_class.relkind
    rows: float  # by its statistics, scaled to its current size
    unanalyzed: bool
    modified: float  # rows changed since the last ANALYZE
    readable: bool
    count: int | None = None
    planned: float | None = None  # the rows the planner assumes the whole table holds

    @property
    def statistics(self) -> str:
        if self.unanalyzed:
            return "none"
        return "stale" if self.modified > _STALE_ROWS + _STALE_SHARE * self.rows else "fresh"

    @property
    def countable(self) -> bool:
        return self.kind in ("r", "p") and self.readable and (
            self.unanalyzed or self.rows < COUNT_BELOW)


# Every relation asked about ($1 of the text: {"tables": [...], "functions": [...]}), with
# its size by statistics over its leaves (a partitioned table's partitions), and the
# functions of the names asked about that are defined outside pg_catalog.
_CATALOG = """WITH asked AS (SELECT CAST({tag}{asked}{tag} AS pg_catalog.jsonb) AS j)
SELECT 'table', schema.name || '.' || c.relname, r.name, c.relkind::text, size.rows,
       size.unanalyzed, size.modified, pg_catalog.has_table_privilege(c.oid, 'SELECT'),
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
FROM asked CROSS JOIN pg_catalog.jsonb_array_elements_text(asked.j -> 'tables') AS r(name)
JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(r.name)
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
-- the session's temp schema is "pg_temp" in plans
CROSS JOIN LATERAL (SELECT CASE WHEN n.oid = pg_catalog.pg_my_temp_schema() THEN 'pg_temp'
                                ELSE n.nspname END AS name) schema
CROSS JOIN LATERAL (
    SELECT coalesce(sum(CASE WHEN l.relpages > 0 THEN l.reltuples / l.relpages
                        * pg_catalog.pg_relation_size(l.oid)
                        / pg_catalog.current_setting('block_size')::float8
                        ELSE greatest(l.reltuples, 0) END), 0)::float8 AS rows,
           coalesce(bool_or(l.reltuples < 0), false) AS unanalyzed,
           coalesce(sum(s.n_mod_since_analyze), 0)::float8 AS modified
    FROM pg_catalog.pg_class l LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = l.oid
    WHERE (c.relkind <> 'p' AND l.oid = c.oid) OR l.oid IN (
        SELECT t.relid FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf)
) size
UNION ALL
SELECT DISTINCT 'function', n.nspname || '.' || p.proname, NULL::text, NULL::text,
       NULL::float8, NULL::bool, NULL::float8, NULL::bool, NULL::text
FROM asked CROSS JOIN pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname IN (SELECT pg_catalog.jsonb_array_elements_text(asked.j -> 'functions'))
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


async def estimates(ask: Ask, writes: list[Planned], parameter_types: tuple[int, ...] | None,
                    status: bytes) -> list[tuple[Planned, Estimate]]:
    """Each write's estimate, asked through `ask` in a session at rest whose transaction
    status is `status` (ReadyForQuery's byte); `parameter_types`: a Parse's (None: a
    simple Query, which has no parameters)."""
    if status == b"E":
        return [(p, missing("the transaction has failed: the database runs nothing until "
                            "it ends")) for p in writes]
    enter, leave = fences(status)
    try:
        tables, functions = await _catalog(ask, enter, leave, writes)
    except _CatalogError as exc:
        return [(p, missing(str(exc))) for p in writes]
    found: dict[int, Estimate] = {}
    for p in writes:
        problem = p.problem or _unplannable(p, tables, functions)
        if problem is not None:
            found[p.index] = missing(problem)
    askable = [p for p in writes if p.index not in found]
    if askable:
        found |= await _plans(ask, enter, leave, askable, tables, parameter_types)
    return [(p, found[p.index]) for p in writes]


def fences(status: bytes) -> tuple[str, str]:
    """What the front's questions begin and end with in a session whose transaction
    status is `status`: the session is left as it was found (a savepoint rolled back to
    and released in a transaction, a transaction rolled back outside one), read-only and
    with short timeouts meanwhile."""
    if status == b"T":
        return (f"SAVEPOINT {NAME}; {_SETTINGS}",
                f"ROLLBACK TO SAVEPOINT {NAME}; RELEASE SAVEPOINT {NAME}")
    return f"BEGIN; SAVEPOINT {NAME}; {_SETTINGS}", "ROLLBACK"


def _unplannable(p: Planned, tables: dict[str, _Table], functions: set[str]) -> str | None:
    defined = sorted(f for f in functions if f.rsplit(".", 1)[1] in p.functions)
    if defined:
        return (f"it calls {', '.join(defined)}, defined in the database: planning may run "
                "it, so the planner is not asked")
    foreign = sorted({tables[r].name for r in p.relations
                      if r in tables and tables[r].kind == "f"})
    if foreign:
        return (f"it names foreign table {', '.join(foreign)}: planning may ask its "
                "server, so the planner is not asked")
    return None


async def _catalog(ask: Ask, enter: str, leave: str, writes: list[Planned]
                   ) -> tuple[dict[str, _Table], set[str]]:
    """The relations the writes name, by their SQL names; the functions they call that
    are defined outside pg_catalog."""
    asked = orjson.dumps({"tables": sorted({r for p in writes for r in p.relations}),
                          "functions": sorted({f for p in writes for f in p.functions})}
                         ).decode()
    questions = Questions(enter)
    catalog = questions.query(_CATALOG.format(tag=dollar_tag(asked), asked=asked))
    questions.query(leave)
    await questions.ask(ask)
    rows, error = questions.result(catalog)
    if error is not None:
        raise _CatalogError(f"the catalog could not be read: {pg.error_text(error)}")
    tables: dict[str, _Table] = {}
    functions: set[str] = set()
    for row in rows:
        kind, name, asked_as, relkind, size, unanalyzed, modified, readable, quoted = (
            "" if v is None else pg.value_text(v) for v in row)
        if kind == "function":
            functions.add(name)
            continue
        tables[asked_as] = _Table(name, quoted, relkind, float(size or 0), unanalyzed == "t",
                                  float(modified or 0), readable == "t")
    return tables, functions


def dollar_tag(text: str) -> str:
    """A dollar quote's tag that `text` cannot close: random, so no name chosen in a
    statement can guess it."""
    while True:
        tag = f"$tollgate_{secrets.token_hex(8)}$"
        if tag not in text:
            return tag


class Questions:
    """The front's messages of one round trip, pipelined; each answer found by the
    message whose cycle it ends (a Query's, or a Sync's after a Parse or Close)."""

    def __init__(self, enter: str) -> None:
        self.messages: list[bytes] = []
        self._answers: dict[int, list[pg.Message]] = {}
        self.query(enter)

    def query(self, text: str) -> int:
        """A simple Query (marked as the front's): its position, to find its answer."""
        self.messages.append(pg.encode_query(MARK + text))
        return len(self.messages) - 1

    def extended(self, *messages: bytes) -> int:
        """Extended-protocol messages and a Sync: the Sync's position."""
        self.messages += [*messages, _SYNC]
        return len(self.messages) - 1

    async def ask(self, ask: Ask) -> None:
        ends = [i for i, m in enumerate(self.messages) if m[:1] in (b"Q", b"S")]
        answers = _cycles(await ask(self.messages, len(ends)))
        self._answers = dict(zip(ends, answers, strict=True))

    def result(self, *positions: int
               ) -> tuple[list[list[bytes | None]], dict[str, str] | None]:
        """The rows of the last of these cycles, or the first error among them."""
        rows: list[list[bytes | None]] = []
        for position in positions:
            rows, error = pg.answer_rows(self._answers[position])
            if error is not None:
                return [], error
        return rows, None


async def _plans(ask: Ask, enter: str, leave: str, writes: list[Planned],
                 tables: dict[str, _Table], parameter_types: tuple[int, ...] | None
                 ) -> dict[int, Estimate]:
    """The planner's answer for each write, and the counts of the small tables."""
    questions = Questions(enter)
    counted = list({t.name: t for t in tables.values() if t.countable}.values())
    counting = None
    if counted:
        # Their rows counted, then how many the planner assumes each holds.
        counting = questions.query("; ".join([
            "SELECT " + ", ".join(f"(SELECT pg_catalog.count(*) FROM (SELECT FROM {t.quoted} "
                                  f"LIMIT {COUNT_CAP + 1}) AS t)" for t in counted),
            *(f"{_EXPLAIN}SELECT FROM {t.quoted}" for t in counted)]))
        questions.query(_SEPARATE)
    asked: dict[int, tuple[int, ...]] = {}  # a write's index: the cycles of its question
    for p in writes:
        if parameter_types is not None and (p.parameters or parameter_types):
            nulls = ", ".join(["NULL"] * max(p.parameters, len(parameter_types)))
            asked[p.index] = (
                questions.extended(pg.encode_parse(NAME, p.text, parameter_types)),
                questions.query(f"{_EXPLAIN}EXECUTE {NAME}" + (f"({nulls})" if nulls else "")))
            questions.query(_SEPARATE)
            questions.extended(pg.encode_close(b"S", NAME))
        else:
            asked[p.index] = (questions.query(_EXPLAIN + p.text),)
            questions.query(_SEPARATE)
    questions.query(leave)
    await questions.ask(ask)
    if counting is not None:
        counts, failed = questions.result(counting)
        if failed is None:
            for table, value, plan in zip(counted, counts[0], counts[1:], strict=True):
                table.count = None if value is None else int(value)
                table.planned = _plan(plan).get("Plan Rows")
    found: dict[int, Estimate] = {}
    for p in writes:
        rows, error = questions.result(*asked[p.index])
        if error is None:
            found[p.index] = _estimate(rows, tables)
        elif p.first_execute and error.get("C") == _UNDEFINED_STATEMENT:
            found[p.index] = {"writes": [], "unavailable": None}  # the database refuses it
        else:
            found[p.index] = missing(f"the planner could not plan it: {pg.error_text(error)}")
    return found


_SYNC = pg.encode(b"S", b"")


def _estimate(rows: list[list[bytes | None]], tables: dict[str, _Table]) -> Estimate:
    """The writes of one EXPLAIN's plan, sized."""
    nodes = list(_nodes(_plan(rows[0]))) if rows else []
    if not nodes or not nodes[0]:
        return missing("the planner gave no plan")
    if any(n.get("Node Type") == "Foreign Scan" for n in nodes):
        return missing("the plan reads a foreign table, whose rows its server knows")
    by_name = {t.name: t for t in tables.values()}
    writes: list[EstimatedWrite] = []
    for node in nodes:
        if node.get("Node Type") != "ModifyTable":
            continue
        name = f"{node.get('Schema')}.{node.get('Relation Name')}"
        operation = str(node.get("Operation", "")).lower()
        source = next((c for c in node.get("Plans", ())
                       if c.get("Parent Relationship") == "Outer"), node)
        rows_planned = round(source.get("Plan Rows", 0))
        table = by_name.get(name)
        table_rows: int | None = None
        counted = False
        statistics = "unknown"
        if table is not None:
            statistics = table.statistics
            counted = table.count is not None and table.count <= COUNT_CAP
            table_rows = table.count if counted and table.count is not None else max(
                round(table.rows), table.count or 0)
            if counted and operation in ("update", "delete") and table.planned:
                rows_planned = min(table_rows, max(min(rows_planned, 1), round(
                    source.get("Plan Rows", 0) * table_rows / table.planned)))
        writes.append({"table": name, "operation": operation, "rows": rows_planned,
                       "table_rows": table_rows, "counted": counted,
                       "statistics": statistics})
    return {"writes": writes, "unavailable": None}


def _plan(row: list[bytes | None]) -> dict[str, Any]:
    """The top node of an EXPLAIN (FORMAT JSON)'s one row."""
    plan: dict[str, Any] = orjson.loads(row[0] or b'[{"Plan": {}}]')[0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _cycles(answers: list[pg.Message]) -> list[list[pg.Message]]:
    """The answers, cut at each ReadyForQuery."""
    out: list[list[pg.Message]] = [[]]
    for message in answers:
        out[-1].append(message)
        if message.kind == b"Z":
            out.append([])
    return out[:-1]


class _CatalogError(Exception):
    """The catalog could not be read (a lock held too long, a timeout)."""


def attach(meaning: dict[str, Any], found: list[tuple[Planned, Estimate]]) -> None:
    """Each estimate on its top-level statement of the reading (`input.sql`), matched by
    its text; a statement that writes but matches none (a reading of the text that is
    not the one planned) gets one saying so, so no write goes without."""
    by_text = {p.text[:MAX_TEXT]: estimate for p, estimate in found}
    top = [s for s in meaning.get("statements", ()) if not s.get("nested")]
    matched = set()
    for statement in top:
        estimate = by_text.get(statement.get("text", ""))
        if estimate is not None:
            statement["estimate"] = estimate
            matched.add(statement["text"])
    if by_text.keys() - matched:
        for statement in top:
            if "estimate" not in statement and "write" in statement.get("effects", ()):
                statement["estimate"] = missing(
                    "the statement as read is not one the planner was asked about")
