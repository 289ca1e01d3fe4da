"""The policy engine interface: one query, `data.tollgate.decision`, per decision.

Backends differ in where Rego runs (in process, or in an OPA server), never in
what they answer: a result is a `Decision`, and anything else is a `PolicyError`
that the caller turns into a refusal (or, for a fail-open target, a logged allow).
engine.py holds that interface and opens the backend the config names (embedded.py, opa.py).

Layer: services (pyproject.toml's import contract): imports its own package and the layers
below it.
"""

from __future__ import annotations

import os

# regorus's errors are shown as one line (errors.py); where RUST_BACKTRACE is set (some
# machines set it for every process), each error would also capture a Rust backtrace:
# ~40 ms apiece, and a pack that declares no split or tables is asked three rules it does
# not define at every load. Before any engine runs: the setting is read once per process.
os.environ.setdefault("RUST_LIB_BACKTRACE", "0")

from extproc.policy.decision import Decision, MalformedDecision
from extproc.policy.engine import PolicyEngine, load_modules, open_engine
from extproc.policy.errors import PolicyError, PolicyLoadError
from extproc.policy.sources import Modules

__all__ = [
    "Decision",
    "MalformedDecision",
    "Modules",
    "PolicyEngine",
    "PolicyError",
    "PolicyLoadError",
    "load_modules",
    "open_engine",
]
