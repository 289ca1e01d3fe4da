"""`tollgate egress ca` as a user runs it: the quickstart's CA made on first use under the
home folder (a folder of the test's own), its PEM printed, install hints, rotation."""

from __future__ import annotations

import ensurepip
import os
import shlex
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from extproc.config import EgressCa
from extproc.egress.ca import BUNDLE_FILE, EgressCA
from tests.support.http_server import LocalServer
from tests.support.tls import TlsFiles

pytestmark = pytest.mark.e2e  # the command line as users run it


def egress_ca(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "extproc", "egress", "ca", *args],
                          env={**os.environ, "HOME": str(home)}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_quickstart_s_ca_is_made_in_the_home_folder_and_printed(tmp_path: Path) -> None:
    made = egress_ca(tmp_path)
    assert made.returncode == 0, made.stderr
    folder = tmp_path / ".tollgate" / "egress"
    [certificate] = x509.load_pem_x509_certificates(made.stdout.encode())
    assert made.stdout == (folder / BUNDLE_FILE).read_text()
    assert "tollgate egress CA" in certificate.subject.rfc4514_string()
    again = egress_ca(tmp_path)
    assert again.stdout == made.stdout  # made once, printed since
    hint = egress_ca(tmp_path, "--install-hint")
    assert hint.returncode == 0, hint.stderr
    both = folder / "system-and-egress-ca.pem"
    for line in (f"export REQUESTS_CA_BUNDLE={both}", f"export SSL_CERT_FILE={both}",
                 f"export NODE_EXTRA_CA_CERTS={folder / BUNDLE_FILE}",
                 f"git config --global http.sslCAInfo {both}", f"export PIP_CERT={both}",
                 f"REQUESTS_CA_BUNDLE={both} pip install --cert {both} requests",
                 f"curl --cacert {both} https://example.com/"):
        assert line in hint.stdout.splitlines(), line
    # The hint's first command makes the file the others name: run it as printed.
    [cat] = [line for line in hint.stdout.splitlines() if line.startswith("cat ")]
    subprocess.run(cat, shell=True, check=True, timeout=30)
    assert made.stdout in both.read_text()


def test_pip_as_the_hint_says_trusts_the_ca_where_another_bundle_is_exported(
        tmp_path: Path) -> None:
    """A real pip, a package index over HTTPS with a certificate of the egress CA's, and
    the machine exporting REQUESTS_CA_BUNDLE as the system's roots: `--cert` alone fails
    to verify (pip's requests prefers the variable), the hint's pip line reaches the index.
    The pip is the one a new `python -m venv` gets (ensurepip's wheel, 23.x here, run
    from the wheel itself): pip 24.2 and later verify through the system's store and the
    bundle together (truststore), and are not fooled."""
    [wheel] = (Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl")
    assert egress_ca(tmp_path).returncode == 0
    hint = egress_ca(tmp_path, "--install-hint").stdout.splitlines()
    [cat] = [line for line in hint if line.startswith("cat ")]
    subprocess.run(cat, shell=True, check=True, timeout=30)
    folder = tmp_path / ".tollgate" / "egress"
    leaf = EgressCA.open(folder, EgressCa(dir=folder)).leaf("127.0.0.1")
    (tmp_path / "leaf.pem").write_bytes(leaf.chain_pem)
    (tmp_path / "leaf-key.pem").write_bytes(leaf.key_pem)
    tls = TlsFiles(folder / BUNDLE_FILE, tmp_path / "leaf.pem", tmp_path / "leaf-key.pem")
    [pip_line] = [line for line in hint if " pip install " in line]
    environment = {name: value for name, value in os.environ.items()
                   if "proxy" not in name.lower()}
    paths = ssl.get_default_verify_paths()
    environment.update(
        HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"), PIP_NO_CACHE_DIR="1",
        PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_RETRIES="0",
        PIP_TIMEOUT="20", REQUESTS_CA_BUNDLE=str(paths.cafile or paths.openssl_cafile))
    with LocalServer(lambda *_: (200, b"<html><body></body></html>", "text/html"),
                     "/simple/", tls) as index:
        pip = (f"{shlex.quote(sys.executable)} {shlex.quote(str(wheel / 'pip'))} download "
               f"--no-deps -d {shlex.quote(str(tmp_path / 'got'))} --index-url {index.url}")
        bundle = folder / "system-and-egress-ca.pem"
        alone = subprocess.run(f"{pip} --cert {shlex.quote(str(bundle))} tollgate-probe",
                               shell=True, env=environment, capture_output=True, text=True,
                               timeout=120)
        read_alone = len(index.received)
        hinted = subprocess.run(pip_line.replace("pip install", pip).replace(
            " requests", " tollgate-probe"), shell=True, env=environment,
            capture_output=True, text=True, timeout=120)
    # Alone: no request reached the index (the handshake failed to verify).
    assert read_alone == 0, alone.stderr
    # As the hint says: verified and read; the index lists no such package.
    assert [r.path for r in index.received] == ["/simple/tollgate-probe/"]
    assert "No matching distribution found for tollgate-probe" in hinted.stderr, hinted.stderr


def test_a_rotation_prints_both_cas_and_a_second_one_waits_for_the_overlap(
        tmp_path: Path) -> None:
    first = egress_ca(tmp_path).stdout
    rotated = egress_ca(tmp_path, "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    certificates = x509.load_pem_x509_certificates(rotated.stdout.encode())
    assert len(certificates) == 2 and rotated.stdout.endswith(first)
    assert "a new CA signs from now; the previous one is trusted until" in rotated.stderr
    refused = egress_ca(tmp_path, "--rotate")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "rotate again after that" in refused.stderr


def test_a_config_without_a_ca_is_answered_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "tollgate.yaml"
    config.write_text("targets:\n  - {name: egress, protocol: egress, match: {route: e}}\n")
    done = egress_ca(tmp_path, "--config", str(config))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"tollgate egress ca: no egress target sets egress.ca (the CA's "
                           f"folder) in {config}\n")
