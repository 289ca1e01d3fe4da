"""Which statements the PostgreSQL front takes to lock rows, whose transaction an agent
may then idle in only `lock_idle_seconds` (extproc/postgres/locks.py); end to end:
tests/e2e/test_database_sessions_e2e.py."""

from __future__ import annotations

import pytest

from extproc.interpret.sql import analyze
from extproc.postgres import locks


@pytest.mark.parametrize(("text", "locked"), [
    ("SELECT * FROM t WHERE id = 1 FOR UPDATE", True),
    ("select * from t for no key update skip locked", True),
    ("SELECT * FROM t FOR SHARE OF t", True),
    ("WITH x AS (SELECT id FROM t FOR KEY SHARE) SELECT * FROM x", True),
    ("UPDATE t SET a = 1 WHERE id = 2", True),
    ("INSERT INTO t VALUES (1)", True),
    ("DELETE FROM t WHERE id = 1", True),
    ("LOCK TABLE t IN ROW EXCLUSIVE MODE", True),
    ("SELECT * FROM t WHERE note = 'for update'", False),  # the words in a literal
    ("SELECT format FROM t", False),
    ("SELECT 1", False),
])
def test_what_may_lock_rows(text: str, locked: bool) -> None:
    assert locks.locks(text, analyze(text, "postgres")) is locked


def test_the_bound_is_the_fronts_own_statement() -> None:
    assert locks.setting(1500) == (
        "/* tollgate: locks */ SET LOCAL idle_in_transaction_session_timeout = 1500")
