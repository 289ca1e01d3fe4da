"""The back-end of every dialect but postgres: sqlglot, walked over its expression tree.

sqlglot is pure Python (~400 µs a typical statement); its dialect classes say how each
server folds names and lexes strings.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy
from sqlglot.dialects.mysql import MySQL
from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError
from sqlglot.tokens import Token, Tokenizer, TokenType

from extproc.interpret.sql import (
    NO_SCOPE,
    RELATION_OBJECTS,
    UNICODE_SPACE,
    Collector,
    Entry,
    Reading,
    Unparsable,
    bounds,
    cte_scopes,
    either_lexing,
    glot_lineage,
    one_line,
    read_safely,
    snake,
)
from extproc.interpret.sql.effects import setting_effects
from extproc.interpret.sql.shapes import value_read

# sqlglot logs a warning for every statement it falls back to reading as a Command; those
# become kind "other" here, so the warning is noise on the request path.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_MYSQL_DASHES = re.compile(r"--[^\x00-\x7f]")


def read(text: str, dialect: str, server_version: str | None = None,
         backslashes: bool | None = None) -> Reading:
    """The statements of `text` in `dialect`; for MySQL, in every lexing its sql_mode can
    give the text: with and without NO_BACKSLASH_ESCAPES (only the one `backslashes`
    says, where the server's status told it: True, backslashes escape), with and
    without ANSI_QUOTES (see either_lexing), its executable comments as the server of
    `server_version` (its handshake's) runs them."""
    version = server_version_id(server_version)
    setup = _glot_dialect(dialect)
    if setup.executable_comments and not _dashes_in_values(text, dialect, backslashes):
        return [], ("`--` before a non-ASCII character (MySQL reads no comment there) is not "
                    "analysed")
    default, *others = setup.lexing(backslashes)
    statements, error = read_safely(
        functools.partial(_read_sqlglot, name=dialect, tokenizer=default.tokenizer,
                          version=version), text)
    if error is not None:
        return statements, error
    for lexing in others:
        if all(mark in text for mark in lexing.marks(default)):
            other = functools.partial(_read_sqlglot, name=dialect, tokenizer=lexing.tokenizer,
                                      version=version)
            statements, _ = either_lexing(statements, read_safely(other, text))
    return statements, None


def _dashes_in_values(text: str, dialect: str, backslashes: bool | None) -> bool:
    """Whether every `--` before a non-ASCII character (where MySQL reads no comment and
    sqlglot would) lies in a string literal, a value there (a BLOB's bytes), and before a
    character read_safely leaves as it is (a space there would open a comment in a
    PREPARE's string, in the reading that then wins)."""
    dashes = [found.start() for found in _MYSQL_DASHES.finditer(text)]
    return not dashes or (
        not any(UNICODE_SPACE.match(text, at + 2) for at in dashes)
        and within_strings(text, dialect, dashes, backslashes))


# A shape (shapes.py) leaves out the text of these literals where they are operands: of a
# comparison or a BETWEEN, or items of an IN list or a VALUES row (a number after `-` is
# not one, nor anything after INTERVAL, DATE or LIMIT, which the parser or a bound reads).
_SHAPED_LITERALS = frozenset({TokenType.NUMBER, TokenType.STRING})
_COMPARISONS = frozenset({TokenType.EQ, TokenType.NEQ, TokenType.LT, TokenType.GT,
                          TokenType.LTE, TokenType.GTE, TokenType.NULLSAFE_EQ})
_LISTS = frozenset({TokenType.IN, TokenType.VALUES})
_ITEMS = frozenset({TokenType.L_PAREN, TokenType.COMMA})
# What a shaped text holds none of: what another lexing reads otherwise (a backslash, a
# double quote), what the server may run that sqlglot reads as a comment (`/*!`, `#`
# beyond a `{`), comments at all, a NUL.
_UNSHAPED = ("\\", '"', "/*", "#", "--", "{", "\x00")


def shape(text: str, dialect: str, server_version: str | None = None,
          backslashes: bool | None = None) -> tuple[str, str] | None:
    """`text`'s shape (shapes.py): its tokens, the literals that are operands without
    their text, in the server's version and escaping; and its one statement as
    `_read_sqlglot` cuts it. None for what may read otherwise (`_UNSHAPED`, beyond
    ASCII), several statements, or a text that does not lex."""
    if not text.isascii() or any(mark in text for mark in _UNSHAPED):
        return None
    setup = _glot_dialect(dialect)
    try:
        tokens = setup.lexing(backslashes)[0].tokenizer(dialect=setup.dialect).tokenize(text)
    except SqlglotError:
        return None
    if tokens and tokens[-1].token_type is TokenType.SEMICOLON:
        tokens = tokens[:-1]
    if not tokens:
        return None
    parts = [dialect, server_version or "", str(backslashes)]
    lists: list[bool] = []  # each open parenthesis: whether it opens a list of operands
    previous, closed_row = None, False
    between = 0  # 1: after BETWEEN, 2: after its low literal, 3: after that one's AND
    for token in tokens:
        kind = token.token_type
        if kind is TokenType.SEMICOLON or token.comments:
            return None
        in_list = previous in _ITEMS and bool(lists) and lists[-1]
        operand = previous in _COMPARISONS or in_list or between in (1, 3)
        if kind in _SHAPED_LITERALS and operand:
            parts.append(kind.name)
        else:
            parts.append(f"{kind.name} {token.text}")
        between = (1 if kind is TokenType.BETWEEN
                   else 2 if between == 1 and kind in _SHAPED_LITERALS
                   else 3 if between == 2 and kind is TokenType.AND else 0)
        if kind is TokenType.L_PAREN:
            lists.append(previous in _LISTS or (previous is TokenType.COMMA and closed_row))
        elif kind is TokenType.R_PAREN and lists:
            closed_row = lists.pop()
        if kind is not TokenType.R_PAREN and kind is not TokenType.COMMA:
            closed_row = False
        previous = kind
    return "\n".join(parts), text[tokens[0].start:tokens[-1].end + 1].strip()


def tokenize(text: str, dialect: str, backslashes: bool | None = None) -> list[Token]:
    """`text`'s tokens as the dialect's server lexes it by default (what query_text.py
    sanitizes); for MySQL, in the escaping `backslashes` says, where known."""
    setup = _glot_dialect(dialect)
    return setup.lexing(backslashes)[0].tokenizer(dialect=setup.dialect).tokenize(text)


def parsed(text: str, dialect: str, backslashes: bool | None = None) -> list[exp.Expr]:
    """`text`'s statement trees in each lexing its server may use that reads it otherwise
    (for MySQL, those of `backslashes`), every one that parses: for what reads the tree
    itself, to miss nothing the server may run (the MySQL front's written tables)."""
    setup = _glot_dialect(dialect)
    default, *others = setup.lexing(backslashes)
    found: list[exp.Expr] = []
    for lexing in (default, *others):
        if lexing is default or all(mark in text for mark in lexing.marks(default)):
            with contextlib.suppress(SqlglotError):
                found += [n for n in setup.dialect.parser(error_level=ErrorLevel.RAISE).parse(
                    lexing.tokenizer(dialect=setup.dialect).tokenize(text), text)
                    if n is not None]
    return found


_STRINGS = frozenset({TokenType.STRING, TokenType.NATIONAL_STRING})


def within_strings(text: str, dialect: str, positions: list[int],
                   backslashes: bool | None = None) -> bool:
    """Whether each of `positions` lies inside a string literal however the server may
    lex `text` (each of the dialect's lexings; for MySQL, those of `backslashes`, as
    read): there, and only there, a byte no character set reads (a BLOB's, in
    `_binary'...'`) is a value, never SQL."""
    setup = _glot_dialect(dialect)
    for lexing in setup.lexing(backslashes):
        try:
            tokens = lexing.tokenizer(dialect=setup.dialect).tokenize(text)
        except SqlglotError:
            return False
        spans = [(t.start, t.end) for t in tokens if t.token_type in _STRINGS]
        if not all(any(start < at < end for start, end in spans) for at in positions):
            return False
    return True


_GLOT_KINDS: dict[type, str] = {
    exp.Query: "select", exp.Values: "select", exp.Insert: "insert", exp.Update: "update",
    exp.Delete: "delete", exp.Merge: "merge", exp.Drop: "drop", exp.TruncateTable: "truncate",
    exp.Alter: "alter", exp.Create: "create", exp.Grant: "grant", exp.Revoke: "revoke",
    exp.Copy: "copy", exp.LoadData: "copy", exp.Set: "set", exp.Use: "set",
    exp.AlterSession: "set", exp.Show: "show", exp.Describe: "explain",
    exp.Transaction: "transaction", exp.Commit: "transaction", exp.Rollback: "transaction",
    exp.EndStatement: "transaction", exp.Pragma: "pragma", exp.Attach: "attach",
    exp.Analyze: "analyze", exp.Refresh: "refresh", exp.Comment: "comment",
    exp.Execute: "execute", exp.Command: "other", exp.Detach: "other", exp.Kill: "kill",
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
    elif isinstance(node, exp.Kill):  # KILL n ends the connection
        obj = str(node.args.get("kind") or "connection").lower()
    return kind, obj


# What MySQL and others drop under names of their own: a constraint, as PostgreSQL says.
_GLOT_CONSTRAINTS = frozenset({"constraint", "foreign key", "primary key", "check", "unique"})


# ALTER actions whose name their class alone gives.
_GLOT_ACTIONS: dict[type[exp.Expr], str] = {
    exp.ColumnDef: "add_column", exp.DropPrimaryKey: "drop_constraint",
    exp.AlterRename: "rename", exp.RenameColumn: "rename_column",
    exp.ModifyColumn: "alter_column_type", exp.Command: "other",
}


def _glot_action(action: exp.Expr) -> str:
    """An ALTER action in the names pglast's AlterTableType gives PostgreSQL's."""
    named = next((name for cls, name in _GLOT_ACTIONS.items() if isinstance(action, cls)), None)
    if named is not None:
        return named
    if isinstance(action, exp.Drop):
        kind = str(action.args.get("kind") or "column").lower()
        return "drop_constraint" if kind in _GLOT_CONSTRAINTS else f"drop_{kind.replace(' ', '_')}"
    if isinstance(action, exp.AlterColumn):
        return _glot_alter_column(action.args)
    return snake(type(action).__name__)


def _glot_alter_column(args: dict[str, object]) -> str:
    """ALTER COLUMN's action: DROP DEFAULT apart from SET DEFAULT, as pglast_reader says."""
    if args.get("dtype"):
        return "alter_column_type"
    if args.get("allow_null") is not None:
        return "drop_not_null" if args.get("drop") else "set_not_null"
    if args.get("default"):
        return "column_default"
    if args.get("drop"):
        return "drop_default"
    return "rename_column" if args.get("rename_to") else "alter_column"


_STDIO = frozenset({"STDIN", "STDOUT"})
# Scopes of a SET that outlive the session.
_GLOT_SERVER_SCOPES = frozenset({"GLOBAL", "PERSIST", "PERSIST_ONLY"})


def _glot_setting_effects(item: exp.Expr) -> set[str]:
    """The effects of one SET item: a scope beyond the session, or a setting that does."""
    kind = str(item.args.get("kind") or "").upper()
    if kind == "NAMES" or kind.startswith("CHARACTER"):
        # MySQL's client character set: to UTF-8, what the gateway reads texts in, it
        # changes nothing in how they lex (drivers send SET NAMES utf8mb4 as they connect).
        return setting_effects("names", _glot_constant(item.this))
    assignment = isinstance(item.this, exp.EQ)
    target = item.this.this if assignment else item.this
    value = _glot_constant(item.this.expression) if assignment else None
    effects = setting_effects(target.name if isinstance(target, exp.Expr) else "", value)
    if kind in _GLOT_SERVER_SCOPES or (
        isinstance(target, exp.SessionParameter)
        and str(target.args.get("kind") or "").upper() in _GLOT_SERVER_SCOPES
    ):
        effects.add("configuration")
    return effects


# MariaDB's `SET STATEMENT a = x, ... FOR statement`, an opaque Command here (the dba
# group's), sets its settings for that one statement: `character_set_results = utf16`
# there writes its answer in a set the front does not read. Any character set named in
# it counts, wherever (over-refusing a rare form, never under-).
_SET_STATEMENT_CHARSET = re.compile(r"character_set", re.IGNORECASE)


def _glot_set_statement_effects(node: exp.Command) -> set[str]:
    rest = node.args.get("expression")
    text = rest.name if isinstance(rest, exp.Expr) else str(rest or "")
    if node.name.upper() == "SET" and _SET_STATEMENT_CHARSET.search(text):
        return {"configuration", "unreadable"}
    return set()


def _glot_constant(node: exp.Expr | None) -> str | None:
    """A setting's value when it is one constant: a string, a number, a bare word (`gbk`,
    `` `gbk` ``, DEFAULT); None for anything computed."""
    if isinstance(node, (exp.Literal, exp.Var, exp.Identifier)):
        value_read()
        return node.name
    if isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier):
        return node.name
    return None


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
    options = node.args.get("options") or ()
    if any(isinstance(option, exp.EngineProperty) and option.name.upper() == "BLACKHOLE"
           for option in options):
        entry.effects.add("destroy")  # MySQL's BLACKHOLE engine keeps no row
    if _remote_storage(options):
        entry.effects.add("server")


def _glot_create(entry: Entry, node: exp.Create) -> None:
    if node.args.get("replace") and entry.object == "table":
        entry.effects.add("destroy")  # the old table and its rows are gone
    properties = node.args.get("properties")
    if properties is not None and _remote_storage(properties.expressions):
        entry.effects.add("server")


def _glot_read(entry: Entry, node: exp.Select | exp.Show) -> None:
    """What a read does besides reading: MySQL's SELECT ... INTO @v sets variables, its
    process list shows the server's sessions."""
    if isinstance(node, exp.Select) and node.args.get("into"):
        entry.effects.add("session")
    elif isinstance(node, exp.Show) and node.name.upper() in _PROCESS_SHOWS:
        entry.effects.add("server")


# MySQL's and MariaDB's storage engines that keep a table's rows in another server, a
# file of the server's, or a cloud store; and the options that say where.
_REMOTE_ENGINES = frozenset({"FEDERATED", "FEDERATEDX", "CONNECT", "SPIDER", "S3"})
_REMOTE_OPTIONS = frozenset({"CONNECTION", "FILE_NAME"})


def _remote_storage(properties: Iterable[exp.Expr]) -> bool:
    """Whether a table's options put its rows elsewhere than the server's own storage
    (`ENGINE=FEDERATED CONNECTION='mysql://...'`, CONNECT's FILE_NAME='/etc/passwd')."""
    for option in properties:
        if isinstance(option, exp.EngineProperty):
            if option.name.upper() in _REMOTE_ENGINES:
                return True
        elif isinstance(option, exp.Property) and option.name.upper() in _REMOTE_OPTIONS:
            return True
    return False


# What shows the server's threads and the statements they run: every session of the
# gateway's account, other agents' statements and the values they carry.
_PROCESS_SHOWS = frozenset({"PROCESSLIST", "ENGINE"})
_PROCESS_TABLES = frozenset({"information_schema.processlist"})


def _into_variables(node: exp.Select) -> bool:
    """Whether a SELECT ... INTO sets variables (MySQL's `INTO @v`), not a new table."""
    into = node.args["into"]
    targets = [into.this, *into.expressions] if isinstance(into, exp.Into) else []
    return bool(targets) and all(
        isinstance(t, exp.Parameter) or (isinstance(t, exp.Table)
                                         and isinstance(t.this, exp.Parameter))
        for t in targets if t is not None)


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


# --- bounds: a write's condition in bounds.py's terms -----------------------------------------

_GLOT_COMPARISONS: dict[type, str] = {
    exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<", exp.GT: ">", exp.LTE: "<=", exp.GTE: ">=",
    exp.NullSafeEQ: "not_distinct", exp.NullSafeNEQ: "distinct",
}
# Operators over constants that give one constant (not functions, which may be volatile).
_GLOT_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.DPipe)
_GLOT_PARAMETERS = (exp.Placeholder, exp.Parameter, exp.SessionParameter, exp.HexString)
# Clauses a SELECT of one row of constants may have (no FROM, WHERE, GROUP BY, ...).
_GLOT_PLAIN_SELECT = frozenset({"expressions", "kind", "distinct", "limit"})


def _glot_table_names(table: exp.Table, fold: Callable[[exp.Expr], str]
                      ) -> frozenset[tuple[str, ...]]:
    """The qualifiers of the written table's columns, folded as the walker folds names."""
    alias = table.args.get("alias")
    catalog, db = (fold(p) if p is not None else None
                   for p in (table.args.get("catalog"), table.args.get("db")))
    return bounds.table_names(fold(table.this), db, catalog,
                              fold(alias.this) if alias and alias.this else None)


class _GlotCondition:
    """Translates sqlglot's condition of a write into bounds.py's predicates."""

    __slots__ = ("_fold", "_target")

    def __init__(self, fold: Callable[[exp.Expr], str], target: bounds.Target) -> None:
        self._fold = fold
        self._target = target

    def predicate(self, node: exp.Expr) -> bounds.Predicate:
        node = node.unnest()
        if isinstance(node, exp.Connector):
            terms = tuple(self.predicate(term) for term in node.flatten())
            return bounds.Logic(isinstance(node, exp.And), terms)
        if isinstance(node, exp.Not):
            return bounds.Not(self.predicate(node.this))
        op = _GLOT_COMPARISONS.get(type(node))
        if op is not None:
            any_of = node.expression.unnest()
            if op == "=" and isinstance(any_of, exp.Any):
                array = any_of.this.unnest()
                if isinstance(array, exp.Array):
                    return self._member(node.this, array.expressions)
            return bounds.Compare(op, self.term(node.this), self.term(node.expression))
        if isinstance(node, exp.In) and not (node.args.get("query") or node.args.get("unnest")
                                             or node.args.get("field")):
            return self._member(node.this, node.expressions)
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            return bounds.NullTest(self.term(node.this), is_null=True)
        return self.term(node)

    def _member(self, subject: exp.Expr, items: list[exp.Expr]) -> bounds.Member:
        return bounds.Member(self.term(subject), tuple(self.term(item) for item in items))

    def term(self, node: exp.Expr) -> bounds.Term:
        node = node.unnest()
        if isinstance(node, exp.Literal):
            value_read()
            return bounds.Const(node.name) if node.is_string else bounds.number(node.name)
        if isinstance(node, exp.Boolean):
            return bounds.Const(bool(node.this))
        if isinstance(node, exp.Null):
            return bounds.Const(None)
        if isinstance(node, _GLOT_PARAMETERS):
            return bounds.UNKNOWN_VALUE
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                return bounds.OPAQUE
            parts = [node.args.get(key) for key in ("catalog", "db", "table")]
            return self._target.column(tuple(self._fold(p) for p in parts if p is not None))
        if isinstance(node, exp.Collate):
            return self.term(node.this)
        if isinstance(node, exp.Neg):
            inner = self.term(node.this)
            if isinstance(inner, bounds.Const) and isinstance(inner.value, Decimal):
                return bounds.Const(-inner.value)
            return bounds.UNKNOWN_VALUE if isinstance(inner, bounds.Const) else bounds.OPAQUE
        if isinstance(node, (exp.Cast, *_GLOT_ARITHMETIC)):
            operands = [self.term(o) for o in (node.this, node.args.get("expression")) if o]
            if all(isinstance(o, bounds.Const) for o in operands):
                return bounds.UNKNOWN_VALUE
        return bounds.OPAQUE


def _glot_constant_rows(source: exp.Expr | None) -> int | None:
    """How many rows a MERGE source of constants has: VALUES, or a SELECT of constants
    without FROM; None for any other source."""
    if isinstance(source, exp.Values):
        return len(source.expressions)
    query = source.this if isinstance(source, exp.Subquery) else None
    if isinstance(query, exp.Values):
        return len(query.expressions)
    if not isinstance(query, exp.Select) or not _GLOT_PLAIN_SELECT.issuperset(
            k for k, v in query.args.items() if v):
        return None
    constants = _GlotCondition(lambda part: part.name, _GLOT_NO_TARGET)
    found = [constants.term(e.this if isinstance(e, exp.Alias) else e)
             for e in query.expressions]
    return 1 if all(isinstance(t, bounds.Const) for t in found) else None


_GLOT_NO_TARGET = bounds.Target(frozenset(), alone=False)


class _Folding(Enum):
    POSTGRES = "postgres"  # unquoted lower-cased, quoted kept
    INSENSITIVE = "insensitive"  # every name lower-cased
    UPPER = "upper"  # unquoted names are upper-case: a quoted all-upper name is the same name


@dataclass(frozen=True, slots=True)
class _Lexing:
    """One way a server may lex a text: its tokenizer, whether a backslash escapes in a
    string, whether "..." is a name (MySQL's ANSI_QUOTES)."""

    tokenizer: type[Tokenizer]
    backslashes: bool = True
    ansi_quotes: bool = False

    def marks(self, default: _Lexing) -> str:
        """The characters a text must hold for this lexing to read it otherwise than
        `default`: a backslash, where they differ on it; a double quote, on "..."."""
        return ("\\" if self.backslashes != default.backslashes else "") + (
            '"' if self.ansi_quotes != default.ansi_quotes else "")


@dataclass(frozen=True, slots=True)
class _GlotDialect:
    dialect: Dialect
    folding: _Folding
    # MySQL runs the text inside /*! ... */ comments.
    executable_comments: bool
    # The default lexing first, then the others a server's settings can give (MySQL's
    # sql_mode: NO_BACKSLASH_ESCAPES reads a backslash in a string as itself, ANSI_QUOTES
    # a "..." as a name).
    lexings: tuple[_Lexing, ...]
    # MySQL compares a string with a number as numbers ('abc' = 0): see bounds.py.
    numeric_strings: bool
    # MySQL and SQLite honour LIMIT on DELETE and UPDATE.
    write_limits: bool

    def lexing(self, backslashes: bool | None) -> tuple[_Lexing, ...]:
        """The lexings of a server whose backslashes escape or not (None: unknown, all; a
        dialect of one lexing has it either way)."""
        found = tuple(lx for lx in self.lexings if lx.backslashes == backslashes)
        return found if backslashes is not None and found else self.lexings


# sqlglot reads `{# ... #}` as a comment in every dialect (a Jinja template's), which no
# server does: MySQL reads `{` and a `#` comment to the end of its line, and runs what
# the next lines hold (`SELECT 1, {#\n d '2020-01-01'}; DROP TABLE t; -- #}`).
_TEMPLATE_COMMENT = "{#"


def _server_tokenizer(base: type[Tokenizer], name: str,
                      **overrides: object) -> type[Tokenizer]:
    """`base` with `overrides`, and without the comments no server reads."""
    tokenizer: type[Tokenizer] = type(name, (base,), overrides)
    tokenizer._COMMENTS = {start: end for start, end in tokenizer._COMMENTS.items()
                           if start != _TEMPLATE_COMMENT}
    return tokenizer


def _mysql_lexings(base: type[Tokenizer]) -> tuple[_Lexing, ...]:
    """MySQL's four lexings: backslashes as escapes or as themselves (NO_BACKSLASH_ESCAPES),
    "..." as a string or as a name (ANSI_QUOTES, a name where a backslash escapes nothing).
    sqlglot takes `"` for an escape in strings (`""` in "..."), which holds only while
    `"` quotes strings: under ANSI_QUOTES it would read `"'` in '...' as a quote escaped."""

    def lexing(name: str, backslashes: bool, ansi_quotes: bool) -> _Lexing:
        dropped = ({"\\"} if not backslashes else set()) | ({'"'} if ansi_quotes else set())
        overrides: dict[str, object] = {
            "STRING_ESCAPES": [e for e in base.STRING_ESCAPES if e not in dropped],
            "BYTE_STRING_ESCAPES": [e for e in base.BYTE_STRING_ESCAPES if e not in dropped]}
        if ansi_quotes:
            overrides |= {"QUOTES": [q for q in base.QUOTES if q != '"'],
                          "IDENTIFIERS": [*base.IDENTIFIERS, '"']}
        return _Lexing(_server_tokenizer(base, name, **overrides), backslashes, ansi_quotes)

    return (lexing("MySQLServer", True, False),
            lexing("MySQLLiteralBackslashes", False, False),
            lexing("MySQLAnsiQuotes", True, True),
            lexing("MySQLAnsiLiteral", False, True))


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
    mysql = isinstance(dialect, MySQL)
    base = dialect.tokenizer_class
    lexings = (_mysql_lexings(base) if mysql
               else (_Lexing(_server_tokenizer(base, f"{base.__name__}Server")),))
    return _GlotDialect(dialect, folding, mysql, lexings, numeric_strings=mysql,
                        write_limits=mysql or isinstance(dialect, SQLite))


class _GlotWalker:
    """Walks sqlglot expressions, filling a Collector."""

    __slots__ = ("_folding", "_setup", "_text", "out")

    def __init__(self, setup: _GlotDialect) -> None:
        self.out = Collector()
        self._setup = setup
        self._folding = setup.folding
        self._text = ""

    def statement(self, node: exp.Expr, text: str) -> None:
        self._text = text
        first = len(self.out.entries)
        self._expr(node, NO_SCOPE, force=True)
        if len(self.out.entries) > first:
            self.out.entries[first].columns = glot_lineage.result_columns(node)
            self.out.entries[first].stores = glot_lineage.stored_columns(node, text)

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
        if isinstance(node, exp.Select) and node.args.get("into") and not _into_variables(node):
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
            entry.effects.update(_glot_set_statement_effects(node))
        elif isinstance(node, (exp.Update, exp.Delete)):
            entry.has_where = node.args.get("where") is not None
            entry.bounded = self._write_bounded(node)
        elif isinstance(node, exp.Insert):
            conflict = node.args.get("conflict")
            rewrites = node.args.get("alternative") == "REPLACE" or (
                conflict is not None
                and (conflict.args.get("duplicate") or conflict.args.get("expressions")))
            entry.bounded = not (rewrites and isinstance(node.expression, exp.Query))
        elif isinstance(node, exp.Merge):
            entry.bounded = self._merge_bounded(node)
        elif isinstance(node, exp.Alter):
            _glot_alter(entry, node)
        elif isinstance(node, exp.Create):
            _glot_create(entry, node)
        elif isinstance(node, (exp.Select, exp.Show)):
            _glot_read(entry, node)
        elif isinstance(node, (exp.Copy, exp.LoadData)):
            _glot_copy(entry, node)
        elif isinstance(node, exp.Set):
            for item in node.expressions:
                entry.effects.update(_glot_setting_effects(item))
        elif isinstance(node, exp.Execute):
            _glot_execute(entry, node)

    def _write_bounded(self, node: exp.Update | exp.Delete) -> bool:
        """An UPDATE's or DELETE's rows are bounded (bounds.py). A write to several tables
        at once (MySQL's `DELETE t1, t2 FROM ...`, `UPDATE t1 JOIN t2 ...`) is not: its
        condition may bound one of them only."""
        table = node.this
        if not isinstance(table, exp.Table) or table.args.get("joins") or node.args.get(
                "tables"):
            return False
        alone = not (node.args.get("using") or node.args.get("from_"))
        condition = _GlotCondition(
            self._fold, bounds.Target(_glot_table_names(table, self._fold), alone))
        where, limit = node.args.get("where"), node.args.get("limit")
        rows = limit.expression if isinstance(limit, exp.Limit) else None
        if isinstance(rows, exp.Literal):
            value_read()
        honoured = (self._setup.write_limits and isinstance(rows, exp.Literal)
                    and rows.is_int)
        return bounds.write_bounded(
            condition.predicate(where.this) if where is not None else None,
            limit=int(rows.name) if honoured and rows is not None else None,
            numeric_strings=self._setup.numeric_strings)

    def _merge_bounded(self, node: exp.Merge) -> bool:
        """As pglast_reader reads MERGE: no WHEN NOT MATCHED BY SOURCE updates or deletes, and
        the ON condition bounds the target, a source of constant rows counting as constants."""
        whens = node.args.get("whens")
        changes = [when for when in (whens.expressions if whens else ())
                   if isinstance(when.args.get("then"), (exp.Update, exp.Var))]
        if not changes:
            return True
        on, table, source = node.args.get("on"), node.this, node.args.get("using")
        if any(when.args.get("source") for when in changes) or on is None or not isinstance(
                table, exp.Table):
            return False
        rows = _glot_constant_rows(source)
        alias = source.args.get("alias") if isinstance(source, exp.Expr) else None
        constants = (frozenset({(self._fold(alias.this),)})
                     if rows is not None and alias is not None and alias.this else frozenset())
        target = bounds.Target(_glot_table_names(table, self._fold), False, constants)
        return bounds.write_bounded(_GlotCondition(self._fold, target).predicate(on),
                                    rows=1 if rows is None else rows,
                                    numeric_strings=self._setup.numeric_strings)

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
                table_name = ".".join([*qualifiers, folded])
                self.out.current.tables.add(table_name)
                if self._setup.executable_comments and table_name in _PROCESS_TABLES:
                    self.out.current.effects.add("server")
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


def _glot_parse(text: str, setup: _GlotDialect, tokenizer: type[Tokenizer],
                version: int | None) -> tuple[str, list[Token], list[exp.Expr | None]]:
    """`text` as the server runs it (MySQL's executable comments), its tokens and the
    statements they parse into; Unparsable when it does not parse."""
    if setup.executable_comments:
        text = executable_comments(text, version, "\\" in tokenizer.STRING_ESCAPES,
                                   '"' in tokenizer.IDENTIFIERS)
    try:
        tokens = tokenizer(dialect=setup.dialect).tokenize(text)
        if setup.executable_comments:
            tokens = _mysql_savepoints(tokens)
        nodes = setup.dialect.parser(error_level=ErrorLevel.RAISE).parse(tokens, text)
    except SqlglotError as error:
        raise Unparsable(_glot_error(error)) from None
    return text, tokens, nodes


def _read_sqlglot(text: str, name: str, tokenizer: type[Tokenizer],
                  version: int | None = None) -> list[Entry]:
    setup = _glot_dialect(name)
    text, tokens, nodes = _glot_parse(text, setup, tokenizer, version)
    chunks = _chunks(tokens)
    if len(chunks) != len(nodes):
        raise Unparsable("statements could not be delimited")
    if setup.executable_comments:
        _mode_changes_last(nodes)
    walker = _GlotWalker(setup)
    for chunk, node in zip(chunks, nodes, strict=True):
        if node is None or isinstance(node, exp.Semicolon):
            continue
        first = chunk[0]
        if _glot_kind(node) is None:
            raise Unparsable(
                f'not a SQL statement at or near "{one_line(first.text, 60)}", '
                f"at index {first.start}"
            )
        statement = text[first.start : chunk[-1].end + 1].strip()
        if not (setup.executable_comments and isinstance(node, exp.Command)
                and (_mysql_prepared(walker.out, node, statement, name, tokenizer)
                     or _mysql_role(walker.out, node, statement)
                     or _mysql_savepoint(walker.out, node, statement))):
            walker.statement(node, statement)
    return walker.out.entries


# -- MySQL's sql_mode, which says how the server lexes what follows ---------------------
#
# The server lexes each statement in its session's sql_mode of the moment, and reports
# NO_BACKSLASH_ESCAPES in every OK packet's status. Only a SET of the session's sql_mode
# changes it for good (an EXECUTE may run one); a stored program (CALL, a function, a
# trigger) sets its own and puts its caller's back when it ends, without the status bit:
# MariaDB 10.11 then reports the mode the program last set, not the one it lexes in.
_MODE_WORDS = re.compile(r"sql_mode|execute", re.IGNORECASE)
_MODE_NAMES = frozenset({"sql_mode"})
_SESSION_SCOPES = frozenset({"", "SESSION", "LOCAL"})


def _sets_mode(node: exp.Expr | None) -> bool | None:
    """Whether a statement changes the session's sql_mode: True for a SET of it, False
    when it cannot, None when the text cannot tell (an EXECUTE, a Command naming it)."""
    if isinstance(node, exp.Set):
        return any(_mode_item(item) for item in node.expressions)
    if isinstance(node, exp.Command):
        rest = node.args.get("expression")
        words = f"{node.name} {rest.name if isinstance(rest, exp.Expr) else rest or ''}"
        return None if _MODE_WORDS.search(words) else False
    return False


def _mode_item(item: exp.Expr) -> bool:
    """Whether one item of a SET assigns the session's sql_mode."""
    kind = str(item.args.get("kind") or "").upper()
    assignment = item.this if isinstance(item, exp.SetItem) else None
    if not isinstance(assignment, exp.EQ) or kind not in _SESSION_SCOPES:
        return False
    target = assignment.this
    if isinstance(target, exp.SessionParameter):
        scope = str(target.args.get("kind") or "").upper()
        return scope in _SESSION_SCOPES and target.name.lower() in _MODE_NAMES
    return isinstance(target, exp.Column) and not target.table and \
        target.name.lower() in _MODE_NAMES


def _mode_changes_last(nodes: list[exp.Expr | None]) -> None:
    """Unparsable when a statement that may change sql_mode has others after it: the
    server lexes those in the new mode, which no whole reading of the text follows
    (`SET sql_mode = 'NO_BACKSLASH_ESCAPES'; SELECT 'a\\'; DROP TABLE t; -- '`)."""
    statements = [n for n in nodes if n is not None and not isinstance(n, exp.Semicolon)]
    if any(_sets_mode(node) is not False for node in statements[:-1]):
        raise Unparsable("a statement that may change sql_mode (a SET of it, an EXECUTE) "
                         "must end its text: the server lexes what follows it in a mode "
                         "tollgate cannot follow; send the rest as a text of its own")


def sql_mode_change(text: str, backslashes: bool | None,
                    server_version: str | None = None) -> bool | None:
    """What running the MySQL `text` (read in the lexings of `backslashes`) did to the
    session's sql_mode: False, nothing (the server's status bit after it may be a stored
    program's, and is not the session's); True, its last statement set it (the status
    after it is the session's); None, it cannot be told (an EXECUTE, a text no lexing
    reads alike)."""
    if _MODE_WORDS.search(text) is None:
        return False
    setup = _glot_dialect("mysql")
    version = server_version_id(server_version)
    found: set[bool | None] = set()
    for lexing in setup.lexing(backslashes):
        try:
            _, _, nodes = _glot_parse(text, setup, lexing.tokenizer, version)
        except Unparsable:
            return None
        statements = [n for n in nodes if n is not None and not isinstance(n, exp.Semicolon)]
        changes = [_sets_mode(node) for node in statements]
        found.add(False if not any(c is not False for c in changes) else
                  True if changes[-1] is True and not any(
                      c is not False for c in changes[:-1]) else None)
    return found.pop() if len(found) == 1 else None


# SAVEPOINT s, RELEASE SAVEPOINT s and START TRANSACTION WITH CONSISTENT SNAPSHOT (what
# mysqldump --single-transaction sends): MySQL's and MariaDB's, which sqlglot's MySQL
# parser does not know (ROLLBACK TO SAVEPOINT and START TRANSACTION READ ONLY it does).
# Alone in their statement, their first token is made a Command's, and the Command read
# as the transaction statement it is.
_NAMES = frozenset({TokenType.VAR, TokenType.IDENTIFIER})
_NAME = r"(?:\w+|`(?:[^`]|``)+`)"
_CHARACTERISTIC = r"(?:WITH\s+CONSISTENT\s+SNAPSHOT|READ\s+(?:ONLY|WRITE))"
_MYSQL_TRANSACTION = re.compile(
    rf"(?:RELEASE\s+)?SAVEPOINT\s+{_NAME}"
    rf"|START\s+TRANSACTION\s+{_CHARACTERISTIC}(?:\s*,\s*{_CHARACTERISTIC})*",
    re.IGNORECASE)
_SNAPSHOT = ["WITH", "CONSISTENT", "SNAPSHOT"]


def _mysql_savepoints(tokens: list[Token]) -> list[Token]:
    """`tokens`, each savepoint statement's (and each START TRANSACTION WITH CONSISTENT
    SNAPSHOT's) as a Command's: its keyword, then the rest of it as one string (what
    sqlglot's tokenizer makes of a Command's words)."""
    out: list[Token] = []
    statement: list[Token] = []
    for token in [*tokens, None]:
        if token is not None and token.token_type is not TokenType.SEMICOLON:
            statement.append(token)
            continue
        words = [t.text.upper() for t in statement]
        if (words[:-1] in (["SAVEPOINT"], ["RELEASE", "SAVEPOINT"])
                and statement[-1].token_type in _NAMES) or (
                words[:2] == ["START", "TRANSACTION"] and any(
                    words[i:i + 3] == _SNAPSHOT for i in range(2, len(words)))):
            first, rest = statement[0], statement[1:]
            statement = [
                Token(TokenType.COMMAND, first.text, first.line, first.col, first.start,
                      first.end, first.comments),
                Token(TokenType.STRING, " ".join(t.text for t in rest), rest[-1].line,
                      rest[0].col, rest[0].start, rest[-1].end, rest[-1].comments)]
        out += statement
        statement = []
        if token is not None:
            out.append(token)
    return out


def _mysql_savepoint(out: Collector, node: exp.Command, statement: str) -> bool:
    """A SAVEPOINT, RELEASE SAVEPOINT or START TRANSACTION WITH CONSISTENT SNAPSHOT (a
    Command by _mysql_savepoints) described as a transaction statement; False for any
    other Command."""
    if node.name.upper() not in ("SAVEPOINT", "RELEASE", "START") \
            or not _MYSQL_TRANSACTION.fullmatch(statement.rstrip(";").strip()):
        return False
    out.open("transaction", None, statement)
    out.close()
    return True


# SET ROLE name, SET ROLE `name`, SET DEFAULT ROLE ... (the name only when it is alone).
_MYSQL_ROLE = re.compile(
    r"\s*(?:(?P<default>DEFAULT\s+)ROLE\b|ROLE\b\s*(?:[`'\"]?(?P<name>\w+)[`'\"]?\s*$)?)",
    re.IGNORECASE)


def _mysql_role(out: Collector, node: exp.Command, statement: str) -> bool:
    """MySQL's and MariaDB's SET ROLE and SET DEFAULT ROLE (opaque Commands to sqlglot)
    described as the setting of `role` they are; False for any other Command."""
    found = _MYSQL_ROLE.match(str(node.args.get("expression") or ""))
    if node.name.upper() != "SET" or found is None:
        return False
    value = None if found["default"] else found["name"]
    entry = out.open("set", None, statement)
    entry.settings.append({"name": "role", "value": value, "reset": False})
    entry.effects |= setting_effects("role", value)
    out.close()
    return True


# --- MySQL's prepared statements in SQL --------------------------------------------------------
#
# sqlglot reads PREPARE, EXECUTE and DROP PREPARE as opaque Commands (kind "other"). What
# they run is read here instead: `PREPARE s FROM '...'` and `EXECUTE IMMEDIATE '...'` as the
# statements of their string, nested under them (the string read as the server will read
# it: its escapes undone by the same lexing); a statement taken from anything but one
# string literal (`FROM @v`, a CONCAT) as `dynamic`, code no parser here sees; `EXECUTE s`
# as running what a decided PREPARE made, its result columns of unknown lineage; `DROP
# PREPARE s` as a session statement. EXECUTE's USING takes user variables and literals
# only: anything else (an expression, a subquery) leaves the statement opaque.

_USING_VALUES = frozenset({TokenType.STRING, TokenType.NUMBER, TokenType.NULL})


def _mysql_prepared(out: Collector, node: exp.Command, statement: str, name: str,
                    tokenizer: type[Tokenizer]) -> bool:
    """A PREPARE, EXECUTE or DROP PREPARE described into `out`; False for any other
    Command (and for one of those whose form is not read here: it stays opaque)."""
    keyword = node.name.upper()
    rest = node.args.get("expression")
    setup = _glot_dialect(name)
    try:
        tokens = tokenizer(dialect=setup.dialect).tokenize(
            rest.name if isinstance(rest, exp.Expr) else str(rest or ""))
    except SqlglotError:
        return False
    # Keywords by their token's type, so that a string saying USING is not one.
    words = [t.text.upper() if t.token_type is not TokenType.STRING else "" for t in tokens]
    if keyword == "DROP":
        if len(tokens) != 2 or words[0] != "PREPARE":
            return False
        out.open("discard", None, statement)
        out.close()
        return True
    if keyword == "PREPARE" and len(tokens) >= 3 and words[1] == "FROM":
        _mysql_dynamic(out.open("prepare", None, statement), out, tokens[2:], name,
                       tokenizer)
        out.close()
        return True
    if keyword != "EXECUTE" or not tokens:
        return False
    immediate = words[0] == "IMMEDIATE"
    using = words.index("USING") if "USING" in words else len(tokens)
    if not _using_values(tokens[using + 1:]) or (not immediate and using != 1):
        return False
    entry = out.open("execute", None, statement)
    entry.columns = glot_lineage.result_columns(node)  # what a statement prepared returns
    if immediate:
        _mysql_dynamic(entry, out, tokens[1:using], name, tokenizer)
    out.close()
    return True


def _mysql_dynamic(entry: Entry, out: Collector, source: list[Token], name: str,
                   tokenizer: type[Tokenizer]) -> None:
    """The statements a PREPARE's or EXECUTE IMMEDIATE's source runs, nested under
    `entry`; `dynamic` when the source is not one string literal."""
    if len(source) != 1 or source[0].token_type is not TokenType.STRING:
        entry.effects.add("dynamic")
        return
    text = source[0].text
    if _MYSQL_DASHES.search(text):
        raise Unparsable("`--` before a non-ASCII character (MySQL reads no comment there) "
                         "is not analysed")
    for inner in _read_sqlglot(text, name, tokenizer):
        inner.nested, inner.text, inner.columns = True, entry.text, None
        out.entries.append(inner)
        entry.tables |= inner.tables
        entry.functions |= inner.functions
        entry.opaque |= inner.opaque


def _using_values(tokens: list[Token]) -> bool:
    """Whether EXECUTE's USING list (its tokens) is user variables and literals alone."""
    items: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type is TokenType.COMMA:
            items.append([])
        else:
            items[-1].append(token)
    if items == [[]]:
        return True
    return all(
        (len(item) == 1 and item[0].token_type in _USING_VALUES)
        or (len(item) == 2 and item[0].token_type is TokenType.PARAMETER and item[0].text == "@"
            and item[1].token_type in (TokenType.VAR, TokenType.IDENTIFIER))
        for item in items)


# -- MySQL's executable comments ----------------------------------------------------------
# MariaDB's lexer (sql_lex.cc): `/*!` or `/*M!`, then a version of exactly 5 or 6 digits, or
# none. No version: the text inside is SQL. A version at most the server's own
# (MYSQL_VERSION_ID, 101119 for 10.11.19): SQL, but for MySQL-only versions
# 50700-99999 in a `/*!` comment, which MariaDB leaves out (5.7's syntax is not its own);
# above it: a comment, skipped to its first `*/` (one `/* */` inside it nests, which
# is refused here rather than followed). Inside a comment that runs, strings are strings:
# `'*/'` does not end it.
_MARIADB_VERSION = re.compile(r"(?:\d+\.\d+\.\d+-)?(\d+)\.(\d+)\.(\d+)-MariaDB", re.IGNORECASE)
_MYSQL_ONLY = range(50700, 100000)
_PLAIN = re.compile(r"['\"`#/*-]")  # where something but plain text may start


def server_version_id(version: str | None) -> int | None:
    """A MariaDB server's version as its lexer compares it (10.11.19 -> 101119), from the
    version its handshake announced (MariaDB 10's `5.5.5-10.11.19-MariaDB-...`); None for
    another server's or none: its versioned comments are refused, never guessed."""
    found = _MARIADB_VERSION.match(version or "")
    if found is None:
        return None
    major, minor, patch = map(int, found.groups())
    return major * 10000 + minor * 100 + patch


def executable_comments(text: str, version: int | None, backslashes: bool = True,
                        ansi_quotes: bool = False) -> str:
    """`text` as MariaDB `version` runs it: each executable comment that runs as its SQL,
    each that does not as a space (`backslashes`: a backslash escapes in strings, as
    without NO_BACKSLASH_ESCAPES; `ansi_quotes`: "..." is a name). Unparsable for a
    comment that depends on the version where it is unknown (None), and for the forms
    whose reading is the server's alone: an executable comment inside one, a line
    comment inside one, one never closed, a comment nested in one that is skipped."""
    if "/*" not in text:
        return text
    out: list[str] = []
    i, n, inside = 0, len(text), False
    while i < n:
        c = text[i]
        if c in "'\"`":
            end = _quoted_end(text, i, backslashes and (
                c == "'" or (c == '"' and not ansi_quotes)))
        elif c == "#" or (text.startswith("--", i) and (i + 2 >= n or text[i + 2] <= " ")):
            if inside:
                raise Unparsable("a line comment inside an executable comment (/*! ... */) "
                                 "is not analysed")
            end = text.find("\n", i)
            end = n if end < 0 else end
        elif inside and text.startswith("*/", i):
            out.append(" ")
            i, inside = i + 2, False
            continue
        elif text.startswith("/*", i):
            marker = _EXECUTABLE.match(text, i)
            if marker is None:  # a comment: to its first */
                end = text.find("*/", i + 2)
                if end < 0:
                    raise Unparsable("a comment never closed is not analysed")
                end += 2
            else:
                if inside:
                    raise Unparsable("an executable comment (/*! ... */) inside another is "
                                     "not analysed")
                out.append(" ")
                i, inside = _executable(text, marker, version)
                continue
        else:
            plain = _PLAIN.search(text, i + 1)
            end = n if plain is None else plain.start()
        out.append(text[i:end])
        i = end
    if inside:
        raise Unparsable("an executable comment (/*! ... */) never closed is not analysed")
    return "".join(out)


_EXECUTABLE = re.compile(r"/\*(M?)!(\d{5,6})?")


def _executable(text: str, marker: re.Match[str], version: int | None) -> tuple[int, bool]:
    """An executable comment's opening: where reading goes on, and whether its text runs
    (else it was skipped to its end)."""
    digits = marker.group(2)
    if digits is not None and version is None:
        raise Unparsable(f"the executable comment {marker.group(0)} runs or not by the "
                         "server's version, which tollgate does not know here (a MariaDB "
                         "server's is read from its handshake)")
    if digits is None or (int(digits) <= (version or 0) and (
            bool(marker.group(1)) or int(digits) not in _MYSQL_ONLY)):
        return marker.end(), True
    end = text.find("*/", marker.end())
    if end < 0:
        raise Unparsable("an executable comment (/*! ... */) never closed is not analysed")
    if "/*" in text[marker.end():end]:
        raise Unparsable("a comment inside an executable comment the server skips is not "
                         "analysed")
    return end + 2, False


def _quoted_end(text: str, start: int, backslashes: bool) -> int:
    """Where the string or name opened at `start` ends (past its closing quote; a quote
    doubled is one inside it). Never closed: the text's end (the parser refuses it)."""
    quote, i, n = text[start], start + 1, len(text)
    while i < n:
        c = text[i]
        if backslashes and c == "\\":
            i += 2
        elif c == quote:
            if i + 1 < n and text[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n
