"""The pack's `decides_responses`: a response is not decided where the pack says it cannot
change the decision, so the hint must be true wherever a response could.

The guard: every request of the decision corpus, on every target the pack does not decide
responses for, is decided again at the response phase with answers chosen to tempt a rule
(a failure status, SQL, a secret, a tool call's shape): the decision must not move.
"""

from __future__ import annotations

import json

import pytest

from extproc.config import Target
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.input import InputEncoder
from extproc.policy.sources import read_modules
from tests.policy_corpus import Case, load, policy_input, target_of
from tests.support.gateway import POLICIES

ENGINE = EmbeddedEngine(read_modules(POLICIES), "data.tollgate.decision")

ANSWERS = [
    {"status": 200, "headers": {"content-type": "application/json"},
     "body_json": {"sql": "DROP TABLE t", "tool_calls": [{"function": {"name": "x"}}]}},
    {"status": 500, "headers": {"content-type": "text/plain"}, "body": "rm -rf / AKIA0123"},
    {"status": 403, "headers": {"content-type": "text/event-stream"},
     "body": 'data: {"choices": []}\n\n'},
]


def hint(target: Target) -> bool:
    return ENGINE.decides_responses(InputEncoder(target).target_json)


def test_the_pack_decides_model_answers_only() -> None:
    spec = {"target": {"protocol": "llm", "name": "m"}}
    assert hint(target_of(spec))
    for protocol in ("sql-http", "http", "k8s", "mcp"):
        assert not hint(target_of({"target": {"protocol": protocol}}))


def test_a_pack_without_the_rule_decides_every_response() -> None:
    engine = EmbeddedEngine([("p.rego", "package tollgate\ndecision := {}\n")],
                            "data.tollgate.decision")
    assert engine.decides_responses(InputEncoder(target_of({})).target_json)


def test_a_rule_that_is_not_false_decides_every_response() -> None:
    engine = EmbeddedEngine([("p.rego", 'package tollgate\ndecision := {}\n'
                                        'decides_responses := "no"\n')],
                            "data.tollgate.decision")
    assert engine.decides_responses(InputEncoder(target_of({})).target_json)


UNDECIDED = [c for c in load() if "http" in c.spec and not hint(target_of(c.spec))]


@pytest.mark.slow
@pytest.mark.parametrize("case", UNDECIDED, ids=[c.name for c in UNDECIDED])
def test_no_response_moves_a_decision_the_pack_does_not_take_again(case: Case) -> None:
    request = {k: v for k, v in case.spec.items() if k not in ("phase", "response_http")}
    before = ENGINE.decide_now(policy_input(request))
    for answer in ANSWERS:
        after = ENGINE.decide_now(policy_input({**request, "phase": "response",
                                                "response_http": answer}))
        assert after == before, json.dumps(answer)
