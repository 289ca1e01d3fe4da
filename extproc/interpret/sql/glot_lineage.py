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
    renamed,
    resolve,
    star,
)

_Named = list[tuple[str | None, Lineage]]
_SAME_VALUE_TYPES = frozenset({exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR})
_DML = (exp.Insert, exp.Update, exp.Delete, exp.Merge)


def result_columns(node: exp.Expr) -> list[Column] | None:
    """The result columns of a top-level statement; None when it returns no table data."""
    if isinstance(node, exp.Select) and node.args.get("into"):
        return None
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
    lineage = _expr(node, scope).derived()
    if renames:
        return [Relation(alias, [(n, lineage) for n in renames])]
    return [Relation(alias, every=lineage)]


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
