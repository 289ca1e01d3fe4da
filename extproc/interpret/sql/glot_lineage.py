"""Result-column lineage (see lineage.py) for the dialects sqlglot reads.

The same rules over sqlglot's tree, with two differences: a function sqlglot does not
recognise (`exp.Anonymous`) is known only if lineage.KNOWN_FUNCTIONS names it, and a
column's `name` is given only where every dialect agrees on it (an AS, a column, a star):
the name SQLite or MySQL give an unnamed expression is its text as written, which a
re-rendered tree does not reproduce, so it is null (the pack then masks by position it
cannot match: every column).
"""

from __future__ import annotations

from sqlglot import exp

from extproc.interpret.sql.lineage import (
    ALL_COLUMNS,
    KNOWN_FUNCTIONS,
    NOTHING,
    UNKNOWN,
    UNKNOWN_RESULT,
    Column,
    Lineage,
    Relation,
    Scope,
    column,
    merged,
    produced,
    renamed,
    resolve,
    star,
)

_Named = list[tuple[str | None, Lineage]]
_SAME_VALUE_TYPES = frozenset({exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR})
_DML = (exp.Insert, exp.Update, exp.Delete, exp.Merge)


# MySQL's SHOW WARNINGS and SHOW ERRORS: a message quotes the values the statement before
# read (`Truncated incorrect DOUBLE value: '...'`), whatever they were.
_DIAGNOSTICS = frozenset({"WARNINGS", "ERRORS"})
_DIAGNOSTIC_COLUMNS = [column("level", NOTHING), column("code", NOTHING),
                       column("message", UNKNOWN)]


def result_columns(node: exp.Expr) -> list[Column] | None:
    """The result columns of a top-level statement; None when it returns no table data."""
    if isinstance(node, exp.Select) and node.args.get("into"):
        return None
    if isinstance(node, exp.Show) and node.name.upper() in _DIAGNOSTICS:
        return list(_DIAGNOSTIC_COLUMNS)
    if isinstance(node, (exp.Query, exp.Values)):
        return [column(name, lineage) for name, lineage in _query(node, Scope([], {}))]
    if isinstance(node, _DML):
        returning = node.args.get("returning")
        if not isinstance(returning, exp.Returning):
            return None
        scope = Scope([], _ctes(node, Scope([], {})))
        for key in ("this", "from_", "using", "joins"):
            for item in _items(node.args.get(key)):
                scope.relations += _from(item, scope)
        return [column(name, lineage) for name, lineage in _targets(returning.expressions,
                                                                   scope)]
    if isinstance(node, (exp.Execute, exp.Command)) or type(node).__name__ == "Call":
        return UNKNOWN_RESULT
    return None


def _items(value: object) -> list[exp.Expr]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    return [item.this if isinstance(item, (exp.From, exp.Join)) else item
            for item in items if isinstance(item, exp.Expr)]


def _name(identifier: exp.Expr | str | None) -> str:
    return (identifier.name if isinstance(identifier, exp.Expr) else identifier or "").lower()


def _ctes(node: exp.Expr, scope: Scope) -> dict[str, list[tuple[str, Lineage]]]:
    ctes = dict(scope.ctes)
    with_clause = node.args.get("with_") or node.args.get("with")
    if not isinstance(with_clause, exp.With):
        return ctes
    for cte in with_clause.expressions:
        name = _name(cte.alias)
        found = _query(cte.this, Scope([], ctes, scope.outer))
        if with_clause.args.get("recursive"):
            found = [(n, lineage.derived()) for n, lineage in found]
        ctes[name] = renamed(_named(found), [_name(c) for c in cte.alias_column_names])
    return ctes


def _named(columns: _Named) -> list[tuple[str, Lineage]]:
    return [(name or "?", lineage) for name, lineage in columns]


def _query(node: exp.Expr, outer: Scope) -> _Named:
    scope = Scope([], _ctes(node, outer), outer)
    if isinstance(node, exp.Subquery):
        return _query(node.this, scope)
    if isinstance(node, exp.SetOperation):
        left, right = _query(node.this, scope), _query(node.expression, scope)
        if len(left) != len(right) or any(n == ALL_COLUMNS for n, _ in left + right):
            return [(ALL_COLUMNS, merged(lineage for _, lineage in left + right))]
        return [(n, merged((a, b), plain=True)) for (n, a), (_, b) in zip(left, right,
                                                                         strict=True)]
    if isinstance(node, exp.Values):
        rows = [row.expressions if isinstance(row, exp.Tuple) else [row]
                for row in node.expressions]
        width = max(map(len, rows), default=0)
        return [(None, merged(_expr(row[i], scope).derived() for row in rows if i < len(row)))
                for i in range(width)]
    if not isinstance(node, exp.Select):
        return [(ALL_COLUMNS, UNKNOWN)]
    for item in _items(node.args.get("from_")) + _items(node.args.get("joins")):
        scope.relations += _from(item, scope)
    return _targets(node.expressions, scope)


def _targets(targets: list[exp.Expr], scope: Scope) -> _Named:
    out: _Named = []
    for target in targets:
        if isinstance(target, exp.Star):
            out += star([], scope)
        elif isinstance(target, exp.Column) and isinstance(target.this, exp.Star):
            out += star([_name(target.args.get("table"))], scope)
        elif isinstance(target, exp.Alias):
            out.append((_name(target.args.get("alias")), _expr(target.this, scope)))
        else:
            name = _name(target.this) if isinstance(target, exp.Column) else None
            out.append((name, _expr(target, scope)))
    return out


def _from(node: exp.Expr, scope: Scope) -> list[Relation]:
    alias = _name(node.args.get("alias"))
    renames = [_name(c) for c in node.alias_column_names] if alias else []
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
        name = _name(node.this)
        if not node.args.get("db") and name in scope.ctes:
            return [Relation(alias or name, renamed(scope.ctes[name], renames))]
        return [Relation(alias or name, renamed=frozenset(renames))]
    if isinstance(node, exp.Subquery):
        return [Relation(alias, renamed(_named(_query(node.this, scope)), renames))]
    # A function, UNNEST, a LATERAL view: its columns derive from its arguments.
    return [produced(alias, renames, _expr(node, scope).derived())]


def _expr(node: exp.Expr, scope: Scope) -> Lineage:
    if isinstance(node, exp.Column):
        if isinstance(node.this, exp.Star):
            table = node.args.get("table")
            return merged(lin for _, lin in star([_name(table)] if table else [], scope)
                          ).derived()
        return resolve([_name(p) for p in node.parts], scope)
    if isinstance(node, exp.Star):
        if isinstance(node.parent, exp.Count):
            return NOTHING  # count(*) counts rows, it reads no column
        return merged(lin for _, lin in star([], scope)).derived()
    if isinstance(node, (exp.Subquery, exp.Query)):
        columns = _query(node, scope)
        if isinstance(node, exp.Subquery) and len(columns) == 1:
            return columns[0][1]
        return merged(lineage for _, lineage in columns).derived()
    if isinstance(node, (exp.Literal, exp.Null, exp.Boolean, exp.Placeholder)):
        return NOTHING
    parts = [_expr(child, scope) for child in node.iter_expressions()]
    if isinstance(node, exp.Cast):
        to = node.args.get("to")
        if isinstance(to, exp.DataType) and to.this in _SAME_VALUE_TYPES \
                and not to.expressions and parts:
            return parts[0]
    if isinstance(node, exp.Anonymous) and node.name.lower() not in KNOWN_FUNCTIONS:
        parts.append(UNKNOWN)
    elif isinstance(node, exp.Paren) and parts:
        return parts[0]
    return merged(parts)


# --- what a statement stores ------------------------------------------------------------


_STORING = (exp.Create, exp.Insert, exp.Update, exp.Set, exp.Alter)


def stored_columns(node: exp.Expr, text: str) -> list[Column] | None:
    """What a top-level statement stores where a later statement reads it back, each value
    under the name it is stored by (a table's or a view's column, `@v` for a variable;
    None where the text does not say: an INSERT without its columns); None when it stores
    nothing. `text`: the statement's, where a `:=` would show."""
    if not (isinstance(node, _STORING) or node.args.get("into") or ":=" in text):
        return None
    stored: _Named = []
    if isinstance(node, exp.Create) and isinstance(node.expression, exp.Query):
        stored += _created(node)
    elif isinstance(node, exp.Insert):
        stored += _inserted(node)
    elif isinstance(node, exp.Update):
        stored += _assigned(node.expressions, _dml_scope(node))
    elif isinstance(node, exp.Select) and isinstance(node.args.get("into"), exp.Into):
        into = node.args["into"]
        names = [_variable(t) for t in [into.this, *into.expressions] if t is not None]
        found = _query(node, Scope([], {}))
        stored += [(names[i] if i < len(names) else None, lineage)
                   for i, (_, lineage) in enumerate(found)]
    elif isinstance(node, exp.Set):
        stored += _assigned([item.this for item in node.expressions], Scope([], {}))
    elif isinstance(node, exp.Alter):
        stored += _generated(node)
    for assignment in node.find_all(exp.PropertyEQ):
        if isinstance(assignment.this, exp.Parameter):  # MySQL's `@v := value`
            stored.append((_variable(assignment.this),
                           _expr(assignment.expression, _scope_at(assignment))))
    if not stored:
        return None
    return [column(name, lineage) for name, lineage in stored]


def _variable(node: exp.Expr) -> str:
    """A variable's name as stored by (`@v`)."""
    inner = node.this if isinstance(node, exp.Table) else node
    return "@" + _name(inner.this if isinstance(inner, exp.Parameter) else inner)


def _created(node: exp.Create) -> _Named:
    """CREATE TABLE ... AS SELECT, CREATE VIEW: the query's columns, named by the view's
    column list (MySQL's CREATE TABLE matches a query's columns to its own by name)."""
    found = _query(node.expression, Scope([], {}))
    schema = node.this
    if isinstance(schema, exp.Schema) and all(isinstance(e, exp.Identifier)
                                              for e in schema.expressions):
        names = [_name(e) for e in schema.expressions]
        return [(names[i] if i < len(names) else name, lineage)
                for i, (name, lineage) in enumerate(found)]
    return found


def _inserted(node: exp.Insert) -> _Named:
    """An INSERT's values under the columns it names (None: the table's, in order), and
    what its ON DUPLICATE KEY UPDATE / ON CONFLICT DO UPDATE assigns."""
    schema = node.this
    names = ([_name(e) for e in schema.expressions] if isinstance(schema, exp.Schema)
             else [])
    stored: _Named = []
    source = node.expression
    table = schema.this if isinstance(schema, exp.Schema) else schema
    if isinstance(source, (exp.Query, exp.Values)):
        found = _query(source, Scope([], {}))
        if not names and _copies_itself(source, table):
            names = [ALL_COLUMNS]  # each value back into the column it came from
        stored += [(names[i] if i < len(names) else None, lineage)
                   for i, (_, lineage) in enumerate(found)]
    conflict = node.args.get("conflict")
    if isinstance(conflict, exp.OnConflict):
        scope = Scope(_from(table, Scope([], {})) if isinstance(table, exp.Expr) else [], {})
        stored += _assigned(conflict.expressions, scope)
    return stored


def _copies_itself(source: exp.Expr, table: exp.Expr | None) -> bool:
    """`INSERT INTO t SELECT * FROM t`: the rows of the table it writes, whole."""
    return (isinstance(source, exp.Select) and isinstance(table, exp.Table)
            and len(source.expressions) == 1 and isinstance(source.expressions[0], exp.Star)
            and not source.args.get("joins")
            and [_name(t) for t in _items(source.args.get("from_"))] == [_name(table)])


def _assigned(assignments: list[exp.Expr], scope: Scope) -> _Named:
    """`name = value` pairs (UPDATE's SET, SET's items): each value under its name."""
    stored: _Named = []
    for pair in assignments:
        if not isinstance(pair, exp.EQ):
            continue
        target = pair.this
        name = (_variable(target) if isinstance(target, exp.Parameter)
                else _name(target.this if isinstance(target, exp.Column) else target))
        stored.append((name, _expr(pair.expression, scope)))
    return stored


def _generated(node: exp.Alter) -> _Named:
    """ALTER TABLE's generated columns (`ADD COLUMN c text AS (f(ssn))`): computed from
    the table's own."""
    scope = Scope(_from(node.this, Scope([], {})) if isinstance(node.this, exp.Expr) else [],
                  {})
    stored: _Named = []
    for constraint in node.find_all(exp.ComputedColumnConstraint):
        definition = constraint.find_ancestor(exp.ColumnDef)
        name = _name(definition.this) if definition is not None else None
        stored.append((name, _expr(constraint.this, scope)))
    return stored


def _dml_scope(node: exp.Update | exp.Delete) -> Scope:
    """The relations an UPDATE's or DELETE's expressions see: its table, its joins, its
    FROM or USING."""
    scope = Scope([], _ctes(node, Scope([], {})))
    table = node.this
    items = [table, *(_items(table.args.get("joins")) if isinstance(table, exp.Table)
                      else [])]
    for key in ("from_", "using", "joins"):
        items += _items(node.args.get(key))
    for item in items:
        if isinstance(item, exp.Expr):
            scope.relations += _from(item, scope)
    return scope


def _scope_at(node: exp.Expr) -> Scope:
    """The relations an expression deep in a statement sees: its query's, then each
    enclosing query's."""
    enclosing: list[exp.Select | exp.Update | exp.Delete] = []
    parent = node.parent
    while parent is not None:
        if isinstance(parent, (exp.Select, exp.Update, exp.Delete)):
            enclosing.append(parent)
        parent = parent.parent
    scope = Scope([], {})
    for query in reversed(enclosing):
        if isinstance(query, exp.Select):
            inner = Scope([], _ctes(query, scope), scope)
            for item in _items(query.args.get("from_")) + _items(query.args.get("joins")):
                inner.relations += _from(item, inner)
        else:
            inner = _dml_scope(query)
            inner.outer = scope
        scope = inner
    return scope
