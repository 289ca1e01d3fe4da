"""What a write did on MySQL or MariaDB, as the server measured it (the policy's
`input.effect`, exchange/effect.py).

A write (INSERT, UPDATE, DELETE) runs inside a savepoint of the client's transaction, or
a transaction the front opens for it, between two readings:

- the session's handler counters (`Handler_write`, `Handler_update`, `Handler_delete`):
  every row the statement, and the triggers it fired, inserted, updated or deleted, in
  any table (the server's internal temporary tables count apart, as `Handler_tmp_*`);
- InnoDB does its foreign keys' cascades inside the engine, where no handler counter
  sees them: so every table a cascade can reach from the tables written (through the
  catalog's `REFERENTIAL_CONSTRAINTS`, transitively) is counted before and after, its
  rows for `ON DELETE CASCADE`, its NULL keys for `SET NULL`.

The counters' difference is charged to the tables the statement names as written
(through a view, to the view); a cascade's, to the table it reached. The policy decides
on the effect before the transaction goes on: released (committed) within the limits,
rolled back otherwise. A written table's size (`table_rows`) is its count as the
session's role sees it, up to COUNT_CAP rows; past the cap, or where the role cannot
read it, the catalog's `TABLE_ROWS`.

A text that names no write but calls a stored function (`SELECT f()`, a function in a
`WHERE`, `SET @x = f()`) may write as much (the function's statements count in the same
handler counters): it is measured the same way, its rows charged to the function
(`shop.purge()`: which tables it writes, a role that may only execute it cannot read), or
held where its kind cannot be measured (SET, DO).

Not measured, and said why (`measured` false: the pack holds it):

- a text with anything but SELECT, INSERT, UPDATE and DELETE in it: transaction control
  and DDL commit, SET can turn autocommit on, REPLACE and CALL are not read as writes;
- a table written, or reached by a cascade, whose engine cannot roll back (MyISAM,
  Aria, MEMORY ...): the measurement would be the write itself;
- a cascade `ON UPDATE CASCADE` or `SET DEFAULT` reached (which rows it changes, no count
  shows), or a table a cascade reaches the session cannot count;
- a trigger whose body the catalog's reader may not read (NULL in the catalog), a view
  whose definition it may not read (empty), or names no table.

What a rollback cannot undo is no effect this reading sees either: an AUTO_INCREMENT
consumed, a trigger's write to a non-transactional table, a sequence's NEXTVAL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from extproc.exchange.effect import COUNT_CAP, Effect, TableEffect, measured
from extproc.interpret.sql.sqlglot_reader import parsed

SAVEPOINT = "tollgate_effect"
MARK = "/* tollgate: effect */ "
# The statements a measured text may hold: none ends, opens or leaves a transaction.
_MEASURABLE = frozenset({"select", "insert", "update", "delete"})
_COUNTERS = ("HANDLER_WRITE", "HANDLER_UPDATE", "HANDLER_DELETE")
# The cascading rules of a foreign key; RESTRICT and NO ACTION change nothing.
_CASCADING = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})
DEPTH = 8  # views over views, triggers' triggers: followed this deep
_DIALECT = MySQL()
_PLAIN = re.compile(r"[A-Za-z0-9_$ .-]+")


def writes(statements: list[dict[str, Any]]) -> bool:
    """Whether the interpreted text writes rows (what the front measures)."""
    return any("write" in (s.get("effects") or ()) for s in statements)


def called(statements: list[dict[str, Any]]) -> list[str]:
    """The names of the functions the text calls (lowercase: MySQL's function names are
    not case-sensitive), builtin ones too: the catalog says which are stored."""
    return sorted({str(f).lower() for s in statements for f in s.get("functions") or ()})


def routines_query(names: list[str]) -> str:
    """The stored functions of these names the session may run (schema, name)."""
    return ("SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES WHERE "
            "ROUTINE_TYPE = 'FUNCTION' AND LOWER(ROUTINE_NAME) IN ("
            + ", ".join(literal(n) for n in names) + ")")


def unmeasurable(statements: list[dict[str, Any]]) -> str | None:
    """Why a write's text cannot run inside a transaction the front controls."""
    for statement in statements:
        kind = str(statement.get("kind") or "other")
        if kind not in _MEASURABLE:
            return (f"it runs {kind.upper()} with the write: it could end the transaction "
                    "the effect is measured in, or is not read as a write")
    return None


def literal(text: str) -> str:
    """`text` as a SQL string literal no character set or sql_mode reads otherwise: as
    it is where it is plain (the catalog looks a plain name up by its key), in hex
    where it holds a quote, a backslash or anything else."""
    if _PLAIN.fullmatch(text):
        return f"'{text}'"
    return f"CONVERT(X'{text.encode().hex()}' USING utf8mb4)"


def name(schema: str, table: str) -> str:
    return "`" + schema.replace("`", "``") + "`.`" + table.replace("`", "``") + "`"


@dataclass(frozen=True, slots=True)
class Target:
    """A table (or view) a statement writes."""

    schema: str
    table: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True, slots=True)
class Written:
    """The tables a text writes, whether it deletes rows, and the columns it updates
    (None: any: an UPDATE whose assignments could not be read)."""

    tables: list[Target]
    deletes: bool
    columns: frozenset[str] | None


def written(text: str, database: str | None, statements: list[dict[str, Any]],
            backslashes: bool | None = None) -> Written | str:
    """What the write statements of `text` write (all the tables of a multi-table
    UPDATE's), or why it cannot be read. The tables are those of its readings as the
    server may lex it (`backslashes`: its escaping, where known), and those of every
    write the interpreter's readings found (`statements`: another sql_mode or character
    set reads another write; a table it only reads is taken as written too, which costs
    a count, never an effect)."""
    nodes = parsed(text, "mysql", backslashes)
    found: list[Target] = []
    deletes, columns = False, set[str]()
    named = [(t.db, t.name) for node in nodes for t in _written(node)] + [
        str(n).rpartition(".")[::2] for s in statements
        if "write" in (s.get("effects") or ()) for n in (s.get("tables") or ())]
    for db, table in named:
        schema = db or database
        if not schema:
            return f"{table} names no database, and the session has none"
        found.append(Target(schema, table))
    for node in nodes:
        deletes = deletes or isinstance(node, exp.Delete)
        assignments = node.expressions if isinstance(node, exp.Update) else (
            node.args["conflict"].expressions if isinstance(node, exp.Insert)
            and node.args.get("conflict") is not None else [])
        columns |= {str(e.this.name).lower() for e in assignments
                    if isinstance(e, exp.EQ) and isinstance(e.this, exp.Column)}
    deletes = deletes or any(s.get("kind") == "delete" for s in statements)
    if any(s.get("kind") == "update" for s in statements) and not any(
            isinstance(node, exp.Update) for node in nodes):
        return Written(list(dict.fromkeys(found)), deletes, None)
    return Written(list(dict.fromkeys(found)), deletes, frozenset(columns))


def _written(node: exp.Expr | None) -> list[exp.Table]:
    if isinstance(node, exp.Insert):
        into = node.this
        return [into.this if isinstance(into, exp.Schema) else into]
    if isinstance(node, exp.Update):
        return list(node.this.find_all(exp.Table))
    if isinstance(node, exp.Delete):
        named = node.args.get("tables") or []
        if not named:
            return [node.this]
        tables = [t for source in (node.this, node.args.get("using"))
                  if isinstance(source, exp.Expr) for t in source.find_all(exp.Table)]
        by_alias = {t.alias_or_name: t for t in tables}
        return [by_alias.get(t.name, t) for t in named]
    return []


def _where(schema: str, table: str, targets: list[Target]) -> str:
    """Rows of `targets` by their catalog columns, each schema's tables looked up by
    equality (which MariaDB answers by opening those tables alone)."""
    by_schema: dict[str, list[str]] = {}
    for t in targets:
        by_schema.setdefault(t.schema, []).append(t.table)
    return " OR ".join(
        f"({schema} = {literal(s)} AND {table} IN ({', '.join(map(literal, tables))}))"
        for s, tables in by_schema.items())


def catalog_query(targets: list[Target]) -> str:
    """The kinds, engines and sizes (by statistics) of `targets`."""
    return ("SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_ROWS FROM "
            "information_schema.TABLES WHERE "
            + _where("TABLE_SCHEMA", "TABLE_NAME", targets))


def views_query(views: list[Target]) -> str:
    return ("SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS "
            "WHERE " + _where("TABLE_SCHEMA", "TABLE_NAME", views))


def view_definitions(rows: list[list[bytes | None]]) -> dict[Target, str]:
    """The definitions a views_query read (a role without SHOW VIEW and SELECT on a view
    reads it empty: left out)."""
    return {Target(schema, table): definition
            for schema, table, definition in _text(rows) if definition}


def rules_query(schemas: set[str]) -> str:
    """The foreign keys of `schemas` that cascade (their rows: schema, name, child,
    parent, rules)."""
    return ("SELECT CONSTRAINT_SCHEMA, CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, "
            "DELETE_RULE, UPDATE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE "
            f"CONSTRAINT_SCHEMA IN ({', '.join(literal(s) for s in sorted(schemas))}) AND "
            "(DELETE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT') OR "
            "UPDATE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT'))")


def columns_query(schemas: set[str]) -> str:
    """The first column of each foreign key of `schemas`, and the column it references."""
    return ("SELECT CONSTRAINT_SCHEMA, CONSTRAINT_NAME, TABLE_NAME, COLUMN_NAME, "
            "REFERENCED_TABLE_SCHEMA, REFERENCED_COLUMN_NAME FROM "
            "information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA IN "
            f"({', '.join(literal(s) for s in sorted(schemas))}) AND ORDINAL_POSITION = 1 "
            "AND REFERENCED_TABLE_NAME IS NOT NULL")


def _text(rows: list[list[bytes | None]]) -> list[list[str]]:
    return [["" if v is None else v.decode() for v in row] for row in rows]


def keys(rules: list[list[bytes | None]],
         columns: list[list[bytes | None]]) -> list[list[str]]:
    """Each cascading key: child's schema and table, parent's schema and table, the
    child's column, the parent's column it references, its rules."""
    by_key = {(s, n, t): (c, ps, pc) for s, n, t, c, ps, pc in _text(columns)}
    out = []
    for schema, name, child, parent, on_delete, on_update in _text(rules):
        column, parent_schema, referenced = by_key.get((schema, name, child), ("", "", ""))
        out.append([schema, child, parent_schema or schema, parent, column, referenced,
                    on_delete, on_update])
    return out


@dataclass(slots=True)
class Catalog:
    """What the catalog says of tables: their engines and sizes (by statistics), and
    which of those asked of are views."""

    engines: dict[Target, str] = field(default_factory=dict)
    sizes: dict[Target, int | None] = field(default_factory=dict)
    views: list[Target] = field(default_factory=list)

    def add(self, more: Catalog) -> None:
        """What a later question found, beside what this one holds (its views are that
        question's own)."""
        self.engines.update(more.engines)
        self.sizes.update(more.sizes)


def read_catalog(rows: list[list[bytes | None]]) -> Catalog:
    catalog = Catalog()
    for schema, table, kind, engine, size in _text(rows):
        target = Target(schema, table)
        if kind == "VIEW":
            catalog.views.append(target)
        else:
            catalog.engines[target] = engine or "?"
            catalog.sizes[target] = int(size) if size else None
    return catalog


def view_bases(definition: str) -> list[Target]:
    """The tables a view's stored definition reads (MariaDB stores them qualified); none
    where it cannot be read."""
    try:
        nodes = sqlglot.parse(definition, read="mysql")
    except SqlglotError:
        return []
    return list(dict.fromkeys(Target(t.db, t.name) for node in nodes if node is not None
                              for t in node.find_all(exp.Table) if t.db))


@dataclass(frozen=True, slots=True)
class Reached:
    """A table a cascade or a trigger reaches: how its change is counted (`column`: its
    NULL keys, for SET NULL; None: its rows)."""

    target: Target
    column: str | None
    # Reached by a trigger: its changes are in the handler counters too.
    trigger: bool = False


@dataclass(frozen=True, slots=True)
class _Key:
    child: Target
    column: str  # the child's (first) key column
    referenced: str  # the parent's column it references
    on_delete: str
    on_update: str


Root = tuple[Target, bool, frozenset[str] | None]


def cascades(rows: list[list[str]], roots: list[Root],
             triggered: list[Target]) -> list[Reached] | str:
    """The tables the foreign keys' cascades reach from `roots` (a table written,
    whether its rows are deleted, which columns are updated: None, any), rows deleted by
    a DELETE's, keys nulled by an UPDATE's of the key they reference; and the tables
    `triggered`. Or why one cannot be measured."""
    by_parent: dict[Target, list[_Key]] = {}
    for schema, child, parent_schema, parent_name, column, referenced, on_delete, on_update in (
            rows):
        by_parent.setdefault(Target(parent_schema, parent_name), []).append(
            _Key(Target(schema, child), column, referenced.lower(), on_delete, on_update))
    reached: dict[Target, Reached] = {}
    reached.update((t, Reached(t, None, trigger=True)) for t in triggered)
    todo = [*roots, *((t, True, None) for t in triggered)]
    while todo:
        parent, deleted, columns = todo.pop()
        for key in by_parent.get(parent, ()):
            rules = []
            if deleted and key.on_delete in _CASCADING:
                rules.append(("DELETE", key.on_delete))
            if (columns is None or key.referenced in columns) and key.on_update in _CASCADING:
                rules.append(("UPDATE", key.on_update))
            for event, rule in rules:
                if rule == "SET DEFAULT" or (event, rule) == ("UPDATE", "CASCADE"):
                    return (f"a foreign key of {key.child} ON {event} {rule} reaches it "
                            f"from {parent}: which rows it changes, no count shows")
                if key.child in reached:
                    continue
                reached[key.child] = Reached(key.child,
                                             None if rule == "CASCADE" else key.column)
                # Its rows deleted cascade on; its key nulled is an update of that column.
                todo.append((key.child, rule == "CASCADE",
                             frozenset() if rule == "CASCADE" else frozenset({key.column.lower()})))
    return list(reached.values())


def triggers_query(tables: list[Target]) -> str:
    """The bodies of the triggers on `tables` (those the session may see)."""
    pairs = ", ".join(f"({literal(t.schema)}, {literal(t.table)})" for t in tables)
    return (f"SELECT EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE, ACTION_STATEMENT FROM "
            "information_schema.TRIGGERS WHERE (EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE) "
            f"IN ({pairs})")


# Where a trigger's body names a table it may write: after these words.
_WRITING = frozenset({TokenType.INTO, TokenType.UPDATE, TokenType.FROM, TokenType.JOIN,
                      TokenType.TABLE})
_NAMES = frozenset({TokenType.VAR, TokenType.IDENTIFIER})


def trigger_tables(rows: list[list[bytes | None]]) -> list[Target] | str:
    """The tables the triggers' bodies name after INTO, UPDATE, FROM, JOIN (read ones
    too: counting a table that does not change costs a count, missing one an effect); or
    why a trigger's body cannot be read (a role without the TRIGGER privilege sees its
    trigger, its body NULL: where it writes, a cascade from there, is not known)."""
    found: list[Target] = []
    for schema_name, table, body in rows:
        schema = (schema_name or b"").decode()
        where = f"{schema}.{(table or b'').decode()}"
        if body is None:
            return (f"a trigger on {where} runs a body the session's role may not read: "
                    "what it writes is not known")
        try:
            tokens = _DIALECT.tokenize(body.decode())
        except SqlglotError:
            return f"a trigger on {where} has a body that could not be read"
        for at, token in enumerate(tokens[:-1]):
            if token.token_type not in _WRITING or tokens[at + 1].token_type not in _NAMES:
                continue
            first = tokens[at + 1].text
            qualified = (at + 3 < len(tokens) and tokens[at + 2].token_type == TokenType.DOT
                         and tokens[at + 3].token_type in _NAMES)
            found.append(Target(first, tokens[at + 3].text) if qualified
                         else Target(schema, first))
    return list(dict.fromkeys(found))


def not_transactional(catalog: Catalog, tables: list[Target]) -> str | None:
    for table in tables:
        engine = catalog.engines.get(table)
        if engine is not None and engine.lower() not in ("innodb", "sequence"):
            return (f"{table} is stored by {engine}, which cannot roll a write back: its "
                    "effect could only be measured by doing it")
    return None


def reading_query(reached: list[Reached]) -> str:
    """The session's handler counters, and the count of each table a cascade reaches."""
    columns = [f"(SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE "
               f"VARIABLE_NAME = '{counter}')" for counter in _COUNTERS]
    for r in reached:
        table = name(r.target.schema, r.target.table)
        where = "" if r.column is None else (
            " WHERE `" + r.column.replace("`", "``") + "` IS NULL")
        columns.append(f"(SELECT COUNT(*) FROM {table}{where})")
    return "SELECT " + ", ".join(columns)


def size_query(target: Target) -> str:
    return (f"SELECT COUNT(*) FROM (SELECT 1 FROM "
            f"{name(target.schema, target.table)} LIMIT {COUNT_CAP + 1}) AS x")


def reading(rows: list[list[bytes | None]]) -> list[int]:
    (row,) = rows
    return [int(v or 0) for v in row]


def difference(before: list[int], after: list[int], written: list[Target],
               reached: list[Reached], sizes: dict[Target, int | None]) -> Effect:
    """The effect between two readings: each table a cascade or trigger reached, by its
    count; the counters' rest charged to the written tables (each, where a multi-table
    write names several: more than it did, never less)."""
    inserted, updated, deleted = (a - b for a, b in zip(after[:3], before[:3], strict=True))
    tables: list[TableEffect] = []
    for r, b, a in zip(reached, before[3:], after[3:], strict=True):
        if a == b:
            continue
        nulled = r.column is not None
        change: TableEffect = {
            "table": str(r.target), "inserted": max(a - b, 0) if not nulled else 0,
            "updated": a - b if nulled else 0, "deleted": 0 if nulled else max(b - a, 0),
            "table_rows": b if not nulled else sizes.get(r.target)}
        tables.append(change)
        if r.trigger:  # the counters saw it too
            inserted -= change["inserted"]
            deleted -= change["deleted"]
    if inserted > 0 or updated > 0 or deleted > 0:
        tables[:0] = [{"table": str(t), "inserted": max(inserted, 0), "updated": updated,
                       "deleted": max(deleted, 0), "table_rows": sizes.get(t)}
                      for t in written]
    return measured(tables, [str(t) for t in written])
