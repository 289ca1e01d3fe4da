"""xdist's work stealing, with a module's tests kept in one test process where it can.

A module's shared set-up (a gateway, a browser, OPA's answers on the whole corpus) is made
once in each process that runs any of its tests. xdist's `worksteal` hands out and steals
tests by count, so a module cut at a chunk's edge or a steal's was set up twice or more:
one run's module set-ups done again cost some 90 s of test time (OPA's answers twice, a
browser six extra times, gateways, the OIDC provider). Here every cut is moved to the
nearest place where one module ends and the next begins, within what the count allows;
a module is split only when it is all there is left to share, so that no process waits
idle while another has work.

`make test` runs it with `--dist worksteal` (tests/conftest.py hands xdist this
scheduler in its place).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdist.scheduler import WorkStealingScheduling
from xdist.scheduler.worksteal import MIN_PENDING
from xdist.workermanage import WorkerController


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def boundary(modules: Sequence[str], start: int, end: int, wanted: int) -> int:
    """The cut in `modules[start:end]` nearest to `wanted` where a module begins (so
    that `modules[cut - 1]` and `modules[cut]` differ), or `wanted` if there is none."""
    best = None
    for cut in range(max(start + 1, 1), end):
        if modules[cut - 1] != modules[cut] and (
                best is None or abs(cut - wanted) < abs(best - wanted)):
            best = cut
    return wanted if best is None else best


class ModuleStealing(WorkStealingScheduling):
    """WorkStealingScheduling whose chunks and steals end at module boundaries."""

    def _modules(self, indices: Sequence[int]) -> list[str]:
        assert self.collection is not None
        return [module_of(self.collection[i]) for i in indices]

    def _send_tests(self, node: WorkerController, num: int) -> None:
        if 0 < num < len(self.pending):
            num = boundary(self._modules(self.pending), 1, len(self.pending), num)
        super()._send_tests(node, num)

    def check_schedule(self) -> None:
        """As WorkStealingScheduling's, but the steal it asks for starts where a module
        does (the victim keeps at least MIN_PENDING tests)."""
        if self.steal_requested_from_node is None and not self.pending:
            idle = [n for n, p in self.node2pending.items()
                    if not n.shutting_down and len(p) < MIN_PENDING]
            busy = [(n, p) for n, p in self.node2pending.items() if not n.shutting_down]
            if idle and busy:
                node, pending = max(busy, key=lambda np: len(np[1]))
                most = max(0, len(pending) - MIN_PENDING)
                count = min(len(pending) // 2, most)
                if count:
                    cut = boundary(self._modules(pending), MIN_PENDING, len(pending),
                                   len(pending) - count)
                    node.send_steal(pending[cut:])
                    self.steal_requested_from_node = node
                    return
        super().check_schedule()
