"""Why the compiled program gave no decision: the interpreter's error, in its rule.

regorus's RVM answers a conflict between complete rules, or a runtime error
(`to_number("ten")`, a division by zero), as it answers a rule that did not match:
undefined. The tree-walking interpreter raises them, at a `file:line:col`; this asks it
on the same input and names the rule written there, so the log line of a refused
exchange (and of a refused reload) says which rule of which file failed, not only that
nothing was decided. Off the request path but for a decision that failed already.
"""

from __future__ import annotations

import bisect
import re

import regorus

from extproc.policy.errors import PolicyError, Undefined, clean_regorus_error
from extproc.policy.rego_tests import definitions, interpreter
from extproc.policy.sources import Modules

_LOCATION = re.compile(r"^(?P<file>.+?):(?P<line>\d+):\d+: ")


class Explainer:
    """The pack's interpreter, built when first needed, and where each of its rules is."""

    def __init__(self, modules: Modules) -> None:
        self._modules = modules
        self._engine: regorus.Engine | None = None
        # file -> (the first line of each rule, sorted; the rule's path), from the AST.
        self._rules: dict[str, tuple[list[int], list[str]]] | None = None

    @property
    def engine(self) -> regorus.Engine:
        if self._engine is None:
            self._engine = interpreter(self._modules)
        return self._engine

    def undefined(self, query: str, input_json: str) -> PolicyError:
        """What to raise for a query the RVM left undefined on this input: the
        interpreter's error in its rule, or Undefined when it finds none either."""
        engine = self.engine
        try:
            engine.set_input_json(input_json)
            value = engine.eval_rule(query)
        except RuntimeError as exc:
            cause = clean_regorus_error(exc)
            rule = self.rule_at(cause)
            where = f" in rule {rule}" if rule else ""
            return PolicyError(f"evaluation failed{where}: {cause}", rule)
        if value is None:
            return Undefined(f"{query} is undefined for this input")
        return Undefined(f"{query} is undefined for this input on the compiled program, "
                         "though the interpreter gives it a value")

    def rule_at(self, cause: str) -> str | None:
        """The rule whose definition holds the error's `file:line`, if the error has one."""
        found = _LOCATION.match(cause)
        if found is None:
            return None
        lines, rules = self._where().get(found["file"], ([], []))
        at = bisect.bisect_right(lines, int(found["line"])) - 1
        return rules[at] if at >= 0 else None

    def _where(self) -> dict[str, tuple[list[int], list[str]]]:
        """Each definition of a rule or function, by file and first line."""
        if self._rules is None:
            starts: dict[str, list[tuple[int, str]]] = {}
            for rule, _ in definitions(self.engine):
                starts.setdefault(rule.file, []).append((rule.line, rule.ref))
            self._rules = {file: ([line for line, _ in sorted(found)],
                                  [ref for _, ref in sorted(found)])
                           for file, found in starts.items()}
        return self._rules
