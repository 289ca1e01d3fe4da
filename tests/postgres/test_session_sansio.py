"""The PostgreSQL session (extproc/postgres/session.py, and the parts it drives) without a
database: the client's wire messages fed in, what the session sends either way read
back, the database a stand-in answering in its wire format (tests/support/wire_session.py).
The same behaviour is tested against a real PostgreSQL and real drivers in tests/e2e/."""

from __future__ import annotations

import pytest

from extproc.postgres import messages as pg
from extproc.recording import Evidence
from tests.support.wire_session import (
    INT4,
    TEXT,
    PgWired,
    Result,
    pg_answers,
    postgres_session,
)

CUSTOMERS = "SELECT id, name FROM customers ORDER BY id"
STAFF = "SELECT name, ssn, salary FROM staff"
RESULTS = {
    CUSTOMERS: Result((("id", INT4), ("name", TEXT)), ((b"1", b"Ann"), (b"2", b"Bob"))),
    STAFF: Result((("name", TEXT), ("ssn", TEXT), ("salary", INT4)),
                  ((b"Ann", b"078-05-1120", b"50000"), (b"Bob", None, b"61000"))),
    "SELECT 1": Result((("?column?", INT4),), ((b"1",),)),
}
SYNC = pg.encode(b"S", b"")


def kinds(messages: list[pg.Message]) -> list[bytes]:
    return [m.kind for m in messages]


def rows(messages: list[pg.Message]) -> list[list[bytes | None]]:
    return [pg.data_row(m.body) for m in messages if m.kind == b"D"]


def method(record: Evidence) -> str:
    return record.headers[":method"]


def asked(wired: PgWired) -> list[str]:
    """The protocol messages the policy was asked to decide, in order."""
    return [i["postgres"]["message"] for i in wired.engine.asked]


async def test_an_allowed_query_reaches_the_database_and_its_rows_the_client() -> None:
    async with postgres_session(RESULTS) as wired:
        wired.client.send(pg.encode_query(CUSTOMERS))
        answers = await pg_answers(wired.client)
        assert wired.database.texts == [CUSTOMERS]
        assert kinds(answers) == [b"T", b"D", b"D", b"C", b"Z"]
        assert [c.name for c in pg.row_description(answers[0].body)] == ["id", "name"]
        assert rows(answers) == [[b"1", b"Ann"], [b"2", b"Bob"]]
        assert pg.command_complete(answers[3].body) == "SELECT 2"
    [record] = wired.records
    assert method(record) == "QUERY" and record.request is not None
    assert record.request["body"] == CUSTOMERS
    assert [(d.action, d.rules) for d in record.decisions] == [("allow", ("unit.allow",))]
    assert record.outcome["tollgate.postgres.rows"] == 2


async def test_a_refused_statement_never_reaches_the_database_and_is_recorded() -> None:
    """A refusal must come in order and leave the protocol's state as the database's
    error would: the front sends a stand-in the database cannot parse (naming the trace)
    in its place, and replaces the database's error with its own. The statement itself
    never reaches the database; the session goes on."""
    async with postgres_session(RESULTS) as wired:
        wired.client.send(pg.encode_query("DROP TABLE staff"))
        error, ready = await pg_answers(wired.client)
        wired.client.send(pg.encode_query("SELECT 1"))
        after = await pg_answers(wired.client)
    fields = pg.fields(error.body)
    assert error.kind == b"E" and (fields["S"], fields["C"]) == ("ERROR", "42501")
    assert fields["M"] == "tollgate: DROP is not for agents"
    assert fields["D"].startswith("rules: unit.no_drop; trace id ")
    assert ready.raw() == pg.encode_ready(b"I")
    refused, ran = wired.records
    trace = refused.trace_id
    assert fields["D"].endswith(trace)
    assert wired.database.texts == [f"tollgate refused this statement (trace {trace})",
                                    "SELECT 1"]
    assert not any("DROP" in text for text in wired.database.texts)
    assert refused.request is not None and refused.request["body"] == "DROP TABLE staff"
    assert [(d.action, d.rules) for d in refused.decisions] == [("deny", ("unit.no_drop",))]
    assert refused.outcome["tollgate.decision.action"] == "deny"
    assert rows(after) == [[b"1"]] and ran.decisions[-1].action == "allow"


async def test_a_masked_column_reaches_the_client_redacted_or_null() -> None:
    """The pack masks `ssn` and `salary` by name: a text column's value becomes its
    masked text, an integer column's NULL (a client parses an int4's text); NULL stays
    NULL, and the column not masked passes as the database sent it."""
    async with postgres_session(RESULTS) as wired:
        wired.client.send(pg.encode_query(STAFF))
        answers = await pg_answers(wired.client)
    (ann_name, ann_ssn, ann_salary), (bob_name, bob_ssn, bob_salary) = rows(answers)
    assert (ann_name, bob_name) == (b"Ann", b"Bob")
    assert ann_ssn is not None and ann_ssn.startswith(b"[REDACTED") and b"078" not in ann_ssn
    assert bob_ssn is None
    assert ann_salary is None and bob_salary is None
    [record] = wired.records
    assert record.decisions[-1].rules == ("unit.staff_masked",)
    assert sum(record.masked.values()) == 3  # one ssn, two salaries


async def test_an_extended_protocol_statement_is_decided_once_at_its_parse() -> None:
    """Parse is where the text enters the database: decided there, once. Each Execute is
    an exchange of its own, recorded under the Parse's decision, its rows masked as it
    asked; the statement is prepared under a name of the gateway's, never the client's."""
    async with postgres_session(RESULTS) as wired:
        execute = [pg.encode_bind(pg.Bind("", "q", (), (), ())), pg.encode_execute(""), SYNC]
        wired.client.send(pg.encode_parse("q", STAFF), *execute)
        first = await pg_answers(wired.client)
        wired.client.send(*execute)
        second = await pg_answers(wired.client)
    # The row description the front asked for itself (to mask) is not the client's.
    assert kinds(first) == [b"1", b"2", b"D", b"D", b"C", b"Z"]
    assert kinds(second) == [b"2", b"D", b"D", b"C", b"Z"]
    for answers in (first, second):
        assert [r[1] is not None and r[1].startswith(b"[REDACTED") for r in rows(answers)] == [
            True, False]  # Bob's ssn is NULL
        assert [r[2] for r in rows(answers)] == [None, None]
    assert asked(wired) == ["parse"]
    [parse] = [pg.parse(m.body) for m in wired.database.received if m.kind == b"P"]
    assert parse.text == STAFF and parse.statement.startswith("tollgate_s")
    assert {pg.bind(m.body).statement for m in wired.database.received
            if m.kind == b"B"} == {parse.statement}
    prepared, *executions = wired.records
    assert [method(r) for r in (prepared, *executions)] == ["PARSE", "EXECUTE", "EXECUTE"]
    for record in (prepared, *executions):
        assert [(d.action, d.rules) for d in record.decisions] == [
            ("allow", ("unit.staff_masked",))]
    assert [r.outcome["tollgate.postgres.rows"] for r in executions] == [2, 2]


@pytest.mark.parametrize(("message", "problem"), [
    (pg.encode(b"Q", b"SELECT 1"), "a Q message that cannot be read: a string without its "
                                   "terminator"),
    (b"?\x00\x00\x00\x04", "unknown message type b'?'"),
], ids=["unterminated_query", "unknown_type"])
async def test_a_malformed_message_is_refused_and_ends_the_session(message: bytes,
                                                                    problem: str) -> None:
    """Bytes that are not the protocol cannot be passed on unread: a FATAL
    protocol_violation naming the trace, recorded, and the session's end (the database
    gets only the front's Terminate)."""
    async with postgres_session(RESULTS) as wired:
        wired.client.send(message)
        [fatal] = await wired.client.rest()
        await wired.ended()
    fields = pg.fields(fatal.body)
    assert (fields["S"], fields["C"], fields["M"]) == ("FATAL", "08P01", f"tollgate: {problem}")
    assert kinds(wired.database.received) == [b"X"]
    assert wired.engine.asked == []
    [record] = wired.records
    assert method(record) == "PROTOCOL" and fields["D"] == f"trace id {record.trace_id}"
    assert record.outcome["tollgate.refusal"] == "protocol_violation"
    assert record.outcome["tollgate.outcome"] == problem
