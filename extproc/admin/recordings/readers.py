"""Who may read which records: the `recordings` config section applied to a verified token.

A reader named in `readers` reads every record; one named only for some targets or
environments reads those targets' records and nothing else (no record without a target:
policy loads, other readers' accesses). A token carrying an agent group reads nothing,
whatever else it carries: the record is evidence about agents, never theirs to read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from extproc.config import Recordings, Target
from extproc.identity import Authenticated, principals


class NotAReader(Exception):
    """The caller may read no record (403); the message says why."""


@dataclass(frozen=True)
class Scope:
    """What one caller may read: every record (`targets` None), or those of `targets`;
    of `identity` only, where given (an approver reading a requester's records)."""

    targets: frozenset[str] | None
    identity: str | None = None

    def sql(self) -> tuple[str, tuple[str, ...]]:
        """A condition on `records` (with its parameters) keeping what the scope allows."""
        whose = ("identity = ?", (self.identity,)) if self.identity is not None else None
        if self.targets is None:
            return whose or ("1 = 1", ())
        condition = f"target IN ({', '.join('?' * len(self.targets))})"
        params = tuple(sorted(self.targets))
        if whose is not None:
            return f"{condition} AND {whose[0]}", (*params, *whose[1])
        return condition, params


def approvers_scope(requester: str, target: str) -> Scope:
    """What an approval's approver reads without being a reader: its requester's records
    on its target, what they need to decide (earlier refusals, what else it did)."""
    return Scope(frozenset({target}), requester)


class Readers:
    def __init__(self, settings: Recordings, targets: Iterable[Target]) -> None:
        self._readers = frozenset(settings.readers)
        self._agents = frozenset(settings.agent_groups)
        scoped: dict[str, set[str]] = {}
        for name, readers in settings.target_readers.items():
            for reader in readers:
                scoped.setdefault(reader, set()).add(name)
        for target in targets:
            for reader in settings.environment_readers.get(target.environment, ()):
                scoped.setdefault(reader, set()).add(target.name)
        self._scoped = {reader: frozenset(names) for reader, names in scoped.items()}

    def scope(self, caller: Authenticated) -> Scope:
        """The caller's scope, or NotAReader."""
        if self._agents.intersection(caller["groups"]):
            raise NotAReader("agents never read recordings")
        names = principals(caller)
        if names & self._readers:
            return Scope(None)
        targets = frozenset(t for name in names for t in self._scoped.get(name, ()))
        if not targets:
            raise NotAReader("recordings are for their readers only")
        return Scope(targets)
