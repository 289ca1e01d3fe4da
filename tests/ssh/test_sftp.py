"""The SFTP relay (extproc/ssh/sftp.py) between real clients and a real OpenSSH host:
asyncssh's, paramiko's and OpenSSH's sftp and scp (SFTP and legacy) move files through it,
every path is decided on where it leads on the host, a refusal reaches the client as
FX_PERMISSION_DENIED with tollgate's reason (on stderr for OpenSSH's sftp), and each
transfer ends with its size and SHA-256."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import paramiko
import pytest

from extproc.masking import Masker, MaskSpec
from extproc.ssh.sftp import (
    REORDER_LIMIT,
    Connect,
    CopyTransfer,
    SftpGate,
    SftpRelay,
    Transfer,
)
from extproc.ssh.upstream import UpstreamError
from extproc.terminal.files import mask_file
from tests.support.sshd import Sshd

pytestmark = pytest.mark.e2e  # a real sshd, and OpenSSH's clients run as processes

SIZE = 3 * 1024 * 1024 + 12345  # several of every client's requests, and a short last one
LOGIN = "web-1"


@dataclass
class Ticket:
    sftp: dict[str, Any]
    refusal: str | None
    mask: Callable[[bytes], bytes] | None = None
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    refused_after: list[str] = field(default_factory=list)  # refuse()'s reasons

    def finish(self, outcome: dict[str, Any]) -> None:
        self.outcomes.append(outcome)

    def refuse(self, reason: str) -> str:
        self.refused_after.append(reason)
        self.refusal = f"tollgate: refused: {reason} [trace 0123]"
        return self.refusal


MASKER = Masker(b"test-masking-key-0123456789")


class RuleGate:
    """Refuses what `rule` names a reason for, and keeps every ticket it gave. `masked`:
    a download is given the default mask, through the real masker (as gate.Transfers)."""

    def __init__(self, rule: Callable[[dict[str, Any]], str | None],
                 masked: bool = False) -> None:
        self.rule, self.masked = rule, masked
        self.tickets: list[Ticket] = []

    async def decide(self, sftp: dict[str, Any]) -> Ticket:
        ticket = Ticket(sftp, self.rule(sftp))
        if self.masked and sftp["operation"] == "open" and sftp["direction"] != "upload":
            ticket.mask = lambda data: mask_file(MASKER, MaskSpec(), data)[0]
        self.tickets.append(ticket)
        return ticket

    def asked(self, operation: str) -> list[Ticket]:
        return [t for t in self.tickets if t.sftp["operation"] == operation]

    def only(self, operation: str, direction: str | None = None) -> Ticket:
        (ticket,) = [t for t in self.asked(operation)
                     if direction is None or t.sftp["direction"] == direction]
        return ticket


class FailingGate:
    async def decide(self, sftp: dict[str, Any]) -> Ticket:
        raise RuntimeError("the store is down")


@dataclass
class Relay:
    """The relay served by an asyncssh server of the test's own, in front of the host."""

    port: int
    gate: Any  # the test's own
    host: Sshd
    key_file: Path  # the agent's key
    known_hosts: Path  # the relay's host key, pinned for the clients

    def openssh_options(self) -> list[str]:
        options = [f"UserKnownHostsFile={self.known_hosts}", "GlobalKnownHostsFile=/dev/null",
                   "StrictHostKeyChecking=yes", "BatchMode=yes", "IdentitiesOnly=yes"]
        return ["-F", "/dev/null", "-i", str(self.key_file), "-P", str(self.port),
                *(arg for option in options for arg in ("-o", option))]

    async def openssh(self, program: str, *argv: str) -> tuple[int, str]:
        """OpenSSH's `sftp` or `scp` through the relay: its exit status and stderr."""
        process = await asyncio.create_subprocess_exec(
            program, *self.openssh_options(), *argv, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode is not None
        return process.returncode, err.decode()

    @contextlib.asynccontextmanager
    async def asyncssh(self) -> AsyncIterator[asyncssh.SFTPClient]:
        async with asyncssh.connect(
                "127.0.0.1", self.port, username=LOGIN, config=None, agent_path=None,
                client_keys=[str(self.key_file)],
                known_hosts=str(self.known_hosts)) as conn, conn.start_sftp_client() as sftp:
            yield sftp

    def paramiko(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect("127.0.0.1", self.port, username=LOGIN, key_filename=str(self.key_file),
                       look_for_keys=False, allow_agent=False)
        return client


def secret_rule(host: Sshd) -> Callable[[dict[str, Any]], str | None]:
    """Refuse any operation whose path or target is under the host's `secret/`."""
    secret = f"{host.home}/secret"

    def rule(sftp: dict[str, Any]) -> str | None:
        for path in (sftp["path"], sftp["target_path"]):
            if path is not None and (path == secret or path.startswith(secret + "/")):
                return f"tollgate: refused: {path} is secret [trace 0123]"
        return None
    return rule


def make_dir(host: Sshd, name: str) -> Path:
    path = host.home / name
    path.mkdir()
    owner = host.home.stat()
    os.chown(path, owner.st_uid, owner.st_gid)
    return path


def payload(size: int = SIZE) -> bytes:
    return random.Random(size).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def root_of(host: Sshd) -> str:
    """The session's root the relay names: the host account's own home, where sshd starts."""
    return os.path.realpath(pwd.getpwnam(host.user).pw_dir)


@contextlib.asynccontextmanager
async def serve(host: Sshd, tmp: Path, gate: SftpGate, connect: Connect | None = None,
                masked_max: int | None = None) -> AsyncIterator[Relay]:
    """A relay to `host` with `gate`; `connect`: the way to the host (the gateway's key by
    default, the host key pinned); `masked_max`: the relay's bound on a masked file."""
    agent_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp / "agent_ed25519"
    agent_key.write_private_key(key_file)
    key_file.chmod(0o600)
    relay_key = asyncssh.generate_private_key("ssh-ed25519")
    upstreams: list[asyncssh.SSHClientConnection] = []

    async def to_host() -> asyncssh.SSHClientConnection:
        upstream = await asyncssh.connect(
            host.host, host.port, username=host.user, config=None, agent_path=None,
            client_keys=[str(host.client_key_file)],
            known_hosts=asyncssh.import_known_hosts(host.known_hosts))
        upstreams.append(upstream)
        return upstream

    server = await asyncssh.create_server(
        asyncssh.SSHServer, "127.0.0.1", 0, server_host_keys=[relay_key],
        authorized_client_keys=asyncssh.import_authorized_keys(
            agent_key.export_public_key().decode()),
        sftp_factory=lambda chan: SftpRelay(chan, gate, connect or to_host,
                                            *([masked_max] if masked_max else [])),
        allow_scp=True)
    port = server.get_port()
    known_hosts = tmp / "relay_known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} "
                           f"{relay_key.export_public_key().decode()}")
    try:
        yield Relay(port, gate, host, key_file, known_hosts)
    finally:
        server.close()
        await server.wait_closed()
        for upstream in upstreams:
            upstream.close()


@pytest.fixture
async def relay(sshd: Sshd, tmp_path: Path) -> AsyncIterator[Relay]:
    make_dir(sshd, "secret")
    async with serve(sshd, tmp_path, RuleGate(secret_rule(sshd))) as running:
        yield running


def assert_transferred(ticket: Ticket, data: bytes) -> None:
    assert ticket.refusal is None
    assert ticket.outcomes == [{"size": len(data), "sha256": sha256(data), "complete": True,
                                "error": None}]


# -- every client moves files through it, each transfer's size and digest recorded -----


async def test_asyncssh_uploads_and_downloads(relay: Relay, tmp_path: Path) -> None:
    data = payload()
    (tmp_path / "up.bin").write_bytes(data)
    relay.host.put("down.bin", data[::-1])
    home = relay.host.home
    async with relay.asyncssh() as sftp:
        await sftp.put(tmp_path / "up.bin", str(home / "up.bin"))
        await sftp.get(str(home / "down.bin"), tmp_path / "down.bin")
    assert (home / "up.bin").read_bytes() == data
    assert (home / "up.bin").stat().st_uid == pwd.getpwnam(relay.host.user).pw_uid  # by the host
    assert (tmp_path / "down.bin").read_bytes() == data[::-1]
    upload = relay.gate.only("open", "upload")
    assert upload.sftp == {"operation": "open", "path": str(home / "up.bin"),
                           "target_path": None, "direction": "upload",
                           "truncates": True, "root": root_of(relay.host)}
    assert_transferred(upload, data)
    assert_transferred(relay.gate.only("open", "download"), data[::-1])


async def test_paramiko_uploads_and_downloads(relay: Relay, tmp_path: Path) -> None:
    data = payload()
    (tmp_path / "up.bin").write_bytes(data)
    relay.host.put("down.bin", data[::-1])
    home = relay.host.home

    def transfer() -> None:
        with relay.paramiko() as client, client.open_sftp() as sftp:
            sftp.put(str(tmp_path / "up.bin"), str(home / "up.bin"))
            sftp.get(str(home / "down.bin"), str(tmp_path / "down.bin"))
    await asyncio.to_thread(transfer)
    assert (home / "up.bin").read_bytes() == data
    assert (tmp_path / "down.bin").read_bytes() == data[::-1]
    assert_transferred(relay.gate.only("open", "upload"), data)
    assert_transferred(relay.gate.only("open", "download"), data[::-1])


async def test_openssh_sftp_uploads_and_downloads(relay: Relay, tmp_path: Path) -> None:
    data = payload()
    (tmp_path / "up.bin").write_bytes(data)
    relay.host.put("down.bin", data[::-1])
    home = relay.host.home
    batch = tmp_path / "batch"
    batch.write_text(f"put {tmp_path / 'up.bin'} {home / 'up.bin'}\n"
                     f"get {home / 'down.bin'} {tmp_path / 'down.bin'}\n")
    status, err = await relay.openssh("sftp", "-b", str(batch), f"{LOGIN}@127.0.0.1")
    assert status == 0, err
    assert (home / "up.bin").read_bytes() == data
    assert (tmp_path / "down.bin").read_bytes() == data[::-1]
    assert_transferred(relay.gate.only("open", "upload"), data)
    assert_transferred(relay.gate.only("open", "download"), data[::-1])


@pytest.mark.parametrize("legacy", [False, True], ids=["sftp-mode", "legacy-scp"])
async def test_openssh_scp_uploads_and_downloads(relay: Relay, tmp_path: Path,
                                                 legacy: bool) -> None:
    data = payload()
    (tmp_path / "up.bin").write_bytes(data)
    relay.host.put("down.bin", data[::-1])
    home = relay.host.home
    mode = ["-O"] if legacy else []
    status, err = await relay.openssh("scp", *mode, str(tmp_path / "up.bin"),
                                      f"{LOGIN}@127.0.0.1:{home / 'up.bin'}")
    assert status == 0, err
    status, err = await relay.openssh("scp", *mode, f"{LOGIN}@127.0.0.1:{home / 'down.bin'}",
                                      str(tmp_path / "down.bin"))
    assert status == 0, err
    assert (home / "up.bin").read_bytes() == data
    assert (tmp_path / "down.bin").read_bytes() == data[::-1]
    assert_transferred(relay.gate.only("open", "upload"), data)
    assert_transferred(relay.gate.only("open", "download"), data[::-1])


async def test_a_partial_download_is_recorded_as_incomplete(relay: Relay) -> None:
    data = payload()
    relay.host.put("big.bin", data)
    async with relay.asyncssh() as sftp, sftp.open(str(relay.host.home / "big.bin"),
                                                   "rb") as file:
        head = await file.read(100_000)
    assert head == data[:100_000]
    assert relay.gate.only("open").outcomes == [
        {"size": 100_000, "sha256": sha256(head), "complete": False, "error": None}]


async def test_reads_in_any_order_get_the_file_as_it_is(relay: Relay) -> None:
    data = payload()
    path = str(relay.host.put("big.bin", data))
    spans = [(0, 32768), (32768, 100_000), (5000, 10), (3_000_000, 200_000), (132_768, 4096),
             (SIZE - 10, 100)]
    async with relay.asyncssh() as sftp:
        async with sftp.open(path, "rb") as file:
            got = [await file.read(size, offset) for offset, size in spans]
        async with sftp.open(path, "r+b") as file:  # written through: read as written
            await file.write(b"new", 5000)
            assert await file.read(10, 4998) == data[4998:5000] + b"new" + data[5003:5008]
    assert got == [data[offset:offset + size] for offset, size in spans]


# -- refusals ---------------------------------------------------------------------------


async def test_a_refused_download_is_permission_denied_with_the_reason(relay: Relay) -> None:
    relay.host.put("secret/key.pem", b"-----BEGIN PRIVATE KEY-----\n")
    path = str(relay.host.home / "secret/key.pem")
    async with relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied) as refused:
            await sftp.open(path, "rb")
    assert refused.value.reason == f"tollgate: refused: {path} is secret [trace 0123]"
    ticket = relay.gate.only("open")
    assert ticket.sftp["direction"] == "download"
    assert ticket.outcomes == []  # recorded by the gate as refused; nothing ran


async def test_a_refused_upload_leaves_the_host_unchanged(relay: Relay, tmp_path: Path) -> None:
    (tmp_path / "evil").write_bytes(b"x")
    async with relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.put(tmp_path / "evil", str(relay.host.home / "secret/evil"))
    assert not (relay.host.home / "secret/evil").exists()


async def test_openssh_sftp_shows_the_reason(relay: Relay, tmp_path: Path) -> None:
    relay.host.put("secret/key.pem", b"-----BEGIN PRIVATE KEY-----\n")
    path = relay.host.home / "secret/key.pem"
    batch = tmp_path / "batch"
    batch.write_text(f"get {path} {tmp_path / 'key.pem'}\n")
    status, err = await relay.openssh("sftp", "-b", str(batch), f"{LOGIN}@127.0.0.1")
    assert status == 1
    assert f"tollgate: refused: {path} is secret [trace 0123]" in err
    assert not (tmp_path / "key.pem").exists()


async def test_legacy_scp_shows_the_reason(relay: Relay, tmp_path: Path) -> None:
    relay.host.put("secret/key.pem", b"-----BEGIN PRIVATE KEY-----\n")
    path = relay.host.home / "secret/key.pem"
    status, err = await relay.openssh("scp", "-O", f"{LOGIN}@127.0.0.1:{path}",
                                      str(tmp_path / "key.pem"))
    assert status == 1
    assert f"tollgate: refused: {path} is secret [trace 0123]" in err
    assert not (tmp_path / "key.pem").exists()


async def test_a_path_that_is_not_utf8_is_refused(relay: Relay) -> None:
    async with relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied) as refused:
            await sftp.mkdir(str(relay.host.home).encode() + b"/caf\xe9")
    assert refused.value.reason == ("tollgate: refused: a path that is not UTF-8 cannot be "
                                    "decided")
    assert relay.gate.tickets == []
    assert os.listdir(relay.host.home) == ["secret"]


async def test_a_rename_into_a_refused_path_is_refused(relay: Relay) -> None:
    relay.host.put("notes.txt", b"notes")
    home = relay.host.home
    async with relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.rename(str(home / "secret/../notes.txt"), str(home / "./secret/notes.txt"))
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.posix_rename(str(home / "notes.txt"), str(home / "secret/notes.txt"))
    assert (home / "notes.txt").read_bytes() == b"notes"
    assert not (home / "secret/notes.txt").exists()
    assert [t.sftp for t in relay.gate.asked("rename")] == 2 * [
        {"operation": "rename", "path": str(home / "notes.txt"),
         "target_path": str(home / "secret/notes.txt"), "direction": "none",
         "truncates": False, "root": root_of(relay.host)}]


async def test_a_symlink_to_a_refused_path_is_decided_where_it_leads(relay: Relay) -> None:
    home = relay.host.home
    relay.host.put("secret/key.pem", b"key")
    make_dir(relay.host, "public")
    (home / "public/key.pem").symlink_to(home / "secret/key.pem")
    (home / "public/drop").symlink_to(home / "secret/new")  # dangling: where a create goes
    async with relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.open(str(home / "public/key.pem"), "rb")
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.open(str(home / "public/../public/drop"), "wb")
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.listdir(str(home / "public/../secret"))
        # Removing a link removes the link: decided on the link, and allowed.
        await sftp.remove(str(home / "public/key.pem"))
    assert [t.sftp["path"] for t in relay.gate.asked("open")] == [
        str(home / "secret/key.pem"), str(home / "secret/new")]
    assert relay.gate.only("list").sftp["path"] == str(home / "secret")
    assert relay.gate.only("remove").sftp["path"] == str(home / "public/key.pem")
    assert not (home / "secret/new").exists()
    assert (home / "secret/key.pem").read_bytes() == b"key"


async def test_a_new_symlink_or_hard_link_is_decided_on_both_ends(relay: Relay) -> None:
    home = relay.host.home
    relay.host.put("secret/key.pem", b"key")
    relay.host.put("notes.txt", b"notes")
    async with relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.symlink("secret/key.pem", str(home / "key"))  # relative to the link
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.link(str(home / "secret/key.pem"), str(home / "key"))
        await sftp.symlink("gone/away", str(home / "dangling"))  # leads nowhere yet: allowed
    assert [(t.sftp["path"], t.sftp["target_path"]) for t in relay.gate.tickets] == [
        (str(home / "key"), str(home / "secret/key.pem")),
        (str(home / "key"), str(home / "secret/key.pem")),
        (str(home / "dangling"), str(home / "gone/away"))]
    assert not (home / "key").exists()
    assert os.readlink(home / "dangling") == "gone/away"


async def test_changing_a_file_through_a_handle_opened_to_read_is_decided(
        sshd: Sshd, tmp_path: Path) -> None:
    path = sshd.put("tool.sh", b"#!/bin/sh\n")
    path.chmod(0o644)
    gate = RuleGate(lambda s: "tollgate: refused: no chmod" if s["operation"] == "setstat"
                    else None)
    async with serve(sshd, tmp_path, gate) as relay, relay.asyncssh() as sftp:
        async with sftp.open(str(path), "rb") as file:
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await file.chmod(0o4755)
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.chmod(str(path), 0o4755)
    assert path.stat().st_mode & 0o7777 == 0o644
    assert [t.sftp["path"] for t in gate.asked("setstat")] == [str(path), str(path)]


async def test_allowed_operations_are_finished_with_their_result(relay: Relay) -> None:
    home = relay.host.home
    async with relay.asyncssh() as sftp:
        await sftp.mkdir(str(home / "made"))
        with pytest.raises(asyncssh.SFTPFailure):
            await sftp.mkdir(str(home / "made"))  # already there: the host says so
        await sftp.rmdir(str(home / "made"))
        names = await sftp.listdir(str(home))
    assert set(names) >= {".", "..", "secret"}
    outcomes = [(t.sftp["operation"], t.outcomes) for t in relay.gate.tickets]
    assert outcomes == [("mkdir", [{"error": None}]), ("mkdir", [{"error": "Failure"}]),
                        ("rmdir", [{"error": None}]), ("list", [{"error": None}])]


async def test_a_gate_that_fails_refuses(sshd: Sshd, tmp_path: Path) -> None:
    async with serve(sshd, tmp_path, FailingGate()) as relay, relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPFailure) as failed:
            await sftp.mkdir(str(sshd.home / "made"))
        assert "could not be decided; nothing was done" in failed.value.reason
    assert not (sshd.home / "made").exists()


async def test_a_host_out_of_reach_fails_each_operation_not_the_connection(
        sshd: Sshd, tmp_path: Path) -> None:
    async def unreachable() -> asyncssh.SSHClientConnection:
        raise UpstreamError("no answer from 10.0.0.5:22 within 10 s")
    gate = RuleGate(lambda _: None)
    async with serve(sshd, tmp_path, gate, unreachable) as relay:
        async with relay.asyncssh() as sftp:
            with pytest.raises(asyncssh.SFTPFailure) as failed:
                await sftp.stat(".")
            assert failed.value.reason == ("tollgate: the host's SFTP server could not be "
                                           "reached: no answer from 10.0.0.5:22 within 10 s")
        status, err = await relay.openssh("sftp", "-b", "/dev/null", f"{LOGIN}@127.0.0.1")
    assert status != 0
    assert "could not be reached: no answer from 10.0.0.5:22" in err
    assert gate.tickets == []


# -- the transfer's digest ---------------------------------------------------------------


def test_pieces_out_of_order_are_hashed_in_order() -> None:
    data = payload(1000)
    transfer = Transfer()
    for offset in (300, 100, 0, 200, 600, 400, 500, 700, 800, 900):
        transfer.add(offset, data[offset:offset + 100])
    assert transfer.outcome(1000, None) == {"size": 1000, "sha256": sha256(data),
                                            "complete": True, "error": None}


def test_a_gap_or_a_file_longer_than_what_went_through_is_incomplete() -> None:
    data = payload(300)
    gap = Transfer()
    gap.add(0, data[:100])
    gap.add(200, data[200:])
    assert gap.outcome(300, None)["complete"] is False
    short = Transfer()
    short.add(0, data[:200])
    assert short.outcome(300, None) == {"size": 200, "sha256": sha256(data[:200]),
                                        "complete": False, "error": None}


def test_an_overlap_or_too_much_waiting_gives_the_digest_up() -> None:
    data = payload(300)
    again = Transfer()
    again.add(0, data[:200])
    again.add(100, data[100:300])
    assert again.outcome(300, None)["complete"] is False
    assert again.size == 400
    waiting = Transfer()
    waiting.add(1, b"x" * REORDER_LIMIT)
    waiting.add(REORDER_LIMIT + 1, b"x")
    waiting.add(0, b"y")
    assert waiting.outcome(REORDER_LIMIT + 2, None)["complete"] is False


def test_a_masked_copy_read_twice_or_overlapping_is_still_whole() -> None:
    """Every read of a masked download comes from its one copy: pieces read again or
    overlapping (paramiko's prefetch asks again for what has not arrived) change nothing
    of the file the agent got; every byte moved is counted."""
    copy = payload(1000)
    transfer = CopyTransfer(copy)
    for offset, size in ((0, 300), (200, 300), (0, 100), (700, 300), (500, 250), (900, 100)):
        transfer.add(offset, copy[offset:offset + size])
    assert transfer.outcome(1000, None) == {"size": 1350, "sha256": sha256(copy),
                                            "complete": True, "error": None, "masked": True}


def test_a_masked_copy_with_a_gap_is_incomplete_its_digest_the_part_from_0() -> None:
    copy = payload(1000)
    transfer = CopyTransfer(copy)
    transfer.add(0, copy[:400])
    transfer.add(500, copy[500:])
    transfer.add(300, copy[300:450])
    assert transfer.outcome(1000, None) == {"size": 1050, "sha256": sha256(copy[:450]),
                                            "complete": False, "error": None, "masked": True}
    transfer.add(450, copy[450:500])  # the gap filled: whole
    assert transfer.outcome(1000, None)["complete"] is True



# -- downloads under a mask: served from a masked copy of the whole file ---------------

README = (b"# Deploying\n\nSet AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE before running.\n"
          + b"ordinary line of the readme\n" * 4000  # many of each client's requests
          + b"card on file: 4111 1111 1111 1111\nthe end\n")


def masked_readme() -> bytes:
    return mask_file(MASKER, MaskSpec(), README)[0]


@pytest.fixture
async def masking(sshd: Sshd, tmp_path: Path) -> AsyncIterator[Relay]:
    """A relay whose gate masks every download, the host holding README.md."""
    sshd.put("README.md", README)
    async with serve(sshd, tmp_path, RuleGate(lambda _: None, masked=True)) as running:
        yield running


def assert_sent_masked(ticket: Ticket, sent: bytes, again: bool = False) -> None:
    """The record's transfer is what the agent got: the masked copy, whole (`again`: some
    of it may have been read twice, and counted as moved)."""
    assert ticket.refusal is None
    ((size, outcome),) = [(o["size"], {k: v for k, v in o.items() if k != "size"})
                          for o in ticket.outcomes]
    assert size >= len(sent) if again else size == len(sent)
    assert outcome == {"sha256": sha256(sent), "complete": True, "error": None,
                       "masked": True}


def test_a_file_is_masked_in_place_keeping_its_size() -> None:
    """Each secret's bytes become `*` (line breaks kept), the rest byte for byte."""
    masked = masked_readme()
    assert masked.startswith(b"# Deploying\n\nSet AWS_ACCESS_KEY_ID=" + b"*" * 20 + b" before")
    assert masked.endswith(b"card on file: " + b"*" * 19 + b"\nthe end\n")
    assert len(masked) == len(README)
    pem = ("-----BEGIN RSA PRIVATE KEY-----\n" + "MIIEowIBAAKCAQEA1x" * 4
           + "\n-----END RSA PRIVATE KEY-----\n").encode()
    starred, counts = mask_file(MASKER, MaskSpec(), b"key:\n" + pem)
    assert starred == b"key:\n" + bytes(c if c in b"\n" else ord("*") for c in pem)
    assert counts == {"private_key": 1}
    # A value of characters of several bytes: as many stars as it had bytes.
    assert mask_file(MASKER, MaskSpec(), "password=hé€llo x\n".encode()) == (
        b"password=" + b"*" * len("hé€llo".encode()) + b" x\n", {"field": 1})


async def test_asyncssh_gets_a_masked_readme_with_its_masked_size(
        masking: Relay, tmp_path: Path) -> None:
    path = str(masking.host.home / "README.md")
    async with masking.asyncssh() as sftp:
        await sftp.get(path, tmp_path / "README.md")
        async with sftp.open(path, "rb") as file:
            size = (await file.stat()).size
    assert (tmp_path / "README.md").read_bytes() == masked_readme()
    assert size == len(masked_readme())  # FSTAT of the handle: the copy's size
    assert_sent_masked(masking.gate.tickets[0], masked_readme())


async def test_paramiko_prefetch_gets_the_masked_readme(masking: Relay, tmp_path: Path) -> None:
    """paramiko's get prefetches as far as the path's STAT says, and may ask again for a
    part that has not arrived yet: the masked file whole, in the record too."""
    path = str(masking.host.home / "README.md")

    def get() -> None:
        with masking.paramiko() as client, client.open_sftp() as sftp:
            sftp.get(path, str(tmp_path / "README.md"))
    await asyncio.to_thread(get)
    assert (tmp_path / "README.md").read_bytes() == masked_readme()
    assert_sent_masked(masking.gate.only("open"), masked_readme(), again=True)


@pytest.mark.parametrize("program", ["sftp", "scp"])
async def test_openssh_gets_the_masked_readme(masking: Relay, tmp_path: Path,
                                              program: str) -> None:
    path = masking.host.home / "README.md"
    if program == "sftp":
        batch = tmp_path / "batch"
        batch.write_text(f"get {path} {tmp_path / 'README.md'}\n")
        status, err = await masking.openssh("sftp", "-b", str(batch), f"{LOGIN}@127.0.0.1")
    else:
        status, err = await masking.openssh("scp", f"{LOGIN}@127.0.0.1:{path}",
                                            str(tmp_path / "README.md"))
    assert status == 0, err
    assert (tmp_path / "README.md").read_bytes() == masked_readme()
    assert_sent_masked(masking.gate.only("open"), masked_readme())


async def test_reads_at_any_offset_come_from_one_masked_copy(masking: Relay) -> None:
    masked = masked_readme()
    spans = [(len(masked) - 50, 100), (0, 40), (30, 60), (70_000, 5000), (10, 1)]
    async with masking.asyncssh() as sftp, sftp.open(
            str(masking.host.home / "README.md"), "rb") as file:
        got = [await file.read(size, offset) for offset, size in spans]
    assert got == [masked[offset:offset + size] for offset, size in spans]
    assert b"AKIA" not in b"".join(got)


async def test_legacy_scp_gets_the_masked_readme(masking: Relay, tmp_path: Path) -> None:
    """`scp -O` announces the size a STAT gave before the bytes: the masked copy has it."""
    path = masking.host.home / "README.md"
    status, err = await masking.openssh("scp", "-O", f"{LOGIN}@127.0.0.1:{path}",
                                        str(tmp_path / "README.md"))
    assert status == 0, err
    assert (tmp_path / "README.md").read_bytes() == masked_readme()
    assert_sent_masked(masking.gate.only("open"), masked_readme())


@pytest.mark.parametrize(("content", "why"), [
    (b"\x7fELF\x02\x01\x01\x00AKIAIOSFODNN7EXAMPLE", "binary (it holds NUL bytes)"),
    (b"caf\xe9 AKIAIOSFODNN7EXAMPLE\n", "not UTF-8 text"),
], ids=["nul", "latin-1"])
async def test_a_file_the_masker_cannot_read_is_refused(masking: Relay, content: bytes,
                                                        why: str) -> None:
    path = str(masking.host.put("data.bin", content))
    async with masking.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied) as refused:
            await sftp.open(path, "rb")
    assert why in refused.value.reason and "[trace 0123]" in refused.value.reason
    assert masking.gate.only("open").refused_after == [
        f"the policy masks what this host sends, and this file cannot be served masked: {why}"]


async def test_a_file_larger_than_the_bound_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    path = str(sshd.put("README.md", README))
    gate = RuleGate(lambda _: None, masked=True)
    async with serve(sshd, tmp_path, gate, masked_max=len(README) - 1) as relay, \
            relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied) as refused:
            await sftp.open(path, "rb")
        assert f"{len(README)} bytes, more than the {len(README) - 1}" in refused.value.reason
    async with serve(sshd, tmp_path, gate, masked_max=len(README)) as relay, \
            relay.asyncssh() as sftp, sftp.open(path, "rb") as file:  # at the bound: served
        assert await file.read(12) == b"# Deploying\n"


async def test_an_open_that_writes_too_is_refused_before_the_host_opens_it(
        masking: Relay) -> None:
    path = masking.host.home / "README.md"
    async with masking.asyncssh() as sftp:
        for mode in ("w+b", "r+b", "a+b"):
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="open it to read only"):
                await sftp.open(str(path), mode)
        await sftp.put(__file__, str(masking.host.home / "up.py"))  # uploads pass
    assert path.read_bytes() == README  # "w+" would have truncated it
    assert [t.sftp["direction"] for t in masking.gate.asked("open")] == ["both"] * 3 + [
        "upload"]
