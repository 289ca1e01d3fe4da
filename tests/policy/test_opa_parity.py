"""Parity of the embedded engine (regorus) with real OPA on the policy pack.

docs/architecture.md promises that both backends give the same decisions on the same policies.
OPA here is the real Go engine in process (`opa_bindings`: no OPA binary can be
installed on this machine). Three things are checked:

- every Rego unit test in policies/ passes on regorus and on OPA;
- every case of the decision corpus (tests/policy_corpus/) gets the decision the
  contract owes it on regorus's RVM (what tollgate runs), on OPA, and on regorus's
  tree-walking interpreter (what runs the Rego unit tests) — policy errors included.
  Where an engine is known to answer otherwise, the case records that engine's answer
  and why (`divergence`), so the difference stays visible and pinned;
- the comparison is live: small policies on which the engines are known to differ are
  reported as different.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import opa_bindings
import pytest
import regorus

from extproc.policy import Decision, PolicyError, PolicyLoadError, rego_tests
from extproc.policy.decision import MalformedDecision
from extproc.policy.declared import TABLES, declared
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules, rego_files
from extproc.policy.split import combine
from tests import policy_corpus
from tests.support.packs import pack_rego_tests

pytestmark = pytest.mark.slow  # the pack's tests and the whole corpus, on three engines

POLICIES = Path(__file__).resolve().parents[2] / "policies"
QUERY = "data.tollgate.decision"
CASES = policy_corpus.load()
PACK_TESTS = pack_rego_tests()

# -- one outcome per engine, in one comparable shape -----------------------------------


@dataclass(frozen=True)
class Outcome:
    """A decision as JSON (every field, defaults filled), or "policy_error"/"load_error"."""

    value: Any
    detail: str = ""  # why it is an error, for the failure message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and self.value == other.value

    def __hash__(self) -> int:
        return hash(json.dumps(self.value, sort_keys=True))

    def __repr__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{json.dumps(self.value, ensure_ascii=False)}{detail}"


def decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "action": decision.action, "reasons": list(decision.reasons),
        "rules": list(decision.rules), "status": decision.status,
        "mask": {k: list(v) for k, v in decision.mask.items()},
        "approvers": list(decision.approvers), "hold_seconds": decision.hold_seconds,
        "alerts": [dataclasses.asdict(a) for a in decision.alerts],
        "moderated": decision.moderated, "inspect": decision.inspect,
    }


def expected(outcome: Any) -> Outcome:
    """The corpus's expected outcome, in the shape the engines' outcomes take."""
    if isinstance(outcome, str):
        return Outcome(outcome)
    return Outcome(decision_json(Decision.parse(outcome)))


def _parsed(value: Any) -> Outcome:
    try:
        return Outcome(decision_json(Decision.parse(value)))
    except MalformedDecision as exc:
        return Outcome("policy_error", f"malformed decision: {exc}")


def rvm_outcome(engine: EmbeddedEngine, input_json: str) -> Outcome:
    """What tollgate's embedded backend decides (regorus RVM)."""
    try:
        return Outcome(decision_json(engine.decide_now(input_json)))
    except PolicyError as exc:
        return Outcome("policy_error", str(exc))


def opa_outcome(engine: opa_bindings.OpaEngine, input_json: str, query: str = QUERY) -> Outcome:
    """What OPA decides on the same input: a value that must parse as a Decision."""
    try:
        value = engine.eval_document(query.removeprefix("data."), input=json.loads(input_json))
    except opa_bindings.OpaUndefinedError:
        return Outcome("policy_error", f"{query} is undefined")
    except opa_bindings.OpaError as exc:
        return Outcome("policy_error", f"{exc.code}: {exc.message}")
    return _parsed(value)


def interpreter_outcome(engine: regorus.Engine, input_json: str, query: str = QUERY) -> Outcome:
    """What regorus's tree-walking interpreter (the Rego unit tests' engine) decides."""
    try:
        engine.set_input_json(input_json)
        value = engine.eval_rule(query)
    except RuntimeError as exc:
        return Outcome("policy_error", str(exc).split("\n\nStack backtrace:")[0].strip())
    if value is None:
        return Outcome("policy_error", f"{query} is undefined")
    return _parsed(value)


def opa_engine(modules: list[tuple[str, str]]) -> opa_bindings.OpaEngine:
    engine = opa_bindings.OpaEngine()
    for name, source in modules:
        engine.add_policy(name, source)
    return engine


def interpreter(modules: list[tuple[str, str]]) -> regorus.Engine:
    engine = regorus.Engine()
    engine.set_rego_v0(False)
    for name, source in modules:
        engine.add_policy(name, source)
    return engine


class Engines:
    """The three engines on the pack, one set per pack tables a case decides with
    (`egress_lists`, `approvals_needed_by_rule`: tests/policy_corpus/README.md)."""

    def __init__(self) -> None:
        self._modules = read_modules(POLICIES)
        self._sets: dict[str, dict[str, Any]] = {}

    def of(self, tables: dict[str, Any]) -> dict[str, Any]:
        key = json.dumps(tables, sort_keys=True)
        if key not in self._sets:
            modules = policy_corpus.with_tables(self._modules, tables)
            self._sets[key] = {
                "rvm": EmbeddedEngine(modules, QUERY),
                "opa": opa_engine(modules),
                "interpreter": interpreter(modules),
            }
        return self._sets[key]


@pytest.fixture(scope="module")
def engines() -> Engines:
    return Engines()


def outcomes(engines: dict[str, Any], input_json: str) -> dict[str, Outcome]:
    return {
        "rvm": rvm_outcome(engines["rvm"], input_json),
        "opa": opa_outcome(engines["opa"], input_json),
        "interpreter": interpreter_outcome(engines["interpreter"], input_json),
    }


# -- the Rego unit tests, on both engines ----------------------------------------------


@pytest.fixture(scope="module")
def regorus_results() -> dict[str, rego_tests.RegoTestResult]:
    return {r.test.rule: r for r in rego_tests.run(POLICIES)}


@pytest.fixture(scope="module")
def opa_test_values() -> dict[str, Any]:
    """Each Rego unit test's value on OPA: a package's tests in one query (each query
    costs OPA a compilation: one per test took a minute), or, where the package's query
    errs, each test alone, so the error is its own test's."""
    engine = opa_engine([(str(p), p.read_text(encoding="utf-8")) for p in rego_files(POLICIES)])
    packages: dict[str, list[str]] = {}
    for test in PACK_TESTS:
        packages.setdefault(test.rule.rsplit(".", 1)[0], []).append(test.rule)
    values: dict[str, Any] = {}
    for package, rules in packages.items():
        try:
            document = engine.eval_document(package.removeprefix("data."))
        except opa_bindings.OpaError:
            values.update({rule: _opa_test_value(engine, rule) for rule in rules})
            continue
        values.update({rule: document.get(rule.rsplit(".", 1)[1], "undefined")
                       for rule in rules})
    return values


def _opa_test_value(engine: opa_bindings.OpaEngine, rule: str) -> Any:
    try:
        return engine.eval_document(rule.removeprefix("data."))
    except opa_bindings.OpaUndefinedError:
        return "undefined"
    except opa_bindings.OpaError as exc:
        return f"error: {exc.message}"


@pytest.mark.parametrize("rule", [t.rule for t in PACK_TESTS])
def test_rego_unit_test_passes_on_both_engines(
    rule: str, regorus_results: dict[str, rego_tests.RegoTestResult],
    opa_test_values: dict[str, Any],
) -> None:
    on_regorus = regorus_results[rule]
    assert on_regorus.passed, f"regorus: {rule}: {on_regorus.detail}"
    value = opa_test_values[rule]
    assert value is True, f"OPA: {rule}: {value}"


def test_regorus_finds_every_test_that_opa_parses() -> None:
    """A test the regorus runner misses would run on no engine at all."""
    found = set()
    with opa_bindings.OpaEngine() as engine:
        for path in rego_files(POLICIES):
            if not path.name.endswith("_test.rego"):
                continue
            ast = engine.eval_query(
                "ast := rego.parse_module(input.file, input.source)",
                input={"file": str(path), "source": path.read_text(encoding="utf-8")},
            )[0]["ast"]
            package = ".".join(t["value"] for t in ast["package"]["path"])
            found |= {
                f"{package}.{rule['head']['name']}" for rule in ast["rules"]
                if rule["head"].get("name", "").startswith("test_")
            }
    assert found == {t.rule for t in PACK_TESTS}


# -- the decision corpus ---------------------------------------------------------------


def test_corpus_is_large_and_well_formed() -> None:
    assert len(CASES) >= 100
    for case in CASES:
        assert case.known_gap is None or case.known_gap.strip(), case.name
        if case.divergence:
            assert str(case.divergence.get("why", "")).strip(), f"{case.name}: divergence why"
            for engine in ("opa", "interpreter"):
                if engine in case.divergence:
                    # A divergence equal to the expected outcome would hide nothing.
                    assert case.divergence[engine] != case.expected, case.name


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case(case: policy_corpus.Case, engines: Engines) -> None:
    got = outcomes(engines.of(case.tables), case.input_json)
    owed = {engine: expected(case.expected_on(engine)) for engine in got}
    wrong = {e: f"got {got[e]!r}, owed {owed[e]!r}" for e in got if got[e] != owed[e]}
    assert not wrong, f"{case.file}: {case.name}: {wrong}"


def test_corpus_covers_every_rule_of_the_pack(engines: Engines) -> None:
    """OPA's coverage over the corpus: every rule of tollgate.rego produced a value.

    OPA marks a rule's head covered only when the rule produced a value, and each
    expression of a body when it was evaluated. The cases of one set of pack tables are
    asked in one query (`with input as` each), which covers what asking them one by one
    does, in an eighth of the time: each query costs OPA a compilation.
    """
    covered: set[tuple[Any, ...]] = set()
    missed: set[tuple[Any, ...]] = set()
    groups: dict[str, tuple[dict[str, Any] | None, list[Any]]] = {}
    for case in CASES:
        if len(case.input_json) > 65536:
            continue  # the big cases repeat what small ones cover, and coverage is slow
        key = json.dumps(case.tables, sort_keys=True)
        groups.setdefault(key, (case.tables, []))[1].append(json.loads(case.input_json))
    for tables, values in groups.values():
        engine: opa_bindings.OpaEngine = engines.of(tables)["opa"]
        # The decision, and the pack's word on whether it decides the target's responses
        # (asked with the target alone, as tollgate asks it).
        targets = [{"target": v["target"]} for v in values
                   if isinstance(v, dict) and isinstance(v.get("target"), dict)]
        # The decision's parts, as tollgate asks them (tests/policy/test_split.py).
        parts = split_inputs(engines.of(tables)["rvm"], values)
        lists_of_reads = [("data.tollgate.reads", [{}]), ("data.tollgate.live_reads", [{}])]
        for query, inputs in ((QUERY, values), ("data.tollgate.decides_responses", targets),
                              *parts, *lists_of_reads):
            for report in _coverage(engine, query, inputs):
                for file, spans in report["files"].items():
                    covered |= _spans(file, spans.get("covered", []))
                    missed |= _spans(file, spans.get("not_covered", []))
    # The tables' branches (credentials.rego): OPA given the values tollgate builds at load.
    modules = read_modules(POLICIES)
    tabled = opa_engine(modules)
    tabled.add_data({TABLES: declared(modules, QUERY)[1]})
    values = [json.loads(c.input_json) for c in CASES
              if c.file == "credentials.json" and not c.tables]
    for query, inputs in ((QUERY, values), ("data.tollgate.tables", [{}])):
        for report in _coverage(tabled, query, inputs):
            for file, spans in report["files"].items():
                covered |= _spans(file, spans.get("covered", []))
                missed |= _spans(file, spans.get("not_covered", []))
    assert covered, "no coverage reported"
    assert not missed - covered, f"never produced or evaluated: {sorted(missed - covered)}"


def split_inputs(rvm: EmbeddedEngine, values: list[Any]) -> list[tuple[str, list[Any]]]:
    """The inputs tollgate gives the decision's cached and live parts for these inputs
    (those that are objects): each projected, the live ones with the cached answer."""
    split = rvm.split
    assert split is not None
    cached, live = [], []
    for value in values:
        if isinstance(value, dict):
            key = split.key(value)
            answer = rvm.answer(rvm.parts[0], key)
            cached.append(json.loads(key))
            live.append(json.loads(split.live_input(value, json.dumps(value), answer)))
    return [(rvm.parts[0], cached), (rvm.parts[1], live)]


def test_opa_combines_the_parts_to_its_decision(engines: Engines) -> None:
    """On OPA too, the cached and live parts, asked as tollgate asks them, combine to the
    pack's own decision on every corpus input (what regorus does: test_split.py)."""
    differing = []
    for case in CASES:
        value = json.loads(case.input_json)
        if not isinstance(value, dict) or len(case.input_json) > 65536:
            continue
        these = engines.of(case.tables)
        opa, rvm = these["opa"], these["rvm"]
        (cached_rule, cached), (live_rule, live) = split_inputs(rvm, [value])
        try:
            answer = opa.eval_document(cached_rule.removeprefix("data."), input=cached[0])
            live[0]["cached"] = answer
            combined = combine(json.dumps(answer), json.dumps(
                opa.eval_document(live_rule.removeprefix("data."), input=live[0])))
        except (opa_bindings.OpaError, PolicyError) as exc:
            combined = exc
        if opa_outcome(opa, case.input_json) != (
                Outcome(decision_json(combined)) if isinstance(combined, Decision)
                else Outcome("policy_error", str(combined))):
            differing.append(case.name)
    assert differing == []


def _coverage(engine: opa_bindings.OpaEngine, query: str,
              inputs: list[Any]) -> list[dict[str, Any]]:
    """OPA's coverage reports of `query` on every input: one query for all, or where one
    input errs (the corpus test holds whether an error was owed), one query each."""
    try:
        engine.eval_query(f"_ = [x | some one in input.all; x := {query} with input as one]",
                          input={"all": inputs}, coverage=True)
        return [engine.last_coverage or {"files": {}}]
    except opa_bindings.OpaError:
        reports = []
        for value in inputs:
            try:
                engine.eval_document(query.removeprefix("data."), input=value, coverage=True)
            except opa_bindings.OpaError:
                continue
            reports.append(engine.last_coverage or {"files": {}})
        return reports


def _spans(file: str, ranges: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """(file, row, col, end row, end col) of each expression or rule head."""
    return {
        (Path(file).name, r["start"]["row"], r["start"]["col"], r["end"]["row"], r["end"]["col"])
        for r in ranges
    }


# -- the comparison is live: known divergences are reported -----------------------------

_ALLOW = {"action": "allow", "reasons": [], "rules": []}


def _deny(reason: str) -> dict[str, Any]:
    return {"action": "deny", "reasons": [reason], "rules": ["probe"]}


def _probe(condition: str) -> str:
    """A decision policy that denies, naming `reason`, when `condition` holds."""
    return (
        "package tollgate\nimport rego.v1\n"
        'default decision := {"action": "allow", "reasons": [], "rules": []}\n'
        'decision := {"action": "deny", "reasons": [reason], "rules": ["probe"]} if {\n'
        f"\t{condition}\n}}\n"
    )


@dataclass(frozen=True)
class Divergence:
    name: str
    rego: str
    input: Any
    rvm: Any  # the outcome on regorus's RVM (what tollgate's embedded backend answers)
    opa: Any  # the outcome on OPA


DIVERGENCES = [
    Divergence(
        "io.jwt.decode is missing from regorus",
        _probe('[_, claims, _] := io.jwt.decode(input.token)\n\treason := claims.sub'),
        {"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2ln"},
        "load_error", _deny("admin"),
    ),
    Divergence(
        r"\b is Unicode-aware on regorus, ASCII on OPA (tollgate.rego's keyword match)",
        _probe('regex.match(`(?i)\\bDROP\\b`, input.sql)\n\treason := "DROP"'),
        {"sql": "\u00e9DROP TABLE t"}, _ALLOW, _deny("DROP"),
    ),
    Divergence(
        r"\s matches U+00A0 on regorus only",
        _probe('regex.match(`^DROP\\sTABLE`, input.sql)\n\treason := "DROP"'),
        {"sql": "DROP\u00a0TABLE t"}, _deny("DROP"), _ALLOW,
    ),
    Divergence(
        "a built-in error is undefined on the RVM, an error on OPA (strict)",
        _probe('json.unmarshal(input.body).admin\n\treason := "admin"'),
        {"body": "not json"}, _ALLOW, "policy_error",
    ),
    Divergence(
        "count of a string: UTF-16 units on regorus, code points on OPA",
        _probe('count(input.name) > 1\n\treason := "long"'),
        {"name": "\U0001f44d"}, _deny("long"), _ALLOW,
    ),
    Divergence(
        "upper() uses full case mapping on regorus (ß -> SS), simple on OPA",
        _probe('upper(input.name) == "STRASSE"\n\treason := "match"'),
        {"name": "stra\u00dfe"}, _deny("match"), _ALLOW,
    ),
    Divergence(
        "numbers: floats on regorus, arbitrary precision on OPA",
        _probe("0.1 + 0.2 == 0.3\n\treason := \"exact\""),
        {}, _ALLOW, _deny("exact"),
    ),
    Divergence(
        "integers beyond 64 bits are rounded on regorus",
        _probe('reason := sprintf("%d", [input.n])'),
        {"n": 2**70}, _deny("1180591620717411300000"), _deny("1180591620717411303424"),
    ),
    Divergence(
        # mcp.rego's mcp.tool_not_allowed iterates its table rather than look it up, as the
        # pack must wherever a `not` reads what an assignment may not find.
        "an assignment that finds nothing does not stop the body on the RVM",
        _probe('x := input.missing\n\tnot 2 in x\n\treason := "fired"'),
        {}, _deny("fired"), _ALLOW,
    ),
    Divergence(
        "urlquery.decode of a bad escape: the text on regorus, an error on OPA",
        _probe('reason := urlquery.decode(input.q)'),
        {"q": "%zz"}, _deny("%zz"), "policy_error",
    ),
]


def _rvm_outcome_of(rego: str, input_json: str) -> Outcome:
    try:
        engine = EmbeddedEngine([("probe.rego", rego)], QUERY)
    except PolicyLoadError as exc:
        return Outcome("load_error", str(exc))
    return rvm_outcome(engine, input_json)


@pytest.mark.parametrize("divergence", DIVERGENCES, ids=[d.name for d in DIVERGENCES])
def test_known_divergence_is_reported(divergence: Divergence) -> None:
    input_json = json.dumps(divergence.input)
    on_rvm = _rvm_outcome_of(divergence.rego, input_json)
    on_opa = opa_outcome(opa_engine([("probe.rego", divergence.rego)]), input_json)
    assert on_rvm != on_opa, "the engines agree now: drop this divergence from the list"
    assert (on_rvm, on_opa) == (expected(divergence.rvm), expected(divergence.opa))


def test_engines_agree_that_a_conflicting_decision_is_a_policy_error() -> None:
    """Errors are compared too: both engines refuse two values for one decision."""
    rego = (
        "package tollgate\nimport rego.v1\n"
        'decision := {"action": "allow"} if input.a\n'
        'decision := {"action": "deny"} if input.b\n'
    )
    input_json = json.dumps({"a": True, "b": True})
    on_rvm = _rvm_outcome_of(rego, input_json)
    on_opa = opa_outcome(opa_engine([("conflict.rego", rego)]), input_json)
    assert on_rvm == on_opa == Outcome("policy_error")
    assert "conflict" in on_opa.detail
