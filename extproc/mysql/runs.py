"""A command's exchange, from its refusal or its answer to its record.

Every command is an exchange of the pipeline's (an act): refused before any decision
(`refuse`: one that cannot be read, one naming no prepared statement of tollgate's) or
after one (`refused`), held while a human decides (`held`), or sent on and its answer
relayed (`answer`, which drives relay.py's sans-IO `Relay` with the server's packets),
then recorded (`Run.end`). Its record holds what the answer was: the results, the rows,
a sample of them, the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from extproc.codecs.refusal import Refusal, Refused
from extproc.exchange.statement import Statement
from extproc.mysql.flags import SERVER_MORE_RESULTS_EXISTS
from extproc.mysql.framing import Packet, encode
from extproc.mysql.refusals import refusal_packet
from extproc.mysql.relay import Relay, error_packet
from extproc.mysql.responses import is_ok, parse_ok
from extproc.mysql.wire import Closed

if TYPE_CHECKING:
    from extproc.exchange.act import Act
    from extproc.exchange.state import Answer
    from extproc.mysql import effect
    from extproc.mysql.kills import Kill, Victim
    from extproc.mysql.state import SessionState
    from extproc.mysql.wire import Wire
    from extproc.policy import Decision


@dataclass(slots=True)
class Run(Statement):
    """An exchange in flight: a command and its answer (`kill`: a KILL tollgate does,
    and the session it names); the steps every database front shares are
    exchange/statement.py's."""

    results: list[str] = field(default_factory=list)
    kill: tuple[Kill, Victim] | None = None
    # The stored functions a text that names no write calls (effect.py: measured too).
    routines: list[effect.Target] = field(default_factory=list)

    def end(self) -> None:
        """A command's answer went by (or never will): its record."""
        self.answered("mysql", self.error or "; ".join(self.results) or "done",
                      ("results", self.results))


class Runs:
    """The session's exchanges: refused, held, or answered from its server."""

    def __init__(self, state: SessionState, wire: Wire) -> None:
        self._state, self._wire = state, wire

    def refuse(self, method: str, bad: Refusal, answered: bool = True,
               named: str | None = None, seq: int = 1) -> None:
        """A command refused before any decision, recorded (`named`: the statement it
        names, as its request); answered with ERR (sequence id `seq`) unless the protocol
        has no answer to it (the server answers those with nothing too)."""
        act = self._state.act(method)
        if named is not None:
            self._state.request(act.exchange, method, named)
        answer = act.refuse(bad)
        if answered:
            self._wire.write(refusal_packet(answer, seq))

    def refused(self, run: Run, refusal: Answer) -> None:
        run.error = "refused"
        run.end()  # recorded (journaled) before the answer leaves
        self._wire.write(refusal_packet(refusal))

    async def answered(self, run: Run, answer: Awaitable[None]) -> None:
        """A command sent on: its answer relayed (`answer` reads it), then its record."""
        try:
            await answer
        except Closed as exc:
            run.error = str(exc)  # the server went away mid-answer (a KILL CONNECTION)
            raise
        finally:
            run.end()

    def error(self, run: Run, packet: Packet) -> None:
        """The server's error, its message masked (a duplicate key quotes the row)."""
        self._wire.write(error_packet(run, packet, self._state.masker))

    async def held(self, act: Act, decision: Decision,
                   asked: Callable[[], None] | None = None) -> None:
        """The policy's hold, until a human decides or it ends; a KILL QUERY of this
        session ends it sooner, the statement then refused as interrupted (its approval
        stays pending: the same statement sent again waits on it)."""

        async def waiting() -> None:
            async for _ in act.hold(decision):
                if asked is not None:  # MySQL has no notice a waiting client would show
                    asked()

        state = self._state
        state.hold = asyncio.ensure_future(waiting())
        try:
            await state.hold
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the front is stopping
            raise Refused(409, "interrupted", "the statement held for approval was "
                           "interrupted by a KILL; its approval stays pending, and the "
                           "same statement sent again waits on it", action="hold") from None
        finally:
            state.hold = None

    # -- answers ------------------------------------------------------------------------

    async def answer(self, run: Run, binary: bool = False) -> None:
        """The server's answer to a statement, every result of it, relayed; `binary`: its
        rows are the binary protocol's (an execute's)."""
        state = self._state
        await self._relay(run, Relay(
            run, state.masker, state.capabilities, state.status, binary=binary,
            binary_results=state.binary_results, hidden_status=state.hidden_status))

    async def columns(self, run: Run) -> None:
        """COM_FIELD_LIST's answer: a column definition a column, then EOF, or ERR."""
        state = self._state
        await self._relay(run, Relay(run, state.masker, state.capabilities, state.status,
                                     field_list=True))

    async def _relay(self, run: Run, relay: Relay) -> None:
        """The server's packets fed to `relay` until the answer is over, what it says
        written to the client; rows are held while more are framed already."""
        wire, state = self._wire, self._state
        while not relay.done:
            step = relay.feed(await wire.server_packet())
            state.status = relay.status
            if relay.holding and not wire.buffered:
                flushed = relay.flush()
                step.writes += flushed.writes
                step.drain = True
            if run.unkept:
                await self._keep(run, step.writes)
            if relay.done and wire.writer is wire.client:
                run.end()  # recorded (journaled) before the answer's last bytes leave
            for data in step.writes:
                wire.write(data)
            if step.drain:
                await wire.drain()
            if step.local_file is not None:
                await self._no_local_file(run, step.local_file)

    async def _keep(self, run: Run, writes: list[bytes]) -> None:
        """The fingerprints of the rows about to go on kept first (activity/flow.py);
        where the store cannot keep them, the client is told so in their place and the
        session ends (Closed): the rows never leave."""
        try:
            await run.keep()
        except Refusal as bad:
            seq = writes[0][3] if writes else 1  # the first packet not sent
            self._wire.write(refusal_packet(run.exchange.refuse(bad), seq))
            raise Closed(f"refused: {bad.message}") from None

    async def _no_local_file(self, run: Run, request: Packet) -> None:
        """LOAD DATA LOCAL: the server asks the client for a file. None is sent (an empty
        packet ends it), and the client is told why."""
        capabilities = self._state.capabilities
        self._wire.send(encode((request.seq + 1) & 0xFF, b""))
        answer = await self._wire.server_packet()
        while is_ok(answer.payload, capabilities) and parse_ok(
                answer.payload, capabilities).status & SERVER_MORE_RESULTS_EXISTS:
            answer = await self._wire.server_packet()  # what followed it in a multi-statement
        refusal = run.exchange.refuse(Refused(
            403, "local_infile", "the server asked for a local file (LOAD DATA LOCAL): "
            "tollgate sends none"))
        run.error = "refused: local file"
        self._wire.write(refusal_packet(refusal, request.seq))
