"""JWTs in the shapes issue 39 names: other algorithms and headers (`kid`, no `typ`),
a JWE of five parts, a detached payload, and a prefix glued on (`Bearer`, `token=`,
letters)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.masking.conftest import found


def b64(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


CLAIMS, SIG = b64({"sub": "1234567890", "iat": 1516239022}), b64(b"s" * 32)


def token(header: dict[str, str]) -> str:
    return f"{b64(header)}.{CLAIMS}.{SIG}"


JWE = ".".join([b64({"alg": "RSA-OAEP", "enc": "A256GCM"}), b64(b"k" * 40), b64(b"iv" * 6),
                b64(b"c" * 60), b64(b"t" * 16)])


@pytest.mark.parametrize("header", [
    {"alg": "RS256", "kid": "2024-10-key"}, {"alg": "ES384"}, {"alg": "EdDSA", "typ": "JWT"},
    {"alg": "PS512", "kid": "a", "x5t": "b"}, {"alg": "none"}, {"typ": "at+jwt", "alg": "HS256"},
])
def test_any_algorithm_and_header(header: dict[str, str]) -> None:
    jwt = token(header)
    assert found("jwt", f"id_token: {jwt} end") == [jwt]


@pytest.mark.parametrize("prefix", ["Bearer ", "Bearer", "token=", "jwt:", "x", "auth_",
                                    "Authorization: Bearer ", '{"t":"'])
def test_a_prefix_glued_on_does_not_hide_it(prefix: str) -> None:
    jwt = token({"alg": "HS256"})
    assert found("jwt", f"{prefix}{jwt} ok") == [jwt]


def test_a_jwe_is_masked_whole() -> None:
    assert found("jwt", f"token {JWE}.") == [JWE]


def test_five_parts_without_enc_are_a_jws_and_two_more_parts() -> None:
    jwt = token({"alg": "HS256"})
    assert found("jwt", f"{jwt}.abc.def") == [jwt]


def test_a_detached_payload() -> None:
    jwt = f"{b64({'alg': 'HS256', 'b64': False, 'crit': ['b64']})}..{SIG}"
    assert found("jwt", f"sig {jwt} ok") == [jwt]


@pytest.mark.parametrize("text", [
    f"{b64({'kid': 'a'})}.{CLAIMS}.{SIG}",  # a header without alg
    f"{b64({'alg': 'HS256'})}",  # one part
    f"{b64([1, 2])}.{CLAIMS}.{SIG}",  # a header that is no object
    "eyJhbGciOiJIUzI1Ni.eyJzdWIiOiIxIn0.abc",  # a header that is no JSON
    "the eyJ of it. eyJust.in.time",
])
def test_look_alikes_stay(text: str) -> None:
    assert found("jwt", text) == []
