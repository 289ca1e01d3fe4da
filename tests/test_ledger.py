"""The cost ledger (extproc/ledger.py): nothing when off; when on, each stage's CPU and
each front's exchanges, in a file per process that bench/ledger.py reads and sums. The
ledger's switch is read as a process starts, so each case runs in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from bench.ledger import Ledger, Snapshot, settle, table
from extproc import ledger


def in_process(code: str, folder: Path | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != ledger.ENV}
    if folder is not None:
        env[ledger.ENV] = str(folder)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_off_a_stage_is_one_shared_context_and_nothing_is_written(tmp_path: Path) -> None:
    assert in_process("""
        from extproc import ledger
        with ledger.stage("postgres", "decide"):
            pass
        ledger.exchange("postgres")
        ledger.flush()
        print(ledger.ON, ledger.stage("a", "b") is ledger.stage("c", "d"), ledger._stages)
    """, None).split() == ["False", "True", "{}"]
    assert list(tmp_path.iterdir()) == []


def test_on_each_stage_and_exchange_is_counted_and_written(tmp_path: Path) -> None:
    in_process("""
        import os, time
        from extproc import ledger

        def spin(ns):  # CPU, which the ledger counts (a sleep is none)
            until = time.thread_time_ns() + ns
            while time.thread_time_ns() < until:
                pass

        for _ in range(3):
            with ledger.stage("postgres", "decide"):
                spin(2_000_000)
            with ledger.stage("postgres", "activity"):
                time.sleep(0.01)  # waiting: next to nothing
            ledger.exchange("postgres")
        with ledger.stage("writer", "chain"):
            pass
        ledger.flush()
        # A process forked from here starts from nothing, in a file of its own.
        if (pid := os.fork()) == 0:
            with ledger.stage("mysql", "mask"):
                spin(1_000_000)
            ledger.exchange("mysql")
            ledger.flush()
            os._exit(0)
        os.waitpid(pid, 0)
    """, tmp_path)
    assert len(list(tmp_path.glob("[0-9]*.json"))) == 2
    exchanges, stages = ledger.read(tmp_path)
    assert exchanges == {"postgres": 3, "mysql": 1}
    assert stages[("postgres", "decide")] >= 3 * 2_000_000
    assert stages[("postgres", "activity")] < 3 * 2_000_000
    assert stages[("mysql", "mask")] >= 1_000_000
    assert ("postgres", "mask") not in stages and ("writer", "chain") in stages


def test_the_bench_divides_a_window_by_its_exchanges(tmp_path: Path) -> None:
    before = Snapshot({"postgres": 10, "http": 5}, {("postgres", "decide"): 1_000_000,
                                                    ("writer", "chain"): 0})
    after = Snapshot({"postgres": 110, "http": 5}, {("postgres", "decide"): 21_000_000,
                                                    ("writer", "chain"): 5_000_000})
    found = Ledger.between(before, after, None, cpu_us_per_exchange=1000.0)
    assert (found.front, found.exchanges) == ("postgres", 100)
    assert found.stages["decide"] == 200.0 and found.stages["mask"] == 0.0
    assert found.writer["chain"] == 50.0
    printed = table(found, floor_us=100.0)
    assert "cost ledger, postgres: µs per exchange (CPU 1000 µs, floor 100 µs)" in printed
    assert "not in a stage" in printed and "750.0" in printed  # 1000 - 200 - 50
    assert settle(tmp_path) == Snapshot({}, {})  # an empty folder is a ledger of nothing
