"""The OpenID Connect provider the admin pages and the CLI sign in with: its discovery
document, its key set, and the authorization code flow with PKCE (RFC 7636), built on
authlib (its PKCE and ID token rules) and joserfc (authlib's JOSE, for the signature).

Everything is read from the provider when first needed and kept: tollgate starts whether or
not the provider is up, and a sign-in while it is down says so. An ID token is believed only
with the provider's signature (its JWKS, fetched again for a key it does not know, at most
every `_REFETCH_SECONDS`), its issuer, this client as audience, the sign-in's nonce, in time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from extproc.config import Oidc

if TYPE_CHECKING:
    from joserfc.jwk import KeySet

# authlib and joserfc (~0.4 s of CPU to import, cryptography's JOSE) are imported where a
# sign-in needs them: every tollgate process imports this module, few sign anyone in.

_TIMEOUT = aiohttp.ClientTimeout(total=10)
_REFETCH_SECONDS = 30.0
_SKEW_SECONDS = 60
_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
               "ES512", "EdDSA"]


class OidcError(Exception):
    """A sign-in that cannot go on: the provider unreachable, or its answer refused (the
    message says which, and what to do)."""


@dataclass(frozen=True)
class Attempt:
    """One sign-in between its start and the provider's answer: what the answer must
    match (state, nonce), prove (the PKCE verifier) and where it leads (`next`)."""

    state: str
    nonce: str
    verifier: str
    next: str

    @classmethod
    def new(cls, next_path: str) -> Attempt:
        from authlib.common.security import generate_token

        return cls(generate_token(32), generate_token(32), generate_token(64), next_path)


class Provider:
    def __init__(self, settings: Oidc, secret: str | None) -> None:
        self.settings, self._secret = settings, secret
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (OidcError when it cannot be had)."""
        if self._metadata is None:
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            found = await _get_json(url, "its discovery document")
            if found.get("issuer") != self.settings.issuer:
                raise OidcError(f"the provider at {url} calls itself {found.get('issuer')!r}, "
                                f"not admin.oidc.issuer {self.settings.issuer!r}")
            for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(found.get(needed), str):
                    raise OidcError(f"the provider's discovery document ({url}) names no "
                                    f"{needed}")
            self._metadata = found
        return self._metadata

    async def authorize_url(self, attempt: Attempt, redirect_uri: str, client_id: str) -> str:
        """Where the browser is sent to sign in."""
        from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        found = await self.metadata()
        url: str = prepare_grant_uri(
            found["authorization_endpoint"], client_id, "code", redirect_uri,
            " ".join(self.settings.scopes), attempt.state, nonce=attempt.nonce,
            code_challenge=create_s256_code_challenge(attempt.verifier),
            code_challenge_method="S256")
        return url

    async def redeem(self, code: str, attempt: Attempt, redirect_uri: str) -> dict[str, Any]:
        """The verified claims of the ID token the provider gives for `code`."""
        found = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "code_verifier": attempt.verifier,
                "client_id": self.settings.client_id}
        auth = (aiohttp.BasicAuth(self.settings.client_id, self._secret)
                if self._secret is not None else None)
        try:
            async with aiohttp.ClientSession(timeout=_TIMEOUT) as session, session.post(
                    found["token_endpoint"], data=form, auth=auth) as reply:
                answer = await reply.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise OidcError(f"the provider's token endpoint cannot be reached "
                            f"({exc or type(exc).__name__})") from None
        if not isinstance(answer, dict) or reply.status != 200:
            what = answer.get("error_description") or answer.get("error") \
                if isinstance(answer, dict) else None
            raise OidcError(f"the provider refused the sign-in's code ({reply.status}: "
                            f"{what or 'no reason given'})")
        if not isinstance(answer.get("id_token"), str):
            raise OidcError("the provider's answer holds no ID token (is `openid` among "
                            "admin.oidc.scopes?)")
        return await self.verify(answer["id_token"], [self.settings.client_id], attempt.nonce)

    async def verify(self, id_token: str, audiences: list[str],
                     nonce: str | None = None) -> dict[str, Any]:
        """The claims of an ID token of this provider for one of `audiences` (OidcError
        saying why it is refused)."""
        from authlib.oidc.core import CodeIDToken
        from joserfc import jwt
        from joserfc.errors import JoseError

        found = await self.metadata()
        try:
            token = jwt.decode(id_token, await self._key_set(id_token), algorithms=_ALGORITHMS)
        except JoseError as exc:
            raise OidcError(f"the ID token does not verify: {exc.description or exc.error}") \
                from None
        # The client it is for: the one of `audiences` it names (its azp, if any, is that).
        named = token.claims.get("aud")
        named = named if isinstance(named, list) else [named]
        client_id = next((a for a in audiences if a in named), audiences[0])
        claims = CodeIDToken(
            token.claims, token.header,
            options={"iss": {"essential": True, "value": found["issuer"]},
                     "aud": {"essential": True, "values": audiences}},
            params={"nonce": nonce, "client_id": client_id})
        try:
            claims.validate(leeway=_SKEW_SECONDS)
        except JoseError as exc:
            raise OidcError(f"the ID token is refused: {exc.description or exc.error}") \
                from None
        return dict(token.claims)

    async def _key_set(self, id_token: str) -> KeySet:
        """The provider's keys, fetched again when the token names one they lack."""
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        kid = _kid(id_token)
        async with self._lock:
            known = self._keys is not None and (
                kid is None or any(key.kid == kid for key in self._keys.keys))
            due = time.monotonic() - self._keys_at >= _REFETCH_SECONDS
            if self._keys is None or (not known and due):
                found = await self.metadata()
                document = await _get_json(found["jwks_uri"], "its key set")
                try:
                    self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError) as exc:
                    raise OidcError(f"the provider's key set cannot be read ({exc})") \
                        from None
                self._keys_at = time.monotonic()
            return self._keys


def _kid(id_token: str) -> str | None:
    from joserfc.errors import JoseError
    from joserfc.jws import extract_compact

    try:
        header = extract_compact(id_token.encode()).headers()
    except (JoseError, ValueError):
        return None
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


async def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        async with aiohttp.ClientSession(timeout=_TIMEOUT) as session, \
                session.get(url) as reply:
            reply.raise_for_status()
            found = await reply.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise OidcError(f"the sign-in provider's {what} cannot be read from {url} "
                        f"({exc or type(exc).__name__}): is it up?") from None
    if not isinstance(found, dict):
        raise OidcError(f"the sign-in provider's {what} at {url} is not a JSON object")
    return found
