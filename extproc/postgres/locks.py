"""How long an agent's transaction may sit idle once it holds row locks.

A row an UPDATE, DELETE, INSERT or MERGE changed, or a `SELECT ... FOR UPDATE` (or
SHARE) locked, stays locked until the transaction ends: a session left idle inside it
makes every other session that needs the row wait, a dba's UPDATE included, for as long
as `idle_in_transaction_seconds` lets it (60 s by default). So once a statement of an
agent's session that may lock rows (`locks`) leaves its transaction open, the front
lowers that bound for the rest of the transaction alone: `SET LOCAL
idle_in_transaction_session_timeout` (SETTING), sent as the front's own statement after
the statement's ReadyForQuery, which re-arms the server's timer with it. The server then
ends the session (`FATAL: terminating connection due to idle-in-transaction timeout`,
25P03) once the client has been silent that long, its locks freed. The transaction's
end (COMMIT, ROLLBACK) takes the bound away with it.

Whether a statement locks is read from its text: what the interpreter reads as a write,
LOCK, and a locking clause (`FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY
SHARE`) anywhere in it. A function that locks rows inside a read is not seen here.
"""

from __future__ import annotations

import re
from typing import Any

from pglast import parser as pg_parser

from extproc.interpret.sql.pg_parse import parse_json

# What begins the front's statement (the server's log tells it from the client's).
MARK = "/* tollgate: locks */ "
_SETTING = "SET LOCAL idle_in_transaction_session_timeout = {ms}"
# No locking clause without the word (a prefilter: what matches is parsed).
_FOR = re.compile(r"\bfor\b", re.IGNORECASE)


def setting(ms: int) -> str:
    """The front's statement that bounds the transaction's idle time to `ms`."""
    return MARK + _SETTING.format(ms=ms)


def locks(text: str, meaning: Any) -> bool:
    """Whether the statements of `text` (read as `meaning`, input.sql) may lock rows."""
    statements = meaning.get("statements") if isinstance(meaning, dict) else None
    for statement in statements or ():
        if "write" in (statement.get("effects") or ()) or statement.get("kind") == "lock":
            return True
    if _FOR.search(text) is None:
        return False
    try:
        return '"LockingClause"' in parse_json(text)
    except pg_parser.ParseError:
        return False
