"""tollgate's refusal in the MySQL protocol: an ERR packet, its code the server's own.

A client shows an ERR's message and, where it knows the code, acts on it: so a refusal
carries the server's code for what tollgate refused where there is one (a table's
access denied, a privilege beyond tables, an unknown command, an unknown statement
handler, KILL's), and the reasons, the rules, where an approval stands and the trace id
in its message. The front's login (front.py) answers with it as every command does.
"""

from __future__ import annotations

from extproc.exchange.state import Answer, refusal_reasons
from extproc.exchange.statement import refusal_notes
from extproc.mysql.framing import encode
from extproc.mysql.kills import CODES
from extproc.mysql.responses import encode_err

# ER_TABLEACCESS_DENIED_ERROR, and ER_SPECIFIC_ACCESS_DENIED_ERROR for what needs a
# privilege beyond tables (the server's, roles, settings).
_ACCESS_DENIED, _PRIVILEGE_DENIED = 1142, 1227
_PRIVILEGE_RULES = frozenset({"sql.privilege", "sql.configuration", "sql.server_access",
                              "sql.setting", "sql.dynamic"})
# The server's own code for what tollgate refuses, where the client knows one:
# ER_DBACCESS_DENIED_ERROR, ER_NO_DB_ERROR, ER_SPECIFIC_ACCESS_DENIED_ERROR (a
# replication privilege), ER_UNKNOWN_COM_ERROR, ER_UNKNOWN_STMT_HANDLER,
# ER_NOT_SUPPORTED_YET, and KILL's (kills.py).
_CODES = {**CODES, "database_refused": (1044, "42000"), "no_database": (1046, "3D000"),
          "replication": (_PRIVILEGE_DENIED, "42000"),
          "unsupported_command": (1047, "08S01"), "unknown_statement": (1243, "HY000"),
          "unsupported_cursor": (1235, "42000"),
          "packets_out_of_order": (1156, "08S01")}
# The server's errors that say the account (or its role) lacks a privilege: access to a
# database, a table, a column, a routine, or one of the global privileges.
PRIVILEGE_ERRORS = frozenset({1044, 1142, 1143, 1227, 1370})
NO_DATABASE = ("this connection named no database: it takes KILL [QUERY] <connection id> "
               "alone, as the mariadb client's Ctrl-C sends; name a target's database to "
               "run statements (mariadb -D DATABASE)")


def refusal_packet(answer: Answer, seq: int = 1) -> bytes:
    """tollgate's refusal as an ERR packet: the reasons (a held statement's: where its
    approval stands, who denied it and why), the rules, an approval's state, why it was
    held and the trace id in its message, which every client shows; its code the server's own
    for that refusal where there is one (_CODES), else the one its status stands for."""
    reasons = refusal_reasons(answer)
    notes = refusal_notes(answer)
    rules = answer.body.get("rules") or []
    if answer.error in _CODES:
        code, sqlstate = _CODES[answer.error]
    elif answer.status == 403:
        code = _PRIVILEGE_DENIED if _PRIVILEGE_RULES & set(rules) else _ACCESS_DENIED
        sqlstate = "42000"
    elif answer.status in (401, 407):
        code, sqlstate = 1045, "28000"
    else:
        code, sqlstate = 1105, "HY000"  # ER_UNKNOWN_ERROR
    message = "tollgate: " + "; ".join(map(str, reasons)) + f" ({'; '.join(notes)})"
    return encode(seq, encode_err(code, sqlstate, message))
