"""The test sshd (tests/support/sshd.py) is the host the SSH front's tests need: OpenSSH's
own client, asyncssh and paramiko log in with the gateway's key against the pinned host key,
commands and SFTP work, a pty is granted, root is refused, and stopping it ends its
sessions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncssh
import paramiko
import pytest

from extproc.quickstart import stack
from tests.support.sshd import Sshd, start_sshd

pytestmark = pytest.mark.e2e  # a real sshd


def openssh(sshd: Sshd, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`ssh` or `sftp` (argv[0]) with the gateway's key and only the pinned host key, none
    of the machine's configuration, and no prompts."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd.known_hosts)
    options = [f"Port={sshd.port}", f"UserKnownHostsFile={known_hosts}",
               "GlobalKnownHostsFile=/dev/null", "StrictHostKeyChecking=yes",
               "BatchMode=yes", "IdentitiesOnly=yes"]
    return subprocess.run(
        [argv[0], "-F", "/dev/null", "-i", str(sshd.client_key_file),
         *(arg for option in options for arg in ("-o", option)), *argv[1:]],
        capture_output=True, text=True, timeout=30)


async def connect(sshd: Sshd, host_key_line: str | None = None,
                  ) -> asyncssh.SSHClientConnection:
    """asyncssh's login with the gateway's key, trusting only `host_key_line` (the server's
    own unless given), and nothing of the machine's (~/.ssh/config, an agent)."""
    pinned = f"[{sshd.host}]:{sshd.port} {host_key_line or sshd.host_key_line}"
    return await asyncssh.connect(
        sshd.host, sshd.port, username=sshd.user, config=None, agent_path=None,
        client_keys=[str(sshd.client_key_file)], known_hosts=asyncssh.import_known_hosts(pinned))


def test_the_openssh_client_runs_a_command(sshd: Sshd, tmp_path: Path) -> None:
    ran = openssh(sshd, tmp_path, "ssh", f"{sshd.user}@{sshd.host}", "echo hi")
    assert (ran.returncode, ran.stdout) == (0, "hi\n"), ran.stderr
    assert f"Accepted publickey for {sshd.user} " in sshd.log()


def test_root_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    ran = openssh(sshd, tmp_path, "ssh", f"root@{sshd.host}", "echo hi")
    assert ran.returncode == 255
    assert "Permission denied" in ran.stderr
    assert ran.stdout == ""
    assert "Accepted publickey for root " not in sshd.log()


def test_sftp_uploads_and_downloads_in_home(sshd: Sshd, tmp_path: Path) -> None:
    sshd.put("report.txt", b"quarterly\n")
    (tmp_path / "notes.txt").write_bytes(b"from the agent\n")
    batch = tmp_path / "batch"
    batch.write_text(f"put {tmp_path / 'notes.txt'} {sshd.home / 'notes.txt'}\n"
                     f"get {sshd.home / 'report.txt'} {tmp_path / 'report.txt'}\n")
    ran = openssh(sshd, tmp_path, "sftp", "-b", str(batch), f"{sshd.user}@{sshd.host}")
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "report.txt").read_bytes() == b"quarterly\n"
    uploaded = sshd.home / "notes.txt"
    assert uploaded.read_bytes() == b"from the agent\n"
    assert uploaded.stat().st_uid == sshd.home.stat().st_uid  # written by the host's user


async def test_asyncssh_logs_in_against_the_pinned_host_key(sshd: Sshd) -> None:
    async with await connect(sshd) as conn:
        ran = await conn.run("id -un; exit 3")
    assert (ran.exit_status, ran.stdout) == (3, f"{sshd.user}\n")


async def test_asyncssh_refuses_a_host_key_other_than_the_pinned_one(sshd: Sshd) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await connect(sshd, host_key_line=other)


async def test_a_session_with_a_pty_gets_a_terminal(sshd: Sshd) -> None:
    async with await connect(sshd) as conn:
        ran = await conn.run("tty", term_type="xterm")
    assert ran.exit_status == 0
    assert str(ran.stdout).startswith("/dev/pts/")


def test_paramiko_logs_in_against_the_pinned_host_key(sshd: Sshd, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd.known_hosts)
    with paramiko.SSHClient() as client:
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(sshd.host, sshd.port, username=sshd.user,
                       key_filename=str(sshd.client_key_file), look_for_keys=False,
                       allow_agent=False, timeout=10)
        _, stdout, _ = client.exec_command("id -un")
        assert stdout.read() == f"{sshd.user}\n".encode()
        assert stdout.channel.recv_exit_status() == 0


async def test_stopping_ends_the_commands_still_running(tmp_path: Path) -> None:
    with start_sshd(tmp_path) as sshd:
        conn = await connect(sshd)
        running = await conn.create_process("echo $$; exec sleep 300")
        pid = int(await running.stdout.readline())
    try:
        stack.wait_until(lambda: stack.process_stats().get(pid, ["Z"])[0] == "Z", 10,
                         f"the host's `sleep` (pid {pid}) to end")
    finally:
        conn.close()
