"""The suite's work stealing (tests/support/scheduling.py): chunks and steals end where a
module does, and a module is split only when nothing else is left to share.

The scheduler is driven as xdist's controller drives it, with stand-ins for its worker
controllers that note what they were sent (the scheduler reads nothing else of them)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tests.support.scheduling import ModuleStealing, boundary


class Node:
    """What the scheduler calls on a worker controller."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[list[int]] = []
        self.asked: list[list[int]] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.append(list(indices))

    def send_steal(self, indices: list[int]) -> None:
        self.asked.append(list(indices))

    def shutdown(self) -> None:
        self.shutting_down = True


class Config:
    def __init__(self, nodes: int) -> None:
        self._tx = [f"{nodes}*popen"]

    def getvalue(self, name: str) -> Any:
        assert name == "tx"
        return self._tx


def collection_of(sizes: dict[str, int]) -> list[str]:
    return [f"tests/{module}.py::test_{i}" for module, count in sizes.items()
            for i in range(count)]


def started(sizes: dict[str, int], nodes: int) -> tuple[ModuleStealing, list[Node], list[str]]:
    collection = collection_of(sizes)
    scheduler = ModuleStealing(Config(nodes))  # type: ignore[arg-type]
    workers = [Node(f"gw{i}") for i in range(nodes)]
    for node in workers:
        scheduler.add_node(node)  # type: ignore[arg-type]
        scheduler.add_node_collection(node, collection)  # type: ignore[arg-type]
    scheduler.schedule()
    return scheduler, workers, collection


def modules(collection: list[str], indices: list[int]) -> list[str]:
    return sorted({collection[i].split("::")[0] for i in indices})


def test_the_cut_moves_to_the_nearest_module_start_or_stays_where_there_is_none() -> None:
    names = ["a", "a", "a", "b", "b", "c", "c", "c", "c"]
    assert boundary(names, 1, len(names), 4) == 3
    assert boundary(names, 1, len(names), 5) == 5
    assert boundary(names, 1, len(names), 7) == 5
    assert boundary(names, 6, len(names), 7) == 7  # within c alone: no module starts
    assert boundary(["a"] * 5, 1, 5, 2) == 2


def test_the_first_chunks_hold_whole_modules() -> None:
    _, workers, collection = started({"one": 7, "two": 5, "three": 9, "four": 3}, 2)
    first, second = (node.sent[0] for node in workers)
    assert first + second == list(range(len(collection)))
    assert not set(modules(collection, first)) & set(modules(collection, second))


def test_a_steal_starts_where_a_module_does() -> None:
    scheduler, (busy, idle), collection = started({"one": 6, "two": 4, "three": 10}, 2)
    # The first took one and two, the second three; the second runs all of its own.
    assert modules(collection, busy.sent[0]) == ["tests/one.py", "tests/two.py"]
    for index in idle.sent[0]:
        scheduler.mark_test_complete(idle, index)  # type: ignore[arg-type]
    # The first is still on its first test: the steal takes two whole, not half of one.
    asked = busy.asked[-1]
    assert modules(collection, asked) == ["tests/two.py"]
    assert asked == [i for i, name in enumerate(collection) if "two.py" in name]


def test_a_module_left_alone_is_split_rather_than_a_process_left_idle() -> None:
    scheduler, (busy, idle), collection = started({"one": 20, "two": 2}, 2)
    for index in idle.sent[0]:
        scheduler.mark_test_complete(idle, index)  # type: ignore[arg-type]
    asked = busy.asked[-1]
    assert modules(collection, asked) == ["tests/one.py"]
    assert asked == list(range(10, 20))  # half of what the first has left
