"""The postgres back-end: PostgreSQL's own parser (pglast), walked over its JSON tree.

parse_sql_json + orjson is ~8x faster than pglast's Python AST objects (15 µs vs 128 µs for
a join). In that JSON a Node* field is wrapped ({"RangeVar": {...}}) but a field of a
specific struct type is not ({"relation": {"relname": ...}}), so the struct type of each such
field is read once from pglast.ast's slot declarations.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import orjson
from pglast import ast as pg_ast
from pglast import enums as pg_enums
from pglast import parser as pg_parser

from extproc.interpret.sql import (
    NO_SCOPE,
    RELATION_OBJECTS,
    Collector,
    Entry,
    Reading,
    Setting,
    Unparsable,
    bounds,
    cte_scopes,
    either_lexing,
    lineage,
    one_line,
    read_safely,
    snake,
)
from extproc.interpret.sql.effects import SETTING_FUNCTIONS, UNNAMED_SETTING
from extproc.interpret.sql.pg_parse import parse_json
from extproc.interpret.sql.settings_row import names_column, row_setting
from extproc.interpret.sql.shapes import value_read

# Objects that belong to a table named before them: DROP TRIGGER t ON tbl, COMMENT ON COLUMN.
_TABLE_MEMBER_OBJECTS = frozenset({"column", "trigger", "policy", "rule", "constraint"})


def read(text: str, _dialect: str) -> Reading:
    """The statements of `text` as PostgreSQL reads it with standard_conforming_strings on,
    and, when a backslash could end a string elsewhere, with it off (see either_lexing)."""
    statements, error = read_safely(_read_postgres, text)
    if error is None and "\\" in text:
        try:
            other = _escaping_strings(text)
        except Unparsable as problem:
            return [], str(problem)
        if other is not None:
            return either_lexing(statements, read_safely(_read_postgres, other))
    return statements, error


# Node types no value is of: a field declared as one holds any node, wrapped in the JSON
# like a Node* (`NullTest.arg`, an `Expr *`, is {"FuncCall": ...}). Read as a struct, the
# calls under it went unseen: `SELECT 1 WHERE lo_unlink(1) IS NULL` read as a plain read.
_ABSTRACT = frozenset({"Node", "Expr"})


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
            if c_type.endswith("*") and c_type[:-1] in nodes and c_type[:-1] not in _ABSTRACT:
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
_PG_ALTER_ACTIONS = {member.name: snake(member.name[3:]) for member in pg_enums.AlterTableType}

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
    "DiscardStmt": ("discard", None), "DeallocateStmt": ("discard", None),
    "ClosePortalStmt": ("close", None),
    "LoadStmt": ("load", None),
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
    elif obj not in RELATION_OBJECTS:
        return None
    return ".".join(parts) or None


def _pg_copy(entry: Entry, fields: dict[str, Any]) -> None:
    entry.effects.add("write" if fields.get("is_from") else "read")
    entry.bounded = True if fields.get("is_from") else None
    if fields.get("is_program"):
        entry.program = fields.get("filename")
    if "filename" in fields:
        entry.effects.add("server")  # a file or a program on the server, not STDIN


# Statements that may store values a later statement reads (SELECT INTO is a create).
_STORING_KINDS = frozenset({"create", "insert", "update", "merge", "alter"})


class _PgWalker:
    """Walks pglast's JSON statements, filling a Collector."""

    __slots__ = ("_named", "_text", "out")

    def __init__(self) -> None:
        self.out = Collector()
        self._text = ""
        # The setting pg_settings' `name` holds in every row of the statement, where it
        # is pg_dump's one set_config of a row of pg_settings (settings_row.py).
        self._named: str | None = None

    def statement(self, node: dict[str, Any], text: str) -> None:
        self._text = text
        self._named = row_setting(node)
        first = len(self.out.entries)
        self._wrapped(node, NO_SCOPE, force=True)
        if len(self.out.entries) > first:
            top = self.out.entries[first]
            top.columns = lineage.result_columns(node)
            # Walked again only where something may store (most reads store nothing).
            deep = bool(top.functions & lineage.STORING_FUNCTIONS) or any(
                entry.kind in _STORING_KINDS for entry in self.out.entries[first + 1:])
            if deep or top.kind in _STORING_KINDS:
                top.stores = lineage.stored_columns(node, deep)

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
            name = fields["funcname"][-1]["String"]["sval"].lower()
            self.out.current.functions.add(name)
            if name in SETTING_FUNCTIONS:
                self.out.current.settings.append(
                    _pg_set_config(fields.get("args", []), self._named))
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
            if typ == "VacuumStmt" and _pg_vacuum_analyzes(fields):
                # VACUUM ANALYZE writes the statistics ANALYZE writes: it holds an ANALYZE
                # of the same tables, read as the statement nested in it.
                self.out.open("analyze", None, self._text)
                self._fields(typ, fields, scope)
                self.out.close()
            self.out.close()
        else:
            self._fields(typ, fields, scope)

    def _describe(self, entry: Entry, typ: str, fields: dict[str, Any]) -> None:
        if typ in ("UpdateStmt", "DeleteStmt"):
            entry.has_where = "whereClause" in fields
            entry.bounded = _pg_write_bounded(
                fields, "fromClause" if typ == "UpdateStmt" else "usingClause")
        elif typ == "InsertStmt":
            # An upsert from a query may rewrite every row the query returns.
            upsert = (fields.get("onConflictClause") or {}).get("action") == "ONCONFLICT_UPDATE"
            source = (fields.get("selectStmt") or {}).get("SelectStmt", {})
            entry.bounded = not (upsert and "valuesLists" not in source)
        elif typ == "MergeStmt":
            entry.bounded = _pg_merge_bounded(fields)
        elif typ == "CallStmt":
            entry.bounded = False  # a procedure may change any row
        elif typ == "CopyStmt":
            _pg_copy(entry, fields)
        elif typ == "VariableSetStmt":
            entry.settings.extend(_pg_set(fields))
        elif typ == "DiscardStmt" and fields.get("target", "DISCARD_ALL") == "DISCARD_ALL":
            # DISCARD ALL is SET SESSION AUTHORIZATION DEFAULT, then RESET ALL.
            entry.settings += [{"name": "session_authorization", "value": None, "reset": True},
                               {"name": "all", "value": None, "reset": True}]
        elif typ == "AlterTableStmt":
            entry.alter_actions = [
                _pg_alter_action(cmd["AlterTableCmd"])
                for cmd in fields.get("cmds", ())
                if "AlterTableCmd" in cmd
            ]
        elif typ in _PG_FIXED_ACTIONS:
            column = typ == "RenameStmt" and entry.object == "column"
            entry.alter_actions = ["rename_column" if column else _PG_FIXED_ACTIONS[typ]]
        entry.effects |= _pg_found_effects(typ, fields)
        if typ in ("DropStmt", "CommentStmt"):
            objects = fields.get("objects", ()) if typ == "DropStmt" else (fields.get("object"),)
            entry.tables.update(filter(None, (_pg_object_table(entry.object, node)
                                              for node in objects)))

    def _fields(self, typ: str, fields: dict[str, Any], scope: frozenset[str]) -> None:
        with_clause = fields.get("withClause")
        if with_clause:
            ctes = [item["CommonTableExpr"] for item in with_clause.get("ctes", ())]
            names = [cte["ctename"] for cte in ctes]
            bodies = cte_scopes(names, bool(with_clause.get("recursive")), scope)
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
                    self._node(child, value, NO_SCOPE if target else scope, False, True)


_PG_ROW_CHANGES = frozenset({"CMD_UPDATE", "CMD_DELETE"})
# LOCK modes from SHARE up (pglast's LockStmt.mode): they block other sessions' writes, and
# ACCESS EXCLUSIVE (8, LOCK's default) their reads, until the transaction ends.
_PG_BLOCKING_LOCK = 5


def _pg_alter_action(cmd: dict[str, Any]) -> str:
    """An ALTER TABLE action's name; DROP DEFAULT apart from SET DEFAULT (both ColumnDefault)."""
    subtype = cmd.get("subtype", "")
    if subtype == "AT_ColumnDefault" and "def" not in cmd:
        return "drop_default"
    return _PG_ALTER_ACTIONS.get(subtype, "other")


def _pg_found_effects(typ: str, fields: dict[str, Any]) -> set[str]:
    """Effects of a statement that only its node shows (effects.classify adds the rest)."""
    if typ == "NotifyStmt":
        return {"write"}  # a message to other sessions, as pg_notify's
    if typ in ("AlterDatabaseSetStmt", "AlterRoleSetStmt"):
        return {"configuration"}
    return {"destroy"} if _pg_withdraws(typ, fields) else set()


def _pg_withdraws(typ: str, fields: dict[str, Any]) -> bool:
    """Statements that take a table's rows away from the applications reading it, though
    they stay (effects.py): VACUUM FULL rewrites it under a lock no reader passes, a LOCK
    from SHARE up blocks them, a restrictive row policy hides rows, and so may an altered
    one (its USING, its roles)."""
    if typ == "VacuumStmt":
        return bool(fields.get("is_vacuumcmd")) and any(
            _pg_option_on(o.get("DefElem", {}), "full") for o in fields.get("options", ()))
    if typ == "LockStmt":
        return int(fields.get("mode", 0)) >= _PG_BLOCKING_LOCK
    if typ == "CreatePolicyStmt":
        return not fields.get("permissive")
    return typ == "AlterPolicyStmt"


def _pg_vacuum_analyzes(fields: dict[str, Any]) -> bool:
    """A VACUUM that also analyzes: `VACUUM ANALYZE`, `VACUUM (ANALYZE)`, `ANALYSE` (the
    grammar names the option `analyze` either way), not `(ANALYZE false)`."""
    return bool(fields.get("is_vacuumcmd")) and any(
        _pg_option_on(o.get("DefElem", {}), "analyze") for o in fields.get("options", ()))


def _pg_option_on(option: dict[str, Any], name: str) -> bool:
    """Whether a statement's option `name` is given and not turned off (`FULL false`)."""
    if option.get("defname") != name:
        return False
    arg = option.get("arg") or {}
    if "Integer" in arg:  # an empty object is 0
        return bool(arg["Integer"].get("ival", 0))
    value = str(arg.get("String", {}).get("sval", "on"))
    return value.lower() not in ("false", "off", "no")


# SET TRANSACTION and SET SESSION CHARACTERISTICS AS TRANSACTION: the prefix of the
# settings their items change (`transaction_isolation`, `default_transaction_isolation`).
_PG_MULTI_PREFIX = {"TRANSACTION": "", "SESSION CHARACTERISTICS": "default_"}


def _pg_constant(node: Any) -> str | None:
    """A constant's value as text (a string as PostgreSQL decoded it, E'' and U&'' too);
    None for anything else: a parameter, an expression, a cast, NULL."""
    const = node.get("A_Const") if isinstance(node, dict) else None
    if not isinstance(const, dict):
        return None
    value_read()
    if "sval" in const:
        return str(const["sval"].get("sval", ""))
    if "ival" in const:
        return str(const["ival"].get("ival", 0))
    if "fval" in const:
        return str(const["fval"].get("fval", ""))
    if "boolval" in const:
        return "on" if const["boolval"].get("boolval") else "off"
    return None


def _pg_set(fields: dict[str, Any]) -> list[Setting]:
    """The settings a SET / RESET statement changes (see `settings` in __init__.py)."""
    kind = fields.get("kind", "")
    name = fields.get("name", "")
    args = fields.get("args", [])
    if kind == "VAR_RESET_ALL":
        return [{"name": "all", "value": None, "reset": True}]
    if kind == "VAR_SET_MULTI":
        if name in _PG_MULTI_PREFIX:
            return [{"name": _PG_MULTI_PREFIX[name] + item["DefElem"]["defname"].lower(),
                     "value": _pg_constant(item["DefElem"].get("arg")), "reset": False}
                    for item in args if "DefElem" in item]
        name = name.replace(" ", "_")  # TRANSACTION SNAPSHOT
    reset = kind in ("VAR_RESET", "VAR_SET_DEFAULT")
    value = _pg_constant(args[0]) if len(args) == 1 else None
    return [{"name": name.lower(), "value": value, "reset": reset}]


def _pg_set_config(args: list[Any], named: str | None = None) -> Setting:
    """The setting a set_config(name, value, is_local) call changes: "*" when its name is
    not a string literal, since only the running statement knows it; but `named`, where
    the name is pg_settings' column and the statement's one row names that setting."""
    literal = bool(args) and "sval" in (args[0].get("A_Const") or {})
    name = _pg_constant(args[0]) if literal else None
    if name is None and named is not None and args and names_column(args[0]):
        name = named
    value = _pg_constant(args[1]) if len(args) > 1 else None
    return {"name": UNNAMED_SETTING if name is None else name.lower(), "value": value,
            "reset": False}



# --- bounds: a write's condition in bounds.py's terms -----------------------------------------


def _pg_target(relation: dict[str, Any], alone: bool,
               constants: frozenset[tuple[str, ...]] = frozenset()) -> bounds.Target:
    alias = (relation.get("alias") or {}).get("aliasname")
    names = bounds.table_names(relation.get("relname", ""), relation.get("schemaname"),
                               relation.get("catalogname"), alias)
    return bounds.Target(names, alone, constants)


def _pg_write_bounded(fields: dict[str, Any], others: str) -> bool:
    """An UPDATE's or DELETE's rows are bounded (bounds.py): `others` is the field of the
    relations joined to the target (FROM, USING), whose columns do not bound it."""
    where = fields.get("whereClause")
    if where is None:
        return False
    target = _pg_target(fields.get("relation") or {}, alone=not fields.get(others))
    return bounds.write_bounded(_pg_predicate(where, target))


def _pg_merge_bounded(fields: dict[str, Any]) -> bool:
    """A MERGE changes bounded rows: no WHEN NOT MATCHED BY SOURCE updates or deletes, and its
    ON condition bounds the target, a source of constant rows (VALUES) counting as constants."""
    clauses = [c.get("MergeWhenClause", {}) for c in fields.get("mergeWhenClauses", ())]
    changes = [c for c in clauses if c.get("commandType") in _PG_ROW_CHANGES]
    if not changes:
        return True
    if any(c.get("matchKind") == "MERGE_WHEN_NOT_MATCHED_BY_SOURCE" for c in changes):
        return False
    source = (fields.get("sourceRelation") or {}).get("RangeSubselect") or {}
    alias = (source.get("alias") or {}).get("aliasname")
    rows = _pg_constant_rows(source.get("subquery"))
    constants = frozenset({(alias,)}) if alias and rows is not None else frozenset()
    target = _pg_target(fields.get("relation") or {}, alone=False, constants=constants)
    on = fields.get("joinCondition")
    return on is not None and bounds.write_bounded(
        _pg_predicate(on, target), rows=1 if rows is None else rows)


def _pg_constant_rows(query: Any) -> int | None:
    """How many rows a MERGE source of constants has: a VALUES list, or a SELECT of constants
    without FROM; None for any other source."""
    select = (query or {}).get("SelectStmt") if isinstance(query, dict) else None
    if not isinstance(select, dict) or select.get("op", "SETOP_NONE") != "SETOP_NONE":
        return None
    if "valuesLists" in select:
        return len(select["valuesLists"])
    targets = [t.get("ResTarget", {}).get("val") for t in select.get("targetList", ())]
    constant = all(isinstance(_pg_term(v, _PG_NO_TARGET), bounds.Const) for v in targets)
    return 1 if constant and _PG_PLAIN_SELECT.issuperset(select) else None


# A SELECT with only these fields has no FROM, WHERE, GROUP BY...: it is one row.
_PG_PLAIN_SELECT = frozenset({"targetList", "limitOption", "op"})
_PG_NO_TARGET = bounds.Target(frozenset(), alone=False)
_PG_COMPARISONS = {"=": "=", "<>": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
# Operators of constants that give one constant (not functions, which may be volatile).
_PG_ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "||"})


def _pg_operator(fields: dict[str, Any]) -> str | None:
    """An operator's name, if it is the built-in one (unqualified or pg_catalog's)."""
    name = [part.get("String", {}).get("sval") for part in fields.get("name", ())]
    if len(name) == 1 or (len(name) == 2 and name[0] == "pg_catalog"):
        return name[-1]
    return None


def _pg_predicate(node: Any, target: bounds.Target) -> bounds.Predicate:
    if not isinstance(node, dict) or len(node) != 1:
        return bounds.OPAQUE
    ((typ, fields),) = node.items()
    if typ == "BoolExpr":
        terms = tuple(_pg_predicate(arg, target) for arg in fields.get("args", ()))
        if fields.get("boolop") == "NOT_EXPR":
            return bounds.Not(terms[0])
        return bounds.Logic(fields.get("boolop") == "AND_EXPR", terms)
    if typ == "A_Expr":
        found = _pg_comparison(fields, target)
        if found is not None:
            return found
    elif typ == "NullTest":
        return bounds.NullTest(_pg_term(fields.get("arg"), target),
                               fields.get("nulltesttype") == "IS_NULL")
    elif typ == "CurrentOfExpr":
        return bounds.CurrentOf()
    return _pg_term(node, target)


def _pg_comparison(fields: dict[str, Any], target: bounds.Target) -> bounds.Predicate | None:
    kind, op = fields.get("kind"), _pg_operator(fields)
    left, right = fields.get("lexpr"), fields.get("rexpr")
    if left is None:
        return None
    if kind == "AEXPR_OP" and op in _PG_COMPARISONS:
        return bounds.Compare(op, _pg_term(left, target), _pg_term(right, target))
    if kind in ("AEXPR_NOT_DISTINCT", "AEXPR_DISTINCT"):
        distinct = "distinct" if kind == "AEXPR_DISTINCT" else "not_distinct"
        return bounds.Compare(distinct, _pg_term(left, target), _pg_term(right, target))
    items = None
    if kind == "AEXPR_IN" and isinstance(right, dict):
        items = right.get("List", {}).get("items")
    elif kind == "AEXPR_OP_ANY" and op == "=" and isinstance(right, dict):
        items = right.get("A_ArrayExpr", {}).get("elements")
    if items is None:
        return None
    member = bounds.Member(_pg_term(left, target), tuple(_pg_term(i, target) for i in items))
    return member if op == "=" else bounds.Not(member)


def _pg_term(node: Any, target: bounds.Target) -> bounds.Term:
    """A value in a condition: a constant, a column, or opaque."""
    if not isinstance(node, dict) or len(node) != 1:
        return bounds.OPAQUE
    ((typ, fields),) = node.items()
    if typ == "A_Const":
        return _pg_literal(fields)
    if typ == "ParamRef":
        return bounds.UNKNOWN_VALUE
    if typ == "ColumnRef":
        parts = fields.get("fields", ())
        if not parts or "String" not in parts[-1]:
            return bounds.OPAQUE  # t.*
        return target.column(tuple(p.get("String", {}).get("sval", "") for p in parts[:-1]))
    if typ == "CollateClause":
        return _pg_term(fields.get("arg"), target)
    if typ == "TypeCast":
        inner = _pg_term(fields.get("arg"), target)
        return bounds.UNKNOWN_VALUE if isinstance(inner, bounds.Const) else bounds.OPAQUE
    if typ == "A_Expr" and fields.get("kind") == "AEXPR_OP":
        return _pg_arithmetic(fields, target)
    return bounds.OPAQUE


def _pg_arithmetic(fields: dict[str, Any], target: bounds.Target) -> bounds.Term:
    """An operator over constants is one constant (`-1`, `2 * 3`, `'a' || 'b'`)."""
    if _pg_operator(fields) not in _PG_ARITHMETIC:
        return bounds.OPAQUE
    operands = [_pg_term(fields[side], target) for side in ("lexpr", "rexpr") if side in fields]
    if not all(isinstance(o, bounds.Const) for o in operands):
        return bounds.OPAQUE
    return bounds.UNKNOWN_VALUE


def _pg_literal(fields: dict[str, Any]) -> bounds.Const:
    # In pglast's JSON a zero, false or empty value is an empty object: {"ival": {}} is 0.
    value_read()
    if fields.get("isnull"):
        return bounds.Const(None)
    if "ival" in fields:
        return bounds.Const(int(fields["ival"].get("ival", 0)))
    if "fval" in fields:
        return bounds.number(str(fields["fval"].get("fval", "")))
    if "sval" in fields:
        return bounds.Const(str(fields["sval"].get("sval", "")))
    if "boolval" in fields:
        return bounds.Const(bool(fields["boolval"].get("boolval", False)))
    return bounds.UNKNOWN_VALUE  # a bit string


# What a shape (shapes.py) has none of: a constant's value (zero, false and '' are an
# empty object), whose kind stays; and a position in the text (a position this misses
# makes texts of one shape two: never two shapes one).
_VALUES = re.compile(
    r'("A_Const":\{"(ival|fval|sval|boolval|bsval)":\{)'
    r'(?:"\2":(?:"(?:[^"\\]|\\.)*"|-?[0-9]+|true|false))?\}')
_POSITIONS = re.compile(
    r'"(?:location|stmt_location|stmt_len|rexpr_list_start|rexpr_list_end)":-?[0-9]+')
# Where the one statement of a tree is in its text (a quote inside a JSON string is
# escaped: only the tree's own keys match; RawStmt alone has a `stmt`).
_START = re.compile(r'"stmt_location":([0-9]+)')
_LENGTH = re.compile(r'"stmt_len":([0-9]+)')


def shape_of(tree: str) -> str:
    """A parse tree's JSON without its constants' values and its positions."""
    return _POSITIONS.sub("", _VALUES.sub(r"\1}", tree))


def shape(text: str) -> tuple[str, str] | None:
    """`text`'s shape (shapes.py) and its one statement as `_read_postgres` cuts it;
    None for a text of several statements, one that does not parse, or one a reading
    may lex two ways (a backslash, a character beyond ASCII: `read`, `read_safely`)."""
    if not (text.isascii() and "\\" not in text and "\x00" not in text):
        return None
    try:
        tree = parse_json(text)
    except pg_parser.ParseError:
        return None
    if tree.count('"stmt":') != 1:
        return None
    found = _START.search(tree)
    start = int(found[1]) if found else 0
    found = _LENGTH.search(tree)
    length = int(found[1]) if found else len(text) - start
    return shape_of(tree), text[start:start + length].strip()


def _read_postgres(text: str) -> list[Entry]:
    source = text.encode()
    try:
        tree = orjson.loads(parse_json(text))
    except pg_parser.ParseError as error:
        raise Unparsable(one_line(str(error))) from None
    except orjson.JSONDecodeError:
        raise Unparsable("statement nests too deeply to analyse") from None
    walker = _PgWalker()
    for raw in tree.get("stmts", ()):
        start = raw.get("stmt_location", 0)
        length = raw.get("stmt_len", 0) or len(source) - start
        walker.statement(raw["stmt"], source[start : start + length].decode().strip())
    return walker.out.entries


_MAX_RESCANS = 64


def _escaping_strings(text: str) -> str | None:
    """`text` rewritten so that PostgreSQL's default lexer (standard_conforming_strings on)
    reads it as one with the setting off would: in each plain '...' string holding a
    backslash, `\\'` becomes `''`, so every string ends where it would end. None when nothing
    changes, or when that lexer would fail. Only a string that ends elsewhere than the default
    lexer's token makes the rest be scanned again; past _MAX_RESCANS, Unparsable."""
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
    raise Unparsable("too many strings with backslashes to read both ways")


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
