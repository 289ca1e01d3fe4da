"""A command that carries SQL: decided, then refused or sent on and its answer relayed.

COM_QUERY's text is read by the MySQL dialect and each statement decided; so are the
texts other commands stand for (COM_INIT_DB's `USE`, COM_FIELD_LIST's `SHOW COLUMNS`,
COM_PROCESS_KILL's `KILL CONNECTION n`: session_commands.py) and a prepare's
(prepares.py). Every failure on the way is a refusal (fail closed): a text that is not
UTF-8 outside its string literals, a change of what the session's role owns, a KILL
not the sender's (killing.py), a hold a human denied. A KILL allowed is done by
tollgate, never sent; a write the policy judges by its effect is run measured
(measured.py).

Two statements the front answers itself, recorded all the same: mysqldump's `SET
character_set_results = binary` (and back), the server's results staying utf8mb4, which
the front reads and masks (`results_view`); and, on a connection that named no database,
what mysqldump sends before it names one (its settings; with --single-transaction, its
transaction's start and UNLOCK TABLES), kept until it names one (`keep`, decided and
run in order by session_commands.py's `bind`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from extproc.codecs.refusal import Refusal, Refused
from extproc.exchange.database_roles import refuse_owned_change
from extproc.interpret.sql import analyze
from extproc.mysql.commands import parse_process_kill
from extproc.mysql.framing import ProtocolViolation, encode
from extproc.mysql.kills import Kill
from extproc.mysql.refusals import NO_DATABASE, refusal_packet
from extproc.mysql.responses import encode_ok
from extproc.mysql.runs import Run
from extproc.mysql.state import read_sql

if TYPE_CHECKING:
    from extproc.exchange.state import Answer
    from extproc.mysql.framing import Packet
    from extproc.mysql.killing import Kills
    from extproc.mysql.measured import Measure
    from extproc.mysql.runs import Runs
    from extproc.mysql.state import SessionState
    from extproc.mysql.wire import Wire

# `SET [SESSION] character_set_results = binary | utf8mb4`, alone: what mysqldump sends
# around SHOW CREATE TABLE (and back). The front answers it itself (results_view).
_RESULTS_VIEW = re.compile(
    r"\s*SET\s+(?:SESSION\s+|LOCAL\s+|@@SESSION\.|@@LOCAL\.|@@)?character_set_results\s*=\s*"
    r"(?P<q>'?)(?P<set>binary|utf8mb4)(?P=q)\s*;?\s*", re.IGNORECASE)
# Where a connection that named no database may keep a statement until it names one.
_KEPT = ("kept: a connection that named no database runs its settings and transaction "
         "control once it names one (COM_INIT_DB), each decided then on that database's "
         "target")
# What such a connection may keep: statements the server answers with a bare OK, which
# read no table (a setting, transaction control, UNLOCK TABLES).
_KEPT_KINDS = frozenset({"set", "transaction"})
_UNLOCK = re.compile(r"UNLOCK\s+TABLES", re.IGNORECASE)


class Queries:
    """The session's commands that carry SQL, decided."""

    def __init__(self, state: SessionState, wire: Wire, runs: Runs, measure: Measure,
                 kills: Kills) -> None:
        self._state, self._wire, self._runs = state, wire, runs
        self._measure, self._kills = measure, kills

    async def query(self, packet: Packet) -> None:
        """COM_QUERY: its text decided (or answered here, or kept)."""
        state = self._state
        text = read_sql(packet.payload[1:], state.backslashes)
        if text is not None and (view := _RESULTS_VIEW.fullmatch(text)) is not None \
                and state.upstream is not None:
            self._results_view(text, view.group("set").lower() == "binary")
        elif state.upstream is None and text is not None and _keepable(text):
            self._keep(text)
        else:
            await self.statement(packet, "QUERY", text)

    async def process_kill(self, packet: Packet) -> None:
        """COM_PROCESS_KILL, decided as the `KILL CONNECTION n` it stands for."""
        try:
            connection_id = parse_process_kill(packet.payload)
        except ProtocolViolation as exc:
            self._runs.refuse("PROCESS_KILL", Refused(400, "protocol_violation",
                                                      f"COM_PROCESS_KILL: {exc}"))
            return
        await self.statement(packet, "PROCESS_KILL", Kill(connection_id, False).text())

    async def statement(self, packet: Packet, method: str, text: str | None,
                        answer: Callable[[Run], Awaitable[None]] | None = None) -> None:
        """A command that carries SQL: decided, then sent on and its answer relayed
        (`answer`: how, a statement's by default), or refused. A KILL goes to no server
        as sent: tollgate does it."""
        state, runs = self._state, self._runs
        state.last_text = text
        opens = state.open
        if state.upstream is None:
            found = await self._kills.opener(method, text)
            if found is None:
                return
            opens = found
        run = Run(state.act(method, opens))
        refusal = await self.decide(run, method, text)
        if refusal is not None:
            runs.refused(run, refusal)
            return
        if run.kill is not None:
            run.end()  # recorded (journaled) before the answer leaves
            self._wire.write(encode(1, encode_ok(
                status=state.status, capabilities=state.bound.capabilities)))
            return
        if run.measure and answer is None:
            await runs.answered(run, self._measure.measured(run, packet.raw(), binary=False))
        else:
            self._wire.send(packet.raw())
            await runs.answered(run, (answer or runs.answer)(run))
        if method == "QUERY" and text is not None:
            state.follow_sql_mode(text, run.error is None)

    async def decide(self, run: Run, method: str, text: str | None) -> Answer | None:
        """A command's SQL text read, decided, held if the policy says, and a KILL done:
        the refusal, if it is refused (every failure is one: fail closed)."""
        state = self._state
        act, exchange = run.act, run.exchange
        state.cancels.deciding(True)
        try:
            act.admit(f"database {state.bound.database!r}")
            if text is None:
                raise Refused(400, "client_encoding", "the command's text is not UTF-8 "
                               "outside its string literals (or holds a NUL there), the "
                               "character set tollgate reads statements in: connect "
                               "with --default-character-set=utf8mb4")
            state.request(exchange, method, text)
            await act.read(len(text))
            refuse_owned_change(exchange.meaning, state.bound.owned)
            run.kill = await self._kills.victim(exchange, method, text)
            if run.kill is None and state.upstream is None:
                raise Refused(400, "no_database", NO_DATABASE)
            state.remembered.forget_after(exchange.meaning)
            run.measure = await self._measure.measurable(run)
            decision = await act.decide()
            if decision.action == "hold":
                await self._runs.held(act, decision)
            if exchange.decision.action != "allow":
                return exchange.refuse_decided(exchange.decision)
            await act.forward()
            # A KILL QUERY that came before it ran (its bytes unread, or as it was decided)
            # interrupts it, as the server would; a KILL QUERY of its own session too.
            interrupted = state.cancels.take()
            if run.kill is not None and not interrupted:
                kill, victim = run.kill
                run.results.append(await state.connections.kill(victim, kill.query,
                                                                state.subject))
                interrupted = state.cancels.take()
            if interrupted:
                raise Refused(409, "interrupted", "the statement was interrupted by a KILL "
                               "QUERY that came before it ran: it did not run")
        except Exception as exc:
            return act.refusal(exc, "statement")
        finally:
            state.cancels.deciding(False)
        return None

    def _results_view(self, text: str, binary: bool) -> None:
        """`SET character_set_results = binary` (or back to utf8mb4), answered by the front:
        the server's results stay utf8mb4, which the front reads and masks, and the
        column definitions the client reads say binary (63) until it sets them back, as
        the server's would. Nothing reaches the server; recorded all the same."""
        if self._answered_here(text, {
                "tollgate.outcome": "answered by tollgate: the server's results stay utf8mb4; "
                                    f"column definitions say {'binary' if binary else 'utf8mb4'}",
                "tollgate.decision.action": "allow"}):
            self._state.binary_results = binary

    def _keep(self, text: str) -> None:
        """A setting or transaction control on a connection that named no database
        (mysqldump's, before its COM_INIT_DB): answered OK, recorded as kept, run once
        the connection names its database, decided then (session_commands.py, bind)."""
        if self._answered_here(text, {"tollgate.outcome": _KEPT}):
            self._state.kept.append(text)

    def _answered_here(self, text: str, outcome: dict[str, Any]) -> bool:
        """A statement the front answers itself, with OK (nothing reaches the server),
        recorded with `outcome`; False when it cannot be recorded (then refused)."""
        state = self._state
        act = state.act("QUERY")
        try:
            act.admit()
        except Refusal as exc:  # the record cannot take it
            self._wire.write(refusal_packet(act.refusal(exc, "statement")))
            return False
        state.request(act.exchange, "QUERY", text)
        act.exchange.outcome.update(outcome)
        act.end()
        self._wire.write(encode(1, encode_ok(status=state.status,
                                             capabilities=state.bound.capabilities)))
        return True


def _keepable(text: str) -> bool:
    """Whether a connection that named no database may keep `text` until it names one:
    SET statements, transaction control and UNLOCK TABLES alone (mysqldump's before its
    COM_INIT_DB), read with every versioned comment that could run running (the reading
    that decides them comes once the server's version is known)."""
    reading = analyze(text, "mysql", "999.99.99-MariaDB")
    statements = reading["statements"]
    return reading["error"] is None and bool(statements) and all(
        not s["nested"] and (s["kind"] in _KEPT_KINDS or _UNLOCK.fullmatch(s["text"]))
        for s in statements)
