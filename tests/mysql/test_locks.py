"""Which MySQL statements lock the rows they read (extproc/mysql/locks.py); the bound
it sets, end to end on MariaDB, is tests/e2e/test_database_sessions_e2e.py's."""

from __future__ import annotations

import pytest

from extproc.mysql.locks import locking_read


@pytest.mark.parametrize(("text", "locks"), [
    ("SELECT * FROM t WHERE id = 1 FOR UPDATE", True),
    ("select a from t lock in share mode", True),
    ("SELECT * FROM t FOR SHARE", True),
    ("SELECT * FROM t /* why */ FOR/**/UPDATE", True),
    ("SELECT * FROM (SELECT a FROM t FOR UPDATE) x", True),
    ("SELECT 'for update' FROM t", False),
    ("SELECT a AS `share` FROM t", False),
    ("UPDATE t SET a = 1", False),  # a write: idle_write_transaction_timeout's
    ("SELECT 1", False),
])
def test_a_read_that_locks_rows_is_told_apart(text: str, locks: bool) -> None:
    assert locking_read(text) is locks
