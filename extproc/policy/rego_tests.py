"""Running a policy directory's Rego unit tests (`test_*` rules in `*_test.rego`).

Every `test_` rule is evaluated on the embedded engine, as `opa test` would:
a test passes when its rule is true, and fails when it is undefined, false or
errors. One runner serves the test suite and (later) `tollgate policy test`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regorus

from extproc.policy import PolicyLoadError
from extproc.policy.embedded import clean_regorus_error, rego_files


@dataclass(frozen=True)
class RegoTest:
    package: str  # e.g. data.tollgate_test
    name: str  # e.g. test_drop_is_denied
    file: str
    line: int

    @property
    def rule(self) -> str:
        return f"{self.package}.{self.name}"


@dataclass(frozen=True)
class RegoTestResult:
    test: RegoTest
    passed: bool
    detail: str  # "" when passed; why not otherwise
    duration_us: int


def load_engine(policy_dir: Path) -> tuple[regorus.Engine, list[RegoTest]]:
    """An engine with every .rego file of the directory, and the tests it holds."""
    files = rego_files(policy_dir) if policy_dir.is_dir() else []
    if not files:
        raise PolicyLoadError(f"no .rego files in {policy_dir}")
    engine = regorus.Engine()
    engine.set_rego_v0(False)
    try:
        for path in files:
            engine.add_policy(str(path), path.read_text(encoding="utf-8"))
    except RuntimeError as exc:
        raise PolicyLoadError(f"cannot compile policies: {clean_regorus_error(exc)}") from None
    return engine, _tests_in(json.loads(engine.get_ast_as_json()))


def _tests_in(modules: list[dict[str, Any]]) -> list[RegoTest]:
    found: dict[str, RegoTest] = {}
    for module in modules:
        if not module["source"]["file"].endswith("_test.rego"):
            continue
        ast = module["ast"]
        package = "data." + ".".join(_ref_names(ast["package"]["refr"]))
        for rule in ast["rules"]:
            head = rule.get("Spec", {}).get("head", {})
            for form in head.values():
                names = _ref_names(form["refr"])
                if len(names) == 1 and names[0].startswith("test_"):
                    test = RegoTest(package, names[0], module["source"]["file"],
                                    form["span"]["line"])
                    # A test defined by several bodies is one test (OPA counts it once).
                    found.setdefault(test.rule, test)
    return list(found.values())


def _ref_names(ref: dict[str, Any]) -> list[str]:
    """['a', 'b'] for the reference `a.b` in regorus's AST."""
    (kind, node), = ref.items()
    if kind == "Var":
        return [node["value"]]
    if kind == "RefDot":
        return [*_ref_names(node["refr"]), node["field"][1]]
    return []


def run(policy_dir: Path) -> list[RegoTestResult]:
    engine, tests = load_engine(policy_dir)
    results = []
    for test in tests:
        started = time.perf_counter()
        try:
            value = engine.eval_rule(test.rule)
            passed, detail = value is True, "" if value is True else _describe(value)
        except RuntimeError as exc:
            passed, detail = False, f"error: {clean_regorus_error(exc)}"
        results.append(RegoTestResult(
            test, passed, detail, int((time.perf_counter() - started) * 1e6)
        ))
    return results


def _describe(value: Any) -> str:
    return "undefined" if value is None else f"evaluated to {json.dumps(value)}"
