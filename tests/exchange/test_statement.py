"""The steps both database fronts take with a statement's exchange
(extproc/exchange/statement.py): rows masked and counted, kept in the record's sample
within its limit, one record at the end; a refusal's notes. The real pipeline and
embedded engine, the stores as tests/support/fakes.py's in-memory ones."""

from __future__ import annotations

from collections import Counter

from extproc.exchange.state import Answer
from extproc.exchange.statement import Statement, refusal_notes
from tests.exchange.test_act import ALLOW, opened, pipeline
from tests.support.fakes import MemoryRecorder


def statement(recorder: MemoryRecorder) -> Statement:
    act = opened(pipeline(ALLOW, recorder))
    act.admit("route 'demo'")
    return Statement(act)


def test_rows_are_masked_by_the_given_mask_and_what_it_masked_is_counted() -> None:
    run = statement(MemoryRecorder())
    rows = run.masked(lambda: ([["[REDACTED:EMAIL_ADDRESS]"]], Counter(EMAIL_ADDRESS=1)))
    assert rows == [["[REDACTED:EMAIL_ADDRESS]"]]
    assert run.exchange.evidence.masked == Counter(EMAIL_ADDRESS=1)
    assert run.exchange.outcome["tollgate.masked.EMAIL_ADDRESS"] == 1


def test_the_sample_stops_growing_at_the_records_limit() -> None:
    run = statement(MemoryRecorder())
    run.exchange.record_limit = 10
    asked: list[int] = []

    def sample(limit: int) -> bytes:
        asked.append(limit)
        return b"x" * 8

    for _ in range(3):
        run.kept(sample)
    assert bytes(run.sample) == b"x" * 8 + b"\n" + b"x" * 8  # full after the second
    assert asked == [10, 10]


def test_the_statement_ends_in_one_record_naming_its_outcome_and_rows() -> None:
    recorder = MemoryRecorder()
    run = statement(recorder)
    run.rows = 2
    run.kept(lambda _limit: b'{"id": 1}')
    run.answered("postgres", "SELECT 2", ("command", ["SELECT 2"]))
    [evidence] = recorder.submitted
    assert evidence.outcome["tollgate.outcome"] == "SELECT 2"
    assert evidence.outcome["tollgate.postgres.rows"] == 2
    assert evidence.response is not None
    assert evidence.response["headers"] == {"command": "SELECT 2", "rows": "2"}
    assert evidence.response_body is not None and evidence.response_body.head == b'{"id": 1}'


def test_a_refusals_notes_name_rules_approval_and_trace() -> None:
    answer = Answer(403, {"rules": ["db.no_drop"], "approval_id": "a1", "status": "denied"},
                    "denied", "4bf92f3577b34da6a3ce929d0e0e4736")
    notes = refusal_notes(answer)
    assert notes[0].startswith("approval a1 (denied)")
    assert notes[1:] == ["rules: db.no_drop", "trace id 4bf92f3577b34da6a3ce929d0e0e4736"]
    assert refusal_notes(Answer(403, {}, "denied", "t1")) == ["trace id t1"]
