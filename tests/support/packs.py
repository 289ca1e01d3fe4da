"""The default policy pack with other limits (`policies/limits.rego` edited as a user
edits it), for tests and benchmarks whose traffic is not what a limit is for."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

POLICIES = Path(__file__).resolve().parents[2] / "policies"


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
