"""`tollgate serve` with `listen.workers` > 1: a small supervisor of N worker processes.

One Python process uses one core (the GIL), so N workers serve N cores. Worker i is
`tollgate serve --worker i` on listen.grpc's port + i, forked from the supervisor once it
has imported what a worker runs (an interpreter of its own took twice the CPU to be
serving, 1.8 s against 0.85 s, per worker and per restart), and Envoy balances exchanges
between the N as N endpoints of its tollgate_extproc cluster (SO_REUSEPORT balances
connections, and Envoy holds few, long-lived ones). They share the store; each records
its own chain; worker 0 also serves the admin API; a decision made there wakes a request
held by any of them (approvals/wakeup.py on SQLite, NOTIFY on PostgreSQL).

Before it starts any worker, what would make all of them fail alike is found once: the
files the config names (extproc/preflight.py, which the command runs first: a line
per problem, exit 2) and the policies (compiled, or OPA reached); and the supervisor
makes what workers would otherwise race for (the signing key, the store's tables).
Then it runs the workers, forwards SIGHUP (reload policies) and SIGTERM/SIGINT (drain:
each worker gets listen.drain_seconds for its exchanges in flight and a few seconds to
write their records; one still running then is killed, so that stopping ends), and
restarts a worker that dies (with backoff; Envoy's health check skips it meanwhile).
Workers count their metrics in a directory made for the run before prometheus-client is
imported (extproc/cli: PROMETHEUS_MULTIPROC_DIR, extproc/metrics.py) and removed at its
end, which worker 0 serves. A worker that exits 2 found the config unusable (its port
taken, say): restarting it would not help, so all stop. The supervisor exits 0 when
every worker drained cleanly, else 1 (2: unusable).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import multiprocessing.util
import os
import secrets
import signal
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

import yaml
from prometheus_client.multiprocess import mark_process_dead

from extproc import envoy_bootstrap, hangups
from extproc.config import Config
from extproc.metrics import MULTIPROC_ENV
from extproc.policy import PolicyLoadError, load_modules, open_engine
from extproc.policy.reload import vetted_start
from extproc.recording.chain import Signer, SigningKeyError
from extproc.store import StoreError, connect

log = logging.getLogger("tollgate.workers")

# A worker's environment names its supervisor: the worker ends with it (PR_SET_PDEATHSIG).
SUPERVISOR_ENV = "TOLLGATE_SUPERVISOR"
# The `hash` masking key the workers share when the config names none, so that the values
# one worker hashes join with another's (made per supervisor: not across restarts).
HASH_KEY_ENV = "TOLLGATE_WORKERS_HASH_KEY"
UNUSABLE = 2  # the exit status of `tollgate serve` when the config cannot be served
_FIRST_DELAY, _MOST_DELAY = 1.0, 30.0
# A worker that ran this long before dying is restarted after the first delay again.
_STEADY_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1
# How long a worker may take after its drain (listen.drain_seconds) before it is killed:
# closing writes its last records and flushes its telemetry (~0.1 s measured). The
# shipped deployments wait longer before killing tollgate itself (compose 20 s for a
# 10 s drain, the pod 40 s for 15 s of preStop and the drain).
STOP_MARGIN_SECONDS = 5.0


def unlisted_ports(config: Config) -> list[int]:
    """Workers' ports the Envoy bootstrap (identity.envoy_bootstrap) does not send to.

    Not of envoy/quickstart.yaml, a template that `tollgate up` (and the tests and the
    benchmark) run only as `envoy_bootstrap.with_ports` rewrites it, every port listed."""
    if config.identity.envoy_bootstrap is None:
        return []
    path = config.resolve(config.identity.envoy_bootstrap)
    if path == envoy_bootstrap.QUICKSTART:
        return []
    try:
        listed = envoy_bootstrap.ext_proc_ports(envoy_bootstrap.load(path))
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return []  # not a bootstrap to read: the approvals' verifier says why, if used
    return [port for port in config.listen.worker_ports if port not in listed]


def warn_unlisted_ports(config: Config) -> None:
    missing = unlisted_ports(config)
    if missing:
        log.warning("%s: its %s cluster has no endpoint on port %s of tollgate's %d "
                    "worker(s) (listen.grpc's port and the next ones): list them all, or "
                    "those workers get no exchanges", config.identity.envoy_bootstrap,
                    envoy_bootstrap.EXT_PROC_CLUSTER, ", ".join(map(str, missing)),
                    config.listen.worker_count)


class PrepareError(Exception):
    """What every worker would fail on (one line)."""


async def prepare(config: Config) -> None:
    """Make what workers must share, and check the policies all of them serve, once (the
    files they read: extproc/preflight.py, before)."""
    modules = load_modules(config.policy, config.policy_dir)
    engine = await open_engine(config.policy, config.policy_dir, modules)  # PolicyLoadError
    try:  # a pack failing its smoke set: every worker would refuse it (server.py)
        await vetted_start(engine, config.policy_dir, bool(modules))
    finally:
        await engine.close()
    try:
        Signer.from_file(config.resolve(config.recording.signing_key_file), create=True)
        (await asyncio.to_thread(connect, config.store_url)).close()  # tables made
    except (SigningKeyError, StoreError) as exc:
        raise PrepareError(str(exc)) from None


def worker_config(config: Config, worker: int) -> Config:
    """Worker `worker`'s own config (Config.of_worker), hashing with the shared key."""
    config = config.of_worker(worker)
    masking = config.masking
    if masking.hash_key_env is None and masking.hash_key_file is None \
            and HASH_KEY_ENV in os.environ:
        config = dataclasses.replace(
            config, masking=dataclasses.replace(masking, hash_key_env=HASH_KEY_ENV))
    return config


def worker_argv(config_path: Path, worker: int, log_level: str) -> list[str]:
    """`tollgate ARGV` of worker `worker`."""
    return ["--log-level", log_level, "serve", "--config", str(config_path),
            "--worker", str(worker)]


Command = Callable[[list[str]], int]  # `tollgate ARGV` as a function: extproc.cli.main


_PR_SET_NAME = 15


def worker_name(worker: int) -> str:
    """Worker `worker`'s process name (its comm: `ps -o comm`, top), as its command line
    is its supervisor's."""
    return f"tollgate-w{worker}"


def run_forked(command: Command, argv: list[str], env: Mapping[str, str], *,
               output: int | None = None, cwd: Path | None = None,
               new_session: bool = False, name: str | None = None) -> NoReturn:
    """In a child just forked: `tollgate ARGV` with `env` as its whole environment, stdin
    empty (`output`: a descriptor for its stdout and stderr; `cwd`: its folder;
    `new_session`: out of the parent's terminal's process group; `name`: its process
    name, 15 bytes at most), as the command's own process would run it after its
    imports; never returns.

    What the parent was running is not the child's: its signal handlers go back to the
    defaults, its loop's wake-up descriptor is let go, and no event loop is running (as
    Python 3.12's fork hook does), so the command starts its own. It ends as
    multiprocessing ends the processes it forks: the parent's exit handlers never run
    here, multiprocessing's own do (the folder its forkserver made in the temporary
    directory goes with the worker; left, each worker's stop left a `pymp-*` there)."""
    code = 1
    try:
        # What the parent's multiprocessing would finalize is the parent's.
        multiprocessing.util._finalizer_registry.clear()  # type: ignore[attr-defined]
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        hangups.defer()  # a reload forwarded while it starts is kept for its loop
        signal.set_wakeup_fd(-1)
        asyncio.events._set_running_loop(None)
        if new_session:
            os.setsid()
        if name is not None and sys.platform.startswith("linux"):
            ctypes.CDLL(None).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
        os.environ.clear()
        os.environ.update(env)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        if output is not None:
            os.dup2(output, 1)
            os.dup2(output, 2)
            os.close(output)
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = ["tollgate", *argv]
        code = command(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # what the process would have printed as it died
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            # As multiprocessing's Process ends (neither is in typeshed: private).
            multiprocessing.util._exit_function()  # type: ignore[attr-defined]
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class Worker:
    """A forked worker process, awaited through its pidfd (no thread waits on it, so the
    supervisor stays single threaded and every fork is clean)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd = os.pidfd_open(pid)
        self._loop = asyncio.get_running_loop()
        self._ended: asyncio.Future[int] = self._loop.create_future()
        self._loop.add_reader(self._fd, self._end)

    def _end(self) -> None:
        """Its pidfd is readable: it has exited, and is reaped without waiting."""
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._ended.set_result(os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1]))

    async def wait(self) -> int:
        """Its exit status, as subprocess gives it (minus the signal that ended it)."""
        return await self._ended

    def send_signal(self, sig: int) -> None:
        if not self._ended.done():
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Supervisor:
    """Runs workers (`command(argv[i])`, forked, is worker i) until told to stop, then
    gives them `drain_seconds` (and STOP_MARGIN_SECONDS) to end; they count their metrics
    in `metrics_dir`."""

    def __init__(self, command: Command, argv: list[list[str]], metrics_dir: str,
                 drain_seconds: float) -> None:
        self._command, self._argv, self._count = command, argv, len(argv)
        self._running: dict[int, Worker] = {}
        self._stopping = asyncio.Event()
        self._patience = drain_seconds + STOP_MARGIN_SECONDS
        self._deadline: asyncio.TimerHandle | None = None
        self._metrics_dir = metrics_dir
        self._env = {**os.environ, SUPERVISOR_ENV: str(os.getpid()),
                     HASH_KEY_ENV: secrets.token_hex(32), MULTIPROC_ENV: metrics_dir}

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        # One asked while preparing reaches no worker: none has started yet, and each
        # loads the files as they are when it starts.
        hangups.handle(loop, lambda: self._forward(signal.SIGHUP))
        statuses = await asyncio.gather(*(self._keep(i) for i in range(self._count)))
        if self._deadline is not None:
            self._deadline.cancel()
        failed = {i: status for i, status in enumerate(statuses) if status}
        if failed:
            log.error("stopped; workers that did not end cleanly: %s", ", ".join(
                f"{i} (status {status})" for i, status in failed.items()))
            return UNUSABLE if UNUSABLE in failed.values() else 1
        log.info("stopped (%d workers drained)", self._count)
        return 0

    def stop(self) -> None:
        """Every worker drains (SIGTERM); none is restarted, and one still running once
        its drain and the margin are over is killed."""
        if not self._stopping.is_set():
            log.info("stopping %d workers (in at most %gs)", self._count, self._patience)
            self._deadline = asyncio.get_running_loop().call_later(self._patience,
                                                                   self._kill)
        self._stopping.set()
        self._forward(signal.SIGTERM)

    def _kill(self) -> None:
        for worker, process in self._running.items():
            log.error("worker %d (pid %d) still running %gs after SIGTERM "
                      "(listen.drain_seconds and %gs): killed", worker, process.pid,
                      self._patience, STOP_MARGIN_SECONDS)
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    def _forward(self, sig: int) -> None:
        for process in self._running.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)

    async def _keep(self, worker: int) -> int:
        """Run worker `worker` until stopping, restarting it when it dies; its last status."""
        loop = asyncio.get_running_loop()
        delay = _FIRST_DELAY
        while True:
            started = loop.time()
            process = self._fork(worker)
            self._running[worker] = process
            log.info("worker %d started (pid %d)", worker, process.pid)
            if self._stopping.is_set():  # told to stop while it was being started
                process.send_signal(signal.SIGTERM)
            status = await process.wait()
            del self._running[worker]
            # Its gauges go (queue depth, revision); its counters stay counted.
            mark_process_dead(process.pid, self._metrics_dir)
            if self._stopping.is_set():
                return status
            if status == UNUSABLE:
                log.error("worker %d (pid %d) cannot serve this config (status 2); "
                          "stopping all", worker, process.pid)
                self.stop()
                return status
            if loop.time() - started > _STEADY_SECONDS:
                delay = _FIRST_DELAY
            log.error("worker %d (pid %d) exited with status %d; restarting it in %.0fs",
                      worker, process.pid, status, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
                return status
            delay = min(delay * 2, _MOST_DELAY)

    def _fork(self, worker: int) -> Worker:
        """Worker `worker` forked, in a session of its own (a terminal's Ctrl-C reaches
        the supervisor alone, which drains them)."""
        sys.stdout.flush()  # what is buffered here would be written by both
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_forked(self._command, self._argv[worker], self._env, new_session=True,
                       name=worker_name(worker))
        return Worker(pid)


def supervise(config: Config, config_path: Path, log_level: str, command: Command) -> int:
    """`tollgate serve` of several workers (each `command`, the CLI's entry point, forked):
    prepare, then run them until stopped. Preparing runs in a loop of its own, whose
    threads have ended before the first fork. The workers count their metrics in the
    folder MULTIPROC_ENV names, which the command made before prometheus-client was
    imported (extproc/cli) and removes after."""
    try:
        asyncio.run(prepare(config))
    except (PrepareError, PolicyLoadError) as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return UNUSABLE
    count = config.listen.worker_count
    ports = config.listen.worker_ports
    log.info("%d workers on ports %d-%d; the admin API on worker 0", count, ports[0],
             ports[-1])
    return asyncio.run(Supervisor(
        command, [worker_argv(config_path, i, log_level) for i in range(count)],
        os.environ[MULTIPROC_ENV], config.listen.drain_seconds).run())


def end_with_supervisor() -> None:
    """In a worker: end (SIGTERM, so it drains) when the supervisor does, even by SIGKILL.

    Set in the worker itself before any thread starts; if the supervisor is already gone,
    the worker stops at once."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("this worker outlives its supervisor if that is killed (prctl: %s)",
                    os.strerror(ctypes.get_errno()))
    if os.getppid() != int(supervisor):
        raise SystemExit("tollgate: this worker's supervisor is gone")
