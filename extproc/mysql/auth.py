"""What a client sends to prove it knows a password: the gateway's own login to a
database (the agent's credential stops at the gateway).

mysql_native_password and caching_sha2_password's fast path answer the server's
scramble with a hash the server can check against what it stores, so the password
never crosses the wire; mysql_clear_password sends it as it is (over TLS only, which
is the caller's to ensure). An empty password answers with nothing: the servers read an
empty response as "no password".
"""

from __future__ import annotations

import hashlib

NATIVE_PASSWORD = "mysql_native_password"
CACHING_SHA2_PASSWORD = "caching_sha2_password"
CLEAR_PASSWORD = "mysql_clear_password"

# caching_sha2_password's AuthMoreData states (and the client's request for the key).
CACHING_SHA2_REQUEST_PUBLIC_KEY = 0x02
CACHING_SHA2_FAST_AUTH_SUCCESS = 0x03
CACHING_SHA2_PERFORM_FULL_AUTHENTICATION = 0x04

SCRAMBLE_LENGTH = 20


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def native_password(password: bytes, scramble: bytes) -> bytes:
    """SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))): the server stores
    SHA1(SHA1(password)), so it can undo the XOR and check the result hashes to it.
    `scramble`: the 20 bytes, without an AuthSwitchRequest's trailing NUL."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password).digest()
    stage2 = hashlib.sha1(stage1).digest()
    return _xor(stage1, hashlib.sha1(scramble + stage2).digest())


def caching_sha2_fast(password: bytes, scramble: bytes) -> bytes:
    """SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble): the answer the
    server checks against its cache (CACHING_SHA2_FAST_AUTH_SUCCESS when it had the
    entry; else CACHING_SHA2_PERFORM_FULL_AUTHENTICATION, and the password must follow
    over TLS or under the server's RSA key)."""
    if not password:
        return b""
    stage1 = hashlib.sha256(password).digest()
    stage2 = hashlib.sha256(stage1).digest()
    return _xor(stage1, hashlib.sha256(stage2 + scramble).digest())


def clear_password(password: bytes) -> bytes:
    """mysql_clear_password's answer, and caching_sha2_password's full authentication
    over TLS: the password itself, NUL-terminated."""
    return password + b"\x00"


def auth_response(plugin: str, password: bytes, scramble: bytes) -> bytes:
    """The answer `plugin` computes, for the handshake response or an AuthSwitchRequest;
    ValueError for a plugin the gateway does not speak."""
    if plugin == NATIVE_PASSWORD:
        return native_password(password, scramble)
    if plugin == CACHING_SHA2_PASSWORD:
        return caching_sha2_fast(password, scramble)
    if plugin == CLEAR_PASSWORD:
        return clear_password(password)
    raise ValueError(f"the auth plugin {plugin!r}, which tollgate does not speak")
