"""What one MySQL session knows, shared by the modules that handle its commands.

A session's commands are handled apart (queries.py, prepares.py, session_commands.py,
measured.py, killing.py), but they act on one session: who it is bound as and where,
the server's status as its last answer gave it, how the server lexes a backslash, the
prepared statements it handed out. That is this object, and it does no I/O: the wire
(wire.py) moves the bytes, and each module is handed both.

A text is read as the server lexes it: backslashes as escapes or not as the server's
status said where it is the session's (`follow_sql_mode`), bytes that are no UTF-8 (and
NUL) taken inside string literals alone (`read_sql`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from extproc.exchange.cancels import CancelGate
from extproc.exchange.effect import Remembered
from extproc.exchange.lock_waits import Holding
from extproc.interpret import BACKSLASH_ESCAPES, SERVER_VERSION
from extproc.interpret.sql.sqlglot_reader import sql_mode_change, within_strings
from extproc.mysql.flags import (
    CLIENT_PROTOCOL_41,
    SERVER_STATUS_AUTOCOMMIT,
    SERVER_STATUS_IN_TRANS,
    SERVER_STATUS_NO_BACKSLASH_ESCAPES,
)
from extproc.mysql.login import Bound, Logins, opener
from extproc.mysql.relay import more_results
from extproc.mysql.statements import Statements

if TYPE_CHECKING:
    from extproc.config import Target
    from extproc.exchange.act import Act, Opener
    from extproc.exchange.pipeline import Pipeline
    from extproc.exchange.state import Exchange
    from extproc.mysql import effect
    from extproc.mysql.catalog import Catalog
    from extproc.mysql.framing import Packet
    from extproc.mysql.kills import Connections
    from extproc.mysql.upstream import Upstream

# What a statement's text may hold inside its string literals alone: a byte no UTF-8
# reading took (kept as a surrogate), and NUL (a BLOB's, under NO_BACKSLASH_ESCAPES).
UNREAD = re.compile("[\x00\udc80-\udcff]")
# A binder: a connection that named no database bound to the target of `database`, as
# its login would have (the front's steps, recorded as a CONNECT): the server reached
# and the session's new Bound, or the ERR packet refusing it.
Binder = Callable[[Bound, str], Awaitable["tuple[Upstream, Bound] | bytes"]]


class SessionState:
    """A session's shared state. `upstream` None: a connection that named no database
    (KILL only)."""

    def __init__(self, pipeline: Pipeline, logins: Logins, bound: Bound,
                 connections: Connections, connection_id: int, upstream: Upstream | None,
                 binder: Binder | None = None,
                 catalogs: Mapping[str, Catalog] | None = None) -> None:
        # The pipeline opens the session's acts (again as it is bound to another
        # identity or database); the masker masks what it relays beside them.
        self.pipeline, self.logins = pipeline, logins
        self.bound, self.open = bound, opener(pipeline, bound)
        self.masker = self.open.masker
        # The session as listed among those open (live.py): every opener of its acts,
        # as it is bound again, counts into it.
        self.live = self.open.listed("mysql")
        self.connections, self.connection_id = connections, connection_id
        self.upstream = upstream
        self.capabilities = upstream.capabilities if upstream else CLIENT_PROTOCOL_41
        # The server's status as its last answer gave it (in a transaction or not).
        self.status = upstream.status if upstream else SERVER_STATUS_AUTOCOMMIT
        # How the server lexes a backslash in a string (True: an escape), as its status
        # said where it is the session's (follow_sql_mode); None: not known, every text
        # read both ways. A connection that named no database has no server.
        self.backslashes = escapes(self.status) if upstream else None
        # What the catalog said of the stored functions statements called (measured.py).
        self.remembered: Remembered[effect.Target] = Remembered()
        self.statements = Statements()
        # A statement waiting for approval (a KILL QUERY ends it); a command in flight;
        # a KILL CONNECTION's end, once that command is answered.
        self.hold: asyncio.Future[None] | None = None
        self.busy = self.ending = False
        # A KILL QUERY goes to the server only while the client's command is there
        # (`running`: sent, not yet ended), never onto the front's own statements (own.py);
        # one that comes while the command is unread or decided is the front's to carry
        # out (exchange/cancels.py): the command is refused as interrupted (queries.py).
        self.cancels = CancelGate()
        self.running = False
        # The text of the client's last statement, and whether the front has lowered
        # the session's idle bound for the transaction it locked rows in (session.py).
        self.last_text: str | None = None
        self.locks_bounded = False
        # The catalog a write's measurement reads, by target, where it has a catalog
        # role (catalog.py); elsewhere the session's own role reads it.
        self.catalogs = catalogs or {}
        # A connection that named no database: its settings and transaction control
        # kept until it names one, and how it is bound then.
        self.kept: list[str] = []
        self.binder = binder
        # The client's view of character_set_results: binary (mysqldump's, around SHOW
        # CREATE TABLE) while the server's stays utf8mb4 (queries.py, results_view).
        self.binary_results = False
        # Status bits the client's answers do not show: the front's transaction around
        # a write it measures, where the client opened none.
        self.hidden_status = 0

    def opener(self, bound: Bound, target: Target | None = None) -> Opener:
        """An opener of the session's acts as `bound` (with `target`, else the bound
        one), counting into its listing, which names who and where it is bound now."""
        opens = opener(self.pipeline, bound, target)
        opens.live = self.live
        self.live.identity = self.pipeline.subject(bound.claims)
        self.live.target = bound.target.name if bound.target is not None else None
        return opens

    def holding(self) -> Holding | None:
        """The session, while its transaction is open (the locks its statements took
        are held till it ends: exchange/lock_waits.py asks who waits on them)."""
        if self.upstream is None or self.bound.target is None \
                or not self.status & SERVER_STATUS_IN_TRANS:
            return None
        return Holding(self.live.session_id, self.open.identity, self.bound.target,
                       self.upstream.connection_id)

    @property
    def subject(self) -> str:
        """Whose session it is: the token's subject."""
        return str((self.bound.claims or {}).get("sub") or "")

    @property
    def target_name(self) -> str | None:
        return self.bound.target.name if self.bound.target is not None else None

    def act(self, method: str, opens: Opener | None = None) -> Act:
        return (opens or self.open)(method, {**self.bound.context(),
                                             "command": method.lower()})

    def request(self, exchange: Exchange, method: str, text: str,
                query: dict[str, list[str]] | None = None) -> None:
        """The statement as the exchange's request (input.request, and the record's);
        `query`: an execute's parameters (the record masks them as it masks queries)."""
        headers = {} if self.upstream is None else {
            SERVER_VERSION: self.upstream.server_version}
        if self.backslashes is not None:
            headers[BACKSLASH_ESCAPES] = "on" if self.backslashes else "off"
        exchange.request = exchange.evidence.request = {
            "method": method, "path": f"/{self.bound.database}", "query": query or {},
            "headers": headers, "body": UNREAD.sub("\ufffd", text)}
        exchange.evidence.request_body = exchange.kept(
            text.encode("utf-8", "surrogateescape"))

    def more_results(self, end: Packet) -> bool:
        """Whether another result follows the one this OK or EOF ends; the server's
        status, as it gives it there, kept."""
        self.status, more = more_results(end, self.capabilities)
        return more

    def follow_sql_mode(self, text: str, ran: bool) -> None:
        """How the server lexes the next text, once `text` ran (`ran`: answered without
        error): as its status says after a SET of sql_mode; as before after a text that
        cannot change it, whatever the status says then (a stored program's SET leaves
        its mode in the status bit though the caller's mode is back: MariaDB 10.11);
        not known after anything else, until a SET of it or a reset says."""
        change = sql_mode_change(UNREAD.sub("\ufffd", text), self.backslashes,
                                 self.upstream.server_version if self.upstream else None)
        if change is False:
            return
        self.backslashes = escapes(self.status) if change and ran else None

    def session_reset(self) -> None:
        """What tollgate keeps of the server's session, forgotten once the server reset
        it (COM_RESET_CONNECTION, COM_CHANGE_USER): the prepared statements, which the
        server dropped, and their ids with them (the status comes with the reset's OK)."""
        self.statements.clear()
        self.binary_results = False
        self.locks_bounded = False


def escapes(status: int) -> bool:
    """Whether the server whose status this is reads a backslash in a string as an
    escape (no NO_BACKSLASH_ESCAPES in its sql_mode)."""
    return not status & SERVER_STATUS_NO_BACKSLASH_ESCAPES


def read_name(payload: bytes) -> str | None:
    """A name a command carries (COM_INIT_DB's), as UTF-8 (None when it is not)."""
    with contextlib.suppress(UnicodeDecodeError):
        return payload.decode("utf-8")
    return None


def read_sql(payload: bytes, backslashes: bool | None) -> str | None:
    """A command's SQL text, as UTF-8 (None when it is not: refused, never guessed).
    Bytes that are not UTF-8, and NUL, are taken inside string literals alone (a BLOB
    sent as `_binary'...'`, PyMySQL's and mysqlclient's way), as the server lexes the
    text (`backslashes`: its escaping, None when not known: every way); kept as
    surrogates (the record keeps the bytes; the policy reads U+FFFD). The server lexes
    them as single bytes, which never end a literal, so the reading of the SQL around
    them is the server's."""
    escaped = payload.decode("utf-8", "surrogateescape")
    positions = [found.start() for found in UNREAD.finditer(escaped)]
    if not positions or within_strings(escaped, "mysql", positions, backslashes):
        return escaped
    return None
