"""The cost ledger in a benchmark: tollgate's time per exchange, stage by stage.

bench/fronts.py starts tollgate with TOLLGATE_LEDGER set to a folder of the run's
(extproc/ledger.py: each process writes its totals there once a second); a bench takes a
`Snapshot` before and after its timed window, and `Ledger.between` is what the window
cost per exchange of one front: each stage's µs (the front's own, and the writer
process's, divided by every exchange it wrote), beside the CPU /proc counted for the
window. What the stages do not cover — the front's wire and relay, the event loop, gRPC,
the kernel — is the rest, printed as such: the ledger never claims what it did not time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from extproc import ledger

# The order stages are printed in: an exchange's path through the act, then the writer.
STAGES = ("open", "interpret", "activity", "flow", "decide", "mask", "span", "record",
          "journal", "observe")
WRITER_STAGES = ("decode", "mask", "chain", "store", "span")
# Stages timed around an await: the thread's CPU meanwhile, other tasks' included.
WALL = {"activity", "flow"}


@dataclass(frozen=True)
class Snapshot:
    exchanges: dict[str, int]
    stages: dict[tuple[str, str], int]

    @classmethod
    def of(cls, folder: Path) -> Snapshot:
        return cls(*ledger.read(folder))


@dataclass(frozen=True)
class Ledger:
    """One window's µs per exchange of a front, per stage; the CPU /proc counted."""

    front: str
    exchanges: int
    stages: dict[str, float]
    writer: dict[str, float]
    cpu_us: float

    @classmethod
    def between(cls, before: Snapshot, after: Snapshot, front: str | None,
                cpu_us_per_exchange: float) -> Ledger:
        """`front`'s (None: the one with the most exchanges in the window)."""
        if front is None:
            front = max(after.exchanges, default="none", key=lambda f: after.exchanges[f]
                        - before.exchanges.get(f, 0))
        n = after.exchanges.get(front, 0) - before.exchanges.get(front, 0)
        every = sum(after.exchanges.values()) - sum(before.exchanges.values())

        def spent(key: tuple[str, str], over: int) -> float:
            ns = after.stages.get(key, 0) - before.stages.get(key, 0)
            return ns / over / 1000 if over else 0.0

        return cls(front, n, {s: spent((front, s), n) for s in STAGES},
                   {s: spent(("writer", s), every) for s in WRITER_STAGES},
                   cpu_us_per_exchange)

    def as_json(self) -> dict[str, object]:
        return {"front": self.front, "exchanges": self.exchanges, "stages": self.stages,
                "writer": self.writer, "cpu_us": self.cpu_us}


def kept_in(logs: Path) -> tuple[Path, dict[str, str]]:
    """The folder a tollgate whose files are in `logs` keeps its ledger in, made, and
    the environment that tells it so."""
    folder = logs / "ledger"
    folder.mkdir(exist_ok=True)
    return folder, {ledger.ENV: str(folder)}


def settle(folder: Path) -> Snapshot:
    """The ledger once every process has written what it counted: two readings a flush
    apart that agree."""
    last = Snapshot.of(folder)
    while True:
        time.sleep(ledger.FLUSH_SECONDS * 2)
        now = Snapshot.of(folder)
        if now == last:
            return now
        last = now


def median(ledgers: Sequence[Ledger]) -> Ledger:
    """Each figure's median over the rounds."""
    first = ledgers[0]
    return Ledger(first.front, int(statistics.median(x.exchanges for x in ledgers)),
                  {s: statistics.median(x.stages[s] for x in ledgers) for s in first.stages},
                  {s: statistics.median(x.writer[s] for x in ledgers) for s in first.writer},
                  statistics.median(x.cpu_us for x in ledgers))


def table(found: Ledger, floor_us: float | None = None) -> str:
    """The ledger as a table: each stage's µs per exchange and share of the CPU."""
    cpu = found.cpu_us
    lines = [f"cost ledger, {found.front}: µs per exchange (CPU {cpu:.0f} µs"
             + (f", floor {floor_us:.0f} µs" if floor_us else "") + ")",
             f"  {'stage':22s}{'µs':>9s}{'share':>8s}"]
    timed = 0.0
    for process, stages in (("", found.stages), ("writer ", found.writer)):
        for name, us in stages.items():
            wall = " (await)" if name in WALL else ""
            lines.append(f"  {process + name + wall:22s}{us:9.1f}{us / cpu:8.1%}"
                         if cpu else f"  {process + name:22s}{us:9.1f}")
            timed += 0.0 if name in WALL else us
    rest = cpu - timed
    lines.append(f"  {'not in a stage':22s}{rest:9.1f}{rest / cpu:8.1%}" if cpu else "")
    return "\n".join(lines)
