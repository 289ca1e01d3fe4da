"""The cost ledger: where an exchange's time goes, stage by stage, per front.

Off unless TOLLGATE_LEDGER names a folder when the process starts: then every stage an
exchange passes through adds the CPU its thread spent in it (`thread_time_ns`: not the
wall clock, which also counts the waits for the GIL while the span exporter or the
record's sender runs) to this process's totals, keyed by the front (the target's
protocol) and the stage, and each act's end counts one exchange. A stage that awaits
(activity: the live counts from the store) counts what other tasks on the loop ran
meanwhile too. A thread of
the ledger's writes the totals to `<folder>/<pid>.json` every FLUSH_SECONDS (a copy taken
under the GIL: the loop is never stopped for it); bench/ledger.py reads every
process's file before and after a timed window and prints the difference per exchange,
beside the CPU /proc says the processes spent, whose rest the ledger does not attribute
(the front's wire and relay, the event loop, gRPC). Off, `stage` hands back one shared
context that does nothing: a call and a `with`, tens of nanoseconds.

Stages (docs/performance/ledger.md): open (the exchange's state and span), interpret,
activity (live counts and budgets read for the decision), flow (what the identity and
run received, read for an acting request's decision: activity/flow.py), decide (the policy), mask
(answers, rows and records masked by the act), span (the exchange's span ended), record
(the evidence encoded for the writer), journal (the evidence appended to the process's
journal and queued for the writer), observe (metrics and activity counted
from the record), and in the writer process: write (decode, mask, chain, store) and
span (the exchanges' spans exported once their records are stored).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ENV = "TOLLGATE_LEDGER"
_FOLDER = os.environ.get(ENV) or None
ON = _FOLDER is not None
FLUSH_SECONDS = 0.25

# (front, stage) -> [nanoseconds, times]; front -> exchanges ended.
_stages: dict[tuple[str, str], list[int]] = {}
_exchanges: dict[str, int] = {}


class _Stage:
    """One stage's timing, reused: stages do not nest within one front's stage."""

    __slots__ = ("_key", "_started")

    def __init__(self, front: str, name: str) -> None:
        self._key, self._started = (front, name), 0

    def __enter__(self) -> None:
        self._started = time.thread_time_ns()

    def __exit__(self, *_: object) -> None:
        add(self._key, time.thread_time_ns() - self._started)


_OFF = contextlib.nullcontext()


def front_of(target: Any) -> str:
    """The ledger's name for the front of an exchange to `target` (a config Target or
    the record's copy of one): its protocol, "none" without a target."""
    return target.protocol if target is not None else "none"


def stage(front: str, name: str) -> contextlib.AbstractContextManager[None]:
    """A `with` block timed as `name` of `front`'s exchanges (nothing when off)."""
    return _Stage(front, name) if ON else _OFF


def add(key: tuple[str, str], ns: int) -> None:
    totals = _stages.get(key)
    if totals is None:
        totals = _stages[key] = [0, 0]
    totals[0] += ns
    totals[1] += 1


def exchange(front: str) -> None:
    """One exchange of `front` ended (its act's end): what the stages are divided by."""
    if ON:
        _exchanges[front] = _exchanges.get(front, 0) + 1


def flush() -> None:
    """This process's totals written (a whole file, replaced: a reader never sees half)."""
    if _FOLDER is None:
        return
    folder = Path(_FOLDER)
    path = folder / f"{os.getpid()}.json"
    part = folder / f".{os.getpid()}.json.part"
    exchanges, stages = dict(_exchanges), list(_stages.items())  # each copy in one step
    with contextlib.suppress(OSError):
        part.write_bytes(orjson.dumps({
            "exchanges": exchanges,
            "stages": [[front, name, ns, n] for (front, name), (ns, n) in stages]}))
        part.replace(path)


def read(folder: Path) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Every process's totals in `folder`, summed: exchanges per front, ns per stage."""
    exchanges: dict[str, int] = {}
    stages: dict[tuple[str, str], int] = {}
    for path in _files(folder):
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            data = orjson.loads(path.read_bytes())
            for front, n in data["exchanges"].items():
                exchanges[front] = exchanges.get(front, 0) + n
            for front, name, ns, _ in data["stages"]:
                stages[(front, name)] = stages.get((front, name), 0) + ns
    return exchanges, stages


def _files(folder: Path) -> Iterator[Path]:
    yield from sorted(folder.glob("[0-9]*.json"))


def _flushing() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        flush()


def _start() -> None:
    """The flushing thread, here and in every process forked from here (a thread does
    not survive a fork; the child's totals start from nothing, in a file of its own)."""
    _stages.clear()
    _exchanges.clear()
    threading.Thread(target=_flushing, name="tollgate-ledger", daemon=True).start()


if ON:
    _start()
    os.register_at_fork(after_in_child=_start)
