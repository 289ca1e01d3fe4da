"""The policy engine's interface (`PolicyEngine`), and the one place a backend is chosen
and its policies read (`open_engine`, `load_modules`).

Beside the backends (embedded.py, opa.py) rather than in either: what the service and
the command line hold is this interface, whichever backend the config names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from extproc.policy.sources import Modules, read_modules

if TYPE_CHECKING:
    from extproc.config import Policy
    from extproc.policy.decision import Decision


Decide = Callable[[str], "Awaitable[Decision]"]
"""A decision on a JSON-encoded input (`PolicyEngine.decide`, of one revision)."""
Vet = Callable[[Decide], Awaitable[None]]
"""A check of a revision before it serves (smoke.py): decides inputs with the revision's
`Decide`, raises PolicyLoadError to keep the old one."""


class PolicyEngine(Protocol):
    """Decides one policy input. Implementations compile or upload policies at load only."""

    revision: str
    """A short hash of the loaded policy sources, so a decision can name what made it."""

    async def decide(self, input_json: str) -> Decision:
        """Evaluate the query for a JSON-encoded input; raise PolicyError on any failure."""
        ...

    def decides_responses(self, target_json: str) -> bool:
        """Whether, for this target (`{"target": ...}` as JSON), the policies' decision can
        change with the response. False only when the pack says so: its rule
        `decides_responses` (beside the decision's) is false for this target. A response
        the policy would only decide as it decided the request is then not decided again."""
        ...

    async def load(self, modules: Modules, vet: Vet | None = None) -> None:
        """Serve these policies from now on, or raise PolicyLoadError and keep the old ones.
        `vet` is run on the new revision before it serves (a PolicyLoadError from it
        keeps the old ones too)."""
        ...

    async def close(self) -> None:
        """Release connections; no decision follows."""
        ...


async def open_engine(settings: Policy, policy_dir: Path,
                      modules: Modules | None = None) -> PolicyEngine:
    """The configured backend, serving the directory's policies (`modules`, when read
    already: `load_modules`); PolicyLoadError if it cannot."""
    if modules is None:
        modules = load_modules(settings, policy_dir)
    if settings.engine == "opa":
        from extproc.policy.opa import OpaEngine

        opa = OpaEngine(settings, policy_dir)
        try:
            await opa.load(modules)
        except BaseException:
            await opa.close()
            raise
        return opa
    from extproc.policy.embedded import EmbeddedEngine

    return EmbeddedEngine(modules, settings.query)


def load_modules(settings: Policy, policy_dir: Path) -> Modules:
    """What tollgate loads of the directory: its modules, or none when OPA loads its own."""
    if settings.engine == "opa" and not settings.upload:
        return []
    return read_modules(policy_dir)
