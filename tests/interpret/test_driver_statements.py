"""What drivers and tools send on their own passes the default pack, for an agent.

driver_statements/captured.json holds what asyncpg, psycopg, pg8000, SQLAlchemy and psql's
backslash commands sent a real PostgreSQL (its statement log); catalog_tools.json what
pgAdmin and DBeaver are known to send (written, not captured: neither installs here).
Each is read by the SQL interpreter into the policy input the PostgreSQL front sends (a
Parse when it holds a `$n` parameter, else a simple Query) and decided by the embedded
engine on the default pack: allowed, on a plain target and on a read-only one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from extproc.policy.embedded import EmbeddedEngine
from tests.policy_corpus import policy_input

HERE = Path(__file__).resolve().parent / "driver_statements"
POLICIES = Path(__file__).resolve().parents[2] / "policies"
AGENT = {"authenticated": True, "sub": "agent-1", "groups": ["agents"]}
CORPUS = {(path.stem, tool): texts for path in sorted(HERE.glob("*.json"))
          for tool, texts in json.loads(path.read_text())["statements"].items()}
STATEMENTS = [pytest.param(text, id=f"{file}-{tool}-{i}")
              for (file, tool), texts in CORPUS.items() for i, text in enumerate(texts)]


def test_every_tool_is_there() -> None:
    assert {tool for _, tool in CORPUS} == {
        "asyncpg", "psycopg", "pg8000", "sqlalchemy", "psql", "pgadmin", "dbeaver"}


@pytest.mark.parametrize("labels", [{}, {"access": "read-only"}], ids=["plain", "read-only"])
@pytest.mark.parametrize("text", STATEMENTS)
def test_what_a_driver_sends_on_its_own_passes(engine: EmbeddedEngine, text: str,
                                               labels: dict[str, str]) -> None:
    method = "PARSE" if re.search(r"\$\d", text) else "QUERY"
    spec = {"identity": AGENT,
            "target": {"protocol": "postgres", "name": "shop-db", "labels": labels},
            "request": {"method": method, "path": "/shop", "query": {}, "headers": {},
                        "body": text}}
    decision = engine.decide_now(policy_input(spec))
    assert (decision.action, decision.reasons) == ("allow", ()), text
