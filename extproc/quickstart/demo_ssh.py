"""The quickstart's demo SSH host: the host behind the `demo-host` target that `tollgate up`
serves, so `ssh -p 2222 demo-host@127.0.0.1` has somewhere to go on a fresh machine.

A fresh machine may have no SSH server, or one the user would rather not open to a demo,
so this is asyncssh's: on 127.0.0.1 only, taking the gateway's key and no other (under any
user name), running each command and shell with /bin/sh in a folder of its own (on a
pseudo-terminal when the client asks for one), and serving that folder over SFTP as its
root. The folder holds the demo MCP server's files (notes.txt, a settings.conf with AWS's
example key, customers.csv with test card numbers), so what the gateway masks has something to
find. The demo listens on 127.0.0.1 and lets in the gateway alone, whose policies stand
between the agent and the shell; behind them, the host itself runs nothing as root:
under root it reads its key, then becomes `nobody` (`--user`, accounts.py) before it
serves, so that its shells and its SFTP can write nowhere but its folder (a private one
of that account's). Otherwise it runs as whoever runs `tollgate up`.

    python -m extproc.quickstart.demo_ssh --port 10022 --dir DIR \\
        --host-key FILE --authorized-key "ssh-ed25519 AAAA..." [--user nobody]

In-process (the tests): `await DemoHost(folder, host_key, authorized).start(port)` ...
`.stop()`.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures.thread  # noqa: F401 - imported before the host becomes its account
import contextlib
import encodings.idna  # noqa: F401 - (accounts.become), which may not read this venv
import fcntl
import grp  # noqa: F401 - SFTP's listings name groups
import os
import pwd
import signal
import sys
import termios
from pathlib import Path
from typing import Any

import asyncssh

from extproc.codecs import private_file
from extproc.quickstart import accounts, stack
from extproc.quickstart.demo_mcp import DemoFolder

DEFAULT_PORT = 10022
SHELL = "/bin/sh"
# Who the host becomes under root (accounts.py).
ACCOUNTS = ("nobody",)


def private_key(path: Path) -> asyncssh.SSHKey:
    """The Ed25519 key at `path` (OpenSSH's format), made there, readable by its owner
    alone, on first use."""
    try:
        if path.exists():
            return asyncssh.read_private_key(path)
        key = asyncssh.generate_private_key("ssh-ed25519", comment=path.name)
        try:
            private_file.write(path, key.export_private_key(), exclusive=True)
        except FileExistsError:  # another process made it first: its key is the one
            return asyncssh.read_private_key(path)
        return key
    except (OSError, asyncssh.KeyImportError) as exc:
        raise stack.StackError(f"SSH key {path}: {exc}") from None


def public_line(key: asyncssh.SSHKey) -> str:
    """`key`'s public half as an OpenSSH line, without its comment."""
    algorithm, data = key.export_public_key().decode("ascii").split()[:2]
    return f"{algorithm} {data}"


def write_known_hosts(path: Path, key: asyncssh.SSHKey, host: str, port: int) -> None:
    """A known_hosts file pinning `key` for HOST:PORT, written as OpenSSH names a host on a
    port other than 22 (`[host]:port`)."""
    pattern = host if port == 22 else f"[{host}]:{port}"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.write_text(f"{pattern} {public_line(key)}\n", encoding="ascii")
    except OSError as exc:
        raise stack.StackError(f"known hosts {path}: {exc}") from None


def _environment(folder: Path, term: str | None) -> dict[str, str]:
    """A login's environment, as sshd gives one: not the gateway's (which may hold tokens)."""
    user = pwd.getpwuid(os.getuid()).pw_name  # who the host runs as, whatever $USER says
    env = {"HOME": str(folder), "USER": user, "LOGNAME": user, "SHELL": SHELL,
           "PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"}
    return {**env, "TERM": term} if term else env


def _take_terminal() -> None:
    """In the child, in its new session: its terminal becomes the session's controlling
    one, so Ctrl-C and job control reach the shell's foreground."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def _end(child: asyncio.subprocess.Process) -> None:
    """Kill what a session left running: its whole process group (the session's), since
    what `sh -c` started holds the output pipes open after the shell itself is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    await child.wait()


def _exit_status(returncode: int) -> int:
    """A child's status as a shell reports it (killed by signal N: 128 + N)."""
    return returncode if returncode >= 0 else 128 - returncode


class DemoHost:
    """The SSH server: a session per command or shell, SFTP in the folder."""

    def __init__(self, folder: Path, host_key: asyncssh.SSHKey, authorized: str) -> None:
        self.folder = DemoFolder(folder).root
        self._host_key = host_key
        self._authorized = asyncssh.import_authorized_keys(authorized + "\n")
        self._children: set[asyncio.subprocess.Process] = set()
        self._server: asyncssh.SSHAcceptor | None = None

    async def start(self, port: int, host: str = "127.0.0.1") -> DemoHost:
        self._server = await asyncssh.create_server(
            asyncssh.SSHServer, host, port, server_host_keys=[self._host_key],
            authorized_client_keys=self._authorized, process_factory=self._session,
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=os.fsencode(self.folder)),
            encoding=None, allow_scp=False, agent_forwarding=False, x11_forwarding=False)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.get_port())

    async def stop(self) -> None:
        """Stop listening, and end every command still running (a shell left open too)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for child in list(self._children):
            await _end(child)

    async def _session(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        """Run the client's command (or a shell) until it ends, or until the client goes:
        then it is killed, as sshd's session ending hangs up on it."""
        child, streams = await self._spawn(process)
        self._children.add(child)
        try:
            await process.redirect(**streams, send_eof=False)
            await self._relay(process, child)
        except (AssertionError, OSError, asyncssh.Error):
            # A client gone while the child started: asyncssh's redirection asserts the
            # channel's connection, which is gone. Nothing is left to answer.
            if not process.is_closing():
                raise
        finally:
            await _end(child)
            self._children.discard(child)

    async def _relay(self, process: asyncssh.SSHServerProcess[bytes],
                     child: asyncio.subprocess.Process) -> None:
        """Until the child has ended (its status sent) or the client has gone."""
        ran = asyncio.ensure_future(self._ran(process, child))
        gone = asyncio.ensure_future(process.wait_closed())
        try:
            done, _ = await asyncio.wait((ran, gone), return_when=asyncio.FIRST_COMPLETED)
            if ran in done:
                process.exit(ran.result() if ran.exception() is None else 255)
            # The channel's close also finishes asyncssh's own clean-up of the session.
            await gone
        finally:
            ran.cancel()

    async def _spawn(self, process: asyncssh.SSHServerProcess[bytes]
                     ) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
        """/bin/sh for the command (or alone, a shell) in a session of its own, and where
        the channel's input and output go (`redirect`'s arguments): pipes, or a
        pseudo-terminal of the client's size when it asked for one."""
        argv = [SHELL] if process.command is None else [SHELL, "-c", process.command]
        env = _environment(self.folder, process.term_type)
        if process.term_type is None:
            pipe = asyncio.subprocess.PIPE
            child = await asyncio.create_subprocess_exec(
                *argv, cwd=self.folder, env=env, stdin=pipe, stdout=pipe, stderr=pipe,
                start_new_session=True)
            return child, {"stdin": child.stdin, "stdout": child.stdout,
                           "stderr": child.stderr}
        controller, terminal = os.openpty()
        width, height = process.term_size[:2]
        if width and height:  # before the shell starts, so that it sees the client's size
            termios.tcsetwinsize(terminal, (height, width))
        try:
            child = await asyncio.create_subprocess_exec(
                *argv, cwd=self.folder, env=env, stdin=terminal, stdout=terminal,
                stderr=terminal, start_new_session=True, preexec_fn=_take_terminal)
        except OSError:
            os.close(controller)
            raise
        finally:
            os.close(terminal)
        # Signals and window size changes go to the shell.
        process.set_redirect_pid(child.pid)
        return child, {"stdin": controller, "stdout": os.dup(controller)}

    @staticmethod
    async def _ran(process: asyncssh.SSHServerProcess[bytes],
                   child: asyncio.subprocess.Process) -> int:
        """The child's exit status, once it has ended and its output has all gone out.
        (Neither stream sends EOF when it ends: an SSH channel's EOF ends stderr too,
        whose last lines may come after stdout's end; the exit status closes the
        channel.)"""
        returncode = await child.wait()
        await process.stdout.drain()
        await process.stderr.drain()
        return _exit_status(returncode)


def start(port: int, folder: Path, account: accounts.Account | None, host_key_file: Path,
          authorized_key: str, log_dir: Path | None, timeout: float = 15.0) -> stack.Process:
    """The demo host as a process of its own, run as `account` (None: as this user) in
    `folder` (a private folder of that account's), ready once it accepts connections."""
    user = ["--user", account.name] if account is not None else []
    proc = stack.Process.spawn(
        "demo-ssh",
        [sys.executable, "-m", "extproc.quickstart.demo_ssh", "--port", str(port),
         "--dir", str(folder), "--host-key", str(host_key_file),
         "--authorized-key", authorized_key, *user],
        log_dir,
    )
    proc.ready_or_fail(stack.tcp_accepts(port), timeout, "accepting connections",
                       "the demo SSH host", f"127.0.0.1:{port}")
    return proc


async def _serve(args: argparse.Namespace) -> None:
    host_key = asyncssh.read_private_key(args.host_key)
    if args.user is not None:  # everything it runs is imported by now
        accounts.become(accounts.Account.of(pwd.getpwnam(args.user)))
    host = await DemoHost(args.dir, host_key, args.authorized_key).start(args.port, args.host)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await host.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tollgate's demo SSH host")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--dir", type=Path, required=True,
                        help="the folder commands run in and SFTP serves (made, seeded)")
    parser.add_argument("--host-key", type=Path, required=True,
                        help="the host's private key (OpenSSH format)")
    parser.add_argument("--authorized-key", required=True,
                        help="the one public key let in: the gateway's (an OpenSSH line)")
    parser.add_argument("--user", help="the account to become once the host key is read "
                                       "(as root: never serve as root)")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
