"""Real processes standing in for the containers of the Kubernetes stand-in's pods.

Each pod has a folder under the root a test gives (`<root>/<namespace>/<pod>`), its
"filesystem": commands run with it as working directory and HOME, with a container's
minimal environment (PATH, HOME, HOSTNAME; TERM=xterm under a terminal, as containerd
sets it), in a session of their own so that the whole process group can be ended. Nothing
isolates them further: an absolute path reaches this machine's files, so tests name pod
files by relative paths.

They never run as root. When the tests run as root, every pod process runs as `nobody`
(extproc/quickstart/accounts.py, as the quickstart's demo SSH host does; no supplementary
groups), and the pods' folders live in a folder made for that account under the system's
temporary folder (mode 700, owned by it, removed when the stand-in stops), not under the
root a test gives, which pytest keeps closed to other accounts: a pod may write in its
own folder and nowhere the tests keep their files. What a test puts in a pod's folder is
handed to the pod's account when the next process starts in that pod (as kubelet hands a
volume to a pod's fsGroup). Otherwise they run as whoever runs the tests, under the root
given.

An exec is a fresh process (pipes, or a pseudo-terminal whose master carries stdin and
stdout and whose size resize messages set). Attach joins the pod's container process, one
long-running `sh` reading its stdin, started on first attach and again after it exits (as
a restartPolicy Always pod would); attached clients see its output from the moment they
join.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import pty
import queue
import shutil
import signal
import stat
import struct
import subprocess
import termios
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from extproc.quickstart.accounts import Account, private_folder, service_account

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CONTAINER_COMMAND = ("sh",)
ACCOUNT = "nobody"  # whom pod processes run as when the tests run as root


class StartError(Exception):
    """The command could not start (the runtime's words: `exec: "x": ...`)."""


def pump(fd: int, deliver: Callable[[bytes], None], done: Callable[[], None]) -> None:
    """Read `fd` (which the pump then owns) in a thread until EOF (a pty master ends with
    EIO), handing each chunk to `deliver`; then close it and call `done`."""
    def run() -> None:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                os.close(fd)
                done()
                return
            deliver(chunk)

    threading.Thread(target=run, name=f"k8s-pump-{fd}", daemon=True).start()


class Writer:
    """Writes to `fd` (which it owns) from a thread of its own, so that a process that
    does not read its stdin cannot stall the WebSocket that feeds it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name=f"k8s-stdin-{fd}", daemon=True).start()

    def write(self, data: bytes) -> None:
        self._queue.put(data)

    def close(self) -> None:
        """Close the fd once what was written has gone: EOF for a pipe; nothing for a
        terminal, whose master stays open in its output's pump."""
        self._queue.put(None)

    def _run(self) -> None:
        broken = False
        while (data := self._queue.get()) is not None:
            view = memoryview(data)
            while view and not broken:
                try:
                    view = view[os.write(self._fd, view):]
                except OSError:  # the process is gone or closed its stdin
                    broken = True
        os.close(self._fd)


@dataclass(eq=False)
class Process:
    """One exec's process: where its stdin goes and which channel each output feeds."""

    popen: subprocess.Popen[bytes]
    stdin: Writer | None
    outputs: dict[int, int]  # channel (1 stdout, 2 stderr) -> fd to read (for a pump)
    master: int | None = None  # under tty, a pseudo-terminal master fd kept for resizing
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resize(self, width: int, height: int) -> None:
        with self.lock:
            if self.master is not None:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ,
                            struct.pack("HHHH", height, width, 0, 0))

    def exit_code(self) -> int:
        """Wait for the process; a signal's death is 128 + the signal, as runc reports it.
        The terminal goes with it."""
        code = self.popen.wait()
        with self.lock:
            if self.master is not None:
                os.close(self.master)
                self.master = None
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


class Listener(Protocol):
    """An attached session: told the container's output and its exit."""

    def output(self, channel: int, data: bytes) -> None: ...

    def exited(self) -> None: ...


@dataclass(eq=False)
class Container:
    """A pod's long-running container process, shared by the sessions attached to it."""

    process: Process
    listeners: list[Listener] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: bool = True

    def attach(self, listener: Listener) -> bool:
        """Join the output; False when the process has already exited."""
        with self.lock:
            if self.running:
                self.listeners.append(listener)
            return self.running

    def detach(self, listener: Listener) -> None:
        with self.lock:
            if listener in self.listeners:
                self.listeners.remove(listener)

    def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)

    def _broadcast(self, channel: int, data: bytes) -> None:
        with self.lock:
            listeners = list(self.listeners)
        for listener in listeners:
            listener.output(channel, data)

    def _exited(self) -> None:
        with self.lock:
            self.running = False
            listeners, self.listeners = self.listeners, []
        for listener in listeners:
            listener.exited()


class Pods:
    """The processes of every pod of one stand-in, each pod rooted in its own folder."""

    def __init__(self, root: Path, wrap: Callable[[], list[str]] | None = None) -> None:
        """`root`: where the pods' folders go, unless the tests run as root (then a folder
        made for the pods' account, see the module's docstring). `wrap`: gives the prefix
        each process starts under (strace, for a test that audits what a pod executed),
        asked once per process; it runs as the pod's account too (the switch comes before
        it, so the wrap's first exec is the pod's command)."""
        self.account: Account | None = service_account(ACCOUNT)
        self._folder = contextlib.ExitStack()
        if self.account is not None:
            root = self._folder.enter_context(private_folder(self.account, "k8s-pods"))
        self.root = root
        self._wrap = wrap
        self._lock = threading.Lock()
        self._live: set[Process] = set()
        self._containers: dict[tuple[str, str], Container] = {}

    def root_of(self, namespace: str, pod: str) -> Path:
        """The pod's filesystem root (created on first use)."""
        path = self.root / namespace / pod
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            if self.account is not None:  # the pod's own; its namespace's folder is not
                os.chown(path, self.account.uid, self.account.gid)
        return path

    def _hand_over(self, root: Path) -> None:
        """Give the pod's account what a test put in the pod's folder (under root, what
        root made there): never following a symbolic link, nor a file with other names
        (a hard link the pod made to a file elsewhere)."""
        account = self.account
        if account is None:
            return
        for _, folders, files, fd in os.fwalk(root, follow_symlinks=False):
            for name in (*folders, *files):
                with contextlib.suppress(FileNotFoundError):  # the pod removed it
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if info.st_uid == account.uid or (
                            not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1):
                        continue
                    os.chown(name, account.uid, account.gid, dir_fd=fd,
                             follow_symlinks=False)

    def _as_account(self) -> list[str]:
        """The prefix that runs a command as the pod's account ([] when the tests do not
        run as root): util-linux's setpriv, exec'd in place. Not Popen's `user=`: that
        makes Popen fork rather than vfork, and a fork runs the atfork handlers of the
        gRPC core this process has loaded, which crashed the child (SIGBUS, "epoll_wait
        error: Bad file descriptor") before it could exec. No --pdeathsig: it would end a
        pod's container when the connection thread that started it ends."""
        if self.account is None:
            return []
        return ["setpriv", f"--reuid={self.account.uid}", f"--regid={self.account.gid}",
                "--clear-groups", "--"]

    def spawn(self, namespace: str, pod: str, argv: Sequence[str], *, stdin: bool,
              tty: bool) -> Process:
        """Start `argv` in the pod; StartError when there is nothing to run."""
        root = self.root_of(namespace, pod)
        if not argv:
            raise StartError("exec: no command given")
        if "/" in argv[0]:
            found = os.access(root / argv[0], os.X_OK)
        else:
            found = shutil.which(argv[0], path=_PATH) is not None
        if not found:
            raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH')
        self._hand_over(root)
        env = {"PATH": _PATH, "HOME": str(root), "HOSTNAME": pod}
        argv = [*self._as_account(), *(self._wrap() if self._wrap is not None else ()), *argv]
        if tty:
            master, slave = pty.openpty()
            if self.account is not None:  # the terminal is the command's, as a login's is
                os.fchown(slave, self.account.uid, self.account.gid)
            # setsid --ctty: the terminal becomes the command's controlling terminal, so
            # resizes reach it as SIGWINCH and job control works, as under runc.
            popen = subprocess.Popen(
                ["setsid", "--ctty", *argv], stdin=slave, stdout=slave, stderr=slave,
                cwd=root, env={**env, "TERM": "xterm"}, close_fds=True)
            os.close(slave)
            process = Process(popen, Writer(os.dup(master)) if stdin else None,
                              {1: master}, os.dup(master))
        else:
            popen = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root, env=env,
                start_new_session=True)
            assert popen.stdout is not None and popen.stderr is not None
            writer = None
            if popen.stdin is not None:
                writer = Writer(os.dup(popen.stdin.fileno()))
                popen.stdin.close()
            process = Process(popen, writer, {1: os.dup(popen.stdout.fileno()),
                                              2: os.dup(popen.stderr.fileno())})
            popen.stdout.close()
            popen.stderr.close()
        with self._lock:
            self._live.add(process)
        return process

    def finished(self, process: Process) -> None:
        with self._lock:
            self._live.discard(process)

    def container(self, namespace: str, pod: str) -> Container:
        """The pod's running container process, started when there is none."""
        with self._lock:
            current = self._containers.get((namespace, pod))
            if current is not None and current.running:
                return current
        process = self.spawn(namespace, pod, _CONTAINER_COMMAND, stdin=True, tty=False)
        container = Container(process)
        remaining = [len(process.outputs)]

        def output_done() -> None:
            with container.lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                process.exit_code()
                self.finished(process)
                container._exited()

        for channel, fd in process.outputs.items():
            pump(fd, functools.partial(container._broadcast, channel), output_done)
        with self._lock:
            self._containers[(namespace, pod)] = container
        return container

    def restart(self, namespace: str, pod: str) -> None:
        """End the pod's container process if it runs (as a container restart does): the
        next attach joins a new one."""
        with self._lock:
            current = self._containers.pop((namespace, pod), None)
        if current is not None and current.running:
            current.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                current.process.popen.wait(timeout=10)

    def stop(self) -> None:
        """End every process still running (the stand-in is going away)."""
        with self._lock:
            live = list(self._live)
        for process in live:
            process.kill()
        for process in live:  # gone before their folder goes
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=10)
        self._folder.close()
