"""Who decides: approvers' tokens, verified by tollgate as Envoy verifies agents' ones.

Approvers reach tollgate's admin port directly, so tollgate checks their tokens itself:
with the issuers, audiences and keys of the jwt_authn providers in the Envoy bootstrap
(`identity.envoy_bootstrap`; every listener's), read once at start, so one identity setup
serves agents and approvers. Keys come from a provider's `local_jwks` (inline or a file)
or its `remote_jwks` URI (fetched and cached). Only asymmetric algorithms are accepted,
and a token must name its subject and expire, no further ahead than the provider's
`max_lifetime` when it sets one (as Envoy checks it: from now, whatever `iat` says).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
import yaml

from extproc import envoy_bootstrap
from extproc.config import Identity
from extproc.identity import NO_SUBJECT, Authenticated, identity_of

ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512", "EdDSA"})
# Envoy's jwt_authn default clock skew.
_DEFAULT_SKEW = 60


class AuthError(Exception):
    """A request the admin API refuses for its token; 401 (no or bad token)."""


class VerifierError(Exception):
    """The bootstrap names no usable token provider (the message says why)."""


# Every refusal of a token the verifier reads begins so (pages and clients show it).
_UNVERIFIED = "the token does not verify"
# A token that is no JWT at all: PyJWT says "Not enough segments", "Invalid header
# padding", "Invalid crypto padding"...; its user needs to know what a JWT looks like.
NOT_A_JWT = (f"{_UNVERIFIED}: it is not a JWT (it should be three base64url parts "
             "separated by dots)")


def unverified(exc: AuthError) -> str:
    """A token refused, in one sentence under "the token does not verify" (what the
    verifier says may begin so already)."""
    text = str(exc)
    return text if text.startswith(_UNVERIFIED) else f"{_UNVERIFIED}: {text}"


@dataclass(frozen=True)
class _Provider:
    issuer: str | None
    audiences: tuple[str, ...]
    skew: int
    # The furthest ahead a token may expire (seconds; None: no bound).
    max_lifetime: float | None = None
    # (kid, the alg the key set declares or None, the key) for local key sets.
    keys: tuple[tuple[str | None, str | None, jwt.PyJWK], ...] = ()
    remote: jwt.PyJWKClient | None = None

    def key_for(self, kid: str | None, algorithm: str) -> Any:
        """The public key a token names (blocking when the keys are remote)."""
        if self.remote is not None:
            try:
                return (self.remote.get_signing_key(kid) if kid
                        else self.remote.get_signing_keys()[0]).key
            # Unreachable, or not a key set (not JSON: ValueError; no usable key:
            # PyJWKSetError, which is no PyJWKClientError).
            except (jwt.PyJWTError, ValueError) as exc:
                raise AuthError(f"the issuer's key set has no key for the token, or cannot "
                                f"be fetched ({exc})") from None
        # A key that declares no alg serves every algorithm of its type (an RSA key:
        # RS* and PS*), as Envoy takes it; a wrong type fails the signature check.
        for key_id, declared, key in self.keys:
            if kid in (key_id, None) and declared in (algorithm, None):
                return key.key
        raise AuthError(f"the token names key {kid!r} ({algorithm}), which is not in the "
                        "issuer's key set")


class Verifier:
    def __init__(self, providers: list[_Provider], settings: Identity) -> None:
        self._providers, self._settings = providers, settings

    @classmethod
    def from_bootstrap(cls, path: Path, settings: Identity) -> Verifier:
        try:
            bootstrap = envoy_bootstrap.load(path)
            configs = envoy_bootstrap.jwt_providers(bootstrap)
        # A bootstrap of another shape (KeyError, TypeError, AttributeError), or one
        # provider name configured two ways in different listeners (a ValueError).
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError,
                ValueError) as exc:
            raise VerifierError(f"{path}: cannot read its jwt_authn providers ({exc})") from None
        if not configs:
            raise VerifierError(f"{path}: no jwt_authn provider to verify approvers with")
        return cls([_provider(name, found, path) for name, found in configs.items()], settings)

    async def identity(self, authorization: str | None) -> Authenticated:
        """`input.identity` of the token in an Authorization header (AuthError if none
        verifies)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("an approver's token is needed: Authorization: Bearer <token>")
        identity = identity_of(await self.claims(token.strip()), self._settings)
        if not identity["authenticated"]:  # `sub` present but empty
            raise AuthError(NO_SUBJECT)
        return identity

    async def verdict(self, token: str | None, missing: str = "no token was given"
                      ) -> tuple[dict[str, Any] | None, str | None]:
        """The claims of an agent's token, or why it is refused, in the sentence its
        client is shown (`unverified`'s; `missing`: when there is no token): what every
        front that reads tokens itself (a database's password, SSH's, a stream's
        bearer) answers with."""
        try:
            if token is None:
                raise AuthError(missing)
            return await self.claims(token), None
        except AuthError as exc:
            return None, unverified(exc)

    async def claims(self, token: str) -> dict[str, Any]:
        """The claims of a token that verifies (AuthError if it does not): an approver's,
        or an agent's that arrived where Envoy cannot read it (PostgreSQL's password)."""
        try:
            header = jwt.get_unverified_header(token)
            unread = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError(NOT_A_JWT) from None
        issuer = unread.get("iss")
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise AuthError(f"{_UNVERIFIED}: it is signed with {algorithm!r}, which is not "
                            "accepted (only a key pair's: RS*, PS*, ES* or EdDSA)")
        provider = next((p for p in self._providers if p.issuer in (issuer, None)), None)
        if provider is None:
            raise AuthError(f"the token's issuer {issuer!r} is not trusted")
        key = (await asyncio.to_thread(provider.key_for, header.get("kid"), algorithm)
               if provider.remote else provider.key_for(header.get("kid"), algorithm))
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[algorithm], issuer=provider.issuer,
                audience=list(provider.audiences) or None, leeway=provider.skew,
                options={"require": ["exp", "sub"], "verify_aud": bool(provider.audiences)},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(_why(exc, unread, provider)) from None
        if provider.max_lifetime is not None and claims["exp"] - time.time() > (
                provider.max_lifetime):
            raise AuthError(f"{_UNVERIFIED}: it expires at {_utc(claims['exp'])}, more than "
                            f"{provider.max_lifetime:g} s ahead (the issuer's max_lifetime)")
        return claims


def _why(exc: jwt.PyJWTError, unread: dict[str, Any], provider: _Provider) -> str:
    """What PyJWT found wrong with a token, as a sentence its holder can act on, with
    the claims' values where they say more than PyJWT's words ("Signature has
    expired", "Invalid audience")."""
    now = time.time()
    if isinstance(exc, jwt.ExpiredSignatureError):
        why = f"it expired at {_utc(unread['exp'])} ({now - unread['exp']:.0f} s ago)"
    elif isinstance(exc, jwt.ImmatureSignatureError):
        claim = "nbf" if "(nbf)" in str(exc) else "iat"
        why = (f"it is not valid yet: its {claim} is {_utc(unread[claim])} "
               f"({unread[claim] - now:.0f} s from now)")
    elif isinstance(exc, jwt.InvalidAudienceError):
        why = (f"it is for another audience: its aud is {unread.get('aud')!r}, this gateway "
               f"accepts {', '.join(map(repr, provider.audiences))}")
    elif isinstance(exc, jwt.MissingRequiredClaimError):
        why = ("it never expires (no exp claim), and such tokens are not accepted"
               if exc.claim == "exp" else
               f"it has no {exc.claim} claim: it names no subject, whose token it is")
    elif isinstance(exc, jwt.InvalidSignatureError):
        why = ("its signature is not the issuer's (another key signed it, or it was changed "
               "after signing)")
    elif isinstance(exc, jwt.DecodeError):  # its signature's base64 ("Invalid crypto padding")
        return NOT_A_JWT
    else:
        why = str(exc)
    return f"{_UNVERIFIED}: {why}"


def _utc(epoch: Any) -> str:
    """A claim's time as people read it (a claim that is no number, as it is)."""
    try:
        at = datetime.datetime.fromtimestamp(float(epoch), datetime.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return repr(epoch)
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def _provider(name: str, found: dict[str, Any], path: Path) -> _Provider:
    local, remote = found.get("local_jwks"), found.get("remote_jwks")
    try:
        common = _Provider(issuer=found.get("issuer"),
                           audiences=tuple(found.get("audiences") or ()),
                           skew=int(found.get("clock_skew_seconds", _DEFAULT_SKEW)),
                           max_lifetime=_seconds(found.get("max_lifetime")))
        if local is not None:
            if "inline_string" in local:
                text = local["inline_string"]
            else:
                text = (path.parent / local["filename"]).read_text(encoding="utf-8")
            entries = json.loads(text)["keys"]
            return replace(common, keys=tuple(
                (entry.get("kid"), entry.get("alg"), jwt.PyJWK(entry)) for entry in entries))
        if remote is not None:
            return replace(common, remote=jwt.PyJWKClient(
                remote["http_uri"]["uri"], cache_keys=True, lifespan=300))
    except (OSError, KeyError, TypeError, ValueError, jwt.PyJWTError) as exc:
        raise VerifierError(f"{path}: provider {name}: unusable ({exc})") from None
    raise VerifierError(f"{path}: provider {name} has neither local_jwks nor remote_jwks")


def _seconds(duration: Any) -> float | None:
    """A protobuf Duration as the bootstrap's YAML writes it: "604800s", or
    {seconds, nanos}."""
    if duration is None:
        return None
    if isinstance(duration, str) and duration.endswith("s"):
        return float(duration[:-1])
    return duration["seconds"] + duration.get("nanos", 0) / 1e9
