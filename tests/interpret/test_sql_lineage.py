"""Result-column lineage (extproc/interpret/sql/lineage.py, glot_lineage.py): each result
column's name, the columns it reads, and whether it is a plain reference. Positives
(derived) and negatives (plain) side by side."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.interpret.sql import analyze


def columns(text: str, dialect: str = "postgres") -> list[tuple[Any, ...]]:
    (statement,) = [s for s in analyze(text, dialect)["statements"] if not s["nested"]]
    assert statement["columns"] is not None
    return [(c["name"], c["sources"], c["plain"], c["known"]) for c in statement["columns"]]


@pytest.mark.parametrize(("text", "expected"), [
    # plain references, renamed or not
    ("SELECT ssn FROM customers", [("ssn", ["ssn"], True, True)]),
    ("SELECT c.ssn AS note FROM customers c", [("note", ["ssn"], True, True)]),
    ("SELECT ssn::text, ssn::varchar FROM customers",
     [("ssn", ["ssn"], True, True), ("ssn", ["ssn"], True, True)]),
    ("SELECT x FROM (SELECT ssn AS x FROM customers) s", [("x", ["ssn"], True, True)]),
    ("SELECT a FROM (SELECT ssn FROM customers) s(a)", [("a", ["ssn"], True, True)]),
    ("SELECT * FROM customers", [("*", ["*"], True, True)]),
    # derived
    ("SELECT encode(ssn::bytea, 'base64') FROM customers", [("encode", ["ssn"], False, True)]),
    ("SELECT ssn::bytea, ssn::varchar(3), ssn::int FROM customers",
     [("ssn", ["ssn"], False, True)] * 3),
    ("SELECT ssn FROM (SELECT encode(ssn::bytea, 'base64') AS ssn FROM customers) s",
     [("ssn", ["ssn"], False, True)]),
    ("WITH c AS (SELECT lower(email) AS e FROM customers) SELECT e FROM c",
     [("e", ["email"], False, True)]),
    ("SELECT string_agg(email, ','), array_agg(ssn), count(*) FROM customers",
     [("string_agg", ["email"], False, True), ("array_agg", ["ssn"], False, True),
      ("count", [], False, True)]),
    ("SELECT ssn || '', CASE WHEN true THEN ssn END, coalesce(ssn, '') FROM customers",
     [("?column?", ["ssn"], False, True), ("case", ["ssn"], False, True),
      ("coalesce", ["ssn"], False, True)]),
    ("SELECT CASE WHEN id > 1 THEN name ELSE ssn END FROM customers",
     [("ssn", ["id", "name", "ssn"], False, True)]),
    ("SELECT row_to_json(c), to_jsonb(customers) FROM customers c, customers",
     [("row_to_json", ["*"], False, True), ("to_jsonb", ["*"], False, True)]),
    ("SELECT json_build_object('s', ssn) FROM customers",
     [("json_build_object", ["ssn"], False, True)]),
    ("SELECT lag(ssn) OVER (ORDER BY id) FROM customers", [("lag", ["id", "ssn"], False, True)]),
    ("SELECT (SELECT md5(ssn) FROM customers LIMIT 1) AS h", [("h", ["ssn"], False, True)]),
    ("SELECT name FROM a UNION SELECT ssn FROM customers",
     [("name", ["name", "ssn"], True, True)]),
    ("SELECT * FROM a UNION SELECT ssn FROM customers", [("*", ["*", "ssn"], False, True)]),
    ("VALUES ((SELECT ssn FROM customers LIMIT 1))", [("column1", ["ssn"], False, True)]),
    ("SELECT * FROM unnest(ARRAY(SELECT ssn FROM customers))", [("*", ["ssn"], False, True)]),
    ("UPDATE customers SET name = name RETURNING reverse(ssn), id",
     [("reverse", ["ssn"], False, True), ("id", ["id"], True, True)]),
    # a name a relation may or may not have: what each that may holds
    ("SELECT substr(ssn, g, 3), g FROM customers, generate_series(1, 11, 3) g",
     [("substr", ["ssn"], False, True), ("g", [], False, True)]),
    ("SELECT ssn FROM customers, generate_series(1, 2) g", [("ssn", ["ssn"], False, True)]),
    ("SELECT value FROM customers, json_each_text(json_build_object('s', ssn)) AS j(k)",
     [("value", ["ssn", "value"], False, True)]),
    ("SELECT (SELECT x FROM orders LIMIT 1) FROM (SELECT ssn AS x FROM customers) s",
     [("x", ["ssn", "x"], False, True)]),
    ("SELECT (SELECT total FROM orders o WHERE o.id = c.id) FROM customers c",
     [("total", ["total"], True, True)]),
    ("SELECT ssn FROM customers JOIN orders USING (id)", [("ssn", ["ssn"], True, True)]),
    # not known
    ("SELECT get_ssn(id) FROM customers", [("get_ssn", ["id"], False, False)]),
    ("SELECT * FROM my_function()", [("*", [], False, False)]),
    ("SELECT a FROM customers AS c(a)", [("a", [], False, False)]),
    ("SELECT b FROM (SELECT * FROM customers) s(a, b)", [("b", ["*"], False, False)]),
    ("EXECUTE p", [("*", [], False, False)]),
])
def test_postgres_lineage(text: str, expected: list[tuple[Any, ...]]) -> None:
    assert columns(text) == expected


@pytest.mark.parametrize(("dialect", "text"), [
    ("postgres", "SELECT substr(ssn, g, 3) AS p FROM customers, generate_series(1, 11, 3) g"),
    ("postgres", "SELECT (SELECT ssn FROM unnest(ARRAY[1]) u) AS p FROM customers"),
    ("mysql", "SELECT SUBSTRING(ssn, n, 3) AS p FROM customers, "
              "JSON_TABLE('[1, 4, 7]', '$[*]' COLUMNS (n INT PATH '$')) g"),
    ("mysql", "SELECT SUBSTRING(ssn, n, 3) AS p FROM customers JOIN LATERAL (SELECT 1 AS n) l"),
])
def test_a_function_in_from_does_not_hide_a_tables_column(dialect: str, text: str) -> None:
    ((_, sources, plain, _),) = columns(text, dialect)
    assert "ssn" in sources and not plain


@pytest.mark.parametrize("text", ["INSERT INTO t VALUES (1)", "SET search_path = app",
                                  "SELECT 1 INTO t", "CREATE TABLE t (a int)", "SHOW ALL",
                                  "EXPLAIN SELECT ssn FROM customers", "BEGIN"])
def test_statements_returning_no_table_data_have_no_columns(text: str) -> None:
    assert all(s["columns"] is None for s in analyze(text)["statements"])


def test_nested_statements_have_no_columns_of_their_own() -> None:
    found = analyze("WITH d AS (DELETE FROM t RETURNING ssn) SELECT ssn FROM d")["statements"]
    assert [s["columns"] for s in found] == [[{"name": "ssn", "sources": ["ssn"],
                                               "plain": True, "known": True}], None]


@pytest.mark.parametrize(("text", "expected"), [
    ("select title, upper(body) from posts",
     [("title", ["title"], True, True), (None, ["body"], False, True)]),
    ("select hex(ssn) as h, ssn as s from customers",
     [("h", ["ssn"], False, True), ("s", ["ssn"], True, True)]),
    ("select myfn(ssn) as x from customers", [("x", ["ssn"], False, False)]),
    ("select count(*) as n, count(ssn) as m from customers",
     [("n", [], False, True), ("m", ["ssn"], False, True)]),
    ("with c as (select ssn from p) select * from c", [("ssn", ["ssn"], True, True)]),
    ("select x from (select replace(email, '@', ' at ') as x from c)",
     [("x", ["email"], False, True)]),
])
def test_sqlglot_lineage(text: str, expected: list[tuple[Any, ...]]) -> None:
    assert columns(text, "sqlite") == expected
