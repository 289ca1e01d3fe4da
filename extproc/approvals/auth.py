"""Who decides: approvers' tokens, verified by tollgate as Envoy verifies agents' ones.

Approvers reach tollgate's admin port directly, so tollgate checks their tokens itself:
with the issuers, audiences and keys of the jwt_authn providers in the Envoy bootstrap
(`identity.envoy_bootstrap`; every listener's), so one identity setup serves agents and
approvers; so do the agents' tokens that arrive where Envoy cannot read them (a
database's password, SSH's, the egress proxy's). Keys come from a provider's
`local_jwks` (inline or a file) or its `remote_jwks` URI (approvals/keys.py). They are
read at start and again by `reload` (approvals/key_reload.py: when the bootstrap or a
key file changes, and on SIGHUP); a reload that fails keeps the keys read before.

The rules are jwt_authn's where Envoy checks too (jwt_verify_lib): `iat`, `nbf` and `exp`
are JSON numbers of seconds from 0 to 2^64 ("1999999999", a string, is refused), `nbf`
and `exp` are checked with the provider's clock skew, `iat` is not (a token issued "in
the future" passes); `iss`, `sub` and `jti` are strings, `aud` a string or a list of
them. And tollgate's own: only asymmetric algorithms are accepted, and a token must
name its subject and expire, no further ahead than the provider's `max_lifetime` when
it sets one (as Envoy checks it: from now, whatever `iat` says). Whatever a token holds,
its refusal is an AuthError saying why (a door's 401), never another exception.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
import yaml

from extproc import envoy_bootstrap
from extproc.approvals import keys as jwks
from extproc.config import Identity
from extproc.identity import NO_SUBJECT, Authenticated, identity_of

log = logging.getLogger("tollgate.keys")

ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512", "EdDSA"})
# Envoy's jwt_authn defaults: clock skew; how long a remote key set is cached; the
# fetch's timeout, which Envoy requires (tollgate's own).
_DEFAULT_SKEW = 60
_DEFAULT_CACHE_SECONDS = 600.0
_DEFAULT_FETCH_SECONDS = 5.0
# jwt_verify_lib reads a time claim as a number below 2^64 (not negative).
_TIME_CLAIMS = ("iat", "nbf", "exp")
_STRING_CLAIMS = ("iss", "sub", "jti")
_MOST_SECONDS = 2.0 ** 64


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
    name: str
    issuer: str | None
    audiences: tuple[str, ...]
    skew: int
    # The furthest ahead a token may expire (seconds; None: no bound).
    max_lifetime: float | None = None
    # A local key set's keys, and the file they were read from (None: inline).
    keys: jwks.KeySet = ()
    file: Path | None = None
    remote: jwks.RemoteKeys | None = None

    async def key_set(self, kid: str | None) -> jwks.KeySet:
        """The keys a token naming `kid` is checked against (remote ones are fetched
        when due, in a thread: fetching blocks)."""
        if self.remote is None:
            return self.keys
        try:
            return await asyncio.to_thread(self.remote.keys, kid)
        except jwks.KeysError as exc:
            raise AuthError(f"the issuer's key set cannot be fetched, so no key verifies "
                            f"the token ({exc})") from None

    def described(self) -> str:
        return (f"{self.name}: {self.remote.source[0]}" if self.remote is not None
                else f"{self.name}: keys {jwks.kids(self.keys)}")


class Verifier:
    """Tokens checked against the jwt_authn providers of one Envoy bootstrap, whose keys
    `reload` reads again (every door of a process shares one Verifier)."""

    def __init__(self, path: Path, settings: Identity, providers: list[_Provider]) -> None:
        self._path, self._settings, self._providers = path, settings, providers

    @classmethod
    def from_bootstrap(cls, path: Path, settings: Identity) -> Verifier:
        return cls(path, settings, _read(path, settings, {}))

    def files(self) -> list[Path]:
        """What the keys are read from: the bootstrap, and its providers' key files."""
        return [self._path, *(p.file for p in self._providers if p.file is not None)]

    def reload(self, why: str, *, refetch: bool = False) -> bool:
        """Read the bootstrap's providers and keys again; True when they replaced the old
        ones. A remote key set already fetched is kept (fetched again at once with
        `refetch`, as SIGHUP asks). A failure keeps the old keys: logged, counted,
        never raised."""
        remotes = {p.remote.source: p.remote for p in self._providers if p.remote}
        kept = "; ".join(p.described() for p in self._providers)
        try:
            providers = _read(self._path, self._settings, remotes)
        except VerifierError as exc:
            jwks.failed(f"{exc} ({why})", kept)
            return False
        except Exception as exc:  # a mistake here must not stop the service either
            log.exception("signing keys: unexpected error reading %s", self._path)
            jwks.failed(f"{self._path}: {exc!r} ({why})", kept)
            return False
        if refetch:
            for provider in providers:
                if provider.remote is not None:
                    provider.remote.expire()
        self._providers = providers
        log.info("signing keys reloaded (%s): %s", why,
                 "; ".join(p.described() for p in providers))
        return True

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
            return await self._claims(token)
        except AuthError:
            raise
        except Exception:  # a token this code did not foresee: refused, never a crash
            log.exception("a token could not be checked")
            raise AuthError(f"{_UNVERIFIED}: tollgate could not check it (its log says "
                            "why)") from None

    async def _claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            unread = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError(NOT_A_JWT) from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise AuthError(f"{_UNVERIFIED}: it is signed with {algorithm!r}, which is not "
                            "accepted (only a key pair's: RS*, PS*, ES* or EdDSA)")
        _check_types(unread)
        issuer = unread.get("iss")
        provider = next((p for p in self._providers if p.issuer in (issuer, None)), None)
        if provider is None:
            raise AuthError(f"the token's issuer {issuer!r} is not trusted")
        kid = header.get("kid")
        candidates = jwks.candidates(await provider.key_set(kid), kid, algorithm)
        if not candidates:
            raise AuthError(f"the token names key {kid!r} ({algorithm}), which is not in "
                            "the issuer's key set")
        claims = _decoded(token, algorithm, candidates, unread, provider)
        if provider.max_lifetime is not None and claims["exp"] - time.time() > (
                provider.max_lifetime):
            raise AuthError(f"{_UNVERIFIED}: it expires at {_utc(claims['exp'])}, more than "
                            f"{provider.max_lifetime:g} s ahead (the issuer's max_lifetime)")
        return claims


def _check_types(unread: dict[str, Any]) -> None:
    """jwt_verify_lib's reading of the registered claims: what it refuses, refused."""
    for claim in _TIME_CLAIMS:
        value = unread.get(claim)
        if claim in unread and (isinstance(value, bool) or not isinstance(value, int | float)
                                or not 0 <= value < _MOST_SECONDS):
            raise AuthError(f"{_UNVERIFIED}: its {claim} is {value!r}, not a time: a JSON "
                            f"number of seconds since 1970, unquoted (\"{claim}\": "
                            "1767225600)")
    for claim in _STRING_CLAIMS:
        if claim in unread and not isinstance(unread[claim], str):
            raise AuthError(f"{_UNVERIFIED}: its {claim} is {unread[claim]!r}, not a string")
    audience = unread.get("aud")
    if "aud" in unread and not (isinstance(audience, str) or (
            isinstance(audience, list) and all(isinstance(a, str) for a in audience))):
        raise AuthError(f"{_UNVERIFIED}: its aud is {audience!r}, not a string or a list "
                        "of strings")


def _decoded(token: str, algorithm: str, candidates: list[Any], unread: dict[str, Any],
             provider: _Provider) -> dict[str, Any]:
    """The claims, checked with the first key whose signature matches (a token naming no
    key may be any key's, as Envoy tries them all)."""
    refused: jwt.PyJWTError | None = None
    for key in candidates:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[algorithm], issuer=provider.issuer,
                audience=list(provider.audiences) or None, leeway=provider.skew,
                options={"require": ["exp", "sub"], "verify_iat": False,
                         "verify_aud": bool(provider.audiences)},
            )
            return claims
        except (jwt.InvalidSignatureError, jwt.InvalidKeyError) as exc:
            refused = exc
        except jwt.PyJWTError as exc:
            raise AuthError(_why(exc, unread, provider)) from None
    assert refused is not None
    raise AuthError(_why(refused, unread, provider))


def _why(exc: jwt.PyJWTError, unread: dict[str, Any], provider: _Provider) -> str:
    """What PyJWT found wrong with a token, as a sentence its holder can act on, with
    the claims' values where they say more than PyJWT's words ("Signature has
    expired", "Invalid audience")."""
    now = time.time()
    if isinstance(exc, jwt.ExpiredSignatureError):
        why = f"it expired at {_utc(unread['exp'])} ({now - unread['exp']:.0f} s ago)"
    elif isinstance(exc, jwt.ImmatureSignatureError):  # nbf (iat is not checked)
        why = (f"it is not valid yet: its nbf is {_utc(unread['nbf'])} "
               f"({unread['nbf'] - now:.0f} s from now)")
    elif isinstance(exc, jwt.InvalidAudienceError):
        why = (f"it is for another audience: its aud is {unread.get('aud')!r}, this gateway "
               f"accepts {', '.join(map(repr, provider.audiences))}")
    elif isinstance(exc, jwt.MissingRequiredClaimError):
        why = ("it never expires (no exp claim), and such tokens are not accepted"
               if exc.claim == "exp" else
               f"it has no {exc.claim} claim: it names no subject, whose token it is")
    elif isinstance(exc, jwt.InvalidSignatureError | jwt.InvalidKeyError):
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


def _read(path: Path, settings: Identity,
          remotes: Mapping[tuple[str, float, float, float], jwks.RemoteKeys]
          ) -> list[_Provider]:
    """The bootstrap's providers, their keys read (remote ones: those of `remotes`, by
    source, are kept with what they fetched)."""
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
    return [_provider(name, found, path, settings, remotes) for name, found in configs.items()]


def _provider(name: str, found: dict[str, Any], path: Path, settings: Identity,
              remotes: Mapping[tuple[str, float, float, float], jwks.RemoteKeys]
              ) -> _Provider:
    local, remote = found.get("local_jwks"), found.get("remote_jwks")
    try:
        common = _Provider(name=name, issuer=found.get("issuer"),
                           audiences=tuple(found.get("audiences") or ()),
                           skew=int(found.get("clock_skew_seconds", _DEFAULT_SKEW)),
                           max_lifetime=_seconds(found.get("max_lifetime")))
        if local is not None:
            if "inline_string" in local:
                return replace(common, keys=jwks.parse(local["inline_string"]))
            file = path.parent / local["filename"]
            try:
                return replace(common, keys=jwks.parse(file.read_bytes()), file=file)
            except (OSError, jwks.KeysError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else exc
                raise VerifierError(f"{path}: provider {name}: key file {file}: {why}") \
                    from None
        if remote is not None:
            fetcher = jwks.RemoteKeys(
                remote["http_uri"]["uri"],
                _seconds(remote.get("cache_duration")) or _DEFAULT_CACHE_SECONDS,
                settings.remote_keys_refetch_seconds,
                _seconds(remote["http_uri"].get("timeout")) or _DEFAULT_FETCH_SECONDS)
            return replace(common, remote=remotes.get(fetcher.source, fetcher))
    except (OSError, KeyError, TypeError, ValueError, jwks.KeysError) as exc:
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
