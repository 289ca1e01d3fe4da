"""The front's own questions to the database, in the session's own upstream connection:
what a write touches, by the planner (estimate.py); whether a statement writes through
the database's code (reach.py); the bound on idling in a transaction that locked rows
(locks.py); the types of the columns a table's COPY writes, masked (copy_rows.py); and
the primitives a measured write's readings go by (measured.py).

They go once the session is at rest (the answers to what the client sent before are in:
`at_rest`), and wait in `State.pending` as a `Probe`, whose answers never reach the
client (answers.py gives them to the probe). The client's cancels never land on them
(exchange/cancels.py: each waits its `turn`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from extproc.masking.record_mask import RECORD_MASK
from extproc.postgres import copy_rows, effect, estimate, locks, namespace, reach
from extproc.postgres import messages as pg
from extproc.postgres.state import CYCLE_ENDS, Pending, Probe, State

if TYPE_CHECKING:
    from extproc.exchange.state import Exchange

# How long a write's estimate may wait for the session to come to rest (the answers to
# what the client sent before), and for the planner's answers.
REST_SECONDS = 30.0
ESTIMATE_SECONDS = 10.0
# The extended protocol's messages after which the planner may still be asked, their
# answers in (a driver prepares with Parse, Describe and Flush, then binds and executes
# with a Sync: asyncpg): they create nothing a transaction holds, so the front's
# questions, which end theirs, lose nothing of the client's (a Bind's portal would go
# with it).
_PREPARING = frozenset({b"P", b"D", b"C"})
SYNC = pg.encode(b"S", b"")
# The front's own statement and portal inside a client's batch (a measured Execute's
# probes): named, for the client's unnamed ones must survive them.
_OWN = f"{namespace.PREFIX}effect"


class Questions:
    """The front's messages upstream for the session whose `State` it is given, and the
    moments they wait for (`drained`, `progress`: set by the session's loop as answers
    are read)."""

    def __init__(self, state: State, upstream: asyncio.StreamWriter) -> None:
        self.state = state
        self._upstream = upstream
        # Set whenever nothing waits for an answer any more; whenever the database's
        # answers have been read.
        self.drained = asyncio.Event()
        self.progress = asyncio.Event()

    def answered(self) -> None:
        """The database's answers read (the session's loop says so after each read)."""
        if not self.state.pending:
            self.drained.set()
        self.progress.set()

    async def at_rest(self) -> str | None:
        """Once every answer the client awaits has come back: None, or why the session
        cannot be asked (estimate.py says why it must be at rest)."""
        state = self.state
        if state.batch - _PREPARING or state.unflushed:
            return ("it came in a pipeline (an extended-protocol batch not ended by a "
                    "Sync, or not flushed): the planner is asked only between the client's "
                    "batches")
        try:
            async with asyncio.timeout(REST_SECONDS):
                while state.pending:
                    self.drained.clear()
                    await self.drained.wait()
        except TimeoutError:
            return (f"what the client sent before it was still running after "
                    f"{REST_SECONDS:g} s")
        if state.batch and state.batch_failed:
            return ("an earlier message of its batch failed: the database runs nothing "
                    "until the client's Sync")
        return None

    async def cycles_in(self) -> None:
        """Once every cycle end sent so far has its ReadyForQuery."""
        while any(p.kind in CYCLE_ENDS for p in self.state.pending):
            self.progress.clear()
            await self.progress.wait()

    async def send(self, pending: list[Pending], data: bytes) -> None:
        """The front's own messages upstream, their answers awaited as `pending`."""
        self.state.pending += pending
        self._upstream.write(data)
        await self._upstream.drain()

    async def ask(self, messages: list[bytes], cycles: int) -> list[pg.Message]:
        """The front's own messages upstream, answered to it alone (estimate.Ask)."""
        await self.state.cancels.turn()
        probe = Probe(cycles)
        await self.send([Pending(b"Q", probe=probe)], b"".join(messages))
        return await asyncio.wait_for(asyncio.shield(probe.done), ESTIMATE_SECONDS)

    async def own(self, *texts: str) -> list[pg.Message]:
        """The front's own statements inside the client's batch, by the extended protocol,
        ended by a Sync of its own (in an explicit transaction, which it does not end):
        their answers, to it alone. None given: only what an error left under the front's
        name closed."""
        await self.state.cancels.turn()
        probe = Probe(1)
        await self.send([Pending(b"S", probe=probe)],
                        b"".join([*own_statements(*texts), SYNC]))
        answers = await probe.done
        if texts and failed(answers):
            await self.own()  # the error skipped its closes to the Sync
        return answers

    async def own_query(self, text: str) -> list[pg.Message]:
        """A simple Query of the front's between the client's cycles, without the
        estimate's time limit (a COMMIT may wait for the disk)."""
        await self.state.cancels.turn()
        probe = Probe(1)
        await self.send([Pending(b"Q", probe=probe)], pg.encode_query(effect.MARK + text))
        return await probe.done

    async def estimate(self, exchange: Exchange, text: str,
                       parameter_types: tuple[int, ...] | None) -> bool:
        """What the text's writes touch, by the planner, on their statements in
        input.sql (and so in the record), and in brief on the span; whether it writes
        what the planner can count (estimate.planned)."""
        meaning = exchange.meaning
        if not isinstance(meaning, dict) or meaning.get("error"):
            return bool(estimate.planned(text))
        writes = estimate.planned(text)
        if not writes:
            return False
        problem = await self.at_rest()
        try:
            found = [(p, estimate.missing(problem)) for p in writes] if problem else (
                await estimate.estimates(self.ask, writes, parameter_types,
                                         self.state.status))
        except TimeoutError:
            found = [(p, estimate.missing("the database did not answer the planner's "
                                          "questions in time")) for p in writes]
        for _, found_estimate in found:
            # The database's messages can quote the statement's values: masked as the
            # record masks them, for the approver sees this reason.
            if found_estimate["unavailable"]:
                found_estimate["unavailable"] = str(self.state.masker.mask_json(
                    found_estimate["unavailable"], RECORD_MASK)[0])
        estimate.attach(meaning, found)
        rows = [w["rows"] for _, e in found for w in e["writes"]]
        if rows:
            exchange.outcome["tollgate.sql.estimated_rows"] = max(rows)
        unavailable = next((e["unavailable"] for _, e in found if e["unavailable"]), None)
        if unavailable:
            exchange.outcome["tollgate.sql.estimate_unavailable"] = unavailable
        return True

    async def reaches(self, exchange: Exchange, text: str) -> bool:
        """Whether the text may write through the database's code (reach.py): then it is
        measured as a write is, and the record says why (`tollgate.sql.reaches`)."""
        found = reach.names(text)
        if found is None:
            return False
        why = await reach.reaches(self.ask, self.at_rest, lambda: self.state.status, found,
                                  self.state.remembered)
        if why is None:
            return False
        exchange.outcome["tollgate.sql.reaches"] = why
        return True

    async def copy_types(self, text: str) -> copy_rows.Types:
        """The types of the columns a COPY of a table writes (copy_rows.column_types),
        for its masked values to keep them; {} where the session cannot be asked."""
        return await copy_rows.column_types(self.ask, self.at_rest, lambda: self.state.status,
                                            text)

    async def bound_before(self) -> None:
        """A statement that may lock rows, allowed: inside an open transaction, the
        front's SET LOCAL bounds how long the session may idle in it (locks.py) before
        the statement goes; outside one, or in a pipeline, its transaction is bounded
        once the statement leaves it open (answers.py, after its cycle)."""
        state = self.state
        state.locked = True
        if state.bounded or state.status != b"T" or await self.at_rest() is not None:
            return
        state.bounded = True
        await self.ask([pg.encode_query(locks.setting(state.lock_idle_ms or 0))], 1)


def own_statements(*texts: str) -> list[bytes]:
    """Statements of the front's inside a client's batch, by the extended protocol under
    a name of its own (the client's unnamed statement and portal stay as they were),
    each closed once it ran, for the client lists what its session holds by name
    (pg_prepared_statements, pg_cursors); what an error left under that name (it skips
    to the Sync, past the closes) closed first. Each message is answered by one
    completion (`Probe.messages`)."""
    out = [pg.encode_close(b"P", _OWN), pg.encode_close(b"S", _OWN)]
    for text in texts:
        if not text.startswith(effect.MARK):
            text = effect.MARK + text
        out += (pg.encode_parse(_OWN, text), pg.encode_bind(pg.Bind(_OWN, _OWN, (), (), ())),
                pg.encode_execute(_OWN, 0),
                pg.encode_close(b"P", _OWN), pg.encode_close(b"S", _OWN))
    return out


def failed(answers: list[pg.Message]) -> bool:
    """Whether the front's own messages met an error (the rest skipped to the Sync)."""
    return any(m.kind == b"E" for m in answers)
