"""Admin sessions as a signed cookie: who signed in, and until when, kept by the browser.

The cookie holds the verified ID token's claims that make an identity (identity_of) and
the session's end, signed with HMAC-SHA256 under one of `admin.oidc.session_key_file`'s
keys: the first signs, each verifies (named by a short id), so replicas sharing the file
share sessions and a key is rotated by adding a new first line. Nothing here is secret
from its holder; what a tampered or expired cookie says is never believed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("tollgate.admin")

SESSION_COOKIE = "tollgate_session"
# Browsers keep a cookie of up to 4096 bytes; a session beyond it (a huge groups claim)
# would silently not be kept, so it is refused at sign-in, saying why.
_MOST_COOKIE_BYTES = 4000
_LEAST_KEY_BYTES = 32
_VERSION = "v1"


class SessionKeyError(Exception):
    """The session key file cannot be read or made (the message says why)."""


class SessionRefused(Exception):
    """A cookie that is no session of ours (tampered, expired, signed by a dropped key)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def read_keys(path: Path) -> list[bytes]:
    """The keys of `path`, first the signing one; the file is made (0600, one random key)
    when missing."""
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as made:
                made.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            log.info("admin sessions: made a signing key in %s", path)
        except FileExistsError:  # another worker or replica made it first
            pass
        except OSError as exc:
            raise SessionKeyError(f"admin.oidc.session_key_file {path}: cannot make it "
                                  f"({exc.strerror or exc})") from None
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionKeyError(f"admin.oidc.session_key_file {path}: cannot read it "
                              f"({exc})") from None
    keys = [_key(line, path, number) for number, line in enumerate(lines, 1)
            if line and not line.startswith("#")]
    if not keys:
        raise SessionKeyError(f"admin.oidc.session_key_file {path}: holds no key (one a "
                              "line: `head -c 32 /dev/urandom | base64` makes one)")
    return keys


def _key(line: str, path: Path, number: int) -> bytes:
    try:
        key = bytes.fromhex(line) if all(c in "0123456789abcdefABCDEF" for c in line) \
            else base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < _LEAST_KEY_BYTES:
        raise SessionKeyError(f"admin.oidc.session_key_file {path}: line {number} is no key "
                              f"of {_LEAST_KEY_BYTES} bytes or more in base64 or hex (`head "
                              "-c 32 /dev/urandom | base64` makes one)")
    return key


class Sealer:
    """Values signed with the first key and checked with any: sessions' cookies and the
    sign-in's own short-lived state (`purpose` keeps one from passing for the other)."""

    def __init__(self, keys: list[bytes]) -> None:
        self._keys = {hashlib.sha256(key).hexdigest()[:8]: key for key in keys}
        self._signing = hashlib.sha256(keys[0]).hexdigest()[:8]

    def seal(self, purpose: str, content: dict[str, Any], seconds: float) -> str:
        body = _b64(orjson.dumps({"p": purpose, "exp": int(time.time() + seconds),
                                  "c": content}))
        head = f"{_VERSION}.{self._signing}.{body}"
        sealed = f"{head}.{self._mac(self._keys[self._signing], head)}"
        if len(sealed) > _MOST_COOKIE_BYTES:
            raise SessionRefused(f"the session would take {len(sealed)} bytes, more than a "
                                 f"browser keeps in a cookie ({_MOST_COOKIE_BYTES}): the "
                                 "provider's token carries too many claims or groups")
        return sealed

    def open(self, purpose: str, sealed: str) -> dict[str, Any]:
        """What `seal` sealed for `purpose`, still in time (SessionRefused otherwise)."""
        version, kid, body, mac = [*sealed.split("."), "", "", ""][:4]
        key = self._keys.get(kid)
        if version != _VERSION or key is None or not hmac.compare_digest(
                mac, self._mac(key, f"{version}.{kid}.{body}")):
            raise SessionRefused("the session cookie is not signed by this gateway's keys")
        try:
            opened = orjson.loads(_unb64(body))
        except (binascii.Error, ValueError):
            raise SessionRefused("the session cookie cannot be read") from None
        if opened.get("p") != purpose or not isinstance(opened.get("c"), dict):
            raise SessionRefused("the cookie is not a session")
        if not isinstance(opened.get("exp"), int) or opened["exp"] <= time.time():
            raise SessionRefused("the session has ended: sign in again")
        content: dict[str, Any] = opened["c"]
        return content

    @staticmethod
    def _mac(key: bytes, text: str) -> str:
        return _b64(hmac.new(key, text.encode(), hashlib.sha256).digest())
