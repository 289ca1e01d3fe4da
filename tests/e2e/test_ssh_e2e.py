"""SSH targets end to end: real clients, through a real Envoy, to a real OpenSSH server.

The host is Debian's sshd on a free port (tests/support/sshd.py), which trusts only the
gateway's key; agents log in to Envoy's SSH listener as `TARGET@gateway` with their token
(asyncssh, paramiko) and never see that key. The default pack decides each command: an
`uptime` runs, a destructive command is refused with exit status 126, a `sudo` waits for
an approval; output is masked as it streams.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import paramiko
import pytest

from extproc.quickstart import stack
from extproc.terminal.gate import REFUSED_STATUS
from tests.e2e.test_approvals_e2e import Held, api, pending_where
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.ssh_certificates import write_key
from tests.support.sshd import Sshd
from tests.test_telemetry_docs import check_front

AGENT = tokens.token("svc-ssh-agent", ["agents"])
OPS = tokens.token("olga", ["ops"])
# An agent of the production host's own: one token in two environments is refused
# (activity.token_reuse).
PROD_AGENT = tokens.token("svc-ssh-prod-agent", ["agents"])
LOGIN = "web-1"
FILES = "files-1"
PROD = "prod-1"


def web(host: Sshd) -> dict[str, Any]:
    return {"name": LOGIN, "protocol": "ssh", "match": {"login": LOGIN},
            "environment": "test",
            "ssh": {"upstream": f"{host.host}:{host.port}", "user": host.user,
                    "key_file": str(host.client_key_file), "host_key": host.host_key_line}}


def files(host: Sshd) -> dict[str, Any]:
    """The same host as a target whose data is not masked (`masking: off`): what SFTP
    downloads need, since a file's bytes pass as they are."""
    return {**web(host), "name": FILES, "match": {"login": FILES},
            "labels": {"masking": "off"}}


def prod(host: Sshd) -> dict[str, Any]:
    """The same host as a production target, its data unmasked (SFTP writes)."""
    return {**files(host), "name": PROD, "match": {"login": PROD}, "environment": "prod"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, host: Sshd) -> Iterator[Gateway]:
    """The gateway, with a user CA for `tollgate ssh login`'s certificates."""
    ca = tmp_path_factory.mktemp("ssh-ca") / "user_ca"
    write_key(ca)
    with module_gateway(tmp_path_factory, otlp, "ssh",
                        targets=[web(host), files(host), prod(host)],
                        ssh={"user_ca_key_file": str(ca)},
                        settings={"approvals": {"max_hold_seconds": 30}}) as running:
        yield running


def connect(gw: Gateway, login: str = LOGIN, token: str = AGENT) -> Any:
    assert gw.ports.ssh is not None
    return asyncssh.connect("127.0.0.1", gw.ports.ssh, username=login, password=token,
                            known_hosts=None, client_keys=None, agent_path=None, config=None)


async def run(gw: Gateway, command: str, token: str = AGENT,
              stdin: str | None = None) -> asyncssh.SSHCompletedProcess:
    async with connect(gw, token=token) as conn:
        return await conn.run(command, input=stdin, check=False)


def transfer_of(gw: Gateway, path: str) -> dict[str, Any]:
    """The record of the SFTP open of `path`, once written."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in gw.records() if r["request"]["method"] == "SFTP"
                    and r["meaning"]["ssh"]["sftp"]["path"] == path
                    and r["meaning"]["ssh"]["sftp"]["operation"] == "open"
                    and r["response"] is not None]
        return bool(found)

    stack.wait_until(written, 10, f"the SFTP record of {path}")
    return found[-1]


async def test_a_command_runs_on_the_host(gw: Gateway, host: Sshd) -> None:
    result = await run(gw, "echo hello from $(whoami)")
    assert result.exit_status == 0, result.stderr
    assert result.stdout == f"hello from {host.user}\n"


async def test_secrets_in_output_are_masked(gw: Gateway, host: Sshd) -> None:
    path = host.put("secrets.env", b"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nname=ok\n")
    result = await run(gw, f"cat {path}")
    assert result.exit_status == 0, result.stderr
    assert "AKIAIOSFODNN7EXAMPLE" not in result.stdout
    assert "name=ok" in result.stdout


async def test_a_wrong_token_cannot_log_in(gw: Gateway) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        await run(gw, "true", token="not-a-token")




async def test_a_destructive_command_is_refused_and_never_reaches_the_host(
        gw: Gateway, host: Sshd) -> None:
    victim = host.put("victim.txt", b"still here\n")
    result = await run(gw, f"rm -rf / ; rm {victim}")
    assert result.exit_status == REFUSED_STATUS
    assert "tollgate: refused" in result.stderr and "[trace " in result.stderr
    assert victim.read_bytes() == b"still here\n"


def test_sudo_waits_for_an_approval_then_runs(gw: Gateway, host: Sshd) -> None:
    marker = host.home / "approved.txt"
    command = f"sudo -n true 2>/dev/null; echo approved > {marker}; echo done"
    held = Held(lambda: asyncio.run(run(gw, command)))
    approval = pending_where(
        gw, lambda a: (a["request"]["body"] or {}).get("command") == command, OPS,
        "the sudo's approval")
    assert not marker.exists()  # nothing ran while it waited
    status, _ = api(gw, "POST", f"/approvals/{approval['id']}/approve", OPS,
                    {"reason": "restart window"})
    assert status == 200
    result = held.result()
    assert result.exit_status == 0, result.stderr
    assert "waiting up to" in result.stderr  # the agent was told why it waited
    assert result.stdout == "done\n"
    assert marker.read_text() == "approved\n"


def test_paramiko_runs_a_command_with_the_token_as_password(gw: Gateway) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", gw.ports.ssh, username=LOGIN, password=AGENT,
                   look_for_keys=False, allow_agent=False)
    try:
        _, stdout, stderr = client.exec_command("echo from paramiko; echo err >&2; exit 3")
        assert stdout.read() == b"from paramiko\n"
        assert stderr.read() == b"err\n"
        assert stdout.channel.recv_exit_status() == 3
    finally:
        client.close()


def askpass_env(tmp_path: Path) -> dict[str, str]:
    """The OpenSSH client's environment for the token as its password, from SSH_ASKPASS
    (as a script answers the client's prompt)."""
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{AGENT}'\n")
    askpass.chmod(0o700)
    return {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force",
            "DISPLAY": ":0"}


def openssh_password(tmp_path: Path) -> list[str]:
    """OpenSSH options: a password login, the gateway's key learnt in a file of the test's."""
    return ["-F", "/dev/null", "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
            "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password"]


def test_openssh_client_with_the_token_from_askpass(gw: Gateway, tmp_path: Path) -> None:
    """The OpenSSH client asks for the password through SSH_ASKPASS (as a script can
    answer it), and shows tollgate's refusals on stderr with the exit status."""
    env = askpass_env(tmp_path)
    base = ["ssh", "-p", str(gw.ports.ssh), *openssh_password(tmp_path), f"{LOGIN}@127.0.0.1"]
    ok = subprocess.run([*base, "echo via openssh"], env=env, capture_output=True,
                        text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert (ok.returncode, ok.stdout) == (0, "via openssh\n"), ok.stderr
    refused = subprocess.run([*base, "mkfs.ext4 /dev/sda"], env=env, capture_output=True,
                             text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert refused.returncode == REFUSED_STATUS
    assert "tollgate: refused" in refused.stderr


def ssh_login(gw: Gateway, home: Path) -> subprocess.CompletedProcess[str]:
    """`tollgate ssh login` for the agent's token, its key `home`/id_ed25519 (the
    certificate and the gateway's pinned host key beside it)."""
    login = subprocess.run(
        [sys.executable, "-m", "extproc", "ssh", "login", "--token", AGENT, "--key",
         str(home / "id_ed25519"), "--url", f"http://127.0.0.1:{gw.replica_admin_ports[0]}",
         "--port", str(gw.ports.ssh)], capture_output=True, text=True, timeout=30,
        env={**os.environ, "HOME": str(home)})
    assert login.returncode == 0, login.stderr
    return login


def test_openssh_client_with_a_certificate_from_tollgate_ssh_login(
        gw: Gateway, tmp_path: Path) -> None:
    """`tollgate ssh login` trades the token for a certificate and prints the ssh command;
    the OpenSSH client logs in with it, the gateway's host key pinned, no password."""
    login = ssh_login(gw, tmp_path)
    command = shlex.split(login.stdout.splitlines()[-1])
    assert command[-1] == "TARGET@127.0.0.1"
    ran = subprocess.run(
        [*command[:-1], "-F", "/dev/null", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=yes", f"{LOGIN}@127.0.0.1", "echo with a certificate"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert (ran.returncode, ran.stdout) == (0, "with a certificate\n"), ran.stderr
    refused = subprocess.run(
        [*command[:-1], "-F", "/dev/null", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=yes", f"{LOGIN}@127.0.0.1", "shred /dev/sda"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert refused.returncode == REFUSED_STATUS and "tollgate: refused" in refused.stderr


def test_the_token_never_reaches_the_host(gw: Gateway, host: Sshd) -> None:
    asyncio.run(run(gw, "true"))
    log = host.log()
    assert "Accepted publickey" in log  # the gateway's key, not the agent's password
    assert AGENT not in log and AGENT.split(".")[2] not in log


def test_an_sftp_upload_is_decided_and_recorded_with_size_and_sha256(
        gw: Gateway, host: Sshd) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    local = host.home.parent / "upload-src.bin"
    local.write_bytes(data)
    target = str(host.home / "uploaded.bin")

    async def upload() -> None:
        async with connect(gw) as conn, conn.start_sftp_client() as sftp:
            await sftp.put(str(local), target)

    asyncio.run(upload())
    assert Path(target).read_bytes() == data
    record = transfer_of(gw, target)
    assert record["meaning"]["ssh"]["sftp"]["direction"] == "upload"
    assert record["response"]["headers"] == {
        "size": str(len(data)), "sha256": hashlib.sha256(data).hexdigest(),
        "complete": "true"}


async def test_a_binary_download_the_policy_would_mask_is_refused(
        gw: Gateway, host: Sshd) -> None:
    """Text is served masked (tests/e2e/test_sftp_rules_e2e.py); binary cannot be."""
    path = host.put("masked.bin", b"\x00card 4111 1111 1111 1111\n")
    async with connect(gw) as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="cannot be served masked"):
            await sftp.get(str(path), str(host.home.parent / "never.txt"))
    assert not (host.home.parent / "never.txt").exists()


async def test_sftp_writes_under_system_paths_are_refused(gw: Gateway) -> None:
    async with connect(gw, FILES) as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="tollgate"):
            async with sftp.open("/etc/tollgate-test", "w") as file:
                await file.write("no")


def test_openssh_scp_and_sftp_download_from_an_unmasked_target(
        gw: Gateway, host: Sshd, tmp_path: Path) -> None:
    """scp (over SFTP) and `scp -O` (the legacy protocol) through the gateway: a
    download from a target whose data is not masked arrives whole and is recorded."""
    data = os.urandom(1024 * 1024)
    path = host.put("report.bin", data)
    for legacy, name in ((False, "sftp.bin"), (True, "legacy.bin")):
        got = subprocess.run(
            ["scp", *(["-O"] if legacy else []), *openssh_password(tmp_path),
             "-P", str(gw.ports.ssh), f"{FILES}@127.0.0.1:{path}", str(tmp_path / name)],
            env=askpass_env(tmp_path), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL)
        assert got.returncode == 0, got.stderr
        assert (tmp_path / name).read_bytes() == data
    record = transfer_of(gw, str(path))
    assert record["response"]["headers"]["sha256"] == hashlib.sha256(data).hexdigest()
    refused = subprocess.run(
        ["scp", *openssh_password(tmp_path), "-P", str(gw.ports.ssh),
         str(tmp_path / "sftp.bin"), f"{FILES}@127.0.0.1:/etc/tollgate-test"],
        env=askpass_env(tmp_path), capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL)
    assert refused.returncode != 0
    assert "tollgate" in refused.stderr


def first_typed(record: dict[str, Any]) -> bool:
    """The first line the shell tests type (its LINE record)."""
    return bool(record["meaning"]["ssh"]["command"] == "echo ready-$((40+2))")


async def read_until(stdout: asyncssh.SSHReader[bytes], marker: bytes,
                     timeout: float = 15) -> bytes:
    """What the terminal showed, up to and including `marker` (a deadline, no sleeps)."""
    seen = b""
    async with asyncio.timeout(timeout):
        while marker not in seen:
            data = await stdout.read(4096)
            if not data:
                break
            seen += data
    return seen


async def test_a_slow_commands_output_shows_before_it_ends(gw: Gateway) -> None:
    """A command that prints, then waits for the agent: its line reaches the agent while
    it waits (the command cannot end before the agent answers), and so does what it
    printed of a key's start but the start itself, which is masked whole once the rest
    comes (the stream masker's flush)."""
    command = ("echo first-line; printf 'key AKIAIOSF'; read go; "
               "printf 'ODNN7EXAMPLE\\n'; echo end-$go")
    async with connect(gw) as conn:
        process = await conn.create_process(command, encoding=None)
        seen = await read_until(process.stdout, b"key ")
        assert seen == b"first-line\nkey "  # the line, and all but a key's possible start
        process.stdin.write(b"now\n")
        rest = await process.stdout.read()
        await process.wait_closed()
    assert process.exit_status == 0
    assert rest == b"[REDACTED:AWS_ACCESS_KEY_ID]\nend-now\n"


def test_an_interactive_shell_decides_each_line_and_is_replayable(
        gw: Gateway, host: Sshd) -> None:
    """With a terminal: keystrokes reach the host's shell as typed, each Enter waits for
    its line's decision; a refused line is dropped and the shell goes on; the session is
    recorded, masked, and `tollgate audit replay` checks and plays it."""
    victim = host.put("precious.txt", b"keep\n")
    secret = host.put("shell-secret.env", b"token=AKIAIOSFODNN7EXAMPLE\n")

    async def session() -> int | None:
        async with connect(gw) as conn:
            process = await conn.create_process(term_type="xterm", term_size=(100, 30),
                                                encoding=None)
            process.stdin.write(b"echo ready-$((40+2))\r")
            await read_until(process.stdout, b"ready-42")
            process.stdin.write(f"rm -rf / {victim}\r".encode())
            refused = await read_until(process.stdout, b"[trace ")
            assert b"tollgate: refused" in refused
            process.stdin.write(f"cat {secret}; echo after-$((1+1))\r".encode())
            shown = await read_until(process.stdout, b"after-2")
            assert b"AKIAIOSFODNN7EXAMPLE" not in shown and b"token=" in shown
            process.stdin.write(b"exit 7\r")
            await process.wait_closed()
            return process.exit_status

    assert asyncio.run(session()) == 7
    assert victim.read_bytes() == b"keep\n"
    lines = gw.terminal_lines(first_typed, 4, "SHELL", timeout=10)
    session = lines[0]["session_id"]
    assert [r["outcome"]["action"] for r in lines] == ["allow", "deny", "allow", "allow"]
    replay = subprocess.run(
        [sys.executable, "-m", "extproc", "audit", "replay", "--session", session,
         "--no-wait", "--config", str(gw.config_path)], capture_output=True, text=True,
        timeout=60, check=False)
    assert replay.returncode == 0, replay.stderr
    assert "verified" in replay.stdout and "DOES NOT MATCH" not in replay.stdout
    assert "ready-42" in replay.stdout and "after-2" in replay.stdout
    assert "AKIAIOSFODNN7EXAMPLE" not in replay.stdout


async def test_a_line_edited_with_keys_tollgate_cannot_follow_is_refused(
        gw: Gateway, host: Sshd) -> None:
    """Tab completion (or history, or the cursor keys) makes a line the shell's editor
    holds something tollgate never read: refused, and the host never runs it."""
    victim = host.put("completed.txt", b"keep\n")
    async with connect(gw) as conn:
        process = await conn.create_process(term_type="xterm", encoding=None)
        process.stdin.write(f"rm {victim.parent}/comple\t\r".encode())
        refused = await read_until(process.stdout, b"[trace ")
        assert b"tollgate: refused: a line edited with keys tollgate does not follow" in refused
        process.stdin.write(b"exit 0\r")
        await process.wait_closed()
    assert victim.read_bytes() == b"keep\n"


async def test_a_shell_without_a_terminal_gets_each_decided_line_whole(
        gw: Gateway, host: Sshd) -> None:
    victim = host.put("kept.txt", b"keep\n")
    async with connect(gw) as conn:
        result = await conn.run(input=f"echo one\nshred {victim}\necho two", check=False)
    assert result.stdout == "one\ntwo\n"
    assert "tollgate: refused" in result.stderr
    assert victim.read_bytes() == b"keep\n"


def test_openssh_interactive_session_with_a_forced_terminal(
        gw: Gateway, tmp_path: Path) -> None:
    typed = "echo typed-$((2*3))\rmkfs /dev/sda\rexit 0\r"
    ran = subprocess.run(
        ["ssh", "-tt", "-p", str(gw.ports.ssh), *openssh_password(tmp_path),
         f"{LOGIN}@127.0.0.1"], input=typed, env=askpass_env(tmp_path),
        capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "typed-6" in ran.stdout
    assert "tollgate: refused" in ran.stdout


async def test_the_fronts_spans_are_the_documented_ones(
        gw: Gateway, otlp: Any, host: Sshd) -> None:
    """Every attribute of the SSH front's spans is in docs/telemetry.md with the type it
    has, and the rows the page marks SSH's are all emitted."""
    local = host.home.parent / "spans-src.txt"
    local.write_bytes(b"spans\n")
    async with connect(gw) as conn:
        await conn.run("true", check=False)
        async with conn.start_sftp_client() as sftp:
            await sftp.put(str(local), str(host.home / "spans.txt"))
    spans = await asyncio.to_thread(otlp.wait_for, lambda all_: any(
        "tollgate.ssh.transfer.sha256" in s.attributes for s in all_)
        and any("tollgate.ssh.exit_status" in s.attributes for s in all_)
        and any("tollgate.ssh.auth" in s.attributes for s in all_))
    check_front([s for s in spans if s.attributes.get("network.protocol.name") == "ssh"],
                ("tollgate.ssh.", "network."),
                # A failure on the host, and a masked download (test_sftp_rules_e2e.py).
                exempt=("tollgate.ssh.transfer.error", "tollgate.ssh.transfer.masked"))


def _denied_once_pending(gw: Gateway, asked: Callable[[dict[str, Any]], bool],
                         held: Held[Any]) -> str:
    """Deny the pending approval `asked(approval)` picks, once it exists: its reason."""
    approval = pending_where(gw, asked, OPS, "the approval")
    status, _ = api(gw, "POST", f"/approvals/{approval['id']}/deny", OPS,
                    {"reason": "not during business hours"})
    assert status == 200
    held.result()
    return " ".join(approval["reasons"])


@pytest.mark.parametrize("command", [
    "install -m 644 /dev/null customers.csv", "truncate -s 0 customers.csv",
    "cp /dev/null customers.csv", ": > customers.csv", "rm customers.csv",
])
def test_emptying_or_removing_a_file_on_a_production_host_waits_for_ops(
        gw: Gateway, host: Sshd, command: str) -> None:
    """Denied, it never runs: the file keeps its rows."""
    data = host.put("customers.csv", b"id,name\n1,Ada\n")
    held = Held(lambda: asyncio.run(run_on(gw, PROD, command)))
    reasons = _denied_once_pending(
        gw, lambda a: (a["request"]["body"] or {}).get("command") == command, held)
    assert "destroys data on a production host: customers.csv" in reasons
    assert data.read_bytes() == b"id,name\n1,Ada\n"


def test_sftp_truncating_a_file_on_a_production_host_waits_for_ops(
        gw: Gateway, host: Sshd) -> None:
    """An empty upload over a file, and a setstat of its size, empty it: held, denied,
    the file intact."""
    settings = host.put("settings.conf", b"region = eu-west-1\n")

    async def upload_empty() -> bool:
        async with connect(gw, PROD, PROD_AGENT) as conn, conn.start_sftp_client() as sftp:
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                async with sftp.open(str(settings), "w"):
                    pass
        return True

    async def cut() -> bool:
        async with connect(gw, PROD, PROD_AGENT) as conn, conn.start_sftp_client() as sftp:
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.truncate(str(settings), 0)
        return True

    for act, operation in ((upload_empty, "open"), (cut, "setstat")):
        held = Held(lambda act=act: asyncio.run(act()))
        reasons = _denied_once_pending(
            gw, lambda a, operation=operation: (
                ((a["request"]["body"] or {}).get("sftp") or {}).get("operation") == operation
                and a["request"]["body"]["sftp"]["path"] == str(settings)), held)
        assert f"{settings} truncated (SFTP {operation})" in reasons
        assert settings.read_bytes() == b"region = eu-west-1\n"


async def run_on(gw: Gateway, login: str, command: str) -> asyncssh.SSHCompletedProcess:
    async with connect(gw, login, PROD_AGENT) as conn:
        return await conn.run(command, check=False)
