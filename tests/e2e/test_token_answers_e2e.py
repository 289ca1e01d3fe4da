"""A token Envoy's jwt_authn refuses is told in a sentence, through a real Envoy: the
local_reply_config of envoy/quickstart.yaml (and deploy.yaml, the same) reads the
refusal's response code details (`jwt_authn_access_denied{Jwt_is_expired}`) and says
what is wrong and what to do, Envoy's own words kept after it ("Jwt is expired", "Jwt
verification fails", "Jwt issuer is not configured"...). Envoy's other answers (a body
too large, tollgate or the upstream out of reach) keep their words:
tests/e2e/test_gateway_answers_e2e.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway

pytestmark = pytest.mark.e2e

IMPOSTOR = rsa.generate_private_key(public_exponent=65537, key_size=2048)
# Each case's token is made as its test runs, not as the suite is collected: the
# impostor's own expiry (ten minutes) would pass while a long suite runs, and Envoy
# would then say "expired" instead of what the case is about.
CASES: list[tuple[Callable[[], str | None], str]] = [
    (lambda: None, "no token: send one in the Authorization header, Bearer <token> (Envoy: "
                   "Jwt is missing)"),
    (lambda: "abc", "the token is not a JWT: it should be three base64url parts separated "
                    "by dots (Envoy: Jwt is not in the form of Header.Payload.Signature with "
                    "two dots and 3 sections)"),
    (lambda: "a.b.c", "the token is not a JWT: it should be three base64url parts separated "
                      "by dots (Envoy: Jwt header is an invalid Base64url encoded)"),
    (lambda: tokens.token(ttl=-300), "the token has expired: get a new one (Envoy: Jwt is "
                                     "expired)"),
    (lambda: tokens.token(nbf=int(time.time()) + 3600),
     "the token is not valid yet: its nbf or iat is ahead of this gateway's clock (Envoy: "
     "Jwt not yet valid)"),
    (lambda: tokens.token(aud="someone-else"),
     "the token is for another audience (aud) than this gateway (Envoy: Audiences in Jwt "
     "are not allowed)"),
    (lambda: tokens.token(iss="https://evil.test"),
     "the token's issuer (iss) is not one this gateway trusts (Envoy: Jwt issuer is not "
     "configured)"),
    (lambda: jwt.encode({"iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": "x",
                         "exp": int(time.time()) + 600},
                        IMPOSTOR, algorithm="RS256", headers={"kid": "test-rsa"}),
     "the token does not verify: its signature is not the issuer's, or it never expires, or "
     "it expires too far ahead (Envoy: Jwt verification fails)"),
    (lambda: tokens.token(ttl=30 * 86400),
     "the token does not verify: its signature is not the issuer's, or it never expires, or "
     "it expires too far ahead (Envoy: Jwt verification fails)"),
]
IDS = ["missing", "one-part", "bad-base64", "expired", "not-yet-valid", "other-audience",
       "unknown-issuer", "other-key", "too-long-a-life"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "token-answers") as running:
        yield running


@pytest.mark.parametrize(("make", "said"), CASES, ids=IDS)
def test_a_refused_token_is_told_in_a_sentence(gw: Gateway, make: Callable[[], str | None],
                                               said: str) -> None:
    before = len(gw.upstream.requests)
    reply = gw.request("GET", "/echo", token=make())
    assert reply.status == 401, reply.body
    answer = reply.json()
    assert (answer["error"], answer["message"], answer["trace_id"]) == (
        "unauthenticated", said, None)
    assert len(gw.upstream.requests) == before

