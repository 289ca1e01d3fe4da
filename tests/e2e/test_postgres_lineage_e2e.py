"""Derived values end to end: a result column the SQL computed from a protected column
comes back `[REDACTED:DERIVED]` (NULL in a non-text column), through the PostgreSQL front
(psycopg's extended protocol and psql's simple queries) and through SQL over HTTP (the
demo upstream's `POST /sql`, SQLite), while plain references are masked as before and
derived columns of unprotected ones pass untouched.

The interpreter names each result column as PostgreSQL does; the front matches the rows'
columns on those names, so the names are checked against the real server's, read beside
the gateway.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from extproc.interpret.sql import analyze
from extproc.quickstart.demo_upstream import CUSTOMERS as DEMO_CUSTOMERS
from tests.e2e.test_postgres_e2e import CUSTOMERS, customers_database, shop, url
from tests.support.gateway import Gateway, module_gateway

DERIVED = "[REDACTED:DERIVED]"
PERSON = "[REDACTED:PERSON]"
SSN, EMAIL, NAME = CUSTOMERS[0][3], CUSTOMERS[0][2], CUSTOMERS[0][1]
# A column no rule protects (a customer's city): what is read of it, plainly or derived,
# passes.
CITY = "ALTER TABLE customers ADD COLUMN city text DEFAULT 'London'"

# The transformations, and more: each must come back masked whole.
TRANSFORMED = {
    "base64": "SELECT encode(ssn::bytea, 'base64') FROM customers WHERE id = 1",
    "replace": "SELECT replace(email, '@', ' at ') FROM customers WHERE id = 1",
    "hex": "SELECT encode(convert_to(ssn, 'UTF8'), 'hex') AS h FROM customers WHERE id = 1",
    "reverse": "SELECT reverse(ssn) AS note FROM customers WHERE id = 1",
    "spaced": "SELECT regexp_replace(email, '(.)', '\\1 ', 'g') FROM customers WHERE id = 1",
    "split": "SELECT split_part(email, '@', 1) AS a, split_part(email, '@', 2) AS b "
             "FROM customers WHERE id = 1",
    "renamed-in-subquery": "SELECT ssn FROM (SELECT encode(ssn::bytea, 'base64') AS ssn "
                           "FROM customers WHERE id = 1) s",
    "cte": "WITH c AS (SELECT upper(email) AS contact FROM customers) SELECT contact FROM c "
           "LIMIT 1",
    "string_agg": "SELECT string_agg(email, ',') FROM customers",
    "concat": "SELECT 'x' || ssn || 'y' AS label FROM customers WHERE id = 1",
    "case": "SELECT CASE WHEN id = 1 THEN ssn ELSE name END AS pick FROM customers "
            "WHERE id = 1",
    "coalesce": "SELECT coalesce(ssn, name) FROM customers WHERE id = 1",
    "substr": "SELECT substr(ssn, 1, 3) || '-' || substr(ssn, 5) AS parts FROM customers "
              "WHERE id = 1",
    "translate": "SELECT translate(ssn, '0123456789', 'abcdefghij') FROM customers "
                 "WHERE id = 1",
    "format": "SELECT format('%s!', email) FROM customers WHERE id = 1",
    "overlay": "SELECT overlay(ssn placing 'X' from 1 for 1) FROM customers WHERE id = 1",
    "to_jsonb": "SELECT to_jsonb(customers) FROM customers WHERE id = 1",
    "json_build_object": "SELECT json_build_object('s', ssn) AS doc FROM customers "
                         "WHERE id = 1",
    "window": "SELECT first_value(email) OVER (ORDER BY id) AS f FROM customers LIMIT 1",
    "renamed-plain": "SELECT ssn AS note FROM customers WHERE id = 1",
    "union": "SELECT name FROM customers WHERE id = 2 UNION ALL "
             "SELECT ssn FROM customers WHERE id = 1",
    "returning": "UPDATE customers SET name = name WHERE id = 1 RETURNING reverse(ssn)",
    # Three characters a row, beside a function in FROM whose columns are not known.
    "pieces-across-rows": "SELECT substr(ssn, g, 3) FROM customers, generate_series(1, 11, 3) g "
                          "WHERE id = 1",
    # A person's name is protected too.
    "upper-name": "SELECT upper(name) FROM customers WHERE id = 1",
    "concat-name": "SELECT name || 'x' AS tag FROM customers WHERE id = 1",
    "renamed-name": "SELECT name AS who FROM customers WHERE id = 1",
}
# Non-text results: NULL (an array of text, test_postgres_binary_e2e.py: each value
# redacted).
TO_NULL = {
    "to-bytea": "SELECT ssn::bytea FROM customers WHERE id = 1",
    "length": "SELECT length(ssn) FROM customers WHERE id = 1",
    "length-name": "SELECT length(name) FROM customers WHERE id = 1",
}


@pytest.fixture(scope="module")
def upstream_db() -> Iterator[str]:
    with customers_database("tollgate_lineage", CITY) as db:
        yield db


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       upstream_db: str) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "lineage", postgres={}, targets=[
        shop(upstream_db),
        {"name": "demo", "match": {"route": "demo"}, "protocol": "sql-http",
         "sql": {"dialect": "sqlite"}},
    ]) as running:
        yield running


def _leaks(values: list[Any]) -> list[str]:
    """The forms of the protected values found in `values`."""
    text = repr(values)
    forms = {SSN, EMAIL, SSN[::-1], base64.b64encode(SSN.encode()).decode()[:8],
             SSN.encode().hex(), EMAIL.replace("@", " at "), EMAIL.split("@")[0], NAME,
             NAME.upper()}
    return [f for f in forms if f in text]


@pytest.mark.parametrize("sql", TRANSFORMED.values(), ids=TRANSFORMED.keys())
def test_a_transformed_protected_column_comes_back_redacted_whole(gw: Gateway,
                                                                  sql: str) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        cursor = conn.execute(sql)
        rows = cursor.fetchall()
    assert rows and all(v == DERIVED or (isinstance(v, str) and v.startswith("[REDACTED"))
                        for row in rows for v in row), rows
    assert DERIVED in repr(rows)
    assert not _leaks(rows)


@pytest.mark.parametrize("sql", TO_NULL.values(), ids=TO_NULL.keys())
def test_a_derived_value_of_another_type_comes_back_null(gw: Gateway, sql: str) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        assert conn.execute(sql).fetchall() == [(None,)]


def test_plain_references_are_masked_as_before_and_other_columns_pass(gw: Gateway) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        # (The front matches derived columns by name: the name's are named apart.)
        ((ssn, email, city, upper, length, card, name, upper_name, length_name),) = conn.execute(
            "SELECT ssn, email, city, upper(city), length(city), card, name, "
            "upper(name) AS shout, length(name) AS size FROM customers WHERE id = 1").fetchall()
    assert ssn.startswith("[REDACTED:") and ssn != DERIVED
    assert email != EMAIL and EMAIL not in email and email != DERIVED
    assert (city, upper, length) == ("London", "LONDON", 6)
    assert "4111" not in card and card != DERIVED
    # A person's name is a protected column: plain, masked by its column; derived, whole.
    assert (name, upper_name, length_name) == (PERSON, DERIVED, None)


def test_psql_simple_queries_mask_each_result_by_its_columns(gw: Gateway) -> None:
    psql = shutil.which("psql")
    assert psql, "tests/system-deps.sh installs postgresql-client"
    done = subprocess.run(
        [psql, "-X", "-A", "-t", url(gw), "-c",
         "SELECT id, md5(ssn) FROM customers ORDER BY id; "
         "SELECT name, lower(email) AS contact, city FROM customers ORDER BY id"],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10", "HISTFILE": ""})
    lines = done.stdout.strip().splitlines()
    assert lines == [f"1|{DERIVED}", f"2|{DERIVED}", f"{PERSON}|{DERIVED}|London",
                     f"{PERSON}|{DERIVED}|London"], done.stderr


@pytest.mark.parametrize("sql", [*TRANSFORMED.values(), *TO_NULL.values(),
                                 "SELECT upper(name), 1 + 1, now()::text, (SELECT 1), "
                                 "CASE WHEN true THEN 1 END, ARRAY[1], ROW(1), "
                                 "current_date, greatest(1, 2), nullif(1, 2), "
                                 "EXISTS (SELECT 1), name::varchar FROM customers"])
def test_the_interpreter_names_columns_as_postgresql_does(upstream_db: str, sql: str) -> None:
    (statement,) = analyze(sql)["statements"]
    with psycopg.connect(upstream_db) as conn:
        cursor = conn.execute(sql)
        names = [d.name for d in cursor.description or ()]
        conn.rollback()
    assert [c["name"] for c in statement["columns"] or ()] == names


def test_sql_over_http_masks_derived_columns_by_their_names(gw: Gateway) -> None:
    reply = gw.request("POST", "/sql", {
        "sql": "SELECT id, hex(ssn) AS h, replace(email, '@', ' at ') AS e, upper(id) AS i, "
               "upper(name) AS n FROM customers ORDER BY id LIMIT 1"})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["columns"] == ["id", "h", "e", "i", "n"]
    ((ident, h, e, i, n),) = body["rows"]
    assert (h, e, n) == (DERIVED, DERIVED, DERIVED)
    assert (ident, i) == (DEMO_CUSTOMERS[0]["id"], DEMO_CUSTOMERS[0]["id"].upper())


def test_sql_over_http_an_unnamed_derived_column_hides_the_whole_answer(gw: Gateway) -> None:
    reply = gw.request("POST", "/sql", {"sql": "SELECT id, hex(ssn) FROM customers LIMIT 1"})
    assert reply.status == 200, reply.body
    ((ident, hexed),) = reply.json()["rows"]
    assert (ident, hexed) == (DERIVED, DERIVED)
