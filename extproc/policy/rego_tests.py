"""Running a policy directory's Rego unit tests (`test_*` rules in `*_test.rego`).

Every `test_` rule is evaluated on the embedded engine, as `opa test` would:
a test passes (PASS) when its rule is true, fails (FAIL) when it is undefined or
anything but true, and errors (ERROR) when evaluation fails. One runner serves
the test suite and `tollgate policy test`; the rule walk over regorus's AST also
serves `tollgate policy eval`, which shows the rules of a package that fired.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import regorus

from extproc.policy import PolicyLoadError
from extproc.policy.errors import clean_regorus_error
from extproc.policy.sources import Modules, read_source, rego_files

Outcome = Literal["PASS", "FAIL", "ERROR"]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class RegoRule:
    """One rule of a module, named by the path `eval_rule` accepts for it.

    Several definitions of a rule (incremental rules, `default`, `else`) are one
    RegoRule, located at its first definition.
    """

    package: str  # e.g. data.tollgate
    path: str  # e.g. destructive_sql, or a.b for the ref head `a.b := 1`
    file: str
    line: int
    # Built by `contains` or `name[key] := ...`: always defined, empty when no body held.
    multi_value: bool

    @property
    def ref(self) -> str:
        return f"{self.package}.{self.path}"


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
    outcome: Outcome
    detail: str  # "" when passed; why not otherwise
    duration_ns: int
    prints: tuple[str, ...] = ()  # what the test's `print()` calls wrote, `file:line: text`

    @property
    def passed(self) -> bool:
        return self.outcome == "PASS"


def interpreter(modules: Modules) -> regorus.Engine:
    """A tree-walking regorus engine (Rego v1) over (file name, source) modules.

    The gateway decides with a compiled RVM program; the interpreter is what can
    evaluate any single rule, which tests and explanations need.
    """
    engine = regorus.Engine()
    engine.set_rego_v0(False)
    try:
        for name, source in modules:
            engine.add_policy(name, source)
    except RuntimeError as exc:
        raise PolicyLoadError(f"cannot compile policies: {clean_regorus_error(exc)}") from None
    return engine


def load_engine(policy_dir: Path) -> tuple[regorus.Engine, list[RegoTest]]:
    """An engine with every .rego file of the directory, and the tests it holds."""
    files = rego_files(policy_dir) if policy_dir.is_dir() else []
    if not files:
        raise PolicyLoadError(f"no .rego files in {policy_dir}")
    return engine_of([(str(path), read_source(path)) for path in files])


def engine_of(files: Modules) -> tuple[regorus.Engine, list[RegoTest]]:
    """An engine with these .rego files (tests too, as read already), and its tests."""
    engine = interpreter(files)
    tests = [
        RegoTest(rule.package, rule.path, rule.file, rule.line)
        for rule in rules_in(engine)
        if rule.file.endswith("_test.rego") and _IDENTIFIER.fullmatch(rule.path)
        and rule.path.startswith("test_")
    ]
    return engine, tests


def rules_in(engine: regorus.Engine) -> list[RegoRule]:
    """Every rule the engine holds, functions excepted (they need arguments)."""
    found: dict[str, RegoRule] = {}
    for rule, function in definitions(engine):
        if not function:
            found.setdefault(rule.ref, rule)
    return list(found.values())


def definitions(engine: regorus.Engine) -> Iterator[tuple[RegoRule, bool]]:
    """Each definition of each rule and function (a default, an `else`, an incremental
    one each: where an error is, explain.py), and whether it is a function's."""
    for module in json.loads(engine.get_ast_as_json()):
        ast = module["ast"]
        package = "data." + ".".join(_ref_names(ast["package"]["refr"]))
        for rule in ast["rules"]:
            (kind, node), = rule.items()
            if kind == "Default":
                ref, multi_value, function = node["refr"], False, bool(node["args"])
            else:
                (form, head), = node["head"].items()
                ref, multi_value, function = head["refr"], form == "Set", form == "Func"
            segments, partial_object = _head_path(ref)
            path = "".join(s if s.startswith("[") else f".{s}" for s in segments)[1:]
            yield RegoRule(package, path, module["source"]["file"], node["span"]["line"],
                           multi_value or partial_object), function


def _head_path(ref: dict[str, Any]) -> tuple[list[str], bool]:
    """A rule head's path, and whether it ends at a variable key (`obj[k] := ...`).

    `a.b.c := 1` is the path a.b.c; `q["x-y"] := 1` is q["x-y"] (a key that is
    not an identifier keeps its brackets); `obj[k] := 1` is obj, a partial object.
    """
    (kind, node), = ref.items()
    if kind == "Var":
        return [node["value"]], False
    names, partial = _head_path(node["refr"])
    if partial:
        return names, partial
    if kind == "RefDot":
        return [*names, node["field"][1]], False
    if kind == "RefBrack":
        (index_kind, index), = node["index"].items()
        if index_kind == "String":
            key = index["value"]
            return [*names, key if _IDENTIFIER.fullmatch(key) else f"[{json.dumps(key)}]"], False
        return names, True
    return names, False


def _ref_names(ref: dict[str, Any]) -> list[str]:
    """['a', 'b'] for the reference `a.b` in regorus's AST."""
    (kind, node), = ref.items()
    if kind == "Var":
        return [node["value"]]
    if kind == "RefDot":
        return [*_ref_names(node["refr"]), node["field"][1]]
    return []


def run(policy_dir: Path, select: re.Pattern[str] | None = None) -> list[RegoTestResult]:
    """Run the directory's tests, or those whose full name `select` finds (`opa test --run`)."""
    return list(each_result(policy_dir, select))


def each_result(policy_dir: Path,
                select: re.Pattern[str] | None = None) -> Iterator[RegoTestResult]:
    """`run`'s results one at a time, for a caller that must not block long (a start on
    the event loop: regorus's engines stay on the thread that made them)."""
    return _results(*load_engine(policy_dir), select)


def each_result_of(files: Modules) -> Iterator[RegoTestResult]:
    """The results of the tests among these .rego files (a reload's, as read already)."""
    return _results(*engine_of(files), None)


def _results(engine: regorus.Engine, tests: list[RegoTest],
             select: re.Pattern[str] | None) -> Iterator[RegoTestResult]:
    engine.set_gather_prints(True)
    for test in tests:
        if select is not None and not select.search(test.rule):
            continue
        started = time.perf_counter_ns()
        try:
            value = engine.eval_rule(test.rule)
            outcome: Outcome = "PASS" if value is True else "FAIL"
            detail = "" if value is True else _describe(value)
        except RuntimeError as exc:
            outcome, detail = "ERROR", clean_regorus_error(exc)
        elapsed = time.perf_counter_ns() - started
        yield RegoTestResult(test, outcome, detail, elapsed, tuple(engine.take_prints()))


def _describe(value: Any) -> str:
    if value is None:
        return "undefined"
    # eval_rule gives sets as Python sets; shown as the JSON arrays OPA would print.
    return f"evaluated to {json.dumps(value, default=_set_items)}"


def _set_items(value: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(value)
    except TypeError:  # items of mixed or unorderable types
        return list(value)
