"""The names of a session's prepared statements and portals, as the front keeps them.

The front owns the names of prepared statements and portals. A client's statement names
never go upstream: each named Parse gets a name of the gateway's own (`tollgate_s<N>`;
the unnamed statement stays unnamed, which SQL cannot name). Portals keep the client's
names, for SQL shares them with the protocol (a driver moves its protocol cursor with
MOVE, fetches a DECLARE'd one with Describe and Execute), and the front keeps the map of
every portal: one a Bind made runs its statement's decision, a cursor SQL declared runs
its DECLARE's. A Bind, Describe or Execute of a name the map lacks, and SQL's FETCH or
MOVE of one, are refused (recorded, SQLSTATE 26000 or 34000) rather than passed, so
nothing runs upstream under a name the gateway did not decide: not a statement SQL's
PREPARE made, not a cursor a function opened. A cursor's rows are masked as its DECLARE
or statement asked, besides what the FETCH's own decision asks. A statement SQL's
PREPARE makes, alone in its text, goes under a name of the gateway's own too, and the
front keeps what its result columns are read from (`Query`): an EXECUTE of it, alone in
its text, is read so (its columns' lineage, input.sql's), where an EXECUTE of anything
else returns what no reading knows, masked whole. SQL that names one of the gateway's
own names is refused (namespace.py reads them); DEALLOCATE ALL, CLOSE ALL and DISCARD
ALL drop the maps; portals end with their transaction (a cursor WITH HOLD
with its CLOSE), a failed Parse, Bind or DECLARE leaves no name behind; a refused Parse
under a name in use drops the old statement on both sides.

`Names` is those maps and nothing else: no I/O, no asyncio. The cycle counter it is
given (`cycle`) is the number of cycle ends (Sync, Query) sent so far (state.State).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from extproc.postgres import effect, encodings, namespace
from extproc.postgres import messages as pg
from extproc.postgres.refusals import NameRefused, unknown

if TYPE_CHECKING:
    from extproc.policy import Decision
    from extproc.postgres.state import Pending, Run

# A name the gateway never gives (its names are the prefix and a serial): a Close of a
# name the client never had closes nothing, as PostgreSQL's own does.
NOBODY = namespace.PREFIX


@dataclass(slots=True)
class Prepared:
    """A statement the extended protocol prepared (Parse), as it was decided."""

    name: str
    upstream: str  # the gateway's name for it in the database
    text: str
    meaning: Any
    decision: Decision
    revision: str
    duration_us: int
    # What running it drops (DEALLOCATE ALL, CLOSE ALL, DISCARD ALL).
    use: namespace.Use
    # What the database said its rows look like (a Describe of the statement).
    columns: list[pg.Column] | None = None
    approval: Any = None
    # A write whose Execute is measured (effect.py); a transaction statement's status
    # once it ran (effect.transaction_status; None: not one).
    measure: bool = False
    control: bytes | None = None
    # What it may do to the session's client_encoding (read once, at its Parse).
    change: encodings.Change = encodings.NO_CHANGE


@dataclass(slots=True)
class Portal:
    """A bound statement (Bind), ready to Execute; `cycle`: the cycle ends (Sync, Query)
    sent before its Bind, to end it with its transaction."""

    name: str
    upstream: str
    statement: Prepared
    result_formats: tuple[int, ...]
    cycle: int
    columns: list[pg.Column] | None = None
    # A measured write's Bind as it went upstream (to bind it again for an approved
    # run); whether an Execute ran it (a suspended portal's next Execute writes nothing).
    bind: bytes = b""
    ran: bool = False
    # A cursor SQL's DECLARE made (`statement`: the DECLARE, under its decision); WITH
    # HOLD, it outlives its transaction.
    declared: bool = False
    hold: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    """A statement SQL's PREPARE made under the gateway's name (`upstream`), and its
    result columns as its PREPARE was read (input.sql's `columns`)."""

    name: str
    upstream: str
    columns: Any


class Names:
    """The client's prepared statements and portals by the names it gave them."""

    def __init__(self) -> None:
        self.statements: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        # The statements SQL's PREPARE made, alone in their text.
        self.queries: dict[str, Query] = {}
        # The serial of the gateway's upstream names.
        self._serial = 0

    def upstream_name(self, name: str) -> str:
        """The gateway's own name for a client's named statement: a new one each time,
        so no name the client chose, nor an old one, reaches the database."""
        if not name:
            return ""
        self._serial += 1
        return f"{namespace.PREFIX}s{self._serial}"

    def apply(self, use: namespace.Use, statement: Prepared | None,
              cycle: int) -> tuple[Portal, ...]:
        """What a statement does to the maps, as it goes upstream: what DEALLOCATE ALL,
        CLOSE ALL, DISCARD ALL and CLOSE drop (should it fail, the names are only
        refused, never misused); the cursors it declares, run under its decision as
        `statement` (None where it declares none: not built for every Query); should it
        fail, they go again (`forget`)."""
        if use.drops_statements:  # the unnamed statement is not theirs to drop
            self.statements = {n: s for n, s in self.statements.items() if not n}
            self.queries.clear()
        if use.drops_portals:
            self.portals.clear()
        for name in use.closed:
            self.portals.pop(name, None)
        for name in use.deallocated:
            self.statements.pop(name, None)
            self.queries.pop(name, None)
        if not use.declared:
            return ()
        assert statement is not None
        declared = tuple(Portal(name, name, statement, (), cycle, declared=True,
                                hold=hold) for name, hold in use.declared)
        self.portals.update((p.name, p) for p in declared)
        return declared

    def holds(self, name: str, cycle: int) -> bool:
        """Whether the database holds a portal of that name for sure: one made since the
        last cycle end sent, or a cursor WITH HOLD. One made before may have ended with
        its transaction, which only the cycle's Ready tells: a name bound or declared
        again meanwhile (COMMIT and a Bind pipelined) goes to the database, whose
        duplicate error then leaves the front knowing neither, refusing both."""
        portal = self.portals.get(name)
        return portal is not None and (portal.cycle == cycle or portal.hold)

    def renamed(self, use: namespace.Use, meaning: Any, text: str,
                query: Query | None = None) -> str | None:
        """The text as it goes upstream, where it differs: SQL's EXECUTE or DEALLOCATE
        of a statement the protocol or SQL's PREPARE (`query`, the text's) prepared, the
        text's only statement, names it by the gateway's name (asyncpg lets a client
        name its statements and EXECUTE them in SQL; psycopg on a libpq before 17
        evicts them with DEALLOCATE; pg_dump prepares its catalog reads). Elsewhere the
        database answers for the name the client gave."""
        if query is not None:
            return namespace.renamed(text, query.upstream)
        names = use.deallocated | use.executed
        if len(names) != 1 or len(_top(meaning)) != 1:
            return None  # every other text: nothing more to read
        name = next(iter(names))
        statement = self.statements.get(name) or self.queries.get(name)
        return None if statement is None else namespace.renamed(text, statement.upstream)

    def query(self, use: namespace.Use, meaning: Any) -> Query | None:
        """The statement a text that is one PREPARE makes, under a name of the
        gateway's own (None for any other text: the database answers for the name it
        gives). NameRefused where the client's name is in use, as the database would."""
        top = _top(meaning)
        if len(use.prepared) != 1 or len(top) != 1 or top[0].get("kind") != "prepare":
            return None
        name = next(iter(use.prepared))
        if name in self.queries or name in self.statements:
            raise NameRefused("42P05", "duplicate_prepared_statement",
                              f'prepared statement "{name}" already exists')
        return Query(name, self.upstream_name(name), top[0].get("columns"))

    def executes(self, use: namespace.Use, meaning: Any) -> Any:
        """A text that is one EXECUTE of a statement SQL's PREPARE made, read as returning
        what that statement returns (its columns); `meaning` as it was for any other."""
        top = _top(meaning)
        name = next(iter(use.executed), None) if len(use.executed) == 1 else None
        query = self.queries.get(name) if name is not None and name not in self.statements \
            and len(top) == 1 and top[0].get("kind") == "execute" else None
        if query is None:  # a protocol statement's rows are masked as it asked (sources)
            return meaning
        return {**meaning, "statements": [
            {**s, "columns": query.columns} if s is top[0] else s
            for s in meaning["statements"]]}

    def cursor_problem(self, use: namespace.Use, cycle: int) -> tuple[str, str, str] | None:
        """Why a statement's cursors cannot be used (SQLSTATE, error, message): a cursor
        declared again while the front holds one of that name (the database would keep
        the old one, which the map would then misname), or a FETCH or MOVE of a cursor
        the front did not see declared or bound (a function's, one gone)."""
        declared = {name for name, _ in use.declared}
        for name in sorted(n for n in declared if self.holds(n, cycle)):
            return "42P03", "duplicate_cursor", f'cursor "{name}" already exists'
        for name in sorted(use.fetched - declared - self.portals.keys()):
            return "34000", "unknown_portal", unknown("portal", name)
        return None

    def sources(self, use: namespace.Use) -> tuple[Prepared, ...]:
        """The statements whose rows a text returns besides its own: of the cursors it
        fetches from (those it declares itself are its own decision's), of the
        protocol's statements it executes."""
        return tuple([self.portals[n].statement for n in sorted(use.fetched)
                      if n in self.portals]
                     + [self.statements[n] for n in sorted(use.executed)
                        if n in self.statements])

    def forget(self, pending: Pending) -> None:
        """A Parse, Bind, DECLARE or SQL's PREPARE that failed or was skipped created
        nothing: its names go."""
        statement, portal = pending.statement, pending.portal
        if pending.query is not None \
                and self.queries.get(pending.query.name) is pending.query:
            del self.queries[pending.query.name]
        if pending.kind == b"P" and statement is not None \
                and self.statements.get(statement.name) is statement:
            del self.statements[statement.name]
        elif pending.kind == b"B" and portal is not None \
                and self.portals.get(portal.name) is portal:
            del self.portals[portal.name]
        for cursor in pending.declared:
            if self.portals.get(cursor.name) is cursor:
                del self.portals[cursor.name]

    def end_portals(self, cycle: int) -> None:
        """The transaction ended: the portals bound or declared before its cycle end
        went with it, but cursors WITH HOLD."""
        self.portals = {n: p for n, p in self.portals.items()
                        if p.cycle >= cycle or p.hold}


def prepared(name: str, upstream: str, text: str, run: Run) -> Prepared:
    """A statement as its run decided it: what its executions carry."""
    exchange = run.exchange
    decided = exchange.evidence.decisions[-1]
    return Prepared(name, upstream, text, exchange.meaning, exchange.decision,
                    decided.revision, decided.duration_us, run.use,
                    approval=exchange.approval, measure=run.measure,
                    control=_control(exchange.meaning, text), change=run.change)


def _top(meaning: Any) -> list[dict[str, Any]]:
    """A reading's top-level statements."""
    statements = meaning.get("statements") if isinstance(meaning, dict) else None
    return [s for s in statements or () if isinstance(s, dict) and not s.get("nested")]


def declaring(run: Run, text: str) -> Prepared:
    """A Query as the statement its cursors run: its decision, nothing to redo."""
    return replace(prepared("", "", text, run), use=namespace.Use())


def with_formats(columns: list[pg.Column], formats: tuple[int, ...]) -> list[pg.Column]:
    """A statement's columns in the formats a Bind asked for (none: text; one: all)."""
    if not formats:
        return [c._replace(format=0) for c in columns]
    if len(formats) == 1:
        return [c._replace(format=formats[0]) for c in columns]
    return [c._replace(format=f) for c, f in zip(columns, formats, strict=False)]


def _control(meaning: Any, text: str) -> bytes | None:
    """A prepared transaction statement's status once it ran (effect.transaction_status);
    None for any other statement (read from the interpreter's kinds: no parse then)."""
    statements = meaning.get("statements", ()) if isinstance(meaning, dict) else ()
    if not any(isinstance(s, dict) and s.get("kind") == "transaction" for s in statements):
        return None
    return effect.transaction_status(text)
