"""KILL, as a session does it: a KILL a client sent, and a KILL naming this session.

A KILL reaches no server as sent: the connection id it names is one tollgate gave out
(kills.py keeps them, here and in the store), and tollgate does it by the gateway's own
account, once the policy allowed it. `victim` reads what a text's KILL names and checks
it is the sender's to kill (the same identity, the same target); `killed` is that KILL
arriving at the session it names, from this front or handed over by another: a
statement held for approval refused as interrupted, else the server thread's statement
(KILL QUERY, never while the front's own statements run: own.py) or the thread itself
(KILL CONNECTION), and then the session.

A KILL QUERY goes to the server only once the client's command is there (MariaDB drops
one that reaches an idle thread, and the command sent next runs whole): one that comes
while the command's bytes are still unread, or while it is decided, waits for it, and
the command sent meanwhile meets it on the server, or one decided takes it and is
refused as interrupted (queries.py), as the server would have interrupted it.

A connection that named no database (the mariadb client's Ctrl-C opens one to send its
KILL) decides its KILL on the target of the session it names (`opener`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from extproc.codecs.refusal import Refused, Unavailable
from extproc.exchange.act import HOLD_INTERRUPTED
from extproc.exchange.cancels import SENT
from extproc.mysql.kills import Kill, Victim, read_kill
from extproc.mysql.refusals import NO_DATABASE
from extproc.mysql.upstream import UpstreamError

if TYPE_CHECKING:
    from extproc.exchange.act import Opener
    from extproc.exchange.state import Exchange
    from extproc.mysql.own import Own
    from extproc.mysql.runs import Runs
    from extproc.mysql.state import SessionState
    from extproc.mysql.wire import Wire

# How long a KILL QUERY waits for the front's own statements to end.
_KILL_WAIT_SECONDS = 10.0


class Kills:
    """The KILLs a session sends, and those naming it."""

    def __init__(self, state: SessionState, wire: Wire, own: Own, runs: Runs) -> None:
        self._state, self._wire, self._own, self._runs = state, wire, own, runs

    async def opener(self, method: str, text: str | None) -> Opener | None:
        """Where a connection naming no database decides a statement: on the target of
        the session its KILL names. None when it is no KILL of a session tollgate
        knows: refused here."""
        state = self._state
        kill = read_kill(text) if text is not None else None
        victim = await state.connections.find(kill.connection_id) if kill else None
        target = state.logins.named(victim.target) if victim and victim.target else None
        if target is not None:
            return state.opener(state.bound, target)
        self._runs.refuse(method, Refused(400, "no_database", NO_DATABASE) if kill is None
                          else Refused(404, "unknown_connection", unknown(kill.connection_id)))
        return None

    async def victim(self, exchange: Exchange, method: str,
                     text: str) -> tuple[Kill, Victim] | None:
        """A KILL, alone in its text, of a session of the same identity and target: what
        it names (input.mysql.kill says so to the policy). None: the text kills
        nothing; Refusal for any other KILL, and for one prepared (tollgate does a KILL
        when it comes: a prepared one would reach the server as written)."""
        statements = (exchange.meaning or {}).get("statements") or []
        if not any(s.get("kind") == "kill" for s in statements):
            return None
        kill = read_kill(text)
        if kill is None or len(statements) != 1 or method == "PREPARE":
            raise Refused(400, "kill_form", "tollgate does a KILL sent alone, as KILL "
                           "[QUERY|CONNECTION] <connection id> (the id a connection's "
                           "handshake announced) in a COM_QUERY, or COM_PROCESS_KILL; "
                           "never prepared")
        identity = exchange.identity
        if not identity["authenticated"]:
            raise Refused(401, "unauthenticated", "a KILL needs a verified token: it ends "
                           "only its identity's own connections' statements")
        n = kill.connection_id
        victim = await self._state.connections.find(n)
        if victim is None:
            raise Refused(404, "unknown_connection", unknown(n))
        if victim.subject != identity["sub"]:
            raise Refused(403, "kill_denied", f"connection {n} is another identity's: a "
                           "KILL ends only your own connections' statements")
        target = exchange.target.name if exchange.target is not None else None
        if victim.target != target:
            raise Refused(403, "kill_denied", f"connection {n} is a session of "
                           f"{'target ' + victim.target if victim.target else 'no target'}, "
                           f"not of {target}: KILL it from a connection to its target, or "
                           "from one naming no database")
        exchange.context["kill"] = {"connection_id": n, "own": True,
                                    "scope": "query" if kill.query else "connection"}
        return kill, victim

    async def killed(self, query: bool, by: str) -> str:
        """A KILL naming this session, from a connection of `by` (here or handed over
        by another front): a statement held for approval ends; else its thread's
        statement (KILL QUERY) or the thread (KILL CONNECTION), by the gateway's own
        account, and then the session. What was done, or Refusal."""
        state, own = self._state, self._own
        connection_id = state.connection_id
        if not by or by != state.subject:
            raise Refused(403, "kill_denied", f"connection {connection_id} is "
                           "another identity's: a KILL ends only your own connections' "
                           "statements")
        what = "statement" if query else "connection"
        if state.hold is not None and not state.hold.done():
            state.hold.cancel(HOLD_INTERRUPTED)  # its client is told: the approval stays
            done = f"connection {connection_id}: its statement held for approval " \
                   "refused as interrupted"
        elif state.upstream is not None and state.bound.target is not None:
            target, thread = state.bound.target, state.upstream.connection_id

            async def kill() -> None:
                await state.connections.kill_thread(target, thread, query)

            try:
                if query:  # only while what runs is the client's (exchange/cancels.py)
                    outcome = await state.cancels.cancel(
                        lambda: [] if own.done is None else [own.done],
                        lambda: state.running, kill, _KILL_WAIT_SECONDS,
                        self._wire.arrived)
                else:
                    await kill()
                    outcome = SENT
            except UpstreamError as exc:
                raise Unavailable(502, "kill_failed", f"the server did not kill connection "
                               f"{connection_id}'s {what}: {exc.message}") from None
            done = f"connection {connection_id}: " + (
                f"its {what} killed on the server" if outcome == SENT else
                outcome.replace("cancel", "KILL QUERY", 1))
        else:
            done = f"connection {connection_id}: nothing to kill"
        if not query:
            state.ending = True
            if not state.busy:
                self._wire.client.close()  # the loop's read ends; else once its command is done
            done += "; the connection closed"
        return done


def unknown(connection_id: int) -> str:
    return (f"KILL names connection {connection_id}, which is no connection id tollgate "
            "gave out: a server thread id (CONNECTION_ID()'s) is not taken; KILL the id the "
            "connection's handshake announced (mariadb's `status` shows it as "
            "\"Connection id\", PyMySQL's thread_id() returns it)")
