"""The claims rules tollgate's verifier shares with Envoy's jwt_authn (1.40,
jwt_verify_lib), as measured against the real binary: whatever a token holds, a refusal
is an AuthError saying why (every door's 401), never another exception."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from extproc.approvals.auth import Verifier
from tests.approvals.test_auth import bootstrap, claims, refused, signed, verifier
from tests.support import tokens

NOW = int(time.time())


def jwk(key: Any, **fields: Any) -> dict[str, Any]:
    """The public half of `key` as a JWK entry (its `alg` only when given)."""
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    entry = json.loads(jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(
        key.public_key()))
    entry.pop("key_ops", None)
    return {**entry, **fields}


def keyed(tmp_path: Path, *entries: dict[str, Any]) -> Verifier:
    return verifier(tmp_path, bootstrap(local_jwks={
        "inline_string": json.dumps({"keys": list(entries)})}))


@pytest.mark.parametrize(("claim", "value"), [
    ("exp", str(NOW + 300)), ("nbf", str(NOW - 10)), ("iat", str(NOW)),
    ("exp", "soon"), ("exp", True), ("exp", [NOW + 300]), ("iat", False),
    ("exp", -5), ("nbf", -0.5), ("exp", 2 ** 64), ("iat", 2 ** 64),
], ids=["exp-numeric-string", "nbf-numeric-string", "iat-numeric-string", "exp-word",
        "exp-bool", "exp-list", "iat-bool", "exp-negative", "nbf-negative",
        "exp-2^64", "iat-2^64"])
async def test_a_time_claim_that_is_no_number_of_seconds_is_refused(
        tmp_path: Path, claim: str, value: Any) -> None:
    """Envoy: 'Jwt payload [exp] field is not an integer' (or 'not a positive 64 bit
    integer'), a 401; tollgate's verifier crashed on "exp": "1999999999" (TypeError)."""
    said = await refused(verifier(tmp_path), f"Bearer {signed(claims(**{claim: value}))}")
    assert said == (f"the token does not verify: its {claim} is {value!r}, not a time: a "
                    f'JSON number of seconds since 1970, unquoted ("{claim}": 1767225600)')


async def test_every_door_gets_the_refusal_as_a_sentence(tmp_path: Path) -> None:
    found = verifier(tmp_path)
    assert await found.verdict(signed(claims(exp="1999999999"))) == (
        None, "the token does not verify: its exp is '1999999999', not a time: a JSON "
              'number of seconds since 1970, unquoted ("exp": 1767225600)')


@pytest.mark.parametrize("times", [
    {"iat": NOW + 3600}, {"iat": NOW + 3600, "nbf": None}, {"exp": NOW + 300.5},
    {"nbf": NOW - 0.5, "iat": 1.5},
], ids=["iat-an-hour-ahead", "iat-ahead-without-nbf", "exp-fractional", "fractions"])
async def test_what_envoy_accepts_of_time_claims_verifies(tmp_path: Path,
                                                          times: dict[str, Any]) -> None:
    token = signed(claims(**times))
    assert (await verifier(tmp_path).identity(f"Bearer {token}"))["sub"] == "alice"


@pytest.mark.parametrize(("claim", "value", "kind"), [
    ("sub", 5, "a string"), ("jti", 5, "a string"), ("aud", 5, "a string or a list"),
    ("aud", ["tollgate", 5], "a string or a list"),
])
async def test_a_claim_of_the_wrong_type_is_refused(tmp_path: Path, claim: str, value: Any,
                                                    kind: str) -> None:
    payload = json.dumps(claims(**{claim: value})).encode()
    header = b64(json.dumps({"alg": "RS256", "kid": "test-rsa"}).encode())
    body = f"{header}.{b64(payload)}"
    # PyJWT refuses to sign some of these: the token is assembled by hand and signed.
    algorithm = jwt.algorithms.get_default_algorithms()["RS256"]
    token = f"{body}.{b64(algorithm.sign(body.encode(), tokens.keys()['test-rsa']))}"
    said = await refused(verifier(tmp_path), f"Bearer {token}")
    assert said.startswith(f"the token does not verify: its {claim} is {value!r}, not {kind}")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_an_alg_that_is_no_string_is_refused(tmp_path: Path) -> None:
    _, payload, signature = signed(claims()).split(".")
    header = b64(json.dumps({"alg": ["RS256"], "kid": "test-rsa"}).encode())
    said = await refused(verifier(tmp_path), f"Bearer {header}.{payload}.{signature}")
    assert "it is signed with ['RS256'], which is not accepted" in said


async def test_a_token_naming_no_key_is_checked_with_each_key_that_could_sign_it(
        tmp_path: Path) -> None:
    """As Envoy: a kid-less token tries every key of its type; a key of another type
    (an EC key declaring no alg, for an RS256 token) is skipped, not a crash."""
    other, mine = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
                   for _ in range(2))
    curve = ec.generate_private_key(ec.SECP256R1())
    found = keyed(tmp_path, jwk(curve), jwk(other), jwk(mine))
    token = jwt.encode(claims(), mine, algorithm="RS256")
    assert (await found.identity(f"Bearer {token}"))["sub"] == "alice"
    stranger = jwt.encode(claims(), rsa.generate_private_key(public_exponent=65537,
                                                             key_size=2048), algorithm="PS256")
    assert "signature is not the issuer's" in await refused(found, f"Bearer {stranger}")


async def test_a_key_declaring_no_kid_serves_a_token_naming_one(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    found = keyed(tmp_path, jwk(key))
    token = jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "any"})
    assert (await found.identity(f"Bearer {token}"))["sub"] == "alice"
