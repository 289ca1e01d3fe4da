"""A pushed revision's smoke set, run apart from serving: once for every worker, in a
process of low priority, while each worker keeps deciding with the revision it serves.

Run on the event loop that serves, the smoke set held every decision for as long as each
of its Rego tests ran, in every worker at once: under load a push of the default pack
took 20-24 s, and decisions fell from 50/s to ~10/s with 503s and 504s (issue 87). So a
reload hands the pack, as it read it (sources.read_pack), to `python -m
extproc.policy.apart`, CHECK_NICENESS below the worker, and awaits its verdict. The first
of these processes checks; those of the other workers wait for it on a lock in the user
cache they share (codecs/user_cache.py; one lock: checks run one at a time), then read
its verdict, kept by the pack's bytes: the smoke set runs once, and every worker swaps the
revision in as the verdict comes. A worker that drains kills its check; one killed takes
its check along (PR_SET_PDEATHSIG).

The process runs the embedded engine's whole smoke set (smoke.py: the Rego tests, the
revision compiled, each representative input decided), so a worker then only compiles
the revision that passed, the same bytes with the same regorus (~50 ms for the default
pack, on its loop: regorus's programs stay on the thread that made them). With OPA,
which decides what it holds, the process runs the Rego tests only, and the inputs are
then decided through OPA once the revision is uploaded (round trips the loop awaits).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import fcntl
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from extproc.codecs import jsonenc, user_cache
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.errors import PolicyLoadError
from extproc.policy.smoke import decides_inputs, files_key, summary, tests_pass
from extproc.policy.sources import Modules, modules_of, revision_of

log = logging.getLogger("tollgate.policy")

CHECK_NICENESS = 10
"""How far below its worker the check runs: on a saturated core it gets ~10% of the CPU
a worker gets (nice 10 weighs 110 against 1024), so serving loses little and the check
still ends (at 19 it would get ~1.5%, and a 1 s check could take a minute)."""
CACHE = "policy-checks"  # the user cache's folder of verdicts, and the lock checks take
_LOCK = "lock"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Verdict:
    """What the smoke set said of one pack."""

    revision: str  # of the pack's policy modules (sources.revision_of)
    tests: int  # Rego tests passed
    milliseconds: float  # what the check took
    checked_by: int  # the process that ran it
    failed: str | None = None  # why the revision is refused (None: it passed)

    def passed(self) -> str:
        """What it passed, for the log."""
        return (f"{summary(self.tests, self.milliseconds)}, checked apart by process "
                f"{self.checked_by}")


async def check(policy_dir: Path, pack: Modules, query: str | None) -> Verdict:
    """The verdict on `pack` (the .rego files of `policy_dir`, as read), once it passed
    its smoke set apart: with the embedded engine's `query`, the whole set; None, the Rego
    tests alone. PolicyLoadError saying why it did not pass, or why no verdict came. The
    check ends with the reload awaiting it (cancelled: a drain) or its worker (killed)."""
    child = _spawn()
    try:
        revision = revision_of(modules_of(pack))
        log.info("the smoke set of revision %s runs apart (process %d)",
                 revision, child.pid)
        request = jsonenc.dumps({"dir": str(policy_dir), "query": query, "pack": pack})
        # Awaited in a thread, which the process's end (killed, below) ends.
        out, err = await asyncio.to_thread(child.communicate, request.encode())
    finally:
        if child.poll() is None:  # cancelled (a drain), or failed here
            child.kill()
    try:
        verdict = Verdict(**jsonenc.loads(out.decode()))
    except (ValueError, TypeError):
        said = err.decode(errors="replace").strip().splitlines()
        raise PolicyLoadError(
            f"its smoke set could not run: the process checking it ended with status "
            f"{child.returncode}" + (f": {said[-1]}" if said else "")) from None
    if verdict.failed is not None:
        raise PolicyLoadError(verdict.failed)
    if verdict.revision != revision:  # never seen: what passed is what serves
        raise PolicyLoadError(f"the smoke set's verdict is of revision {verdict.revision}, "
                              f"not {revision}")
    return verdict


def _spawn() -> subprocess.Popen[bytes]:
    """The checking process, spawned: with close_fds off, subprocess uses posix_spawn,
    which runs nothing in the child before it execs (uvloop's own spawn forks, then runs
    Python's at-fork hooks in a copy of a process whose gRPC threads may hold locks, and
    gRPC logs each such fork). What Python, gRPC and libuv open is close-on-exec: not
    inherited either way. Its priority is lowered at once, before its imports."""
    child = subprocess.Popen(
        [sys.executable, "-m", __name__, str(os.getpid())], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=False)
    with contextlib.suppress(OSError):  # ended already: nothing to lower
        os.setpriority(os.PRIO_PROCESS, child.pid, min(
            19, os.getpriority(os.PRIO_PROCESS, 0) + CHECK_NICENESS))
    return child


def _key(policy_dir: Path, pack: Modules, query: str | None) -> str:
    """What a verdict depends on: what the Rego tests' does, the directory's name (its
    messages name its files) and what was decided (the query, or nothing)."""
    return hashlib.sha256("\0".join(
        (files_key(policy_dir, pack), str(policy_dir), query or "")).encode()).hexdigest()


async def _verdict(policy_dir: Path, pack: Modules, query: str | None) -> Verdict:
    started = time.perf_counter()
    modules = modules_of(pack)
    tests, failed = 0, None
    try:
        tests = await tests_pass(policy_dir, pack)
        if query is not None:
            await decides_inputs(EmbeddedEngine(modules, query).decide)
    except PolicyLoadError as exc:
        failed = str(exc)
    return Verdict(revision_of(modules), tests, (time.perf_counter() - started) * 1000,
                   os.getpid(), failed)


def _remembered(key: str) -> Verdict | None:
    """The verdict another process gave on the same pack (every outcome is the bytes':
    one refused stays refused, with the same cause)."""
    entry = user_cache.read(CACHE, key)
    try:
        return None if entry is None else Verdict(**jsonenc.loads(entry.decode()))
    except (ValueError, TypeError):
        return None


@contextlib.contextmanager
def _one_at_a_time() -> Iterator[None]:
    """Held while this process checks or reads a verdict: the other workers' processes
    wait for it, then read what it found. Best effort: without a cache folder of the
    user's own, each checks alone."""
    fd = None
    with contextlib.suppress(OSError):
        where = user_cache.folder(CACHE)
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        if user_cache.owned(where):
            fd = os.open(where / _LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _end_with(parent: int) -> None:
    """Killed when the worker that asked ends, however it ends: nobody awaits the check."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        raise SystemExit("tollgate: the worker that asked for this check is gone")


def main(argv: list[str]) -> int:
    """The checking process: the request (JSON) on stdin, the verdict (JSON) on stdout."""
    _end_with(int(argv[0]))
    request = jsonenc.loads(sys.stdin.read())
    policy_dir, query = Path(request["dir"]), request["query"]
    pack = [(name, source) for name, source in request["pack"]]
    key = _key(policy_dir, pack, query)
    with _one_at_a_time():
        verdict = _remembered(key)
        if verdict is None:
            verdict = asyncio.run(_verdict(policy_dir, pack, query))
            user_cache.write(CACHE, key, jsonenc.dumps(dataclasses.asdict(verdict)).encode())
    sys.stdout.write(jsonenc.dumps(dataclasses.asdict(verdict)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
