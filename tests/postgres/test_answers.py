"""The PostgreSQL session's answers (extproc/postgres/answers.py) as a sans-IO machine:
the database's bytes fed in, the client's bytes read back, with no socket, no database
and (but where a question of the front's own needs a future) no event loop. Each test
sets up `State.pending` as the client's side would have left it, the exchanges decided
synchronously as an Execute's are (under a decision given here, not the policy's).

The same machine runs inside the whole session in test_session_sansio.py and against a
real PostgreSQL in tests/e2e/."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.exchange.act import Opener
from extproc.exchange.database_roles import owned_settings
from extproc.policy import Decision
from extproc.postgres import encodings
from extproc.postgres import messages as pg
from extproc.postgres.answers import Answers
from extproc.postgres.names import Portal, prepared
from extproc.postgres.refusals import Fatal
from extproc.postgres.state import Pending, Probe, Run, State
from extproc.recording import Evidence
from tests.support.wire_session import CLAIMS, INT4, MAX_MESSAGE, PG_TARGET, TEXT, gateway

STAFF = "SELECT name, ssn, salary FROM staff"
COLUMNS = [pg.Column("name", 0, 0, TEXT, -1, -1, 0), pg.Column("ssn", 0, 0, TEXT, -1, -1, 0),
           pg.Column("salary", 0, 0, INT4, 4, -1, 0)]
MASKED = {"detectors": (), "fields": ("ssn", "salary")}
RESULT = (pg.encode_row_description(COLUMNS)
          + pg.encode_data_row([b"Ann", b"078-05-1120", b"50000"])
          + pg.encode_data_row([b"Bob", None, b"61000"])
          + pg.encode_command_complete("SELECT 2"))


class Machine:
    """One session's state and its answers, over the in-memory pipeline's record."""

    def __init__(self) -> None:
        pipeline, target, _, self.recorder = gateway(PG_TARGET)
        opener = Opener(pipeline, "postgres", target, CLAIMS,
                        "00000000-0000-4000-8000-000000000001", "/shop")
        context: dict[str, Any] = {
            "database": "shop", "parameters": {"client_encoding": "UTF8"},
            "policy": {"database": "shop", "role": "agent"},
            "encoding": encodings.for_session(None), "owned": owned_settings(None)}
        self.state = State(opener, context, encodings.Wire(
            context["encoding"], encodings.readable("UTF8")), b"I")
        self.answers = Answers(self.state, MAX_MESSAGE)

    @property
    def records(self) -> list[Evidence]:
        return self.recorder.submitted

    def run(self, method: str, text: str, mask: dict[str, tuple[str, ...]] | None = None
            ) -> Run:
        """An exchange of `text`, allowed (masked as `mask` says)."""
        run = Run(self.state.act(method, None))
        run.act.admit()
        self.state.request(run.exchange, method, text)
        run.exchange.decided("request", Decision("allow", rules=("unit.test",),
                                                 mask=mask or {}), "r1", 1)
        return run

    def feed(self, data: bytes) -> list[pg.Message]:
        """The database's bytes in; what the client gets, framed."""
        return pg.Framer(pg.BACKEND_KINDS, MAX_MESSAGE).feed(self.answers.feed(data))


def kinds(messages: list[pg.Message]) -> list[bytes]:
    return [m.kind for m in messages]


def rows(messages: list[pg.Message]) -> list[list[bytes | None]]:
    return [pg.data_row(m.body) for m in messages if m.kind == b"D"]


def test_a_querys_rows_are_masked_and_its_exchange_ends_at_ready() -> None:
    machine = Machine()
    state = machine.state
    state.pending.append(Pending(b"Q", machine.run("QUERY", STAFF, MASKED),
                                 cycle=state.cycle_end()))
    answers = machine.feed(RESULT + pg.encode_ready(b"T"))
    assert kinds(answers) == [b"T", b"D", b"D", b"C", b"Z"]
    assert pg.row_description(answers[0].body) == COLUMNS
    (ann_name, ann_ssn, ann_salary), (bob_name, bob_ssn, bob_salary) = rows(answers)
    assert (ann_name, bob_name) == (b"Ann", b"Bob")
    assert ann_ssn is not None and ann_ssn.startswith(b"[REDACTED") and b"078" not in ann_ssn
    assert bob_ssn is None and ann_salary is None and bob_salary is None
    assert answers[-1].raw() == pg.encode_ready(b"T")
    assert not state.pending and state.status == b"T"
    [record] = machine.records
    assert record.outcome["tollgate.outcome"] == "SELECT 2"
    assert record.outcome["tollgate.postgres.rows"] == 2
    assert sum(record.masked.values()) == 3


def test_answers_split_anywhere_come_out_the_same() -> None:
    """The machine frames what it is fed: the database's bytes as one read, or one byte a
    read, give the client the same bytes; nothing goes out before a message is whole."""
    whole, split = Machine(), Machine()
    for machine in (whole, split):
        machine.state.pending.append(Pending(b"Q", machine.run("QUERY", STAFF, MASKED),
                                             cycle=machine.state.cycle_end()))
    data = RESULT + pg.encode_ready(b"I")
    at_once = whole.answers.feed(data)
    one_by_one = b"".join(split.answers.feed(data[i:i + 1]) for i in range(len(data)))
    assert one_by_one == at_once and split.feed(b"") == []
    assert kinds(pg.Framer(pg.BACKEND_KINDS, MAX_MESSAGE).feed(at_once)) == [
        b"T", b"D", b"D", b"C", b"Z"]
    assert not split.state.pending and len(split.records) == 1


def test_a_stand_ins_error_is_replaced_by_the_refusal() -> None:
    """A refused message went upstream as a stand-in: the database's error in its place
    reaches the client as tollgate's refusal, and its exchange ends refused."""
    machine = Machine()
    state = machine.state
    refusal = pg.error("42501", "tollgate: DROP is not for agents")
    state.pending.append(Pending(b"Q", machine.run("QUERY", "DROP TABLE staff"), refusal,
                                 cycle=state.cycle_end()))
    answers = machine.feed(pg.error("42601", 'syntax error at or near "tollgate"')
                           + pg.encode_ready(b"I"))
    assert [m.raw() for m in answers] == [refusal, pg.encode_ready(b"I")]
    [record] = machine.records
    assert record.outcome["tollgate.outcome"] == "refused"
    assert "error.type" not in record.outcome


def test_an_error_in_a_batch_ends_the_skipped_exchanges_at_its_sync() -> None:
    """Parse, Bind, Execute, Sync; the Bind fails: the database skips to the Sync. The
    Parse's exchange ended at its ParseComplete; the Bind's portal is forgotten; the
    Execute's exchange ends, not run, at the Sync's ReadyForQuery; the batch is failed
    until then."""
    machine = Machine()
    state, names = machine.state, machine.state.names
    parse = machine.run("PARSE", STAFF, MASKED)
    statement = prepared("q", names.upstream_name("q"), STAFF, parse)
    names.statements["q"] = statement
    portal = Portal("", "", statement, (), state.cycles)
    names.portals[""] = portal
    execute = machine.run("EXECUTE", STAFF, MASKED)
    state.pending += (Pending(b"P", parse, statement=statement), Pending(b"B", portal=portal),
                      Pending(b"E", execute), Pending(b"S", cycle=state.cycle_end()))
    error = pg.error("08P01", "bind message supplies 1 parameters, but prepared statement "
                     "requires 0")
    first = machine.feed(pg.encode(b"1", b"") + error)
    assert kinds(first) == [b"1", b"E"]
    assert pg.fields(first[1].body)["C"] == "08P01"
    assert state.batch_failed and "" not in names.portals and names.statements["q"] is statement
    assert [r.outcome["tollgate.outcome"] for r in machine.records] == ["prepared"]
    last = machine.feed(pg.encode_ready(b"I"))
    assert [m.raw() for m in last] == [pg.encode_ready(b"I")]
    assert not state.pending and not state.batch_failed
    parsed, executed = machine.records
    assert parsed.outcome["tollgate.outcome"] == "prepared"
    assert executed.outcome["tollgate.outcome"] == (
        "not run: an earlier message of its batch failed")
    assert executed.outcome["tollgate.postgres.rows"] == 0


def test_an_error_ends_a_batch_exchange_with_its_sqlstate() -> None:
    """An Execute's error ends its exchange at once (the rest of the batch is skipped),
    recording the SQLSTATE the database answered."""
    machine = Machine()
    state = machine.state
    state.pending += (Pending(b"E", machine.run("EXECUTE", "SELECT 1/0")),
                      Pending(b"S", cycle=state.cycle_end()))
    answers = machine.feed(pg.error("22012", "division by zero"))
    assert kinds(answers) == [b"E"]
    [record] = machine.records
    assert record.outcome["tollgate.outcome"] == "error 22012: division by zero"
    assert record.outcome["error.type"] == "22012"
    assert kinds(machine.feed(pg.encode_ready(b"I"))) == [b"Z"] and not state.pending


def test_a_result_that_cannot_be_masked_is_refused_midway() -> None:
    """Detectors to run over a column that comes in binary, of a type tollgate cannot
    read: the client gets the refusal in place of the result, and nothing more until
    the Ready."""
    machine = Machine()
    state = machine.state
    detecting = {"detectors": ("all",), "fields": ("ssn",)}
    state.pending.append(Pending(b"Q", machine.run("QUERY", STAFF, detecting),
                                 cycle=state.cycle_end()))
    # A type of the database's own (an enum, a domain's), in binary.
    binary = [c._replace(format=1, type_oid=16385) for c in COLUMNS]
    answers = machine.feed(pg.encode_row_description(binary)
                           + pg.encode_data_row([b"Ann", b"x", b"y"])
                           + pg.encode_command_complete("SELECT 1") + pg.encode_ready(b"I"))
    assert kinds(answers) == [b"E", b"Z"]
    error = pg.fields(answers[0].body)
    assert error["C"] == "42501" and error["M"].startswith("tollgate: ")
    assert not state.swallowing
    [record] = machine.records
    assert record.outcome["tollgate.outcome"] == "refused"
    assert record.outcome["tollgate.refusal"] == "unmaskable_result"


def test_an_answer_nobody_asked_for_ends_the_session() -> None:
    with pytest.raises(Fatal, match="the database answered a message nobody sent"):
        Machine().answers.feed(pg.encode_command_complete("SELECT 1"))


def test_the_databases_last_word_is_the_clients_last_answer() -> None:
    """A FATAL error (pg_terminate_backend) is kept, not relayed as it comes: it is what
    the client gets when the database closes, and what the session's record says."""
    machine = Machine()
    state = machine.state
    run = machine.run("QUERY", "SELECT pg_sleep(10)")
    state.pending.append(Pending(b"Q", run, cycle=state.cycle_end()))
    fatal = pg.error("57P01", "terminating connection due to administrator command",
                     severity="FATAL")
    assert machine.feed(fatal) == []
    last = pg.fields(machine.answers.closed()[5:])
    assert (last["S"], last["C"]) == ("FATAL", "57P01")
    assert state.ended == ("the database ended the session: FATAL 57P01: terminating "
                           "connection due to administrator command")
    assert run.exchange.outcome["error.type"] == "57P01"
    [end] = machine.records
    assert end.headers[":method"] == "END"
    assert end.outcome["tollgate.outcome"] == state.ended


def test_a_close_without_a_word_gets_tollgates_own() -> None:
    machine = Machine()
    last = pg.fields(machine.answers.closed()[5:])
    assert (last["S"], last["C"]) == ("FATAL", "08006")
    assert machine.state.ended == "the database closed the connection"


async def test_the_fronts_own_questions_are_answered_to_it_alone() -> None:
    """A probe's answers (the planner's, say) go to it, never to the client; a
    notification that comes meanwhile is the client's."""
    machine = Machine()
    state = machine.state
    probe = Probe(1)
    state.pending += (Pending(b"Q", probe=probe),
                      Pending(b"Q", machine.run("QUERY", "SELECT 1"), cycle=state.cycle_end()))
    one = [pg.Column("?column?", 0, 0, INT4, 4, -1, 0)]
    plan = pg.encode_row_description([pg.Column("QUERY PLAN", 0, 0, TEXT, -1, -1, 0)])
    planned = (pg.encode_data_row([b"[]"]) + pg.encode_command_complete("EXPLAIN")
               + pg.encode_ready(b"I"))
    notification = pg.encode_notification(pg.Notification(7, "jobs", "done"))
    client = (pg.encode_row_description(one) + pg.encode_data_row([b"1"])
              + pg.encode_command_complete("SELECT 1") + pg.encode_ready(b"I"))
    answers = machine.feed(plan + notification + planned + client)
    assert probe.done.done()
    assert kinds(probe.done.result()) == [b"T", b"D", b"C", b"Z"]
    assert kinds(answers) == [b"A", b"T", b"D", b"C", b"Z"]
    assert rows(answers) == [[b"1"]] and not state.pending


async def test_a_transaction_that_locked_rows_is_bounded_after_its_cycle() -> None:
    """A statement that may lock rows left its transaction open: once its cycle ends, the
    answers send the front's SET LOCAL upstream (`sent`), a probe of their own."""
    machine = Machine()
    state = machine.state
    state.lock_idle_ms, state.locked = 1500, True
    state.pending.append(Pending(b"Q", machine.run("QUERY", "SELECT 1 FOR UPDATE"),
                                 cycle=state.cycle_end()))
    answers = machine.feed(pg.encode_command_complete("SELECT 0") + pg.encode_ready(b"T"))
    assert kinds(answers) == [b"C", b"Z"]
    [sent] = pg.Framer(pg.FRONTEND_KINDS, MAX_MESSAGE).feed(machine.answers.sent())
    assert sent.kind == b"Q" and "1500" in pg.query(sent.body)
    assert machine.answers.sent() == b""
    assert state.bounded and [p.probe is not None for p in state.pending] == [True]
    assert machine.feed(pg.encode_command_complete("SET") + pg.encode_ready(b"T")) == []
    assert not state.pending
