"""Short-lived OpenSSH user certificates: an agent's token traded for a login, like `tsh login`.

`tollgate ssh login` sends the agent's public key and token to the admin API, which has
the gateway's user CA (`ssh.user_ca_key_file`) sign a certificate of the key; plain
`ssh`, `scp` and `sftp` then log in to the SSH front with it, no token typed. The
certificate carries the token's verified claims in an extension of tollgate's own
(`tollgate-claims@tollgate`, JSON), so the front knows who acts without seeing the token;
its key id is the token's subject (sshd's and tollgate's logs show it). It lives at most
`ssh.certificate_minutes`, never past the token, and permits a terminal, nothing else (no
forwarding of ports, agents or X11).

Principals. The user name of an SSH login names the target (`ssh web-1@gateway`), not the
agent, so no principal can name the agent. A certificate without principals is valid for
any user name: also for every account of a server that trusts this CA's key by mistake
(an authorized_keys `cert-authority` line). One naming the targets' logins would need
reissuing whenever targets change, and a login may well be an account's name. So each
certificate names one principal, `tollgate:front`, which no login and no account can be
(targets' logins are letters, digits, `.`, `_` and `-`; a Unix user name has no `:`),
and the front trusts the CA for that principal under any user name (`authorized_keys`:
`cert-authority,principals="tollgate:front"`). An OpenSSH server trusting the CA
(TrustedUserCAKeys) matches the user name against the principals and refuses it.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import orjson
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    SSHCertificate,
    SSHCertificateBuilder,
    SSHCertificateType,
    SSHCertPrivateKeyTypes,
    SSHCertPublicKeyTypes,
    load_ssh_public_identity,
    ssh_key_fingerprint,
)

from extproc.config import Identity

PRINCIPAL = "tollgate:front"
CLAIMS_EXTENSION = "tollgate-claims@tollgate"
# A client's clock a little behind the gateway's still takes a certificate issued now.
_BACKDATE_SECONDS = 60
_MIN_RSA_BITS = 2048
# OpenSSH reads a public key or certificate file's line up to 16 KiB (SSH_MAX_PUBKEY_BYTES).
_MOST_LINE_CHARS = 16 * 1024 - 1
# The claims identity.identity_of reads (its email and groups claims are configured),
# and the token's expiry.
_CLAIMS_KEPT = ("iss", "sub", "aud", "exp", "jti")

# The kinds of key OpenSSH certifies with, and certifies (DSA is gone from both).
_SIGNING = (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)
_CERTIFIED = (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, rsa.RSAPublicKey)


class KeyFileError(Exception):
    """A key file tollgate cannot use; the message names it and says why."""


class CertificateError(Exception):
    """A public key that cannot be certified, or a certificate that is not accepted; the
    message says why."""


@dataclass(frozen=True)
class Issued:
    """A certificate as `tollgate ssh login` receives it."""

    line: str  # "ssh-ed25519-cert-v01@openssh.com AAAA..." (the -cert.pub file's line)
    key_id: str
    serial: int
    principals: tuple[str, ...]
    valid_before: int  # seconds since the epoch
    fingerprint: str  # the certified key's, as OpenSSH shows it: SHA256:...


def host_key_line(path: Path) -> str:
    """The public half of a private key file as known_hosts takes it: "ssh-ed25519 AAAA..."
    (the front's host key, which clients pin)."""
    return _public_line(_private_key(path).public_key())


class UserCA:
    """The gateway's user CA: it certifies agents' keys, and reads back what it certified."""

    def __init__(self, key: SSHCertPrivateKeyTypes, identity: Identity,
                 clock: Callable[[], float] = time.time) -> None:
        self._key, self._clock = key, clock
        self._public = _public_line(key.public_key())
        self._kept = tuple(dict.fromkeys(
            (*_CLAIMS_KEPT, identity.email_claim, identity.groups_claim)))

    @classmethod
    def from_file(cls, path: Path, identity: Identity) -> UserCA:
        return cls(_private_key(path), identity)

    @property
    def public_key_line(self) -> str:
        return self._public

    def authorized_keys(self) -> asyncssh.SSHAuthorizedKeys:
        """What the front trusts (asyncssh's `authorized_client_keys`): certificates of
        this CA naming tollgate's principal, under any user name, and no key alone."""
        return asyncssh.import_authorized_keys(
            f'cert-authority,principals="{PRINCIPAL}" {self._public}\n')

    def issue(self, public_key: str, claims: dict[str, Any], minutes: int) -> Issued:
        """A certificate of `public_key` (an OpenSSH public key line) for the verified
        `claims`, valid for `minutes` from now, and no longer than the token."""
        key = _certifiable(public_key)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise CertificateError("the token names no subject: it identifies nobody")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise CertificateError("the token has no expiry (exp)")
        now = int(self._clock())
        valid_before = min(now + minutes * 60, int(expires))
        if valid_before <= now:
            raise CertificateError("the token has expired")
        kept = {name: claims[name] for name in self._kept if name in claims}
        serial = secrets.randbits(64)
        certificate = (
            SSHCertificateBuilder()
            .public_key(key).serial(serial).type(SSHCertificateType.USER)
            .key_id(subject.encode()).valid_principals([PRINCIPAL.encode()])
            .valid_after(now - _BACKDATE_SECONDS).valid_before(valid_before)
            .add_extension(b"permit-pty", b"")
            .add_extension(CLAIMS_EXTENSION.encode(), orjson.dumps(kept))
            .sign(self._key))
        line = certificate.public_bytes().decode()
        if len(line) > _MOST_LINE_CHARS:
            raise CertificateError(
                f"the token's claims make a certificate of {len(line)} characters; OpenSSH "
                f"reads at most {_MOST_LINE_CHARS}")
        return Issued(line, subject, serial, (PRINCIPAL,), valid_before, _fingerprint(key))

    def claims_of(self, certificate: str | bytes) -> dict[str, Any]:
        """The verified claims a certificate carries: one this CA signed, for tollgate's
        principal, valid now. `certificate` is its line (str) or its wire form (bytes, as
        a client sends it to log in). That the client holds the certified key is the SSH
        server's check, not this one."""
        found = _certificate(certificate)
        if found.type is not SSHCertificateType.USER:
            raise CertificateError("not a user certificate")
        try:
            signed_by = _public_line(found.signature_key())
            if signed_by != self._public:
                raise CertificateError("not signed by this gateway's user CA")
            found.verify_cert_signature()
        except (InvalidSignature, UnsupportedAlgorithm, ValueError):
            raise CertificateError("its signature does not verify") from None
        now = self._clock()
        if now < found.valid_after:
            raise CertificateError("not valid yet")
        if now >= found.valid_before:
            raise CertificateError("expired")
        if PRINCIPAL.encode() not in found.valid_principals:
            raise CertificateError(f"it does not name the principal {PRINCIPAL}")
        if found.critical_options:
            raise CertificateError("it carries critical options tollgate never issues")
        carried = found.extensions.get(CLAIMS_EXTENSION.encode())
        if carried is None:
            raise CertificateError(f"it carries no claims ({CLAIMS_EXTENSION})")
        try:
            claims = orjson.loads(carried)
        except orjson.JSONDecodeError:
            raise CertificateError(f"its {CLAIMS_EXTENSION} is not JSON") from None
        if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str) \
                or not claims["sub"]:
            raise CertificateError(f"its {CLAIMS_EXTENSION} names no subject")
        return claims


def _private_key(path: Path) -> SSHCertPrivateKeyTypes:
    """An unencrypted private key in OpenSSH's format (ssh-keygen's) or PEM."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read it ({exc.strerror})") from None
    for load in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
        try:
            loaded = load(data, None)
        except TypeError:
            raise KeyFileError(f"{path}: the key is encrypted; tollgate needs it "
                               "unencrypted (readable by tollgate alone)") from None
        except (ValueError, UnsupportedAlgorithm):
            continue
        if isinstance(loaded, _SIGNING):
            return loaded
        break
    raise KeyFileError(f"{path}: not an Ed25519, ECDSA or RSA private key in OpenSSH or PEM "
                       "format (ssh-keygen -t ed25519 -N '' -f FILE makes one)")


def _certifiable(line: str) -> SSHCertPublicKeyTypes:
    """The public key of an OpenSSH public key line, if tollgate certifies keys of its
    kind."""
    text = line.strip()
    found: object = None
    try:
        found = load_ssh_public_identity(text.encode())
    except UnsupportedAlgorithm:
        pass  # answered below, with its type
    except (ValueError, UnicodeEncodeError):
        raise CertificateError("not an OpenSSH public key line "
                               "(\"ssh-ed25519 AAAA...\")") from None
    if isinstance(found, SSHCertificate):
        raise CertificateError("a certificate, not a public key")
    if not isinstance(found, _CERTIFIED):
        raise CertificateError(f"keys of type {text.split()[0][:64]!r} are not certified "
                               "(Ed25519, ECDSA and RSA are)")
    if isinstance(found, rsa.RSAPublicKey) and found.key_size < _MIN_RSA_BITS:
        raise CertificateError(f"an RSA key of {found.key_size} bits is too weak "
                               f"(at least {_MIN_RSA_BITS})")
    return found


def _certificate(certificate: str | bytes) -> SSHCertificate:
    """A certificate from its line, or from its wire form (its key type comes first)."""
    try:
        if isinstance(certificate, bytes):
            length = int.from_bytes(certificate[:4], "big")
            kind = certificate[4:4 + length]
            line = kind + b" " + base64.b64encode(certificate)
        else:
            line = certificate.strip().encode()
        found = load_ssh_public_identity(line)
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError):
        raise CertificateError("not an OpenSSH certificate") from None
    if not isinstance(found, SSHCertificate):
        raise CertificateError("a public key, not a certificate")
    return found


def _public_line(key: SSHCertPublicKeyTypes) -> str:
    """A public key as OpenSSH writes it, without comment."""
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()


def _fingerprint(key: SSHCertPublicKeyTypes) -> str:
    digest = ssh_key_fingerprint(key, hashes.SHA256())
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# What a server does with a login's certificate: (user name, its claims or None, why it
# was refused or None) -> whether the login may go on.
CertifiedLogin = Callable[[str, dict[str, Any] | None, str | None], bool]


def read_certificates(conn: asyncssh.SSHServerConnection, ca: UserCA,
                      login: CertifiedLogin) -> None:
    """asyncssh checks a client's certificate (`ca`'s, tollgate's principal, in date) but
    never hands it to the server: `conn`'s check is wrapped to read back the claims it
    carries, and `login` is told them — on the login itself, not when the client only
    asks whether a key would do."""
    validate = conn.validate_public_key

    async def validated(username: str, key_data: bytes, msg: bytes,
                        signature: bytes) -> bool:
        if not await validate(username, key_data, msg, signature):
            return False
        try:
            claims = ca.claims_of(key_data)
        except CertificateError as exc:
            return bool(signature) and login(username, None, str(exc))
        return not signature or login(username, claims, None)

    conn.validate_public_key = validated  # type: ignore[method-assign]

