"""The demo SSH host `tollgate up` puts behind the demo-host target, driven by a real
asyncssh client holding the gateway's key: commands and shells run with /bin/sh in the
demo's folder, SFTP serves that folder as its root, and no other key gets in."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from extproc.quickstart import accounts, demo_ssh, stack
from extproc.quickstart.demo_mcp import SETTINGS


@dataclass
class Running:
    host: demo_ssh.DemoHost
    gateway_key: asyncssh.SSHKey
    known_hosts: Path

    def connect(self, key: asyncssh.SSHKey | None = None,
                password: str | None = None) -> asyncssh.SSHClientConnection:
        return asyncssh.connect(
            "127.0.0.1", self.host.port, username="demo",
            client_keys=[key or self.gateway_key] if password is None else None,
            password=password, known_hosts=str(self.known_hosts), agent_path=None,
            config=None)


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Running]:
    keys = tmp_path / "keys"
    host_key = demo_ssh.private_key(keys / "demo_host_ed25519")
    gateway_key = demo_ssh.private_key(keys / "gateway_ed25519")
    host = await demo_ssh.DemoHost(tmp_path / "home", host_key,
                                   demo_ssh.public_line(gateway_key)).start(0)
    try:
        known_hosts = keys / "demo_known_hosts"
        demo_ssh.write_known_hosts(known_hosts, host_key, "127.0.0.1", host.port)
        yield Running(host, gateway_key, known_hosts)
    finally:
        await host.stop()


async def test_a_command_runs_in_the_demo_folder(demo: Running) -> None:
    async with demo.connect() as conn:
        result = await conn.run("cat settings.conf; pwd; echo $HOME", check=False)
        assert result.exit_status == 0, result.stderr
        assert result.stdout == f"{SETTINGS}{demo.host.folder}\n{demo.host.folder}\n"
        # stdin reaches the command, and its end ends it.
        assert (await conn.run("tr a-z A-Z", input="hello\n")).stdout == "HELLO\n"


async def test_the_exit_status_and_stderr_written_after_stdout_closed_come_back(
        demo: Running) -> None:
    async with demo.connect() as conn:
        result = await conn.run("echo out; exec >&-; echo late >&2; exit 3", check=False)
    assert (result.stdout, result.stderr, result.exit_status) == ("out\n", "late\n", 3)


async def test_a_shell_on_a_terminal_of_the_clients_size(demo: Running) -> None:
    async with demo.connect() as conn:
        sized = await conn.run("stty size; tty", term_type="xterm", term_size=(101, 31))
        assert sized.stdout.splitlines()[0] == "31 101"
        assert sized.stdout.splitlines()[1].startswith("/dev/pts/")
        async with conn.create_process(term_type="xterm", term_size=(80, 24)) as shell:
            shell.stdin.write("echo $((6 * 7)) $TERM\n")
            assert (await shell.stdout.readuntil("42 xterm")).endswith("42 xterm")
            shell.stdin.write("exit 5\n")
            await shell.wait_closed()
        assert shell.exit_status == 5


async def test_sftp_serves_the_demo_folder_as_its_root(demo: Running, tmp_path: Path) -> None:
    upload = tmp_path / "upload.txt"
    upload.write_text("uploaded\n")
    async with demo.connect() as conn, conn.start_sftp_client() as sftp:
        assert {"settings.conf", "notes.txt", "customers.csv"} <= set(await sftp.listdir("/"))
        assert await sftp.realpath("/..") == "/"
        async with sftp.open("/settings.conf") as remote:
            assert await remote.read() == SETTINGS
        await sftp.put(str(upload), "/upload.txt")
    assert (demo.host.folder / "upload.txt").read_text() == "uploaded\n"


async def test_only_the_gateways_key_logs_in(demo: Running, tmp_path: Path) -> None:
    stranger = demo_ssh.private_key(tmp_path / "stranger")
    with pytest.raises(asyncssh.PermissionDenied):
        async with demo.connect(key=stranger):
            pass
    with pytest.raises(asyncssh.PermissionDenied):
        async with demo.connect(password="anything"):
            pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for this purpose: it runs nothing.
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"


async def test_a_client_that_leaves_ends_what_its_command_started(demo: Running) -> None:
    async with demo.connect() as conn:
        process = await conn.create_process("sleep 300 & echo $! > sleeper; wait")
        sleeper = demo.host.folder / "sleeper"
        await wait_until(lambda: sleeper.exists() and sleeper.read_text().strip() != "",
                         "the sleeper's pid")
        pid = int(sleeper.read_text())
        assert alive(pid)
        process.close()
        await wait_until(lambda: not alive(pid), "the sleeper, ended")


async def wait_until(check: Callable[[], bool], what: str) -> None:
    """stack.wait_until, off the event loop (the server runs on it)."""
    await asyncio.to_thread(stack.wait_until, check, 10, what)


def test_keys_are_made_once_owner_only_and_pinned_as_openssh_names_the_port(
        tmp_path: Path) -> None:
    path = tmp_path / "ssh" / "host_ed25519"
    made = demo_ssh.private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = demo_ssh.private_key(path)
    assert demo_ssh.public_line(again) == demo_ssh.public_line(made)
    assert demo_ssh.public_line(made).startswith("ssh-ed25519 ")
    known = tmp_path / "ssh" / "known_hosts"
    demo_ssh.write_known_hosts(known, made, "127.0.0.1", 10022)
    assert known.read_text() == f"[127.0.0.1]:10022 {demo_ssh.public_line(made)}\n"
    # As the gateway checks the host (asyncssh, by name and address).
    trusted, *_ = asyncssh.read_known_hosts(str(known)).match("127.0.0.1", "127.0.0.1", 10022)
    assert {demo_ssh.public_line(k) for k in trusted} == {demo_ssh.public_line(made)}


def test_an_unreadable_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken"
    path.write_text("not a key\n")
    with pytest.raises(stack.StackError, match=f"SSH key {path}"):
        demo_ssh.private_key(path)


@pytest.mark.e2e  # the host as `tollgate up` runs it: a process of its own
async def test_the_process_serves_unprivileged_and_stops_cleanly_on_sigterm(
        tmp_path: Path) -> None:
    """As `tollgate up` starts it: under root it reads its key (which only root may),
    then runs as `nobody`, in a private folder of that account's: its shells and its SFTP
    can write nothing outside that folder (here, in the test's own folder, which only
    root may enter; SFTP tried through a link the shell made)."""
    host_key_file, port = tmp_path / "host_ed25519", stack.free_port()
    host_key = demo_ssh.private_key(host_key_file)
    gateway_key = demo_ssh.private_key(tmp_path / "gateway_ed25519")
    known_hosts = tmp_path / "known_hosts"
    demo_ssh.write_known_hosts(known_hosts, host_key, "127.0.0.1", port)
    account = accounts.service_account(*demo_ssh.ACCOUNTS)
    outside = tmp_path / "outside"
    outside.write_text("root's\n")
    with accounts.private_folder(account, "demo-host") as home:
        process = demo_ssh.start(port, home, account, host_key_file,
                                 demo_ssh.public_line(gateway_key), tmp_path)
        try:
            async with asyncssh.connect("127.0.0.1", port, username="demo",
                                        client_keys=[gateway_key], known_hosts=str(known_hosts),
                                        agent_path=None, config=None) as conn:
                assert (await conn.run("cat notes.txt")).stdout.startswith("Project notes")
                ran = await conn.run(f"id -u; echo $USER; echo x > {outside}; "
                                     f"ln -s {outside} link", check=False)
                uid, user = ran.stdout.split()
                assert int(uid) == os.getuid() if account is None else int(uid) != 0
                assert user == accounts.owner(account)
                async with conn.start_sftp_client() as sftp:
                    with pytest.raises(asyncssh.SFTPError):
                        async with sftp.open("link", "w") as through:
                            await through.write("through SFTP\n")
                    await sftp.put(str(known_hosts), "copied")
            assert outside.read_text() == "root's\n"
            assert (home / "copied").stat().st_uid == (account or accounts.Account(
                "", os.getuid(), os.getgid())).uid
            process.signal(signal.SIGTERM)
            assert process.popen.wait(10) == 0
        finally:
            process.stop()
    assert not home.exists()
    assert "Traceback" not in process.tail()
