"""The one decided act every front drives (extproc/exchange/act.py), on its own: the real
pipeline and embedded engine, the stores as the in-memory fakes of tests/support/fakes.py."""

from __future__ import annotations

from typing import Any

import pytest

from extproc import config
from extproc.codecs.refusal import Refusal, Refused
from extproc.exchange.act import Act, Opener
from extproc.exchange.pipeline import Pipeline
from extproc.masking import Masker
from extproc.masking.record_mask import RECORD_MASK
from extproc.policy.embedded import EmbeddedEngine
from extproc.telemetry import Telemetry
from tests.support.fakes import MemoryHolds, MemoryRecorder, StaticCredentials, approval

ALLOW = 'package tollgate\ndecision := {"action": "allow", "rules": ["t.allow"]}'
DENY = ('package tollgate\n'
        'decision := {"action": "deny", "rules": ["t.no"], "reasons": ["not this"]}')
HOLD = ('package tollgate\n'
        'decision := {"action": "hold", "approvers": ["group:dba"], "rules": ["t.hold"], '
        '"reasons": ["ask a dba"]}')
AGENT = {"sub": "agent", "groups": ["agents"]}


def pipeline(policy: str, recorder: MemoryRecorder, holds: MemoryHolds | None = None,
             **target: Any) -> Pipeline:
    cfg = config.parse({"targets": [{"name": "demo", "match": {"route": "demo"}, **target}]})
    return Pipeline(cfg, EmbeddedEngine([("p.rego", policy)], "data.tollgate.decision"),
                    Telemetry(cfg.telemetry), StaticCredentials(), Masker(b"k" * 32),
                    recorder, holds or MemoryHolds())


def opened(pipe: Pipeline, claims: dict[str, Any] | None = AGENT) -> Act:
    act = pipe.act("tollgate GET demo", {":method": "GET", ":path": "/rows"}, {},
                   pipe.target_for("demo", None), claims)
    act.exchange.request = {"method": "GET", "path": "/rows", "query": {}, "headers": {},
                            "body": None}
    return act


async def test_an_allowed_act_goes_on_and_ends_with_one_record() -> None:
    recorder = MemoryRecorder()
    act = opened(pipeline(ALLOW, recorder, record="strict"))
    act.admit("route 'demo'")
    await act.read(0)
    assert await act.judge() is None
    assert [e.trace_id for e in recorder.committed] == [act.trace_id]  # strict: first
    act.answered({"rows": "2"}, b'{"id": 1}\n')
    assert recorder.submitted == [act.exchange.evidence]
    evidence = recorder.submitted[0]
    assert evidence.response == {"status": 0, "headers": {"rows": "2"}, "body": None}
    assert evidence.response_type == "application/x-ndjson"
    assert evidence.upstream_ms is not None and evidence.upstream_ms >= 0


async def test_a_refused_act_answers_with_the_decisions_reasons() -> None:
    recorder = MemoryRecorder()
    act = opened(pipeline(DENY, recorder))
    act.admit("route 'demo'")
    answer = await act.judge()
    assert answer is not None
    assert (answer.status, answer.body["reasons"], answer.body["rules"]) == (
        403, ["not this"], ["t.no"])
    act.end()
    assert recorder.submitted[0].decisions[0].action == "deny"


async def test_a_held_act_tells_its_front_how_long_then_goes_on_approved() -> None:
    waits: list[int] = []
    holds = MemoryHolds(settled=approval("approved"))
    act = opened(pipeline(HOLD, MemoryRecorder(), holds))
    act.admit("route 'demo'")
    assert await act.judge(waits.append) is None
    assert waits == [300] and len(holds.asked) == 1
    assert act.exchange.decision.action == "allow"


async def test_a_held_act_denied_is_raised_as_the_approvals_refusal() -> None:
    act = opened(pipeline(HOLD, MemoryRecorder(), MemoryHolds(settled=approval("denied"))))
    act.admit("route 'demo'")
    with pytest.raises(Refusal) as refused:
        await act.judge()
    assert refused.value.error == "approval_denied"
    assert act.refusal(refused.value).status == 403


def test_what_the_record_cannot_take_does_not_happen_unless_not_required() -> None:
    recorder = MemoryRecorder(full=True)
    act = opened(pipeline(ALLOW, recorder))
    with pytest.raises(Refusal) as refused:
        act.admit()
    assert (refused.value.status, refused.value.error) == (503, "recording_unavailable")
    unrecorded = opened(pipeline(ALLOW, recorder))
    unrecorded.admit(required=False)
    unrecorded.end()
    assert recorder.submitted == []


def test_a_refusal_before_any_decision_is_recorded_with_its_reason() -> None:
    recorder = MemoryRecorder()
    act = opened(pipeline(ALLOW, recorder))
    answer = act.refuse(Refused(400, "protocol_violation", "a truncated message"))
    assert (answer.status, answer.error) == (400, "protocol_violation")
    assert recorder.submitted == [act.exchange.evidence]
    assert act.exchange.outcome["tollgate.outcome"] == "a truncated message"


def test_an_act_without_an_identity_is_refused_at_its_check() -> None:
    act = opened(pipeline(ALLOW, MemoryRecorder()), claims=None)
    with pytest.raises(Refusal) as refused:
        act.admit("route 'demo'")
    assert (refused.value.status, refused.value.error) == (401, "unauthenticated")


def test_an_error_of_tollgates_own_is_a_refusal_that_names_no_detail() -> None:
    act = opened(pipeline(ALLOW, MemoryRecorder()))
    answer = act.refusal(KeyError("a bug"), "statement")
    assert (answer.status, answer.error) == (500, "internal_error")
    assert answer.body["message"] == "tollgate could not process this statement"


async def test_a_sessions_acts_share_its_target_identity_and_session_id() -> None:
    recorder = MemoryRecorder()
    pipe = pipeline(ALLOW, recorder)
    opener = Opener(pipe, "postgres", pipe.target_for("demo", None), AGENT, "s-1", "/shop",
                    {"user-agent": "psql"}, {"db.namespace": "shop"})
    first, second = opener("QUERY", {"message": "query"}), opener("PARSE")
    for act in (first, second):
        assert act.exchange.evidence.headers["x-session-id"] == "s-1"
        assert act.exchange.response_mode == "body"
        assert act.exchange.who == "agent"
    assert first.exchange.context == {"message": "query"}
    assert first.exchange.evidence.headers[":method"] == "QUERY"
    assert first.trace_id != second.trace_id


def test_masking_through_the_act_counts_what_it_masked() -> None:
    act = opened(pipeline(ALLOW, MemoryRecorder()))
    assert act.mask_text("card 4111 1111 1111 1111") == "card 4111 1111 1111 1111"  # no mask
    masked = act.mask_text("card 4111 1111 1111 1111", RECORD_MASK)
    assert "4111 1111 1111 1111" not in masked
    assert act.exchange.outcome["tollgate.masked_values"] == 1
    assert act.mask_text("card 4111 1111 1111 1111", RECORD_MASK, body=None) == masked
    assert act.exchange.outcome["tollgate.masked_values"] == 1  # not counted again
