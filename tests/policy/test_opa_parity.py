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
        "grant": decision.grant, "grant_minutes": decision.grant_minutes,
        "approvals_needed": decision.approvals_needed,
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


# -- the Rego unit tests, on both engines ----------------------------------------------


@pytest.fixture(scope="module")
def regorus_results() -> dict[str, rego_tests.RegoTestResult]:
    return {r.test.rule: r for r in rego_tests.run(POLICIES)}


@pytest.fixture(scope="module")
def opa_test_values() -> dict[str, Any]:
    """Each Rego unit test's value on OPA: every package's tests in one query (each query
    costs OPA a compilation: one per test took a minute, one per package 15 s), or, where
    that errs, each package's in one, and where a package's errs, each test alone, so the
    error is its own test's."""
    engine = opa_engine([(str(p), p.read_text(encoding="utf-8")) for p in rego_files(POLICIES)])
    packages: dict[str, list[str]] = {}
    for test in PACK_TESTS:
        packages.setdefault(test.rule.rsplit(".", 1)[0], []).append(test.rule)
    # Every package in one query first: OPA prepares each query text anew.
    named = {f"p{n}": package for n, package in enumerate(packages)}
    try:
        found = engine.eval_query("; ".join(f"{name} := {package}"
                                            for name, package in named.items()))
        documents = {package: found[0][name] for name, package in named.items()}
    except (opa_bindings.OpaError, IndexError, KeyError):
        documents = {}
    values: dict[str, Any] = {}
    for package, rules in packages.items():
        if package not in documents:
            try:
                documents[package] = engine.eval_document(package.removeprefix("data."))
            except opa_bindings.OpaError:
                values.update({rule: _opa_test_value(engine, rule) for rule in rules})
                continue
        values.update({rule: documents[package].get(rule.rsplit(".", 1)[1], "undefined")
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
def test_corpus_case(case: policy_corpus.Case, engines: Engines, on_opa: OpaAnswers) -> None:
    these = engines.of(case.tables)
    got = {"rvm": rvm_outcome(these["rvm"], case.input_json),
           "opa": on_opa.decision(case, these["opa"]),
           "interpreter": interpreter_outcome(these["interpreter"], case.input_json)}
    owed = {engine: expected(case.expected_on(engine)) for engine in got}
    wrong = {e: f"got {got[e]!r}, owed {owed[e]!r}" for e in got if got[e] != owed[e]}
    assert not wrong, f"{case.file}: {case.name}: {wrong}"


def test_corpus_covers_every_rule_of_the_pack(on_opa: OpaAnswers) -> None:
    """OPA's coverage over the corpus: every rule of tollgate.rego produced a value.

    OPA marks a rule's head covered only when the rule produced a value, and each
    expression of a body when it was evaluated. The reports are those of the queries
    OpaAnswers asked every case with: the decision, whether the pack decides the
    target's responses, and the decision's cached and live parts as tollgate asks them.
    """
    covered: set[tuple[Any, ...]] = set()
    missed: set[tuple[Any, ...]] = set()
    reports = list(on_opa.coverage)
    # The tables' branches (credentials.rego): OPA given the values tollgate builds at load.
    modules = read_modules(POLICIES)
    tabled = opa_engine(modules)
    tabled.add_data({TABLES: declared(modules, QUERY)[1]})
    values = [json.loads(c.input_json) for c in CASES
              if c.file == "credentials.json" and not c.tables]
    for query, inputs in ((QUERY, values), ("data.tollgate.tables", [{}])):
        reports += _coverage(tabled, query, inputs)[1]
    for report in reports:
        for file, spans in report["files"].items():
            covered |= _spans(file, spans.get("covered", []))
            missed |= _spans(file, spans.get("not_covered", []))
    assert covered, "no coverage reported"
    assert not missed - covered, f"never produced or evaluated: {sorted(missed - covered)}"


def test_opa_combines_the_parts_to_its_decision(on_opa: OpaAnswers) -> None:
    """On OPA too, the cached and live parts, asked as tollgate asks them, combine to the
    pack's own decision on every corpus input (what regorus does: test_split.py)."""
    differing = []
    for case, (cached, live) in on_opa.parts.items():
        try:
            if isinstance(cached, Exception) or isinstance(live, Exception):
                raise cached if isinstance(cached, Exception) else live  # type: ignore[misc]
            combined: Decision | Exception = combine(json.dumps(cached), json.dumps(live))
        except (opa_bindings.OpaError, PolicyError) as exc:
            combined = exc
        if on_opa.decisions[case] != (
                Outcome(decision_json(combined)) if isinstance(combined, Decision)
                else Outcome("policy_error", str(combined))):
            differing.append(case)
    assert differing == []


def _coverage(engine: opa_bindings.OpaEngine, query: str, inputs: list[Any]
              ) -> tuple[list[Any], list[dict[str, Any]]]:
    """`query`'s value on every input, each an exception where OPA refused it (undefined
    included), and OPA's coverage reports of asking them all: one query for all, or where
    one input errs, one query each (an input that errs covers nothing)."""
    try:
        found = engine.eval_query(
            f"xs := {{i: x | some i, one in input.all; x := {query} with input as one}}",
            input={"all": inputs}, coverage=True)
    except opa_bindings.OpaError:
        values, reports = [], []
        for value in inputs:
            try:
                values.append(engine.eval_document(query.removeprefix("data."), input=value,
                                                   coverage=True))
            except opa_bindings.OpaError as exc:
                values.append(exc)
                continue
            reports.append(engine.last_coverage or {"files": {}})
        return values, reports
    answers = found[0]["xs"] if found else {}
    undefined = opa_bindings.OpaUndefinedError(query)
    return ([answers.get(str(i), answers.get(i, undefined)) for i in range(len(inputs))],
            [engine.last_coverage or {"files": {}}])


def _asked_together(engine: opa_bindings.OpaEngine, asked: dict[str, tuple[str, list[Any]]]
                    ) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
    """_coverage of several queries (name -> query, inputs) in one evaluation: OPA
    prepares each query text anew (~0.5-1 s of CPU), so the queries of a set of tables are
    one text, and one coverage report. Where one errs, each is asked as _coverage asks."""
    parts = [f"{name} := {{i: x | some i, one in input.{name}; x := {query} with input as one}}"
             for name, (query, _) in asked.items()]
    try:
        found = engine.eval_query("; ".join(parts), coverage=True,
                                  input={name: inputs for name, (_, inputs) in asked.items()})
    except opa_bindings.OpaError:
        values, reports = {}, []
        for name, (query, inputs) in asked.items():
            values[name], more = _coverage(engine, query, inputs)
            reports += more
        return values, reports
    bound = found[0] if found else {}
    values = {}
    for name, (query, inputs) in asked.items():
        answers, undefined = bound.get(name, {}), opa_bindings.OpaUndefinedError(query)
        values[name] = [answers.get(str(i), answers.get(i, undefined))
                        for i in range(len(inputs))]
    return values, [engine.last_coverage or {"files": {}}]


def _opa_outcome_of(value: Any, query: str = QUERY) -> Outcome:
    """opa_outcome's answer, from a value _coverage gave."""
    if isinstance(value, opa_bindings.OpaUndefinedError):
        return Outcome("policy_error", f"{query} is undefined")
    if isinstance(value, opa_bindings.OpaError):
        return Outcome("policy_error", f"{value.code}: {value.message}")
    return _parsed(value)


class OpaAnswers:
    """OPA's answers on the whole corpus, asked once for every test of this module that
    reads them: per set of pack tables, every case's decision, and the decision's cached
    and live parts as tollgate asks them, each query asked of all the cases at once
    (`with input as` each), coverage on. Asking each case alone, once per test, cost
    three times the evaluations: OPA's evaluation is the cost, not the call."""

    def __init__(self, engines: Engines) -> None:
        self.decisions: dict[str, Outcome] = {}
        self.parts: dict[str, tuple[Any, Any]] = {}
        self.coverage: list[dict[str, Any]] = []
        groups: dict[str, list[policy_corpus.Case]] = {}
        for case in CASES:
            if len(case.input_json) <= 65536:  # the big ones repeat small ones, slowly
                groups.setdefault(json.dumps(case.tables, sort_keys=True), []).append(case)
        for cases in groups.values():
            self._ask(engines.of(cases[0].tables), cases)

    def _ask(self, these: dict[str, Any], cases: list[policy_corpus.Case]) -> None:
        opa, rvm = these["opa"], these["rvm"]
        values = [json.loads(c.input_json) for c in cases]
        split = rvm.split
        assert split is not None
        objects = [(c, v) for c, v in zip(cases, values, strict=True) if isinstance(v, dict)]
        cached_rule, live_rule = rvm.parts
        keys = [split.key(v) for _, v in objects]
        # The live part is asked as tollgate asks it: the input with the cached part's
        # answer. Built here with regorus's answer, so that all is asked in one text;
        # where OPA's own cached answer differs, its live part is asked again with it.
        ours = [rvm.answer(cached_rule, key) for key in keys]
        lives_in = [json.loads(split.live_input(value, json.dumps(value), answer))
                    for (_, value), answer in zip(objects, ours, strict=True)]
        # The decision; the pack's word on whether it decides the target's responses,
        # asked with the target alone, as tollgate asks it; the lists of what the parts
        # read; and the two parts.
        targets = [{"target": v["target"]} for v in values
                   if isinstance(v, dict) and isinstance(v.get("target"), dict)]
        found, reports = _asked_together(opa, {
            "decision": (QUERY, values),
            "responses": ("data.tollgate.decides_responses", targets),
            "reads": ("data.tollgate.reads", [{}]),
            "live_reads": ("data.tollgate.live_reads", [{}]),
            "cached": (cached_rule, [json.loads(k) for k in keys]),
            "live": (live_rule, lives_in)})
        self.coverage += reports
        self.decisions.update((c.name, _opa_outcome_of(v))
                              for c, v in zip(cases, found["decision"], strict=True))
        for (case, _), answer, mine, live_in, live in zip(
                objects, found["cached"], ours, lives_in, found["live"], strict=True):
            if not isinstance(answer, Exception) and answer != json.loads(mine):
                live_in["cached"] = answer
                try:
                    live = opa.eval_document(live_rule.removeprefix("data."), input=live_in)
                except opa_bindings.OpaError as exc:
                    live = exc
            self.parts[case.name] = (answer, live)

    def decision(self, case: policy_corpus.Case, opa: opa_bindings.OpaEngine) -> Outcome:
        """OPA's outcome on the case (asked alone where it was not asked with the rest)."""
        found = self.decisions.get(case.name)
        return found if found is not None else opa_outcome(opa, case.input_json)


@pytest.fixture(scope="module")
def on_opa(engines: Engines) -> OpaAnswers:
    return OpaAnswers(engines)


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
