"""A test CA and a server certificate for 127.0.0.1 and localhost, made with `cryptography`.

kubectl sends a bearer token only to a server it can verify, and Go checks the IP and DNS
subject alternative names (never the common name), so listeners that kubectl talks to
(the Kubernetes stand-in, Envoy's TLS listener) need a real chain. The keys and
certificates are made once per process and written wherever a caller asks. Servers reached
by other names (an egress destination such as `pypi.test`) get certificates of their own from
the same CA, so one ca.pem verifies them all.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # ca.pem: the CA certificate clients trust
    cert: Path  # server.pem
    key: Path  # server-key.pem (PKCS#8, unencrypted)


def write_tls_files(directory: Path) -> TlsFiles:
    """Write ca.pem, server.pem and server-key.pem into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    ca_pem, cert_pem, key_pem = _pem_material()
    files.ca.write_bytes(ca_pem)
    files.cert.write_bytes(cert_pem)
    files.key.write_bytes(key_pem)
    files.key.chmod(0o600)
    return files


def write_server_files(directory: Path, names: list[str]) -> TlsFiles:
    """A server certificate for other names than 127.0.0.1 and localhost (`pypi.test`, as a
    forward proxy's destination is reached by name), signed by the same CA: written as
    ca.pem, <first name>.pem and <first name>-key.pem. Names that parse as IP addresses
    become IP subject alternative names, the others DNS names."""
    if not names:
        raise ValueError("a server certificate needs at least one name")
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / f"{names[0]}.pem",
                     directory / f"{names[0]}-key.pem")
    ca_pem, cert_pem, key_pem = _server_material(tuple(names))
    files.ca.write_bytes(ca_pem)
    files.cert.write_bytes(cert_pem)
    files.key.write_bytes(key_pem)
    files.key.chmod(0o600)
    return files


def write_faulty_server_files(directory: Path, name: str, fault: str) -> TlsFiles:
    """A server certificate for `name` that a client trusting the test CA refuses, for
    `fault`: `expired` (the CA's, its validity over a day ago) or `self_signed` (its own
    issuer); written as ca.pem (the test CA), <name>.pem and <name>-key.pem."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert, validity = _ca()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    if fault == "expired":
        over = (validity[0] - datetime.timedelta(days=30), validity[0] - datetime.timedelta(days=1))
        issuer, signer, when = ca_cert.subject, ca_key, over
    elif fault == "self_signed":
        issuer, signer, when = subject, key, validity
    else:
        raise ValueError(f"no such fault: {fault!r}")
    cert = (_builder(subject, issuer, key.public_key(), when)
            .add_extension(x509.SubjectAlternativeName([_alt_name(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(signer, hashes.SHA256()))
    files = TlsFiles(directory / "ca.pem", directory / f"{name}.pem",
                     directory / f"{name}-key.pem")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    files.key.chmod(0o600)
    return files


def write_client_files(directory: Path, common_name: str) -> tuple[Path, Path]:
    """A client certificate for `common_name` (a PostgreSQL role, for `cert` auth)
    signed by the test CA, and its key: written as <name>.pem and <name>-key.pem."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert, validity = _ca()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
                 ca_cert.subject, key.public_key(), validity)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{common_name}.pem", directory / f"{common_name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@functools.cache
def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate,
                   tuple[datetime.datetime, datetime.datetime]]:
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tollgate test CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca_cert, validity


@functools.cache
def _pem_material() -> tuple[bytes, bytes, bytes]:
    return _server_material(("localhost", "127.0.0.1"))


@functools.cache
def _server_material(names: tuple[str, ...]) -> tuple[bytes, bytes, bytes]:
    """The CA's certificate, and a server certificate for `names` (the first is its common
    name; each is a DNS or an IP subject alternative name) with its key, as PEM."""
    ca_key, ca_cert, validity = _ca()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        _builder(name, ca_cert.subject, key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_alt_name(n) for n in names]),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return (
        ca_cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    validity: tuple[datetime.datetime, datetime.datetime],
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def write_stranger_ca(path: Path) -> Path:
    """A CA of its own at `path`, which signed nothing a test's servers present: what a
    verified mode must refuse."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the server's CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path
