"""Derived values, an attacker's variants: each query reads a protected column through
something other than a plain reference, decided by the default pack on the interpreter's
real reading, and its result masked by the decision's mask as the fronts mask a table
(column names beside rows). A value that comes back must be `[REDACTED:DERIVED]` in every
column that carries it; columns that carry none stay as they are. The same in MySQL's
dialect, through the MySQL front's input; and a statement that stores a protected value
for a later one to read back (a variable, a view, a copy, a column) is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extproc.interpret.sql import analyze
from extproc.masking.masker import Masker, MaskSpec
from extproc.policy.embedded import EmbeddedEngine
from tests.policy_corpus import policy_input

POLICIES = Path(__file__).resolve().parents[2] / "policies"
AGENT = {"authenticated": True, "sub": "agent-1", "groups": ["agents"]}
DERIVED = "[REDACTED:DERIVED]"
VALUE = "opaque-value"  # no detector recognises it: only lineage can hide it

# (id, SQL, the result columns carrying a protected value, by position)
VARIANTS = [
    ("double-encoding", "SELECT encode(encode(ssn::bytea, 'base64')::bytea, 'hex') AS x, "
                        "name FROM customers", [0]),
    ("rename-through-two-subqueries", "SELECT y AS name FROM (SELECT x AS y FROM "
                                      "(SELECT ssn AS x FROM customers) a) b", [0]),
    ("derived-named-like-a-safe-column", "SELECT name, lower(email) AS name FROM customers",
     [0, 1]),
    ("case-only-else", "SELECT CASE WHEN false THEN '' ELSE ssn END, id FROM customers", [0]),
    ("quoted-alias", 'SELECT md5(ssn) AS "Nickname" FROM customers', [0]),
    ("scalar-subquery", "SELECT (SELECT reverse(ssn) FROM customers LIMIT 1) AS hint", [0]),
    ("array-subquery", "SELECT ARRAY(SELECT ssn FROM customers) AS list", [0]),
    ("lateral", "SELECT c.id, l.v FROM customers c, LATERAL (SELECT upper(c.email) AS v) l",
     [1]),
    ("union-smuggles-under-a-safe-name", "SELECT name FROM customers UNION ALL "
                                         "SELECT ssn FROM customers", [0]),
    ("values-of-a-subquery", "VALUES ((SELECT email FROM customers LIMIT 1), 1)", [0]),
    ("recursive-cte", "WITH RECURSIVE r(s) AS (SELECT ssn FROM customers UNION ALL "
                      "SELECT s FROM r WHERE false) SELECT s AS note FROM r", [0]),
    ("json-path", "SELECT to_jsonb(c) ->> 'ssn' AS v FROM customers c", [0]),
    ("whole-row-text", "SELECT c::text AS v FROM customers c", [0]),
    ("row-constructor", "SELECT ROW(ssn, 1) AS r FROM customers", [0]),
    ("user-function", "SELECT lookup(id) AS v, id FROM customers", [0]),
    ("function-in-from", "SELECT * FROM leak_ssn()", [0]),
    ("alias-column-list", "SELECT a FROM customers AS c(a, b)", [0]),
    ("returning", "DELETE FROM customers WHERE id = -1 RETURNING translate(ssn, '0', 'o')",
     [0]),
    ("cast-to-char", "SELECT ssn::char(3) AS ssn3 FROM customers", [0]),
    ("collate", 'SELECT ssn COLLATE "C" AS v FROM customers', [0]),
    ("window-over-partition", "SELECT max(email) OVER (PARTITION BY id) AS m FROM customers",
     [0]),
    ("credential", "SELECT encode(password_hash::bytea, 'hex') AS h FROM users", [0]),
    # A person's name (people masking reads its shape; transformed, it has none).
    ("person-name", "SELECT initcap(lower(name)) AS who FROM customers", [0]),
    ("birth-date", "SELECT date_of_birth::text AS d FROM customers", [0]),
    # A function in FROM beside the table: its columns are not known, so it does not hide
    # the table's (three characters a row, one character's code a row, aggregated).
    ("pieces-across-rows", "SELECT substr(ssn, g, 3) AS p, g FROM customers, "
                           "generate_series(1, 11, 3) g", [0]),
    ("codes-aggregated", "SELECT string_agg(ascii(substr(ssn, g, 1))::text, ',') AS a "
                         "FROM customers, generate_series(1, 11) g", [0]),
    ("rows-from-ordinality", "SELECT substr(ssn, n, 1) AS c FROM customers CROSS JOIN "
                             "ROWS FROM (generate_series(1, 11)) WITH ORDINALITY AS t(n, o)",
     [0]),
    ("function-under-a-star", "SELECT substr(ssn, g, 1) AS c FROM (SELECT * FROM customers) "
                              "s, generate_series(1, 11) g", [0]),
    ("correlated-under-a-function", "SELECT (SELECT ssn FROM generate_series(1, 1) g) AS v "
                                    "FROM customers", [0]),
    # A table in a subquery may not have the column: the outer query's may.
    ("correlated-under-a-table", "SELECT (SELECT x FROM orders LIMIT 1) AS v "
                                 "FROM (SELECT ssn AS x FROM customers) s", [0]),
    # An alias's list names a composite function's first columns only.
    ("function-partly-renamed", "SELECT value FROM customers, "
                                "json_each_text(json_build_object('s', ssn)) AS j(k)", [0]),
    # A star renamed by position: which column lands under which name is not known.
    ("star-renamed", "SELECT b FROM (SELECT * FROM customers) s(a, b)", [0]),
    ("cte-star-renamed", "WITH t(a, b) AS (SELECT * FROM customers) SELECT b FROM t", [0]),
    ("characters-as-rows", "SELECT x FROM customers, regexp_split_to_table(ssn, '') x", [0]),
    ("unnest-characters", "SELECT unnest(string_to_array(ssn, NULL)) AS ch FROM customers",
     [0]),
    ("digits-translated", "SELECT translate(ssn, '0123456789', 'abcdefghij') AS t "
                          "FROM customers", [0]),
    ("digit-arithmetic", "SELECT to_hex(substr(ssn, 1, 3)::int + 0) AS h FROM customers",
     [0]),
    ("one-character-inferred", "SELECT CASE WHEN substr(ssn, 1, 1) = '5' THEN 1 ELSE 0 END "
                               "AS guess FROM customers", [0]),
    ("json-agg-window", "SELECT json_agg(ssn) OVER (ORDER BY id) AS j FROM customers", [0]),
]
# Queries that carry no protected value in another form: left alone.
UNTOUCHED = [
    ("plain", "SELECT ssn, email, name FROM customers"),
    ("plain-text-cast", "SELECT ssn::text, email::varchar FROM customers"),
    ("unprotected-derived", "SELECT upper(status), length(status), count(*) FROM customers "
                            "GROUP BY status"),
    ("star", "SELECT * FROM customers"),
    ("constants", "SELECT 1, now(), 'ssn'"),
    ("a-functions-own-column", "SELECT g, id FROM customers, generate_series(1, 3) g"),
]


def masked_row(engine: EmbeddedEngine, text: str) -> tuple[list[Any], list[Any]]:
    """The names the database gives the result's columns, and a row of VALUE masked."""
    spec = {"identity": AGENT, "target": {"sql": {"dialect": "postgres"}, "labels": {}},
            "http": {"method": "POST", "path": "/sql", "headers": {}, "body_json": {"sql": text}}}
    decision = engine.decide_now(policy_input(spec))
    assert decision.action == "allow", decision
    (statement,) = [s for s in analyze(text)["statements"] if not s["nested"]]
    names = [c["name"] for c in statement["columns"]]
    table = {"columns": names, "rows": [[VALUE] * len(names)]}
    masked, _ = Masker(b"k" * 32).mask_json(table, MaskSpec.from_policy(decision.mask))
    return names, masked["rows"][0]


@pytest.mark.parametrize(("text", "carrying"), [pytest.param(t, c, id=i) for i, t, c in VARIANTS])
def test_a_derived_value_never_comes_back(engine: EmbeddedEngine, text: str,
                                          carrying: list[int]) -> None:
    names, row = masked_row(engine, text)
    assert all(row[i] == DERIVED for i in carrying), (names, row)


@pytest.mark.parametrize("text", [pytest.param(t, id=i) for i, t in UNTOUCHED])
def test_what_carries_no_protected_value_is_left_alone(engine: EmbeddedEngine,
                                                       text: str) -> None:
    _, row = masked_row(engine, text)
    assert DERIVED not in row


def test_a_plain_reference_is_masked_as_before_not_as_derived(engine: EmbeddedEngine) -> None:
    names, row = masked_row(engine, "SELECT ssn, name FROM customers")
    assert names == ["ssn", "name"]
    assert row[0].startswith("[REDACTED:") and row[0] != DERIVED and row[1] == VALUE


# -- MySQL: the same attack in its dialect, through the MySQL front's policy input ----------

MYSQL_VARIANTS = [
    ("concat-empty", "SELECT CONCAT(email, '') AS e, name FROM customers", [0]),
    ("concat-ws", "SELECT CONCAT_WS('-', ssn, '') AS s, name FROM customers", [0]),
    ("reverse", "SELECT REVERSE(ssn) AS r, name FROM customers", [0]),
    ("hex", "SELECT HEX(ssn) AS h, name FROM customers", [0]),
    ("unhex-of-hex", "SELECT UNHEX(HEX(ssn)) AS u, name FROM customers", [0]),
    ("base64", "SELECT TO_BASE64(email) AS b, name FROM customers", [0]),
    ("cast-binary", "SELECT CAST(ssn AS BINARY) AS c, name FROM customers", [0]),
    ("convert-using", "SELECT CONVERT(ssn USING latin1) AS c, name FROM customers", [0]),
    ("binary-operator", "SELECT BINARY ssn AS c, name FROM customers", [0]),
    ("group-concat", "SELECT GROUP_CONCAT(ssn SEPARATOR ',') AS g FROM customers", [0]),
    ("json-object", "SELECT JSON_OBJECT('s', ssn) AS j, name FROM customers", [0]),
    ("json-arrayagg", "SELECT JSON_ARRAYAGG(email) AS j FROM customers", [0]),
    ("elt", "SELECT ELT(1, ssn) AS e, name FROM customers", [0]),
    ("substring-piecewise", "SELECT SUBSTRING(ssn, 1, 3) AS a, MID(ssn, 4, 3) AS b, "
                            "name FROM customers", [0, 1]),
    ("insert-function", "SELECT INSERT(ssn, 1, 0, 'x') AS i, name FROM customers", [0]),
    ("lpad", "SELECT LPAD(ssn, 20, '*') AS l, name FROM customers", [0]),
    ("soundex", "SELECT SOUNDEX(email) AS s, name FROM customers", [0]),
    ("rename", "SELECT ssn AS note, name FROM customers", [0]),
    ("rename-backticks", "SELECT `ssn` `note`, name FROM customers", [0]),
    ("rename-string-alias", "SELECT ssn 'note', name FROM customers", [0]),
    ("derived-table", "SELECT x AS note, name FROM (SELECT ssn AS x, name FROM customers) d",
     [0]),
    ("union-harmless-first", "SELECT name AS n FROM customers UNION SELECT ssn FROM customers",
     [0]),
    ("cte", "WITH c AS (SELECT REVERSE(ssn) AS r FROM customers) SELECT r AS note FROM c", [0]),
    ("scalar-subquery", "SELECT (SELECT ssn FROM customers LIMIT 1) AS hint", [0]),
    ("if", "SELECT IF(id > 0, ssn, '') AS v, name FROM customers", [0]),
    # With ANSI_QUOTES (a server's sql_mode) "ssn" is the column, not a string.
    ("ansi-quotes", 'SELECT REVERSE("ssn") AS r, name FROM customers', [0]),
    # A table function or a lateral subquery beside the table does not hide its columns.
    ("json-table-beside", "SELECT SUBSTRING(ssn, n, 3) AS p FROM customers, JSON_TABLE("
                          "'[1, 4, 7]', '$[*]' COLUMNS (n INT PATH '$')) g", [0]),
    ("lateral-beside", "SELECT SUBSTRING(ssn, n, 3) AS p FROM customers "
                       "JOIN LATERAL (SELECT 1 AS n) l", [0]),
    ("correlated-under-json-table", "SELECT (SELECT ssn FROM JSON_TABLE('[1]', '$[*]' "
                                    "COLUMNS (n INT PATH '$')) g) AS v FROM customers", [0]),
    ("derived-star-renamed", "SELECT b FROM (SELECT * FROM customers) AS s (a, b)", [0]),
    ("codes-across-rows", "SELECT GROUP_CONCAT(ORD(SUBSTRING(ssn, n, 1))) AS g FROM "
                          "customers, (SELECT 1 AS n UNION ALL SELECT 2) d", [0]),
    ("conv", "SELECT CONV(SUBSTRING(ssn, 1, 3), 10, 16) AS c FROM customers", [0]),
    ("one-character-inferred", "SELECT CASE WHEN SUBSTRING(ssn, 1, 1) = '5' THEN 1 ELSE 0 "
                               "END AS guess FROM customers", [0]),
]


def mysql_masked_row(engine: EmbeddedEngine, text: str) -> tuple[list[Any], list[Any]]:
    """As masked_row, on a mysql target: every result column named by its AS."""
    spec = {"identity": AGENT, "target": {"protocol": "mysql", "name": "shop-my"},
            "request": {"method": "QUERY", "path": "/shop", "query": {}, "headers": {},
                        "body": text}}
    decision = engine.decide_now(policy_input(spec))
    assert decision.action == "allow", decision
    (statement, *_) = [s for s in analyze(text, "mysql")["statements"] if not s["nested"]]
    names = [c["name"] for c in statement["columns"]]
    table = {"columns": names, "rows": [[VALUE] * len(names)]}
    masked, _ = Masker(b"k" * 32).mask_json(table, MaskSpec.from_policy(decision.mask))
    return names, masked["rows"][0]


@pytest.mark.parametrize(("text", "carrying"),
                         [pytest.param(t, c, id=i) for i, t, c in MYSQL_VARIANTS])
def test_a_derived_value_never_comes_back_from_mysql(engine: EmbeddedEngine, text: str,
                                                     carrying: list[int]) -> None:
    names, row = mysql_masked_row(engine, text)
    assert all(row[i] == DERIVED for i in carrying), (names, row)


def test_mysql_warnings_are_masked_whole(engine: EmbeddedEngine) -> None:
    """`SELECT ssn + 0 ...; SHOW WARNINGS`: the message quotes each value it truncated."""
    names, row = mysql_masked_row(engine, "SHOW WARNINGS")
    assert (names, row) == (["level", "code", "message"], [VALUE, VALUE, DERIVED])


# What a statement stores for a later one to read back under another name or in another
# form (a variable, a view, a table, a column): refused, since that later read escapes
# the mask. (dialect, SQL)
STORES = [
    ("mysql", "SELECT ssn INTO @v FROM customers LIMIT 1"),
    ("mysql", "SELECT @v := ssn FROM customers"),
    ("mysql", "SELECT id FROM customers WHERE (@v := email) IS NOT NULL"),
    ("mysql", "SELECT @v := x FROM (SELECT ssn AS x FROM customers) d"),
    ("mysql", "SELECT (SELECT @v := REVERSE(c.ssn) FROM customers c LIMIT 1) AS one"),
    ("mysql", "SET @v = (SELECT email FROM customers LIMIT 1)"),
    ("mysql", "SET time_zone = (SELECT ssn FROM customers LIMIT 1)"),
    ("mysql", "CREATE VIEW v AS SELECT REVERSE(ssn) AS r FROM customers"),
    ("mysql", "CREATE VIEW v (a, b) AS SELECT ssn, id FROM customers"),
    ("mysql", "CREATE TABLE t2 AS SELECT ssn AS note FROM customers"),
    ("mysql", "CREATE TABLE t2 (note text) SELECT ssn AS note FROM customers"),
    ("mysql", "CREATE TEMPORARY TABLE t2 AS SELECT HEX(email) AS h FROM customers"),
    ("mysql", "INSERT INTO scratch SELECT ssn FROM customers"),
    ("mysql", "INSERT INTO scratch (note) SELECT ssn FROM customers"),
    ("mysql", "INSERT INTO scratch VALUES ((SELECT email FROM customers LIMIT 1))"),
    ("mysql", "INSERT INTO scratch SET note = (SELECT ssn FROM customers LIMIT 1)"),
    ("mysql", "INSERT INTO customers (id) VALUES (1) ON DUPLICATE KEY UPDATE name = ssn"),
    ("mysql", "UPDATE customers SET name = ssn WHERE id = 1"),
    ("mysql", "UPDATE customers SET email = REVERSE(email) WHERE id = 1"),
    # A person's name is protected too.
    ("mysql", "SELECT name INTO @n FROM customers WHERE id = 1"),
    ("mysql", "UPDATE customers SET name = upper(name) WHERE id = 1"),
    ("mysql", "UPDATE scratch s JOIN customers c ON s.id = c.id SET s.note = c.ssn "
              "WHERE s.id = 1"),
    ("mysql", "ALTER TABLE customers ADD COLUMN r text AS (REVERSE(ssn)) VIRTUAL"),
    ("postgres", "CREATE VIEW v AS SELECT encode(ssn::bytea, 'base64') AS b FROM customers"),
    ("postgres", "CREATE MATERIALIZED VIEW m AS SELECT ssn AS note FROM customers"),
    ("postgres", "CREATE TABLE t2 (note) AS SELECT ssn FROM customers"),
    ("postgres", "SELECT ssn AS note INTO t3 FROM customers"),
    ("postgres", "WITH i AS (INSERT INTO notes (body) SELECT email FROM customers "
                 "RETURNING 1) SELECT count(*) FROM i"),
    ("postgres", "INSERT INTO s (a) SELECT id FROM customers ON CONFLICT (a) DO UPDATE "
                 "SET b = customers.ssn"),
    ("postgres", "MERGE INTO t USING customers c ON t.id = c.id "
                 "WHEN MATCHED THEN UPDATE SET a = c.ssn"),
    ("postgres", "ALTER TABLE customers ADD COLUMN r text "
                 "GENERATED ALWAYS AS (reverse(ssn)) STORED"),
    ("postgres", "SELECT set_config('application_name', x, false) "
                 "FROM (SELECT ssn AS x FROM customers) s"),
    ("postgres", "SELECT pg_notify('c', email) FROM customers"),
]
# Stores a later read masks as it masks the original: left alone.
KEPT = [
    ("mysql", "CREATE VIEW v AS SELECT * FROM customers"),
    ("mysql", "CREATE VIEW v AS SELECT ssn, email FROM customers"),
    ("mysql", "INSERT INTO archive (email) SELECT email FROM customers"),
    ("mysql", "INSERT INTO customers SELECT * FROM customers"),
    ("mysql", "SELECT status INTO @n FROM customers WHERE id = 1"),
    ("mysql", "UPDATE customers SET name = 'x' WHERE id = 1"),
    ("postgres", "CREATE TABLE backup AS SELECT * FROM customers"),
    ("postgres", "INSERT INTO customers (id, name) VALUES (1, 'x')"),
]


def decided(engine: EmbeddedEngine, dialect: str, text: str) -> Any:
    protocol = {"mysql": ("mysql", "shop-my"), "postgres": ("postgres", "shop-db")}[dialect]
    spec = {"identity": AGENT, "target": {"protocol": protocol[0], "name": protocol[1]},
            "request": {"method": "QUERY", "path": "/shop", "query": {}, "headers": {},
                        "body": text}}
    return engine.decide_now(policy_input(spec))


@pytest.mark.parametrize(("dialect", "text"), STORES)
def test_a_protected_value_stored_for_a_later_read_is_refused(
        engine: EmbeddedEngine, dialect: str, text: str) -> None:
    decision = decided(engine, dialect, text)
    assert decision.action == "deny" and "sql.derived_store" in decision.rules, decision


@pytest.mark.parametrize(("dialect", "text"), KEPT)
def test_a_store_the_mask_still_covers_passes(engine: EmbeddedEngine, dialect: str,
                                              text: str) -> None:
    assert "sql.derived_store" not in decided(engine, dialect, text).rules
