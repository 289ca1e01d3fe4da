"""The policy engine interface: one query, `data.tollgate.decision`, per decision.

Backends differ in where Rego runs (in process, or in an OPA server), never in
what they answer: a result is a `Decision`, and anything else is a `PolicyError`
that the caller turns into a refusal (or, for a fail-open target, a logged allow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from extproc.policy.decision import Decision, MalformedDecision


class PolicyError(Exception):
    """The engine could not produce a valid decision (the cause is in the message)."""


class PolicyLoadError(Exception):
    """The policies cannot be loaded at all (missing directory, syntax error)."""


class PolicyEngine(Protocol):
    """Decides one policy input. Implementations load and compile policies once."""

    revision: str
    """A short hash of the loaded policy sources, so a decision can name what made it."""

    async def decide(self, input_json: str) -> Decision:
        """Evaluate the query for a JSON-encoded input; raise PolicyError on any failure."""
        ...


def load_engine(engine: str, policy_dir: Path, query: str) -> PolicyEngine:
    """Build the configured backend; raises PolicyLoadError when policies cannot load."""
    if engine == "embedded":
        from extproc.policy.embedded import EmbeddedEngine

        return EmbeddedEngine.from_directory(policy_dir, query)
    raise PolicyLoadError(f"unknown policy engine {engine!r}")


__all__ = [
    "Decision",
    "MalformedDecision",
    "PolicyEngine",
    "PolicyError",
    "PolicyLoadError",
    "load_engine",
]
