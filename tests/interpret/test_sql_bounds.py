"""Whether a write's rows are bounded (extproc/interpret/sql/bounds.py), read from the text
alone: the judgement itself, and each reader's translation of its tree into it — pglast for
postgres, sqlglot for the other dialects — giving the same answer on the same condition."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.interpret.sql import analyze, bounds
from extproc.interpret.sql.bounds import (
    MAX_LIMIT_ROWS,
    MAX_VALUES,
    OPAQUE,
    UNKNOWN_VALUE,
    Col,
    Compare,
    Const,
    Logic,
    Member,
    Not,
    NullTest,
    write_bounded,
)

ID, OTHER = Col(target=True), Col(target=False)
ONE, TWO, NULL = Const(1), Const(2), Const(None)


def bounded(text: str, dialect: str = "postgres") -> bool | None:
    result = analyze(text, dialect)
    assert result["error"] is None, result["error"]
    return result["statements"][0]["bounded"]


# -- the judgement on its own terms ------------------------------------------------------------


@pytest.mark.parametrize(("where", "expected"), [
    (Compare("=", ID, ONE), True),
    (Compare("=", ONE, ID), True),
    (Compare("=", ID, UNKNOWN_VALUE), True),  # a parameter, a cast: one value
    (Compare("=", OTHER, ONE), False),  # another table's column: every row of the target
    (Compare("=", ID, ID), False),
    (Compare("=", ID, OPAQUE), False),
    (Compare("=", ID, Const(True)), False),  # a column of two values
    (Compare("=", ID, NULL), False),  # transform_null_equals reads it as IS NULL
    (Compare("not_distinct", ID, ONE), True),
    (Compare("not_distinct", ID, NULL), False),  # IS NULL
    (Compare(">", ID, ONE), False),
    (Compare("=", ONE, TWO), True),  # false for every row: changes nothing
    (Compare("=", ONE, ONE), False),
    (Compare("=", Const("a"), Const("a")), False),
    (Compare("=", Const("a"), Const("b")), False),  # a collation may make them equal
    (Compare("=", UNKNOWN_VALUE, UNKNOWN_VALUE), False),
    (Compare("<", ONE, TWO), False),
    (Compare(">", ONE, TWO), True),
    (Compare("distinct", NULL, NULL), True),
    (Compare("=", NULL, ONE), False),
    (Compare("<", NULL, ONE), True),  # NULL: no row
    (Not(Compare("<>", ID, ONE)), True),
    (Not(Compare("=", ID, ONE)), False),
    (Not(Not(Compare("=", ID, ONE))), True),
    (Logic(True, (Compare(">", ID, ONE), Compare("=", ID, TWO))), True),
    (Logic(False, (Compare("=", ID, ONE), Compare("=", ID, TWO))), True),
    (Logic(False, (Compare("=", ID, ONE), Const(True))), False),
    (Logic(False, (Compare("=", ID, ONE), Not(Const(False)))), False),
    (Logic(False, (Compare("=", ID, ONE), Const(False))), True),
    (Not(Logic(True, (Compare("<>", ID, ONE), Compare("<>", ID, TWO)))), True),
    (Not(Logic(False, (Compare("<>", ID, ONE), Const(True)))), True),  # NOT true: no row
    (Logic(True, (Const(True), Const(True))), False),
    (Member(ID, (ONE, TWO, ONE)), True),
    (Member(ID, (ONE, OPAQUE)), False),
    (Member(OTHER, (ONE,)), False),
    (Member(ID, (ONE, Const(False))), False),
    (Not(Member(ID, (ONE,))), False),
    (Member(ID, (NULL,)), True),  # IN (NULL): no row
    (NullTest(ID, is_null=False), False),
    (NullTest(ID, is_null=True), False),
    (NullTest(OPAQUE, is_null=False), False),
    (NullTest(ONE, is_null=False), False),
    (NullTest(ONE, is_null=True), True),
    (Not(NullTest(NULL, is_null=True)), True),
    (Const(True), False), (Const(False), True), (NULL, True), (ONE, False),
    (Const(0), True), (Const("t"), False), (UNKNOWN_VALUE, False), (ID, False),
    (OPAQUE, False), (Not(OPAQUE), False), (bounds.CurrentOf(), True),
    (Not(bounds.CurrentOf()), False), (None, False),
])
def test_the_judgement(where: bounds.Predicate | None, expected: bool) -> None:
    assert write_bounded(where) is expected


def test_an_in_list_or_an_or_bounds_up_to_max_values() -> None:
    def values(n: int) -> tuple[Const, ...]:
        return tuple(Const(i) for i in range(n))

    assert write_bounded(Member(ID, values(MAX_VALUES)))
    assert not write_bounded(Member(ID, values(MAX_VALUES + 1)))
    assert write_bounded(Member(ID, values(MAX_VALUES) + (Const(0),) * 50))  # distinct values
    assert not write_bounded(Member(ID, (UNKNOWN_VALUE,) * (MAX_VALUES + 1)))
    equalities = tuple(Compare("=", ID, v) for v in values(MAX_VALUES + 1))
    assert not write_bounded(Logic(False, equalities))
    assert write_bounded(Logic(False, equalities[:MAX_VALUES]))
    # a MERGE applies its condition once per source row
    assert write_bounded(Compare("=", ID, ONE), rows=MAX_VALUES)
    assert not write_bounded(Compare("=", ID, ONE), rows=MAX_VALUES + 1)


def test_a_limit_bounds_up_to_max_limit_rows() -> None:
    assert write_bounded(None, limit=MAX_LIMIT_ROWS)
    assert write_bounded(Compare(">", ID, ONE), limit=1)
    assert not write_bounded(None, limit=MAX_LIMIT_ROWS + 1)


def test_where_strings_compare_as_numbers_only_known_nonzero_values_bound() -> None:
    for value, expected in [(ONE, True), (Const("0"), True), (Const(0), False),
                            (Const(bounds.number("-0.0").value), False),
                            (UNKNOWN_VALUE, False)]:
        where = Compare("=", ID, value)
        assert write_bounded(where, numeric_strings=True) is expected
        assert write_bounded(where)  # elsewhere any constant bounds
    assert not write_bounded(Member(ID, (ONE, Const(0))), numeric_strings=True)


def test_number_reads_what_decimal_reads() -> None:
    assert bounds.number("1.5e3") == Const(bounds.number("1500").value)
    assert bounds.number("0x1F") == UNKNOWN_VALUE
    assert bounds.number("NaN") == UNKNOWN_VALUE


def test_table_names_are_hidden_by_an_alias() -> None:
    assert bounds.table_names("t", "s", "db") == {("t",), ("s", "t"), ("db", "s", "t")}
    assert bounds.table_names("t", "s", alias="x") == {("x",)}
    target = bounds.Target(bounds.table_names("t"), alone=False, constants=frozenset({("v",)}))
    assert target.column(("t",)) == ID
    assert target.column(()) == OTHER  # another relation is in scope: it may be its column
    assert target.column(("v",)) == UNKNOWN_VALUE
    assert bounds.Target(frozenset(), alone=True).column(()) == ID


# -- both readers, one answer ------------------------------------------------------------------

# Conditions PostgreSQL, SQLite and DuckDB spell alike: (WHERE, bounded).
PORTABLE: list[tuple[str, bool]] = [
    ("id = 7", True), ("7 = id", True), ("customers.id = 7", True), ("email = 'a@b.c'", True),
    ("id IN (1, 2, 3)", True), ("id = 1 OR id = 2", True), ("NOT (id <> 7)", True),
    ("id = 7 AND created_at < '2024-01-01'", True), ("(id = 1 OR id = 2) AND name LIKE 'a%'",
                                                     True),
    ("id = CAST('7' AS INTEGER)", True), ("id = -7", True), ("1 = 2", True),
    ("id = 7 OR 1 = 2", True), ("id IS NOT DISTINCT FROM 7", True),
    ("id IS NOT NULL", False), ("id IS NULL", False), ("name LIKE '%'", False),
    ("id > 0", False), ("id BETWEEN 1 AND 2", False), ("id <> 7", False),
    ("id NOT IN (1, 2)", False), ("id = id", False), ("1 = 1", False), ("'a' = 'a'", False),
    ("true", False), ("NOT false", False), ("true AND true", False),
    ("id = 7 OR NOT false", False), ("id = 7 OR 1 = 1", False),
    ("id IN (SELECT id FROM customers)", False), ("id = (SELECT max(id) FROM customers)",
                                                  False),
    ("coalesce(id, 0) IS NOT NULL", False), ("lower(email) = 'a@b.c'", False),
    ("id = id + 0", False), ("active = true", False), ("id = NULL", False),
    ("EXISTS (SELECT 1 FROM customers)", False), ("CAST(1 AS BOOLEAN)", False),
    ("other.id = 7", False), ("id = 7 OR id IS NULL", False),
]


@pytest.mark.parametrize("dialect", ["postgres", "sqlite", "duckdb"])
@pytest.mark.parametrize(("where", "expected"), PORTABLE)
def test_both_readers_bound_alike(dialect: str, where: str, expected: bool) -> None:
    assert bounded(f"DELETE FROM customers WHERE {where}", dialect) is expected
    assert bounded(f"UPDATE customers SET tier = 'x' WHERE {where}", dialect) is expected


@pytest.mark.parametrize(("dialect", "text", "expected"), [
    # only the written table's columns bound it, wherever others are in scope
    ("postgres", "UPDATE customers SET tier = 'x' FROM orders WHERE orders.id = 7", False),
    ("postgres", "UPDATE customers SET tier = 'x' FROM orders WHERE id = 7", False),
    ("postgres", "UPDATE customers SET tier = 'x' FROM orders WHERE customers.id = 7", True),
    ("postgres", "UPDATE customers c SET tier = 'x' FROM orders WHERE c.id = 7", True),
    ("postgres", "DELETE FROM customers USING orders WHERE customers.id = orders.id", False),
    ("postgres", "DELETE FROM shop.customers WHERE shop.customers.id = 7", True),
    ("snowflake", "UPDATE customers SET tier = 'x' FROM orders WHERE orders.id = 7", False),
    ("snowflake", "UPDATE customers AS c SET tier = 'x' FROM orders WHERE c.id = 7", True),
    ("postgres", "DELETE FROM customers WHERE id = $1", True),
    ("postgres", "DELETE FROM customers WHERE id = ANY(ARRAY[1, 2])", True),
    ("postgres", "DELETE FROM customers WHERE id = ANY($1)", False),  # an array of any size
    ("postgres", "DELETE FROM customers WHERE id = '7'::int", True),
    ("postgres", "DELETE FROM customers WHERE id OPERATOR(pg_catalog.=) 7", True),
    ("postgres", "DELETE FROM customers WHERE id OPERATOR(public.=) 7", False),
    ("postgres", "DELETE FROM customers WHERE CURRENT OF c", True),
    ("postgres", "DELETE FROM customers WHERE (id, tier) = (7, 'x')", False),
    ("sqlite", "DELETE FROM customers WHERE id = ?", True),
    ("sqlite", "DELETE FROM customers WHERE id = :id", True),
    ("duckdb", "DELETE FROM customers WHERE id = ANY([1, 2])", True),
    # MySQL compares a string with a number as numbers: 'abc' = 0 (checked on MariaDB 10.11)
    ("mysql", "DELETE FROM customers WHERE id = 7", True),
    ("mysql", "DELETE FROM customers WHERE name = 0", False),
    ("mysql", "DELETE FROM customers WHERE name = -0.0", False),
    ("mysql", "DELETE FROM customers WHERE name = ?", False),
    ("mysql", "DELETE FROM customers WHERE name = 'bob'", True),
    ("mysql", "DELETE FROM customers WHERE name = 'x' COLLATE utf8mb4_bin", True),
    ("mysql", "DELETE FROM customers WHERE id <=> 7", True),
    ("mysql", "DELETE FROM customers AS c WHERE c.id = 7", True),
    ("sqlite", "DELETE FROM customers WHERE name = 0", True),  # SQLite compares as text
    # a LIMIT where the dialect honours it on writes
    ("mysql", "DELETE FROM logs WHERE created < now() LIMIT 500", True),
    ("mysql", "UPDATE logs SET seen = 1 ORDER BY id LIMIT 10", True),
    ("mysql", f"DELETE FROM logs LIMIT {MAX_LIMIT_ROWS + 1}", False),
    ("sqlite", "DELETE FROM logs WHERE created < 5 LIMIT 10", True),
    ("duckdb", "DELETE FROM logs WHERE created < 5", False),
    # a write to several tables at once: its condition may bound one of them only
    ("mysql", "DELETE c FROM customers c JOIN orders o ON c.id = o.cid WHERE c.id = 7", False),
    ("mysql", "UPDATE customers c JOIN orders o ON c.id = o.cid SET o.total = 0 WHERE c.id = 7",
     False),
    ("mysql", "UPDATE customers, orders SET orders.total = 0 WHERE customers.id = 7", False),
])
def test_reader_specifics(dialect: str, text: str, expected: bool) -> None:
    assert bounded(text, dialect) is expected


@pytest.mark.parametrize(("dialect", "text", "expected"), [
    ("postgres", "MERGE INTO t USING (VALUES (1), (2)) s(id) ON t.id = s.id "
                 "WHEN MATCHED THEN DELETE", True),
    ("postgres", "MERGE INTO t USING (SELECT 7 AS id) s ON t.id = s.id "
                 "WHEN MATCHED THEN UPDATE SET v = 1", True),
    ("postgres", "MERGE INTO t USING (SELECT id FROM u) s ON t.id = s.id "
                 "WHEN MATCHED THEN DELETE", False),
    ("postgres", "MERGE INTO t USING (SELECT generate_series(1, 9) AS id) s ON t.id = s.id "
                 "WHEN MATCHED THEN DELETE", False),
    ("postgres", "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE", False),
    ("postgres", "MERGE INTO t USING u ON t.id = 7 WHEN MATCHED THEN DELETE", True),
    ("postgres", "MERGE INTO t USING (VALUES (1)) s(id) ON t.id = s.id OR true "
                 "WHEN MATCHED THEN DELETE", False),
    ("postgres", "MERGE INTO t USING (VALUES (1)) s(id) ON true WHEN MATCHED THEN DELETE",
     False),
    ("postgres", "MERGE INTO t USING u ON t.id = u.id WHEN NOT MATCHED THEN INSERT VALUES (1)",
     True),
    ("snowflake", "MERGE INTO t USING (SELECT 7 AS id) s ON t.id = s.id "
                  "WHEN MATCHED THEN DELETE", True),
    ("snowflake", "MERGE INTO t USING u s ON t.id = s.id WHEN MATCHED THEN DELETE", False),
    ("tsql", "MERGE INTO t USING (VALUES (1, 2)) AS s(id, v) ON t.id = s.id "
             "WHEN MATCHED THEN DELETE;", True),
])
def test_merge_is_bounded_by_a_source_of_constant_rows(
    dialect: str, text: str, expected: bool
) -> None:
    assert bounded(text, dialect) is expected


# -- generated conditions: both readers agree with a model of the rule -------------------------


@dataclass(frozen=True)
class Cond:
    """A condition's text and what it selects: `reach` (values of a column, None: every
    row) and `negated_reach` (the same for its NOT)."""

    sql: str
    reach: int | None
    negated_reach: int | None


ATOMS = [
    Cond("id = 7", 1, None), Cond("id <> 7", None, 1), Cond("id IN (1, 2, 3)", 3, None),
    Cond("id NOT IN (1, 2)", None, 2), Cond("email = 'x'", 1, None), Cond("1 = 2", 0, None),
    Cond("1 = 1", None, 0), Cond("true", None, 0), Cond("false", 0, None),
    Cond("id > 0", None, None), Cond("name LIKE '%'", None, None),
    Cond("id IS NOT NULL", None, None), Cond("id = id", None, None),
    Cond("id IN (SELECT id FROM customers)", None, None),
    Cond("coalesce(id, 0) = 0", None, None), Cond("'a' = 'a'", None, 0),
]


def _and(a: Cond, b: Cond) -> Cond:
    reach = [r for r in (a.reach, b.reach) if r is not None]
    neg = None if None in (a.negated_reach, b.negated_reach) else (
        (a.negated_reach or 0) + (b.negated_reach or 0))
    return Cond(f"({a.sql} AND {b.sql})", min(reach) if reach else None, neg)


def _or(a: Cond, b: Cond) -> Cond:
    flipped = _and(Cond("", a.negated_reach, a.reach), Cond("", b.negated_reach, b.reach))
    return Cond(f"({a.sql} OR {b.sql})", flipped.negated_reach, flipped.reach)


def _not(a: Cond) -> Cond:
    return Cond(f"NOT ({a.sql})", a.negated_reach, a.reach)


conditions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.builds(_and, inner, inner), st.builds(_or, inner, inner), st.builds(_not, inner)),
    max_leaves=8,
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(conditions)
def test_generated_conditions_bound_as_the_rule_says(cond: Cond) -> None:
    expected = cond.reach is not None and cond.reach <= MAX_VALUES
    for dialect in ("postgres", "sqlite", "duckdb"):
        assert bounded(f"DELETE FROM customers WHERE {cond.sql}", dialect) is expected, dialect


@settings(max_examples=60, deadline=None)
@given(conditions, st.sampled_from([a for a in ATOMS if a.negated_reach == 0]))
def test_or_with_a_tautology_never_bounds(cond: Cond, tautology: Cond) -> None:
    for dialect in ("postgres", "mysql", "sqlite"):
        text = f"DELETE FROM customers WHERE {cond.sql} OR {tautology.sql}"
        assert bounded(text, dialect) is False, dialect


@settings(max_examples=60, deadline=None)
@given(conditions)
def test_and_with_a_key_equality_always_bounds(cond: Cond) -> None:
    for dialect in ("postgres", "mysql", "sqlite"):
        text = f"UPDATE customers SET tier = 'x' WHERE id = 7 AND ({cond.sql})"
        assert bounded(text, dialect) is True, dialect
