"""What a pack declares beside its decision, read once per revision with regorus's
interpreter: its split (split.py) and its tables.

Tables are rules that read no input (credentials.rego's path regexes, ~0.3 ms each to
build in the compiled program, every decision that reaches them): the pack names them in
`data.tollgate.tables`, tollgate evaluates each once, without an input, and compiles
the program with their values as `data.tollgate_tables.<name>`, which the pack's rule
reads when it is there and builds itself when it is not (another engine, OPA).
"""

from __future__ import annotations

from typing import Any

import regorus

from extproc.policy.errors import PolicyLoadError
from extproc.policy.sources import Modules
from extproc.policy.split import Split, parse_reads, steady

TABLES = "tollgate_tables"
"""Where a pack finds its tables' values: data.tollgate_tables.<name>."""


def split_rules(query: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """The split's rules beside the query (data.tollgate.decision: data.tollgate.cached and
    .live), and their reads lists (.reads, .live_reads)."""
    base = query.rpartition(".")[0]
    return (f"{base}.cached", f"{base}.live"), (f"{base}.reads", f"{base}.live_reads")


def declared(modules: Modules, query: str) -> tuple[Split | None, dict[str, Any]]:
    """The pack's split (or None) and its tables' values; PolicyLoadError for half a
    split, a bad reads list, or a table that has no value without an input."""
    engine = regorus.Engine()
    for path, source in modules:
        engine.add_policy(path, source)
    return _split(engine, modules, query), _tables(engine, query)


def declared_split(modules: Modules, query: str) -> Split | None:
    return declared(modules, query)[0]


def _split(engine: regorus.Engine, modules: Modules, query: str) -> Split | None:
    (cached, live), (reads, live_reads) = split_rules(query)
    values = [_value(engine, rule) for rule in (reads, live_reads)]
    needed = (cached, live, reads)
    missing = [rule for rule in needed if not _defines(engine, rule)]
    if len(missing) == len(needed):
        if values[1] is not None:
            raise PolicyLoadError(f"{live_reads} is given without a split: it goes with "
                                  f"{', '.join(needed)}")
        return None
    if missing:
        raise PolicyLoadError(f"a split decision needs {', '.join(needed)}; "
                              f"{', '.join(missing)} not defined")
    return Split(parse_reads(values[0], reads),
                 None if values[1] is None else parse_reads(values[1], live_reads),
                 steady(source for _, source in modules))


def _tables(engine: regorus.Engine, query: str) -> dict[str, Any]:
    base = query.rpartition(".")[0]
    names = _value(engine, f"{base}.tables")
    if names is None:
        return {}
    if not isinstance(names, list | set) or not all(isinstance(n, str) for n in names):
        raise PolicyLoadError(f"{base}.tables must name rules (strings), got {names!r}"[:300])
    tables = {}
    for name in sorted(names):
        value = _value(engine, f"{base}.{name}")
        if value is None:
            raise PolicyLoadError(f"{base}.tables names {name}, which has no value without "
                                  "an input: a table reads no input")
        tables[name] = value
    return tables


def _defines(engine: regorus.Engine, rule: str) -> bool:
    try:
        engine.eval_rule(rule)
    except RuntimeError as exc:
        if "not a valid rule path" in str(exc):
            return False
    return True


def _value(engine: regorus.Engine, rule: str) -> Any:
    """A rule's value with no input; None: not defined, or failing."""
    try:
        return engine.eval_rule(rule)
    except RuntimeError:
        return None
