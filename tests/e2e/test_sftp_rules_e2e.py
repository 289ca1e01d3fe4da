"""SFTP under the shell's rules, end to end: real clients (asyncssh, paramiko, OpenSSH's
sftp and scp), through a real Envoy and tollgate's SSH front with the default pack, to a
real OpenSSH host. A README holding a secret downloads masked, in place, at the size the
host's STAT gave (every client's offsets hold); removing or renaming over a system path is
refused and never reaches the host; renaming ordinary files passes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import paramiko
import pytest

from tests.e2e.test_ssh_e2e import (
    AGENT,
    LOGIN,
    askpass_env,
    connect,
    openssh_password,
    transfer_of,
    web,
)
from tests.support.gateway import Gateway, module_gateway
from tests.support.sshd import Sshd

README = (b"# Service\n\nexport AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
          + b"how to run it, line by line\n" * 5000
          + b"billing card 4111 1111 1111 1111\n")
MASKED = (b"# Service\n\nexport AWS_ACCESS_KEY_ID=" + b"*" * 20 + b"\n"
          + b"how to run it, line by line\n" * 5000
          + b"billing card " + b"*" * 19 + b"\n")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, host: Sshd) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "sftp-rules", targets=[web(host)],
                        ssh={}) as running:
        yield running


def openssh_sftp(gw: Gateway, tmp_path: Path, command: str) -> subprocess.CompletedProcess[str]:
    """OpenSSH's sftp running `command`, given on stdin: `-b` would forbid the password
    prompt that SSH_ASKPASS answers with the token."""
    return subprocess.run(["sftp", *openssh_password(tmp_path), "-P", str(gw.ports.ssh),
                           f"{LOGIN}@127.0.0.1"], input=f"{command}\n",
                          env=askpass_env(tmp_path), capture_output=True, text=True,
                          timeout=60)


def all_there(*paths: str) -> bool:
    return all(os.path.exists(path) for path in paths)


def assert_masked_transfer(gw: Gateway, path: Path) -> None:
    """The record of the download: what was sent, masked, whole and in order."""
    record = transfer_of(gw, str(path))
    assert record["response"]["headers"] == {
        "size": str(len(MASKED)), "sha256": hashlib.sha256(MASKED).hexdigest(),
        "complete": "true", "masked": "true"}
    assert record["outcome"]["action"] == "allow"


def test_the_masked_readme_keeps_the_size_of_the_hosts() -> None:
    assert len(MASKED) == len(README) and b"AKIA" not in MASKED


async def test_asyncssh_downloads_a_readme_masked(gw: Gateway, host: Sshd,
                                                  tmp_path: Path) -> None:
    path = host.put("README-asyncssh.md", README)
    again = host.put("README-asyncssh-again.md", README)  # its own record
    async with connect(gw) as conn, conn.start_sftp_client() as sftp:
        await sftp.get(str(path), tmp_path / "README.md")
        stat = await sftp.stat(str(path))
        async with sftp.open(str(again), "rb") as file:
            fstat = await file.stat()
            middle = await file.read(100, 40)
    assert (tmp_path / "README.md").read_bytes() == MASKED
    assert stat.size == fstat.size == len(MASKED)
    assert middle == MASKED[40:140]
    assert_masked_transfer(gw, path)


async def test_paramiko_prefetch_downloads_a_readme_masked(gw: Gateway, host: Sshd,
                                                           tmp_path: Path) -> None:
    path = host.put("README-paramiko.md", README)

    def get() -> int:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect("127.0.0.1", gw.ports.ssh, username=LOGIN, password=AGENT,
                       look_for_keys=False, allow_agent=False)
        try:
            with client.open_sftp() as sftp:
                sftp.get(str(path), str(tmp_path / "README.md"), prefetch=True)
                return sftp.stat(str(path)).st_size or 0
        finally:
            client.close()
    size = await asyncio.to_thread(get)
    assert (tmp_path / "README.md").read_bytes() == MASKED
    assert size == len(MASKED)


@pytest.mark.parametrize("legacy", [False, True], ids=["sftp-get", "scp-O"])
def test_openssh_downloads_a_readme_masked(gw: Gateway, host: Sshd, tmp_path: Path,
                                           legacy: bool) -> None:
    path = host.put(f"README-openssh-{legacy}.md", README)
    if legacy:
        got = subprocess.run(
            ["scp", "-O", *openssh_password(tmp_path), "-P", str(gw.ports.ssh),
             f"{LOGIN}@127.0.0.1:{path}", str(tmp_path / "README.md")],
            env=askpass_env(tmp_path), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL)
    else:
        got = openssh_sftp(gw, tmp_path, f"get {path} {tmp_path / 'README.md'}")
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "README.md").read_bytes() == MASKED
    assert_masked_transfer(gw, path)


async def test_removing_a_system_path_is_refused(gw: Gateway, host: Sshd) -> None:
    async with connect(gw) as conn, conn.start_sftp_client() as sftp:
        for path in ("/etc/hostname", "/usr/bin/env", f"{host.home}/../../../etc/passwd"):
            with pytest.raises(asyncssh.SFTPPermissionDenied,
                               match=r"tollgate: refused: SFTP remove of .*: a system path"
                                     r".*\[trace "):
                await sftp.remove(path)
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="a top-level directory"):
            await sftp.rmdir("/tmp")
    assert all_there("/etc/hostname", "/usr/bin/env")


def test_openssh_sftp_rm_of_a_system_path_shows_the_reason(gw: Gateway,
                                                           tmp_path: Path) -> None:
    got = openssh_sftp(gw, tmp_path, "rm /etc/hostname")
    assert "tollgate: refused: SFTP remove of /etc/hostname: a system path" in got.stderr
    assert Path("/etc/hostname").exists()


async def test_renaming_over_etc_is_refused_and_ordinary_renames_pass(
        gw: Gateway, host: Sshd) -> None:
    notes = host.put("notes.txt", b"notes\n")
    async with connect(gw) as conn, conn.start_sftp_client() as sftp:
        for target in ("/etc/passwd", "/etc/cron.d/tollgate", "/etc/../etc/profile.d/x.sh"):
            with pytest.raises(asyncssh.SFTPPermissionDenied,
                               match=r"tollgate: refused: SFTP rename of .*: a system path"):
                await sftp.rename(str(notes), target)
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="a system path"):
                await sftp.posix_rename(str(notes), target)
        await sftp.rename(str(notes), str(host.home / "notes.old"))
        await sftp.posix_rename(str(host.home / "notes.old"), str(host.home / "notes.md"))
    assert (host.home / "notes.md").read_bytes() == b"notes\n" and not notes.exists()
