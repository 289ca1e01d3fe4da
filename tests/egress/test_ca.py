"""The egress CA (extproc/egress/ca.py): its files and their modes, the leaves it mints
(checked with `cryptography`, and by a real TLS handshake whose client trusts the bundle
alone), rotation with an overlap, and CA files it refuses rather than replaces."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from extproc import config
from extproc.config import EgressCa
from extproc.egress.ca import BUNDLE_FILE, CA_FILE, PREVIOUS_FILE, CAError, EgressCA

HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def opened(folder: Path, clock: Clock, **settings: float) -> EgressCA:
    return EgressCA.open(folder, EgressCa(dir=folder, **settings), clock)  # type: ignore[arg-type]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def bundle_certificates(ca: EgressCA) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(ca.bundle_file.read_bytes())


def test_a_ca_is_made_on_first_use_its_key_for_tollgate_alone(
        tmp_path: Path, clock: Clock) -> None:
    folder = tmp_path / "egress"
    ca = opened(folder, clock)
    assert (mode(folder), mode(folder / CA_FILE), mode(folder / BUNDLE_FILE)) == (
        0o700, 0o600, 0o644)
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert bundle_certificates(ca) == [ca.certificate]
    assert b"PRIVATE KEY" not in ca.bundle_file.read_bytes()
    again = opened(folder, clock)  # a second process, or a restart: the same CA
    assert again.certificate == ca.certificate
    assert set(folder.iterdir()) == {folder / CA_FILE, folder / BUNDLE_FILE}


@pytest.mark.parametrize(("host", "general"), [
    ("API.Example.com.", x509.DNSName("api.example.com")),
    ("10.0.0.7", x509.IPAddress(ipaddress.ip_address("10.0.0.7"))),
    ("[2001:db8::1]", x509.IPAddress(ipaddress.ip_address("2001:db8::1"))),
])
def test_a_leaf_names_its_host_and_chains_to_the_ca(
        tmp_path: Path, clock: Clock, host: str, general: x509.GeneralName) -> None:
    ca = opened(tmp_path, clock)
    leaf = ca.leaf(host)
    certificate = leaf.certificate
    certificate.verify_directly_issued_by(ca.certificate)
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(sans) == [general]
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not certificate.extensions.get_extension_for_class(
        x509.BasicConstraints).value.ca
    now = datetime.datetime.fromtimestamp(clock.now, datetime.UTC)
    assert certificate.not_valid_before_utc == now - datetime.timedelta(minutes=5)
    assert certificate.not_valid_after_utc == now + datetime.timedelta(hours=24)
    assert leaf.chain_pem.endswith(ca.certificate.public_bytes(serialization.Encoding.PEM))


def test_leaves_are_kept_until_near_their_end_and_the_least_recent_go_first(
        tmp_path: Path, clock: Clock) -> None:
    ca = opened(tmp_path, clock, leaf_cache_size=2)
    first = ca.leaf("a.example")
    assert ca.leaf("A.EXAMPLE") is first
    clock.now += 22 * HOUR  # more than an hour left: kept
    assert ca.leaf("a.example") is first
    clock.now += 1.5 * HOUR  # half an hour left: minted anew
    renewed = ca.leaf("a.example")
    assert renewed is not first and renewed.certificate.serial_number != \
        first.certificate.serial_number
    ca.leaf("b.example")
    ca.leaf("c.example")  # a.example is the least recent: gone
    assert ca.leaf("c.example") is ca.leaf("c.example")
    assert ca.leaf("a.example") is not renewed


@pytest.mark.parametrize("host", ["", "exa mple.com", "a..b", "[example.com]", "-x.example"])
def test_a_host_that_is_no_name_or_address_gets_no_leaf(
        tmp_path: Path, clock: Clock, host: str) -> None:
    with pytest.raises(CAError, match="no certificate for"):
        opened(tmp_path, clock).leaf(host)


def test_a_rotation_signs_with_the_new_ca_and_trusts_the_old_for_the_overlap(
        tmp_path: Path, clock: Clock) -> None:
    old = opened(tmp_path, clock)
    rotated = old.rotate()
    assert rotated.certificate != old.certificate
    assert bundle_certificates(rotated) == [rotated.certificate, old.certificate]
    rotated.leaf("a.example").certificate.verify_directly_issued_by(rotated.certificate)
    assert mode(tmp_path / PREVIOUS_FILE) == 0o644
    assert b"PRIVATE KEY" not in (tmp_path / PREVIOUS_FILE).read_bytes()
    with pytest.raises(CAError, match="rotate again after that"):
        rotated.rotate()
    clock.now += 24.5 * HOUR  # within the overlap (leaf_hours + 1 h): both still trusted
    assert bundle_certificates(opened(tmp_path, clock)) == [rotated.certificate,
                                                            old.certificate]
    clock.now += 1 * HOUR  # the overlap over: the old CA is dropped
    after = opened(tmp_path, clock)
    assert bundle_certificates(after) == [rotated.certificate]
    assert not (tmp_path / PREVIOUS_FILE).exists()
    after.rotate()  # and rotating again is allowed


def test_ca_files_it_cannot_use_are_refused_never_replaced(
        tmp_path: Path, clock: Clock) -> None:
    ca_file = tmp_path / CA_FILE
    opened(tmp_path, clock)
    kept = ca_file.read_bytes()
    ca_file.chmod(0o644)
    with pytest.raises(CAError, match=r"others may read the CA's key \(mode 644\)"):
        opened(tmp_path, clock)
    ca_file.write_bytes(b"not a key")
    ca_file.chmod(0o600)
    with pytest.raises(CAError, match="holds no PEM private key"):
        opened(tmp_path, clock)
    assert ca_file.read_bytes() == b"not a key"
    ca_file.unlink()  # the key gone, clients still trusting its bundle
    with pytest.raises(CAError, match=r"is missing, but .* is there"):
        opened(tmp_path, clock)
    assert kept  # the first CA's file was never rewritten by the refusals


@pytest.mark.parametrize(("settings", "expected"), [
    ({"days": 0}, "days: must be > 0"),
    ({"leaf_hours": 0}, "leaf_hours: must be > 0 and shorter"),
    ({"days": 1, "leaf_hours": 48}, "leaf_hours: must be > 0 and shorter"),
    ({"overlap_hours": 1}, "overlap_hours: must be at least leaf_hours"),
    ({"leaf_cache_size": 0}, "leaf_cache_size: must be >= 1"),
])
def test_ca_settings_mistakes_are_named(settings: dict[str, float], expected: str) -> None:
    target = {"name": "egress", "protocol": "egress", "match": {"route": "egress"},
              "egress": {"ca": {"dir": "/tmp/ca", **settings}}}
    with pytest.raises(config.ConfigError) as err:
        config.parse({"targets": [target]})
    assert f"egress.ca.{expected}" in str(err.value)


@pytest.fixture
def tls_server(tmp_path: Path, clock: Clock) -> Iterator[tuple[int, EgressCA]]:
    """A TLS server showing the leaf the CA mints for `tollgate.test`, on a free port."""
    ca = EgressCA.open(tmp_path / "ca", EgressCa(dir=tmp_path / "ca"))
    context = ca.leaf("tollgate.test").server_context()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            connection, _ = listener.accept()
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError):
                pass  # the client refused the certificate
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, ca
    finally:
        listener.close()
        thread.join(timeout=10)


def test_a_client_trusting_the_bundle_alone_verifies_the_leaf_and_others_refuse_it(
        tls_server: tuple[int, EgressCA]) -> None:
    port, ca = tls_server
    trusting = ssl.create_default_context(cafile=str(ca.bundle_file))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            trusting.wrap_socket(raw, server_hostname="tollgate.test") as tls:
        assert tls.recv(5) == b"hello"
    system_only = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        system_only.wrap_socket(raw, server_hostname="tollgate.test")
