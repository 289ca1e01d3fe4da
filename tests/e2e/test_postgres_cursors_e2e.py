"""Cursors through the PostgreSQL front (issue 57): a driver streams a large result
through a portal the gateway knows, its rows masked as the statement that opened it
asked.

psycopg's named cursors DECLARE in SQL, then Describe the portal through the protocol
and FETCH in SQL; asyncpg's cursors bind a protocol portal, Execute it with a row limit
and MOVE it in SQL. The pack here lets everything through and masks `ssn` only where a
statement reads `customers`: a FETCH, which names no table, asks for no mask of its own,
so every masked value below was masked by the DECLARE's (or the Bind's statement's)
decision the front carried to the cursor; so for SQL's EXECUTE of a statement the
protocol prepared. A cursor the front did not see declared or
bound (one a function opened, one a failed DECLARE never made, one CLOSE ended) is
refused, naming its trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from extproc.postgres import messages as pg
from tests.e2e.test_postgres_e2e import CUSTOMERS, _Raw, customers_database, shop, url
from tests.e2e.test_postgres_namespace_e2e import SYNC, bind, execute, parse, query, rows, run
from tests.support.gateway import Gateway, module_gateway, request_text

pytestmark = [pytest.mark.e2e]

SSNS = [c[3] for c in CUSTOMERS]
MASKED = "[REDACTED:FIELD]"
PACK = """package tollgate

import rego.v1

reads_customers if {
\tsome s in input.sql.statements
\t"customers" in s.tables
}

decision := {"action": "allow", "reasons": [], "rules": [],
\t"mask": {"fields": ["ssn"], "detectors": []}} if reads_customers
else := {"action": "allow", "reasons": [], "rules": []}
"""
# A function that opens a cursor of the name it is given: a portal no DECLARE or Bind
# of the client's made.
OPENER = ("CREATE FUNCTION open_ssns(c refcursor) RETURNS refcursor LANGUAGE plpgsql AS "
          "$$ BEGIN OPEN c FOR SELECT ssn FROM customers; RETURN c; END $$")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Gateway]:
    pack = tmp_path_factory.mktemp("cursor-pack")
    (pack / "tollgate.rego").write_text(PACK)
    with customers_database("cursors", OPENER) as upstream, module_gateway(
            tmp_path_factory, otlp, "cursors", policy_dir=pack, targets=[shop(upstream)],
            postgres={}) as running:
        yield running


@pytest.fixture
def raw(gw: Gateway) -> Iterator[_Raw]:
    client = _Raw(gw)
    client.login()
    yield client
    client.sock.close()


def masked(values: list[Any]) -> None:
    assert values and all(v == MASKED for v in values), values


def test_a_psycopg_named_cursor_streams_its_rows_masked_as_its_declare_asked(
        gw: Gateway) -> None:
    with psycopg.connect(url(gw)) as conn, conn.cursor(name="stream") as cur:
        cur.itersize = 1
        cur.execute("SELECT id, ssn FROM customers ORDER BY id")
        first = cur.fetchone()
        rest = list(cur)
        assert cur.description is not None and [c.name for c in cur.description] == [
            "id", "ssn"]
    assert first is not None and [first[0], *(r[0] for r in rest)] == [1, 2]
    masked([first[1], *(r[1] for r in rest)])
    fetch = gw.record_of('FETCH FORWARD 1 FROM "stream"')
    assert fetch["outcome"]["action"] == "allow", fetch


def test_a_declared_cursor_runs_through_the_protocol_under_its_declare(
        gw: Gateway, raw: _Raw) -> None:
    declare = "DECLARE c CURSOR FOR SELECT id, ssn FROM customers ORDER BY id"
    run(raw, query("BEGIN"), query(declare))
    described = run(raw, pg.encode_describe(b"P", "c"), execute("c", 1), SYNC)
    resumed = run(raw, execute("c", 0), SYNC, query("COMMIT"), query("SELECT 'protocol'"))
    assert [kind for kind, _ in described] == [b"T", b"D", b"s", b"Z"], described
    fetched = rows(described) + rows(resumed)[:-1]
    assert [r[0] for r in fetched] == ["1", "2"]
    masked([r[1] for r in fetched])
    executes = [r for r in gw.session_records("SELECT 'protocol'")
                if r["request"]["method"] == "EXECUTE" and request_text(r) == declare]
    assert len(executes) == 2, executes  # each Execute recorded, as its DECLARE


def test_an_asyncpg_cursor_moves_and_fetches_masked(gw: Gateway) -> None:
    async def use() -> tuple[list[Any], list[Any]]:
        conn = await asyncpg.connect(url(gw))
        try:
            async with conn.transaction():
                cursor = await conn.cursor("SELECT id, ssn FROM customers ORDER BY id")
                await cursor.forward(1)  # MOVE FORWARD 1 __asyncpg_portal_...
                moved = await cursor.fetch(5)
                streamed = [r async for r in conn.cursor(
                    "SELECT id, ssn FROM customers ORDER BY id", prefetch=1)]
            return list(moved), streamed
        finally:
            await conn.close()

    moved, streamed = asyncio.run(use())
    assert [r["id"] for r in moved] == [2] and [r["id"] for r in streamed] == [1, 2]
    masked([r["ssn"] for r in moved + streamed])


def test_an_asyncpg_statement_named_by_the_client_runs_by_sql_execute_masked(
        gw: Gateway) -> None:
    async def use() -> list[Any]:
        conn = await asyncpg.connect(url(gw))
        try:
            statement = await conn.prepare("SELECT id, ssn FROM customers ORDER BY id",
                                           name="foobar")
            executed = list(await conn.fetch("EXECUTE foobar"))
            assert statement.get_name() == "foobar"  # held, so asyncpg keeps it prepared
            return executed
        finally:
            await conn.close()

    executed = asyncio.run(use())
    assert [r["id"] for r in executed] == [1, 2]
    masked([r["ssn"] for r in executed])


def test_a_cursor_with_hold_outlives_its_commit_and_ends_with_close(gw: Gateway) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        conn.execute("DECLARE h CURSOR WITH HOLD FOR SELECT id, ssn FROM customers "
                     "ORDER BY id")
        held = conn.execute("FETCH ALL FROM h").fetchall()
        conn.execute("CLOSE h")
        with pytest.raises(psycopg.errors.InvalidCursorName, match='tollgate: portal "h"'):
            conn.execute("FETCH ALL FROM h")
    assert [r[0] for r in held] == [1, 2]
    masked([r[1] for r in held])


@pytest.mark.parametrize("opened", [
    "SELECT open_ssns('leak')",
    "DECLARE leak CURSOR FOR SELECT ssn FROM no_such_table",
], ids=["a function's cursor", "a failed DECLARE"])
def test_a_cursor_the_gateway_did_not_see_declared_is_refused(
        gw: Gateway, opened: str) -> None:
    with psycopg.connect(url(gw)) as conn:
        try:
            conn.execute(opened)
        except psycopg.errors.UndefinedTable:
            conn.rollback()
        with pytest.raises(psycopg.errors.InvalidCursorName,
                           match='tollgate: portal "leak" was not bound'):
            conn.execute("FETCH ALL FROM leak")
        conn.rollback()
        with pytest.raises(psycopg.errors.InvalidCursorName):
            conn.execute("MOVE FORWARD 1 FROM leak")
    refused = gw.record_of("MOVE FORWARD 1 FROM leak")
    assert refused["outcome"]["action"] == "deny", refused


def test_a_name_in_use_cannot_be_declared_again(gw: Gateway) -> None:
    with psycopg.connect(url(gw), autocommit=True) as conn:
        conn.execute("DECLARE again CURSOR WITH HOLD FOR SELECT id FROM customers "
                     "ORDER BY id")
        with pytest.raises(psycopg.errors.DuplicateCursor, match=r"^tollgate: "):
            conn.execute("DECLARE again CURSOR WITH HOLD FOR SELECT ssn FROM customers")
        # The cursor is the first DECLARE's still, its rows what that one selects.
        assert [r[0] for r in conn.execute("FETCH ALL FROM again")] == [1, 2]
        conn.execute("CLOSE again")


def test_a_portal_bound_again_after_its_commit_is_a_new_one(raw: _Raw) -> None:
    answers = run(raw, query("BEGIN"), parse("", "SELECT ssn FROM customers"),
                  bind("p", ""), SYNC, query("COMMIT"),
                  parse("", "SELECT id FROM customers ORDER BY id"), bind("p", ""),
                  execute("p"), SYNC)
    assert [r[0] for r in rows(answers)] == ["1", "2"], answers


def test_a_portal_named_as_the_gateways_is_refused(raw: _Raw) -> None:
    answers = run(raw, parse("", "SELECT 1"), bind("tollgate_effect", ""),
                  execute("tollgate_effect"), SYNC)
    (error,) = [pg.fields(b) for k, b in answers if k == b"E"]
    assert error["C"] == "42501" and "tollgate_effect" in error["M"], error

