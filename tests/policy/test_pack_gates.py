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

import json
import re
from typing import Any

import pytest
import regorus
from hypothesis import HealthCheck, given, settings

from extproc.policy.sources import read_modules
from tests.support.corpus_inputs import inputs, mutated
from tests.support.packs import GATE, GATED_RULE, POLICIES, SETS, decision_program, ungated

pytestmark = pytest.mark.slow


def gated_files(modules: list[tuple[str, str]]) -> set[str]:
    return {path.rsplit("/", 1)[-1] for path, source in modules if GATE.search(source)}


def decide(vm: regorus.Rvm, value: Any) -> str:
    try:
        vm.set_input_json(json.dumps(value))
        return str(vm.execute())
    except RuntimeError as exc:
        return f"policy error: {exc}"


MODULES = read_modules(POLICIES)


@pytest.fixture(scope="module")
def packs() -> tuple[regorus.Rvm, regorus.Rvm]:
    return decision_program(MODULES), decision_program(ungated(MODULES))


def test_the_gates_cover_the_protocol_files_and_undo_cleanly() -> None:
    assert gated_files(MODULES) == {"k8s.rego", "ssh.rego", "mcp.rego", "llm.rego",
                                    "egress.rego", "sql.rego", "blast.rego", "lineage.rego",
                                    "postgres.rego", "state.rego", "activity.rego"}
    for path, source in ungated(MODULES):
        assert "_exchange\n\tsome x in" not in source, path
    # Every rule the gates hid adds to the sets again once they are undone.
    rules = [(p, s) for p, s in MODULES if not p.endswith("_test.rego")]
    plain = re.compile(rf"^({'|'.join(SETS)}) contains", re.MULTILINE)
    hidden = sum(len(GATED_RULE.findall(s)) for _, s in rules)
    # (A gate of the live part, `live_holds contains x if ...`, adds to no plain set.)
    gates = sum(1 for _, s in rules for gate in GATE.finditer(s) if not gate.group(1))
    assert hidden > 50
    assert sum(len(plain.findall(s)) for _, s in ungated(rules)) == (
        sum(len(plain.findall(s)) for _, s in rules) - gates + hidden)


def test_every_corpus_input_is_decided_alike(packs: tuple[regorus.Rvm, regorus.Rvm]) -> None:
    gated, plain = packs
    differing = [i for i in inputs() if decide(gated, i) != decide(plain, i)]
    assert differing == []


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=mutated())
def test_mutated_inputs_are_decided_alike(packs: tuple[regorus.Rvm, regorus.Rvm],
                                          value: Any) -> None:
    gated, plain = packs
    assert decide(gated, value) == decide(plain, value)
