"""The MySQL session's state machine (extproc/mysql/session.py) without a server: the
client's command packets fed in, what the session sends either way read back, the server
a stand-in answering in its wire format (tests/support/wire_session.py). The same
behaviour is tested against a real MariaDB and real clients in tests/e2e/."""

from __future__ import annotations

import struct

import pytest

from extproc.mysql.flags import COM_QUERY, COM_STMT_PREPARE, MYSQL_TYPE_LONGLONG
from extproc.mysql.framing import encode
from extproc.mysql.prepared import ParameterType, encode_stmt_execute, parse_prepare_ok
from extproc.mysql.responses import is_eof, parse_err
from extproc.recording import Evidence
from tests.support.wire_session import (
    LONG,
    VAR_STRING,
    MyWired,
    Result,
    command,
    my_result_set,
    mysql_session,
)

CUSTOMERS = "SELECT id, name FROM customers ORDER BY id"
STAFF = "SELECT name, ssn, salary FROM staff"
BY_ID = "SELECT name, ssn, salary FROM staff WHERE id = ?"
STAFF_ROWS = Result((("name", VAR_STRING), ("ssn", VAR_STRING), ("salary", LONG)),
                    ((b"Ann", b"078-05-1120", b"50000"), (b"Bob", None, b"61000")))
RESULTS = {
    CUSTOMERS: Result((("id", LONG), ("name", VAR_STRING)), ((b"1", b"Ann"), (b"2", b"Bob"))),
    STAFF: STAFF_ROWS,
    BY_ID: STAFF_ROWS,
    "SELECT 1": Result((("1", LONG),), ((b"1",),)),
}
BIGINT = ParameterType(MYSQL_TYPE_LONGLONG)


def query(text: str) -> bytes:
    return command(COM_QUERY, text.encode())


def method(record: Evidence) -> str:
    return record.headers[":method"]


def asked(wired: MyWired) -> list[str]:
    """The commands the policy was asked to decide, in order."""
    return [i["mysql"]["command"] for i in wired.engine.asked]


async def test_an_allowed_query_reaches_the_server_and_its_rows_the_client() -> None:
    async with mysql_session(RESULTS) as wired:
        wired.client.send(query(CUSTOMERS))
        result = await my_result_set(wired.client)
        assert wired.database.commands == [("COM_QUERY", CUSTOMERS.encode())]
    assert [c.name for c in result.columns] == ["id", "name"]
    assert result.rows == [[b"1", b"Ann"], [b"2", b"Bob"]]
    assert is_eof(result.end.payload)
    [record] = wired.records
    assert method(record) == "QUERY" and record.request is not None
    assert record.request["body"] == CUSTOMERS
    assert [(d.action, d.rules) for d in record.decisions] == [("allow", ("unit.allow",))]
    assert record.outcome["tollgate.mysql.rows"] == 2


async def test_a_refused_statement_never_reaches_the_server_and_is_recorded() -> None:
    """Refused, a statement is answered by the front with an ERR (the server's own code
    for a denied table, the reasons, rules and trace id in its message) and never sent
    on; the session goes on."""
    async with mysql_session(RESULTS) as wired:
        wired.client.send(query("DROP TABLE staff"))
        refusal = await wired.client.next()
        assert wired.database.commands == []
        wired.client.send(query("SELECT 1"))
        after = await my_result_set(wired.client)
        assert wired.database.commands == [("COM_QUERY", b"SELECT 1")]
    err = parse_err(refusal.payload)
    refused, ran = wired.records
    assert refusal.seq == 1 and (err.code, err.sqlstate) == (1142, "42000")
    assert err.message == ("tollgate: DROP is not for agents (rules: unit.no_drop; "
                           f"trace id {refused.trace_id})")
    assert refused.request is not None and refused.request["body"] == "DROP TABLE staff"
    assert [(d.action, d.rules) for d in refused.decisions] == [("deny", ("unit.no_drop",))]
    assert refused.outcome["tollgate.outcome"] == "refused"
    assert after.rows == [[b"1"]] and ran.decisions[-1].action == "allow"


async def test_a_masked_column_reaches_the_client_redacted_or_null() -> None:
    """The pack masks `ssn` and `salary` by name: a string column's value becomes its
    masked text, an INT column's NULL (a client parses its text); NULL stays NULL, and
    the column not masked passes as the server sent it."""
    async with mysql_session(RESULTS) as wired:
        wired.client.send(query(STAFF))
        result = await my_result_set(wired.client)
    (ann_name, ann_ssn, ann_salary), (bob_name, bob_ssn, bob_salary) = result.rows
    assert (ann_name, bob_name) == (b"Ann", b"Bob")
    assert ann_ssn is not None and ann_ssn.startswith(b"[REDACTED") and b"078" not in ann_ssn
    assert bob_ssn is None
    assert ann_salary is None and bob_salary is None
    [record] = wired.records
    assert record.decisions[-1].rules == ("unit.staff_masked",)
    assert sum(record.masked.values()) == 3  # one ssn, two salaries


async def test_a_prepared_statement_is_decided_once_at_its_prepare() -> None:
    """COM_STMT_PREPARE carries the text: decided there, once; the statement gets an id
    of tollgate's own. Each COM_STMT_EXECUTE is an exchange of its own under the
    prepare's decision, sent on under the server's id, its binary rows masked."""
    async with mysql_session(RESULTS) as wired:
        wired.client.send(command(COM_STMT_PREPARE, BY_ID.encode()))
        ok = parse_prepare_ok((await wired.client.next()).payload)
        definitions = [await wired.client.next() for _ in range(1 + 1 + 3 + 1)]
        results = []
        for staff_id in (1, 2):
            wired.client.send(encode(0, encode_stmt_execute(
                ok.statement_id, [BIGINT], [struct.pack("<q", staff_id)])))
            results.append(await my_result_set(wired.client, binary=True))
        commands = wired.database.commands  # before the client hangs up
    assert (ok.num_params, ok.num_columns) == (1, 3)
    assert [is_eof(d.payload) for d in definitions] == [False, True, False, False, False,
                                                           True]
    assert asked(wired) == ["prepare"]
    (prepare, text), *executes = commands
    assert (prepare, text) == ("COM_STMT_PREPARE", BY_ID.encode())
    assert [name for name, _ in executes] == ["COM_STMT_EXECUTE"] * 2
    server_id = 7  # the stand-in's first; the client holds tollgate's own
    assert ok.statement_id != server_id
    assert {struct.unpack_from("<I", body)[0] for _, body in executes} == {server_id}
    assert wired.database.executed == [(BY_ID, (struct.pack("<q", 1),)),
                                       (BY_ID, (struct.pack("<q", 2),))]
    for result in results:
        (ann_name, ann_ssn, ann_salary), (_, bob_ssn, bob_salary) = result.rows
        assert ann_name == b"Ann" and ann_ssn is not None and ann_ssn.startswith(b"[REDACTED")
        assert (bob_ssn, ann_salary, bob_salary) == (None, None, None)
    prepared, *executions = wired.records
    assert [method(r) for r in (prepared, *executions)] == ["PREPARE", "EXECUTE", "EXECUTE"]
    for record in (prepared, *executions):
        assert [(d.action, d.rules) for d in record.decisions] == [
            ("allow", ("unit.staff_masked",))]
    assert [r.outcome["tollgate.mysql.rows"] for r in executions] == [2, 2]


@pytest.mark.parametrize(("packet", "code", "seq", "refusal"), [
    # A command starts at sequence id 0: the server answers any other with
    # ER_NET_PACKETS_OUT_OF_ORDER and hangs up. Recorded.
    (command(COM_QUERY, b"SELECT 1", seq=1), 1156, 2, "packets_out_of_order"),
    # A packet over the front's bound, refused from its header (ER_NET_PACKET_TOO_LARGE).
    (struct.pack("<I", 2 << 20), 1153, 1, None),
], ids=["out_of_sequence", "too_large"])
async def test_a_malformed_packet_is_refused_and_ends_the_session(
        packet: bytes, code: int, seq: int, refusal: str | None) -> None:
    """Bytes the server would not take: an ERR saying why, then the session's end (the
    server gets only the front's COM_QUIT); nothing is decided."""
    async with mysql_session(RESULTS) as wired:
        wired.client.send(packet)
        [err] = await wired.client.rest()
        await wired.ended()
    parsed = parse_err(err.payload)
    assert err.seq == seq and (parsed.code, parsed.sqlstate) == (code, "08S01")
    assert wired.database.commands == [("COM_QUIT", b"")]
    assert wired.engine.asked == []
    if refusal is None:
        assert "the session ends" in parsed.message and wired.records == []
        return
    [record] = wired.records
    assert parsed.message.endswith(f"trace id {record.trace_id})")
    assert record.outcome["tollgate.refusal"] == refusal
