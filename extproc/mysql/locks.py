"""Whether a MariaDB or MySQL statement locks rows by reading them.

`SELECT ... FOR UPDATE`, `FOR SHARE` and `LOCK IN SHARE MODE` lock the rows they read
until the transaction ends, as a write does: an agent's session idle inside such a
transaction stalls every other session needing them (session.py bounds it). Read with
the same SQL reader the front decides with (sqlglot, MySQL's dialect), comments and
strings and all; a text it cannot read is taken to lock (a bound too many is harmless).
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

# No locking read without one of these words (a prefilter: what matches is parsed).
_MAY_LOCK = re.compile(r"\bfor\b|\bshare\b", re.IGNORECASE)


def locking_read(text: str) -> bool:
    """Whether a statement of `text` reads rows with a lock (FOR UPDATE, FOR SHARE,
    LOCK IN SHARE MODE)."""
    if _MAY_LOCK.search(text) is None:
        return False
    try:
        statements = sqlglot.parse(text, read="mysql")
    except SqlglotError:
        return True
    return any(node.find(exp.Lock) is not None for node in statements if node is not None)
