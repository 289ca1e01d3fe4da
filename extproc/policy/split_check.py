"""Whether a pack's split holds on given inputs: `reads` and `live_reads` miss no path
their part reads, and the parts combine to the pack's own `decision` (split.py).

Differential, not static: each part is asked on the whole input and on the input cut
down to what it declares; where the answers differ, the part read something left out,
and each leaf left out is put back alone to name the paths that change the answer.
`tollgate policy test` runs it on the representative inputs shipped beside it
(split_inputs.json, one set of exchanges of every protocol) and on any the user adds;
the test suite on the whole decision corpus and on mutated inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from importlib import resources
from typing import Any

import orjson

from extproc.codecs import jsonenc
from extproc.policy.decision import Decision
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.errors import PolicyError
from extproc.policy.split import Split, Tree, add_path, combine, project


def shipped_inputs() -> list[tuple[str, dict[str, Any]]]:
    """The representative inputs shipped with tollgate, by name."""
    text = resources.files("extproc.policy").joinpath("split_inputs.json").read_bytes()
    return [(case["name"], case["input"]) for case in orjson.loads(text)]


def problems(engine: EmbeddedEngine, inputs: Iterable[tuple[str, dict[str, Any]]]) -> list[str]:
    """What is wrong with the engine's split on these inputs, one line each (none: it
    holds, or the pack declares no split)."""
    split = engine.split
    if split is None:
        return []
    found: dict[str, str] = {}
    cached_rule, live_rule = engine.parts
    for name, value in inputs:
        full = jsonenc.dumps(value)
        cached = _ask(engine, cached_rule, full)
        kept = _ask(engine, cached_rule, split.key(value))
        if cached != kept:
            for path in _read_outside(engine, cached_rule, value, split.reads, kept, {}):
                found.setdefault(f"{engine.reads[0]} misses input.{path}", name)
        answer = kept if isinstance(kept, str) else "null"
        whole = _ask(engine, live_rule, f'{full[:-1]},"cached":{answer}}}')
        if split.live_reads is not None:
            live = _ask(engine, live_rule, split.live_input(value, full, answer))
            if whole != live:
                for path in _read_outside(engine, live_rule, value, split.live_reads, live,
                                          {"cached": orjson.loads(answer)}):
                    found.setdefault(f"{engine.reads[1]} misses input.{path}", name)
        decision = _decision(engine, full)
        combined = _combined(engine, value, full, split)
        if decision != combined:
            found.setdefault(f"the parts combine to {combined}, the decision is {decision}",
                             name)
    return [f"{problem} (input {name})" for problem, name in found.items()]


def _ask(engine: EmbeddedEngine, rule: str, input_json: str) -> Any:
    """A part's answer as a value, or its error as text: both compare."""
    try:
        return orjson.loads(engine.answer(rule, input_json))
    except PolicyError as exc:
        return f"error: {exc}"


def _decision(engine: EmbeddedEngine, full: str) -> Decision | str:
    try:
        return Decision.parse(orjson.loads(engine.answer(engine.query, full)))
    except (PolicyError, ValueError) as exc:
        return f"error: {exc}"


def _combined(engine: EmbeddedEngine, value: dict[str, Any], full: str,
              split: Split) -> Decision | str:
    cached_rule, live_rule = engine.parts
    try:
        answer = engine.answer(cached_rule, split.key(value))
        return combine(answer, engine.answer(live_rule, split.live_input(value, full, answer)))
    except PolicyError as exc:
        return f"error: {exc}"


def _read_outside(engine: EmbeddedEngine, rule: str, value: dict[str, Any], tree: Tree,
                  answer: Any, extra: dict[str, Any]) -> list[str]:
    """The leaves of `value` outside `tree` that change the rule's answer when put back
    alone; the whole of what is outside when no one leaf does (rules that read several
    together)."""
    inside = {tuple(p) for p, _ in leaves(project(value, tree))}
    outside = [p for p, _ in leaves(value) if tuple(p) not in inside]
    named = []
    for path in dict.fromkeys(tuple(p) for p in outside):
        wider = copy.deepcopy(tree)
        add_path(wider, list(path))
        projected = {**project(value, wider), **extra}
        if _ask(engine, rule, jsonenc.dumps(projected)) != answer:
            named.append(".".join(path))
    return named or sorted({".".join(p[:1]) for p in outside})


def leaves(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[list[str], Any]]:
    """Every leaf of an input with its path as `reads` segments (an array's elements
    under the segment ending in `[*]`)."""
    if isinstance(value, dict) and value:
        return [leaf for key, sub in value.items() for leaf in leaves(sub, (*prefix, key))]
    if isinstance(value, list) and value and prefix:
        each = (*prefix[:-1], f"{prefix[-1]}[*]")
        return [leaf for sub in value for leaf in leaves(sub, each)]
    return [(list(prefix), value)]
