"""The public keys tokens are checked against: a provider's key set, read and kept current.

A key set is read whole or not at all: a document that is no JSON Web Key Set, or holds
no usable signing key, raises KeysError, and whoever asked keeps the keys it had. Which
keys may have signed a token is jwt_verify_lib's rule (Envoy's jwt_authn): a key whose
`kid` differs from the token's is skipped (either side may name none), as is one whose
`alg` differs from the token's (a key may name none) or whose type cannot make it.

Remote key sets (`RemoteKeys`) are fetched when first needed, again once `refresh`
seconds old (the provider's `cache_duration`, as Envoy refreshes them), and sooner for a
token naming a key the set lacks, but never twice within `refetch` seconds outside that
schedule: a token with a made-up `kid` costs the identity provider at most one fetch
per `refetch`. A fetch that fails keeps the keys already fetched, logs ERROR and counts
`tollgate_key_reload_failures_total`.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt

from extproc import metrics

log = logging.getLogger("tollgate.keys")

# The key type that makes each family of algorithms (RS256 needs an RSA key ...).
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
# The most a key set document may weigh: identity providers publish a few keys.
_MOST_BYTES = 1 << 20


class KeysError(Exception):
    """A key set that cannot be used (the message says why)."""


@dataclass(frozen=True)
class Key:
    kid: str | None
    # The algorithm the key set declares for it (None: any its type makes).
    alg: str | None
    jwk: jwt.PyJWK


KeySet = tuple[Key, ...]


def parse(text: str | bytes) -> KeySet:
    """The signing keys of a JSON Web Key Set document (KeysError: none usable)."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise KeysError(f"not JSON ({exc})") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeysError('not a JSON Web Key Set (an object with a "keys" list)')
    keys, unusable = [], []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            keys.append(Key(entry.get("kid"), entry.get("alg"), jwt.PyJWK(entry)))
        except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
            unusable.append(f"{entry.get('kid')!r}: {exc}")
    if not keys:
        raise KeysError("no usable signing key" + (f" ({'; '.join(unusable)})"
                                                   if unusable else ""))
    return tuple(keys)


def kids(keys: KeySet) -> str:
    """The keys' ids, for the log."""
    return ", ".join(repr(key.kid) for key in keys)


def candidates(keys: KeySet, kid: str | None, algorithm: str) -> list[Any]:
    """The public keys that may have signed a token naming `kid` and `algorithm`."""
    needed = _KEY_TYPES.get(algorithm[:2])
    return [key.jwk.key for key in keys
            if None in (key.kid, kid) or key.kid == kid
            if key.alg in (None, algorithm) and key.jwk.key_type == needed]


def failed(problem: str, kept: str) -> None:
    """Keys not (re)loaded, and what still verifies (`kept`): ERROR, counted."""
    metrics.key_reload_failed()
    log.error("signing keys not reloaded: %s; %s", problem,
              f"still verifying with {kept}" if kept else "no keys to verify with")


class RemoteKeys:
    """A provider's `remote_jwks`, fetched on demand (blocking: call it in a thread)."""

    def __init__(self, uri: str, refresh: float, refetch: float, timeout: float) -> None:
        if urllib.parse.urlsplit(uri).scheme not in ("http", "https"):
            raise KeysError(f"{uri!r} is no http(s) URI")
        self.source = (uri, refresh, refetch, timeout)
        self._keys: KeySet | None = None
        self._body = b""
        self._fetched = self._tried = -math.inf  # monotonic seconds
        self._problem = "not fetched yet"
        self._lock = threading.Lock()

    def expire(self) -> None:
        """Fetch again at the next use (SIGHUP), whenever the last fetch was."""
        with self._lock:
            self._fetched = self._tried = -math.inf

    def keys(self, kid: str | None) -> KeySet:
        """The current keys, fetched first when due (KeysError: none fetched yet)."""
        _, refresh, refetch, _ = self.source
        with self._lock:
            now = time.monotonic()
            may_refetch = now - self._tried >= refetch
            # Due by the schedule: fetched after `refresh`, and retried after `refetch`
            # when that fetch failed.
            due = now - self._fetched >= refresh and (
                may_refetch or self._tried == self._fetched)
            lacking = kid is not None and self._keys is not None and all(
                key.kid != kid for key in self._keys)
            if due or (lacking and may_refetch):
                self._fetch(now)
            if self._keys is None:
                raise KeysError(self._problem)
            return self._keys

    def _fetch(self, now: float) -> None:
        uri, _, _, timeout = self.source
        self._tried = now
        try:
            with urllib.request.urlopen(uri, timeout=timeout) as response:
                body = response.read(_MOST_BYTES + 1)
            if len(body) > _MOST_BYTES:
                raise KeysError(f"more than {_MOST_BYTES} bytes: no key set")
            keys = parse(body)
        # HTTPError, URLError and timeouts are OSErrors; a garbled answer, HTTPException.
        except (OSError, http.client.HTTPException, KeysError) as exc:
            self._problem = f"{uri} cannot be fetched ({exc})"
            failed(self._problem, f"keys {kids(self._keys)}" if self._keys else "")
            return
        if body != self._body:
            log.info("signing keys fetched from %s: %s", uri, kids(keys))
        self._keys, self._body, self._fetched = keys, body, now
