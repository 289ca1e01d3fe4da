"""pg_dump's set_config of one row of pg_settings, read as the setting it names.

pg_dump (15.8 and later) restricts what a dump may expand, where the server knows the
setting: `SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE
name = 'restrict_nonsystem_relation_kind'`. Every row it sets has `name` equal to the
literal (pg_temp is never searched for an operator: `=` is text's), so the setting is
that one, where any other computed name could be any (the gateway keeps a session's
role: database_roles.py). Read so only in this shape: one set_config of `name` and
constants, from pg_settings alone, where `name` equals a string. Pure: pglast's JSON in,
no parse here.
"""

from __future__ import annotations

from typing import Any

_NAME_COLUMN = {"ColumnRef": {"fields": [{"String": {"sval": "name"}}]}}
_SETTINGS_ROW = frozenset({"targetList", "fromClause", "whereClause", "limitOption", "op"})


def row_setting(node: dict[str, Any]) -> str | None:
    """The setting every row of a SELECT of pg_settings names (its WHERE `name = '...'`),
    where the SELECT is one set_config of that row; None for any other statement."""
    select = node.get("SelectStmt")
    if not isinstance(select, dict) or not _SETTINGS_ROW.issuperset(select) \
            or select.get("op") != "SETOP_NONE":
        return None
    targets = [t.get("ResTarget", {}) for t in select.get("targetList", ())]
    call = targets[0].get("val", {}).get("FuncCall", {}) if len(targets) == 1 else {}
    names = [n.get("String", {}).get("sval") for n in call.get("funcname", ())]
    args = _unlocated(call.get("args", []))
    tables = [t.get("RangeVar", {}) for t in select.get("fromClause", ())]
    where = _unlocated(select.get("whereClause"))
    if names not in (["set_config"], ["pg_catalog", "set_config"]) or len(targets[0]) > 2 \
            or not args or args[0] != _NAME_COLUMN \
            or any("A_Const" not in a for a in args[1:]) or len(tables) != 1 \
            or tables[0].get("relname") != "pg_settings" \
            or tables[0].get("schemaname") not in (None, "pg_catalog") \
            or not isinstance(where, dict):
        return None
    test = where.get("A_Expr", {})
    if test.get("kind") != "AEXPR_OP" or test.get("name") != [{"String": {"sval": "="}}] \
            or test.get("lexpr") != _NAME_COLUMN:
        return None
    value = (test.get("rexpr") or {}).get("A_Const", {}).get("sval")
    return str(value.get("sval", "")).lower() if isinstance(value, dict) else None


def _unlocated(node: Any) -> Any:
    """A parse tree without its `location`s (offsets in the text), to compare shapes."""
    if isinstance(node, dict):
        return {k: _unlocated(v) for k, v in node.items() if k != "location"}
    if isinstance(node, list):
        return [_unlocated(v) for v in node]
    return node


def names_column(arg: Any) -> bool:
    """Whether a call's argument is pg_settings' `name` column."""
    return bool(_unlocated(arg) == _NAME_COLUMN)
