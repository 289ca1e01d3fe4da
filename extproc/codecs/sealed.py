"""Sealed bytes: encrypted and authenticated under a secret key (AES-256-GCM).

What tollgate keeps on disk before the record's writer has masked it (the journal, the
spool) holds exchanges as they crossed the wire: bodies, headers, rows, secrets the
policy let through. Sealed, a copy of those files (a backup, a volume snapshot, a disk
read by another account) shows nothing of them to whoever lacks the audit key, and a
frame damaged or made with another key is told apart before anything reads it.

Each seal draws a fresh 96-bit nonce from the system's generator: the key is shared by
every process of a deployment, so a counter could repeat across them; random nonces
stay unique well past the 2^32 messages a key is good for. `bound` is data the seal
vouches for without hiding (a frame's number and length), so a sealed part cannot be
moved under another header.
"""

from __future__ import annotations

import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = NONCE_BYTES + TAG_BYTES


class Sealer:
    """Seals and opens under one key (any secret of 32 bytes or more: the AES key is
    derived from it, so the key may also serve elsewhere, as an HMAC key)."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a sealing key needs at least 32 bytes")
        self._aead = AESGCM(hmac.digest(key, b"tollgate-sealed AES-256-GCM", "sha256"))

    def seal(self, data: bytes, bound: bytes = b"") -> bytes:
        """`data` sealed: its nonce, ciphertext and tag (OVERHEAD bytes longer)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, bound or None)

    def open(self, sealed: bytes, bound: bytes = b"") -> bytes | None:
        """What `seal` sealed with this key and `bound`; None for anything else (damaged,
        cut short, sealed with another key or under another `bound`)."""
        if len(sealed) < OVERHEAD:
            return None
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                      bound or None)
        except InvalidTag:
            return None
