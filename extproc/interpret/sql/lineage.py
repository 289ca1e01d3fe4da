"""Result-column lineage: which columns each result column of a statement reads, and how.

Masking by pattern on what comes back loses to a query that transforms what it reads
(`encode(ssn::bytea, 'base64')`, `replace(email, '@', ' at ')`, `reverse(ssn)`): the
output no longer looks like what it is. The query says what it reads, so each result
column of a top-level statement (a SELECT, VALUES, TABLE, a write's RETURNING, the rows
COPY ... TO STDOUT sends) is described from the parse tree as
`input.sql.statements[].columns`:

    {"name": "encode", "sources": ["ssn"], "plain": false, "known": true}

- `name`: the result column's name as the database gives it (PostgreSQL's own rules for
  an expression without AS: `encode`, `?column?`, a CASE's ELSE branch's name...), what
  the front matches the rows' columns on; "*" for a star over a table, whose names
  arrive with the rows; null where the dialect's name for an unnamed expression is not
  known (sqlglot dialects).
- `sources`: the columns it reads (names, lower-case as folded, unqualified), through
  CTEs, subqueries, set operations and scalar subqueries; "*" for every column of a
  table (a star, a whole-row reference such as `to_jsonb(customers)` or `row_to_json(c)`).
  A name that a FROM item whose columns are not all named (a table, a star, a function's
  result) may or may not have reads what each such item, here or in an outer query,
  would hold: `substr(ssn, g, 3) FROM customers, generate_series(1, 11, 3) g` reads ssn.
- `plain`: its values are a source column's, unchanged: a reference, possibly renamed by
  AS or by an alias's column list, possibly cast to `text` or to `varchar` without a
  length (which only spell the same value). Anything else is derived: a function, an
  operator, an aggregate, a window, CASE/COALESCE, any other cast, a row or a JSON built
  from it.
- `known`: false where the lineage cannot be computed: a function this module does not
  know (a user's, which may read any table), a function in FROM that is not one, a
  table's or a star's column renamed by an alias's column list (`customers AS c(a, b)`,
  `(SELECT * FROM customers) s(a, b)`), EXECUTE, CALL, FETCH. Treat such a column as
  derived from anything.

Statements that return no rows (or none of a table's data: SHOW, EXPLAIN) have null.
What the WHERE, JOIN or ORDER BY of a query let one infer from which rows come back is
not lineage. Pure and in memory: the tree is the one the reader already parsed.

A value stored where a later statement reads it back escapes a mask that sees only that
later read: `CREATE VIEW v AS SELECT reverse(ssn) AS r ...`, then `SELECT r FROM v`. So
what a statement stores is described the same way (`stores`, `stored_columns`): each
value under the name it is stored by — a table's or a view's column (CREATE TABLE AS,
CREATE VIEW, SELECT INTO, INSERT, UPDATE, an upsert's update, MERGE, a generated column;
a write in a CTE too), a setting (set_config), a notification's payload or a large object
(no name) — with its lineage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

from extproc.interpret.sql.shapes import value_read

ALL_COLUMNS = "*"


class Column(TypedDict):
    """One result column's lineage (`Statement.columns`)."""

    name: str | None
    sources: list[str]
    plain: bool
    known: bool


@dataclass(frozen=True, slots=True)
class Lineage:
    """What an expression reads: its source columns, whether its value is one of theirs
    unchanged, and whether everything it reads is known."""

    sources: frozenset[str] = frozenset()
    plain: bool = False
    known: bool = True

    def derived(self) -> Lineage:
        return Lineage(self.sources, False, self.known) if self.plain else self


NOTHING = Lineage()
UNKNOWN = Lineage(known=False)


def merged(parts: Any, plain: bool = False) -> Lineage:
    """The lineage of a value computed from `parts` (plain only if asked and all are)."""
    sources: set[str] = set()
    known = True
    for part in parts:
        sources |= part.sources
        known = known and part.known
        plain = plain and part.plain
    return Lineage(frozenset(sources), plain, known)


def _either(found: list[Lineage]) -> Lineage:
    """The lineage of a value that is one of `found`'s, which one not known (plain if
    they are all the same plain one)."""
    return merged(found, plain=len(set(found)) == 1)


def column(name: str | None, lineage: Lineage) -> Column:
    return {"name": name, "sources": sorted(lineage.sources), "plain": lineage.plain,
            "known": lineage.known}


# An output the front cannot line up with what was read: every column, lineage unknown.
UNKNOWN_RESULT: list[Column] = [column(ALL_COLUMNS, UNKNOWN)]

# Functions (built in, or in contrib modules every install has) that read nothing but
# their arguments: their value derives from those. Any other function may read any
# table (a user's `get_ssn(id)`): its lineage is not known.
_KNOWN_FUNCTION_NAMES = """
abs acos age array_agg array_append array_cat array_dims array_fill array_length
array_lower array_position array_positions array_prepend array_remove array_replace
array_to_json array_to_string array_upper ascii asin atan atan2 avg bit_and bit_count
bit_length bit_or bit_xor bool_and bool_or btrim cardinality cbrt ceil ceiling char_length
character_length chr clock_timestamp coalesce concat concat_ws convert convert_from
convert_to corr cos cot count covar_pop covar_samp cume_dist current_database
current_date current_schema current_schemas current_time current_timestamp current_user
date_bin date_part date_trunc decode degrees dense_rank digest div encode every exp
extract first_value floor format gen_random_uuid generate_series generate_subscripts
get_byte get_bit greatest hmac initcap isfinite json_agg json_array_elements
json_array_elements_text json_array_length json_build_array json_build_object json_each
json_each_text json_extract_path json_extract_path_text json_object json_object_agg
json_object_keys json_populate_record json_strip_nulls json_typeof jsonb_agg
jsonb_array_elements jsonb_array_elements_text jsonb_array_length jsonb_build_array
jsonb_build_object jsonb_each jsonb_each_text jsonb_extract_path jsonb_extract_path_text
jsonb_insert jsonb_object jsonb_object_agg jsonb_object_keys jsonb_path_query
jsonb_path_query_array jsonb_path_query_first jsonb_pretty jsonb_set jsonb_strip_nulls
jsonb_typeof justify_days justify_hours lag last_value lead least left length ln log
log10 lower lpad ltrim make_date make_interval make_time make_timestamp
make_timestamptz max md5 min mod normalize now nth_value ntile nullif octet_length
overlay percent_rank percentile_cont percentile_disc pi position power quote_ident
quote_literal quote_nullable radians random rank regexp_count regexp_instr regexp_like
regexp_match regexp_matches regexp_replace regexp_split_to_array
regexp_split_to_table regexp_substr repeat replace reverse right round row_number
row_to_json rpad rtrim scale set_byte set_bit sha224 sha256 sha384 sha512 sign sin
split_part sqrt starts_with statement_timestamp stddev stddev_pop stddev_samp
string_agg string_to_array string_to_table strpos substr substring sum tan timeofday
to_ascii to_char to_date to_hex to_json to_jsonb to_number to_timestamp
transaction_timestamp translate trim trim_array trunc unistr unnest upper variance
var_pop var_samp width_bucket
current_setting set_config version pg_backend_pid txid_current pg_typeof format_type
pg_get_constraintdef pg_get_expr pg_get_functiondef pg_get_function_arguments
pg_get_function_identity_arguments pg_get_function_result pg_get_function_sqlbody
pg_get_indexdef pg_get_keywords pg_get_partkeydef
pg_get_serial_sequence pg_get_triggerdef pg_get_userbyid pg_get_viewdef
has_column_privilege has_database_privilege has_function_privilege has_schema_privilege
has_sequence_privilege has_table_privilege obj_description col_description
shobj_description pg_encoding_to_char pg_char_to_encoding pg_table_is_visible
pg_type_is_visible pg_function_is_visible pg_postmaster_start_time inet_server_addr
inet_server_port pg_is_in_recovery current_role session_user current_catalog
pg_relation_size pg_total_relation_size pg_size_pretty pg_cancel_backend
pg_terminate_backend nextval currval setval lastval pg_advisory_lock pg_advisory_unlock
pg_advisory_unlock_all pg_advisory_xact_lock pg_try_advisory_lock
pg_try_advisory_xact_lock pg_sleep pg_notify
acldefault pg_get_ruledef pg_get_statisticsobjdef pg_options_to_table ts_token_type
"""
KNOWN_FUNCTIONS = frozenset(_KNOWN_FUNCTION_NAMES.split())

# Casts that spell the same value: a plain reference cast to these stays plain.
_SAME_VALUE_TYPES = frozenset({"text", "varchar"})


# A table's star: each of its columns, under its own name, unchanged.
_TABLE_STAR = Lineage(frozenset({ALL_COLUMNS}), True)


def _starred(lineage: Lineage, name: str) -> Lineage:
    """The column `name` a star of `lineage` may bring: a table's own, or any of a
    derived star's (every one of which has its lineage)."""
    return Lineage(frozenset({name}), True) if lineage == _TABLE_STAR else lineage


@dataclass(slots=True)
class Relation:
    """What FROM names: a table (any column, read plainly), or a relation whose columns
    are known (a CTE, a subquery; a star among them: any of a table's), or one whose
    every column has one lineage (a function); `renamed`: a table's columns an alias's
    list renames (which ones is not known)."""

    alias: str
    columns: list[tuple[str, Lineage]] | None = None
    every: Lineage | None = None
    renamed: frozenset[str] = frozenset()
    parts: list[Relation] = field(default_factory=list)  # an aliased join's relations

    @property
    def listed(self) -> bool:
        """Whether its columns are all named: a name it does not list is not its. A table's,
        a star's or a function's may be any name, and may not be theirs at all."""
        if self.parts:
            return all(part.listed for part in self.parts)
        return self.columns is not None and all(n != ALL_COLUMNS for n, _ in self.columns)

    def find(self, name: str) -> Lineage | None:
        """The column `name` of this relation, if it can have one."""
        if self.parts:
            found = [f for part in self.parts if (f := part.find(name)) is not None]
            return _either(found) if found else None
        if self.every is not None:
            return self.every
        if self.columns is None:
            return UNKNOWN if name in self.renamed else Lineage(frozenset({name}), True)
        found = [lineage for column_name, lineage in self.columns if column_name == name] or [
            _starred(lineage, name) for column_name, lineage in self.columns
            if column_name == ALL_COLUMNS]
        return _either(found) if found else None

    def star(self) -> list[tuple[str, Lineage]]:
        """What `alias.*` expands to."""
        if self.parts:
            return [c for part in self.parts for c in part.star()]
        if self.columns is not None:
            return list(self.columns)
        if self.every is not None:
            return [(ALL_COLUMNS, self.every.derived())]
        return [(ALL_COLUMNS, Lineage(frozenset({ALL_COLUMNS}), not self.renamed,
                                      not self.renamed))]

    def whole_row(self) -> Lineage:
        return merged(lineage for _, lineage in self.star())


@dataclass(slots=True)
class Scope:
    """The relations a query's expressions see: its FROM's, then its outer queries'."""

    relations: list[Relation]
    ctes: dict[str, list[tuple[str, Lineage]]]
    outer: Scope | None = None


NO_SCOPE = Scope([], {})


def result_columns(node: dict[str, Any]) -> list[Column] | None:
    """The result columns of a top-level statement (pglast's JSON, wrapped: {"SelectStmt":
    {...}}); None when it returns none of a table's data. A PREPARE has its statement's:
    what an EXECUTE of it returns (the PostgreSQL front carries them to it)."""
    ((typ, fields),) = node.items()
    if typ == "PrepareStmt":
        return result_columns(fields["query"])
    if typ == "SelectStmt":
        if "intoClause" in fields:
            return None
        return [column(name, lineage) for name, lineage in _select(fields, NO_SCOPE)]
    if typ in _DML_RELATIONS:
        returning = (fields.get("returningClause") or {}).get("exprs") or fields.get(
            "returningList")
        if not returning:
            return None
        scope = _dml_scope(typ, fields, NO_SCOPE)
        return [column(name, lineage) for name, lineage in _targets(returning, scope)]
    if typ == "CopyStmt":
        return _copied_out(fields)
    if typ in ("ExecuteStmt", "CallStmt", "FetchStmt"):
        return UNKNOWN_RESULT
    return None


def _dml_scope(typ: str, fields: dict[str, Any], outer: Scope) -> Scope:
    """The relations a write's expressions see: its table, its FROM, USING or source."""
    scope = Scope([], _ctes(fields, outer), outer)
    for key in _DML_RELATIONS[typ]:
        value = fields.get(key)
        for item in value if isinstance(value, list) else [value] if value else []:
            scope.relations += _from({"RangeVar": item} if key == "relation" else item, scope)
    return scope


def _copied_out(fields: dict[str, Any]) -> list[Column] | None:
    """The rows COPY ... TO STDOUT sends: its query's result columns, or its table's,
    named by its column list (a star without one); None for COPY FROM, and for COPY to
    a server file or program, which sends the client none."""
    if fields.get("is_from") or "filename" in fields or fields.get("is_program"):
        return None
    query = fields.get("query")
    if query:
        return result_columns(query)
    scope = Scope(_from({"RangeVar": fields.get("relation") or {}}, NO_SCOPE), {})
    named = _names(fields.get("attlist"))
    found = [(n, resolve([n], scope)) for n in named] if named else star([], scope)
    return [column(name, lineage) for name, lineage in found]


# A write's relations its RETURNING sees.
_DML_RELATIONS = {
    "InsertStmt": ("relation",), "UpdateStmt": ("relation", "fromClause"),
    "DeleteStmt": ("relation", "usingClause"), "MergeStmt": ("relation", "sourceRelation"),
}


def _ctes(fields: dict[str, Any], scope: Scope) -> dict[str, list[tuple[str, Lineage]]]:
    """The CTEs a statement's WITH defines, each body seeing the ones before it (and
    itself, if RECURSIVE: its columns then read what either branch reads, derived)."""
    ctes = dict(scope.ctes)
    with_clause = fields.get("withClause") or {}
    recursive = bool(with_clause.get("recursive"))
    for item in with_clause.get("ctes", ()):
        cte = item.get("CommonTableExpr", {})
        name = cte.get("ctename", "")
        query = cte.get("ctequery") or {}
        body = query.get("SelectStmt")
        renames = _names(cte.get("aliascolnames"))
        if body is None:  # a write's RETURNING
            columns = result_columns(query) or []
            found = [(c["name"] or "", Lineage(frozenset(c["sources"]), c["plain"],
                                                c["known"])) for c in columns]
        elif recursive and body.get("op", "SETOP_NONE") != "SETOP_NONE":
            anchor = renamed(_select(body["larg"], Scope([], ctes, scope.outer)), renames)
            ctes[name] = [(n, lineage.derived()) for n, lineage in anchor]
            found = [(n, lineage.derived()) for n, lineage in
                     _select(body, Scope([], ctes, scope.outer))]
        else:
            found = _select(body, Scope([], ctes, scope.outer))
        ctes[name] = renamed(found, renames)
    return ctes


def _names(items: Any) -> list[str]:
    return [item["String"]["sval"] for item in items or () if "String" in item]


def renamed(columns: list[tuple[str, Lineage]], names: list[str]) -> list[tuple[str, Lineage]]:
    """Columns renamed in order by an alias's column list (the rest keep their names).
    A star's columns have no known positions: a name given from its position on may be
    any of its or the later columns' (`(SELECT * FROM customers) s(a, b)`), its lineage
    not known."""
    at = next((i for i, (n, _) in enumerate(columns) if n == ALL_COLUMNS), len(columns))
    head = [(names[i] if i < len(names) else n, lineage)
            for i, (n, lineage) in enumerate(columns[:at])]
    rest = merged(lineage for _, lineage in columns[at:])
    return head + [(n, Lineage(rest.sources, False, False)) for n in names[at:]] + columns[at:]


def _select(fields: dict[str, Any], outer: Scope) -> list[tuple[str, Lineage]]:
    """The columns of a SELECT (or VALUES, or set operation) body, named."""
    scope = Scope([], _ctes(fields, outer), outer)
    if fields.get("op", "SETOP_NONE") != "SETOP_NONE":
        left = _select(fields.get("larg") or {}, scope)
        right = _select(fields.get("rarg") or {}, scope)
        if len(left) != len(right) or any(n == ALL_COLUMNS for n, _ in left + right):
            # A star: which value lands under which name is not known.
            return [(ALL_COLUMNS, merged(lineage for _, lineage in left + right))]
        return [(n, merged((a, b), plain=True)) for (n, a), (_, b) in zip(left, right,
                                                                         strict=True)]
    if "valuesLists" in fields:
        rows = [item.get("List", {}).get("items", []) for item in fields["valuesLists"]]
        width = max(map(len, rows), default=0)
        return [(f"column{i + 1}", merged(_expr(row[i], scope).derived() for row in rows
                                          if i < len(row))) for i in range(width)]
    _add_from(fields, scope)
    return _targets(fields.get("targetList", ()), scope)


def _add_from(fields: dict[str, Any], scope: Scope) -> None:
    for item in fields.get("fromClause", ()):
        scope.relations += _from(item, scope)


def _targets(targets: list[Any], scope: Scope) -> list[tuple[str, Lineage]]:
    out: list[tuple[str, Lineage]] = []
    for item in targets:
        target = item.get("ResTarget", {})
        value = target.get("val") or {}
        ref = value.get("ColumnRef")
        if ref is not None and ref["fields"] and "A_Star" in ref["fields"][-1]:
            out += star(_names(ref["fields"][:-1]), scope)
            continue
        out.append((target.get("name") or _figure_name(value)[0], _expr(value, scope)))
    return out


def star(qualifier: list[str], scope: Scope) -> list[tuple[str, Lineage]]:
    """What `*` (or `alias.*`) expands to in `scope`."""
    if not qualifier:
        return [c for relation in scope.relations for c in relation.star()]
    relation = _relation(qualifier[-1], scope)
    return relation.star() if relation is not None else [(ALL_COLUMNS, UNKNOWN)]


def _relation(alias: str, scope: Scope | None) -> Relation | None:
    while scope is not None:
        for relation in scope.relations:
            if relation.alias == alias:
                return relation
        scope = scope.outer
    return None


def _from(node: Any, scope: Scope) -> list[Relation]:
    """The relations a FROM item brings (a join brings both sides', and its alias)."""
    if not isinstance(node, dict) or len(node) != 1:
        return [Relation("", every=UNKNOWN)]
    ((typ, fields),) = node.items()
    alias = fields.get("alias") or {}
    name = alias.get("aliasname")
    renames = _names(alias.get("colnames"))
    if typ == "RangeVar":
        relname = fields.get("relname", "")
        if fields.get("schemaname") is None and relname in scope.ctes:
            return [Relation(name or relname, renamed(scope.ctes[relname], renames))]
        return [Relation(name or relname, renamed=frozenset(renames))]
    if typ == "RangeSubselect":
        body = (fields.get("subquery") or {}).get("SelectStmt", {})
        return [Relation(name or "", renamed(_select(body, scope), renames))]
    if typ == "JoinExpr":
        parts = _from(fields.get("larg"), scope) + _from(fields.get("rarg"), scope)
        return parts + ([Relation(name, parts=parts)] if name else [])
    if typ == "RangeTableSample":
        return _from(fields.get("relation"), scope)
    if typ == "RangeFunction":
        lineage = merged(_expr(f, scope) for f in fields.get("functions", ())).derived()
        return [produced(name or _function_alias(fields), renames, lineage)]
    # XMLTABLE, JSON_TABLE: their columns derive from their documents.
    return [Relation(name or "", every=_expr(fields, scope).derived())]


def produced(alias: str, renames: list[str], lineage: Lineage) -> Relation:
    """A function's relation in FROM, each column of `lineage`. An alias's column list
    names its first columns only: a composite result's others keep names the text does
    not show (`json_each(...) AS j(k)` has `value` too)."""
    if not renames:
        return Relation(alias, every=lineage)
    return Relation(alias, [*((n, lineage) for n in renames), (ALL_COLUMNS, lineage)])


def _function_alias(fields: dict[str, Any]) -> str:
    """A function in FROM without an alias is named by its function."""
    for item in fields.get("functions", ()):
        for call in item.get("List", {}).get("items", ()):
            if "FuncCall" in call:
                return str(call["FuncCall"]["funcname"][-1]["String"]["sval"])
    return ""


def _expr(node: Any, scope: Scope) -> Lineage:
    """The lineage of an expression (any part of the tree: a list, a struct, a node)."""
    if isinstance(node, list):
        return merged(_expr(item, scope) for item in node)
    if not isinstance(node, dict):
        return NOTHING
    if len(node) == 1:
        ((typ, fields),) = node.items()
        if isinstance(fields, dict) and typ[:1].isupper():
            return _node(typ, fields, scope)
    return merged(_expr(value, scope) for value in node.values())


def _node(typ: str, fields: dict[str, Any], scope: Scope) -> Lineage:
    if typ == "ColumnRef":
        return _reference(fields.get("fields", []), scope)
    if typ == "TypeCast":
        inner = _expr(fields.get("arg"), scope)
        type_name = fields.get("typeName") or {}
        names = _names(type_name.get("names"))
        same = (bool(names) and names[-1] in _SAME_VALUE_TYPES
                and names[:-1] in ([], ["pg_catalog"])
                and not type_name.get("typmods") and not type_name.get("arrayBounds"))
        return inner if same else inner.derived()
    if typ == "FuncCall":
        parts = [_expr(fields.get(key), scope) for key in
                 ("args", "agg_order", "agg_filter", "over")]
        names = _names(fields.get("funcname"))
        known = names[-1] in KNOWN_FUNCTIONS and names[:-1] in ([], ["pg_catalog"])
        return merged(parts if known else [*parts, UNKNOWN])
    if typ == "SubLink":
        columns = _select((fields.get("subselect") or {}).get("SelectStmt", {}), scope)
        test = _expr(fields.get("testexpr"), scope)
        if fields.get("subLinkType") == "EXPR_SUBLINK" and len(columns) == 1 and \
                "testexpr" not in fields:
            return columns[0][1]
        return merged([test, *(lineage for _, lineage in columns)])
    if typ in ("A_Const", "ParamRef", "SQLValueFunction"):
        return NOTHING
    return merged(_expr(value, scope) for value in fields.values())


def _reference(parts: list[Any], scope: Scope) -> Lineage:
    names = _names(parts)
    if parts and "A_Star" in parts[-1]:
        return merged(lineage for _, lineage in star(names, scope)).derived()
    return resolve(names, scope)


def resolve(names: list[str], scope: Scope) -> Lineage:
    """A column reference's lineage, found as PostgreSQL finds it: a column of the
    innermost query that has it, else a whole-row reference to a relation so named. A
    relation that does not list its columns (a table, a star, a function in FROM) may or
    may not have it, so it does not end the search: what each such one would hold is
    merged with what an outer query's holds (`substr(ssn, g, 1) FROM customers,
    generate_series(1, 11) g` reads ssn, though g's columns are not known)."""
    if not names:
        return UNKNOWN
    if len(names) > 1:
        relation = _relation(names[-2], scope)
        if relation is None:
            return Lineage(frozenset({names[-1]}), True)
        column_lineage = relation.find(names[-1])
        return column_lineage if column_lineage is not None else UNKNOWN
    name = names[0]
    maybe: list[Lineage] = []
    level: Scope | None = scope
    while level is not None:
        found = [f for relation in level.relations
                 if relation.listed and (f := relation.find(name)) is not None]
        row = next((r for r in level.relations if r.alias == name), None)
        if not found and row is not None:
            found = [row.whole_row().derived()]
        if found:
            return _either(maybe + found)
        maybe += [f for relation in level.relations
                  if not relation.listed and (f := relation.find(name)) is not None]
        level = level.outer
    return _either(maybe) if maybe else Lineage(frozenset({name}), True)


# --- names: PostgreSQL's FigureColname (parse_target.c) ---------------------------------

_NAMED_NODES = {
    "A_ArrayExpr": "array", "RowExpr": "row", "CoalesceExpr": "coalesce",
    "GroupingFunc": "grouping", "MergeSupportFunc": "merge_action",
    "XmlSerialize": "xmlserialize", "JsonParseExpr": "json", "JsonScalarExpr": "json_scalar",
    "JsonSerializeExpr": "json_serialize", "JsonObjectConstructor": "json_object",
    "JsonArrayConstructor": "json_array", "JsonArrayQueryConstructor": "json_array",
    "JsonObjectAgg": "json_objectagg", "JsonArrayAgg": "json_arrayagg",
}
_XML_NAMES = {
    "IS_XMLCONCAT": "xmlconcat", "IS_XMLELEMENT": "xmlelement", "IS_XMLFOREST": "xmlforest",
    "IS_XMLPARSE": "xmlparse", "IS_XMLPI": "xmlpi", "IS_XMLROOT": "xmlroot",
    "IS_XMLSERIALIZE": "xmlserialize",
}
_JSON_FUNC_NAMES = {"JSON_EXISTS_OP": "json_exists", "JSON_QUERY_OP": "json_query",
                    "JSON_VALUE_OP": "json_value"}


def _figure_name(node: Any) -> tuple[str, int]:
    """The name PostgreSQL gives a result column without AS, and how strongly (0: none,
    "?column?"; 1: a guess a better one replaces; 2: a name)."""
    if not isinstance(node, dict) or len(node) != 1:
        return "?column?", 0
    ((typ, fields),) = node.items()
    if not isinstance(fields, dict):
        return "?column?", 0
    if typ == "A_Indirection":
        named = _names(fields.get("indirection"))
        return (named[-1], 2) if named else _figure_name(fields.get("arg"))
    if typ == "TypeCast":
        name, strength = _figure_name(fields.get("arg"))
        names = _names((fields.get("typeName") or {}).get("names"))
        return (names[-1], 1) if strength <= 1 and names else (name, strength)
    if typ == "CollateClause":
        return _figure_name(fields.get("arg"))
    if typ == "CaseExpr":
        name, strength = _figure_name(fields.get("defresult"))
        return (name, strength) if strength > 1 else ("case", 1)
    fixed = _fixed_name(typ, fields)
    return ("?column?", 0) if fixed is None else (fixed, 2)


def _fixed_name(typ: str, fields: dict[str, Any]) -> str | None:
    """The name a node gives its column whatever its arguments (None: "?column?")."""
    if typ == "ColumnRef":
        return next(iter(_names(fields.get("fields"))[-1:]), None)
    if typ == "FuncCall":
        return _names(fields.get("funcname"))[-1]
    if typ == "A_Expr":
        return "nullif" if fields.get("kind") == "AEXPR_NULLIF" else None
    if typ == "SubLink":
        kind = fields.get("subLinkType")
        if kind in ("EXISTS_SUBLINK", "ARRAY_SUBLINK"):
            return str(kind).split("_")[0].lower()
        if kind == "EXPR_SUBLINK":
            return _first_target((fields.get("subselect") or {}).get("SelectStmt", {}))
        return None
    if typ == "MinMaxExpr":
        return "greatest" if fields.get("op") == "IS_GREATEST" else "least"
    if typ == "SQLValueFunction":
        return str(fields.get("op", ""))[len("SVFOP_"):].lower().removesuffix("_n")
    if typ == "XmlExpr":
        return _XML_NAMES.get(fields.get("op", ""))
    if typ == "JsonFuncExpr":
        return _JSON_FUNC_NAMES.get(fields.get("op", ""))
    return _NAMED_NODES.get(typ)


def _first_target(body: dict[str, Any]) -> str | None:
    """The name of a subquery's first result column (a set operation's: its left's)."""
    while body.get("op", "SETOP_NONE") != "SETOP_NONE":
        body = body.get("larg") or {}
    if "valuesLists" in body:
        return "column1"
    targets = body.get("targetList") or []
    if not targets:
        return None
    target = targets[0].get("ResTarget", {})
    if target.get("name"):
        return str(target["name"])
    name, _ = _figure_name(target.get("val"))
    return name


# --- what a statement stores (pglast) ---------------------------------------------------

Stored = list[tuple[str | None, Lineage]]
# Functions that store their argument where a later statement reads it back: a run-time
# setting (`current_setting`, SHOW), a notification's payload, a large object.
_STORING_FUNCTIONS = {"set_config": 1, "pg_notify": 1, "lo_from_bytea": 1, "lo_put": 2}
STORING_FUNCTIONS = frozenset(_STORING_FUNCTIONS)


def stored_columns(node: dict[str, Any], deep: bool = True) -> list[Column] | None:
    """What a top-level statement stores where a later statement reads it back, each value
    under the name it is stored by (a table's or a view's column, a setting's name; None
    where the text does not say); with `deep`, the writes of its CTEs and the storing
    functions it calls too (a caller that knows there are none saves the walk). None when
    it stores nothing."""
    stored: Stored = []
    if deep:
        _walk_stores(node, NO_SCOPE, stored)
    else:
        ((typ, fields),) = node.items()
        _stores_of(typ, fields, NO_SCOPE, stored)
    return [column(name, lineage) for name, lineage in stored] or None


def _walk_stores(node: Any, scope: Scope, stored: Stored) -> None:
    if isinstance(node, list):
        for item in node:
            _walk_stores(item, scope, stored)
        return
    if not isinstance(node, dict):
        return
    if len(node) == 1:
        ((typ, fields),) = node.items()
        if isinstance(fields, dict) and typ[:1].isupper():
            scope = _stores_of(typ, fields, scope, stored)
            if typ == "FuncCall":
                _stored_argument(fields, scope, stored)
    for value in node.values():
        _walk_stores(value, scope, stored)


def _stores_of(typ: str, fields: dict[str, Any], scope: Scope, stored: Stored) -> Scope:
    """What the statement `typ` itself stores; the scope its expressions see."""
    if typ == "SelectStmt":
        inner = Scope([], _ctes(fields, scope), scope)
        if "intoClause" in fields:
            body = {key: value for key, value in fields.items() if key != "intoClause"}
            stored += _named_as(_select(body, scope),
                                _names(fields["intoClause"].get("colNames")))
        _add_from(fields, inner)
        return inner
    if typ in ("CreateTableAsStmt", "ViewStmt"):
        query = (fields.get("query") or {}).get("SelectStmt", {})
        names = _names((fields.get("into") or {}).get("colNames") if typ ==
                       "CreateTableAsStmt" else fields.get("aliases"))
        stored += _named_as(_select(query, scope), names)
    elif typ in _DML_RELATIONS:
        inner = _dml_scope(typ, fields, scope)
        stored += _written(typ, fields, inner)
        return inner
    elif typ == "AlterTableStmt":
        inner = Scope(_from({"RangeVar": fields.get("relation") or {}}, scope), {}, scope)
        for command in fields.get("cmds", ()):
            definition = (command.get("AlterTableCmd") or {}).get("def") or {}
            column_def = definition.get("ColumnDef") or {}
            for constraint in column_def.get("constraints", ()):
                generated = constraint.get("Constraint") or {}
                if generated.get("contype") == "CONSTR_GENERATED":
                    stored.append((column_def.get("colname"),
                                   _expr(generated.get("raw_expr"), inner)))
    return scope


def _named_as(found: list[tuple[str, Lineage]], names: list[str]) -> Stored:
    """A query's columns under the names a column list gives them, in order."""
    return [(names[i] if i < len(names) else name, lineage)
            for i, (name, lineage) in enumerate(found)]


def _written(typ: str, fields: dict[str, Any], scope: Scope) -> Stored:
    """The values an INSERT, UPDATE or MERGE writes, under the columns they go to."""
    if typ == "UpdateStmt":
        return _set_list(fields.get("targetList", ()), scope)
    if typ == "InsertStmt":
        names: list[str | None] = [(item.get("ResTarget") or {}).get("name")
                                   for item in fields.get("cols", ())]
        query = (fields.get("selectStmt") or {}).get("SelectStmt")
        found = _select(query, scope) if query else []
        if not names and query and _copies_itself(query, fields.get("relation") or {}):
            names = [ALL_COLUMNS]  # each value back into the column it came from
        written: Stored = [(names[i] if i < len(names) else None, lineage)
                           for i, (_, lineage) in enumerate(found)]
        # ON CONFLICT DO UPDATE: `excluded` is the row the INSERT proposed.
        proposed = [(name, lineage) for name, lineage in written if name is not None]
        excluded = (Relation("excluded", proposed) if len(proposed) == len(written)
                    else Relation("excluded", every=merged(v for _, v in written)))
        conflict = fields.get("onConflictClause") or {}
        return written + _set_list(conflict.get("targetList", ()),
                                   Scope([*scope.relations, excluded], scope.ctes, scope.outer))
    written = []
    for item in fields.get("mergeWhenClauses", ()):
        when = item.get("MergeWhenClause") or {}
        if when.get("commandType") == "CMD_INSERT":
            targets = [(t.get("ResTarget") or {}).get("name") for t in when.get("targetList", ())]
            values = when.get("values", ())
            written += [(targets[i] if i < len(targets) else None, _expr(value, scope))
                        for i, value in enumerate(values)]
        else:
            written += _set_list(when.get("targetList", ()), scope)
    return written


def _copies_itself(query: dict[str, Any], table: dict[str, Any]) -> bool:
    """`INSERT INTO t SELECT * FROM t`: the rows of the table it writes, whole."""
    targets = query.get("targetList") or []
    sources = query.get("fromClause") or []
    if len(targets) != 1 or len(sources) != 1 or "RangeVar" not in sources[0]:
        return False
    fields = ((targets[0].get("ResTarget") or {}).get("val") or {}).get("ColumnRef") or {}
    source = sources[0]["RangeVar"]
    return (fields.get("fields") == [{"A_Star": {}}]
            and (source.get("schemaname"), source.get("relname"))
            == (table.get("schemaname"), table.get("relname")))


def _set_list(targets: Any, scope: Scope) -> Stored:
    """SET's `column = value` pairs, each value under its column."""
    return [(target.get("name"), _expr(target.get("val"), scope))
            for item in targets or () if "val" in (target := item.get("ResTarget") or {})]


def _stored_argument(fields: dict[str, Any], scope: Scope, stored: Stored) -> None:
    """A storing function's value (set_config's under its setting's name)."""
    name = fields["funcname"][-1]["String"]["sval"].lower()
    position = _STORING_FUNCTIONS.get(name)
    args = fields.get("args") or []
    if position is None or len(args) <= position:
        return
    setting = None
    if name == "set_config":
        value_read()
        setting = ((args[0].get("A_Const") or {}).get("sval") or {}).get("sval")
    stored.append((setting, _expr(args[position], scope)))
