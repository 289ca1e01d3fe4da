"""The tamper-evident chain: each record hashed with its predecessor's hash, per writer.

A writer (one tollgate process) numbers its records 1, 2, 3... and each record's hash
covers the previous record's hash, the writer, the number and the record's canonical
JSON. So an edited record no longer matches its hash, and a deleted, inserted or moved
one breaks the numbering or the link to its predecessor. Every so often the writer
signs a checkpoint (record N of this writer has hash H) with an Ed25519 key: a chain cut
short after a checkpoint, or rewritten whole by someone without the key, shows too.
Pruning old records leaves a signed `prune` statement naming the last pruned hash, which
the first remaining record links to; a range pruned from among kept records (a legal hold,
a target kept longer) leaves a signed `cut` statement naming its first and last record and
the last one's hash, which the next remaining record links to.

A writer's statements name the store they are about (its id, made with the store): an
anchor log shared by two stores holds each store to its own anchors only, and a store's
id cannot be changed without its signed statements saying which it was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from extproc.codecs import private_file

GENESIS = "0" * 64
"""The predecessor hash of a writer's first record."""


def canonical(content: dict[str, Any]) -> str:
    """The one text a record's content hashes as: JSON, keys sorted, no spaces, UTF-8.

    orjson sorts keys and writes floats the same way every time; integers beyond 64 bits
    (which a client's JSON may carry) are written by the standard library instead.
    """
    try:
        return orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        import json

        return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(prev_hash: str, writer: str, seq: int, content: str) -> str:
    """SHA-256 of the record in its place: predecessor, writer, number, content."""
    return hashlib.sha256(f"{prev_hash}\n{writer}\n{seq}\n{content}".encode()).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: `writer`'s record `seq` has `hash` (kind `checkpoint`), its
    records up to `seq` were pruned, the last with `hash` (kind `prune`), or its records
    `from_seq` to `seq` were, the last with `hash` (kind `cut`)."""

    writer: str
    seq: int
    kind: str
    hash: str
    signed_us: int
    key_id: str
    signature: str
    from_seq: int | None = None  # a cut's first record; None for every other kind
    # The store the statement is about (store.store_id); None: signed before stores had
    # ids, or not by a writer (a prune, a cut).
    store_id: str | None = None

    def message(self) -> bytes:
        return statement(self.kind, self.writer, self.seq, self.hash, self.signed_us,
                         self.from_seq, self.store_id)

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "writer": self.writer, "seq": self.seq, "kind": self.kind, "hash": self.hash,
            "signed_us": self.signed_us, "key_id": self.key_id, "signature": self.signature}
        if self.from_seq is not None:
            found["from_seq"] = self.from_seq
        if self.store_id is not None:
            found["store_id"] = self.store_id
        return found


def statement(kind: str, writer: str, seq: int, hash_: str, signed_us: int,
              from_seq: int | None = None, store_id: str | None = None) -> bytes:
    """What is signed. A cut's first record is in it; the other kinds' message is as it
    was before cuts existed, so the statements signed then still verify. A store id, when
    there is one, is a line of its own after the kind (one line more than any message
    without it), so it cannot be taken off or changed without the signature failing."""
    store = "" if store_id is None else f"store:{store_id}\n"
    if kind == "cut":
        return (f"tollgate-cut\n{store}{writer}\n{from_seq}\n{seq}\n{hash_}\n"
                f"{signed_us}").encode()
    return f"tollgate-{kind}\n{store}{writer}\n{seq}\n{hash_}\n{signed_us}".encode()


class SigningKeyError(Exception):
    """The signing key file cannot be read, made or used (the message says which)."""


class Signer:
    """Signs checkpoints with the audit key; `verify` checks them with its public half."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = Verifier(key.public_key())

    @classmethod
    def from_file(cls, path: Path, create: bool = False) -> Signer:
        """The key in `path` (PEM, PKCS#8); made there (mode 0600) when missing and
        `create` is set: checkpoints need a key from the first record on."""
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            if not create:
                raise SigningKeyError(f"{path}: no such signing key file") from None
            return cls(_create(path))
        except OSError as exc:
            raise SigningKeyError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except ValueError:
            raise SigningKeyError(f"{path}: not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{path}: not an Ed25519 key")
        return cls(key)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its key's raw bytes, for the writer process to sign with."""
        return _signer_of, (self._key.private_bytes_raw(),)

    @classmethod
    def generate(cls, path: Path) -> Signer:
        """A new key written to `path` (mode 0600); an existing file is never replaced."""
        if path.exists():
            raise SigningKeyError(f"{path}: already exists; a new key would not verify what "
                                  "the old one signed")
        return cls(_create(path))

    def derive(self, purpose: str) -> bytes:
        """A secret key for `purpose`, derived from the audit key: what only a holder of
        the audit key can have made (a spool file, spool.py) is told apart by it."""
        return hmac.digest(self._key.private_bytes_raw(), f"tollgate-{purpose}".encode(),
                           "sha256")

    def sign(self, kind: str, writer: str, seq: int, hash_: str, signed_us: int,
             from_seq: int | None = None, store_id: str | None = None) -> Checkpoint:
        signature = self._key.sign(statement(kind, writer, seq, hash_, signed_us, from_seq,
                                             store_id))
        return Checkpoint(writer, seq, kind, hash_, signed_us, self.public.key_id,
                          base64.b64encode(signature).decode(), from_seq, store_id)


def _signer_of(raw: bytes) -> Signer:
    return Signer(Ed25519PrivateKey.from_private_bytes(raw))


class Verifier:
    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    def valid(self, checkpoint: Checkpoint) -> bool:
        if checkpoint.key_id != self.key_id:
            return False
        try:
            self._key.verify(base64.b64decode(checkpoint.signature), checkpoint.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def from_public_file(cls, path: Path) -> Verifier:
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except OSError as exc:
            raise SigningKeyError(f"{path}: cannot read: {exc.strerror}") from None
        except ValueError:
            raise SigningKeyError(f"{path}: not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError(f"{path}: not an Ed25519 public key")
        return cls(key)

    def public_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _create(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        # Exclusive: of two processes starting at once, the first one's key stays, and
        # the other never reads it half written.
        private_file.write(path, pem, exclusive=True)
    except FileExistsError:
        return Signer.from_file(path)._key
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot create: {exc.strerror}") from None
    return key
