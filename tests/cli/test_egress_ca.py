"""`tollgate egress ca` as a user runs it: the quickstart's CA made on first use under the
home folder (a folder of the test's own), its PEM printed, install hints, rotation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from extproc.egress.ca import BUNDLE_FILE

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
                 f"curl --cacert {both} https://example.com/"):
        assert line in hint.stdout.splitlines(), line
    # The hint's first command makes the file the others name: run it as printed.
    [cat] = [line for line in hint.stdout.splitlines() if line.startswith("cat ")]
    subprocess.run(cat, shell=True, check=True, timeout=30)
    assert made.stdout in both.read_text()


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
