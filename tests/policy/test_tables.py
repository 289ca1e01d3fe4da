"""A pack's tables (extproc/policy/declared.py): rules that read no input, built once per
revision and given back as data. That the default pack decides alike with them and
without (OPA and regorus's interpreter build them themselves) is the corpus's parity
(tests/policy/test_opa_parity.py); here, the mechanism."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import regorus

from extproc.policy import PolicyLoadError
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules
from tests import policy_corpus
from tests.support.packs import POLICIES

QUERY = "data.tollgate.decision"
CREDENTIAL_TABLES = ("credential_any", "credential_files_text", "credential_folders_text",
                     "credential_gate", "credential_instances", "credential_patterns",
                     "credential_text_words")
PACK = """package tollgate
import rego.v1
tables contains "greeting"
greeting := data.tollgate_tables.greeting if {
	data.tollgate_tables.greeting
} else := concat(" ", ["built", "here"])
decision := {"action": "deny", "reasons": [greeting]}
"""


def test_the_default_pack_builds_its_credential_tables_at_load() -> None:
    engine = EmbeddedEngine(read_modules(POLICIES), QUERY)
    assert engine.tables == CREDENTIAL_TABLES


def test_a_table_is_read_from_data_once_built() -> None:
    """The value the program reads is the one built at load: a table whose value the
    data gives differs from what the rule would build, and the decision shows the data's."""
    engine = EmbeddedEngine([("p.rego", PACK)], QUERY)
    assert engine.tables == ("greeting",)
    assert engine.decide_now("{}").reasons == ("built here",)
    engine._vm.set_data_json('{"tollgate_tables": {"greeting": "from data"}}')
    assert engine.decide_now("{}").reasons == ("from data",)


def test_a_table_that_reads_the_input_is_refused_at_load() -> None:
    reading = PACK.replace('concat(" ", ["built", "here"])', "input.name")
    with pytest.raises(PolicyLoadError, match=re.escape(
            "data.tollgate.tables names greeting, which has no value without an input")):
        EmbeddedEngine([("p.rego", reading)], QUERY)
    with pytest.raises(PolicyLoadError, match="must name rules"):
        EmbeddedEngine([("p.rego", PACK.replace('tables contains "greeting"',
                                                "tables := [1]"))], QUERY)


@pytest.mark.timing
def test_built_tables_make_credential_decisions_cheaper() -> None:
    """What the tables are for: the cached part of a command naming a credential file
    (`cat ~/.aws/credentials` in a tool call) no longer builds them: ~140 µs less here of
    ~400 (min of 20 runs each, the same input)."""
    case = next(c for c in policy_corpus.load()
                if c.name == "credentials-tool-call-cat-aws-is-refused")
    modules = read_modules(POLICIES)
    plain = [(p, re.sub(r"^tables contains", "unused_tables contains", s, flags=re.M))
             for p, s in modules]
    costs = []
    for engine in (EmbeddedEngine(modules, QUERY), EmbeddedEngine(plain, QUERY)):
        runs = []
        for _ in range(20):
            start = time.perf_counter()
            engine.answer("data.tollgate.cached", case.input_json)
            runs.append(time.perf_counter() - start)
        costs.append(min(runs))
    assert costs[1] - costs[0] > 50e-6, costs


@pytest.mark.parametrize(("shipped", "pinned"), [
    ("data.tollgate.limits", "data.tollgate_activity_test.pinned_limits"),
    ("data.tollgate.egress", "data.tollgate_egress_test.pinned_lists"),
])
def test_the_pack_tests_pin_the_data_it_ships(shipped: str, pinned: str) -> None:
    """The pack's own tests pin the data tables an operator edits (limits, egress lists)
    in every decision they take, so an edit changes what the pack does, not whether its
    tests (tollgate's smoke set) pass; what they pin is what ships, so they test it."""
    engine = regorus.Engine()
    for path in sorted(POLICIES.glob("*.rego")):
        engine.add_policy(str(path), path.read_text())
    assert engine.eval_rule(shipped) == engine.eval_rule(pinned)


@pytest.mark.parametrize(("given", "kept"), [(None, "0"), ("1", "1")])
def test_engines_capture_no_rust_backtrace_unless_asked(given: str | None, kept: str) -> None:
    """Where RUST_BACKTRACE is set, each regorus error would capture a backtrace (~40 ms:
    a pack without a split or tables meets three at every load). Importing the policy
    package turns that off, leaving an operator's own RUST_LIB_BACKTRACE alone."""
    env = {k: v for k, v in os.environ.items() if k != "RUST_LIB_BACKTRACE"}
    env["RUST_BACKTRACE"] = "1"
    if given is not None:
        env["RUST_LIB_BACKTRACE"] = given
    probe = ("import os, regorus, extproc.policy\n"
             "e = regorus.Engine(); e.add_policy('p.rego', 'package p\\nx := 1')\n"
             "try: e.eval_rule('data.p.nope')\n"
             "except RuntimeError as exc: print(os.environ['RUST_LIB_BACKTRACE'],"
             " 'Stack backtrace' in str(exc))\n")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == [kept, str(kept == "1")]
