"""`tollgate ssh login`, run as the command, against a real admin API: the certificate
and the gateway's host key land beside the key, OpenSSH's ssh-keygen reads the
certificate, and the ssh command it prints logs in to a server that trusts the CA as the
front does, the host key pinned. What is refused exits 1 or 2 with one line and writes
nothing."""

from __future__ import annotations

import asyncio
import os
import shlex
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519

from extproc.config import Identity
from extproc.ssh.certificates import UserCA
from extproc.ssh.certificates_api import PATH, CertificatesApi
from tests.support import tokens
from tests.support.ssh_certificates import (
    admin_api,
    agent_verifier,
    certificate_front,
    public_line,
    write_key,
)

pytestmark = pytest.mark.e2e  # `tollgate ssh login`, ssh-keygen and ssh run as processes


async def run(*argv: str, **env: str) -> tuple[int, str, str]:
    """A command beside the test's event loop (which serves what it talks to), without
    $TOLLGATE_TOKEN or an ssh agent unless `env` sets them: (exit status, stdout, stderr)."""
    unset = ("TOLLGATE_TOKEN", "SSH_AUTH_SOCK")
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**{k: v for k, v in os.environ.items() if k not in unset}, **env})
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def tollgate(home: Path, *argv: str, **env: str) -> tuple[int, str, str]:
    """`tollgate ssh login ARGV` with `home` as its home."""
    return await run(sys.executable, "-m", "extproc", "ssh", "login", *argv,
                     HOME=str(home), **env)


@pytest.fixture
def ca() -> UserCA:
    return UserCA(ed25519.Ed25519PrivateKey.generate(), Identity())


@asynccontextmanager
async def gateway(ca: UserCA, tmp_path: Path, logins: tuple[str, ...] = ("web-1",)
                  ) -> AsyncIterator[tuple[str, int]]:
    """The certificate route, naming the host key and port of an SSH server that trusts
    `ca` as the front does, and the logins of its targets: (admin API URL, SSH port)."""
    async with certificate_front(ca, tmp_path) as front:
        api = CertificatesApi(agent_verifier(tmp_path), Identity(), ca, front.host_key_line,
                              60, front.port, logins)
        async with admin_api(api.routes()) as url:
            yield url, front.port


async def test_the_printed_command_logs_in_with_the_certificate(
        ca: UserCA, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "id_ed25519"
    async with gateway(ca, tmp_path) as (url, port):
        status, out, err = await tollgate(tmp_path, "--url", url, "--key", str(key),
                                          "--token", tokens.token("svc-autogen", ttl=600))
        assert status == 0, err
        assert f"made a new key: {key}" in err
        certificate = key.with_name("id_ed25519-cert.pub")
        known_hosts = key.with_name("id_ed25519-known_hosts")
        assert out.startswith("certificate for svc-autogen until ")
        assert out.splitlines()[0].endswith(f" UTC: {certificate}")
        assert ca.claims_of(certificate.read_text())["sub"] == "svc-autogen"
        assert known_hosts.read_text().split()[0] == f"[127.0.0.1]:{port}"
        status, shown, _ = await run("ssh-keygen", "-L", "-f", str(certificate))
        assert status == 0 and 'Key ID: "svc-autogen"' in shown
        assert out.splitlines()[1] == "log in to web-1, this gateway's SSH target, with:"
        command = shlex.split(out.splitlines()[-1])
        assert command == ["ssh", "-i", str(key), "-o", f"UserKnownHostsFile={known_hosts}",
                           "-o", "IdentitiesOnly=yes", "-p", str(port), "web-1@127.0.0.1"]
        status, ran, complaint = await run(
            *command, "-F", "/dev/null", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "id")
        assert (status, ran) == (0, "login=web-1 sub=svc-autogen pty=None\n"), complaint


@pytest.mark.parametrize(("logins", "hint", "target"), [
    (("web-1", "db-jump"), "log in to a target, TARGET one of its logins (web-1, db-jump), "
                           "with:", "TARGET"),
    ((), "log in to a target (TARGET: its login; this gateway names none) with:", "TARGET"),
])
async def test_the_hint_names_the_targets_the_gateway_has(
        ca: UserCA, tmp_path: Path, logins: tuple[str, ...], hint: str, target: str) -> None:
    """The printed hint names the logins of the running gateway's SSH targets (never an
    example host it does not have); with several or none, the command says TARGET."""
    async with gateway(ca, tmp_path, logins) as (url, _):
        status, out, err = await tollgate(tmp_path, "--url", url, "--token",
                                          tokens.token("svc-autogen", ttl=600))
    assert status == 0, err
    assert out.splitlines()[1] == hint
    assert out.splitlines()[2].endswith(f" {target}@127.0.0.1")


async def test_the_default_key_is_made_once_readable_by_its_owner_alone(
        ca: UserCA, tmp_path: Path) -> None:
    """~/.tollgate/ssh-login/id_ed25519 is made on the first login (0600, in a 0700
    folder of its own) and certified again on the next; the token may come from
    $TOLLGATE_TOKEN. The quickstart's folder (~/.tollgate/ssh/: the gateway's host key,
    its user CA, known_hosts) gets nothing of it; a key an earlier version left there is
    named, to be removed, and never used."""
    key = tmp_path / ".tollgate" / "ssh-login" / "id_ed25519"
    quickstart = tmp_path / ".tollgate" / "ssh"
    earlier = quickstart / "id_ed25519"
    write_key(earlier)
    (quickstart / "user_ca").write_text("the quickstart's CA\n")
    before = sorted(p.name for p in quickstart.iterdir())
    async with gateway(ca, tmp_path) as (url, _):
        first = await tollgate(tmp_path, "--url", url, TOLLGATE_TOKEN=tokens.token())
        public = key.with_name("id_ed25519.pub").read_text()
        again = await tollgate(tmp_path, "--url", url, "--token", tokens.token())
    assert (first[0], again[0]) == (0, 0), (first, again)
    assert "made a new key" in first[2] and "made a new key" not in again[2]
    assert f"{earlier} (and its .pub, -cert.pub, -known_hosts) is no longer used" in first[2]
    assert sorted(p.name for p in quickstart.iterdir()) == before
    assert public != earlier.with_name("id_ed25519.pub").read_text()
    assert f"-i {key} " in first[1]
    assert key.with_name("id_ed25519.pub").read_text() == public
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    certified = ca.claims_of(key.with_name("id_ed25519-cert.pub").read_text())
    assert certified["sub"] == "svc-autogen"


async def test_refusals_exit_with_one_line_and_write_nothing(
        ca: UserCA, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "id_ed25519"
    write_key(key)
    written = [key.with_name("id_ed25519-cert.pub"), key.with_name("id_ed25519-known_hosts")]
    async with gateway(ca, tmp_path) as (url, _):
        cases = [
            (["--token", tokens.token(ttl=-120)], 1, "401 unauthenticated: the token "
                                                      "does not verify: it expired at "),
            ([], 2, "no token: run `tollgate login` (where the admin signs in with an "
                    "identity provider), give --token or set TOLLGATE_TOKEN (your own token)"),
            (["--token", "t", "--port", "0"], 2, "--port: expected 1-65535, got 0"),
        ]
        for argv, expected, why in cases:
            status, out, err = await tollgate(tmp_path, "--url", url, "--key", str(key),
                                              *argv)
            assert (status, out) == (expected, ""), argv
            # One line; the expired token's names its time, which changes.
            assert err.startswith(f"tollgate ssh login: {why}") and err.count("\n") == 1
    status, _, err = await tollgate(tmp_path, "--url", url, "--key", str(key),
                                    "--token", tokens.token())
    assert status == 1 and err.startswith(f"tollgate ssh login: cannot reach the admin API "
                                          f"at {url}")
    key.with_name("id_ed25519.pub").unlink()
    status, _, err = await tollgate(tmp_path, "--url", url, "--key", str(key),
                                    "--token", tokens.token())
    assert status == 2 and f"{key}.pub: missing (ssh-keygen -y -f {key}" in err
    assert not any(path.exists() for path in written)


async def test_a_certificate_of_another_key_is_not_written(tmp_path: Path) -> None:
    """An answer certifying some other key (a confused or hostile API) is refused."""
    ca = UserCA(ed25519.Ed25519PrivateKey.generate(), Identity())
    other = public_line(ed25519.Ed25519PrivateKey.generate())

    async def certify_another(_request: web.Request) -> web.Response:
        issued = ca.issue(other, {"sub": "svc", "exp": 4_000_000_000}, 5)
        return web.json_response({"certificate": issued.line, "key_id": "svc",
                                  "principals": [], "valid_before": "",
                                  "gateway_host_key": other, "ssh_port": 2222})

    key = tmp_path / "id_ed25519"
    async with admin_api([web.post(PATH, certify_another)]) as url:
        status, _, err = await tollgate(tmp_path, "--url", url, "--key", str(key),
                                        "--token", "t")
    assert status == 1
    assert err.endswith("\ntollgate ssh login: the admin API answered with a certificate of "
                        "another key\n")
    assert not key.with_name("id_ed25519-cert.pub").exists()
