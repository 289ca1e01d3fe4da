"""Real signing keys and tokens for the tests: RSA and EC keys, a JWKS Envoy verifies with.

Keys are made once per test session (cryptography); tokens are signed by PyJWT,
so Envoy's jwt_authn checks real signatures, as it would for an identity provider.
"""

from __future__ import annotations

import json
import time
import uuid
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://issuer.test"
AUDIENCE = "tollgate"


@cache
def keys() -> dict[str, Any]:
    """kid -> private key: one RSA (RS256) and one EC P-256 (ES256)."""
    return {
        "test-rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "test-ec": ec.generate_private_key(ec.SECP256R1()),
    }


ALGORITHMS = {"test-rsa": "RS256", "test-ec": "ES256"}


@cache
def jwks() -> str:
    """The public keys as a JWKS document, for Envoy's local_jwks."""
    entries = []
    for kid, key in keys().items():
        algorithm = jwt.algorithms.get_default_algorithms()[ALGORITHMS[kid]]
        entry = json.loads(algorithm.to_jwk(key.public_key()))
        entry.pop("key_ops", None)
        entries.append({**entry, "kid": kid, "alg": ALGORITHMS[kid], "use": "sig"})
    return json.dumps({"keys": entries})


# A token's life unless a test says otherwise: longer than the suite can run on the slowest
# machine, so a token minted when a module is collected (a constant, a parameter) is still
# valid when its test runs, however late. Tests of expiry give their own `ttl`.
SUITE_TTL = 4 * 3600


def token(
    sub: str = "svc-autogen", groups: list[str] | None = None, kid: str = "test-rsa",
    ttl: int = SUITE_TTL, **claims: Any,
) -> str:
    """A token Envoy accepts; `claims` override or add to the standard ones (None: the
    claim is left out)."""
    now = int(time.time())
    payload = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "groups": groups or ["agents"],
        "iat": now, "nbf": now, "exp": now + ttl,
        # Unique, and never a long run of digits: a 13-19 digit run may pass Luhn's
        # check and be masked as a card number where the record keeps the jti.
        "jti": f"{sub}-{uuid.uuid4()}",
        **claims,
    }
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, keys()[kid], algorithm=ALGORITHMS[kid], headers={"kid": kid})
