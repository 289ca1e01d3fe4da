"""A write run where its effect is measured, and the verdict on it (effect.py reads it).

Where the policy may judge a write by what it did (`input.effect`), the front runs it
between two readings of the tables it reaches, inside a savepoint of the client's
transaction or a transaction of the front's own, its answer held back (`Measuring`)
until the verdict: kept, its answer relayed; else rolled back and refused. What it
reaches is read from the catalog (a catalog role's where the target has one,
catalog.py; else the session's): the tables written, those their triggers, views and
foreign keys' cascades reach, each one's size. A write that cannot be measured (a
table that is not transactional, a view that cannot be followed) is not run before the
verdict: its effect says why, and what the policy allows of it runs unmeasured.

A text that names no write but calls a stored function is measured too (the record
says so: `tollgate.sql.reaches`), its rows charged to the functions it calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from extproc.codecs.refusal import Refused
from extproc.exchange.effect import Effect, Measured, judged, to_come, unmeasured
from extproc.mysql import effect
from extproc.mysql.catalog import Catalog, CatalogUnavailable
from extproc.mysql.flags import SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS
from extproc.mysql.refusals import refusal_packet
from extproc.mysql.responses import Err, is_err, parse_err

if TYPE_CHECKING:
    from extproc.mysql.framing import Packet
    from extproc.mysql.own import Own
    from extproc.mysql.runs import Run, Runs
    from extproc.mysql.state import SessionState
    from extproc.mysql.wire import Wire


@dataclass(slots=True)
class Measuring:
    """A write run where its effect is measured: its answer held back (`answer`) until
    the verdict, in the front's transaction (`mode` "commit": to commit; "keep": left
    open, as autocommit off would leave it) or a savepoint of the client's."""

    raw: bytes
    binary: bool
    mode: str
    ran: bool = False
    answer: list[bytes] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        self.answer.append(data)

    async def drain(self) -> None:
        pass


class Measure:
    """The session's measured writes."""

    def __init__(self, state: SessionState, wire: Wire, runs: Runs, own: Own) -> None:
        self._state, self._wire, self._runs, self._own = state, wire, runs, own

    async def measurable(self, run: Run) -> bool:
        """Whether a write's effect is to be measured (effect.py): its decisions are told
        so (`input.effect`, `measured` null), or why it cannot be (false: what it allows
        runs unmeasured). A text that names no write but calls a stored function is one
        (the record says so: `tollgate.sql.reaches`). Neither: not measured, no
        input.effect."""
        exchange = run.exchange
        statements = (exchange.meaning or {}).get("statements") or []
        if self._state.upstream is None:
            return False
        if not effect.writes(statements):
            run.routines = await self._routines(effect.called(statements))
            if not run.routines:
                return False
            exchange.outcome["tollgate.sql.reaches"] = (
                f"it calls {', '.join(map(str, run.routines))}, defined in the database")
        problem = effect.unmeasurable(statements)
        exchange.effect = to_come() if problem is None else unmeasured(problem)
        return problem is None

    async def measured(self, run: Run, raw: bytes, binary: bool) -> None:
        """The write run where its effect is measured, and the verdict on it: its answer
        relayed if it stands, else its refusal (rolled back). Failing, it is refused."""
        exchange = run.exchange
        write: Measured[Measuring] = Measured(
            lambda: self._run_measured(run, raw, binary),
            lambda pending, keep: self._settle(run, pending, keep),
            lambda decision, asked: self._runs.held(run.act, decision, asked))
        try:
            refusal = await judged(run.act.decide, exchange, write)
        except Exception as exc:  # fail closed: refused, the write undone
            refusal = run.act.refusal(exc, "statement")
        if refusal is not None:
            run.error = run.error or "refused"
            run.end()  # recorded (journaled) before the answer leaves
            self._wire.write(refusal_packet(refusal))

    async def _run_measured(self, run: Run, raw: bytes, binary: bool
                            ) -> tuple[Effect, Measuring] | None:
        """The write between two readings, in a savepoint of the client's transaction or
        a transaction of the front's: its effect, and its answer held back. What cannot
        be measured is not run: its effect says why. None: the write failed (the client
        has the server's error; the front's transaction rolled back)."""
        state, wire = self._state, self._wire
        mode = ("savepoint" if state.status & SERVER_STATUS_IN_TRANS else
                "commit" if state.status & SERVER_STATUS_AUTOCOMMIT else "keep")
        pending = Measuring(raw, binary, mode)
        run.error, run.results, run.rows = None, [], 0  # a retry's: its own
        await self._own_command(
            f"SAVEPOINT {effect.SAVEPOINT}" if mode == "savepoint" else "START TRANSACTION")
        try:
            assert run.exchange.request is not None
            plan = await self._effect_plan(str(run.exchange.request["body"]), (
                run.exchange.meaning or {}).get("statements") or [], run.routines)
            if isinstance(plan, str):
                return unmeasured(plan), pending
            written, reached, sizes = plan
            counted, failed = await self._own.query(effect.reading_query(reached))
            if failed is not None:  # a table it reaches the session's role cannot count
                return unmeasured("what it reaches could not be counted by the session's "
                                  f"role: {failed.message}"), pending
            before = effect.reading(counted)
            pending.ran = True
            state.hidden_status = SERVER_STATUS_IN_TRANS if mode == "commit" else 0
            wire.writer = pending
            wire.send(raw)
            await self._runs.answer(run, binary)
        except BaseException:
            await self._leave(mode, keep=False)
            raise
        finally:
            wire.writer, state.hidden_status = wire.client, 0
        if run.error is not None:  # the write failed: the server's error relayed
            await self._leave(mode, keep=False)
            run.end()  # recorded (journaled) before the answer leaves
            wire.write(b"".join(pending.answer))
            return None
        try:
            after = await self._effect_reading(reached)
        except BaseException:
            await self._leave(mode, keep=False)
            raise
        return effect.difference(before, after, written, reached, sizes), pending

    async def _effect_plan(self, text: str, statements: list[dict[str, Any]],
                           routines: list[effect.Target]) -> tuple[
            list[effect.Target], list[effect.Reached], dict[effect.Target, int | None]] | str:
        """What the write's tables are, as the catalog has them: the tables written, the
        tables their triggers and cascades reach, each written one's size; or why its
        effect cannot be measured. A text that writes through stored functions alone
        (`routines`) has its rows charged to them: which tables they write, a role that
        may only execute them cannot read."""
        ((current,),) = await self._own_rows("SELECT DATABASE()")
        write = effect.written(text, None if current is None else current.decode(),
                               statements, self._state.backslashes)
        if isinstance(write, str):
            return write
        if not write.tables and routines:  # what they wrote, no catalog names
            return [effect.Target(r.schema, f"{r.table}()") for r in routines], [], {}
        if not write.tables:
            return "which tables it writes could not be read"
        catalog = effect.read_catalog(await self._catalog_rows(effect.catalog_query(write.tables)))
        direct = [t for t in write.tables if t in catalog.engines]
        bases, triggered = list(direct), list[effect.Target]()
        views, frontier, asked = list(catalog.views), list(direct), set()
        for _ in range(effect.DEPTH):  # views over views; triggers writing with triggers
            if not views and not frontier:
                break
            found = await self._view_bases(views) if views else []
            if isinstance(found, str):
                return found
            ask = [t for t in dict.fromkeys(frontier + found) if t not in asked]
            asked.update(ask)
            bodies = effect.trigger_tables(await self._catalog_rows(
                effect.triggers_query(ask))) if ask else []
            if isinstance(bodies, str):
                return bodies
            fired = [t for t in bodies if t not in bases and t not in triggered]
            more = effect.read_catalog(await self._catalog_rows(effect.catalog_query(
                found + fired))) if found or fired else effect.Catalog()
            catalog.add(more)
            frontier = [t for t in dict.fromkeys(found + fired) if t in more.engines
                        and t not in bases and t not in triggered]
            bases += [t for t in frontier if t in found]
            triggered += [t for t in frontier if t not in found]
            views = list(more.views)
        schemas = {t.schema for t in bases + triggered}
        rules = await self._catalog_rows(effect.rules_query(schemas)) if schemas else []
        keys = effect.keys(rules, await self._catalog_rows(effect.columns_query(
            {(r[0] or b"").decode() for r in rules}))) if rules else []
        # Through a view, which of its base's columns an UPDATE sets is not read: any.
        reached = effect.cascades(keys, [
            (t, write.deletes, write.columns if t in direct else None) for t in bases],
            triggered)
        if isinstance(reached, str):
            return reached
        unknown = [r.target for r in reached if r.target not in catalog.engines]
        if unknown:
            catalog.add(effect.read_catalog(await self._catalog_rows(
                effect.catalog_query(unknown))))
        problem = effect.not_transactional(catalog, bases + [r.target for r in reached])
        if problem is not None:
            return problem
        return write.tables, reached, await self._sizes(write.tables, reached, catalog)

    async def _sizes(self, written: list[effect.Target], reached: list[effect.Reached],
                     catalog: effect.Catalog) -> dict[effect.Target, int | None]:
        """Each table's size: a written one's counted (to a cap), else the statistics'."""
        sizes: dict[effect.Target, int | None] = {}
        for target in written:
            counted, failed = await self._own.query(effect.size_query(target))
            sizes[target] = (int(counted[0][0] or 0) if failed is None and counted
                             else catalog.sizes.get(target))
        for r in reached:
            sizes.setdefault(r.target, catalog.sizes.get(r.target))
        return sizes

    async def _routines(self, names: list[str]) -> list[effect.Target]:
        """The stored functions of these names the session can call (information_schema
        shows a role the routines it may execute), as the catalog said within
        REMEMBER_SECONDS."""
        remembered = self._state.remembered
        now = time.monotonic()
        said = {name: remembered.get(name, now) for name in names}
        unknown = [name for name, (known, _) in said.items() if not known]
        if unknown:
            found = {(name or b"").decode().lower(): effect.Target(
                (schema or b"").decode(), (name or b"").decode())
                for schema, name in await self._own_rows(effect.routines_query(unknown))}
            for name in unknown:
                said[name] = (True, found.get(name))
                remembered.remember(name, found.get(name), now)
        return [routine for _, routine in said.values() if routine is not None]

    async def _effect_reading(self, reached: list[effect.Reached]) -> list[int]:
        return effect.reading(await self._own_rows(effect.reading_query(reached)))

    async def _settle(self, run: Run, pending: Measuring, keep: bool) -> None:
        """The measured write kept (its answer relayed) or undone. One that could not be
        measured, and is let through (approved), runs now, as any statement."""
        if not pending.ran:
            await self._leave(pending.mode, keep=False)
            if keep:
                self._wire.send(pending.raw)
                await self._runs.answer(run, pending.binary)
            return
        if not keep:
            await self._leave(pending.mode, keep=False)
            run.error, run.results, run.rows = (
                "rolled back: its measured effect was not allowed", [], 0)
            return
        failed = await self._leave(pending.mode, keep=True)
        if failed is not None:  # the commit failed (a deadlock): its error, not its OK
            self._runs.error(run, failed)
            return
        run.end()  # recorded (journaled) before the answer leaves
        self._wire.write(b"".join(pending.answer))

    async def _leave(self, mode: str, keep: bool) -> Packet | None:
        """The front's transaction (or savepoint) ended: kept, or rolled back. The
        server's error, if committing failed; rolling back, a savepoint the server
        already lost with its transaction (a deadlock) is no error."""
        if mode == "keep" and keep:
            return None
        text = ("ROLLBACK" if mode != "savepoint" else
                f"ROLLBACK TO SAVEPOINT {effect.SAVEPOINT}") if not keep else (
            "COMMIT" if mode == "commit" else f"RELEASE SAVEPOINT {effect.SAVEPOINT}")
        answer = await self._own.packet(text)
        if mode == "savepoint" and not keep and not is_err(answer.payload):
            answer = await self._own.packet(f"RELEASE SAVEPOINT {effect.SAVEPOINT}")
        return answer if keep and is_err(answer.payload) else None

    async def _own_command(self, text: str) -> None:
        """A statement of the front's own, answered OK, or Refusal with the server's
        reason (the write is then refused)."""
        answer = await self._own.packet(text)
        if is_err(answer.payload):
            raise _unmeasured(parse_err(answer.payload).message)

    async def _view_bases(self, views: list[effect.Target]) -> list[effect.Target] | str:
        """The tables `views` read, by their definitions (the catalog role's reading, else
        the session's); or why one cannot be followed (a write through it is then not
        measured: what it changes beneath is not known)."""
        said = effect.view_definitions(await self._catalog_rows(effect.views_query(views)))
        missing = [v for v in views if v not in said]
        if missing and self._catalog() is not None:
            said.update(effect.view_definitions(
                await self._own_rows(effect.views_query(missing))))
        bases: list[effect.Target] = []
        for view in views:
            found = effect.view_bases(said.get(view, ""))
            if not found:
                return (f"the definition of view {view.schema}.{view.table} could not be "
                        "read (SHOW VIEW and SELECT on it), or names no table")
            bases += found
        return bases

    def _catalog(self) -> Catalog | None:
        target = self._state.bound.target
        return self._state.catalogs.get(target.name) if target is not None else None

    async def _catalog_rows(self, text: str) -> list[list[bytes | None]]:
        """A catalog question of the measurement: as the target's catalog role where it
        has one (catalog.py), else in the session; Refusal when it cannot be read."""
        catalog = self._catalog()
        if catalog is None:
            return await self._own_rows(text)
        try:
            return _rows(*await catalog.rows(effect.MARK + text))
        except CatalogUnavailable as exc:
            raise _unmeasured(str(exc)) from None

    async def _own_rows(self, text: str) -> list[list[bytes | None]]:
        """A query of the front's own: its rows, or Refusal with the server's reason."""
        return _rows(*await self._own.query(text))


def _unmeasured(why: str) -> Refused:
    return Refused(403, "effect_unmeasured", f"the write's effect could not be measured: {why}")


def _rows(rows: list[list[bytes | None]], failed: Err | None) -> list[list[bytes | None]]:
    """A measurement's question's rows, or its refusal with the server's reason."""
    if failed is not None:
        raise _unmeasured(failed.message)
    return rows
