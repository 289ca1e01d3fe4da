"""The default policy pack's own unit tests; the pack with other limits
(`policies/limits.rego`) or egress lists (`policies/egress_lists.rego`), edited as a user
edits them: for tests and benchmarks whose traffic is not what a limit is for, and
end-to-end tests of the egress rules."""

from __future__ import annotations

import functools
import json
import re
import shutil
from pathlib import Path
from typing import Any

from extproc.policy import rego_tests

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@functools.cache
def pack_rego_tests() -> tuple[rego_tests.RegoTest, ...]:
    """The default pack's Rego unit tests, read once per process (two test modules make a
    case of each)."""
    return tuple(rego_tests.load_engine(POLICIES)[1])


def pack_with_limits(where: Path, **limits: Any) -> Path:
    """A copy of the default pack at `where`, its limits.rego with these values."""
    shutil.copytree(POLICIES, where)
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
    shutil.copytree(POLICIES, where)
    path = where / "egress_lists.rego"
    source = path.read_text()
    lists = f"egress := {json.dumps(egress, indent=1)}"
    source, replaced = re.subn(r"^egress := \{.*?^\}$", lambda _: lists, source,
                               flags=re.MULTILINE | re.DOTALL)
    if replaced != 1:
        raise ValueError(f"{path}: no `egress := {{...}}` object")
    path.write_text(source)
    return where
