"""What a SQL text does to the names the PostgreSQL front owns (pure: no I/O).

The database keeps prepared statements and portals in namespaces SQL shares with the
protocol: `EXECUTE`, `DEALLOCATE`, `PREPARE` name statements, `DECLARE`, `FETCH`, `MOVE`,
`CLOSE` name portals (cursors). The front prepares and binds every protocol statement
under a name of its own (`tollgate_s<N>`, `tollgate_p<N>`), so a client's SQL must never
name one: it would run, replace or drop a statement under a decision taken for another
text. `read` finds every such name in the statements the SQL interpreter read (both
lexings, nested ones too: `EXPLAIN EXECUTE`, `CREATE TABLE AS EXECUTE`), by PostgreSQL's
own parser, and what drops whole namespaces (`DEALLOCATE ALL`, `CLOSE ALL`,
`DISCARD ALL`), which the front's maps must follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from pglast import parser as pg_parser

# The prefix of every name the front gives the database; names compared case-blind,
# which refuses more than the database's own comparison, never less.
PREFIX = "tollgate_"
# The interpreter's kinds of statement that can name a statement or portal (cursors,
# DEALLOCATE, FETCH, MOVE and CLOSE are "other"); EXPLAIN and CREATE TABLE AS nest theirs.
_KINDS = frozenset({"prepare", "execute", "discard", "other"})
# Node -> its field naming a statement (PrepareStmt ...) or a portal (FetchStmt ...).
_NAMED = {"PrepareStmt": "name", "ExecuteStmt": "name", "DeallocateStmt": "name",
          "DeclareCursorStmt": "portalname", "FetchStmt": "portalname",
          "ClosePortalStmt": "portalname"}


@dataclass(frozen=True, slots=True)
class Use:
    """The names a text uses, and whether it drops every prepared statement or portal.
    `problem`: a statement whose names cannot be read (the caller refuses it)."""

    names: frozenset[str] = frozenset()
    drops_statements: bool = False
    drops_portals: bool = False
    problem: str | None = None

    @property
    def owned(self) -> list[str]:
        """The names it uses that are the front's own."""
        return sorted(n for n in self.names if n.lower().startswith(PREFIX))


def read(meaning: Any) -> Use:
    """The names used by the statements of an interpreter's reading (`input.sql`)."""
    statements = meaning.get("statements") if isinstance(meaning, dict) else None
    texts = {s["text"] for s in statements or () if s.get("kind") in _KINDS}
    names: set[str] = set()
    drops_statements = drops_portals = False
    for text in sorted(texts):
        try:
            tree = orjson.loads(pg_parser.parse_sql_json(text))
        except (pg_parser.ParseError, orjson.JSONDecodeError):
            return Use(problem=f"which prepared statement or cursor {text[:60]!r} names "
                       "cannot be read")
        for node, fields in _nodes(tree):
            if node == "DeallocateStmt" and fields.get("isall"):
                drops_statements = True
            elif node == "ClosePortalStmt" and not fields.get("portalname"):
                drops_portals = True
            elif node == "DiscardStmt" and fields.get("target") == "DISCARD_ALL":
                drops_statements = drops_portals = True
            elif node in _NAMED and fields.get(_NAMED[node]):
                names.add(fields[_NAMED[node]])
    return Use(frozenset(names), drops_statements, drops_portals)


def _nodes(tree: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every node of a parse tree (JSON), as (type, fields)."""
    stack = [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, dict) and key[:1].isupper():
                    yield key, item
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
