"""Upstream tokens asked of an authorization server: RFC 8693 token exchange, or the client
credentials grant, cached until shortly before they expire.

A target with such a credential is reached with a token made for it (audience- or
resource-bound), never with the agent's: the agent's token names the gateway as its
audience, and an upstream that accepted it could replay it anywhere else that does.
tollgate is a confidential client of the authorization server (client_secret_basic).

- token_exchange: the agent's verified token is the subject; the token obtained acts for
  that agent (its `sub`), so it is cached per subject token (a sha256 of it, never the
  token) and per target, and never outlives the subject token's own `exp`.
- client_credentials: the gateway's own token for the target, shared by every agent.

Bounded: each call to the token endpoint has a timeout, one exchange per key runs at a
time (concurrent requests wait for it), the cache holds at most MAX_CACHED tokens. Any
failure raises TokenUnavailable with a one-line reason for the agent's 503 and the
record; the request is never forwarded without the exchanged token. Neither the client
secret nor a token ever appears in a message (credentials.py logs them `redacted`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp
import orjson

from extproc.config import Credential

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# Tokens are dropped this long before they expire (at most a tenth of their lifetime),
# so that one never expires between the cache and the upstream.
EXPIRY_MARGIN = 30.0
MAX_CACHED = 10_000
# At most this much of a refusing token endpoint's answer is read.
_MAX_ANSWER = 64 * 1024
log = logging.getLogger("tollgate.credentials")


class TokenUnavailable(Exception):
    """No token for the upstream: a one-line reason, without secret or token."""


class Subject(NamedTuple):
    """What token exchange trades for the upstream's token: the agent's verified token,
    and when it expires (`exp`; None: it names none)."""

    token: str
    exp: float | None


def verified_subject(claims: dict[str, Any] | None, headers: dict[str, str]
                     ) -> Subject | None:
    """The agent's bearer token, when Envoy's jwt_authn verified it (its claims are here)
    and kept the header (`forward: true`, which the bootstrap sets when a target exchanges
    tokens). It never goes upstream."""
    value = headers.get("authorization", "")
    if claims is None or value[:7].lower() != "bearer ":
        return None
    token = value[7:].strip()
    # The header's token must be the one whose claims Envoy verified (jwt_authn also
    # reads `access_token` from the query): another would be traded for another's.
    payload = _payload(token)
    if not isinstance(payload, dict) or any(payload.get(k) != claims.get(k) for k in _SAME):
        return None
    exp = claims.get("exp")
    return Subject(token, exp if isinstance(exp, int | float) and not isinstance(exp, bool)
                   else None)


# The claims that tell one token from another (Envoy hands the verified ones over as a
# protobuf Struct: numbers as floats, which compare equal to the payload's integers).
_SAME = ("iss", "sub", "aud", "jti", "iat", "exp")


def _payload(token: str) -> Any:
    """A JWT's payload, decoded (None: it is no JWT)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        return orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None


@dataclass(frozen=True, slots=True)
class _Cached:
    token: str
    until: float  # clock time after which it is asked again


async def _post(url: str, form: dict[str, str], authorization: str) -> tuple[int, Any]:
    """POST a form to the token endpoint: its status and JSON answer (None if not JSON)."""
    headers = {"accept": "application/json", "authorization": authorization}
    async with aiohttp.ClientSession() as session, \
            session.post(url, data=form, headers=headers) as answer:
        body = await answer.content.read(_MAX_ANSWER)
        try:
            return answer.status, json.loads(body)
        except ValueError:
            return answer.status, None


class TokenSource:
    """One target's upstream tokens, from its credential's token endpoint."""

    def __init__(self, target: str, credential: Credential, *,
                 clock: Callable[[], float] = time.time) -> None:
        assert credential.exchanged and credential.token_url and credential.client_id
        self._target, self._credential = target, credential
        self.clock = clock  # the cache's time (tests move it)
        self._cache: dict[str, _Cached] = {}
        self._pending: dict[str, asyncio.Future[str]] = {}

    def __repr__(self) -> str:
        return f"TokenSource({self._target!r}, {self._credential.type}, {len(self._cache)} cached)"

    async def token(self, client_secret: str, subject: Subject | None) -> str:
        """The access token for the upstream: cached, or asked for now (TokenUnavailable).

        `subject` is the agent's verified token (token_exchange needs it) and its `exp`,
        past which its exchanged token is not kept.
        """
        # client_credentials: the gateway's own token, whoever asks.
        traded = subject if self._credential.type == "token_exchange" else None
        if self._credential.type == "token_exchange" and (traded is None or not traded.token):
            raise TokenUnavailable(f"target {self._target!r} exchanges the agent's token "
                                   "for its own, and this request carries none")
        key = hashlib.sha256(traded.token.encode()).hexdigest() if traded else ""
        cached = self._cache.get(key)
        if cached is not None and cached.until > self.clock():
            return cached.token
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            token, lifetime = await self._ask(client_secret, traded.token if traded else None)
            self._keep(key, token, lifetime, traded.exp if traded else None)
            future.set_result(token)
            return token
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, none is required
            raise
        except BaseException:  # this request was cancelled: its waiters fail too
            future.set_exception(TokenUnavailable(f"target {self._target!r}: the token "
                                                  "request was cancelled"))
            future.exception()
            raise
        finally:
            del self._pending[key]

    def rejected(self, token: str) -> bool:
        """The upstream refused `token` (401: revoked, or its grant changed before its
        expiry): it is no longer served from the cache, so the next request asks anew
        rather than failing until it expires. Whether it was cached."""
        stale = [key for key, cached in self._cache.items() if cached.token == token]
        for key in stale:
            del self._cache[key]
        if stale:
            log.info("the upstream of target %r refused its token (401): asked anew next "
                     "time", self._target)
        return bool(stale)

    def _keep(self, key: str, token: str, lifetime: float | None,
              subject_exp: float | None) -> None:
        """Cache a token until shortly before it (or its subject token) expires."""
        if lifetime is None:
            return  # the endpoint said nothing of its lifetime: asked again next time
        now = self.clock()
        until = now + lifetime - min(EXPIRY_MARGIN, lifetime / 10)
        if subject_exp is not None:
            until = min(until, subject_exp)
        if until <= now:
            return
        if len(self._cache) >= MAX_CACHED:
            self._cache = {k: v for k, v in self._cache.items() if v.until > now}
            while len(self._cache) >= MAX_CACHED:  # still full: the oldest go first
                del self._cache[next(iter(self._cache))]
        self._cache[key] = _Cached(token, until)

    async def _ask(self, client_secret: str, subject_token: str | None) -> tuple[str, float | None]:
        credential = self._credential
        form = {"grant_type": TOKEN_EXCHANGE_GRANT if subject_token is not None
                else "client_credentials"}
        if subject_token is not None:
            form["subject_token"] = subject_token
            form["subject_token_type"] = JWT_TOKEN_TYPE
            form["requested_token_type"] = ACCESS_TOKEN_TYPE
        for key in ("audience", "resource", "scope"):
            value = getattr(credential, key)
            if value is not None:
                form[key] = value
        assert credential.token_url and credential.client_id
        # client_secret_basic: both form-urlencoded first (RFC 6749 section 2.3.1).
        pair = f"{quote(credential.client_id, safe='')}:{quote(client_secret, safe='')}"
        authorization = "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")
        where = f"target {self._target!r}: token endpoint {credential.token_url}"
        try:
            async with asyncio.timeout(credential.timeout):
                status, answer = await _post(credential.token_url, form, authorization)
        except TimeoutError:
            raise TokenUnavailable(f"{where} did not answer within "
                                   f"{credential.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise TokenUnavailable(f"{where} cannot be reached: {type(exc).__name__}") from None
        return _token_of(where, status, answer)


def _token_of(where: str, status: int, answer: Any) -> tuple[str, float | None]:
    """The access token and its lifetime in a token endpoint's answer, or why there is none."""
    if status != 200:
        error = answer.get("error") if isinstance(answer, dict) else None
        reason = f" ({error})" if isinstance(error, str) and error.isprintable() \
            and len(error) < 100 else ""
        raise TokenUnavailable(f"{where} refused: HTTP {status}{reason}")
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
        raise TokenUnavailable(f"{where} answered without an access_token")
    token_type = answer.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenUnavailable(f"{where} issued a token of type {token_type!r}, not Bearer")
    token = answer["access_token"]
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise TokenUnavailable(f"{where} issued an access token that is not a bearer token")
    lifetime = answer.get("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = None
    return token, lifetime
