"""The egress CA: the certificate authority agents' clients would trust so that tollgate
can read HTTPS to a destination it is told to inspect (issue 66). This is its foundation
only: the CA, its files, its rotation, and the leaf certificates it mints. Nothing
terminates TLS with them yet; HTTPS through the proxy is still an unread tunnel.

It lives in the egress front, beside the proxy that will show its leaves, as the SSH
front keeps its user CA (ssh/certificates.py): only the fronts and the command line use
it, and it needs nothing of the layers above config.

State, all in the folder `egress.ca.dir` names (made 0700):

- `ca.pem` — the signing CA: its private key and certificate in one file (as mitmproxy
  keeps its CA), 0600, so the two can never disagree and appear together, atomically.
  Made on first use (ECDSA P-256), or put there by an operator (an EC or RSA key in PEM,
  unencrypted, then its certificate). A file that cannot be read or used is an error:
  it is never replaced.
- `previous-ca.pem` — after `tollgate egress ca --rotate`, the CA that signed before:
  its certificate alone (its key is not kept: it signs nothing more), after a
  `Trusted-Until:` line. It is dropped once that moment has passed.
- `ca-bundle.pem` — what clients trust: the signing CA's certificate, then the previous
  one's while it is still trusted. Public (0644), rewritten whenever the two change.

Leaves share one key per process (made in memory, never written): the CA's key sits in
the same memory, so a key per leaf would isolate nothing, and minting costs then one
signature. They are kept per host (a bounded LRU) and minted anew before they expire.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from extproc.codecs import private_file
from extproc.codecs.destination import parse_host
from extproc.config import EgressCa

CA_FILE = "ca.pem"
PREVIOUS_FILE = "previous-ca.pem"
BUNDLE_FILE = "ca-bundle.pem"
_TRUSTED_UNTIL = b"Trusted-Until: "
# A client's clock a little behind the gateway's still takes a certificate made now.
_BACKDATE = timedelta(minutes=5)
# A leaf is minted anew once less than this (or a quarter of its lifetime) is left, so
# none handed out expires in the middle of a connection's first minutes.
_RENEW_BEFORE = timedelta(hours=1)
_MOST_CN_CHARS = 64  # X.520's upper bound of a common name

_SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CAError(Exception):
    """A CA that cannot be read, made, rotated or used; the message names the file and
    says why."""


@dataclass(frozen=True)
class Previous:
    """The CA that signed before the last rotation: trusted, no longer signing."""

    certificate: x509.Certificate
    trusted_until: datetime


@dataclass(frozen=True)
class Leaf:
    """A certificate minted for one host, with what a TLS server needs to show it."""

    host: str  # normalised: lower-case, no trailing dot, an IP address as Python writes it
    certificate: x509.Certificate
    chain_pem: bytes  # the leaf, then the CA that signed it
    key_pem: bytes = field(repr=False)

    @property
    def renew_at(self) -> datetime:
        """When `EgressCA.leaf` stops handing this one out and mints the next: whoever
        keeps serving it (Envoy's SDS secrets) is sent the next by then."""
        return _renew_at(self.certificate)

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context showing this leaf. Python's ssl loads a key from a file
        only: it is written into a private temporary folder (0700) and removed at once."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory(prefix="tollgate-leaf-") as folder:
            key, chain = Path(folder) / "key.pem", Path(folder) / "chain.pem"
            private_file.write(key, self.key_pem)
            private_file.write(chain, self.chain_pem)
            context.load_cert_chain(chain, key)
        return context


class EgressCA:
    """The signing CA, the previous one while it is still trusted, and the leaves minted
    so far. `open` loads or makes it; `rotate` makes the next."""

    def __init__(self, folder: Path, settings: EgressCa, key: _SigningKey,
                 certificate: x509.Certificate, previous: Previous | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.folder, self._settings, self._clock = folder, settings, clock
        self._key, self.certificate, self.previous = key, certificate, previous
        self._leaves: OrderedDict[str, Leaf] = OrderedDict()
        self._leaf_key: ec.EllipticCurvePrivateKey | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, folder: Path, settings: EgressCa,
             clock: Callable[[], float] = time.time) -> EgressCA:
        """The CA kept in `folder`, made there on first use; a previous CA whose overlap
        has passed is dropped, and the bundle rewritten when it differs. Raises CAError."""
        now = _moment(clock)
        ca_file, bundle = folder / CA_FILE, folder / BUNDLE_FILE
        loaded = _load_signing(ca_file)
        if loaded is None:
            if bundle.exists():
                raise CAError(f"{ca_file} is missing, but {bundle} is there: clients trust "
                              "a CA whose key is gone. Remove the folder's files to start "
                              "over with a new CA (and have clients trust it anew)")
            loaded = _make(folder, settings, now)
        key, certificate = loaded
        previous = _load_previous(folder / PREVIOUS_FILE)
        if previous is not None and (now >= previous.trusted_until
                                     or previous.certificate == certificate):
            # Its overlap has passed, or a rotation stopped before the new CA was written.
            try:
                (folder / PREVIOUS_FILE).unlink(missing_ok=True)
            except OSError as exc:
                raise CAError(f"{folder / PREVIOUS_FILE}: cannot remove it, its overlap "
                              f"over ({exc.strerror})") from None
            previous = None
        ca = cls(folder, settings, key, certificate, previous, clock)
        ca._write_bundle()
        return ca

    @property
    def trusted(self) -> tuple[x509.Certificate, ...]:
        """What clients trust: the signing CA, then the previous one during its overlap."""
        if self.previous is None:
            return (self.certificate,)
        return self.certificate, self.previous.certificate

    @property
    def bundle_file(self) -> Path:
        return self.folder / BUNDLE_FILE

    def bundle_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.trusted)

    def rotate(self) -> EgressCA:
        """The next CA, made and signing from now; this one stays trusted (in the bundle)
        for `overlap_seconds`, and its key is dropped. Refused while an earlier rotation's
        overlap lasts: dropping its CA early would break what it signed."""
        now = _moment(self._clock)
        if self.previous is not None and now < self.previous.trusted_until:
            raise CAError(f"{self.folder / PREVIOUS_FILE}: the CA before the last rotation "
                          f"is trusted until {_iso(self.previous.trusted_until)}; rotate "
                          "again after that")
        previous = Previous(self.certificate,
                            now + timedelta(seconds=self._settings.overlap_seconds))
        stamp = _TRUSTED_UNTIL + _iso(previous.trusted_until).encode() + b"\n"
        _write(self.folder / PREVIOUS_FILE,
               stamp + self.certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
        key, certificate = _new_ca(self._settings, now)
        _write(self.folder / CA_FILE, _signing_pem(key, certificate))
        rotated = EgressCA(self.folder, self._settings, key, certificate, previous,
                           self._clock)
        rotated._write_bundle()
        return rotated

    def leaf(self, host: str) -> Leaf:
        """The certificate to show for `host` (a DNS name or an IP address): the one kept,
        unless it is about to expire; else minted now. Raises CAError for a host that is
        no name nor address, or when the CA itself has expired."""
        try:
            name, literal = parse_host(host)
        except ValueError as exc:
            raise CAError(f"no certificate for {host!r}: {exc}") from None
        now = _moment(self._clock)
        with self._lock:
            kept = self._leaves.get(name)
            if kept is not None and now < kept.renew_at:
                self._leaves.move_to_end(name)
                return kept
            made = self._mint(name, literal, now)
            self._leaves[name] = made
            self._leaves.move_to_end(name)
            while len(self._leaves) > self._settings.leaf_cache_size:
                self._leaves.popitem(last=False)
            return made

    def _mint(self, name: str, literal: bool, now: datetime) -> Leaf:
        ca_until = self.certificate.not_valid_after_utc
        if now >= ca_until:
            raise CAError(f"{self.folder / CA_FILE}: the CA expired on {_iso(ca_until)}; "
                          "rotate it (tollgate egress ca --rotate)")
        if self._leaf_key is None:
            self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        general: x509.GeneralName = (x509.IPAddress(ipaddress.ip_address(name)) if literal
                                     else x509.DNSName(name))
        # A name too long for a common name goes in the SAN alone, which is then critical
        # (RFC 5280, 4.2.1.6); clients read the SAN either way.
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]
                            if len(name) <= _MOST_CN_CHARS else [])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.certificate.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(min(now + timedelta(hours=self._settings.leaf_hours), ca_until))
            .add_extension(x509.SubjectAlternativeName([general]),
                           critical=len(subject) == 0)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signing_certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                self._leaf_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256()))
        return Leaf(name, certificate,
                    certificate.public_bytes(serialization.Encoding.PEM)
                    + self.certificate.public_bytes(serialization.Encoding.PEM),
                    _key_pem(self._leaf_key))

    def _write_bundle(self) -> None:
        """The bundle file, when it is missing or differs (it is public: 0644)."""
        pem = self.bundle_pem()
        try:
            if self.bundle_file.read_bytes() == pem:
                return
        except OSError:
            pass  # missing or unreadable: written anew below
        _write(self.bundle_file, pem, mode=0o644)


def _moment(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _renew_at(certificate: x509.Certificate) -> datetime:
    until = certificate.not_valid_after_utc
    lifetime = until - certificate.not_valid_before_utc
    return until - min(_RENEW_BEFORE, lifetime / 4)


def _key_usage(*, signing_certificates: bool) -> x509.KeyUsage:
    """A CA's key signs certificates and CRLs; a leaf's signs its TLS handshakes."""
    return x509.KeyUsage(
        digital_signature=not signing_certificates, content_commitment=False,
        key_encipherment=False, data_encipherment=False, key_agreement=False,
        key_cert_sign=signing_certificates, crl_sign=signing_certificates,
        encipher_only=False, decipher_only=False)


def _new_ca(settings: EgressCa, now: datetime) -> tuple[ec.EllipticCurvePrivateKey,
                                                         x509.Certificate]:
    """A CA certificate naming tollgate, this host and the day it was made (so that a
    trust store shows which one it holds); it may sign leaves only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    common = f"tollgate egress CA {now:%Y-%m-%d} ({socket.gethostname()})"[:_MOST_CN_CHARS]
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tollgate"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=settings.days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256()))
    return key, certificate


def _make(folder: Path, settings: EgressCa, now: datetime) -> tuple[_SigningKey,
                                                                      x509.Certificate]:
    """A new CA written as `folder`'s ca.pem, unless another process wrote one first: then
    that one."""
    key, certificate = _new_ca(settings, now)
    try:
        _write(folder / CA_FILE, _signing_pem(key, certificate), exclusive=True)
    except FileExistsError:
        found = _load_signing(folder / CA_FILE)
        if found is None:
            raise CAError(f"{folder / CA_FILE}: appeared and vanished while made") from None
        return found
    return key, certificate


def _write(path: Path, data: bytes, *, mode: int = 0o600, exclusive: bool = False) -> None:
    try:
        private_file.write(path, data, mode=mode, exclusive=exclusive)
    except FileExistsError:
        raise
    except OSError as exc:
        raise CAError(f"{path}: cannot write it ({exc.strerror})") from None


def _key_pem(key: _SigningKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _signing_pem(key: _SigningKey, certificate: x509.Certificate) -> bytes:
    return _key_pem(key) + certificate.public_bytes(serialization.Encoding.PEM)


def _load_signing(path: Path) -> tuple[_SigningKey, x509.Certificate] | None:
    """The key and certificate of `path`, None when there is no such file; CAError for
    one that cannot be read or used (never replaced: clients trust what it held)."""
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CAError(f"{path}: cannot read the egress CA ({exc.strerror})") from None
    if mode & 0o077:
        raise CAError(f"{path}: others may read the CA's key (mode {mode & 0o777:o}); "
                      "chmod 600 it, and rotate if anyone else may have read it")
    try:
        key = serialization.load_pem_private_key(data, None)
    except TypeError:
        raise CAError(f"{path}: the key is encrypted; tollgate needs it unencrypted "
                      "(readable by tollgate alone)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CAError(f"{path}: holds no PEM private key tollgate can read") from None
    if not isinstance(key, _SigningKey):
        raise CAError(f"{path}: not an EC or RSA key")
    try:
        certificate = x509.load_pem_x509_certificates(data)[0]
    except ValueError:
        raise CAError(f"{path}: holds no PEM certificate after its key") from None
    if certificate.public_key() != key.public_key():
        raise CAError(f"{path}: the certificate is not the key's")
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.value.ca:
        raise CAError(f"{path}: the certificate is not a CA's (basicConstraints CA:true)")
    return key, certificate


def _load_previous(path: Path) -> Previous | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CAError(f"{path}: cannot read the previous CA ({exc.strerror})") from None
    first, _, rest = data.partition(b"\n")
    try:
        if not first.startswith(_TRUSTED_UNTIL):
            raise ValueError
        until = datetime.strptime(first[len(_TRUSTED_UNTIL):].decode(),
                                  "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        certificate = x509.load_pem_x509_certificates(rest)[0]
    except ValueError:
        raise CAError(f"{path}: expected a {_TRUSTED_UNTIL.decode()}YYYY-MM-DDTHH:MM:SSZ "
                      "line, then a PEM certificate") from None
    return Previous(certificate, until)
