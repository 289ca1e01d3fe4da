"""Bypass suite, class "writes that touch everything" (issue 45), and its sibling "schema
changes that take data away from applications".

`DELETE FROM customers WHERE id IS NOT NULL` once removed every row with no hold: the pack
judged a WHERE by its shape. Each write below changes every row (or as many as it likes)
and must be read unbounded by the reader of its dialect (pglast for postgres, sqlglot for
the others) and stopped by the default pack on every front that carries SQL: SQL over
HTTP and PostgreSQL's wire protocol hold it for a dba, an MCP SQL tool's call is refused.
Legitimate bounded writes must still pass (NEGATIVE), and so must schema changes that
leave applications what they read (KEPT). Statements are only read, never run.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.interpret.sql import analyze
from extproc.interpret.sql.bounds import MAX_VALUES
from extproc.policy.embedded import EmbeddedEngine
from tests.policy_corpus import policy_input

AGENT = {"authenticated": True, "sub": "agent-1", "groups": ["agents"]}
DBA = {"authenticated": True, "sub": "dba-1", "groups": ["dba"]}
SQL_TOOL = [{"name": "query", "description": "Run SQL",
             "inputSchema": {"type": "object", "properties": {"sql": {"type": "string"}}}}]
Spec = dict[str, Any]


def over_http(text: str, dialect: str = "postgres", who: Spec = AGENT) -> Spec:
    return {"identity": who, "target": {"sql": {"dialect": dialect}},
            "http": {"method": "POST", "path": "/sql", "headers": {}, "body_json": {"sql": text}}}


def over_postgres(text: str, who: Spec = AGENT) -> Spec:
    """A simple Query on the PostgreSQL front, as psql sends it."""
    return {"identity": who, "target": {"protocol": "postgres", "name": "shop-db"},
            "request": {"method": "QUERY", "path": "/shop", "query": {},
                        "headers": {"application_name": "psql"}, "body": text}}


def over_mcp(text: str, who: Spec = AGENT) -> Spec:
    """An MCP SQL tool's call (read as PostgreSQL, MySQL and SQLite alike)."""
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "query", "arguments": {"sql": text}}}
    return {"identity": who, "target": {"protocol": "mcp", "name": "tools"},
            "http": {"method": "POST", "path": "/mcp", "body_json": call,
                     "headers": {"content-type": "application/json", "mcp-session-id": "s-1"}},
            "mcp_tools": SQL_TOOL}


def decide(engine: EmbeddedEngine, spec: Spec) -> tuple[str, list[str], list[str]]:
    decision = engine.decide_now(policy_input(spec))
    return decision.action, list(decision.rules), list(decision.reasons)


HELD = ("hold", ["sql.unbounded_write"])
REFUSED_TOOL = ("deny", ["mcp.destructive_tool_call"])
PG, ANY = ("postgres",), ("postgres", "mysql", "sqlite")

# (id, text, dialects it is valid in): every one may change every row.
EVERY_ROW: list[tuple[str, str, tuple[str, ...]]] = [
    ("is-not-null-on-the-key", "DELETE FROM customers WHERE id IS NOT NULL", ANY),
    ("is-null-or-is-not-null", "DELETE FROM customers WHERE id IS NULL OR id IS NOT NULL", ANY),
    ("not-is-null", "DELETE FROM customers WHERE NOT (id IS NULL)", ANY),
    ("like-percent", "DELETE FROM customers WHERE email LIKE '%'", ANY),
    ("a-range", "DELETE FROM customers WHERE id > 0", ANY),
    ("both-sides-of-a-range", "DELETE FROM customers WHERE id >= 0 OR id < 0", ANY),
    ("all-but-one", "DELETE FROM customers WHERE id <> 7", ANY),
    ("not-of-an-equality", "DELETE FROM customers WHERE NOT (id = 7)", ANY),
    ("not-in", "DELETE FROM customers WHERE id NOT IN (-1)", ANY),
    ("or-true", "DELETE FROM customers WHERE id = 7 OR true", ANY),
    ("or-one-equals-one", "DELETE FROM customers WHERE id = 7 OR 1 = 1", ANY),
    ("or-a-string-tautology", "DELETE FROM customers WHERE id = 7 OR 'a' = 'a'", ANY),
    ("or-not-false", "DELETE FROM customers WHERE id = 7 OR NOT false", ANY),
    ("or-not-of-a-false-comparison", "DELETE FROM customers WHERE id = 7 OR NOT (1 = 2)", ANY),
    ("or-is-not-null", "DELETE FROM customers WHERE id = 7 OR email IS NOT NULL", ANY),
    ("true-and-true", "DELETE FROM customers WHERE true AND true", ANY),
    ("column-equals-itself", "DELETE FROM customers WHERE id = id", ANY),
    ("column-equals-itself-plus-zero", "DELETE FROM customers WHERE id = id + 0", ANY),
    ("function-of-itself", "DELETE FROM customers WHERE lower(email) = lower(email)", ANY),
    ("coalesce-is-not-null", "DELETE FROM customers WHERE coalesce(email, '') IS NOT NULL", ANY),
    ("subquery-over-the-same-table",
     "DELETE FROM customers WHERE id IN (SELECT id FROM customers)", ANY),
    ("scalar-subquery", "DELETE FROM customers WHERE id = (SELECT id FROM customers)", ANY),
    ("exists", "DELETE FROM customers WHERE EXISTS (SELECT 1 FROM customers)", ANY),
    ("a-function-of-a-column", "DELETE FROM customers WHERE lower(email) = 'a@b.c'", ANY),
    ("a-boolean-column", "UPDATE customers SET tier = 'x' WHERE active = true", ANY),
    ("a-cast-constant-as-condition", "DELETE FROM customers WHERE CAST(1 AS BOOLEAN)", PG),
    ("a-parameter-as-condition", "DELETE FROM customers WHERE $1", PG),
    ("pg-cast-tautology", "DELETE FROM customers WHERE '1'::int = 1", PG),
    ("too-long-an-in-list", "DELETE FROM customers WHERE id IN ("
     + ", ".join(map(str, range(MAX_VALUES + 1))) + ")", ANY),
    ("too-many-or-branches", "DELETE FROM customers WHERE "
     + " OR ".join(f"id = {i}" for i in range(MAX_VALUES + 1)), ANY),
    ("another-tables-column", "UPDATE customers SET tier = 'x' FROM orders WHERE orders.id = 7",
     PG),
    ("unqualified-beside-another-table",
     "UPDATE customers SET tier = 'x' FROM orders WHERE id = 7", PG),
    ("delete-using-a-join", "DELETE FROM customers USING orders WHERE customers.id = orders.cid",
     PG),
    ("merge-from-a-table",
     "MERGE INTO customers c USING incoming i ON c.id = i.id WHEN MATCHED THEN DELETE", PG),
    ("in-a-cte", "WITH d AS (DELETE FROM customers WHERE id IS NOT NULL RETURNING id) "
     "SELECT count(*) FROM d", PG),
    ("under-explain-analyze", "EXPLAIN ANALYZE DELETE FROM customers WHERE id > 0", PG),
    ("mysql-string-equals-zero", "DELETE FROM customers WHERE name = 0", ("mysql",)),
    ("mysql-string-equals-a-parameter", "DELETE FROM customers WHERE name = ?", ("mysql",)),
    ("mysql-a-large-limit", "DELETE FROM customers LIMIT 1000000", ("mysql",)),
    ("mysql-multi-table", "DELETE c FROM customers c JOIN orders o ON c.id = o.cid "
     "WHERE c.id = 7", ("mysql",)),
    ("mysql-update-ordered-with-a-large-limit",
     "UPDATE customers SET tier = 'x' ORDER BY id LIMIT 100000", ("mysql",)),
    ("mysql-limit-of-a-variable", "DELETE FROM customers LIMIT @n", ("mysql",)),
    ("mysql-limit-in-hexadecimal", "UPDATE customers SET tier = 'x' LIMIT 0x7fffffff",
     ("mysql",)),
    ("mysql-update-of-a-join", "UPDATE customers c JOIN orders o ON o.cid = c.id "
     "SET c.tier = 'x' WHERE c.id = 7", ("mysql",)),
    ("mysql-delete-using-bounded-on-the-other-side",
     "DELETE FROM o USING customers c JOIN orders o ON c.id = o.cid WHERE c.id = 7",
     ("mysql",)),
    ("mysql-delete-using-a-self-join",
     "DELETE FROM customers USING customers JOIN customers c2 WHERE c2.id = 7", ("mysql",)),
]

# Writes that bound their rows: none may be held.
NEGATIVE: list[tuple[str, str, tuple[str, ...]]] = [
    ("key-equality", "DELETE FROM customers WHERE id = 7", ANY),
    ("update-by-key", "UPDATE customers SET tier = 'gold' WHERE id = 7", ANY),
    ("any-column-equality", "UPDATE customers SET tier = 'gold' WHERE email = 'a@b.c'", ANY),
    ("a-small-in-list", "DELETE FROM sessions WHERE id IN (1, 2, 3)", ANY),
    ("and-with-a-range", "DELETE FROM sessions WHERE id = 7 AND expires < '2024-01-01'", ANY),
    ("or-of-equalities", "DELETE FROM customers WHERE id = 7 OR id = 8", ANY),
    ("not-of-an-inequality", "DELETE FROM customers WHERE NOT (id <> 7)", ANY),
    ("a-false-condition", "DELETE FROM customers WHERE 1 = 2", ANY),
    ("insert", "INSERT INTO customers (id, tier) VALUES (7, 'gold')", ANY),
    ("a-parameter", "UPDATE customers SET tier = $2 WHERE id = $1", PG),
    ("any-of-an-array", "DELETE FROM customers WHERE id = ANY(ARRAY[1, 2])", PG),
    ("a-cast-parameter", "DELETE FROM customers WHERE id = $1::bigint", PG),
    ("update-from-by-its-own-key",
     "UPDATE customers c SET tier = o.tier FROM orders o WHERE c.id = 7 AND o.cid = c.id", PG),
    ("merge-from-values",
     "MERGE INTO customers c USING (VALUES (7, 'gold')) v(id, tier) ON c.id = v.id "
     "WHEN MATCHED THEN UPDATE SET tier = v.tier", PG),
    ("upsert-of-values", "INSERT INTO customers (id, tier) VALUES (7, 'x') "
     "ON CONFLICT (id) DO UPDATE SET tier = excluded.tier", PG),
    ("mysql-a-small-limit", "DELETE FROM logs WHERE created < '2024-01-01' LIMIT 1000",
     ("mysql",)),
    ("mysql-ordered-limit-one", "UPDATE customers SET tier = 'x' ORDER BY id LIMIT 1",
     ("mysql",)),
    ("mysql-delete-using-bounded-on-its-target",
     "DELETE FROM c USING customers c JOIN orders o ON c.id = o.cid WHERE c.id = 7",
     ("mysql",)),
    ("sqlite-a-parameter", "DELETE FROM customers WHERE id = ?", ("sqlite",)),
]


def _cases(table: list[tuple[str, str, tuple[str, ...]]]) -> list[Any]:
    return [pytest.param(text, dialect, id=f"{name}-{dialect}")
            for name, text, dialects in table for dialect in dialects]


@pytest.mark.parametrize(("text", "dialect"), _cases(EVERY_ROW))
def test_every_row_writes_are_read_unbounded(text: str, dialect: str) -> None:
    statements = analyze(text, dialect)["statements"]
    assert any(s["bounded"] is False for s in statements)


@pytest.mark.parametrize(("text", "dialect"), _cases(EVERY_ROW))
def test_every_row_writes_are_held_over_http(
    engine: EmbeddedEngine, text: str, dialect: str
) -> None:
    assert decide(engine, over_http(text, dialect))[:2] == HELD


@pytest.mark.parametrize(("name", "text"), [(n, t) for n, t, d in EVERY_ROW if "postgres" in d])
def test_every_row_writes_are_stopped_on_the_postgres_front_and_an_mcp_tool(
    engine: EmbeddedEngine, name: str, text: str
) -> None:
    assert decide(engine, over_postgres(text))[:2] == HELD, name
    assert decide(engine, over_mcp(text))[:2] == REFUSED_TOOL, name


@pytest.mark.parametrize(("text", "dialect"), _cases(NEGATIVE))
def test_bounded_writes_pass(engine: EmbeddedEngine, text: str, dialect: str) -> None:
    assert all(s["bounded"] is not False for s in analyze(text, dialect)["statements"])
    assert decide(engine, over_http(text, dialect))[0] == "allow"
    if dialect == "postgres":
        assert decide(engine, over_postgres(text))[0] == "allow"


@pytest.mark.parametrize("text", [text for _, text, dialects in NEGATIVE if dialects == ANY])
def test_bounded_writes_pass_an_mcp_tool(engine: EmbeddedEngine, text: str) -> None:
    """A tool's call is read as every dialect that reads it: what all of them bound."""
    assert decide(engine, over_mcp(text))[0] == "allow"


def test_a_parameter_where_strings_compare_as_numbers_does_not_bound_a_tool_call(
    engine: EmbeddedEngine
) -> None:
    """A tool's database is unknown; if it is MySQL, `name = ?` given 0 matches every
    string that does not start with a digit."""
    assert decide(engine, over_mcp("DELETE FROM customers WHERE name = ?"))[:2] == REFUSED_TOOL


# -- generated: conditions true for every row, however they are spelt -------------------------

_ALWAYS = ["true", "1 = 1", "'a' = 'a'", "id = id", "NOT false", "NOT (1 = 2)",
           "email LIKE '%' OR email IS NULL", "id IS NULL OR id IS NOT NULL",
           "coalesce(id, 0) = coalesce(id, 0)", "1 IN (1, 2)"]
_FALSE = ["false", "1 = 2", "NOT true"]
_NEVER = [*_FALSE, "NULL"]  # NULL keeps no row, and NOT NULL is NULL
_ANYTHING = ["id = 7", "id IN (1, 2)", "tier = 'gold'", "id > 3", "email LIKE 'a%'"]

always_true = st.recursive(
    st.sampled_from(_ALWAYS),
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a} AND {b})", inner, inner),
        st.builds(lambda a, b: f"({a} OR {b})", inner, st.sampled_from(_ANYTHING + _NEVER)),
        st.builds(lambda b, a: f"({b} OR {a})", st.sampled_from(_ANYTHING + _NEVER), inner),
        st.builds(lambda f: f"NOT ({f})", st.sampled_from(_FALSE)),
        st.builds(lambda a: f"NOT (NOT ({a}))", inner),
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(always_true, st.sampled_from(["DELETE FROM customers", "UPDATE customers SET tier = 'x'"]))
def test_conditions_true_for_every_row_are_held(
    engine: EmbeddedEngine, condition: str, write: str
) -> None:
    text = f"{write} WHERE {condition}"
    for dialect in ANY:
        assert decide(engine, over_http(text, dialect))[:2] == HELD, dialect
    assert decide(engine, over_postgres(text))[:2] == HELD


@settings(max_examples=40, deadline=None)
@given(always_true)
def test_a_key_equality_and_anything_passes(engine: EmbeddedEngine, condition: str) -> None:
    text = f"DELETE FROM customers WHERE id = 7 AND ({condition})"
    assert decide(engine, over_http(text))[0] == "allow"
    assert decide(engine, over_mcp(text))[0] == "allow"


# -- schema changes that take data away from applications -------------------------------------

# (id, text, dialect, the reason the pack gives)
TAKEN_AWAY: list[tuple[str, str, str, str]] = [
    ("rename-table", "ALTER TABLE customers RENAME TO customers_old", "postgres",
     "ALTER TABLE customers RENAME: applications reading customers by its name lose it"),
    ("rename-column", "ALTER TABLE customers RENAME COLUMN email TO mail", "postgres",
     "ALTER TABLE customers RENAME COLUMN: applications reading the column of customers by "
     "its name lose it"),
    ("rename-view", "ALTER VIEW active_customers RENAME TO v", "postgres",
     "ALTER VIEW active_customers RENAME: applications reading active_customers by its name "
     "lose it"),
    ("rename-schema", "ALTER SCHEMA shop RENAME TO shop_old", "postgres",
     "ALTER SCHEMA RENAME: applications reading it by its name lose it"),
    ("set-schema", "ALTER TABLE customers SET SCHEMA archive", "postgres",
     "ALTER TABLE customers SET SCHEMA: applications reading customers in its schema lose it"),
    ("enable-rls", "ALTER TABLE customers ENABLE ROW LEVEL SECURITY", "postgres",
     "ALTER TABLE customers ENABLE ROW LEVEL SECURITY: rows of customers that no policy "
     "admits disappear for every role but its owner"),
    ("force-rls", "ALTER TABLE customers FORCE ROW LEVEL SECURITY", "postgres",
     "ALTER TABLE customers FORCE ROW LEVEL SECURITY: rows of customers that no policy "
     "admits disappear for its owner too"),
    ("restrictive-policy", "CREATE POLICY hide ON customers AS RESTRICTIVE USING (false)",
     "postgres", "CREATE POLICY AS RESTRICTIVE ON customers: rows of customers it does not "
     "admit disappear for the roles it names"),
    ("altered-policy", "ALTER POLICY own ON customers USING (false)", "postgres",
     "ALTER POLICY ON customers: rows of customers the changed policy does not admit "
     "disappear for the roles it names"),
    ("vacuum-full", "VACUUM FULL customers", "postgres",
     "VACUUM FULL customers: applications cannot read or write customers until it is "
     "rewritten"),
    ("cluster", "CLUSTER customers USING customers_pkey", "postgres",
     "CLUSTER customers: applications cannot read or write customers until it is rewritten"),
    ("lock", "LOCK TABLE customers", "postgres",
     "LOCK TABLE customers: applications' writes to customers, and in ACCESS EXCLUSIVE mode "
     "their reads, wait until the transaction ends"),
    ("drop-default", "ALTER TABLE customers ALTER COLUMN tier DROP DEFAULT", "postgres",
     "ALTER TABLE customers DROP DEFAULT: applications inserting into customers without the "
     "column store NULL or fail"),
    ("drop-not-null", "ALTER TABLE customers ALTER COLUMN email DROP NOT NULL", "postgres",
     "ALTER TABLE customers DROP NOT NULL: applications reading customers may get NULLs "
     "where they rely on a value"),
    ("drop-constraint", "ALTER TABLE customers DROP CONSTRAINT customers_email_key",
     "postgres", "ALTER TABLE customers DROP CONSTRAINT: applications relying on the "
     "constraint may get rows of customers that break it"),
    ("column-type", "ALTER TABLE customers ALTER COLUMN id TYPE text", "postgres",
     "ALTER TABLE customers ALTER COLUMN TYPE: the column of customers is rewritten: "
     "applications read another type, and a USING clause may lose its values"),
    ("mysql-rename", "ALTER TABLE customers RENAME TO c2", "mysql",
     "ALTER TABLE customers RENAME: applications reading customers by its name lose it"),
    ("mysql-drop-default", "ALTER TABLE customers ALTER COLUMN tier DROP DEFAULT", "mysql",
     "ALTER TABLE customers DROP DEFAULT: applications inserting into customers without the "
     "column store NULL or fail"),
    ("snowflake-swap", "ALTER TABLE customers SWAP WITH staging", "snowflake",
     "ALTER TABLE customers, staging SWAP WITH: applications reading customers, staging read "
     "the other table's rows"),
]

# Schema changes and maintenance that leave applications what they read.
KEPT = [
    "ALTER TABLE customers ADD COLUMN note text",
    "ALTER TABLE customers ALTER COLUMN tier SET DEFAULT 'basic'",
    "ALTER TABLE customers ALTER COLUMN email SET NOT NULL",
    "ALTER INDEX customers_pkey RENAME TO customers_key",
    "ALTER TABLE customers RENAME CONSTRAINT a TO b",
    "ALTER POLICY own ON customers RENAME TO mine",
    "CREATE POLICY own ON customers USING (owner = current_user)",
    "CREATE INDEX CONCURRENTLY customers_email ON customers (email)",
    "VACUUM customers",
    "LOCK TABLE customers IN ROW EXCLUSIVE MODE",
]
# (ANALYZE, and VACUUM with it, are refused to agents: the statistics they write steer
# every later write's estimate; tests/policy_corpus/state.json.)


@pytest.mark.parametrize(("text", "dialect", "reason"),
                         [pytest.param(t, d, r, id=i) for i, t, d, r in TAKEN_AWAY])
def test_schema_changes_that_take_data_away_are_refused_with_their_reason(
    engine: EmbeddedEngine, text: str, dialect: str, reason: str
) -> None:
    assert decide(engine, over_http(text, dialect)) == ("deny", ["sql.destructive"], [reason])
    assert decide(engine, over_http(text, dialect, who=DBA))[0] == "allow"
    if dialect == "postgres":
        assert decide(engine, over_postgres(text)) == ("deny", ["sql.destructive"], [reason])
        assert decide(engine, over_mcp(text))[:2] == REFUSED_TOOL


@pytest.mark.parametrize("text", KEPT)
def test_schema_changes_that_keep_data_pass(engine: EmbeddedEngine, text: str) -> None:
    assert decide(engine, over_http(text))[0] == "allow"
    assert decide(engine, over_postgres(text))[0] == "allow"
