"""MySQL's prepared statements in SQL (`PREPARE ... FROM`, `EXECUTE`, `EXECUTE IMMEDIATE`,
`DROP PREPARE`), as the default pack decides them on a mysql target.

sqlglot reads these only as opaque commands; the MySQL reader reads a PREPARE's string
as the statements it will run, so a DROP or an unbounded DELETE inside one is decided as
if it came alone, and a statement taken from a variable or an expression (no text to
read) is `dynamic`. `EXECUTE s` runs what its decided PREPARE made: it passes, its rows
of unknown lineage (masked as derived).
"""

from __future__ import annotations

from typing import Any

import pytest

from extproc.policy.embedded import EmbeddedEngine
from tests.policy_corpus import policy_input

AGENT = {"authenticated": True, "sub": "agent-1", "groups": ["agents"]}
DBA = {"authenticated": True, "sub": "dba-1", "groups": ["dba"]}


def decide(engine: EmbeddedEngine, text: str, identity: dict[str, Any] = AGENT) -> Any:
    spec = {"identity": identity, "target": {"protocol": "mysql", "name": "shop-my"},
            "request": {"method": "QUERY", "path": "/shop", "query": {}, "headers": {},
                        "body": text}}
    return engine.decide_now(policy_input(spec))


@pytest.mark.parametrize(("text", "rule"), [
    ("PREPARE s FROM 'DROP TABLE customers'", "sql.destructive"),
    ("PREPARE s FROM 'SELECT 1; TRUNCATE customers'", "sql.destructive"),
    ("EXECUTE IMMEDIATE 'DROP TABLE customers'", "sql.destructive"),
    ("PREPARE s FROM 'SELECT LOAD_FILE(''/etc/passwd'')'", "sql.server_access"),
    ("PREPARE s FROM 'SET GLOBAL general_log = 0'", "sql.configuration"),
    ("PREPARE s FROM @statement", "sql.dynamic"),
    ("PREPARE s FROM CONCAT('DROP TABLE ', 'customers')", "sql.dynamic"),
    ("EXECUTE IMMEDIATE @statement", "sql.dynamic"),
    ("PREPARE s FROM 'SELECT 1 /*!50000 , 2 */'", "sql.unparseable"),
    ("EXECUTE s USING (SELECT ssn FROM customers)", "sql.unrecognised"),
])
def test_what_a_prepared_statement_would_run_is_refused_as_if_it_came_alone(
        engine: EmbeddedEngine, text: str, rule: str) -> None:
    decision = decide(engine, text)
    assert decision.action == "deny" and rule in decision.rules, decision


@pytest.mark.parametrize("text", [
    "PREPARE s FROM 'DELETE FROM customers'",
    "EXECUTE IMMEDIATE 'UPDATE customers SET name = NULL'",
])
def test_an_unbounded_write_held_alone_is_held_when_prepared_too(
        engine: EmbeddedEngine, text: str) -> None:
    for identity in (AGENT, DBA):  # a dba's unbounded write waits for another dba too
        decision = decide(engine, text, identity)
        assert decision.action == "hold" and "sql.unbounded_write" in decision.rules


def test_a_prepared_read_its_execution_and_its_end_pass(engine: EmbeddedEngine) -> None:
    for text in ("PREPARE s FROM 'SELECT email FROM customers WHERE id = ?'",
                 "SET @id = 1", "EXECUTE s USING @id", "DROP PREPARE s"):
        assert decide(engine, text).action == "allow", text


def test_an_executions_rows_are_masked_whole_their_lineage_unknown(
        engine: EmbeddedEngine) -> None:
    decision = decide(engine, "EXECUTE s")
    assert decision.action == "allow" and "*" in decision.mask["derived"]
