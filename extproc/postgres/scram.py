"""SCRAM-SHA-256 (RFC 5802, RFC 7677) as a client: the gateway's own login to a database.

With TLS, SCRAM-SHA-256-PLUS binds the exchange to the connection (`tls-server-end-point`,
RFC 5929: a hash of the server's certificate), so a relay that terminates TLS in between
cannot replay it. The agent never takes part: its token stops at the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import unicodedata

from cryptography import x509
from cryptography.hazmat.primitives import hashes

MECHANISM = "SCRAM-SHA-256"
MECHANISM_PLUS = "SCRAM-SHA-256-PLUS"


class ScramError(Exception):
    """The server's side of the exchange is malformed or does not prove it knows the key."""


def end_point_binding(certificate_der: bytes) -> bytes:
    """`tls-server-end-point` data: the certificate hashed with its signature's hash,
    SHA-256 where that is MD5 or SHA-1 (RFC 5929, section 4.1)."""
    algorithm = x509.load_der_x509_certificate(certificate_der).signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(certificate_der)
    return digest.finalize()


def _prepared(password: str) -> bytes:
    """The password as SASLprep would leave it, for the common cases: ASCII as it is,
    else NFKC (PostgreSQL itself falls back to the raw bytes where SASLprep fails)."""
    if password.isascii():
        return password.encode()
    return unicodedata.normalize("NFKC", password).encode("utf-8")


class ScramClient:
    """One SCRAM-SHA-256(-PLUS) exchange: `first()`, `final(server_first)`,
    `verify(server_final)`."""

    def __init__(self, password: str, binding: bytes | None = None,
                 binding_supported: bool = False, nonce: str | None = None) -> None:
        self._password = _prepared(password)
        self._binding = binding
        if binding is not None:
            self._header = b"p=tls-server-end-point,,"
        else:
            # "y": this client could bind but the server did not offer it (a downgrade
            # an attacker caused would then fail at the server).
            self._header = b"y,," if binding_supported else b"n,,"
        self._nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self._first_bare = f"n=,r={self._nonce}"
        self._auth_message = b""
        self._server_signature = b""

    @property
    def mechanism(self) -> str:
        return MECHANISM_PLUS if self._binding is not None else MECHANISM

    def first(self) -> bytes:
        return self._header + self._first_bare.encode()

    def final(self, server_first: bytes) -> bytes:
        try:
            attributes = dict(part.split("=", 1) for part in server_first.decode().split(","))
            nonce, salt = attributes["r"], base64.b64decode(attributes["s"], validate=True)
            iterations = int(attributes["i"])
        except (ValueError, KeyError, UnicodeDecodeError) as exc:
            raise ScramError(f"a malformed server-first message: {exc}") from None
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ScramError("the server's nonce does not extend ours")
        if not 1 <= iterations <= 10_000_000:
            raise ScramError(f"an iteration count of {iterations}")
        channel = base64.b64encode(self._header + (self._binding or b"")).decode()
        without_proof = f"c={channel},r={nonce}"
        self._auth_message = ",".join(
            (self._first_bare, server_first.decode(), without_proof)).encode()
        salted = hashlib.pbkdf2_hmac("sha256", self._password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        signature = hmac.digest(hashlib.sha256(client_key).digest(), self._auth_message,
                                "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self._server_signature = hmac.digest(server_key, self._auth_message, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        text = server_final.decode("utf-8", "replace")
        if text.startswith("e="):
            raise ScramError(f"the server refused the proof: {text[2:]}")
        if not text.startswith("v="):
            raise ScramError("a malformed server-final message")
        try:
            signature = base64.b64decode(text[2:].split(",")[0], validate=True)
        except ValueError:
            raise ScramError("a malformed server signature") from None
        if not hmac.compare_digest(signature, self._server_signature):
            raise ScramError("the server does not know the password (its signature is wrong)")
