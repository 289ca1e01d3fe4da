"""`tollgate serve` for the suite's gateways, forked from a process that has imported it.

A `tollgate serve` spends ~2 s of CPU importing what it runs before it reads its config,
and the suite starts some 170 gateways: a tenth of the whole run's CPU went to importing
the same modules again. This process (one per test process, started on first need)
imports them once, then forks a child for each gateway, which runs the command's own
entry point (`extproc.cli.main(["serve", "--config", ...])`) in its own process, with its
own environment, output file and exit status, exactly as `python -m extproc serve` does
after its imports (as a supervisor of several workers forks each: extproc/workers.py's
`run_forked`, which both use). What a fork cannot give (the interpreter's own start: its
argv, what is read from the environment at import, such as a supervisor's metrics
folder) the tests of those run as users do, through stack.start_tollgate: GatewayFactory
forks only one-worker gateways.

The protocol (lines of JSON): the test process writes {"argv", "env", "log", "cwd"}; this
process answers {"pid"} for each, and {"exit": pid, "status": n} as each child ends
(status as subprocess gives it: the exit code, or minus the signal). It stays single
threaded (children are forked from it), waits with select, and reaps children on SIGCHLD.
Each child ends with this process (PR_SET_PDEATHSIG: SIGTERM), and this process with the
test process that started it (stack.Process.spawn's setpriv, and the end of its input).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, NoReturn

from extproc.cli import main
from extproc.workers import run_forked

REPO = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1
# What `tollgate serve` imports beyond its entry point (imported above), and the fronts it
# imports when a config has them.
PRELOAD = ("extproc.server", "extproc.postgres.front", "extproc.mysql.front",
           "extproc.ssh.front", "extproc.kube.front", "extproc.ssh.certificates")


# -- the zygote process ------------------------------------------------------------------

def _child(request: dict[str, Any]) -> NoReturn:
    """In the forked child: the command, with the request's environment, output and
    folder, ending with the zygote."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the zygote already gone
        os._exit(1)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    run_forked(main, request["argv"], request["env"], output=log, cwd=Path(request["cwd"]))


def serve_requests() -> None:
    """The zygote's life: preload, then fork a child per request until its input ends."""
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    from extproc.masking import Masker

    Masker(b"z" * 32).warm()  # the pass's databases and data tables, shared by every child
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wake-up byte is the signal
    requests = sys.stdin.buffer
    out = sys.stdout
    pending = b""
    while True:
        ready, _, _ = select.select([requests, wake_read], [], [])
        if wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 4096)
            _reap(out)
        if requests in ready:
            chunk = os.read(requests.fileno(), 65536)
            if not chunk:
                return  # the test process is gone: the children end with this one
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                pid = os.fork()
                if pid == 0:
                    os.close(wake_read)
                    os.close(wake_write)
                    _child(json.loads(line))
                out.write(json.dumps({"pid": pid}) + "\n")
                out.flush()
        _reap(out)


def _reap(out: IO[str]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        out.write(json.dumps({"exit": pid, "status": code}) + "\n")
        out.flush()


# -- the test process's side ---------------------------------------------------------------

class Zygote:
    """The zygote as the test process drives it: one request at a time, from any thread."""

    def __init__(self) -> None:
        argv = [sys.executable, "-m", "tests.support.zygote"]
        setpriv = shutil.which("setpriv")  # it ends with this process, as stack.py's do
        self._popen = subprocess.Popen(
            [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._started: list[int] = []
        self._ended: dict[int, int] = {}
        self._gone = False
        threading.Thread(target=self._read, daemon=True, name="zygote-reader").start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        for line in self._popen.stdout:
            said = json.loads(line)
            with self._changed:
                if "pid" in said:
                    self._started.append(said["pid"])
                else:
                    self._ended[said["exit"]] = said["status"]
                self._changed.notify_all()
        with self._changed:  # the zygote is gone: so are its children
            self._gone = True
            self._changed.notify_all()

    def fork(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> ForkedPopen:
        """A child running `tollgate ARGV` (its output appended to `log`)."""
        with self._lock, self._changed:
            assert self._popen.stdin is not None
            self._popen.stdin.write(json.dumps({"argv": argv, "env": env, "log": str(log),
                                                "cwd": str(cwd)}) + "\n")
            self._popen.stdin.flush()
            if not self._changed.wait_for(lambda: self._started, 30):
                raise RuntimeError("the zygote did not fork within 30 s")
            return ForkedPopen(self, self._started.pop(0))

    def status(self, pid: int, timeout: float | None) -> int | None:
        """The child's exit status once it has ended (None: not within `timeout`)."""
        with self._changed:
            self._changed.wait_for(lambda: pid in self._ended or self._gone, timeout)
            return self._ended.get(pid)

    def close(self) -> None:
        assert self._popen.stdin is not None
        self._popen.stdin.close()
        try:
            self._popen.wait(30)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()


class ForkedPopen:
    """What stack.Process reads of a subprocess.Popen, for a child of the zygote."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self._zygote, self.pid = zygote, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._zygote.status(self.pid, 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self._zygote.status(self.pid, timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(["tollgate"], timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


if __name__ == "__main__":
    serve_requests()
