"""Batch `scp` and `sftp -b` log in with `tollgate ssh login`'s certificate, as the README
shows: they cannot type a password (BatchMode), so the token alone would not let them
in. A real Envoy and tollgate with a user CA, a real OpenSSH server behind, the default
pack: the file comes back masked, each transfer decided and recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_ssh_e2e import AGENT, LOGIN, web
from tests.support.gateway import Gateway, module_gateway
from tests.support.ssh_certificates import write_key
from tests.support.sshd import Sshd

pytestmark = pytest.mark.e2e

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
SETTINGS = f"region = eu-west-1\naws_access_key_id = {AWS_KEY}\n".encode()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, host: Sshd) -> Iterator[Gateway]:
    ca = tmp_path_factory.mktemp("ssh-ca") / "user_ca"
    write_key(ca)
    with module_gateway(tmp_path_factory, otlp, "ssh-batch", targets=[web(host)],
                        ssh={"user_ca_key_file": str(ca)}) as running:
        yield running


def login(gw: Gateway, home: Path) -> list[str]:
    """`tollgate ssh login` with `home` as HOME (its default key); the options the README
    gives scp and sftp, the key's path spelt out (OpenSSH expands `~` from the account's
    entry, not from $HOME), and no password ever asked."""
    done = subprocess.run(
        [sys.executable, "-m", "extproc", "ssh", "login", "--token", AGENT,
         "--url", f"http://127.0.0.1:{gw.replica_admin_ports[0]}"],
        capture_output=True, text=True, timeout=30, env={**os.environ, "HOME": str(home)})
    assert done.returncode == 0, done.stderr
    key = home / ".tollgate" / "ssh-login" / "id_ed25519"
    assert key.with_name("id_ed25519-cert.pub").exists()
    return ["-i", str(key), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={key.with_name('id_ed25519-known_hosts')}",
            "-P", str(gw.ports.ssh), "-F", "/dev/null", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes"]


def openssh(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, cwd=cwd,
                          stdin=subprocess.DEVNULL, check=False)


def test_batch_scp_and_sftp_log_in_with_the_certificate(
        gw: Gateway, host: Sshd, tmp_path: Path) -> None:
    path = host.put("settings.conf", SETTINGS)
    options = login(gw, tmp_path)
    copied = openssh("scp", *options, f"{LOGIN}@127.0.0.1:{path}", ".", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    batch = tmp_path / "batch.txt"
    batch.write_text(f"get {path} fetched.conf\n")
    fetched = openssh("sftp", "-b", str(batch), *options, f"{LOGIN}@127.0.0.1",
                      cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    for name in ("settings.conf", "fetched.conf"):
        text = (tmp_path / name).read_text()
        assert "region = eu-west-1" in text and AWS_KEY not in text, name
        assert len(text.encode()) == len(SETTINGS)  # masked in place, the size kept


def test_without_the_certificate_batch_mode_cannot_log_in(
        gw: Gateway, host: Sshd, tmp_path: Path) -> None:
    """The same options with the certificate gone: a key alone is no login, and batch
    mode asks for no password."""
    options = login(gw, tmp_path)
    (tmp_path / ".tollgate" / "ssh-login" / "id_ed25519-cert.pub").unlink()
    refused = openssh("scp", *options, f"{LOGIN}@127.0.0.1:settings.conf", ".", cwd=tmp_path)
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr
