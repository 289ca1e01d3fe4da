"""Where the suite's time goes: a pytest plugin that measures a run, and the report made
from what it measured (`make test-report`, docs/development.md).

Given `--suite-report DIR`, every test process writes one JSON-lines file into DIR: each
test's wall and CPU time by phase, what it spent starting servers, sleeping, waiting on a
command, and each fixture set-up's cost. `python -m tests.support.suite_report DIR` reads
every file there (the runs of one `make test`: the main pass, the timing tests, the plain
masking tests) and writes `DIR/report.md`: each module's wall and CPU time, the fixtures
whose set-up cost most, the 50 slowest tests with why they are slow, and the share of
the run spent starting servers.

CPU is counted in the test process and in its children: the servers a test starts (Envoy,
tollgate, databases, browsers) do much of a test's work. Children's CPU is read from
/proc when a test has taken long enough to matter (a scan of /proc costs ~2 ms), so it
lands on the test that was running, or on the next one measured in the same process.
Server starts are timed at the functions that start them (wrapped while the plugin runs,
the outermost call counted once); sleeping, at `time.sleep` and `asyncio.sleep`; waiting
on a command, at `subprocess`'s waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

# What starts a server, by the function that does it (module, attribute path): a call's
# whole time counts as starting one, nested calls once.
STARTERS = (
    ("tests.support.gateway", "GatewayFactory.__call__", "gateway"),
    ("extproc.quickstart.stack", "start_tollgate", "tollgate"),
    ("extproc.quickstart.stack", "start_envoy", "envoy"),
    ("extproc.quickstart.stack", "Process.ready_or_fail", "server"),
    ("tests.support.sshd", "start_sshd", "sshd"),
    ("tests.support.mariadb", "_started", "mariadb"),
    ("tests.support.pg_cluster", "Cluster.start", "postgresql"),
    ("tests.support.browser", "chromium", "browser"),
    ("tests.support.quickstart", "started_up", "quickstart"),
    ("extproc.quickstart.dev_oidc", "start", "oidc"),
)
# A test counted as slow for a reason when that reason took at least this share of it.
SHARE = 0.25
SLOWEST = 50
FIRST_RUN = "main"  # the run that starts a `make test`'s measurement afresh
SCAN_AFTER = 0.05  # seconds of a test's wall time before children's CPU is read


@dataclass
class Meter:
    """What the wrapped functions measured in this process, summed since it began."""

    starting: float = 0.0
    started: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sleeping: float = 0.0
    commands: float = 0.0
    depth: int = 0  # nested server starts: only the outermost is timed

    def snapshot(self) -> tuple[float, float, float, dict[str, int]]:
        return self.starting, self.sleeping, self.commands, dict(self.started)


METER = Meter()


def _timed_start(kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if METER.depth:
            return function(*args, **kwargs)
        METER.depth += 1
        began = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            METER.depth -= 1
            METER.starting += time.monotonic() - began
            METER.started[kind] += 1
    return wrapper


def _timed_context(kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A context manager's entry timed as a start (a browser's launch)."""
    @functools.wraps(function)
    @contextlib.contextmanager
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        began = time.monotonic()
        manager = function(*args, **kwargs)
        value = manager.__enter__()
        METER.starting += time.monotonic() - began
        METER.started[kind] += 1
        try:
            yield value
        except BaseException:
            if not manager.__exit__(*sys.exc_info()):
                raise
        else:
            manager.__exit__(None, None, None)
    return wrapper


# The meters a thread is inside: Popen.communicate waits with Popen.wait, and the time
# is counted once, by the outer call.
_INSIDE = threading.local()


def _accumulating(attribute: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        inside: set[str] = _INSIDE.__dict__.setdefault("meters", set())
        if attribute in inside:
            return function(*args, **kwargs)
        inside.add(attribute)
        began = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            inside.discard(attribute)
            setattr(METER, attribute, getattr(METER, attribute) + time.monotonic() - began)
    return wrapper


def _accumulating_async(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    async def wrapper(delay: float, *args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            return await function(delay, *args, **kwargs)
        finally:
            if delay > 0:
                METER.sleeping += time.monotonic() - began
    return wrapper


def _wrap(owner: Any, name: str, wrapper: Callable[..., Any]) -> None:
    original = getattr(owner, name)
    setattr(owner, name, wrapper(original))


def install_meters() -> None:
    """Wrap the functions that start servers, sleep and wait on commands."""
    for module_name, path, kind in STARTERS:
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        if not hasattr(owner, name):
            continue
        factory = _timed_context if kind == "browser" else _timed_start
        _wrap(owner, name, functools.partial(factory, kind))
    _wrap(time, "sleep", functools.partial(_accumulating, "sleeping"))
    _wrap(asyncio, "sleep", _accumulating_async)
    _wrap(subprocess.Popen, "wait", functools.partial(_accumulating, "commands"))
    _wrap(subprocess.Popen, "communicate", functools.partial(_accumulating, "commands"))


def descendants_cpu() -> float:
    """CPU seconds of this process's live descendants, and of those it has reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        # utime, stime, cutime, cstime: fields 14-17 of stat, 11-14 after the name.
        times[int(entry)] = sum(int(value) for value in fields[11:15]) / ticks
    mine = {os.getpid()}
    children: dict[int, list[int]] = defaultdict(list)
    for pid, parent in parents.items():
        children[parent].append(pid)
    total, frontier = 0.0, [os.getpid()]
    while frontier:
        for child in children.get(frontier.pop(), ()):
            if child not in mine:
                mine.add(child)
                total += times.get(child, 0.0)
                frontier.append(child)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + reaped.ru_utime + reaped.ru_stime


def machine_speed(rounds: int = 3) -> float:
    """CPU seconds of one fixed pure-Python workload, the fastest of `rounds` (~0.1 s
    each): how fast this machine ran as the run measured it. One machine of this kind
    ran the same suite a third slower in one hour than in the hour before, every
    module alike, so two runs' times compare only at like readings."""
    best = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        table = {str(n): n * 3 for n in range(60_000)}
        text = json.dumps(table)
        sum(int(value) for value in json.loads(text).values())
        sorted(table.items(), key=lambda item: -item[1])
        best = min(best, time.process_time() - began)
    return round(best, 3)


class Recorder:
    """The plugin in one test process: one JSON line per test and per fixture set-up."""

    def __init__(self, folder: Path, run: str, worker: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._out: IO[str] = open(folder / f"{run}-{worker}.jsonl", "a",  # noqa: SIM115
                                  encoding="utf-8")
        self._run = run
        self._children = descendants_cpu()
        self._phases: dict[str, float] = {}
        self._outcome = "passed"
        self._fixtures: dict[tuple[str, str, str], list[float]] = defaultdict(
            lambda: [0, 0.0, 0.0, 0.0])

    def write(self, line: dict[str, Any]) -> None:
        self._out.write(json.dumps(line) + "\n")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        self._phases, self._outcome = {}, "passed"
        wall, cpu = time.monotonic(), time.process_time()
        starting, sleeping, commands, started = METER.snapshot()
        yield
        took = time.monotonic() - wall
        children = 0.0
        if took >= SCAN_AFTER or METER.started != started:
            now = descendants_cpu()
            children, self._children = max(0.0, now - self._children), now
        new = {kind: count - started.get(kind, 0) for kind, count in METER.started.items()
               if count != started.get(kind, 0)}
        self.write({
            "kind": "test", "run": self._run, "id": item.nodeid,
            "module": item.nodeid.split("::")[0], "wall": round(took, 4),
            "cpu": round(time.process_time() - cpu, 4), "children": round(children, 4),
            "phases": self._phases, "outcome": self._outcome,
            "starting": round(METER.starting - starting, 4),
            "started": new, "sleeping": round(METER.sleeping - sleeping, 4),
            "commands": round(METER.commands - commands, 4),
            "hypothesis": bool(getattr(getattr(item, "obj", None), "is_hypothesis_test",
                                       False)),
            "markers": sorted({m.name for m in item.iter_markers()} & {"e2e", "slow", "timing"}),
        })

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._phases[report.when] = round(report.duration, 4)
        outcome = report.outcome
        if hasattr(report, "wasxfail"):  # an expected failure, as pytest's summary names it
            outcome = "xfailed" if report.skipped else "xpassed"
        if outcome != "passed" and self._outcome == "passed":
            self._outcome = f"{outcome} in {report.when}"

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any],
                             request: pytest.FixtureRequest) -> Generator[None, None, None]:
        wall, cpu, starting = time.monotonic(), time.process_time(), METER.starting
        yield
        key = (fixturedef.argname, fixturedef.scope, fixturedef.baseid or "tests/conftest.py")
        entry = self._fixtures[key]
        entry[0] += 1
        entry[1] += time.monotonic() - wall
        entry[2] += time.process_time() - cpu
        entry[3] += METER.starting - starting

    def pytest_sessionfinish(self) -> None:
        for (name, scope, where), (count, wall, cpu, starting) in self._fixtures.items():
            self.write({"kind": "fixture", "run": self._run, "name": name, "scope": scope,
                        "where": where, "count": count, "wall": round(wall, 4),
                        "cpu": round(cpu, 4), "starting": round(starting, 4)})
        self._out.close()


class Controller:
    """The plugin in the run's controller: the run's wall time, for the report."""

    def __init__(self, folder: Path, run: str) -> None:
        self._folder, self._run = folder, run
        self._speed = machine_speed()
        self._began = time.monotonic()
        if run == FIRST_RUN:  # a new measurement: the last one's files go
            for old in [*folder.glob("*.jsonl"), folder / "report.md"]:
                old.unlink(missing_ok=True)

    @pytest.hookimpl(trylast=True)  # after the test processes have written theirs
    def pytest_sessionfinish(self) -> None:
        """The run's wall time, then the report of every run measured so far: written
        whatever the tests' outcome, as a failing run is the one whose time is asked
        about."""
        self._folder.mkdir(parents=True, exist_ok=True)
        with open(self._folder / f"{self._run}-run.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps({"kind": "run", "run": self._run,
                                  "wall": round(time.monotonic() - self._began, 2),
                                  "speed": [self._speed, machine_speed()]}) + "\n")
        (self._folder / "report.md").write_text(render(self._folder), encoding="utf-8")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("suite report")
    group.addoption("--suite-report", metavar="DIR", default=None,
                    help="write where the run's time goes into DIR (tests/support/"
                         "suite_report.py; `python -m tests.support.suite_report DIR`)")
    group.addoption("--suite-report-run", metavar="NAME", default=FIRST_RUN,
                    help="the name of this run among a `make test`'s (main, timing, ...); "
                         "`main` removes the folder's earlier measurements")


def pytest_configure(config: pytest.Config) -> None:
    folder = config.getoption("suite_report")
    if not folder:
        return
    run = config.getoption("suite_report_run")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        config.pluginmanager.register(Controller(Path(folder), run), "suite-report-controller")
    if workerinput is not None or not config.getoption("numprocesses", None):
        install_meters()
        worker = workerinput["workerid"] if workerinput else "main"
        config.pluginmanager.register(Recorder(Path(folder), run, worker), "suite-report")


# The report.

def _read(folder: Path) -> list[dict[str, Any]]:
    lines = []
    for path in sorted(folder.glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                  if line.strip()]
    return lines


def why(test: dict[str, Any]) -> str:
    """The reasons a test took its time, largest first."""
    wall = test["wall"] or 1e-9
    reasons: list[tuple[float, str]] = []
    if test["starting"] >= SHARE * wall:
        kinds = ", ".join(f"{kind} x{n}" if n > 1 else kind
                          for kind, n in sorted(test["started"].items()))
        reasons.append((test["starting"], f"starting servers {test['starting']:.1f} s "
                                          f"({kinds})"))
    if test["sleeping"] >= SHARE * wall:
        reasons.append((test["sleeping"], f"sleeping {test['sleeping']:.1f} s"))
    if test["commands"] >= SHARE * wall:
        reasons.append((test["commands"], f"waiting on commands {test['commands']:.1f} s"))
    if test["hypothesis"]:
        reasons.append((test["cpu"], f"hypothesis ({test['cpu']:.1f} s CPU here)"))
    if test["cpu"] >= SHARE * wall and not test["hypothesis"]:
        reasons.append((test["cpu"], f"CPU in the test process {test['cpu']:.1f} s"))
    if test["children"] >= SHARE * wall:
        reasons.append((test["children"], f"CPU in its servers {test['children']:.1f} s"))
    if "browser" in test["started"]:
        reasons.append((wall, "a browser"))
    idle = wall - test["cpu"] - test["starting"] - test["sleeping"] - test["commands"]
    if idle >= SHARE * wall:
        reasons.append((idle, f"blocked {idle:.1f} s (on sockets, servers or a lock)"))
    return "; ".join(text for _, text in sorted(reasons, reverse=True)) or "-"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} m {seconds % 60:04.1f} s" if seconds >= 60 else f"{seconds:.1f} s"


def render(folder: Path, modules: int = 40, fixtures: int = 25) -> str:
    lines = _read(folder)
    tests = [line for line in lines if line["kind"] == "test"]
    runs = {line["run"]: line["wall"] for line in lines if line["kind"] == "run"}
    out = ["# Where the suite's time went", ""]
    total_wall = sum(t["wall"] for t in tests)
    total_cpu = sum(t["cpu"] + t["children"] for t in tests)
    starting = sum(t["starting"] for t in tests)
    out += [f"{len(tests):,} tests; runs (wall): "
            + ", ".join(f"{run} {_minutes(wall)}" for run, wall in runs.items()) + ".",
            f"Summed over the test processes: {_minutes(total_wall)} of test time, "
            f"{_minutes(total_cpu)} of CPU (test processes and their servers); "
            f"{_minutes(starting)} starting servers "
            f"({100 * starting / (total_wall or 1):.0f}% of the test time), "
            f"{_minutes(sum(t['sleeping'] for t in tests))} sleeping, "
            f"{_minutes(sum(t['commands'] for t in tests))} waiting on commands.", ""]
    started: dict[str, int] = defaultdict(int)
    for test in tests:
        for kind, count in test["started"].items():
            started[kind] += count
    speeds = {line["run"]: line["speed"] for line in lines
              if line["kind"] == "run" and "speed" in line}
    if speeds:
        out += ["The machine's speed (a fixed pure-Python workload's CPU, lower is faster; "
                "compare runs only at like readings): "
                + ", ".join(f"{run} {first:.3f} s at its start, {last:.3f} s at its end"
                            for run, (first, last) in speeds.items()) + ".", ""]
    out += ["Servers started: " + ", ".join(f"{kind} {n}" for kind, n in
                                            sorted(started.items(), key=lambda x: -x[1])), ""]
    by_module: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for test in tests:
        by_module[test["module"]].append(test)
    out += [f"## The {modules} modules that took longest", "",
            "| module | tests | wall | CPU (own + servers) | starting servers |",
            "|---|---:|---:|---:|---:|"]
    ranked = sorted(by_module.items(), key=lambda kv: -sum(t["wall"] for t in kv[1]))
    for module, mine in ranked[:modules]:
        out.append(f"| {module} | {len(mine)} | {sum(t['wall'] for t in mine):.1f} s | "
                   f"{sum(t['cpu'] for t in mine):.1f} + "
                   f"{sum(t['children'] for t in mine):.1f} s | "
                   f"{sum(t['starting'] for t in mine):.1f} s |")
    fixture_lines: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0])
    for line in lines:
        if line["kind"] == "fixture":
            entry = fixture_lines[(line["name"], line["scope"], line["where"])]
            for n, key in enumerate(("count", "wall", "cpu", "starting")):
                entry[n] += line[key]
    out += ["", f"## The {fixtures} fixtures whose set-up took longest", "",
            "| fixture | scope | where | set-ups | wall | CPU | starting servers |",
            "|---|---|---|---:|---:|---:|---:|"]
    for (name, scope, where), (count, wall, cpu, start) in sorted(
            fixture_lines.items(), key=lambda kv: -kv[1][1])[:fixtures]:
        out.append(f"| {name} | {scope} | {where} | {int(count)} | {wall:.1f} s | "
                   f"{cpu:.1f} s | {start:.1f} s |")
    out += ["", f"## The {SLOWEST} slowest tests", "",
            "| test | wall | set-up / call / teardown | why |", "|---|---:|---|---|"]
    for test in sorted(tests, key=lambda t: -t["wall"])[:SLOWEST]:
        phases = " / ".join(f"{test['phases'].get(p, 0):.1f}"
                            for p in ("setup", "call", "teardown"))
        out.append(f"| {test['id']} | {test['wall']:.1f} s | {phases} | {why(test)} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.support.suite_report DIR", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    if not any(folder.glob("*.jsonl")):
        print(f"{folder}: no measurements (run pytest with --suite-report {folder})",
              file=sys.stderr)
        return 1
    text = render(folder)
    (folder / "report.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
