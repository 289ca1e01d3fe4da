"""Derived values, an attacker's variants: each query reads a protected column through
something other than a plain reference, decided by the default pack on the interpreter's
real reading, and its result masked by the decision's mask as the fronts mask a table
(column names beside rows). A value that comes back must be `[REDACTED:DERIVED]` in every
column that carries it; columns that carry none stay as they are."""

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
]
# Queries that carry no protected value in another form: left alone.
UNTOUCHED = [
    ("plain", "SELECT ssn, email, name FROM customers"),
    ("plain-text-cast", "SELECT ssn::text, email::varchar FROM customers"),
    ("unprotected-derived", "SELECT upper(name), length(name), count(*) FROM customers "
                            "GROUP BY name"),
    ("star", "SELECT * FROM customers"),
    ("constants", "SELECT 1, now(), 'ssn'"),
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
