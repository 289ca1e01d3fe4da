"""The client's side of one PostgreSQL session: each message it sends, decided, and what
goes upstream for it.

Statements are decided where their text enters the database: a simple Query, or a Parse
(a prepared statement's text; its executions then run as decided, so a statement held
or refused at Parse can run neither through Execute nor through SQL's EXECUTE). A
decision may wait (an estimate's questions, a human's approval): the session's loop
(session.py) holds the rest of the client's stream meanwhile. A refused message goes
upstream as its stand-in (refusals.py), the names it uses as the front keeps them
(names.py); each message that awaits answers is noted in `State.pending` (state.py) for
the answers (answers.py) to end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from extproc.codecs.refusal import Refusal, Refused
from extproc.exchange.database_roles import refuse_owned_change
from extproc.postgres import drivers, encodings, locks, namespace
from extproc.postgres import messages as pg
from extproc.postgres.copy_rows import copies_table
from extproc.postgres.names import NOBODY, Portal, Prepared, declaring, prepared, with_formats
from extproc.postgres.refusals import (
    Fatal,
    NameRefused,
    notice,
    owned,
    refusal_message,
    stand_in,
    unknown,
)
from extproc.postgres.state import Pending, Run, State, unrun

if TYPE_CHECKING:
    import asyncio

    from extproc.exchange.state import Answer
    from extproc.postgres.measured import Measuring
    from extproc.postgres.questions import Questions

# The client's messages that carry strings, by the method their exchanges record.
_METHODS = {b"Q": "QUERY", b"P": "PARSE", b"B": "BIND", b"E": "EXECUTE", b"D": "DESCRIBE",
            b"C": "CLOSE"}
# The extended protocol's messages that leave a batch open until the client's Sync.
_BATCHED = frozenset({b"P", b"B", b"E", b"D", b"C"})
_SYNC = pg.encode(b"S", b"")


class Client:
    """One session's client messages, over its `State`: `message` says what goes
    upstream for each; its estimates and readings are asked by `questions`, its limited
    writes measured by `measuring`, its waiting statements' NOTICEs written to
    `client`."""

    def __init__(self, state: State, questions: Questions, measuring: Measuring,
                 client: asyncio.StreamWriter) -> None:
        self.state, self._questions, self._measuring = state, questions, measuring
        self._client = client

    async def message(self, message: pg.Message) -> list[bytes]:
        """What goes upstream for one client message (pending answers noted)."""
        state = self.state
        kind, body = message.kind, message.body
        try:
            if state.skipping and kind != b"S":
                return []  # the database would skip it: the client's batch failed
            if kind in _BATCHED:
                return await self._batched(message)
            if kind in (b"Q", b"F"):
                state.batch_status = None
                if state.opened and await self._measuring.end_opened(_SYNC, relay=False):
                    state.skipping = True  # inside a failed batch: skipped
                    return []
            if kind == b"Q":
                return [await self._query(pg.query(body), message)]
            if kind == b"F":
                return [await self._function_call(message)]
            if kind == b"S":
                return await self._sync(message)
            if kind == b"H":
                state.unflushed = False
            # Flush, and COPY's data, done and fail: no answer of their own.
        except pg.Undecodable as problem:
            # Bytes the session's encoding does not read: refused as PostgreSQL refuses
            # them, and the session goes on.
            if kind != b"Q":
                state.batch.add(kind)
            return [self._stood_in(kind, _METHODS.get(kind, "PROTOCOL"), None, problem.text,
                                   "22021", Refused(400, "character_not_in_repertoire",
                                                     str(problem)))]
        except pg.ProtocolViolation as exc:
            # A body that is not what its type says: the database would refuse it too,
            # but it must not be passed on unread.
            raise Fatal(f"a {kind.decode()} message that cannot be read: {exc}") from None
        return [message.raw()]

    def waits(self, message: pg.Message) -> bool:
        """Whether the front may answer this message only after a round trip of its own
        (a measured Execute, the Sync that ends a transaction the front opened): what the
        client sent before it goes upstream first."""
        state = self.state
        if message.kind == b"S":
            return state.opened
        if message.kind != b"E" or state.skipping:
            return False
        try:
            portal = state.names.portals.get(pg.execute(message.body)[0])
        except pg.ProtocolViolation:
            return False  # refused as it is read
        return portal is not None and portal.statement.measure and not portal.ran

    async def _sync(self, message: pg.Message) -> list[bytes]:
        """The end of the client's batch (and of the front's transaction in it)."""
        state = self.state
        state.batch.clear()
        state.batch_status = None
        state.skipping = state.unflushed = False
        if state.opened:
            await self._measuring.end_opened(message.raw(), relay=True)
            return []
        state.pending.append(Pending(b"S", cycle=state.cycle_end()))
        return [message.raw()]

    async def _batched(self, message: pg.Message) -> list[bytes]:
        """A message of the extended protocol: the batch stays open until a Sync."""
        kind, body = message.kind, message.body
        if kind == b"P":
            out = await self._parse(pg.parse(body))
        elif kind == b"B":
            out = [self._bind(pg.bind(body))]
        elif kind == b"E":
            out = await self._execute(*pg.execute(body))
        elif kind == b"D":
            out = [self._describe(*pg.describe(body))]
        else:
            out = [self._close(*pg.close(body))]
        self.state.batch.add(kind)
        self.state.unflushed = True
        return out

    # -- statements --------------------------------------------------------------------

    async def _query(self, text: str, message: pg.Message) -> bytes:
        state = self.state
        run, refusal = await self._decided("query", text, None)
        if refusal is None and run.upstream_text is not None:
            message = pg.Message(b"Q", pg.encode_query(run.upstream_text)[5:])
        if refusal is None and run.measure:
            run.unsettles = state.wire.going(run.change, state.cycles + 1)
            refusal = await self._measuring.query(run, message)
            if refusal is None:
                return b""  # ran, its answers relayed with the verdict
            unrun(run)
        declared = state.names.apply(
            run.use, declaring(run, text) if run.use.declared else None,
            state.cycles) if refusal is None else ()
        query = run.query if refusal is None else None
        if query is not None:
            state.names.queries[query.name] = query
        state.pending.append(Pending(b"Q", run, refusal, cycle=state.cycle_end(),
                                     declared=declared, query=query))
        if refusal is None:
            run.unsettles = state.wire.going(run.change, state.cycles)
            return message.raw()
        return pg.encode_query(stand_in(run.exchange))

    async def _parse(self, parse: pg.Parse) -> list[bytes]:
        """A statement decided on its text, prepared under a new name of the gateway's.
        Refused, it leaves no statement under its name on either side (the old one is
        closed); allowed under a name in use, it gets PostgreSQL's duplicate error."""
        state, names = self.state, self.state.names
        name = parse.statement
        run, refusal = await self._decided("parse", parse.text, name, parse.parameter_types)
        old = names.statements.get(name)
        out: list[bytes] = []
        if refusal is None and name and old is not None:
            refusal = self._refusal(run, "duplicate_prepared_statement", "42P05",
                                    f'prepared statement "{name}" already exists')
        elif refusal is not None:
            names.statements.pop(name, None)
            if old is not None and old.upstream:
                state.pending.append(Pending(b"C", own=True))
                out.append(pg.encode_close(b"S", old.upstream))
        if refusal is not None:
            # Unnamed, the stand-in replaces the database's unnamed statement, as the
            # refused one would have; named, it takes a name that is never created.
            state.pending.append(Pending(b"P", run, refusal))
            out.append(pg.encode_parse(names.upstream_name(name), stand_in(run.exchange)))
            return out
        statement = prepared(name, names.upstream_name(name), parse.text, run)
        names.statements[name] = statement
        state.pending.append(Pending(b"P", run, statement=statement))
        return [pg.encode_parse(statement.upstream, run.upstream_text or parse.text,
                                parse.parameter_types)]

    async def _function_call(self, message: pg.Message) -> bytes:
        """The fast path names a function by OID, with no SQL: decided as such (the pack
        refuses it); its stand-in is a Query, which draws the same error and Ready."""
        state = self.state
        run, refusal = await self._decided("function_call", "", None)
        state.pending.append(Pending(b"F", run, refusal, cycle=state.cycle_end()))
        if refusal is None:
            # A function named by OID may be set_config: any encoding may follow.
            run.change = encodings.Change(None)
            run.unsettles = state.wire.going(run.change, state.cycles)
            return message.raw()
        return pg.encode_query(stand_in(run.exchange))

    # -- names -------------------------------------------------------------------------

    def _bind(self, bind: pg.Bind) -> bytes:
        state, names = self.state, self.state.names
        statement = names.statements.get(bind.statement)
        if statement is None:
            return self._refused_name(b"B", "BIND", bind.statement, "26000",
                                      "unknown_statement", unknown("statement", bind.statement))
        if bind.portal.lower().startswith(namespace.PREFIX):
            return self._refused_name(b"B", "BIND", bind.portal, "42501",
                                      "statement_namespace", owned(bind.portal))
        if bind.portal and names.holds(bind.portal, state.cycles):
            return self._refused_name(b"B", "BIND", bind.portal, "42P03", "duplicate_portal",
                                      f'portal "{bind.portal}" already exists')
        columns = None
        if statement.columns is not None:
            columns = with_formats(statement.columns, bind.result_formats)
        portal = Portal(bind.portal, bind.portal, statement, bind.result_formats,
                        state.cycles, columns)
        names.portals[bind.portal] = portal
        state.pending.append(Pending(b"B", portal=portal))
        encoded = pg.encode_bind(bind._replace(portal=portal.upstream,
                                               statement=statement.upstream))
        if statement.measure:
            portal.bind = encoded
        return encoded

    def _describe(self, which: bytes, name: str) -> bytes:
        state, names = self.state, self.state.names
        if which == b"S":
            statement = names.statements.get(name)
            if statement is None:
                return self._refused_name(b"D", "DESCRIBE", name, "26000",
                                          "unknown_statement", unknown("statement", name))
            state.pending.append(Pending(b"D", statement=statement))
            return pg.encode_describe(b"S", statement.upstream)
        portal = names.portals.get(name)
        if portal is None:
            return self._refused_name(b"D", "DESCRIBE", name, "34000", "unknown_portal",
                                      unknown("portal", name))
        state.pending.append(Pending(b"D", portal=portal))
        return pg.encode_describe(b"P", portal.upstream)

    def _close(self, which: bytes, name: str) -> bytes:
        """A Close of what the client named; of a name it never had, a Close of nothing
        (not an error, as in PostgreSQL)."""
        names = self.state.names
        gone: Prepared | Portal | None = (
            names.statements.pop(name, None) if which == b"S" else names.portals.pop(name, None))
        self.state.pending.append(Pending(b"C"))
        return pg.encode_close(which, gone.upstream if gone is not None
                               else name and NOBODY)

    # -- executions --------------------------------------------------------------------

    async def _execute(self, portal_name: str, max_rows: int) -> list[bytes]:
        """An Execute runs a statement decided at its Parse: its exchange carries that
        decision; a limited write's is measured (effect.py). A portal tollgate did not
        bind is refused: nothing else runs."""
        state, names = self.state, self.state.names
        portal = names.portals.get(portal_name)
        if portal is None:
            return [self._refused_name(b"E", "EXECUTE", portal_name, "34000",
                                       "unknown_portal", unknown("portal", portal_name))]
        statement = portal.statement
        use = namespace.Use() if portal.declared else statement.use
        problem = names.cursor_problem(use, state.cycles)
        if problem is not None:
            return [self._refused_name(b"E", "EXECUTE", portal_name, *problem)]
        run, refusal = self._carried(statement)
        run.sources = names.sources(use)
        run.change = statement.change
        declared = names.apply(use, statement, state.cycles) if refusal is None else ()
        if refusal is None:
            run.unsettles = state.wire.going(run.change, state.cycles + 1)
        if refusal is None and statement.measure and not portal.ran:
            portal.ran = True
            return await self._execute_measured(portal, max_rows, run)
        portal.ran = True
        if statement.control is not None:
            # The client's own transaction statement: the status it leaves is the
            # batch's from here (a transaction the front opened is the client's now).
            state.opened = state.savepoint = False
            if statement.control:
                state.batch_status = statement.control
        return self._executed(portal, max_rows, run, refusal, declared)

    async def _execute_measured(self, portal: Portal, max_rows: int,
                                run: Run) -> list[bytes]:
        """A limited write's Execute, measured (measured.py) in the status its batch
        began in: what goes upstream for the client after it (a refusal's stand-in), if
        anything."""
        run.measure = True
        status = await self._measuring.batch_began()
        if status == b"E":
            # Nothing runs in a failed transaction: it goes as it came.
            return self._executed(portal, max_rows, run, None)
        refusal = await self._measuring.execute(portal, max_rows, run, status)
        if refusal is None:
            return []  # it stands, its answers relayed; or it failed, the batch skipped
        unrun(run)
        # Its stand-in draws the database's error and skip to the Sync: the batch's
        # transaction fails, as the refused statement's error would have failed it.
        return self._executed(portal, 0, run, refusal)

    def _executed(self, portal: Portal, max_rows: int, run: Run, refusal: bytes | None,
                  declared: tuple[Portal, ...] = ()) -> list[bytes]:
        """An Execute as it goes upstream: the portal's columns asked first if not known,
        a stand-in in its place if refused."""
        state = self.state
        out: list[bytes] = []
        if refusal is None and portal.columns is None:
            # The rows' names and types, to mask them and keep a sample: asked first.
            state.pending.append(Pending(b"D", portal=portal, own=True))
            out.append(pg.encode_describe(b"P", portal.upstream))
        elif refusal is None:
            assert portal.columns is not None
            refusal = state.result_masker(run, portal.columns)
        state.pending.append(Pending(b"E", run, refusal, declared=declared))
        if refusal is not None:
            out.append(pg.encode_execute(stand_in(run.exchange), 0))
        else:
            out.append(pg.encode_execute(portal.upstream, max_rows))
        return out

    # -- refusals as messages are read -----------------------------------------------------

    def _refused_name(self, kind: bytes, method: str, name: str, code: str, error: str,
                      message: str) -> bytes:
        """A message naming what the gateway did not prepare or bind, refused and
        recorded (`_stood_in`)."""
        return self._stood_in(kind, method, name, name, code, Refused(403, error, message))

    def _stood_in(self, kind: bytes, method: str, name: str | None, text: str, code: str,
                  problem: Refusal) -> bytes:
        """A message refused as it is read, recorded with `text`; its stand-in (a Query
        of text that does not parse for a Query, else an Execute of a portal that never
        exists) draws the database's error, and skip to Sync, which the refusal
        replaces."""
        state = self.state
        run = Run(state.act(method, name))
        exchange = run.exchange
        run.act.admit(required=False)
        state.request(exchange, method, text)
        refusal = refusal_message(exchange.refuse(problem), code=code)
        if kind == b"Q":
            state.pending.append(Pending(kind, run, refusal, cycle=state.cycle_end()))
            return pg.encode_query(stand_in(exchange))
        state.pending.append(Pending(kind, run, refusal))
        return pg.encode_execute(stand_in(exchange), 0)

    def _refusal(self, run: Run, error: str, code: str, message: str) -> bytes:
        return refusal_message(run.exchange.refuse(Refused(403, error, message)), code=code)

    # -- decisions ---------------------------------------------------------------------

    async def _decided(self, what: str, text: str, statement_name: str | None,
                       parameter_types: tuple[int, ...] | None = None
                       ) -> tuple[Run, bytes | None]:
        """An exchange for a statement's text: opened, estimated if it writes, decided,
        held if the policy says; and its refusal (None: allowed). `parameter_types`: a
        Parse's (a Query has no parameters)."""
        state, names, questions = self.state, self.state.names, self._questions
        act = state.act(what.upper(), statement_name)
        run, exchange = Run(act), act.exchange
        refusal: Answer | None = None
        shape: str | None = None
        opening = state.opening
        try:
            act.admit(f"database {state.context['database']!r}")
            state.request(exchange, what.upper(), text)
            await act.read(len(text))
            refuse_owned_change(exchange.meaning, state.context["owned"])
            run.change = state.wire.changes(exchange.meaning)
            if opening:
                shape = drivers.shape(exchange.meaning)
                state.opening = shape in (drivers.CATALOG, drivers.SETTING)
            run.use = namespace.read(exchange.meaning)
            if run.use.problem is not None or run.use.owned:
                raise Refused(403, "statement_namespace",
                               run.use.problem or owned(*run.use.owned))
            if what == "query":  # a Parse's cursors are seen to at each Execute
                self._query_names(run)
            run.upstream_text = names.renamed(run.use, exchange.meaning, text, run.query)
            if state.remembered.forget_after(exchange.meaning):
                state.path_set = True  # a SET LOCAL ends with its transaction
            writes = what != "function_call" and (await questions.estimate(
                exchange, run.upstream_text or text, parameter_types)
                or await questions.reaches(exchange, run.upstream_text or text))
            if what in ("query", "parse") and writes:
                # A Parse's writes are measured at their Execute: the transaction's
                # status then, not now, says whether they can be.
                run.measure = self._measuring.measurable(exchange, text, what == "query")
            refusal = await act.judge(
                lambda seconds: self._client.write(notice(exchange, seconds)))
            if refusal is None and state.cancels.take():
                return run, self._refusal(run, "query_canceled", "57014",
                                          "canceling statement due to user request")
            if refusal is None:
                await self._before_running(run, what, text)
        except NameRefused as exc:
            return run, self._refusal(run, exc.error, exc.code, exc.message)
        except Exception as exc:  # every failure is a refusal in order: fail closed
            refusal = act.refusal(exc, "statement")
        if refusal is None:
            return run, None
        shape = shape if opening else drivers.shape(exchange.meaning)
        return run, refusal_message(refusal, note=drivers.note(shape, opening, text))

    def _query_names(self, run: Run) -> None:
        """What a Query's names say: a cursor it cannot use refused (NameRefused); the
        statements whose rows it returns besides its own; the statement its PREPARE
        makes; an EXECUTE of one SQL prepared read as returning what that returns."""
        state, names, exchange = self.state, self.state.names, run.exchange
        code, error, problem = names.cursor_problem(run.use, state.cycles) or (None, "", "")
        if code is not None:
            raise NameRefused(code, error, problem)
        run.sources = names.sources(run.use)
        run.query = names.query(run.use, exchange.meaning)
        if (read := names.executes(run.use, exchange.meaning)) is not exchange.meaning:
            exchange.interpret(read)

    async def _before_running(self, run: Run, what: str, text: str) -> None:
        """What the front asks the database before an allowed statement goes: the bound
        on idling in a transaction that locks rows (locks.py); the types of the columns
        a table's COPY writes, masked (copy_rows.py)."""
        exchange, questions = run.exchange, self._questions
        if self.state.lock_idle_ms is not None and what != "function_call" \
                and locks.locks(text, exchange.meaning):
            await questions.bound_before()
        if what == "query" and exchange.mask is not None and copies_table(exchange.meaning):
            run.copy_types = await questions.copy_types(run.upstream_text or text)

    def _carried(self, statement: Prepared) -> tuple[Run, bytes | None]:
        """An Execute's exchange: the statement it runs, under its Parse's decision; and
        its refusal, when it cannot be recorded (then it does not run)."""
        state = self.state
        run = Run(state.act("EXECUTE", None))
        exchange = run.exchange
        refusal = None
        try:
            run.act.admit()
        except Refusal as exc:  # the record cannot take it
            refusal = refusal_message(run.act.refusal(exc, "statement"))
        state.request(exchange, "EXECUTE", statement.text)
        exchange.interpret(statement.meaning)
        exchange.decided("request", statement.decision, statement.revision,
                         statement.duration_us)
        if statement.approval is not None:
            exchange.approved(statement.approval)
        return run, refusal
