"""A refused token is told in a sentence its holder can act on, with the claims' times and
values, never in PyJWT's internals ("Not enough segments", "Signature has expired",
"Invalid audience", "The token is not yet valid (iat)", "Invalid crypto padding").
The verifier is the one approvers, the PostgreSQL, SSH, Kubernetes stream and egress
fronts share (extproc/approvals/auth.py); real keys and signatures."""

from __future__ import annotations

import datetime
import re
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from extproc.approvals.auth import AuthError, unverified
from tests.approvals.test_auth import b64, claims, refused, signed, verifier

PYJWT_WORDS = ("segments", "padding", "Signature has expired", "Invalid audience",
               "Audience doesn't match", "not yet valid (", "Signature verification failed",
               "Invalid header", "Invalid payload", "Invalid crypto")
NOT_A_JWT = ("the token does not verify: it is not a JWT (it should be three base64url parts "
             "separated by dots)")


def utc(epoch: int) -> str:
    return f"{datetime.datetime.fromtimestamp(epoch, datetime.UTC):%Y-%m-%d %H:%M:%S} UTC"


def good() -> str:
    return signed(claims())


@pytest.mark.parametrize("garbage", [
    "not-a-token",                        # Not enough segments
    "a.b.c",                              # Invalid header padding
    b64(b'"just a string"') + ".e30.x",   # Invalid header string
    "e30." + b64(b"[1]") + ".x",          # Invalid payload string
    good()[:-1] + "!",                    # Invalid crypto padding (the signature's base64)
], ids=["one-part", "bad-base64", "header-not-an-object", "payload-not-an-object",
        "signature-not-base64"])
async def test_what_is_no_jwt_is_said_to_be_none(tmp_path: Path, garbage: str) -> None:
    assert await refused(verifier(tmp_path), f"Bearer {garbage}") == NOT_A_JWT


async def test_an_expired_token_says_when_it_expired(tmp_path: Path) -> None:
    exp = int(time.time()) - 3600
    said = await refused(verifier(tmp_path), f"Bearer {signed(claims(exp=exp))}")
    match = re.fullmatch(r"the token does not verify: it expired at (.+ UTC) \((\d+) s ago\)",
                         said)
    assert match is not None, said
    assert match.group(1) == utc(exp) and 3590 <= int(match.group(2)) <= 3700


async def test_a_token_not_valid_yet_says_from_when(tmp_path: Path) -> None:
    # Its nbf: an iat ahead is no refusal (Envoy does not check it either).
    at = int(time.time()) + 3600
    said = await refused(verifier(tmp_path), f"Bearer {signed(claims(nbf=at))}")
    match = re.fullmatch(r"the token does not verify: it is not valid yet: its nbf is "
                         r"(.+ UTC) \((\d+) s from now\)", said)
    assert match is not None, said
    assert match.group(1) == utc(at) and 3500 <= int(match.group(2)) <= 3600


async def test_a_token_of_another_audience_names_both(tmp_path: Path) -> None:
    token = signed(claims(aud="someone-else"))
    assert await refused(verifier(tmp_path), f"Bearer {token}") == (
        "the token does not verify: it is for another audience: its aud is 'someone-else', "
        "this gateway accepts 'tollgate'")


async def test_a_signature_of_another_key_says_so(tmp_path: Path) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = signed(claims(), key=impostor)
    assert await refused(verifier(tmp_path), f"Bearer {token}") == (
        "the token does not verify: its signature is not the issuer's (another key signed "
        "it, or it was changed after signing)")


@pytest.mark.parametrize(("missing", "said"), [
    ("exp", "the token does not verify: it never expires (no exp claim), and such tokens "
            "are not accepted"),
    ("sub", "the token does not verify: it has no sub claim: it names no subject, whose "
            "token it is"),
])
async def test_a_missing_claim_is_named(tmp_path: Path, missing: str, said: str) -> None:
    token = signed(claims(**{missing: None}))
    assert await refused(verifier(tmp_path), f"Bearer {token}") == said


async def test_a_token_expiring_too_far_ahead_says_when(tmp_path: Path) -> None:
    exp = int(time.time()) + 8 * 86400
    assert await refused(verifier(tmp_path), f"Bearer {signed(claims(exp=exp))}") == (
        f"the token does not verify: it expires at {utc(exp)}, more than 604800 s ahead "
        "(the issuer's max_lifetime)")


async def test_no_refusal_repeats_pyjwts_words(tmp_path: Path) -> None:
    found = verifier(tmp_path)
    now = int(time.time())
    for token in ("x", "a.b.c", good()[:-1] + "!", signed(claims(exp=now - 600)),
                  signed(claims(nbf=now + 600)),
                  signed(claims(aud="other")), signed(claims(aud=["a", "b"]))):
        said = await refused(found, f"Bearer {token}")
        assert not [w for w in PYJWT_WORDS if w in said], said


@pytest.mark.parametrize(("text", "said"), [
    ("the token does not verify: it expired at 2026-01-01 00:00:00 UTC (5 s ago)",
     "the token does not verify: it expired at 2026-01-01 00:00:00 UTC (5 s ago)"),
    ("the token's issuer 'x' is not trusted",
     "the token does not verify: the token's issuer 'x' is not trusted"),
])
def test_unverified_heads_every_refusal_once(text: str, said: str) -> None:
    assert unverified(AuthError(text)) == said
