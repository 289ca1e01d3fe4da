"""What a SQL text does to the names the PostgreSQL front owns (pure: no I/O).

The database keeps prepared statements and portals in namespaces SQL shares with the
protocol: `EXECUTE`, `DEALLOCATE`, `PREPARE` name statements, `DECLARE`, `FETCH`, `MOVE`,
`CLOSE` name portals (cursors). The front prepares every protocol statement under a
name of its own (`tollgate_s<N>`), so a client's SQL must never name one: it would run,
replace or drop a statement under a decision taken for another text. Portals keep the
client's names (a driver's cursor moves its protocol portal with SQL's MOVE: asyncpg),
and the front keeps the map of them: what each runs, under which decision. `read` finds
every name in the statements the SQL interpreter read (both lexings, nested ones too:
`EXPLAIN EXECUTE`, `CREATE TABLE AS EXECUTE`), by PostgreSQL's own parser: the cursors
a text declares (which the map gains), fetches or moves (which must be in it), closes,
and what drops whole namespaces (`DEALLOCATE ALL`, `CLOSE ALL`, `DISCARD ALL`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from pglast import parser as pg_parser

from extproc.interpret.sql.pg_parse import parse_json

# The prefix of every name the front gives the database; names compared case-blind,
# which refuses more than the database's own comparison, never less.
PREFIX = "tollgate_"
# The interpreter's kinds of statement that can name a statement or portal (DECLARE,
# DEALLOCATE, FETCH and MOVE are "other"); EXPLAIN and CREATE TABLE AS nest theirs.
_KINDS = frozenset({"prepare", "execute", "discard", "close", "other"})
# Node -> its field naming a statement (PrepareStmt ...) or a portal (FetchStmt ...).
_NAMED = {"PrepareStmt": "name", "ExecuteStmt": "name", "DeallocateStmt": "name",
          "DeclareCursorStmt": "portalname", "FetchStmt": "portalname",
          "ClosePortalStmt": "portalname"}
_HOLD = 0x20  # CURSOR_OPT_HOLD: the cursor outlives its transaction's commit


@dataclass(frozen=True, slots=True)
class Use:
    """The names a text uses, and whether it drops every prepared statement or portal.
    `declared`: the cursors it declares, in order, and whether each is WITH HOLD;
    `fetched`: those it fetches from or moves; `closed`: those it closes;
    `deallocated`, `executed`, `prepared`: the prepared statements it deallocates,
    executes, prepares (SQL's PREPARE), by name.
    `problem`: a statement whose names cannot be read (the caller refuses it)."""

    names: frozenset[str] = frozenset()
    drops_statements: bool = False
    drops_portals: bool = False
    problem: str | None = None
    declared: tuple[tuple[str, bool], ...] = ()
    fetched: frozenset[str] = frozenset()
    closed: frozenset[str] = frozenset()
    deallocated: frozenset[str] = frozenset()
    executed: frozenset[str] = frozenset()
    prepared: frozenset[str] = frozenset()

    @property
    def owned(self) -> list[str]:
        """The names it uses that are the front's own."""
        return sorted(n for n in self.names if n.lower().startswith(PREFIX))


def read(meaning: Any) -> Use:
    """The names used by the statements of an interpreter's reading (`input.sql`)."""
    statements = meaning.get("statements") if isinstance(meaning, dict) else None
    texts = {s["text"] for s in statements or () if s.get("kind") in _KINDS}
    named: dict[str, set[str]] = {node: set() for node in _NAMED}
    declared: dict[str, bool] = {}
    drops_statements = drops_portals = False
    for text in sorted(texts):
        try:
            tree = orjson.loads(parse_json(text))
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
                named[node].add(fields[_NAMED[node]])
                if node == "DeclareCursorStmt":
                    declared[fields["portalname"]] = bool(fields.get("options", 0) & _HOLD)
    return Use(frozenset().union(*named.values()), drops_statements, drops_portals,
               declared=tuple(declared.items()),
               fetched=frozenset(named["FetchStmt"]),
               closed=frozenset(named["ClosePortalStmt"]),
               deallocated=frozenset(named["DeallocateStmt"]),
               executed=frozenset(named["ExecuteStmt"]),
               prepared=frozenset(named["PrepareStmt"]))


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


def renamed(text: str, upstream: str) -> str | None:
    """A text that is one `EXECUTE name ...`, `DEALLOCATE [PREPARE] name` or `PREPARE
    name ...` statement (the caller knows it is one), with the name replaced by
    `upstream` (quoted) and every other character kept; None for any other. The name is
    the token after the keywords, by PostgreSQL's scanner (its offsets count
    characters)."""
    try:
        tokens = [t for t in pg_parser.scan(text) if not t.name.endswith("_COMMENT")]
    except pg_parser.ParseError:
        return None
    words = [t.name for t in tokens[:2]]
    at = 2 if words == ["DEALLOCATE", "PREPARE"] else 1 if words[:1] in (
        ["EXECUTE"], ["DEALLOCATE"], ["PREPARE"]) else 0
    if not at or len(tokens) <= at:
        return None
    name = tokens[at]
    return f'{text[:name.start]}"{upstream}"{text[name.end + 1:]}'
