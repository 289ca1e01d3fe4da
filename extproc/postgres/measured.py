"""A limited write's effect, measured as it runs (effect.py), and the verdict on it.

A Query's write runs in a savepoint of the client's transaction, or a transaction of the
front's, between two readings; an Execute's inside the client's batch, by
extended-protocol messages of the front's own between it and the readings (questions.py
sends them). Its answers wait in its `Pending.buffer` (answers.py) until the policy has
decided on what it did (exchange/effect.py): then they go to the client with the
ReadyForQuery the verdict left, or the write is rolled back and refused.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from extproc.codecs.refusal import Refused
from extproc.exchange.effect import Effect, Measured, judged, to_come, unmeasured
from extproc.postgres import effect
from extproc.postgres import messages as pg
from extproc.postgres.answers import mask_fields, masked_fields
from extproc.postgres.questions import SYNC, Questions, failed, own_statements
from extproc.postgres.refusals import MeasuredRefused, notice, refusal_message
from extproc.postgres.state import Pending, Probe, Run, State, end, unrun

if TYPE_CHECKING:
    from extproc.exchange.state import Exchange
    from extproc.policy import Decision
    from extproc.postgres.names import Portal

# A measured write run (its effect and pending answers; None: it failed), and its end
# (kept or undone).
_Measure = Callable[[], Awaitable[tuple[Effect, Pending] | None]]
_Settle = Callable[[Run, Pending, bool], Awaitable[None]]


class Measuring:
    """The measured writes of one session (its `State`), their readings asked by its
    `Questions`, their answers relayed to `client`."""

    def __init__(self, state: State, questions: Questions,
                 client: asyncio.StreamWriter) -> None:
        self.state, self._questions, self._client = state, questions, client

    def measurable(self, exchange: Exchange, text: str, now: bool = True) -> bool:
        """Whether the write's effect can be measured (effect.py): the first decision is
        told so (`input.effect`, `measured` null), or why not (false), and what it allows
        then runs unmeasured. `now`: it runs now (a Query; a Parse's runs at Execute)."""
        problem = effect.unmeasurable(text) or (
            "the transaction has failed: the database runs nothing until it ends"
            if now and self.state.status == b"E" else None)
        if problem is not None:
            exchange.effect = unmeasured(problem)
            return False
        exchange.effect = to_come()
        return True

    # -- a measured Query ----------------------------------------------------------------

    async def query(self, run: Run, message: pg.Message) -> bytes | None:
        """A Query's write run where its effect is measured, and its verdict."""
        measure = functools.partial(self._run_query, run, message)
        return await self._verdict(run, measure, measure, self._settle)

    async def _verdict(self, run: Run, first: _Measure, again: _Measure,
                       settle: _Settle) -> bytes | None:
        """The write run where its effect is measured (`first`), and the verdict on it
        (exchange/effect.py): the client's answers relayed when it stands (None), else
        its refusal (rolled back). Approved after a hold, it runs again (`again`)."""
        exchange = run.exchange

        async def rerun() -> tuple[Effect, Pending] | None:
            unrun(run)
            return await again()

        async def hold(decision: Decision, asked: Callable[[], None]) -> None:
            async for seconds in run.act.hold(decision):
                asked()
                self._client.write(notice(exchange, seconds))

        try:
            refusal = await judged(
                run.act.decide, exchange,
                Measured(first, functools.partial(settle, run), hold, rerun))
        except MeasuredRefused as exc:
            return exc.refusal
        except Exception as exc:  # fail closed: refused, in order
            return refusal_message(run.act.refusal(exc, "statement"))
        return None if refusal is None else refusal_message(refusal)

    async def _run_query(self, run: Run, message: pg.Message
                         ) -> tuple[Effect, Pending] | None:
        """The client's Query between the two readings, in a savepoint of the client's
        transaction (or a transaction of the front's): the effect, and the statement's
        pending answers (buffered); None when it failed (its answers relayed, as the
        database left the transaction: rolled back if the front had opened it)."""
        state = self.state
        await state.cancels.turn()
        opened = state.status == b"I"
        before, after = Probe(1, cancellable=True), Probe(1, cancellable=True)
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        statement = Pending(b"Q", run, cycle=state.cycle_end(), buffer=[], measured=answered,
                            opened=opened)
        enter = "BEGIN" if opened else f"SAVEPOINT {effect.SAVEPOINT}"
        await self._questions.send(
            [Pending(b"Q", probe=before), statement, Pending(b"Q", probe=after)],
            b"".join((pg.encode_query(f"{effect.MARK}{enter}; {effect.BEFORE}"),
                      message.raw(), pg.encode_query(effect.AFTER))))
        first, last = await asyncio.gather(before.done, after.done)
        await answered
        rows_before, error = pg.answer_rows(first)
        rows_after, failure = pg.answer_rows(last)
        if error is not None or run.error is not None or failure is not None:
            if run.error is None:  # the front's reading failed, the statement not
                await self._settle(run, statement, commit=False)
                raise Refused(403, "effect_unmeasured", "the write's effect could not be "
                               f"read: {pg.error_text(error or failure or {})}")
            # The statement failed: the client's transaction is as the database left
            # it (failed), or the front's is rolled back.
            ready = (await self._questions.ask(
                [pg.encode_query(effect.MARK + "ROLLBACK")], 1))[-1] \
                if opened else pg.Message(b"Z", b"E")
            self._relay(run, statement, ready)
            return None
        return _difference(run, rows_before, rows_after), statement

    async def _settle(self, run: Run, pending: Pending, commit: bool) -> None:
        """The measured write kept (released, committed: its answers relayed) or undone."""
        opened = pending.opened
        if commit:
            text = "COMMIT" if opened else f"RELEASE SAVEPOINT {effect.SAVEPOINT}"
        else:
            text = "ROLLBACK" if opened else (f"ROLLBACK TO SAVEPOINT {effect.SAVEPOINT}; "
                                              f"RELEASE SAVEPOINT {effect.SAVEPOINT}")
        answers = await self._questions.ask([pg.encode_query(effect.MARK + text)], 1)
        if not commit:
            run.error = "rolled back: its measured effect was not allowed"
            return
        problem = next((m for m in answers if m.kind == b"E"), None)
        if problem is not None:  # a deferred constraint, a serialization failure
            fields = mask_fields(self.state.masker, pg.fields(problem.body), pending)
            run.error = f"error {fields.get('C', '')}: {fields.get('M', '')}"
            assert pending.buffer is not None
            pending.buffer.append(pg.encode_fields(b"E", fields))
        self._relay(run, pending, answers[-1])

    def _relay(self, run: Run, pending: Pending, ready: pg.Message) -> None:
        """The statement's buffered answers to the client, with the Ready the verdict
        left; its exchange ends."""
        assert pending.buffer is not None
        self._client.write(b"".join(pending.buffer) + ready.raw())
        pending.run = run
        end(pending, None, "; ".join(run.commands))

    # -- a measured Execute (the extended protocol) ---------------------------------------

    async def batch_began(self) -> bytes:
        """The status the client's batch began in, once every earlier cycle's
        ReadyForQuery is in (a measured Execute runs in it; failed, E, it does not)."""
        await self._questions.cycles_in()
        return self.state.batch_status or self.state.status

    async def execute(self, portal: Portal, max_rows: int, run: Run,
                      status: bytes) -> bytes | None:
        """A limited write's Execute, its effect measured before it stands (effect.py):
        in the batch's transaction made explicit (the front's BEGIN when the session was
        idle, `status` I: it ends at the client's Sync, as the implicit one would) and
        under a savepoint, between two readings, all ended by a Sync of the front's
        (which ends no explicit transaction, nor its portals); the verdict; the savepoint
        released, or rolled back to. None: it stands, its answers relayed (or it failed,
        the batch skipped); else its refusal, for its stand-in to draw the database's
        error and skip to the Sync in its place."""
        run.measure = True
        refusal = None if portal.columns is None else self.state.result_masker(
            run, portal.columns)
        if refusal is None:
            refusal = await self._verdict(
                run, functools.partial(self._run_execute, run, portal, max_rows,
                                       status == b"I", False),
                functools.partial(self._run_execute, run, portal, max_rows, False, True),
                self._settle_execute)
        return refusal

    async def _run_execute(self, run: Run, portal: Portal, max_rows: int,
                           begin: bool, rebind: bool) -> tuple[Effect, Pending] | None:
        """The client's Execute between the two readings, in a savepoint (after the
        front's BEGIN, `begin`; bound again, `rebind`, for a run after approval), in one
        round trip: the effect, and the statement's pending answers (buffered); None
        when it did not run (an earlier message of the batch failed) or failed (its
        error relayed): the front's Sync ended the database's skip, so the front skips
        the client's batch to its Sync, as the database would have."""
        state = self.state
        await state.cancels.turn()
        release = state.opened and state.savepoint
        state.savepoint = False
        enter = own_statements(*(["BEGIN"] if begin else []),
                               *([f"RELEASE SAVEPOINT {effect.SAVEPOINT}"] if release
                                 else []),
                               f"SAVEPOINT {effect.SAVEPOINT}", effect.BEFORE)
        before = Probe(1, messages=len(enter), cancellable=True)
        after = Probe(1, cancellable=True)
        buffer: list[bytes] = []
        statement = Pending(b"E", run, buffer=buffer)
        before.then = statement
        pending: list[Pending] = []
        out: list[bytes] = []
        if portal.columns is None:
            # Its rows' names and types, to mask them (NoData: none).
            pending.append(Pending(b"D", portal=portal, own=True))
            out.append(pg.encode_describe(b"P", portal.upstream))
        pending.append(Pending(b"S", probe=before))
        out += enter
        if rebind:
            if state.names.statements.get(portal.statement.name) is not portal.statement:
                raise Refused(403, "effect_unmeasured", "its prepared statement was "
                               "replaced before it could run again")
            pending += (Pending(b"C", own=True, buffer=buffer),
                        Pending(b"B", own=True, buffer=buffer))
            out += (pg.encode_close(b"P", portal.upstream), portal.bind)
        pending += (statement, Pending(b"S", probe=after))
        out += (pg.encode_execute(portal.upstream, max_rows), *own_statements(effect.AFTER),
                SYNC)
        await self._questions.send(pending, b"".join(out))
        first, last = await before.done, await after.done
        if begin:
            state.opened = state.status != b"I"
        if first[-1].kind == b"Z":  # skipped: an earlier message of the batch failed
            state.skipping = True
            return None
        rows_before, error = pg.answer_rows(first)
        if error is not None:
            await self._settle_execute(run, None, False)
            raise Refused(403, "effect_unmeasured", "the write's effect could not be read: "
                           f"{pg.error_text(error)}")
        rows_after, failure = pg.answer_rows(last)
        if statement.run is None:  # it failed
            self._client.write(b"".join(buffer))
            state.skipping = True
            return None
        if statement.refusal is not None or failure is not None:
            await self._settle_execute(run, None, False)
            if statement.refusal is not None:  # its rows cannot be masked
                raise MeasuredRefused(statement.refusal)
            raise Refused(403, "effect_unmeasured", "the write's effect could not be "
                           f"read: {pg.error_text(failure or {})}")
        return _difference(run, rows_before, rows_after), statement

    async def _settle_execute(self, run: Run, pending: Pending | None, commit: bool) -> None:
        """A measured Execute kept (its savepoint released, its answers relayed: the
        transaction goes on to the client's Sync) or undone (rolled back to it). In the
        front's own transaction the savepoint is released later, by its COMMIT or the
        next measured write's readings (the client has none of its own there)."""
        state = self.state
        release = f"RELEASE SAVEPOINT {effect.SAVEPOINT}"
        if commit and state.opened and pending is not None:
            state.savepoint, answers = True, []
        elif commit:
            answers = await self._questions.own(release)
        else:
            answers = await self._questions.own(
                f"ROLLBACK TO SAVEPOINT {effect.SAVEPOINT}", release)
        if not commit or pending is None:
            run.error = "rolled back: its measured effect was not allowed"
            return
        _, problem = pg.answer_rows(answers)
        if problem is not None:
            raise Refused(403, "effect_unmeasured", "the savepoint the write was "
                           f"measured in could not be released: {pg.error_text(problem)}")
        assert pending.buffer is not None
        self._client.write(b"".join(pending.buffer))
        pending.run = run
        end(pending, None, "; ".join(run.commands))

    async def end_opened(self, sync: bytes, relay: bool) -> bool:
        """The end of a batch whose transaction the front opened for a measured write
        (the client's Sync; or the front's own, before a Query the client sent inside
        the batch): the front's COMMIT goes just before it, so the transaction ends as
        the batch's implicit one would have: committed, or rolled back if the batch
        failed (the COMMIT skipped); the client is told its status (`relay`). Whether
        the batch had failed."""
        state, questions = self.state, self._questions
        await state.cancels.turn()
        state.opened = state.savepoint = False
        probe = Probe(1)
        pending = Pending(b"S", probe=probe, cycle=state.cycle_end())
        await questions.send([pending], b"".join((*own_statements("COMMIT"), sync)))
        answers = await probe.done
        # A deferred constraint, a serialization failure: the batch's error at its end.
        out = [masked_fields(state.masker, b"E", pg.fields(m.body), None)
               for m in answers if m.kind == b"E"]
        batch_failed = state.status == b"E"
        if batch_failed:
            await questions.own_query("ROLLBACK")
        if failed(answers):
            await questions.own()  # the COMMIT failed: its closes were skipped
        state.names.end_portals(pending.cycle)
        if relay:
            out.append(pg.encode_ready(state.status))
        if out:
            self._client.write(b"".join(out))
        return batch_failed


def _difference(run: Run, before: list[list[bytes | None]],
                after: list[list[bytes | None]]) -> Effect:
    """A measured write's effect between its readings, the tables its plan writes named
    as written."""
    meaning = run.exchange.meaning if isinstance(run.exchange.meaning, dict) else {}
    planned = sorted({w["table"] for s in meaning.get("statements", ())
                      for w in (s.get("estimate") or {}).get("writes", ())})
    return effect.difference(effect.reading(before), effect.reading(after), planned)
