"""The default policy pack's own unit tests; the pack with other limits
(`policies/limits.rego`) or egress lists (`policies/egress_lists.rego`), edited as a user
edits them: for tests and benchmarks whose traffic is not what a limit is for, and
end-to-end tests of the egress rules; the pack without its protocol gates, to show that
they change no decision and what they save."""

from __future__ import annotations

import functools
import json
import re
import shutil
from pathlib import Path
from typing import Any

import regorus

from extproc.policy import rego_tests

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@functools.cache
def pack_rego_tests() -> tuple[rego_tests.RegoTest, ...]:
    """The default pack's Rego unit tests, read once per process (two test modules make a
    case of each)."""
    return tuple(rego_tests.load_engine(POLICIES)[1])


def _copy(where: Path) -> None:
    """The default pack copied to `where`, its Rego tests too: they pin the limits and
    lists the copy edits, so it serves (policy/smoke.py runs them) as a user's edit does."""
    shutil.copytree(POLICIES, where)


def pack_with_limits(where: Path, **limits: Any) -> Path:
    """A copy of the default pack at `where`, its limits.rego with these values."""
    _copy(where)
    path = where / "limits.rego"
    source = path.read_text()
    for name, value in limits.items():
        source, replaced = re.subn(rf'("{name}":\s*)[^,\n]+', rf"\g<1>{json.dumps(value)}",
                                   source)
        if replaced != 1:
            raise ValueError(f"{path}: no limit {name}")
    path.write_text(source)
    return where


def pack_with_egress(where: Path, egress: dict[str, Any]) -> Path:
    """A copy of the default pack at `where` whose egress_lists.rego holds these lists
    (`data.tollgate.egress`), as a user writes them: a Rego object in JSON syntax."""
    _copy(where)
    path = where / "egress_lists.rego"
    source = path.read_text()
    lists = f"egress := {json.dumps(egress, indent=1)}"
    source, replaced = re.subn(r"^egress := \{.*?^\}$", lambda _: lists, source,
                               flags=re.MULTILINE | re.DOTALL)
    if replaced != 1:
        raise ValueError(f"{path}: no `egress := {{...}}` object")
    path.write_text(source)
    return where


def pack_with_roles(where: Path, roles: dict[str, str]) -> Path:
    """A copy of the default pack at `where` whose roles.rego gives each group of
    `roles` its role too (after the pack's own entries: a target listing only these
    takes them), as a user adds a database's roles of other names."""
    _copy(where)
    path = where / "roles.rego"
    entries = "".join(f'\t{{"group": {json.dumps(group)}, "role": {json.dumps(role)}}},\n'
                      for group, role in roles.items())
    source, added = re.subn(r'(database_roles := \{"\*": \[\n(?:\t.*\n)*?)(\]\})',
                            lambda found: found[1] + entries + found[2], path.read_text())
    if added != 1:
        raise ValueError(f"{path}: no `database_roles := {{\"*\": [...]}}`")
    path.write_text(source)
    return where


SETS = ("denials", "holds", "alerts")
# A file's gate: `denials contains x if { k8s_exchange; some x in k8s_denials }`, or of
# the decision's live part: `live_holds contains x if { activity_tracked; ... }`.
GATE = re.compile(rf"^(live_)?({'|'.join(SETS)}) contains x if \{{\n\t(\w+_exchange|"
                  rf"activity_tracked)\n\tsome x in \w+_({'|'.join(SETS)})\n\}}\n",
                  re.MULTILINE)
# A rule behind a gate: `k8s_denials contains {...}`; activity.rego's, of the live part.
GATED_RULE = re.compile(rf"^(?!live_)(?!activity_)\w+?_({'|'.join(SETS)}) contains",
                        re.MULTILINE)
LIVE_RULE = re.compile(rf"^activity_({'|'.join(SETS)}) contains", re.MULTILINE)


def ungated(modules: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pack as it was before its protocol gates (docs/policies.md, "The default
    pack"): every rule adds to `denials`, `holds` and `alerts` directly."""
    return [(path, source if path.endswith("_test.rego") else LIVE_RULE.sub(
                 r"live_\1 contains", GATED_RULE.sub(r"\1 contains", GATE.sub("", source))))
            for path, source in modules]


def decision_program(modules: list[tuple[str, str]]) -> regorus.Rvm:
    """The RVM program of `data.tollgate.decision` over a pack's rules (its tests left
    out), as the embedded engine runs it."""
    vm = regorus.Rvm()
    vm.load_program(regorus.Program.compile_from_modules(
        "{}", [m for m in modules if not m[0].endswith("_test.rego")],
        ["data.tollgate.decision"]))
    return vm
