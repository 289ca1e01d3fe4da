"""The PostgreSQL front owns the names of prepared statements and portals (issue 36).

Raw protocol messages through a real Envoy and the front, to the machine's PostgreSQL:
every way of running SQL the front did not decide under a name — SQL's PREPARE then the
protocol's Bind, the protocol's Parse then SQL's EXECUTE, a name reused after a refusal
or a DEALLOCATE, a cursor, a portal resumed after its transaction failed — ends in a
refusal naming its trace (or the database's own error for a name it does not hold),
never in rows the gateway did not mask.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from extproc.postgres import messages as pg
from tests.e2e.test_approvals_e2e import DBA
from tests.e2e.test_postgres_e2e import (  # noqa: F401  (upstream_db: the fixture, reused)
    CUSTOMERS,
    _Raw,
    _recorded,
    shop,
    upstream_db,
    url,
)
from tests.support.gateway import Gateway, module_gateway

SSNS = [c[3] for c in CUSTOMERS]
EMAILS = [c[2] for c in CUSTOMERS]
SYNC = pg.encode(b"S", b"")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
       upstream_db: str) -> Iterator[Gateway]:  # noqa: F811
    with module_gateway(tmp_path_factory, otlp, "postgres", targets=[shop(upstream_db)],
                        postgres={}) as running:
        yield running


@pytest.fixture
def client(gw: Gateway) -> Iterator[_Raw]:
    raw = _Raw(gw)
    raw.login()
    yield raw
    raw.sock.close()


def run(client: _Raw, *messages: bytes) -> list[tuple[bytes, bytes]]:
    """Messages sent at once (a pipeline); the answers up to the last ReadyForQuery."""
    client.send(b"".join(messages))
    cycles = sum(m[:1] in (b"Q", b"S") for m in messages)
    framer = pg.Framer(pg.BACKEND_KINDS, 1 << 24)
    answers: list[tuple[bytes, bytes]] = []
    while sum(kind == b"Z" for kind, _ in answers) < cycles:
        data = client.sock.recv(65536)
        assert data, f"the connection closed after {answers}"
        answers += framer.feed(data)
    return answers


def query(text: str) -> bytes:
    return pg.encode_query(text)


def parse(name: str, text: str) -> bytes:
    return pg.encode_parse(name, text)


def bind(portal: str, statement: str) -> bytes:
    return pg.encode_bind(pg.Bind(portal, statement, (), (), ()))


def execute(portal: str = "", rows: int = 0) -> bytes:
    return pg.encode_execute(portal, rows)


def errors(answers: list[tuple[bytes, bytes]]) -> list[dict[str, str]]:
    return [pg.fields(body) for kind, body in answers if kind == b"E"]


def rows(answers: list[tuple[bytes, bytes]]) -> list[list[str | None]]:
    return [[None if v is None else v.decode() for v in pg.data_row(body)]
            for kind, body in answers if kind == b"D"]


def no_data_of_customers(answers: list[tuple[bytes, bytes]]) -> None:
    shown = str(rows(answers))
    assert not any(secret in shown for secret in SSNS + EMAILS), shown


def refused(answers: list[tuple[bytes, bytes]], code: str, says: str) -> dict[str, str]:
    """The one refusal among the answers: tollgate's, of this SQLSTATE, with its trace."""
    (error,) = errors(answers)
    assert error["C"] == code and says in error["M"], error
    assert error["M"].startswith("tollgate: ") and "trace id" in error["D"], error
    return error


# Each case: a setup (run first), then the attempt; the attempt's answers hold no
# customer's data unmasked and, where tollgate refuses, its refusal.
CASES: dict[str, tuple[list[bytes], list[bytes], str, str]] = {
    "sql PREPARE, then protocol Bind/Execute": (
        [query("PREPARE p AS SELECT name, email, ssn FROM customers")],
        [bind("", "p"), execute(), SYNC], "26000", 'statement "p" was not prepared'),
    "sql PREPARE, then protocol Describe": (
        [query("PREPARE p AS SELECT ssn FROM customers")],
        [pg.encode_describe(b"S", "p"), SYNC], "26000", 'statement "p" was not prepared'),
    "sql DECLARE'd cursor, then protocol Execute": (
        [query("BEGIN"), query("DECLARE c CURSOR FOR SELECT ssn FROM customers")],
        [execute("c"), SYNC, query("ROLLBACK")], "34000", 'portal "c" was not bound'),
    "protocol Parse, then SQL EXECUTE of the gateway's name": (
        [parse("q", "SELECT ssn FROM customers"), SYNC],
        [query("EXECUTE tollgate_s1")], "42501", "tollgate_s1"),
    "the gateway's name in unicode escapes": (
        [parse("q", "SELECT ssn FROM customers"), SYNC],
        [query('EXECUTE U&"\\0074ollgate_s1"')], "42501", "tollgate_s1"),
    "EXPLAIN ANALYZE EXECUTE of the gateway's name": (
        [parse("q", "SELECT ssn FROM customers"), SYNC],
        [query("EXPLAIN ANALYZE EXECUTE tollgate_s1")], "42501", "tollgate_s1"),
    "CREATE TABLE AS EXECUTE of the gateway's name": (
        [parse("q", "SELECT ssn FROM customers"), SYNC],
        [query("CREATE TABLE leak AS EXECUTE tollgate_s1")], "42501", "tollgate_s1"),
    "squatting the gateway's next name with SQL PREPARE": (
        [], [query("PREPARE tollgate_s1 AS SELECT ssn FROM customers")], "42501",
        "tollgate_s1"),
    "DISCARD ALL, then Bind of a statement it dropped": (
        [parse("a", "SELECT email FROM customers"), SYNC, query("DISCARD ALL")],
        [bind("", "a"), execute(), SYNC], "26000", 'statement "a" was not prepared'),
    "Close, then Bind of the closed statement": (
        [parse("a", "SELECT email FROM customers"), pg.encode_close(b"S", "a"), SYNC],
        [bind("", "a"), execute(), SYNC], "26000", 'statement "a" was not prepared'),
    "a name reused after a refused Parse": (
        [parse("r", "SELECT email FROM customers"), SYNC,
         parse("r", "DROP TABLE customers"), SYNC],
        [bind("", "r"), execute(), SYNC], "26000", 'statement "r" was not prepared'),
    "the unnamed statement after a refused Parse": (
        [parse("", "SELECT email FROM customers"), SYNC,
         parse("", "DROP TABLE customers"), SYNC],
        [bind("", ""), execute(), SYNC], "26000", "the unnamed statement"),
    "a Parse skipped after an error in its batch": (
        [parse("", "DROP TABLE customers"), parse("k", "SELECT email FROM customers"), SYNC],
        [bind("", "k"), execute(), SYNC], "26000", 'statement "k" was not prepared'),
    "the unnamed portal after its implicit transaction": (
        [parse("", "SELECT ssn FROM customers"), bind("", ""), SYNC],
        [execute(""), SYNC], "34000", "the unnamed portal"),
    "a Describe of a portal never bound": (
        [], [pg.encode_describe(b"P", "nope"), SYNC], "34000", 'portal "nope" was not bound'),
    "a Bind of a statement never prepared": (
        [], [bind("", "nope"), execute(), SYNC], "26000", 'statement "nope" was not prepared'),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_nothing_runs_under_a_name_the_gateway_did_not_decide(
        gw: Gateway, client: _Raw, case: str) -> None:
    setup, attempt, code, says = CASES[case]
    if setup:
        no_data_of_customers(run(client, *setup))
    answers = run(client, *attempt)
    no_data_of_customers(answers)
    assert code is not None
    error = refused(answers, code, says)
    method = {b"B": "BIND", b"D": "DESCRIBE", b"E": "EXECUTE"}.get(attempt[0][:1], "QUERY")
    record = _recorded(gw, method, error["D"])
    assert record["outcome"]["action"] == "deny", record
    # The session goes on, its statements decided as ever.
    assert rows(run(client, query("SELECT 1"))) == [["1"]]


def test_a_portal_resumed_after_its_transaction_failed_gets_the_databases_error(
        client: _Raw) -> None:
    """As directly (asyncpg's cursor after a timeout expects it): the transaction's
    portals last until its ROLLBACK, and the database runs none of them meanwhile."""
    no_data_of_customers(run(client, query("BEGIN"),
                             parse("", "SELECT ssn FROM customers"), bind("cur", ""),
                             execute("cur", 1), SYNC, query("DROP TABLE customers")))
    answers = run(client, execute("cur", 0), SYNC)
    (error,) = errors(answers)
    assert error["C"] == "25P02" and not rows(answers), error
    run(client, query("ROLLBACK"))
    refused(run(client, execute("cur", 0), SYNC), "34000", 'portal "cur" was not bound')


def test_a_refused_parse_leaves_no_statement_on_either_side(client: _Raw) -> None:
    run(client, parse("r", "SELECT email FROM customers"), SYNC)
    refused(run(client, parse("r", "DROP TABLE customers"), SYNC), "42501", "DROP")
    held = rows(run(client, query("SELECT statement FROM pg_prepared_statements")))
    assert held == [], held


def test_a_named_statement_prepared_again_keeps_the_first_as_postgresql_does(
        client: _Raw) -> None:
    answers = run(client, parse("d", "SELECT 1"), parse("d", "SELECT ssn FROM customers"),
                  SYNC)
    refused(answers, "42P05", 'prepared statement "d" already exists')
    assert rows(run(client, bind("", "d"), execute(), SYNC)) == [["1"]]


def test_a_close_of_a_name_never_prepared_is_no_error(client: _Raw) -> None:
    answers = run(client, pg.encode_close(b"S", "nope"), pg.encode_close(b"P", "nope"), SYNC)
    assert [kind for kind, _ in answers] == [b"3", b"3", b"Z"]


def test_a_suspended_portal_resumes_masked_and_each_part_is_recorded(
        gw: Gateway, client: _Raw) -> None:
    run(client, query("BEGIN"))
    first = run(client, parse("", "SELECT ssn FROM customers ORDER BY id"),
                bind("cur", ""), execute("cur", 1), SYNC)
    rest = run(client, execute("cur", 0), SYNC, query("COMMIT"))
    assert len(rows(first)) == 1 and len(rows(rest)) == 1
    assert b"s" in [kind for kind, _ in first]  # PortalSuspended
    no_data_of_customers(first + rest)


def test_sql_prepare_and_execute_are_decided_and_their_rows_masked(client: _Raw) -> None:
    answers = run(client, query("PREPARE p AS SELECT email, ssn FROM customers ORDER BY id"),
                  query("EXECUTE p"))
    assert len(rows(answers)) == 2
    no_data_of_customers(answers)


def test_a_dba_cursor_is_masked_and_cannot_fetch_the_gateways_portals(gw: Gateway) -> None:
    with psycopg.connect(url(gw, DBA)) as conn:
        conn.execute("DECLARE c CURSOR FOR SELECT email, ssn FROM customers ORDER BY id")
        fetched = conn.execute("FETCH ALL FROM c").fetchall()
        assert len(fetched) == 2
        assert not any(s in str(fetched) for s in SSNS + EMAILS), fetched
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="tollgate_p1"):
            conn.execute("FETCH ALL FROM tollgate_p1")


def test_sql_execute_of_a_protocol_statement_runs_it_masked(client: _Raw) -> None:
    """asyncpg lets a client name its prepared statement and EXECUTE it in SQL."""
    run(client, parse("q", "SELECT email, ssn FROM customers ORDER BY id"), SYNC)
    answers = run(client, query("/* by name */ EXECUTE q"))
    assert len(rows(answers)) == 2 and not errors(answers), answers
    no_data_of_customers(answers)


def test_sql_deallocate_of_a_protocol_statement_deallocates_it(client: _Raw) -> None:
    """psycopg on a libpq before 17 evicts its prepared statements with SQL's
    DEALLOCATE, naming them as it prepared them."""
    run(client, parse("_pg3_0", "SELECT email FROM customers"), SYNC)
    answers = run(client, query("DEALLOCATE _pg3_0"))
    assert not errors(answers) and (b"C", b"DEALLOCATE\x00") in answers, answers
    held = rows(run(client, query("SELECT name FROM pg_prepared_statements")))
    assert held == [], held
    refused(run(client, bind("", "_pg3_0"), execute(), SYNC), "26000",
            'statement "_pg3_0" was not prepared')
