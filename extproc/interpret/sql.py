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
  SCHEMA. A parent's `tables` and `functions` include those of everything nested in it.
- `kind`: select insert update delete merge drop truncate alter create grant revoke copy do
  call set show explain prepare execute transaction vacuum analyze lock notify comment reindex
  cluster refresh discard reset load, plus pragma and attach (sqlite); "other" for anything
  else — including cursors (DECLARE/FETCH/CLOSE), CHECKPOINT, and any statement sqlglot could
  only read as an opaque `Command`, so a policy can deny what nobody understood.
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
- `effects`: what running the statement does, whatever its kind (read, write, destroy, server,
  privilege, configuration, dynamic, ...: see sql_effects.py); `bounded`: for a write, whether
  the rows it changes are limited (false: DELETE/UPDATE whose WHERE is missing or bounds
  nothing, MERGE ON true, an upsert from a query, CALL; see _pg_bounds); null otherwise.
- A text with a backslash is read as the server's escaping settings allow it both ways
  (standard_conforming_strings, NO_BACKSLASH_ESCAPES), and the statements of both readings
  are listed (see _escaping_strings).
- `error`: a one-line message when the text does not parse; `statements` is then [] and the
  caller fails closed. Empty or comment-only text is no statement and no error.

Unicode spaces (U+00A0, U+2028, U+3000, ...) are read as spaces and zero-width characters as
nothing, as a client that normalises them would send the text; when that reading and the
literal one both parse but mean different things, the answer is an error (see `_read`). A NUL
byte is an error (PostgreSQL's parser would stop at it). The text is not parsed in the bodies
of DO blocks and of functions given as strings: kind "do" and "create function" are what a
policy has to judge there.

Speed: PostgreSQL is parsed in C and walked as JSON (~30 µs a typical statement); sqlglot is
pure Python (~400 µs). Texts up to CACHE_MAX_CHARS are cached per (text, dialect).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson
from pglast import ast as pg_ast
from pglast import enums as pg_enums
from pglast import parser as pg_parser
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, Dialects, NormalizationStrategy
from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError
from sqlglot.tokens import Token, Tokenizer, TokenType

from extproc.interpret.sql_effects import IDENTITY_SETTINGS, LEXING_SETTINGS, classify

__all__ = ["DIALECTS", "MAX_TEXT", "analyze"]

DIALECTS: frozenset[str] = frozenset({"postgres"} | {d.value for d in Dialects if d.value})
MAX_TEXT = 2000
# Agents repeat their queries; texts up to this size are answered from an LRU cache.
CACHE_MAX_CHARS = 4096
CACHE_SIZE = 1024
_PAUSE_GC_CHARS = 65536

# sqlglot logs a warning for every statement it falls back to reading as a Command; those
# become kind "other" here, so the warning is noise on the request path.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

# Relations (pg_class entries): DROP/COMMENT/CREATE/ALTER of these name tables.
_RELATION_OBJECTS = frozenset(
    {"table", "view", "materialized_view", "foreign_table", "sequence", "index"}
)
# Objects that belong to a table named before them: DROP TRIGGER t ON tbl, COMMENT ON COLUMN.
_TABLE_MEMBER_OBJECTS = frozenset({"column", "trigger", "policy", "rule", "constraint"})
_NO_SCOPE: frozenset[str] = frozenset()


class _Unparsable(Exception):
    """The text is not SQL the parser can read; the message is one line."""


@dataclass(slots=True)
class _Entry:
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
    # Effects only the back-end's tree shows (sql_effects.classify adds the rest).
    effects: set[str] = field(default_factory=set)
    # For a write of rows: whether the rows are limited (see _Entry.as_dict).
    bounded: bool | None = None
    # sqlglot read part of it as an opaque Command: report it as "other", never as harmless.
    opaque: bool = False

    def as_dict(self) -> dict[str, Any]:
        opaque = self.opaque
        kind = "other" if opaque else self.kind
        obj = None if opaque else self.object
        actions = list(dict.fromkeys(self.alter_actions))
        effects = classify(kind, obj, actions, self.functions, self.effects)
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
            "effects": effects,
            "bounded": bounded,
        }


class _Collector:
    """Statement entries in source order, each parent before the statements inside it.

    Names go to the innermost open entry; closing an entry folds its names (and opacity) into
    its parent, so a statement's description covers everything that runs when it runs.
    """

    __slots__ = ("_open", "entries")

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self._open: list[_Entry] = []

    @property
    def current(self) -> _Entry:
        return self._open[-1]

    def open(self, kind: str, obj: str | None, text: str) -> _Entry:
        entry = _Entry(kind, obj, text, nested=bool(self._open))
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


def _cte_scopes(names: list[str], recursive: bool, scope: frozenset[str]) -> list[frozenset[str]]:
    """The CTE names each CTE body can see: all of them if RECURSIVE, else the earlier ones.

    A name a body cannot see as a CTE is a real table there, so it must stay in `tables`.
    """
    if recursive:
        return [scope.union(names)] * len(names)
    return [scope.union(names[:i]) for i in range(len(names))]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _one_line(message: str, limit: int = 300) -> str:
    return " ".join(message.split())[:limit]


# --- postgres: pglast (PostgreSQL's own parser), walked over its JSON tree ------------------
#
# parse_sql_json + orjson is ~8x faster than pglast's Python AST objects (15 µs vs 128 µs for
# a join). In that JSON a Node* field is wrapped ({"RangeVar": {...}}) but a field of a
# specific struct type is not ({"relation": {"relname": ...}}), so the struct type of each such
# field is read once from pglast.ast's slot declarations.


def _pg_typed_fields() -> dict[str, dict[str, str]]:
    nodes = {
        name
        for name, cls in vars(pg_ast).items()
        if inspect.isclass(cls) and issubclass(cls, pg_ast.Node)
    }
    typed: dict[str, dict[str, str]] = {}
    for name in nodes:
        slots = getattr(pg_ast, name).__slots__
        for slot, info in slots.items() if isinstance(slots, dict) else ():
            c_type = getattr(info, "c_type", "")
            if c_type.endswith("*") and c_type[:-1] in nodes and c_type[:-1] != "Node":
                typed.setdefault(name, {})[slot] = c_type[:-1]
    return typed


_PG_TYPED = _pg_typed_fields()
_NO_TYPED_FIELDS: dict[str, str] = {}
_PG_STATEMENTS = frozenset(
    name
    for name in vars(pg_ast)
    if name.endswith("Stmt")
    and name
    not in {"SelectStmt", "RawStmt", "SetOperationStmt", "ReturnStmt", "PLAssignStmt",
            "ReplicaIdentityStmt"}
)
_PG_DML = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})
# Fields whose statement is listed as a nested entry even when it is a plain SELECT.
_PG_WRAPPERS = frozenset(
    {("ExplainStmt", "query"), ("PrepareStmt", "query"), ("CreateTableAsStmt", "query"),
     ("DeclareCursorStmt", "query"), ("ViewStmt", "query"), ("CopyStmt", "query"),
     ("RuleStmt", "actions")}
)
# Nodes with nothing a policy needs below them.
_PG_LEAVES = frozenset(
    {"String", "Integer", "Float", "Boolean", "BitString", "A_Const", "ColumnRef", "ParamRef",
     "A_Star"}
)
_PG_OBJECT_NAMES = {
    "MATVIEW": "materialized_view", "TABCONSTRAINT": "constraint",
    "DOMCONSTRAINT": "domain_constraint", "FDW": "foreign_data_wrapper",
    "FOREIGN_SERVER": "server", "OPCLASS": "operator_class", "OPFAMILY": "operator_family",
    "LARGEOBJECT": "large_object", "DEFACL": "default_privileges",
    "STATISTIC_EXT": "statistics", "TSCONFIGURATION": "text_search_configuration",
    "TSDICTIONARY": "text_search_dictionary", "TSPARSER": "text_search_parser",
    "TSTEMPLATE": "text_search_template",
}
_PG_OBJECTS = {
    member.name: _PG_OBJECT_NAMES.get(member.name[7:], member.name[7:].lower())
    for member in pg_enums.ObjectType
}
_PG_ALTER_ACTIONS = {member.name: _snake(member.name[3:]) for member in pg_enums.AlterTableType}

# Statement node -> (kind, object). An object of None is read from _PG_OBJECT_FIELD if listed.
_PG_KINDS: dict[str, tuple[str, str | None]] = {
    "SelectStmt": ("select", None), "InsertStmt": ("insert", None),
    "UpdateStmt": ("update", None), "DeleteStmt": ("delete", None),
    "MergeStmt": ("merge", None), "TruncateStmt": ("truncate", "table"),
    "CopyStmt": ("copy", None), "DoStmt": ("do", None), "CallStmt": ("call", None),
    "VariableSetStmt": ("set", None), "ConstraintsSetStmt": ("set", None),
    "VariableShowStmt": ("show", None), "ExplainStmt": ("explain", None),
    "PrepareStmt": ("prepare", None), "ExecuteStmt": ("execute", None),
    "TransactionStmt": ("transaction", None), "VacuumStmt": ("vacuum", None),
    "LockStmt": ("lock", None), "ListenStmt": ("notify", None),
    "UnlistenStmt": ("notify", None), "NotifyStmt": ("notify", None),
    "CommentStmt": ("comment", None), "ReindexStmt": ("reindex", None),
    "ClusterStmt": ("cluster", None), "RefreshMatViewStmt": ("refresh", None),
    "DiscardStmt": ("discard", None), "LoadStmt": ("load", None),
    "GrantStmt": ("grant", None), "GrantRoleStmt": ("grant", None),
    "DropStmt": ("drop", None), "DropdbStmt": ("drop", "database"),
    "DropRoleStmt": ("drop", "role"), "DropTableSpaceStmt": ("drop", "tablespace"),
    "DropOwnedStmt": ("drop", "owned"), "DropUserMappingStmt": ("drop", "user_mapping"),
    "DropSubscriptionStmt": ("drop", "subscription"),
    "CreateStmt": ("create", "table"), "CreateForeignTableStmt": ("create", "foreign_table"),
    "ImportForeignSchemaStmt": ("create", "foreign_table"),
    "CreateTableAsStmt": ("create", None), "ViewStmt": ("create", "view"),
    "IndexStmt": ("create", "index"), "CreateSchemaStmt": ("create", "schema"),
    "CreateSeqStmt": ("create", "sequence"), "CreatedbStmt": ("create", "database"),
    "CreateRoleStmt": ("create", "role"), "CreateFunctionStmt": ("create", "function"),
    "CreateExtensionStmt": ("create", "extension"), "CreateTrigStmt": ("create", "trigger"),
    "CreateEventTrigStmt": ("create", "event_trigger"), "CreatePolicyStmt": ("create", "policy"),
    "RuleStmt": ("create", "rule"), "DefineStmt": ("create", None),
    "CompositeTypeStmt": ("create", "type"), "CreateEnumStmt": ("create", "type"),
    "CreateRangeStmt": ("create", "type"), "CreateDomainStmt": ("create", "domain"),
    "CreateCastStmt": ("create", "cast"), "CreateConversionStmt": ("create", "conversion"),
    "CreateFdwStmt": ("create", "foreign_data_wrapper"),
    "CreateForeignServerStmt": ("create", "server"),
    "CreateUserMappingStmt": ("create", "user_mapping"),
    "CreatePublicationStmt": ("create", "publication"),
    "CreateSubscriptionStmt": ("create", "subscription"),
    "CreateTableSpaceStmt": ("create", "tablespace"), "CreateAmStmt": ("create", "access_method"),
    "CreateOpClassStmt": ("create", "operator_class"),
    "CreateOpFamilyStmt": ("create", "operator_family"), "CreatePLangStmt": ("create", "language"),
    "CreateTransformStmt": ("create", "transform"), "CreateStatsStmt": ("create", "statistics"),
    "AlterTableStmt": ("alter", None), "RenameStmt": ("alter", None),
    "AlterObjectSchemaStmt": ("alter", None), "AlterOwnerStmt": ("alter", None),
    "AlterFunctionStmt": ("alter", None), "AlterTableMoveAllStmt": ("alter", None),
    "AlterObjectDependsStmt": ("alter", None), "AlterExtensionContentsStmt": ("alter", None),
    "AlterDatabaseStmt": ("alter", "database"), "AlterDatabaseSetStmt": ("alter", "database"),
    "AlterDatabaseRefreshCollStmt": ("alter", "database"), "AlterRoleStmt": ("alter", "role"),
    "AlterRoleSetStmt": ("alter", "role"), "AlterSystemStmt": ("alter", "system"),
    "AlterSeqStmt": ("alter", "sequence"), "AlterDomainStmt": ("alter", "domain"),
    "AlterEnumStmt": ("alter", "type"), "AlterTypeStmt": ("alter", "type"),
    "AlterExtensionStmt": ("alter", "extension"),
    "AlterFdwStmt": ("alter", "foreign_data_wrapper"),
    "AlterForeignServerStmt": ("alter", "server"),
    "AlterUserMappingStmt": ("alter", "user_mapping"), "AlterPolicyStmt": ("alter", "policy"),
    "AlterPublicationStmt": ("alter", "publication"),
    "AlterSubscriptionStmt": ("alter", "subscription"),
    "AlterTableSpaceOptionsStmt": ("alter", "tablespace"),
    "AlterTSConfigurationStmt": ("alter", "text_search_configuration"),
    "AlterTSDictionaryStmt": ("alter", "text_search_dictionary"),
    "AlterOperatorStmt": ("alter", "operator"), "AlterEventTrigStmt": ("alter", "event_trigger"),
    "AlterCollationStmt": ("alter", "collation"), "AlterStatsStmt": ("alter", "statistics"),
    "AlterOpFamilyStmt": ("alter", "operator_family"),
    "AlterDefaultPrivilegesStmt": ("alter", "default_privileges"),
    "ReassignOwnedStmt": ("alter", "owned"),
}
_PG_OBJECT_FIELD = {
    "DropStmt": "removeType", "CommentStmt": "objtype", "CreateTableAsStmt": "objtype",
    "AlterTableStmt": "objtype", "RenameStmt": "renameType",
    "AlterObjectSchemaStmt": "objectType", "AlterOwnerStmt": "objectType",
    "AlterFunctionStmt": "objtype", "AlterTableMoveAllStmt": "objtype",
    "AlterObjectDependsStmt": "objectType", "AlterExtensionContentsStmt": "objtype",
    "DefineStmt": "kind",
}
_PG_FIXED_ACTIONS = {
    "RenameStmt": "rename", "AlterObjectSchemaStmt": "set_schema",
    "AlterOwnerStmt": "change_owner",
}


def _pg_kind(typ: str, fields: dict[str, Any]) -> tuple[str, str | None]:
    """Kind and object of a statement node; the few that depend on a flag are spelled out."""
    kind, obj = _PG_KINDS.get(typ, ("other", None))
    if typ in _PG_OBJECT_FIELD:
        obj = _PG_OBJECTS.get(fields.get(_PG_OBJECT_FIELD[typ], ""))
    elif typ in ("GrantStmt", "GrantRoleStmt"):
        kind = "grant" if fields.get("is_grant") else "revoke"
    elif typ == "VacuumStmt":
        kind = "vacuum" if fields.get("is_vacuumcmd") else "analyze"
    elif typ == "VariableSetStmt" and fields.get("kind", "").startswith("VAR_RESET"):
        kind = "reset"
    elif typ == "CreateFunctionStmt" and fields.get("is_procedure"):
        obj = "procedure"
    elif typ == "CreateRoleStmt":
        obj = fields.get("stmt_type", "ROLESTMT_ROLE")[9:].lower()
    return kind, obj


def _pg_object_table(obj: str | None, node: Any) -> str | None:
    """The relation a DROP/COMMENT object names: itself, or the table it belongs to."""
    if not isinstance(node, dict) or "List" not in node:
        return None
    parts = [item["String"]["sval"] for item in node["List"].get("items", ()) if "String" in item]
    if obj in _TABLE_MEMBER_OBJECTS:
        parts = parts[:-1]
    elif obj not in _RELATION_OBJECTS:
        return None
    return ".".join(parts) or None


class _PgWalker:
    """Walks pglast's JSON statements, filling a _Collector."""

    __slots__ = ("_text", "out")

    def __init__(self) -> None:
        self.out = _Collector()
        self._text = ""

    def statement(self, node: dict[str, Any], text: str) -> None:
        self._text = text
        self._wrapped(node, _NO_SCOPE, force=True)

    def _wrapped(self, node: Any, scope: frozenset[str], force: bool = False) -> None:
        if isinstance(node, dict):
            for typ, fields in node.items():
                if isinstance(fields, dict):
                    self._node(typ, fields, scope, force, False)

    def _node(
        self, typ: str, fields: dict[str, Any], scope: frozenset[str], force: bool, part: bool
    ) -> None:
        """Walk one node. `force`: list it even if a SELECT; `part`: a struct field of its
        parent (ALTER SYSTEM's SET, CREATE FOREIGN TABLE's CREATE), never a statement of its own.
        """
        if typ in _PG_LEAVES:
            return
        if typ == "RangeVar":
            name, schema = fields.get("relname"), fields.get("schemaname")
            if schema is not None or name not in scope:
                parts = (fields.get("catalogname"), schema, name)
                self.out.current.tables.add(".".join(p for p in parts if p))
            return
        if typ == "FuncCall":
            self.out.current.functions.add(fields["funcname"][-1]["String"]["sval"].lower())
        elif typ == "SelectStmt" and "intoClause" in fields:
            # SELECT ... INTO creates a table: report it as the CREATE TABLE AS it is.
            self.out.open("create", "table", self._text)
            self._node("IntoClause", fields["intoClause"], scope, False, True)
            rest = {key: value for key, value in fields.items() if key != "intoClause"}
            self._node("SelectStmt", rest, scope, True, False)
            self.out.close()
            return
        if force or (typ in _PG_STATEMENTS and not part):
            self._describe(self.out.open(*_pg_kind(typ, fields), self._text), typ, fields)
            self._fields(typ, fields, scope)
            self.out.close()
        else:
            self._fields(typ, fields, scope)

    def _describe(self, entry: _Entry, typ: str, fields: dict[str, Any]) -> None:
        if typ in ("UpdateStmt", "DeleteStmt"):
            entry.has_where = "whereClause" in fields
            entry.bounded = _pg_bounds(fields.get("whereClause"))
        elif typ == "InsertStmt":
            # An upsert from a query may rewrite every row the query returns.
            upsert = (fields.get("onConflictClause") or {}).get("action") == "ONCONFLICT_UPDATE"
            source = (fields.get("selectStmt") or {}).get("SelectStmt", {})
            entry.bounded = not (upsert and "valuesLists" not in source)
        elif typ == "MergeStmt":
            # Changes only the rows its ON condition matches, unless that bounds nothing
            # or a WHEN NOT MATCHED BY SOURCE clause changes the rows nothing matches.
            clauses = [c.get("MergeWhenClause", {}) for c in fields.get("mergeWhenClauses", ())]
            entry.bounded = not any(
                c.get("commandType") in _PG_ROW_CHANGES
                and (c.get("matchKind") == "MERGE_WHEN_NOT_MATCHED_BY_SOURCE"
                     or not _pg_bounds(fields.get("joinCondition")))
                for c in clauses
            )
        elif typ == "CallStmt":
            entry.bounded = False  # a procedure may change any row
        elif typ == "CopyStmt":
            entry.effects.add("write" if fields.get("is_from") else "read")
            entry.bounded = True if fields.get("is_from") else None
            if fields.get("is_program"):
                entry.program = fields.get("filename")
            if "filename" in fields:
                entry.effects.add("server")  # a file or a program on the server, not STDIN
        elif typ == "VariableSetStmt":
            entry.effects.update(_setting_effects(fields.get("name", "")))
        elif typ in ("AlterDatabaseSetStmt", "AlterRoleSetStmt"):
            entry.effects.add("configuration")
        elif typ == "AlterTableStmt":
            entry.alter_actions = [
                _PG_ALTER_ACTIONS.get(cmd["AlterTableCmd"].get("subtype", ""), "other")
                for cmd in fields.get("cmds", ())
                if "AlterTableCmd" in cmd
            ]
        elif typ in _PG_FIXED_ACTIONS:
            entry.alter_actions = [_PG_FIXED_ACTIONS[typ]]
        if typ in ("DropStmt", "CommentStmt"):
            objects = fields.get("objects", ()) if typ == "DropStmt" else (fields.get("object"),)
            for node in objects:
                table = _pg_object_table(entry.object, node)
                if table:
                    entry.tables.add(table)

    def _fields(self, typ: str, fields: dict[str, Any], scope: frozenset[str]) -> None:
        with_clause = fields.get("withClause")
        if with_clause:
            ctes = [item["CommonTableExpr"] for item in with_clause.get("ctes", ())]
            names = [cte["ctename"] for cte in ctes]
            bodies = _cte_scopes(names, bool(with_clause.get("recursive")), scope)
            for cte, body_scope in zip(ctes, bodies, strict=True):
                self._wrapped(cte.get("ctequery"), body_scope)
            scope = scope.union(names)
        typed = _PG_TYPED.get(typ, _NO_TYPED_FIELDS)
        for key, value in fields.items():
            if key == "withClause":
                continue
            if isinstance(value, list):
                force = (typ, key) in _PG_WRAPPERS
                for item in value:
                    self._wrapped(item, scope, force)
            elif isinstance(value, dict):
                child = typed.get(key)
                if child is None:
                    self._wrapped(value, scope, (typ, key) in _PG_WRAPPERS)
                else:
                    target = key == "relation" and typ in _PG_DML
                    self._node(child, value, _NO_SCOPE if target else scope, False, True)


_PG_ROW_CHANGES = frozenset({"CMD_UPDATE", "CMD_DELETE"})


def _setting_effects(name: str) -> set[str]:
    """What setting `name` changes beyond the session: how texts lex, or who runs them."""
    name = name.lower()
    if name in LEXING_SETTINGS:
        return {"configuration"}
    if name in IDENTITY_SETTINGS:
        return {"privilege"}
    return set()


def _pg_bounds(where: Any) -> bool:
    """Whether a WHERE limits the rows it keeps: it refers to a column and is no evident
    tautology. `true`, `1 = 1`, `$1`, `c = c` and an OR with such a branch bound nothing
    (an AND is bounded by any of its terms); WHERE CURRENT OF is one row. A heuristic for
    the constant WHERE: a WHERE that is always true for a reason needing the data is not
    seen (`c IS NULL OR c IS NOT NULL`)."""
    if not isinstance(where, dict) or len(where) != 1:
        return False
    ((typ, fields),) = where.items()
    if typ == "BoolExpr":
        args = fields.get("args", ())
        if fields.get("boolop") == "AND_EXPR":
            return any(map(_pg_bounds, args))
        if fields.get("boolop") == "OR_EXPR":
            return all(map(_pg_bounds, args))
    elif typ == "CurrentOfExpr":
        return True
    elif typ == "A_Expr" and _pg_same(fields.get("lexpr"), fields.get("rexpr")):
        return False
    return _pg_has_column(where)


def _pg_has_column(node: Any) -> bool:
    if isinstance(node, dict):
        return "ColumnRef" in node or any(map(_pg_has_column, node.values()))
    if isinstance(node, list):
        return any(map(_pg_has_column, node))
    return False


def _pg_same(left: Any, right: Any) -> bool:
    """The same expression, wherever written (locations aside)."""
    if isinstance(left, dict) and isinstance(right, dict):
        keys = left.keys() - {"location"}
        return keys == right.keys() - {"location"} and all(
            _pg_same(left[k], right[k]) for k in keys)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_pg_same, left, right))
    return left == right and left is not None


def _read_postgres(text: str) -> list[_Entry]:
    source = text.encode()
    try:
        tree = orjson.loads(pg_parser.parse_sql_json(text))
    except pg_parser.ParseError as error:
        raise _Unparsable(_one_line(str(error))) from None
    except orjson.JSONDecodeError:
        raise _Unparsable("statement nests too deeply to analyse") from None
    walker = _PgWalker()
    for raw in tree.get("stmts", ()):
        start = raw.get("stmt_location", 0)
        length = raw.get("stmt_len", 0) or len(source) - start
        walker.statement(raw["stmt"], source[start : start + length].decode().strip())
    return walker.out.entries


# --- every other dialect: sqlglot ----------------------------------------------------------

_GLOT_KINDS: dict[type, str] = {
    exp.Query: "select", exp.Values: "select", exp.Insert: "insert", exp.Update: "update",
    exp.Delete: "delete", exp.Merge: "merge", exp.Drop: "drop", exp.TruncateTable: "truncate",
    exp.Alter: "alter", exp.Create: "create", exp.Grant: "grant", exp.Revoke: "revoke",
    exp.Copy: "copy", exp.LoadData: "copy", exp.Set: "set", exp.Use: "set",
    exp.AlterSession: "set", exp.Show: "show", exp.Describe: "explain",
    exp.Transaction: "transaction", exp.Commit: "transaction", exp.Rollback: "transaction",
    exp.EndStatement: "transaction", exp.Pragma: "pragma", exp.Attach: "attach",
    exp.Analyze: "analyze", exp.Refresh: "refresh", exp.Comment: "comment",
    exp.Execute: "execute", exp.Command: "other", exp.Detach: "other", exp.Kill: "other",
    exp.Install: "other", exp.Summarize: "other", exp.Declare: "other", exp.Cache: "other",
    exp.Uncache: "other", exp.Export: "other",
}
# Kinds that are not listed as nested entries when found inside another statement
# (a subquery is part of its statement; SET/SHOW/... cannot run nested).
_GLOT_NOT_NESTED = frozenset({"select", "set", "show", "explain", "transaction"})
# The argument that names the object of a DDL statement: a table only for relation objects.
_GLOT_TARGET = {
    exp.Drop: "tables", exp.TruncateTable: "expressions", exp.Create: "this", exp.Alter: "this",
    exp.Comment: "this", exp.Refresh: "this", exp.Use: "this", exp.Execute: "this",
}
_GLOT_DML = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
_GLOT_STATEMENT_SQL = (exp.Query, exp.DML, exp.Create, exp.Command)
_NOT_CALLS = (exp.Cast, exp.Case)


@functools.cache
def _glot_class_kind(cls: type) -> str | None:
    return next((_GLOT_KINDS[base] for base in cls.__mro__ if base in _GLOT_KINDS), None)


def _glot_kind(node: exp.Expr) -> tuple[str, str | None] | None:
    """Kind and object of a statement node, or None if the node is not a statement."""
    kind = _glot_class_kind(type(node))
    if kind is None:
        return None
    obj = None
    if isinstance(node, (exp.Drop, exp.Create, exp.Alter, exp.Comment)):
        obj = str(node.args.get("kind") or "").lower().replace(" ", "_") or None
        properties = node.args.get("properties")
        if obj == "view" and (
            node.args.get("materialized")
            or (properties and any(isinstance(p, exp.MaterializedProperty) for p in properties))
        ):
            obj = "materialized_view"
    elif isinstance(node, exp.TruncateTable):
        obj = "database" if node.args.get("is_database") else "table"
    elif isinstance(node, exp.Describe) and not isinstance(node.this, _GLOT_STATEMENT_SQL):
        kind = "show"
    return kind, obj


# What MySQL and others drop under names of their own: a constraint, as PostgreSQL says.
_GLOT_CONSTRAINTS = frozenset({"constraint", "foreign key", "primary key", "check", "unique"})


def _glot_action(action: exp.Expr) -> str:
    """An ALTER action in the names pglast's AlterTableType gives PostgreSQL's."""
    if isinstance(action, exp.ColumnDef):
        return "add_column"
    if isinstance(action, exp.Drop):
        kind = str(action.args.get("kind") or "column").lower()
        return "drop_constraint" if kind in _GLOT_CONSTRAINTS else f"drop_{kind.replace(' ', '_')}"
    if isinstance(action, exp.DropPrimaryKey):
        return "drop_constraint"
    if isinstance(action, (exp.AlterRename, exp.RenameColumn)):
        return "rename"
    if isinstance(action, exp.ModifyColumn):
        return "alter_column_type"
    if isinstance(action, exp.AlterColumn):
        args = action.args
        if args.get("dtype"):
            return "alter_column_type"
        if args.get("allow_null") is not None:
            return "drop_not_null" if args.get("drop") else "set_not_null"
        if args.get("default") or args.get("drop"):
            return "column_default"
        return "rename" if args.get("rename_to") else "alter_column"
    if isinstance(action, exp.Command):
        return "other"
    return _snake(type(action).__name__)


_STDIO = frozenset({"STDIN", "STDOUT"})
# Scopes of a SET that outlive the session.
_GLOT_SERVER_SCOPES = frozenset({"GLOBAL", "PERSIST", "PERSIST_ONLY"})


def _glot_bounds(where: exp.Expr) -> bool:
    """As _pg_bounds, on sqlglot's tree."""
    where = where.unnest()
    if isinstance(where, exp.And):
        return _glot_bounds(where.this) or _glot_bounds(where.expression)
    if isinstance(where, exp.Or):
        return _glot_bounds(where.this) and _glot_bounds(where.expression)
    if isinstance(where, exp.Binary) and where.this == where.expression:
        return False
    return where.find(exp.Column) is not None


def _glot_setting_effects(item: exp.Expr) -> set[str]:
    """The effects of one SET item: a scope beyond the session, or a setting that does."""
    kind = str(item.args.get("kind") or "").upper()
    if kind == "NAMES" or kind.startswith("CHARACTER"):
        return {"configuration"}
    target = item.this.this if isinstance(item.this, exp.EQ) else item.this
    if kind in _GLOT_SERVER_SCOPES or (
        isinstance(target, exp.SessionParameter)
        and str(target.args.get("kind") or "").upper() in _GLOT_SERVER_SCOPES
    ):
        return {"configuration"}
    return _setting_effects(target.name if isinstance(target, exp.Expr) else "")


def _glot_execute_effects(node: exp.Execute) -> set[str]:
    """T-SQL's EXEC: of a string or a variable (`EXEC('...')`, `EXEC(@s)`) or through
    sp_executesql it runs SQL no parser here sees; xp_* procedures reach the server's OS."""
    target = node.this
    if isinstance(node, exp.ExecuteSql) or not isinstance(target, exp.Table):
        return {"dynamic"}
    name = target.name.lower()
    if name == "sp_executesql":
        return {"dynamic"}
    if name.startswith(("xp_", "sp_oa")):
        return {"server"}
    return {"write"}


class _Folding(Enum):
    POSTGRES = "postgres"  # unquoted lower-cased, quoted kept
    INSENSITIVE = "insensitive"  # every name lower-cased
    UPPER = "upper"  # unquoted names are upper-case: a quoted all-upper name is the same name


@dataclass(frozen=True, slots=True)
class _GlotDialect:
    dialect: Dialect
    folding: _Folding
    # MySQL runs the text inside /*! ... */ comments.
    executable_comments: bool
    # MySQL with sql_mode NO_BACKSLASH_ESCAPES reads a backslash in a string as itself.
    literal_backslashes: type[Tokenizer] | None


@functools.cache
def _glot_dialect(name: str) -> _GlotDialect:
    dialect = Dialect.get_or_raise(name)
    strategy = dialect.NORMALIZATION_STRATEGY
    if strategy in (
        NormalizationStrategy.CASE_INSENSITIVE, NormalizationStrategy.CASE_INSENSITIVE_UPPERCASE
    ):
        folding = _Folding.INSENSITIVE
    elif strategy is NormalizationStrategy.UPPERCASE:
        folding = _Folding.UPPER
    else:
        folding = _Folding.POSTGRES
    literal = None
    if isinstance(dialect, MySQL):
        base = dialect.tokenizer_class
        literal = type(f"{type(dialect).__name__}LiteralBackslashes", (base,), {
            "STRING_ESCAPES": [e for e in base.STRING_ESCAPES if e != "\\"],
            "BYTE_STRING_ESCAPES": [e for e in base.BYTE_STRING_ESCAPES if e != "\\"],
        })
    return _GlotDialect(dialect, folding, isinstance(dialect, MySQL), literal)


class _GlotWalker:
    """Walks sqlglot expressions, filling a _Collector."""

    __slots__ = ("_folding", "_text", "out")

    def __init__(self, folding: _Folding) -> None:
        self.out = _Collector()
        self._folding = folding
        self._text = ""

    def statement(self, node: exp.Expr, text: str) -> None:
        self._text = text
        self._expr(node, _NO_SCOPE, force=True)

    def _fold(self, part: exp.Expr) -> str:
        name = part.name
        if not (isinstance(part, exp.Identifier) and part.quoted):
            return name.lower()
        if self._folding is _Folding.INSENSITIVE or (
            self._folding is _Folding.UPPER and name == name.upper()
        ):
            return name.lower()
        return name

    def _expr(self, node: exp.Expr, scope: frozenset[str], force: bool = False) -> None:
        parent = node.parent
        if isinstance(node, exp.Command) and not force:
            self.out.current.opaque = True
            return
        if isinstance(node, exp.Table):
            self._table(node, scope)
            return
        if isinstance(parent, exp.Alter) and isinstance(node, (exp.Drop, exp.AlterRename)):
            return  # the column/constraint/new name of an ALTER action, not a table
        if isinstance(node, exp.Func) and not (
            isinstance(node, _NOT_CALLS)
            or (isinstance(node, exp.If) and isinstance(parent, exp.Case))
        ):
            name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
            self.out.current.functions.add(name.lower())
        if isinstance(node, exp.Select) and node.args.get("into"):
            # SELECT ... INTO creates a table: report it as the CREATE TABLE AS it is.
            self.out.open("create", "table", self._text)
            self._expr(node.args["into"], scope)
            self.out.open("select", None, self._text)
            self._args(node, scope, skip=("into",))
            self.out.close()
            self.out.close()
            return
        described = _glot_kind(node)
        # MERGE's WHEN ... THEN UPDATE/INSERT and ALTER's actions are clauses, not statements.
        is_part = isinstance(parent, (exp.When, exp.Alter))
        if described and (force or (described[0] not in _GLOT_NOT_NESTED and not is_part)):
            entry = self.out.open(*described, self._text)
            self._describe(entry, node)
            skip = ()
            if entry.object not in _RELATION_OBJECTS:
                skip = tuple(arg for cls, arg in _GLOT_TARGET.items() if isinstance(node, cls))
            self._args(node, scope, skip=skip)
            self.out.close()
        else:
            self._args(node, scope)

    def _describe(self, entry: _Entry, node: exp.Expr) -> None:
        if isinstance(node, exp.Command):
            entry.opaque = True
        elif isinstance(node, (exp.Update, exp.Delete)):
            where = node.args.get("where")
            entry.has_where = where is not None
            entry.bounded = where is not None and _glot_bounds(where.this)
        elif isinstance(node, exp.Insert):
            conflict = node.args.get("conflict")
            rewrites = node.args.get("alternative") == "REPLACE" or (
                conflict is not None
                and (conflict.args.get("duplicate") or conflict.args.get("expressions")))
            entry.bounded = not (rewrites and isinstance(node.expression, exp.Query))
        elif isinstance(node, exp.Merge):  # as _PgWalker reads MERGE
            whens = node.args.get("whens")
            on = node.args.get("on")
            entry.bounded = not any(
                isinstance(when.args.get("then"), (exp.Update, exp.Var))
                and (when.args.get("source") or on is None or not _glot_bounds(on))
                for when in (whens.expressions if whens else ()))
        elif isinstance(node, exp.Alter):
            entry.alter_actions = [_glot_action(a) for a in node.args.get("actions") or ()]
            if any(isinstance(option, exp.EngineProperty) and option.name.upper() == "BLACKHOLE"
                   for option in node.args.get("options") or ()):
                entry.effects.add("destroy")  # MySQL's BLACKHOLE engine keeps no row
        elif isinstance(node, exp.Create):
            if node.args.get("replace") and entry.object == "table":
                entry.effects.add("destroy")  # the old table and its rows are gone
        elif isinstance(node, (exp.Copy, exp.LoadData)):
            into = isinstance(node, exp.LoadData) or bool(node.args.get("kind"))
            entry.effects.add("write" if into else "read")
            entry.bounded = True if into else None
            files = node.args.get("files") or ()
            if isinstance(node, exp.LoadData) or any(
                    not (isinstance(f, exp.Identifier) and f.name.upper() in _STDIO)
                    for f in files):
                entry.effects.add("server")
        elif isinstance(node, exp.Set):
            for item in node.expressions:
                entry.effects.update(_glot_setting_effects(item))
        elif isinstance(node, exp.Execute):
            entry.effects.update(_glot_execute_effects(node))
            if "write" in entry.effects:
                entry.bounded = False  # a procedure may change any row

    def _args(self, node: exp.Expr, scope: frozenset[str], skip: Iterable[str] = ()) -> None:
        with_clause = node.args.get("with_")
        if with_clause is not None:
            ctes = list(with_clause.expressions)
            names = [self._fold(cte.args["alias"].this) for cte in ctes]
            bodies = _cte_scopes(names, bool(with_clause.args.get("recursive")), scope)
            for cte, body_scope in zip(ctes, bodies, strict=True):
                self._expr(cte.this, body_scope)
            scope = scope.union(names)
        wrapper = isinstance(node, (exp.Create, exp.Describe))
        for key, value in node.args.items():
            if key == "with_" or key in skip:
                continue
            child_scope = _NO_SCOPE if key == "this" and isinstance(node, _GLOT_DML) else scope
            for child in value if isinstance(value, list) else (value,):
                if isinstance(child, exp.Expr):
                    force = wrapper and isinstance(child, _GLOT_STATEMENT_SQL)
                    self._expr(child, child_scope, force)

    def _table(self, table: exp.Table, scope: frozenset[str]) -> None:
        name = table.this
        if isinstance(name, exp.Identifier):
            parts = [table.args.get(key) for key in ("catalog", "db")]
            qualifiers = [self._fold(part) for part in parts if part is not None]
            folded = self._fold(name)
            if qualifiers or folded not in scope:
                self.out.current.tables.add(".".join([*qualifiers, folded]))
        skip = ("this", "catalog", "db") if isinstance(name, exp.Identifier) else ()
        self._args(table, scope, skip=skip)


def _chunks(tokens: list[Token]) -> list[list[Token]]:
    """Tokens per statement, split exactly as sqlglot's Parser._parse splits them.

    sqlglot returns one expression per chunk but no positions, so the chunks give each
    statement its text; a count mismatch (a future sqlglot) fails closed.
    """
    chunks: list[list[Token]] = [[]]
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        if token.token_type is TokenType.SEMICOLON:
            if token.comments:
                chunks.append([token])
            if i < last:
                chunks.append([])
        else:
            chunks[-1].append(token)
    return chunks


def _glot_error(error: SqlglotError) -> str:
    """sqlglot's messages span lines and carry terminal colour codes: keep the facts."""
    if isinstance(error, ParseError) and error.errors:
        first = error.errors[0]
        return _one_line(
            f'{first.get("description")} at or near "{first.get("highlight")}", '
            f'line {first.get("line")}, col {first.get("col")}'
        )
    return _one_line(f"{type(error).__name__}: {error}")


def _read_sqlglot(text: str, name: str, literal_backslashes: bool = False) -> list[_Entry]:
    setup = _glot_dialect(name)
    # Looked for anywhere, string literals included: a rare false alarm that fails closed is
    # cheaper than a second lexer.
    if setup.executable_comments and ("/*!" in text or "/*M!" in text):
        raise _Unparsable("MySQL executable comments (/*! ... */) are not analysed")
    tokenizer = setup.literal_backslashes if literal_backslashes else None
    try:
        tokens = (tokenizer(dialect=setup.dialect) if tokenizer else setup.dialect).tokenize(text)
        nodes = setup.dialect.parser(error_level=ErrorLevel.RAISE).parse(tokens, text)
    except SqlglotError as error:
        raise _Unparsable(_glot_error(error)) from None
    chunks = _chunks(tokens)
    if len(chunks) != len(nodes):
        raise _Unparsable("statements could not be delimited")
    walker = _GlotWalker(setup.folding)
    for chunk, node in zip(chunks, nodes, strict=True):
        if node is None or isinstance(node, exp.Semicolon):
            continue
        first = chunk[0]
        if _glot_kind(node) is None:
            raise _Unparsable(
                f'not a SQL statement at or near "{_one_line(first.text, 60)}", '
                f"at index {first.start}"
            )
        walker.statement(node, text[first.start : chunk[-1].end + 1].strip())
    return walker.out.entries


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
_AMBIGUOUS = (
    "the text means different things with and without Unicode spaces read as spaces"
)


_Reader = Callable[[str], list[_Entry]]
_Reading = tuple[list[dict[str, Any]], str | None]


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


def _attempt(read: _Reader, text: str) -> _Reading:
    try:
        with _collector_paused(text):
            return [entry.as_dict() for entry in read(text)], None
    except _Unparsable as error:
        return [], str(error)
    except RecursionError:
        return [], "statement nests too deeply to analyse"
    # Parsers and walker on hostile input: anything else they raise still means "could not
    # read it", which the caller refuses — an exception would only make that answer unclear.
    except Exception as error:
        return [], _one_line(f"SQL could not be analysed: {type(error).__name__}: {error}")


def _meaning(statements: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "text"} for s in statements]


def _read(read: _Reader, text: str) -> _Reading:
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

_MYSQL_DASHES = re.compile(r"--[^\x00-\x7f]")
_MAX_RESCANS = 64


def _escaping_strings(text: str) -> str | None:
    """`text` rewritten so that PostgreSQL's default lexer (standard_conforming_strings on)
    reads it as one with the setting off would: in each plain '...' string holding a
    backslash, `\\'` becomes `''`, so every string ends where it would end. None when nothing
    changes, or when that lexer would fail. Only a string that ends elsewhere than the default
    lexer's token makes the rest be scanned again; past _MAX_RESCANS, _Unparsable."""
    chars = list(text)
    start = 0
    for _ in range(_MAX_RESCANS):
        try:
            tokens = pg_parser.scan("".join(chars[start:]))
        except pg_parser.ParseError:
            return None
        for token in tokens:
            first, last = start + token.start, start + token.end
            if token.name != "SCONST" or chars[first] != "'" or "\\" not in chars[first:last]:
                continue
            end = _escaping_end(chars, first)
            if end is None:
                return None  # unterminated: that lexer fails
            if end != last:
                start = end + 1
                break
        else:
            rewritten = "".join(chars)
            return None if rewritten == text else rewritten
    raise _Unparsable("too many strings with backslashes to read both ways")


def _escaping_end(chars: list[str], first: int) -> int | None:
    """Where the string opened at `first` ends with backslash escapes (None: it does not),
    each `\\'` in it rewritten `''`."""
    i = first + 1
    while i < len(chars):
        if chars[i] == "\\" and i + 1 < len(chars):
            if chars[i + 1] == "'":
                chars[i] = "'"
            i += 2
        elif chars[i] == "'":
            if chars[i + 1 : i + 2] != ["'"]:
                return i
            i += 2
        else:
            i += 1
    return None


def _analyze(text: str, dialect: str) -> dict[str, Any]:
    statements: list[dict[str, Any]] = []
    if "\x00" in text:
        error: str | None = "NUL byte in SQL text"
    elif not text.isascii() and not _is_utf8_encodable(text):
        error = "SQL text is not valid Unicode (lone surrogate)"
    elif dialect == "postgres":
        statements, error = _read(_read_postgres, text)
        if error is None and "\\" in text:
            try:
                other = _escaping_strings(text)
            except _Unparsable as problem:
                statements, error = [], str(problem)
            else:
                if other is not None:
                    statements, error = _both(statements, _read(_read_postgres, other))
    elif _glot_dialect(dialect).executable_comments and _MYSQL_DASHES.search(text):
        error = "`--` before a non-ASCII character (MySQL reads no comment there) is not analysed"
    else:
        read = functools.partial(_read_sqlglot, name=dialect)
        statements, error = _read(read, text)
        if error is None and "\\" in text and _glot_dialect(dialect).literal_backslashes:
            literal = functools.partial(read, literal_backslashes=True)
            statements, error = _both(statements, _read(literal, text))
    return {
        "dialect": dialect,
        "statements": statements,
        "multiple": sum(not s["nested"] for s in statements) > 1,
        "error": error,
    }


def _both(statements: list[dict[str, Any]], other: _Reading) -> _Reading:
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
def _cached(text: str, dialect: str) -> bytes:
    # Kept as JSON bytes: every hit decodes a fresh copy, so no caller can alter the cache.
    return orjson.dumps(_analyze(text, dialect))


def analyze(text: str, dialect: str = "postgres") -> dict[str, Any]:
    """What the SQL `text` means, in the shape policies match on (see the module docstring).

    Never raises for bad SQL — that is `error` — only ValueError for a dialect outside
    DIALECTS, which configuration validates at start.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    if len(text) <= CACHE_MAX_CHARS:
        return orjson.loads(_cached(text, dialect))
    return _analyze(text, dialect)
