"""The commands about the session itself: its database, its user, its reset, a ping.

    COM_INIT_DB           decided as the `USE` it stands for; on a connection that named
                          no database, it binds the session to that database's target
                          first (`bind`), its kept statements run there
    COM_FIELD_LIST        decided as the `SHOW COLUMNS FROM t [LIKE 'w']` it stands for;
                          its column definitions relayed
    COM_RESET_CONNECTION  relayed: it carries nothing; the statement ids go with it
    COM_CHANGE_USER       a token asked for and verified as at login, the session rebound to
                          it on the same target; the server's session reset by the gateway's
                          own account (COM_RESET_CONNECTION, COM_INIT_DB if a database was
                          asked), the statement ids with it. Refused, the connection ends, as
                          a failed login's would
    COM_PING              carries nothing: relayed

A reset of the server's session takes it back to the gateway's account's defaults, so
the session's own setup (its role, its timeouts: upstream.py) is run again after it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from extproc.codecs.refusal import Refusal, Refused, Unavailable
from extproc.exchange.database_roles import login_role
from extproc.mysql.commands import parse_change_user, parse_field_list
from extproc.mysql.flags import COM_INIT_DB, COM_QUERY, COM_RESET_CONNECTION, command_name
from extproc.mysql.framing import Packet, ProtocolViolation, encode
from extproc.mysql.refusals import refusal_packet
from extproc.mysql.responses import encode_ok, is_err, parse_err, parse_ok
from extproc.mysql.runs import Run
from extproc.mysql.state import escapes, read_name
from extproc.mysql.upstream import lock_bound, owned, setup_commands, setup_detail
from extproc.mysql.wire import Closed

if TYPE_CHECKING:
    from extproc.exchange.act import Act
    from extproc.mysql.queries import Queries
    from extproc.mysql.runs import Runs
    from extproc.mysql.state import SessionState
    from extproc.mysql.wire import Wire


class SessionCommands:
    """The session's own commands. `registered`: the session listed again among those
    open (kills.py), once it is bound anew."""

    def __init__(self, state: SessionState, wire: Wire, runs: Runs, queries: Queries,
                 registered: Callable[[], Awaitable[None]]) -> None:
        self._state, self._wire, self._runs = state, wire, runs
        self._queries, self._registered = queries, registered

    async def ping(self, packet: Packet) -> None:
        self._wire.send(packet.raw())
        self._wire.write((await self._wire.server_packet()).raw())

    async def init_db(self, packet: Packet) -> None:
        """COM_INIT_DB, decided as its USE; the target's own database name (the one the
        client logs in with) sent on as the server's database it stands for."""
        bound = self._state.bound
        name = read_name(packet.payload[1:])
        target = bound.target
        if name == bound.database and target is not None and target.mysql is not None \
                and target.mysql.database:
            packet = Packet(packet.seq, bytes((COM_INIT_DB,))
                            + target.mysql.database.encode())
        await self._queries.statement(packet, "INIT_DB", None if name is None
                                      else "USE `" + name.replace("`", "``") + "`")

    async def field_list(self, packet: Packet) -> None:
        try:
            request = parse_field_list(packet.payload)
        except ProtocolViolation as exc:
            self._runs.refuse("FIELD_LIST", Refused(400, "protocol_violation",
                                                    f"COM_FIELD_LIST: {exc}"))
            return
        text = None
        if request.table is not None and request.wildcard is not None:
            text = "SHOW COLUMNS FROM `" + request.table.replace("`", "``") + "`"
            if request.wildcard:
                escaped = request.wildcard.replace("\\", "\\\\").replace("'", "''")
                text += f" LIKE '{escaped}'"
        await self._queries.statement(packet, "FIELD_LIST", text, self._runs.columns)

    async def bind(self, packet: Packet) -> None:
        """COM_INIT_DB on a connection that named no database: the session bound to the
        target of the database it names, as a login naming it would have been (the
        front's binder), its kept statements (settings, transaction control) decided
        and run in order, then the COM_INIT_DB itself. Any refused: the COM_INIT_DB
        answered with that refusal, and the connection names no database still."""
        state, wire = self._state, self._wire
        assert state.binder is not None
        name = read_name(packet.payload[1:]) or ""
        if state.logins.target(name) is None:
            self._runs.refuse("INIT_DB", Refused(404, "database_refused", f"no target "
                                                 f"serves database {name!r}"),
                              named=f"USE `{name}`")
            return
        bound = await state.binder(state.bound, name)
        if isinstance(bound, bytes):
            wire.write(bound)
            return
        unbound = state.bound
        upstream, state.bound = bound
        state.open = state.opener(state.bound)
        state.upstream, state.capabilities = upstream, upstream.capabilities
        state.status = upstream.status
        state.backslashes = escapes(state.status)
        wire.rebound()
        kept, state.kept = state.kept, []
        for text in kept:
            if not await self._run_kept(text):
                await upstream.close()
                state.upstream, state.bound = None, unbound
                state.open = state.opener(unbound)
                wire.rebound()
                return
        await self._registered()
        await self.init_db(packet)

    async def _run_kept(self, text: str) -> bool:
        """A kept statement decided on the bound target and run; refused or failed, the
        COM_INIT_DB that bound it is answered so. Whether it ran."""
        state, wire = self._state, self._wire
        run = Run(state.act("QUERY"))
        refusal = await self._queries.decide(run, "QUERY", text)
        if refusal is not None:
            self._runs.refused(run, refusal)
            return False
        wire.send(encode(0, bytes((COM_QUERY,)) + text.encode("utf-8", "surrogateescape")))
        try:
            while True:
                answer = await wire.server_packet()
                if is_err(answer.payload):
                    self._runs.error(run, answer)
                    return False
                run.results.append("OK")
                if not state.more_results(answer):
                    return True
        finally:
            state.follow_sql_mode(text, run.error is None)
            run.end()

    async def reset_connection(self, packet: Packet) -> None:
        """COM_RESET_CONNECTION: relayed; once the server reset its session, so does
        tollgate its picture of it (SessionState.session_reset)."""
        state, wire = self._state, self._wire
        wire.send(packet.raw())
        answer = await wire.server_packet()
        if not is_err(answer.payload):
            state.session_reset()
            state.status = parse_ok(answer.payload, state.capabilities).status
            # The reset took the session back to the gateway's account's default role
            # and the server's defaults: the session's own are set again first.
            try:
                for command in state.bound.setup:
                    state.status = await self._server_command(command)
            except Refusal as exc:
                raise Closed(f"the session could not be set up again: {exc.message}"
                             ) from None
            state.backslashes = escapes(state.status)
        wire.write(answer.raw())

    async def change_user(self, packet: Packet) -> None:
        """Another identity for the session: its token asked for and verified as at login
        (mysql_clear_password, inside TLS), the same target only, the server's session
        reset by the gateway's own account. Recorded under the new identity; refused, the
        connection ends (Closed), as a failed login's would."""
        state, wire = self._state, self._wire
        logins = state.logins
        request, seq, claims, problem = None, packet.seq, None, None
        try:
            request = parse_change_user(packet.payload, state.bound.capabilities)
        except ProtocolViolation as exc:
            problem = Refused(400, "protocol_violation", f"COM_CHANGE_USER: {exc}")
        if request is not None:
            refused = logins.plaintext_refused(state.bound.target, state.bound.tls)
            if refused is not None:
                problem = Refused(401, "tls_required", refused)
            else:
                token, seq = await logins.token(
                    request.auth_plugin, request.auth_response, seq, wire.client,
                    wire.next_client_packet)
                claims, unverified = await logins.identify(token)
                del token
                if unverified is not None:
                    problem = Refused(401, "unauthenticated", unverified)
        was = state.subject
        bound = replace(state.bound, claims=claims,
                        user=request.username if request else state.bound.user)
        opens = state.opener(bound)
        act = opens("CHANGE_USER", {**bound.context(), "command": "change_user"})
        exchange = act.exchange
        exchange.request = exchange.evidence.request = {
            "method": "CHANGE_USER", "path": f"/{bound.database}", "query": {},
            "headers": {}, "body": None}
        try:
            act.admit()
            if problem is not None:
                raise problem
            status, setup = await self._reset(act, request.database if request else "")
            decided = exchange.decision
            bound = replace(bound, role=decided.database_role, setup=setup, owned=owned(
                decided.database_role, setup, decided.statement_timeout_seconds is not None))
            exchange.outcome.update({"tollgate.outcome": f"user changed (from {was})"
                                                         + setup_detail(setup),
                                     "tollgate.decision.action": "allow"})
        except Exception as exc:
            answer = act.refusal(exc, "change of user")
            exchange.outcome["tollgate.outcome"] = answer.body.get("message") or "refused"
            wire.write(refusal_packet(answer, (seq + 1) & 0xFF))
            raise Closed("a change of user refused") from None
        finally:
            act.end()
        state.session_reset()
        state.bound, state.open, state.status = bound, opens, status
        state.backslashes = escapes(status)
        await self._registered()
        wire.write(encode((seq + 1) & 0xFF, encode_ok(
            status=status, capabilities=bound.capabilities)))

    async def _reset(self, act: Act, database: str
                     ) -> tuple[int, tuple[bytes, ...]]:
        """The new identity admitted to the session's target (`database`, if named, must
        be its) and its role decided, and the server's session reset: COM_RESET_CONNECTION,
        then the session set up (its role, its timeouts), then COM_INIT_DB to the
        target's database when one was asked. The server's status after, and the setup."""
        state = self._state
        target = state.bound.target
        assert target is not None and target.mysql is not None
        if database and state.logins.target(database) is not target:
            raise Refused(403, "database_refused", f"COM_CHANGE_USER keeps the session's "
                           f"target ({target.name}, database {state.bound.database!r}): "
                           f"{database!r} is not its database; connect anew for another")
        exchange = act.exchange
        act.check(f"database {state.bound.database!r}")
        role = await login_role(act, target.mysql.roles)
        server = self._wire.server
        bounds = (target.mysql.idle_in_transaction_seconds, server.server_version,
                  exchange.decision.statement_timeout_seconds, target.mysql.lock_idle_seconds)
        setup = setup_commands(role, *bounds)
        server.lock_bound = lock_bound(*bounds)
        started = time.perf_counter()
        status = await self._server_command(bytes((COM_RESET_CONNECTION,)))
        for command in setup:  # first: the gateway's account alone may use no database
            status = await self._server_command(command)
        if database:
            status = await self._server_command(
                bytes((COM_INIT_DB,)) + (target.mysql.database or database).encode())
        exchange.evidence.upstream_ms = (time.perf_counter() - started) * 1000
        return status, setup

    async def _server_command(self, payload: bytes) -> int:
        """A command of tollgate's own to the server, answered OK (its status), or
        Refusal with the server's reason."""
        self._wire.send(encode(0, payload))
        answer = (await self._wire.server_packet()).payload
        if is_err(answer):
            err = parse_err(answer)
            raise Unavailable(502, "session_reset", f"the server did not reset the session "
                              f"({command_name(payload[0])}): {err.message}")
        return parse_ok(answer, self._state.capabilities).status
