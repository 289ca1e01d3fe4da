"""`tollgate token`: tokens signed with the quickstart's development key, for trying things.

The key (extproc/dev/signing-key.pem) is public knowledge; the quickstart's Envoy
trusts it, nothing real should. So a token is only minted for a configuration
that names that key (`identity.development_key`), and issuer, audience and key id
are read from the bootstrap that verifies it (envoy/quickstart.yaml), so the
token is exactly what that Envoy accepts.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from extproc import envoy_bootstrap
from extproc.config import Config


class TokenError(Exception):
    """No token can be minted for this configuration (the message says why)."""


def mint(
    config: Config, sub: str, groups: list[str], ttl_seconds: int,
    bootstrap_path: Path = envoy_bootstrap.QUICKSTART,
) -> str:
    """A token for `sub` in `groups`, valid for `ttl_seconds`, that the dev bootstrap accepts."""
    if config.identity.development_key is None:
        raise TokenError(
            f"{config.source}: identity.development_key is not set; tokens for this "
            "configuration come from your identity provider"
        )
    key_path = config.resolve(config.identity.development_key)
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise TokenError(f"{key_path}: cannot read the development key: {exc}") from None
    issuer, audience, kid = _provider(bootstrap_path, key)
    now = int(time.time())
    claims = {
        "iss": issuer, "aud": audience, "sub": sub, "groups": groups,
        "iat": now, "nbf": now, "exp": now + ttl_seconds, "jti": str(uuid.uuid4()),
    }
    # An RSA key, as `_provider` matched it to the bootstrap's RSA key; its type is the
    # union of every kind of private key.
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})  # type: ignore[arg-type]


def _provider(bootstrap_path: Path, key: PrivateKeyTypes) -> tuple[str, str, str]:
    """Issuer, first audience and the kid of `key`, from the token provider whose inline
    JWKS holds its public half (a bootstrap may have several providers)."""
    public = key.public_key()
    providers = envoy_bootstrap.jwt_providers(envoy_bootstrap.load(bootstrap_path))
    for provider in providers.values():
        inline = (provider.get("local_jwks") or {}).get("inline_string")
        for entry in json.loads(inline)["keys"] if inline else ():
            if entry.get("kty") == "RSA" and jwt.algorithms.RSAAlgorithm.from_jwk(entry) == public:
                return provider["issuer"], provider["audiences"][0], entry["kid"]
    raise TokenError(f"{bootstrap_path} does not trust the development key (no matching JWKS key)")
