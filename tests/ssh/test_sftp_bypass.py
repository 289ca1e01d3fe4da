"""Ways around the SFTP rules, tried through the relay (extproc/ssh/sftp.py) with the
default pack deciding (the embedded engine, policies/), between real clients and a real
OpenSSH host: each must be refused, or served masked, and leave the host as it was.

The relay's unit tests (test_sftp.py) drive it with gates of their own; here every
decision is the pack's, on the input the front builds (input.ssh.sftp)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from paramiko.sftp import CMD_CLOSE, CMD_READ, int64

from extproc.masking.policy_mask import spec_of
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules
from extproc.terminal.files import mask_file
from tests.policy_corpus import policy_input
from tests.ssh.test_sftp import MASKER, Relay, Ticket, make_dir, root_of, serve, sha256
from tests.support.sshd import Sshd

pytestmark = pytest.mark.e2e  # a real sshd, and OpenSSH's clients run as processes

# One engine for the module: regorus's is bound to the thread that made it, and a test's
# would be dropped on whichever thread collects it.
ENGINE = EmbeddedEngine(read_modules(Path(__file__).resolve().parents[2] / "policies"),
                        "data.tollgate.decision")
AGENT = {"authenticated": True, "sub": "svc-agent", "groups": ["agents"]}
SECRET = b"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"


class PackGate:
    """The default pack's decision on each operation, as the front asks it, on a staging
    host (a production one also holds every removal and truncation: ssh.data_destroyed,
    tests/e2e/test_ssh_e2e.py); a download the decision masks gets its mask, through the
    real masker (as gate.Transfers)."""

    def __init__(self) -> None:
        self.tickets: list[Ticket] = []

    async def decide(self, sftp: dict[str, Any]) -> Ticket:
        decision = ENGINE.decide_now(policy_input({
            "identity": AGENT,
            "target": {"protocol": "ssh", "name": "web-1", "environment": "staging"},
            "request": {"method": "SFTP", "path": "/web-1", "query": {},
                        "headers": {"x-session-id": "bypass"},
                        "body": {"request": "sftp", "sftp": sftp}}}))
        refusal = None if decision.action == "allow" else (
            f"tollgate: refused: {'; '.join(decision.reasons)} "
            f"(rules: {', '.join(decision.rules)}) [trace bypass]")
        ticket = Ticket(sftp, refusal)
        spec = spec_of([decision.mask])
        if spec is not None and sftp["operation"] == "open" and sftp["direction"] != "upload":
            ticket.mask = lambda data: mask_file(MASKER, spec, data)[0]
        self.tickets.append(ticket)
        return ticket

    def rules(self) -> list[str]:
        """The rules of every refusal, in order."""
        return [t.refusal.split("(rules: ")[1].split(")")[0] for t in self.tickets
                if t.refusal is not None and "(rules: " in t.refusal]


@pytest.fixture
async def relay(sshd: Sshd, tmp_path: Path) -> AsyncIterator[Relay]:
    sshd.put("notes.txt", b"notes\n")
    async with serve(sshd, tmp_path, PackGate()) as running:
        yield running


def dirs(*paths: str) -> bool:
    """Whether every one of `paths` is (still) a directory."""
    return all(os.path.isdir(path) for path in paths)


def up_to_root(home: Path) -> str:
    """A relative path from the session's root (the host's starting directory) to `/`."""
    return "/".join([".."] * len(Path(os.path.realpath(home)).parts))


# -- renames and removals, judged where they land ---------------------------------------


async def test_a_rename_into_a_system_path_is_refused_however_spelled(relay: Relay) -> None:
    home, climb = relay.host.home, up_to_root(relay.host.home)
    make_dir(relay.host, "sub")
    async with relay.asyncssh() as sftp:
        for new in ("/etc/cron.d/tollgate", f"{home}/sub/{climb}/etc/cron.d/tollgate",
                    f"{climb}/usr/bin/ls", "//etc//./profile.d/x.sh"):
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="a system path"):
                await sftp.rename(str(home / "notes.txt"), new)
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="a system path"):
                await sftp.posix_rename(str(home / "notes.txt"), new)
    assert (home / "notes.txt").read_bytes() == b"notes\n"
    assert set(relay.gate.rules()) == {"ssh.sftp_system_write"}
    assert {t.sftp["target_path"] for t in relay.gate.tickets} == {
        "/etc/cron.d/tollgate", "/usr/bin/ls", "/etc/profile.d/x.sh"}


async def test_a_removal_through_a_symlink_is_judged_where_it_leads(relay: Relay) -> None:
    home = relay.host.home
    (home / "conf").symlink_to("/etc")
    async with relay.asyncssh() as sftp:
        for operation in (sftp.remove, sftp.rmdir):
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="a system path"):
                await operation(str(home / "conf/ssh"))
        await sftp.remove(str(home / "conf"))  # the link itself: a name of the home's
    assert [t.sftp["path"] for t in relay.gate.tickets] == [
        "/etc/ssh", "/etc/ssh", str(home / "conf")]
    assert dirs("/etc/ssh") and not (home / "conf").exists()


async def test_taking_away_what_the_session_stands_on_is_destructive(relay: Relay) -> None:
    """The session's root (sshd's starting directory) and every folder above it, however
    reached: `..` from where the session starts, or from another folder."""
    root = root_of(relay.host)
    home = relay.host.home
    async with relay.asyncssh() as sftp:
        for path in (".", "..", f"{home}/{up_to_root(home)}{root}", "/tmp"):
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="tollgate: refused"):
                await sftp.rename(path, f"{home}/moved")
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="tollgate: refused"):
                await sftp.rmdir(path)
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="a top-level directory"):
            await sftp.rename(str(home / "notes.txt"), f"{home}/{up_to_root(home)}/tmp")
    assert dirs(root, "/tmp") and not (home / "moved").exists()
    assert {t.sftp["root"] for t in relay.gate.tickets} == {root}
    assert all(t.refusal is not None for t in relay.gate.tickets)


async def test_ordinary_renames_and_removals_pass(relay: Relay) -> None:
    home = relay.host.home
    async with relay.asyncssh() as sftp:
        await sftp.rename(str(home / "notes.txt"), str(home / "notes.old"))
        await sftp.posix_rename(str(home / "notes.old"), str(home / "notes.md"))
        await sftp.mkdir(str(home / "build"))
        await sftp.rmdir(str(home / "build/../build"))
        await sftp.remove(str(home / "notes.md"))
    assert os.listdir(home) == []
    assert all(t.refusal is None for t in relay.gate.tickets)


# -- links to credentials ----------------------------------------------------------------


async def test_a_link_to_a_credential_is_refused_and_leaves_nothing_to_read(
        relay: Relay) -> None:
    home = relay.host.home
    make_dir(relay.host, ".aws")
    relay.host.put(".aws/credentials", SECRET)
    async with relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="a credential"):
            await sftp.link(str(home / ".aws/credentials"), str(home / "innocent.txt"))
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="a credential"):
            await sftp.symlink(".aws/credentials", str(home / "innocent.txt"))
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.open(str(home / "innocent.txt"), "rb")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="a credential"):
            await sftp.open(str(home / ".aws/../.aws/credentials"), "rb")
    assert not (home / "innocent.txt").exists()


async def test_a_hard_link_made_outside_the_gateway_is_read_masked(relay: Relay) -> None:
    """A hard link made on the host otherwise has no credential's name to judge: what
    the masker finds in it is masked."""
    home = relay.host.home
    make_dir(relay.host, ".aws")
    os.link(relay.host.put(".aws/credentials", SECRET), home / "innocent.txt")
    async with relay.asyncssh() as sftp, sftp.open(str(home / "innocent.txt"), "rb") as file:
        got = await file.read()
    assert got == b"AWS_SECRET_ACCESS_KEY=" + b"*" * 40 + b"\n"


# -- handles and offsets -----------------------------------------------------------------


async def test_a_read_at_a_huge_offset_is_the_end_of_the_file(relay: Relay) -> None:
    data = b"read me\n" + SECRET
    path = str(relay.host.put("README.md", data))
    async with relay.asyncssh() as sftp, sftp.open(path, "rb") as file:
        for offset in (2**63 - 1, 2**64 - 1, len(data)):
            assert await file.read(4096, offset) == b""
        assert await file.read(4096, 0) == b"read me\nAWS_SECRET_ACCESS_KEY=" + b"*" * 40 + b"\n"
    (ticket,) = relay.gate.tickets
    assert ticket.outcomes[0]["masked"] is True


async def test_a_forged_or_closed_handle_reads_nothing(relay: Relay) -> None:
    """READ and CLOSE on a handle no OPEN gave (or one closed since) are refused by the
    relay's SFTP server before anything reaches the host or the gate."""
    path = str(relay.host.put("README.md", SECRET))

    def forge() -> None:
        with relay.paramiko() as client, client.open_sftp() as sftp:
            for forged in (b"0", b"1", b"\x00" * 4, b"A" * 1024):
                with pytest.raises(OSError, match="Invalid file handle"):
                    sftp._request(CMD_READ, forged, int64(0), 4096)
            with sftp.open(path, "rb") as file:
                handle = file.handle
                assert file.read() == b"AWS_SECRET_ACCESS_KEY=" + b"*" * 40 + b"\n"
            with pytest.raises(OSError, match="Invalid file handle"):
                sftp._request(CMD_READ, handle, int64(0), 4096)
            with pytest.raises(OSError, match="Invalid file handle"):
                sftp._request(CMD_CLOSE, handle)
    await asyncio.to_thread(forge)
    assert [t.sftp["operation"] for t in relay.gate.tickets] == ["open"]


async def test_a_file_changed_after_its_open_is_read_as_it_was_masked(relay: Relay) -> None:
    """Reads come from the copy masked at the open: a secret written into the file (or a
    longer file) afterwards never reaches the agent, and the record's digest is of what
    was sent."""
    before = b"version=1\n" * 1000
    path = relay.host.put("app.conf", before)
    async with relay.asyncssh() as sftp, sftp.open(str(path), "rb") as file:
        head = await file.read(10, 0)
        path.write_bytes(SECRET * 500)  # the same name, other bytes, longer
        rest = await file.read(len(before), 10)
        after = await file.read(100, len(before))
        size = (await file.stat()).size
    assert head + rest == before and after == b"" and size == len(before)
    (ticket,) = relay.gate.tickets
    assert ticket.outcomes == [{"size": len(before), "sha256": sha256(before),
                                "complete": True, "error": None, "masked": True}]


async def test_paramiko_prefetch_of_a_file_rewritten_midway_stays_whole(
        relay: Relay, tmp_path: Path) -> None:
    data = b"line of the report\n" * 20000 + SECRET
    path = relay.host.put("report.txt", data)

    def get() -> None:
        with relay.paramiko() as client, client.open_sftp() as sftp, \
                sftp.open(str(path), "rb") as file:
            file.prefetch(len(data))
            path.write_bytes(b"x" * 10)  # truncated on the host while it is read
            (tmp_path / "report.txt").write_bytes(file.read())
    await asyncio.to_thread(get)
    assert (tmp_path / "report.txt").read_bytes() == (
        b"line of the report\n" * 20000 + b"AWS_SECRET_ACCESS_KEY=" + b"*" * 40 + b"\n")


# -- content destroyed without a removal: empty uploads and truncations ------------------


async def test_truncating_a_protected_file_is_refused_however_asked(relay: Relay) -> None:
    """An empty upload over an existing file, an open with TRUNC that writes nothing, and
    a setstat or fsetstat of its size (0 or N) are writes of that file: refused where an
    upload is. The victim is a credential of the session's own home, so the host could
    change it: only tollgate stands in the way."""
    home = relay.host.home
    make_dir(relay.host, ".aws")
    victim = relay.host.put(".aws/credentials", SECRET)
    async with relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="a credential"):
            async with sftp.open(str(victim), "wb"):
                pass  # O_CREAT|O_TRUNC, nothing written
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="a credential"):
            await sftp.open(str(victim), asyncssh.FXF_WRITE | asyncssh.FXF_TRUNC)
        for size in (0, 5):
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="a credential"):
                await sftp.setstat(str(victim), asyncssh.SFTPAttrs(size=size))
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="a credential"):
                await sftp.truncate(str(home / ".aws/../.aws/credentials"), size)
    assert victim.read_bytes() == SECRET
    assert set(relay.gate.rules()) == {"ssh.sftp_system_write"}


async def test_an_fsetstat_truncation_is_decided_on_the_handles_file(relay: Relay) -> None:
    """A credential cannot be opened to get a handle to truncate (read: served masked,
    and OpenSSH's ftruncate needs a handle open to write, which is refused); an ordinary
    file's handle truncates it, decided as a setstat of the file's host path."""
    make_dir(relay.host, ".aws")
    victim = relay.host.put(".aws/config", b"[default]\nregion=eu-west-1\n")
    async with relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="a credential"):
            await sftp.open(str(victim), "rb")
    notes = relay.host.home / "notes.txt"
    async with relay.asyncssh() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="a credential"):
            await sftp.open(str(victim), "r+b")
        async with sftp.open(str(notes), "ab") as file:  # to write, never to read
            await file.truncate(2)
    assert notes.read_bytes() == b"no"
    assert [(t.sftp["operation"], t.sftp["path"]) for t in relay.gate.tickets][-1] == (
        "setstat", str(notes))
    assert victim.read_bytes() == b"[default]\nregion=eu-west-1\n"
