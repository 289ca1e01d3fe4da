"""What one decision of the default pack costs, by kind of exchange, with and without its
protocol gates, and as tollgate decides it once its cached part's answer is kept, in one
run.

Run from the repository root: `python -m bench.pack_cost [--batches N] [--files F ...]
[--json-out PATH]` (`make bench` does, with the defaults).

Every case of the decision corpus (tests/policy_corpus/, grouped by its file: sql.json,
k8s.json, ...) is decided by regorus's RVM, as tollgate's embedded backend decides, on two
programs compiled in this process: the pack as shipped, and the same pack with its gates
undone textually (`tests.support.packs.ungated`: every rule adds to `denials`, `holds` and
`alerts` directly, as before the gates). The two take turns case by case; a case's time
is the best of `--batches` batches of ten decisions, the input set each time (what
tollgate pays: `set_input_json` then `execute`). Decisions that differ between the two
programs are counted and make the run fail: the gates must change no decision
(tests/policy/test_pack_gates.py checks that too, on mutated inputs).

The third column is what tollgate pays for the same input when the decision's cached part
has answered it before (docs/policies.md, "Cached and live"): the embedded engine's
`decide_now`, which reads the input, projects it, finds the answer kept, and evaluates the
live part; the case is decided once first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import regorus

from extproc.policy import PolicyError
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules
from tests import policy_corpus
from tests.support.packs import POLICIES, decision_program, ungated

BIG = 100_000  # inputs over this many characters measure their size, not the pack


def cost(vm: regorus.Rvm, input_json: str, batches: int) -> float:
    """µs per decision: the best of `batches` batches of ten."""
    best = float("inf")
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(10):
            vm.set_input_json(input_json)
            vm.execute()
        best = min(best, (time.perf_counter() - start) / 10)
    return best * 1e6


def kept_cost(engine: EmbeddedEngine, input_json: str, batches: int) -> float:
    """µs per decision once the cached part's answer is kept: the best of `batches` of ten."""
    def decide() -> None:
        with contextlib.suppress(PolicyError):
            engine.decide_now(input_json)

    decide()
    best = float("inf")
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(10):
            decide()
        best = min(best, (time.perf_counter() - start) / 10)
    return best * 1e6


def decision(vm: regorus.Rvm, input_json: str) -> str:
    try:
        vm.set_input_json(input_json)
        return str(vm.execute())
    except RuntimeError as exc:
        return f"policy error: {exc}"


def measure(batches: int, files: set[str] | None) -> dict[str, Any]:
    modules = read_modules(POLICIES)
    gated, plain = decision_program(modules), decision_program(ungated(modules))
    engine = EmbeddedEngine(modules, "data.tollgate.decision")
    rows: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    differing = []
    for case in policy_corpus.load():
        if (files and case.file not in files) or case.tables or len(case.input_json) > BIG:
            continue
        if decision(gated, case.input_json) != decision(plain, case.input_json):
            differing.append(case.name)
        rows[case.file].append((cost(plain, case.input_json, batches),
                                cost(gated, case.input_json, batches),
                                kept_cost(engine, case.input_json, batches)))

    def mean(figures: list[tuple[float, float, float]], i: int) -> float:
        return statistics.mean(f[i] for f in figures)

    every = [f for figures in rows.values() for f in figures]
    files_out = {
        name: {"cases": len(figures), "ungated_us": mean(figures, 0),
               "gated_us": mean(figures, 1), "kept_us": mean(figures, 2)}
        for name, figures in sorted(rows.items())}
    return {"files": files_out, "differing": differing, "ungated_us": mean(every, 0),
            "gated_us": mean(every, 1), "kept_us": mean(every, 2)}


def table(found: dict[str, Any]) -> str:
    lines = ["| corpus file | cases | without gates µs | with gates µs | ratio "
             "| answer kept µs |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    rows = [*found["files"].items(),
            ("all", {**found, "cases": sum(r["cases"] for r in found["files"].values())})]
    for name, row in rows:
        lines.append(f"| {name} | {row['cases']} | {row['ungated_us']:.0f} | "
                     f"{row['gated_us']:.0f} | {row['gated_us'] / row['ungated_us']:.2f} | "
                     f"{row['kept_us']:.1f} |")
    lines.append(f"decisions that differ: {len(found['differing'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pack_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=3, help="per case and pack (default 3)")
    parser.add_argument("--files", nargs="*", help="corpus files to measure (default: all)")
    parser.add_argument("--json-out", type=Path, help="also save the figures as JSON here")
    args = parser.parse_args(argv)
    found = measure(args.batches, set(args.files) if args.files else None)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(found, indent=2), encoding="utf-8")
    print(table(found))
    if found["differing"]:
        print(f"the gates changed decisions: {found['differing']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
