"""Real keys, a real admin API and a real SSH server for the certificate tests
(extproc/ssh/certificates.py, its admin route, `tollgate ssh login`).

`certificate_front` is an asyncssh server that trusts certificates as the SSH front is
meant to: the user CA for tollgate's principal under any login (`UserCA.authorized_keys`),
and the claims read from the certificate the client logged in with (`UserCA.claims_of`).
asyncssh validates a client's certificate but gives its server no way to see it, so the
certificate is taken where the connection validates it (`validate_public_key`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from extproc import admin, envoy_bootstrap
from extproc.approvals.auth import Verifier
from extproc.config import Identity
from extproc.quickstart.stack import free_port
from extproc.ssh.certificates import UserCA, read_certificates
from tests.support import tokens


def write_key(path: Path, key: Any = None) -> str:
    """`key` (a new Ed25519 key by default) as ssh-keygen writes one: PATH in OpenSSH's
    format readable by its owner alone, PATH.pub; its public line."""
    key = key or ed25519.Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    line = public_line(key)
    path.with_name(f"{path.name}.pub").write_text(f"{line} test\n")
    return line


def public_line(key: Any) -> str:
    """A private key's public half as OpenSSH writes it: "ssh-ed25519 AAAA..."."""
    return str(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode())


def agent_verifier(tmp_path: Path) -> Verifier:
    """What the admin API verifies agents' tokens with: the test issuer's keys
    (tests/support/tokens.py), in an Envoy bootstrap's jwt_authn provider."""
    bootstrap = envoy_bootstrap.with_jwt_issuer(
        envoy_bootstrap.load(), tokens.ISSUER, [tokens.AUDIENCE], tokens.jwks())
    return Verifier.from_bootstrap(envoy_bootstrap.write(bootstrap, tmp_path / "envoy.yaml"),
                                   Identity())


@asynccontextmanager
async def admin_api(routes: list[web.RouteDef]) -> AsyncIterator[str]:
    """A running admin server serving `routes`; its URL."""
    address = f"127.0.0.1:{free_port()}"
    runner = await admin.start(address, routes)
    try:
        yield f"http://{address}"
    finally:
        await runner.cleanup()


class _Front(asyncssh.SSHServer):
    """One connection: the claims of the certificate its client logged in with."""

    def __init__(self, ca: UserCA) -> None:
        self._ca = ca
        self.claims: dict[str, Any] | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        read_certificates(conn, self._ca, self._certified)

    def _certified(self, _username: str, claims: dict[str, Any] | None,
                   _problem: str | None) -> bool:
        self.claims = claims
        return claims is not None

    def begin_auth(self, username: str) -> bool:
        return True


async def _answer(process: asyncssh.SSHServerProcess[str]) -> None:
    """Who logged in: the login (the target's name) and the certificate's subject."""
    front = process.get_extra_info("connection").get_owner()
    process.stdout.write(f"login={process.get_extra_info('username')} "
                         f"sub={front.claims['sub']} pty={process.get_terminal_type()}\n")
    process.exit(0)


@dataclass(frozen=True)
class Front:
    port: int
    host_key_line: str


@asynccontextmanager
async def certificate_front(ca: UserCA, tmp_path: Path) -> AsyncIterator[Front]:
    """An SSH server on 127.0.0.1 that lets in certificates of `ca` and nothing else."""
    host_key = tmp_path / "front_host_ed25519"
    line = write_key(host_key)
    server = await asyncssh.listen(
        "127.0.0.1", 0, server_factory=lambda: _Front(ca), server_host_keys=[str(host_key)],
        authorized_client_keys=ca.authorized_keys(), process_factory=_answer,
        password_auth=False, kbdint_auth=False)
    try:
        yield Front(server.sockets[0].getsockname()[1], line)
    finally:
        server.close()
        await server.wait_closed()


async def openssh(key: Path, known_hosts: Path, port: int, destination: str,
                  *command: str, options: tuple[str, ...] = (), term: str = "dumb",
                  timeout: float = 20.0) -> tuple[int, str, str]:
    """OpenSSH's `ssh` with `key` (and KEY-cert.pub, which it finds beside it), trusting
    only `known_hosts`, none of the machine's configuration, no agent, no prompts: (exit
    status, stdout, stderr). Run beside the test's event loop, which serves the other end."""
    process = await asyncio.create_subprocess_exec(
        "ssh", "-F", "/dev/null", "-i", str(key), "-p", str(port),
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        *options, destination, *command, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SSH_AUTH_SOCK": "", "TERM": term})
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
