"""The decision corpus's inputs, and the same inputs mutated the way a part of the pack
could read them wrongly: another protocol named, a reading missing, null or taken from
another case. Shared by the proofs that a change to the pack's shape changes no decision
(tests/policy/test_pack_gates.py, tests/policy/test_split.py).

Built when first asked for, not at import: reading the ~970 cases into policy inputs (their
SQL analysed) takes seconds, which every test process would otherwise pay to collect."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from hypothesis import strategies as st

from tests import policy_corpus

SECTIONS = ("k8s", "llm", "mcp", "egress", "ssh", "sql", "postgres", "mysql", "identity",
            "activity")
PROTOCOLS = ("http", "sql-http", "k8s", "llm", "mcp", "postgres", "egress", "ssh", None)



@functools.cache
def inputs() -> tuple[Any, ...]:
    """The corpus's inputs (but for the few of 100 KB or more)."""
    return tuple(json.loads(case.input_json) for case in policy_corpus.load()
                 if len(case.input_json) < 100_000)


@functools.cache
def readings() -> dict[str, list[Any]]:
    """Each section's readings among the inputs, to swap one case's for another's."""
    return {key: [i[key] for i in inputs() if isinstance(i, dict) and i.get(key) is not None]
            for key in SECTIONS}


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    value = copy.deepcopy(draw(st.sampled_from(inputs())))
    if not isinstance(value, dict):
        return value
    for _ in range(draw(st.integers(1, 3))):
        move = draw(st.sampled_from(("protocol", "drop", "null", "swap")))
        if move == "protocol" and isinstance(value.get("target"), dict):
            value["target"]["protocol"] = draw(st.sampled_from(PROTOCOLS))
            continue
        key = draw(st.sampled_from(SECTIONS))
        if move == "drop":
            value.pop(key, None)
        elif move == "null":
            value[key] = None
        elif readings()[key]:
            value[key] = copy.deepcopy(draw(st.sampled_from(readings()[key])))
    return value
