"""The planner's estimate of what a write touches (extproc/postgres/estimate.py), asked of
the machine's real PostgreSQL in each test's own database, over the gateway's own wire
code: a table of four rows and one of a million, parameters, transactions, temp tables,
functions and foreign tables; and nothing ever run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from extproc.interpret.sql import analyze
from extproc.postgres import estimate
from extproc.postgres import messages as pg
from extproc.postgres.upstream import Upstream, UpstreamSettings, connect
from tests.policy.test_contract import INPUT_SCHEMA
from tests.support.databases import throwaway_database

MILLION = 1_000_000
# input.sql.statements[].estimate as policies/input.schema.json describes it.
ESTIMATE = Draft202012Validator({**INPUT_SCHEMA["$defs"]["sql_statement"]["properties"][
    "estimate"], "$defs": INPUT_SCHEMA["$defs"]})


class Wire:
    """One session of the gateway's own kind to a database: raw messages, its answers
    up to ReadyForQuery, its transaction status (estimate.Ask, and a client's queries)."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self._framer = pg.Framer(pg.BACKEND_KINDS, 1 << 24)
        self._read: list[pg.Message] = []
        self.status = upstream.transaction_status
        self.asked = 0

    async def ask(self, messages: list[bytes], cycles: int) -> list[pg.Message]:
        self.asked += 1
        self._upstream.writer.write(b"".join(messages))
        answers: list[pg.Message] = []
        while cycles:
            while not self._read:
                data = await self._upstream.reader.read(65536)
                assert data, "the database closed the session"
                self._read += self._framer.feed(data)
            answers.append(message := self._read.pop(0))
            if message.kind == b"Z":
                cycles -= 1
                self.status = pg.ready_for_query(message.body)
        return answers

    async def sql(self, text: str) -> list[list[str | None]]:
        """A client's simple Query: its rows as text (an error raises)."""
        answers = await self.ask([pg.encode_query(text)], 1)
        errors = [pg.fields(m.body)["M"] for m in answers if m.kind == b"E"]
        assert not errors, errors
        return [[None if v is None else v.decode() for v in pg.data_row(m.body)]
                for m in answers if m.kind == b"D"]

    async def estimate(self, text: str, types: tuple[int, ...] | None = None
                       ) -> list[estimate.Estimate]:
        writes = estimate.planned(text)
        found = [e for _, e in await estimate.estimates(self.ask, writes, types, self.status)]
        for each in found:
            ESTIMATE.validate(each)
        return found


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    """The module's own database: `small` (four rows, never analysed), `big` (a million,
    analysed); autovacuum off for them, so their statistics stay as the tests left them."""
    with throwaway_database("tollgate_estimate") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            for table in ("small", "big"):
                conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, kind text) "
                             "WITH (autovacuum_enabled = false)")
            conn.execute("INSERT INTO small SELECT g, 'k' || g FROM generate_series(1, 4) g")
            conn.execute(f"INSERT INTO big SELECT g, 'k' || (g % 10) "
                         f"FROM generate_series(1, {MILLION}) g")
            conn.execute("ANALYZE big")
        yield url


@pytest.fixture
async def wire(shop: str) -> AsyncIterator[Wire]:
    database = shop.rsplit("/", 1)[1]
    upstream = await connect(UpstreamSettings("127.0.0.1", 5432, "postgres", database,
                                              sslmode="disable"), {"client_encoding": "UTF8"})
    try:
        yield Wire(upstream)
    finally:
        upstream.close()


def only(estimates: list[estimate.Estimate]) -> estimate.EstimatedWrite:
    (found,) = estimates
    assert found["unavailable"] is None, found
    (write,) = found["writes"]
    return write


def unavailable(estimates: list[estimate.Estimate]) -> str:
    (found,) = estimates
    assert found["writes"] == [] and found["unavailable"] is not None
    return found["unavailable"]


# -- what is asked about (pure) -----------------------------------------------------------

@pytest.mark.parametrize(("text", "targets"), [
    ("DELETE FROM small WHERE id > 1", ['"small"']),
    ("UPDATE app.small SET kind = 'x'", ['"app"."small"']),
    ("MERGE INTO small s USING big b ON s.id = b.id WHEN MATCHED THEN DELETE", ['"small"']),
    ("INSERT INTO small SELECT * FROM big", ['"small"']),
    ("WITH d AS (DELETE FROM big RETURNING id) SELECT count(*) FROM d", ['"big"']),
    ('DELETE FROM "Odd ""Name"""', ['"Odd ""Name"""']),
    ("EXECUTE purge(1)", []),  # what it writes, only its plan says
])
def test_writes_are_asked_about(text: str, targets: list[str]) -> None:
    (write,) = estimate.planned(text)
    assert list(write.targets) == targets and write.problem is None


@pytest.mark.parametrize("text", [
    "SELECT * FROM big", "INSERT INTO small VALUES (5, 'a'), (6, 'b')",
    "INSERT INTO small DEFAULT VALUES", "PREPARE purge AS DELETE FROM big",
    "EXPLAIN DELETE FROM big", "EXPLAIN (ANALYZE false) DELETE FROM big",
    "CREATE RULE r AS ON INSERT TO small DO ALSO DELETE FROM big", "not sql at all (",
])
def test_what_writes_no_counted_rows_now_is_not_asked_about(text: str) -> None:
    assert estimate.planned(text) == []


@pytest.mark.parametrize("text", [
    "EXPLAIN ANALYZE DELETE FROM big", "EXPLAIN (ANALYZE on) EXECUTE purge",
    "COPY (DELETE FROM big RETURNING id) TO STDOUT",
])
def test_a_write_the_planner_cannot_be_asked_about_alone_says_why(text: str) -> None:
    (write,) = estimate.planned(text)
    assert write.problem is not None


def test_parameters_functions_and_relations_are_found() -> None:
    (write,) = estimate.planned("UPDATE small SET kind = lower($2) FROM big "
                                "WHERE small.id = big.id AND big.kind = app.f($1)")
    assert write.parameters == 2
    assert write.functions == ("f", "lower")
    assert write.relations == ('"small"', '"big"')


_STATEMENTS = st.sampled_from([
    "DELETE FROM small WHERE id = 1", "SELECT 1", "UPDATE big SET kind = 'é' WHERE id < 3",
    "INSERT INTO small VALUES (9, 'x')", "INSERT INTO small SELECT id, kind FROM big",
    "WITH d AS (DELETE FROM big RETURNING 1) SELECT * FROM d", "EXECUTE purge",
])
_SPACES = st.sampled_from([" ", "\n", "  -- note\n", " /* a; b */ "])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_STATEMENTS, _SPACES), min_size=1, max_size=4))
def test_each_write_is_found_on_its_statement_of_the_reading(
        parts: list[tuple[str, str]]) -> None:
    """The estimates land on the statements input.sql lists, by their text."""
    text = "".join(f"{space}{statement};" for statement, space in parts)
    meaning: dict[str, Any] = dict(analyze(text))
    found = [(p, estimate.missing(p.text)) for p in estimate.planned(text)]
    estimate.attach(meaning, found)
    top = [s for s in meaning["statements"] if not s["nested"]]
    assert [s["text"] for s in top] == [statement for statement, _ in parts]
    for statement in top:
        asked = statement["text"] in {p.text for p, _ in found}
        assert ("estimate" in statement) == asked
        if asked:
            assert statement["estimate"]["unavailable"] == statement["text"]


def test_a_write_the_reading_holds_but_the_planner_was_not_asked_about_is_marked() -> None:
    meaning: dict[str, Any] = dict(analyze("DELETE FROM small WHERE id = 1"))
    meaning["statements"][0]["text"] = "read otherwise"
    estimate.attach(meaning, [(p, estimate.missing("x"))
                              for p in estimate.planned("DELETE FROM small WHERE id = 1")])
    assert "not one the planner was asked about" in (
        meaning["statements"][0]["estimate"]["unavailable"])


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               min_size=1, max_size=15),
       st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               min_size=1, max_size=15))
def test_any_quoted_name_is_asked_about_as_written(schema: str, table: str) -> None:
    def quoted(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    (write,) = estimate.planned(f"DELETE FROM {quoted(schema)}.{quoted(table)}")
    assert write.targets == (f"{quoted(schema)}.{quoted(table)}",)


# -- the planner, asked ---------------------------------------------------------------------

async def test_a_small_table_is_counted_and_the_planners_share_applied_to_the_count(
        wire: Wire) -> None:
    every = only(await wire.estimate("DELETE FROM small"))
    assert every == {"table": "public.small", "operation": "delete", "rows": 4,
                     "table_rows": 4, "counted": True, "statistics": "none"}
    # Never analysed, `small` looks like ten pages (over two thousand rows) to the
    # planner, which guesses 11 rows for `kind = 'k1'`: of four, that is one.
    assert only(await wire.estimate("DELETE FROM small WHERE kind = 'k1'"))["rows"] == 1
    assert only(await wire.estimate("DELETE FROM small WHERE id = 1"))["rows"] == 1
    await wire.sql("CREATE TABLE analysed AS SELECT * FROM small; ANALYZE analysed")
    every = only(await wire.estimate("DELETE FROM analysed WHERE id > 0"))
    assert (every["rows"], every["table_rows"], every["statistics"]) == (4, 4, "fresh")
    assert only(await wire.estimate("UPDATE analysed SET kind = '' WHERE id > 2"))["rows"] in (2, 3)


async def test_a_million_rows_by_statistics(wire: Wire) -> None:
    some = only(await wire.estimate("DELETE FROM big WHERE id <= 100"))
    assert some["counted"] is False and some["statistics"] == "fresh"
    assert abs((some["table_rows"] or 0) - MILLION) < MILLION * 0.05
    assert 50 <= some["rows"] <= 200
    every = only(await wire.estimate("UPDATE big SET kind = 'x'"))
    assert every["rows"] > MILLION * 0.95


async def test_parameters_are_planned_generically_not_as_nulls(wire: Wire) -> None:
    one = only(await wire.estimate("DELETE FROM big WHERE id = $1", (23,)))
    assert one["rows"] == 1
    # A custom plan with NULL would fold `kind = NULL` to no rows at all.
    tenth = only(await wire.estimate("DELETE FROM big WHERE kind = $1", ()))
    assert MILLION * 0.05 < tenth["rows"] < MILLION * 0.2
    # Prepared under the front's name only while asked: the name is free again.
    assert await wire.sql(f"PREPARE {estimate.NAME} AS SELECT 1; DEALLOCATE {estimate.NAME}") == []


async def test_an_execute_of_a_name_never_prepared_runs_nothing(wire: Wire) -> None:
    """First in its text, EXECUTE of a name the session has not prepared fails in the
    database, which writes nothing; after a PREPARE in the same text, it is not known."""
    assert await wire.estimate("EXECUTE purge") == [{"writes": [], "unavailable": None}]
    assert "purge" in unavailable((await wire.estimate(
        "PREPARE purge AS DELETE FROM small; EXECUTE purge"))[-1:])
    await wire.sql("PREPARE purge AS DELETE FROM small WHERE id < 3")
    # Prepared, it is planned; its table, which EXECUTE does not name, is not sized.
    prepared = only(await wire.estimate("EXECUTE purge"))
    assert (prepared["table"], prepared["table_rows"]) == ("public.small", None)
    await wire.sql("DEALLOCATE purge")


async def test_nothing_is_ever_run(wire: Wire) -> None:
    for text in ("DELETE FROM small", "UPDATE big SET kind = 'gone'",
                 "WITH d AS (DELETE FROM big RETURNING id) INSERT INTO small SELECT id, 'x' "
                 "FROM d LIMIT 1", "MERGE INTO small s USING big b ON s.id = b.id "
                 "WHEN MATCHED THEN DELETE"):
        assert (await wire.estimate(text))[0]["unavailable"] is None
    assert await wire.sql("SELECT count(*) FROM small") == [["4"]]
    assert await wire.sql("SELECT count(*) FROM big WHERE kind = 'gone'") == [["0"]]
    assert await wire.sql("SELECT count(*) FROM big") == [[str(MILLION)]]


async def test_inside_a_transaction_an_error_leaves_it_as_it_was(wire: Wire) -> None:
    await wire.sql("BEGIN; INSERT INTO small VALUES (100, 'mine')")
    assert "relation \"nowhere\" does not exist" in unavailable(
        await wire.estimate("DELETE FROM nowhere"))
    assert wire.status == b"T"  # not failed: the savepoint took the error
    assert only(await wire.estimate("DELETE FROM small"))["table_rows"] == 5  # its own row
    assert await wire.sql("SELECT kind FROM small WHERE id = 100") == [["mine"]]
    await wire.sql("ROLLBACK")
    assert wire.status == b"I"
    assert await wire.sql("SELECT count(*) FROM small") == [["4"]]


async def test_outside_a_transaction_none_is_left_open(wire: Wire) -> None:
    unavailable(await wire.estimate("DELETE FROM nowhere"))
    only(await wire.estimate("DELETE FROM small"))
    assert wire.status == b"I"


async def test_a_failed_transaction_is_not_asked(wire: Wire) -> None:
    await wire.ask([pg.encode_query("BEGIN; SELECT 1/0")], 1)
    assert wire.status == b"E"
    asked = wire.asked
    assert "transaction has failed" in unavailable(await wire.estimate("DELETE FROM small"))
    assert wire.asked == asked
    await wire.sql("ROLLBACK")


async def test_the_sessions_own_tables_and_uncommitted_ddl_are_seen(wire: Wire) -> None:
    await wire.sql("CREATE TEMP TABLE scratch AS SELECT g AS id FROM generate_series(1, 7) g")
    scratch = only(await wire.estimate("DELETE FROM scratch"))
    assert scratch["table"] == "pg_temp.scratch" and scratch["table_rows"] == 7
    await wire.sql("BEGIN; CREATE TABLE fresh (id int); INSERT INTO fresh VALUES (1), (2)")
    assert only(await wire.estimate("UPDATE fresh SET id = id + 1"))["table_rows"] == 2
    await wire.sql("ROLLBACK")


async def test_a_function_defined_in_the_database_is_not_planned(wire: Wire) -> None:
    """An IMMUTABLE function the planner would fold while estimating: it is never run."""
    await wire.sql("CREATE SEQUENCE IF NOT EXISTS ticks; CREATE OR REPLACE FUNCTION tick() "
                   "RETURNS int LANGUAGE sql IMMUTABLE AS $$SELECT nextval('ticks')::int$$")
    before = await wire.sql("SELECT last_value, is_called FROM ticks")
    assert "public.tick" in unavailable(await wire.estimate("DELETE FROM small WHERE id = tick()"))
    assert await wire.sql("SELECT last_value, is_called FROM ticks") == before
    # Built-in functions are pg_catalog's: planned.
    assert only(await wire.estimate("DELETE FROM small WHERE kind = lower('K1')"))["table"] == (
        "public.small")


async def test_a_foreign_table_is_not_planned(wire: Wire) -> None:
    await wire.sql("CREATE EXTENSION IF NOT EXISTS postgres_fdw; "
                   "CREATE SERVER IF NOT EXISTS elsewhere FOREIGN DATA WRAPPER postgres_fdw "
                   "OPTIONS (host '192.0.2.1', dbname 'x'); "
                   "CREATE FOREIGN TABLE IF NOT EXISTS remote (id int) SERVER elsewhere")
    assert "foreign table public.remote" in unavailable(
        await wire.estimate("DELETE FROM small WHERE id IN (SELECT id FROM remote)"))


async def test_stale_and_missing_statistics_are_told_apart(wire: Wire) -> None:
    # Statistics reach the shared counters as the session goes idle (forced: at once).
    await wire.sql("CREATE TABLE grown (id int) WITH (autovacuum_enabled = false); "
                   "INSERT INTO grown SELECT generate_series(1, 2000); "
                   "SELECT pg_stat_force_next_flush()")
    await wire.sql("ANALYZE grown")
    assert only(await wire.estimate("DELETE FROM grown WHERE id = 1"))["statistics"] == "fresh"
    await wire.sql("INSERT INTO grown SELECT generate_series(2001, 20000); "
                   "SELECT pg_stat_force_next_flush()")
    grown = only(await wire.estimate("DELETE FROM grown WHERE id = 1"))
    assert grown["statistics"] == "stale" and grown["counted"] is False
    # Scaled to its pages as the planner scales it, not the 2000 rows of the ANALYZE.
    assert 15000 < (grown["table_rows"] or 0) < 25000
    await wire.sql("CREATE TABLE unread (id int) WITH (autovacuum_enabled = false); "
                   "INSERT INTO unread SELECT generate_series(1, 20000)")
    unread = only(await wire.estimate("DELETE FROM unread WHERE id = 1"))
    assert unread["statistics"] == "none" and unread["counted"] is False
    assert unread["table_rows"] == estimate.COUNT_CAP + 1  # at least that many: counted so far


async def test_a_write_through_a_view_names_its_table_unsized(wire: Wire) -> None:
    await wire.sql("CREATE OR REPLACE VIEW few AS SELECT * FROM small WHERE id < 3")
    through = only(await wire.estimate("DELETE FROM few"))
    assert through["table"] == "public.small" and through["table_rows"] is None
    assert through["statistics"] == "unknown"


async def test_a_slow_lock_makes_no_estimate_and_the_session_goes_on(shop: str,
                                                                    wire: Wire) -> None:
    with psycopg.connect(shop) as holder:
        holder.execute("LOCK TABLE small IN ACCESS EXCLUSIVE MODE")
        reason = unavailable(await wire.estimate("DELETE FROM small WHERE id = 1"))
        assert "lock timeout" in reason
    assert await wire.sql("SELECT count(*) FROM small") == [["4"]]

