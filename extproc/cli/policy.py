"""`tollgate policy test` and `tollgate policy eval`: the policy pack, checked from a shell.

`test` runs the Rego unit tests on the embedded engine and reports them as
`opa test -v` does, so the same habits (and CI greps) work with either tool.
`eval` answers "what would the gateway decide for this input, and why": the
decision comes from the same compiled program `tollgate serve` runs, and every
rule of the decision's package is evaluated too, to show which ones fired.

Exit status: 0 all passed / a valid decision; 1 a test failed or errored / the
gateway would refuse with "policy error"; 2 unusable input (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regorus

from extproc.codecs.durations import Unusable
from extproc.codecs.inert import json_text, terminal
from extproc.codecs.message import parse_json
from extproc.policy import Decision, PolicyError, PolicyLoadError, rego_tests, split_check
from extproc.policy.decision import POLICY_ERROR
from extproc.policy.declared import declared_split
from extproc.policy.embedded import UNDEFINED, EmbeddedEngine
from extproc.policy.errors import clean_regorus_error
from extproc.policy.sources import read_modules

DEFAULT_QUERY = "data.tollgate.decision"
# Rule values longer than this are cut in the human listing (--format json has them whole).
_SHOWN_VALUE_CHARS = 200


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `policy test` and `policy eval` under the `tollgate` command."""
    policy = commands.add_parser("policy", help="test and try the Rego policies")
    actions = policy.add_subparsers(dest="policy_command", required=True, metavar="{test,eval}")

    test = actions.add_parser(
        "test", help="run the Rego unit tests (test_* rules in *_test.rego), like `opa test -v`"
    )
    test.add_argument(
        "dir", nargs="?", type=Path, default=Path("policies"),
        help="policy directory (default: ./policies)",
    )
    test.add_argument(
        "-r", "--run", metavar="REGEX",
        help="run only the tests whose full name (data.pkg.test_x) this regular expression finds",
    )
    test.add_argument(
        "--split-inputs", action="append", default=[], metavar="FILE",
        help="also check the decision's split (its cached and live parts) on this policy input "
             "(repeatable), beside the representative inputs tollgate ships",
    )
    test.add_argument("-f", "--format", choices=["pretty", "json"], default="pretty")

    evaluate = actions.add_parser(
        "eval", help="decide one policy input as the gateway would, and show which rules fired"
    )
    evaluate.add_argument(
        "-i", "--input", required=True, metavar="FILE", help="policy input JSON (- for stdin)"
    )
    evaluate.add_argument(
        "-d", "--policies", type=Path, default=Path("policies"), metavar="DIR",
        help="policy directory, *_test.rego excluded as the gateway does (default: ./policies)",
    )
    evaluate.add_argument(
        "-q", "--query", default=DEFAULT_QUERY, help=f"the decision rule (default: {DEFAULT_QUERY})"
    )
    evaluate.add_argument(
        "--explain", action="store_true",
        help="also list the policy lines evaluated for the decision (regorus coverage)",
    )
    evaluate.add_argument("-f", "--format", choices=["pretty", "json"], default="pretty")


def main(args: argparse.Namespace) -> int:
    try:
        if args.policy_command == "test":
            return _test(args)
        return _eval(args)
    except (Unusable, PolicyLoadError) as exc:
        print(f"tollgate: {terminal(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader left (`tollgate policy test | head`): no traceback, and no more output.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


# -- policy test ---------------------------------------------------------------------


def _test(args: argparse.Namespace) -> int:
    select = None
    if args.run is not None:
        try:
            select = re.compile(args.run)
        except re.error as exc:
            raise Unusable(f"--run {args.run!r}: not a regular expression: {exc}") from None
    _check_dir(args.dir)
    results = rego_tests.run(args.dir, select)
    if not results:
        if select is not None:
            raise Unusable(f"no test in {args.dir} matches --run {args.run!r}")
        raise Unusable(f"no test_ rules in the *_test.rego files of {args.dir}")
    if select is None or args.split_inputs:
        results += _split_result(args.dir, args.split_inputs)
    if args.format == "json":
        print(json_text(json.dumps([_test_json(r) for r in results], indent=2,
                                   ensure_ascii=False)))
    else:
        _print_tests(results)
    return 0 if all(r.passed for r in results) else 1


def _split_result(policy_dir: Path, files: list[str]) -> list[rego_tests.RegoTestResult]:
    """The pack's split checked as one more test (none when the pack has no split): its
    reads miss nothing and its parts combine to its decision, on the shipped inputs and
    the user's (split_check.py)."""
    started = time.perf_counter_ns()
    modules = read_modules(policy_dir)
    if declared_split(modules, DEFAULT_QUERY) is None:
        return []
    engine = EmbeddedEngine(modules, DEFAULT_QUERY)
    inputs = split_check.shipped_inputs()
    inputs += [(name, parse_json(read_input(name))) for name in files]
    found = split_check.problems(engine, inputs)
    test = rego_tests.RegoTest(DEFAULT_QUERY.rpartition(".")[0], "split", "(split)", 0)
    return [rego_tests.RegoTestResult(
        test, "FAIL" if found else "PASS", "\n".join(found), time.perf_counter_ns() - started)]


def _check_dir(policy_dir: Path) -> None:
    if not policy_dir.is_dir():
        raise Unusable(f"{policy_dir}: no such directory")


def _print_tests(results: list[rego_tests.RegoTestResult]) -> None:
    """`opa test -v`'s layout: tests grouped under their file, a rule, then the counts.
    What a test printed or failed on may be an agent's request: each line is shown inert."""
    last_file = None
    for result in results:
        if result.test.file != last_file:
            if last_file is not None:
                print()
            print(terminal(f"{result.test.file}:"))
            last_file = result.test.file
        print(terminal(f"{result.test.rule}: {result.outcome} "
                       f"({go_duration(result.duration_ns)})"))
        if result.detail:
            print(f"  {terminal(result.detail)}")
        if result.prints:
            print()
            for line in result.prints:
                print(f"  {terminal(line)}")
            print()
    print("-" * 80)
    counts = Counter(r.outcome for r in results)
    for outcome in ("PASS", "FAIL", "ERROR"):
        if counts[outcome]:
            print(f"{outcome}: {counts[outcome]}/{len(results)}")


def _test_json(result: rego_tests.RegoTestResult) -> dict[str, Any]:
    """One test as `opa test --format json` shows it, plus tollgate's `outcome` and `detail`."""
    entry: dict[str, Any] = {
        "location": {"file": result.test.file, "row": result.test.line},
        "package": result.test.package,
        "name": result.test.name,
        "outcome": result.outcome,
        "duration": result.duration_ns,
    }
    if result.outcome == "FAIL":
        entry.update(fail=True, detail=result.detail)
    elif result.outcome == "ERROR":
        entry["error"] = {"message": result.detail}
    if result.prints:
        entry["prints"] = list(result.prints)
    return entry


def go_duration(ns: int) -> str:
    """A duration as Go's time.Duration prints it, which is what `opa test` shows."""
    for unit, size in (("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if ns >= size:
            whole, fraction = divmod(ns, size)
            digits = f"{fraction:0{len(str(size)) - 1}d}".rstrip("0")
            return f"{whole}.{digits}{unit}" if digits else f"{whole}{unit}"
    return f"{ns}ns"


# -- policy eval ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuleValue:
    """A rule of the decision's package, evaluated for the input."""

    rule: rego_tests.RegoRule
    defined: bool
    value: Any = None
    error: str = ""

    @property
    def fired(self) -> bool:
        """Defined and not false; for `contains` and `obj[key]` rules, not empty."""
        if not self.defined or self.value is False:
            return False
        return not (self.rule.multi_value and self.value in ([], {}))


def _eval(args: argparse.Namespace) -> int:
    input_json = read_input(args.input)
    _check_dir(args.policies)
    modules = read_modules(args.policies)
    engine = rego_tests.interpreter(modules)
    rules = rego_tests.rules_in(engine)
    decision_rule = next((r for r in rules if r.ref == args.query), None)
    if decision_rule is None:
        packages = ", ".join(sorted({r.package for r in rules})) or "none"
        raise Unusable(f"{args.query} is not a rule in {args.policies} (packages: {packages})")
    gateway = EmbeddedEngine(modules, args.query)

    try:
        engine.set_input_json(input_json)
    except RuntimeError as exc:  # valid JSON regorus cannot hold, e.g. 1e400
        raise Unusable(f"{_label(args.input)}: {clean_regorus_error(exc)}") from None
    # print() cannot be reached from a decision (the compiled program lacks it); rules
    # off the decision's path may print, and what they print must not pollute the report.
    engine.set_gather_prints(True)
    engine.set_enable_coverage(args.explain)
    try:
        result = engine.eval_rule_as_json(args.query)
    except RuntimeError as exc:
        raise Unusable(f"{args.query}: policy error: {clean_regorus_error(exc)}") from None
    coverage = json.loads(engine.get_coverage_report_as_json()) if args.explain else None
    engine.set_enable_coverage(False)

    # The verdict comes from the gateway's own engine, so it is exactly what serve does.
    try:
        decision, policy_error = gateway.decide_now(input_json), ""
    except PolicyError as exc:
        decision, policy_error = POLICY_ERROR, str(exc)
    values = [_evaluate(engine, r) for r in rules if r.package == decision_rule.package]

    report = EvalReport(
        args.query, result != UNDEFINED, None if result == UNDEFINED else json.loads(result),
        decision, policy_error, values, coverage,
    )
    if args.format == "json":
        print(json_text(json.dumps(report.as_json(), indent=2, ensure_ascii=False)))
    else:
        report.show()
    if policy_error:
        print(f"tollgate: policy error: {terminal(policy_error)} (the gateway refuses the "
              "request)", file=sys.stderr)
        return 1
    return 0


def read_input(name: str) -> str:
    """The policy input's JSON text, checked to be one JSON object; `-` reads stdin."""
    label = _label(name)
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except FileNotFoundError:
        raise Unusable(f"{label}: no such file") from None
    except OSError as exc:
        raise Unusable(f"{label}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unusable(f"{label}: not UTF-8 (byte {exc.start})") from None
    try:
        value = parse_json(text)
    except json.JSONDecodeError as exc:
        raise Unusable(
            f"{label}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:
        raise Unusable(f"{label}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        kind = "null" if value is None else type(value).__name__
        raise Unusable(f"{label}: the policy input must be a JSON object, got {kind}")
    return text


def _label(name: str) -> str:
    return "<stdin>" if name == "-" else name


def _evaluate(engine: regorus.Engine, rule: rego_tests.RegoRule) -> RuleValue:
    try:
        result = engine.eval_rule_as_json(rule.ref)
    except RuntimeError as exc:
        return RuleValue(rule, defined=False, error=clean_regorus_error(exc))
    if result == UNDEFINED:
        return RuleValue(rule, defined=False)
    return RuleValue(rule, defined=True, value=json.loads(result))


@dataclass(frozen=True)
class EvalReport:
    query: str
    defined: bool
    result: Any  # the policy's own answer, before tollgate checks its shape
    decision: Decision  # what the gateway acts on
    policy_error: str  # why the gateway refuses with "policy error", or ""
    rules: list[RuleValue]
    coverage: dict[str, Any] | None  # regorus's report, with --explain

    def as_json(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "query": self.query,
            "defined": self.defined,
            "result": self.result,
            "policy_error": self.policy_error or None,
            "decision": _decision_json(self.decision),
            "rules": [_rule_json(v) for v in self.rules],
        }
        if self.coverage is not None:
            report["coverage"] = [
                {k: f[k] for k in ("path", "covered", "not_covered")}
                for f in self.coverage["files"]
            ]
        return report

    def show(self) -> None:
        """The report for a terminal: the input's strings (an agent's request, often) and
        the policy's text shown inert."""
        if self.defined:
            result = json.dumps(self.result, indent=2, ensure_ascii=False)
            print(f"{terminal(self.query)}:\n{json_text(result)}")
        else:
            print(f"{terminal(self.query)}: undefined")
        if self.policy_error:
            print(f"\npolicy error: {terminal(self.policy_error)}")
            print("the gateway refuses the request (fail_mode: closed, the default):")
            print(json_text(json.dumps(_decision_json(self.decision), indent=2)))
            print("a target with fail_mode: open lets it through, marked tollgate.fail_open")
        else:
            named = ", ".join(self.decision.rules) or "(none)"
            print(f"\nrules named by the decision: {terminal(named)}")
        package = self.rules[0].rule.package
        fired = [v for v in self.rules if v.fired]
        print(f"\nrules of {package} that fired (defined, not false, not empty):")
        width = max((len(v.rule.path) for v in fired), default=0)
        for value in fired:
            shown = json.dumps(value.value, ensure_ascii=False)
            if len(shown) > _SHOWN_VALUE_CHARS:
                shown = shown[:_SHOWN_VALUE_CHARS] + "… (whole with --format json)"
            print(terminal(f"  {value.rule.path:<{width}}  {_where(value.rule)}  {shown}"))
        if not fired:
            print("  (none)")
        quiet = [v.rule.path for v in self.rules if not v.fired and not v.error]
        print(f"did not fire: {', '.join(quiet) or '(none)'}")
        for value in self.rules:
            if value.error:
                print(terminal(f"error in {value.rule.path} ({_where(value.rule)}): "
                               f"{value.error}"))
        if self.coverage is not None:
            self._print_coverage(self.coverage)

    def _print_coverage(self, coverage: dict[str, Any]) -> None:
        print(f"\nlines evaluated for {self.query} (+ evaluated, - not evaluated):")
        for file in coverage["files"]:
            covered, missed = set(file["covered"]), set(file["not_covered"])
            print(f"{file['path']}:")
            for number, text in enumerate(file["code"].splitlines(), start=1):
                if number in covered or number in missed:
                    print(f"  {'+' if number in covered else '-'} {number:4}  "
                          f"{terminal(text.expandtabs(4))}")


def _where(rule: rego_tests.RegoRule) -> str:
    return f"{rule.file}:{rule.line}"


def _decision_json(decision: Decision) -> dict[str, Any]:
    """The fields of a Decision the gateway acts on, as the policy would write them."""
    result: dict[str, Any] = {
        "action": decision.action,
        "reasons": list(decision.reasons),
        "rules": list(decision.rules),
        "status": decision.status,
    }
    if decision.mask:
        result["mask"] = {k: v[0] if k == "strategy" else list(v)
                          for k, v in decision.mask.items()}
    if decision.action == "hold":
        result["approvers"] = list(decision.approvers)
        result["hold_seconds"] = decision.hold_seconds
    return result


def _rule_json(value: RuleValue) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "rule": value.rule.ref,
        "location": {"file": value.rule.file, "row": value.rule.line},
        "fired": value.fired,
    }
    if value.defined:
        entry["value"] = value.value
    if value.error:
        entry["error"] = value.error
    return entry
