"""The default pack's protocol gates change no decision.

Each file of rules for one kind of exchange (k8s.rego, ssh.rego, mcp.rego, llm.rego,
egress.rego, sql.rego with blast.rego and lineage.rego, postgres.rego) adds to `denials`,
`holds` and `alerts` through one gate (`k8s_exchange`, ...), so that an exchange of
another protocol does not pay for evaluating its rules one by one (docs/policies.md, "The
default pack"). A gate that is too narrow would silently drop a denial. These tests undo
the gates textually and compare the two packs' decisions on the corpus's inputs, and on
those inputs mutated the way a gate could be wrong: another protocol named, a reading
missing, null or taken from another case.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import regorus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.policy.sources import read_modules
from tests import policy_corpus
from tests.support.packs import GATE, GATED_RULE, POLICIES, SETS, decision_program, ungated

pytestmark = pytest.mark.slow

SECTIONS = ("k8s", "llm", "mcp", "egress", "ssh", "sql", "postgres")
PROTOCOLS = ("http", "sql-http", "k8s", "llm", "mcp", "postgres", "egress", "ssh", None)


def gated_files(modules: list[tuple[str, str]]) -> set[str]:
    return {path.rsplit("/", 1)[-1] for path, source in modules if GATE.search(source)}


def decide(vm: regorus.Rvm, value: Any) -> str:
    try:
        vm.set_input_json(json.dumps(value))
        return str(vm.execute())
    except RuntimeError as exc:
        return f"policy error: {exc}"


MODULES = read_modules(POLICIES)
INPUTS = [json.loads(case.input_json) for case in policy_corpus.load()
          if len(case.input_json) < 100_000]
READINGS = {key: [i[key] for i in INPUTS if isinstance(i, dict) and i.get(key) is not None]
            for key in SECTIONS}


@pytest.fixture(scope="module")
def packs() -> tuple[regorus.Rvm, regorus.Rvm]:
    return decision_program(MODULES), decision_program(ungated(MODULES))


def test_the_gates_cover_the_protocol_files_and_undo_cleanly() -> None:
    assert gated_files(MODULES) == {"k8s.rego", "ssh.rego", "mcp.rego", "llm.rego",
                                    "egress.rego", "sql.rego", "blast.rego", "lineage.rego",
                                    "postgres.rego", "state.rego"}
    for path, source in ungated(MODULES):
        assert "_exchange\n\tsome x in" not in source, path
    # Every rule the gates hid adds to the sets again once they are undone.
    rules = [(p, s) for p, s in MODULES if not p.endswith("_test.rego")]
    plain = re.compile(rf"^({'|'.join(SETS)}) contains", re.MULTILINE)
    hidden = sum(len(GATED_RULE.findall(s)) for _, s in rules)
    gates = sum(len(GATE.findall(s)) for _, s in rules)
    assert hidden > 50
    assert sum(len(plain.findall(s)) for _, s in ungated(rules)) == (
        sum(len(plain.findall(s)) for _, s in rules) - gates + hidden)


def test_every_corpus_input_is_decided_alike(packs: tuple[regorus.Rvm, regorus.Rvm]) -> None:
    gated, plain = packs
    differing = [i for i in INPUTS if decide(gated, i) != decide(plain, i)]
    assert differing == []


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    value = copy.deepcopy(draw(st.sampled_from(INPUTS)))
    if not isinstance(value, dict):
        return value
    for _ in range(draw(st.integers(1, 3))):
        move = draw(st.sampled_from(("protocol", "drop", "null", "swap")))
        if move == "protocol" and isinstance(value.get("target"), dict):
            value["target"]["protocol"] = draw(st.sampled_from(PROTOCOLS))
            continue
        key = draw(st.sampled_from(SECTIONS))
        if move == "drop":
            value.pop(key, None)
        elif move == "null":
            value[key] = None
        elif READINGS[key]:
            value[key] = copy.deepcopy(draw(st.sampled_from(READINGS[key])))
    return value


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=mutated())
def test_mutated_inputs_are_decided_alike(packs: tuple[regorus.Rvm, regorus.Rvm],
                                          value: Any) -> None:
    gated, plain = packs
    assert decide(gated, value) == decide(plain, value)
