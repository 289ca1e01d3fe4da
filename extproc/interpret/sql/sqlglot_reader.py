"""The back-end of every dialect but postgres: sqlglot, walked over its expression tree.

sqlglot is pure Python (~400 µs a typical statement); its dialect classes say how each
server folds names and lexes strings.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy
from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError
from sqlglot.tokens import Token, Tokenizer, TokenType

from extproc.interpret.sql import (
    NO_SCOPE,
    RELATION_OBJECTS,
    Collector,
    Entry,
    Reading,
    Unparsable,
    cte_scopes,
    either_lexing,
    glot_lineage,
    one_line,
    read_safely,
    snake,
)
from extproc.interpret.sql.effects import setting_effects

# sqlglot logs a warning for every statement it falls back to reading as a Command; those
# become kind "other" here, so the warning is noise on the request path.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_MYSQL_DASHES = re.compile(r"--[^\x00-\x7f]")


def read(text: str, dialect: str) -> Reading:
    """The statements of `text` in `dialect`; for MySQL, with and without
    NO_BACKSLASH_ESCAPES (see either_lexing)."""
    setup = _glot_dialect(dialect)
    if setup.executable_comments and _MYSQL_DASHES.search(text):
        return [], ("`--` before a non-ASCII character (MySQL reads no comment there) is not "
                    "analysed")
    statements, error = read_safely(functools.partial(_read_sqlglot, name=dialect), text)
    if error is None and "\\" in text and setup.literal_backslashes:
        literal = functools.partial(_read_sqlglot, name=dialect, literal_backslashes=True)
        return either_lexing(statements, read_safely(literal, text))
    return statements, error


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
    # A class is hashable; mypy takes Expr's own __hash__, an instance method, for its class's.
    kind = _glot_class_kind(type(node))  # type: ignore[arg-type]
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
    return snake(type(action).__name__)


_STDIO = frozenset({"STDIN", "STDOUT"})
# Scopes of a SET that outlive the session.
_GLOT_SERVER_SCOPES = frozenset({"GLOBAL", "PERSIST", "PERSIST_ONLY"})


def _glot_bounds(where: exp.Expr) -> bool:
    """As pglast_reader._pg_bounds, on sqlglot's tree."""
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
    return setting_effects(target.name if isinstance(target, exp.Expr) else "")


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


def _glot_alter(entry: Entry, node: exp.Alter) -> None:
    entry.alter_actions = [_glot_action(a) for a in node.args.get("actions") or ()]
    if any(isinstance(option, exp.EngineProperty) and option.name.upper() == "BLACKHOLE"
           for option in node.args.get("options") or ()):
        entry.effects.add("destroy")  # MySQL's BLACKHOLE engine keeps no row


def _glot_copy(entry: Entry, node: exp.Copy | exp.LoadData) -> None:
    """COPY (in or out) and MySQL's LOAD DATA: rows written or read, through a file or a
    program on the server unless through the client's STDIN/STDOUT."""
    into = isinstance(node, exp.LoadData) or bool(node.args.get("kind"))
    entry.effects.add("write" if into else "read")
    entry.bounded = True if into else None
    files = node.args.get("files") or ()
    if isinstance(node, exp.LoadData) or any(
            not (isinstance(f, exp.Identifier) and f.name.upper() in _STDIO) for f in files):
        entry.effects.add("server")


def _glot_execute(entry: Entry, node: exp.Execute) -> None:
    entry.effects.update(_glot_execute_effects(node))
    if "write" in entry.effects:
        entry.bounded = False  # a procedure may change any row


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
    """Walks sqlglot expressions, filling a Collector."""

    __slots__ = ("_folding", "_text", "out")

    def __init__(self, folding: _Folding) -> None:
        self.out = Collector()
        self._folding = folding
        self._text = ""

    def statement(self, node: exp.Expr, text: str) -> None:
        self._text = text
        first = len(self.out.entries)
        self._expr(node, NO_SCOPE, force=True)
        if len(self.out.entries) > first:
            self.out.entries[first].columns = glot_lineage.result_columns(node)

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
            skip: tuple[str, ...] = ()
            if entry.object not in RELATION_OBJECTS:
                skip = tuple(arg for cls, arg in _GLOT_TARGET.items() if isinstance(node, cls))
            self._args(node, scope, skip=skip)
            self.out.close()
        else:
            self._args(node, scope)

    def _describe(self, entry: Entry, node: exp.Expr) -> None:
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
        elif isinstance(node, exp.Merge):  # as pglast_reader reads MERGE
            whens = node.args.get("whens")
            on = node.args.get("on")
            entry.bounded = not any(
                isinstance(when.args.get("then"), (exp.Update, exp.Var))
                and (when.args.get("source") or on is None or not _glot_bounds(on))
                for when in (whens.expressions if whens else ()))
        elif isinstance(node, exp.Alter):
            _glot_alter(entry, node)
        elif isinstance(node, exp.Create):
            if node.args.get("replace") and entry.object == "table":
                entry.effects.add("destroy")  # the old table and its rows are gone
        elif isinstance(node, (exp.Copy, exp.LoadData)):
            _glot_copy(entry, node)
        elif isinstance(node, exp.Set):
            for item in node.expressions:
                entry.effects.update(_glot_setting_effects(item))
        elif isinstance(node, exp.Execute):
            _glot_execute(entry, node)

    def _args(self, node: exp.Expr, scope: frozenset[str], skip: Iterable[str] = ()) -> None:
        with_clause = node.args.get("with_")
        if with_clause is not None:
            ctes = list(with_clause.expressions)
            names = [self._fold(cte.args["alias"].this) for cte in ctes]
            bodies = cte_scopes(names, bool(with_clause.args.get("recursive")), scope)
            for cte, body_scope in zip(ctes, bodies, strict=True):
                self._expr(cte.this, body_scope)
            scope = scope.union(names)
        wrapper = isinstance(node, (exp.Create, exp.Describe))
        for key, value in node.args.items():
            if key == "with_" or key in skip:
                continue
            child_scope = NO_SCOPE if key == "this" and isinstance(node, _GLOT_DML) else scope
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
        return one_line(
            f'{first.get("description")} at or near "{first.get("highlight")}", '
            f'line {first.get("line")}, col {first.get("col")}'
        )
    return one_line(f"{type(error).__name__}: {error}")


def _read_sqlglot(text: str, name: str, literal_backslashes: bool = False) -> list[Entry]:
    setup = _glot_dialect(name)
    # Looked for anywhere, string literals included: a rare false alarm that fails closed is
    # cheaper than a second lexer.
    if setup.executable_comments and ("/*!" in text or "/*M!" in text):
        raise Unparsable("MySQL executable comments (/*! ... */) are not analysed")
    tokenizer = setup.literal_backslashes if literal_backslashes else None
    try:
        tokens = (tokenizer(dialect=setup.dialect) if tokenizer else setup.dialect).tokenize(text)
        nodes = setup.dialect.parser(error_level=ErrorLevel.RAISE).parse(tokens, text)
    except SqlglotError as error:
        raise Unparsable(_glot_error(error)) from None
    chunks = _chunks(tokens)
    if len(chunks) != len(nodes):
        raise Unparsable("statements could not be delimited")
    walker = _GlotWalker(setup.folding)
    for chunk, node in zip(chunks, nodes, strict=True):
        if node is None or isinstance(node, exp.Semicolon):
            continue
        first = chunk[0]
        if _glot_kind(node) is None:
            raise Unparsable(
                f'not a SQL statement at or near "{one_line(first.text, 60)}", '
                f"at index {first.start}"
            )
        walker.statement(node, text[first.start : chunk[-1].end + 1].strip())
    return walker.out.entries
