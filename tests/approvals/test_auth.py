"""Approvers' tokens, verified with the jwt_authn providers of a real Envoy bootstrap:
real RSA and EC keys, real signatures, and the tokens that must not pass."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from extproc import envoy_bootstrap
from extproc.approvals.auth import AuthError, Verifier, VerifierError
from extproc.config import Identity
from tests.support import tokens
from tests.support.http_server import LocalServer
from tests.support.tls import TlsFiles


def bootstrap(**provider: Any) -> dict[str, Any]:
    """The quickstart bootstrap trusting the test issuer; `provider` replaces keys of its
    jwt_authn provider (None removes one)."""
    config = envoy_bootstrap.with_jwt_issuer(envoy_bootstrap.load(), tokens.ISSUER,
                                             [tokens.AUDIENCE], tokens.jwks())
    found = envoy_bootstrap.jwt_provider(config)
    for key, value in provider.items():
        if value is None:
            found.pop(key, None)
        else:
            found[key] = value
    return config


def verifier(tmp_path: Path, config: dict[str, Any] | None = None,
             settings: Identity | None = None) -> Verifier:
    path = envoy_bootstrap.write(config or bootstrap(), tmp_path / "envoy.yaml")
    return Verifier.from_bootstrap(path, settings or Identity())


async def refused(found: Verifier, authorization: str | None) -> str:
    """Why the token is refused (the test fails if it is not)."""
    with pytest.raises(AuthError) as error:
        await found.identity(authorization)
    return str(error.value)


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid token's claims; None removes one."""
    at = int(time.time())
    found = {"iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": "alice",
             "groups": ["dba"], "iat": at, "exp": at + 300}
    found.update(overrides)
    return {k: v for k, v in found.items() if v is not None}


def signed(payload: dict[str, Any], kid: str = "test-rsa", key: Any = None) -> str:
    return jwt.encode(payload, key or tokens.keys()[kid], algorithm=tokens.ALGORITHMS[kid],
                      headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token assembled by hand: HMAC-SHA256 with `secret`, or no signature at all."""
    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = (b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())
                 if secret is not None else "")
    return f"{signing}.{signature}"


# -- accepted ------------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["test-rsa", "test-ec"])
async def test_a_valid_token_gives_the_approvers_identity(tmp_path: Path, kid: str) -> None:
    token = tokens.token(sub="alice", groups=["dba", "sre"], kid=kid, email="a@example.com")
    found = await verifier(tmp_path).identity(f"Bearer {token}")
    assert found["authenticated"] is True
    assert (found["sub"], found["groups"]) == ("alice", ["dba", "sre"])
    assert (found["iss"], found["aud"], found["email"]) == (
        tokens.ISSUER, [tokens.AUDIENCE], "a@example.com")


async def test_the_scheme_is_case_insensitive_and_groups_follow_the_settings(
        tmp_path: Path) -> None:
    token = signed(claims(roles=["dba"], groups=None))
    found = await verifier(tmp_path, settings=Identity(groups_claim="roles")).identity(
        f"bearer {token}")
    assert (found["sub"], found["groups"]) == ("alice", ["dba"])


async def test_a_token_expired_within_the_clock_skew_still_verifies(tmp_path: Path) -> None:
    # The quickstart's provider allows 30 s of clock skew, as Envoy would.
    at = int(time.time())
    token = signed(claims(iat=at - 60, exp=at - 10))
    assert (await verifier(tmp_path).identity(f"Bearer {token}"))["sub"] == "alice"


# -- refused -------------------------------------------------------------------------------


async def test_no_token_is_refused(tmp_path: Path) -> None:
    found = verifier(tmp_path)
    for header in (None, "", "Bearer", "Bearer ", "Bearer    "):
        assert "Authorization: Bearer" in await refused(found, header)


async def test_another_scheme_is_refused(tmp_path: Path) -> None:
    token = tokens.token(sub="alice")
    found = verifier(tmp_path)
    assert "Bearer" in await refused(found, f"Basic {token}")
    assert "Bearer" in await refused(found, token)  # no scheme at all


async def test_garbage_is_refused(tmp_path: Path) -> None:
    found = verifier(tmp_path)
    for garbage in ("not-a-token", "a.b.c", "...", b64(b'{"alg":"RS256"}') + ".x.y"):
        assert await refused(found, f"Bearer {garbage}")


async def test_an_expired_token_is_refused(tmp_path: Path) -> None:
    token = tokens.token(sub="alice", ttl=-120)  # beyond the 30 s skew
    assert "expired" in (await refused(verifier(tmp_path), f"Bearer {token}")).lower()


async def test_a_token_for_another_audience_is_refused(tmp_path: Path) -> None:
    token = tokens.token(sub="alice", aud="someone-else")
    assert "audience" in (await refused(verifier(tmp_path), f"Bearer {token}")).lower()


async def test_a_token_of_another_issuer_is_refused(tmp_path: Path) -> None:
    token = tokens.token(sub="alice", iss="https://evil.test")
    assert "https://evil.test" in await refused(verifier(tmp_path), f"Bearer {token}")


async def test_a_token_signed_by_an_untrusted_key_with_a_trusted_kid_is_refused(
        tmp_path: Path) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = signed(claims(), kid="test-rsa", key=impostor)
    assert "signature" in (await refused(verifier(tmp_path), f"Bearer {token}")).lower()


async def test_a_token_naming_an_unknown_key_is_refused(tmp_path: Path) -> None:
    token = jwt.encode(claims(), tokens.keys()["test-rsa"], algorithm="RS256",
                       headers={"kid": "no-such-key"})
    assert "no-such-key" in await refused(verifier(tmp_path), f"Bearer {token}")


async def test_an_unsigned_token_is_refused(tmp_path: Path) -> None:
    token = unsigned({"alg": "none", "typ": "JWT", "kid": "test-rsa"}, claims(), None)
    assert "'none'" in await refused(verifier(tmp_path), f"Bearer {token}")


async def test_a_token_hmac_signed_with_the_public_key_is_refused(tmp_path: Path) -> None:
    # Algorithm confusion: HS256 with the RSA public key (which anyone has) as the secret.
    public = tokens.keys()["test-rsa"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    token = unsigned({"alg": "HS256", "typ": "JWT", "kid": "test-rsa"}, claims(), public)
    assert "'HS256'" in await refused(verifier(tmp_path), f"Bearer {token}")


async def test_a_token_signed_for_one_algorithm_but_naming_another_is_refused(
        tmp_path: Path) -> None:
    # The EC key's token presented as RS256 under the RSA key's kid.
    token = signed(claims(), kid="test-ec")
    _, payload, signature = token.split(".")
    header = b64(json.dumps({"alg": "RS256", "kid": "test-rsa"}).encode())
    relabelled = f"{header}.{payload}.{signature}"
    assert "signature" in (await refused(verifier(tmp_path), f"Bearer {relabelled}")).lower()


@pytest.mark.parametrize("missing", ["exp", "sub"])
async def test_a_token_without_expiry_or_subject_is_refused(tmp_path: Path, missing: str) -> None:
    token = signed(claims(**{missing: None}))
    assert missing in await refused(verifier(tmp_path), f"Bearer {token}")


async def test_a_token_with_an_empty_subject_is_refused(tmp_path: Path) -> None:
    token = signed(claims(sub=""))
    assert "names no subject" in await refused(verifier(tmp_path), f"Bearer {token}")


async def test_a_token_expiring_beyond_the_providers_max_lifetime_is_refused(
        tmp_path: Path) -> None:
    """As Envoy checks it: `exp` at most max_lifetime from now (the quickstart's: 7 days),
    whatever `iat` says."""
    at = int(time.time())
    found = verifier(tmp_path)
    assert (await found.identity(f"Bearer {signed(claims(exp=at + 6 * 86400))}"))["sub"] == "alice"
    for far in (claims(exp=at + 8 * 86400), claims(exp=at + 8 * 86400, iat=None)):
        assert "max_lifetime" in await refused(found, f"Bearer {signed(far)}")
    shorter = verifier(tmp_path, bootstrap(max_lifetime={"seconds": 60}))
    assert "max_lifetime" in await refused(shorter, f"Bearer {signed(claims())}")


# -- where the keys come from --------------------------------------------------------------


async def test_keys_from_a_local_jwks_file(tmp_path: Path) -> None:
    keys = tmp_path / "jwks.json"
    keys.write_text(tokens.jwks(), encoding="utf-8")
    found = verifier(tmp_path, bootstrap(local_jwks={"filename": str(keys)}))
    assert (await found.identity(f"Bearer {tokens.token(sub='alice', kid='test-ec')}"))["sub"] == (
        "alice")
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert await refused(found, f"Bearer {signed(claims(), key=impostor)}")


def jwks_server(body: bytes | None = None) -> LocalServer:
    """A real HTTP server serving the test keys (or `body`) at /jwks; `received` counts
    the fetches."""
    served = body if body is not None else tokens.jwks().encode()
    return LocalServer(lambda _method, path, _body: (200 if path == "/jwks" else 404, served),
                       "/jwks")


@pytest.fixture
def keys_server() -> Iterator[LocalServer]:
    server = jwks_server()
    yield server
    server.stop()


def remote(uri: str) -> dict[str, Any]:
    return bootstrap(local_jwks=None, remote_jwks={
        "http_uri": {"uri": uri, "cluster": "identity_provider", "timeout": "2s"},
        "cache_duration": "300s"})


async def test_keys_from_a_remote_jwks(tmp_path: Path, keys_server: LocalServer) -> None:
    found = verifier(tmp_path, remote(keys_server.url))
    assert keys_server.received == []  # fetched when first needed, not at start
    for kid in ("test-rsa", "test-ec"):
        token = tokens.token(sub="alice", groups=["dba"], kid=kid)
        assert (await found.identity(f"Bearer {token}"))["groups"] == ["dba"]
    assert keys_server.received
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert await refused(found, f"Bearer {signed(claims(), key=impostor)}")


async def test_a_remote_jwks_that_is_down_refuses_tokens(tmp_path: Path, closed_port: int) -> None:
    found = verifier(tmp_path, remote(f"http://127.0.0.1:{closed_port}/jwks"))
    assert "no key" in await refused(found, f"Bearer {tokens.token(sub='alice')}")


@pytest.mark.parametrize("body", [b"<html>an error page</html>", b'{"keys": []}', b"[]"],
                         ids=["not-json", "no-keys", "not-a-key-set"])
async def test_a_remote_jwks_serving_no_key_set_refuses_tokens(tmp_path: Path, body: bytes) -> None:
    # Refused with AuthError (the API's 401), not an unexpected exception (its 500).
    server = jwks_server(body)
    try:
        found = verifier(tmp_path, remote(server.url))
        assert "no key" in await refused(found, f"Bearer {tokens.token(sub='alice')}")
        assert server.received
    finally:
        server.stop()


# -- bootstraps with several listeners -----------------------------------------------------


def two_listeners(tls: TlsFiles) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The test bootstrap with a TLS listener beside the plain one (as kubectl needs), and
    the TLS listener's jwt_authn providers (a copy of the plain one's, to change)."""
    config = envoy_bootstrap.with_tls(bootstrap(), tls.cert, tls.key, 10443)
    _, secure = ingress_listeners(config)
    (authn,) = envoy_bootstrap.http_filters({"static_resources": {"listeners": [secure]}},
                                            envoy_bootstrap.JWT_AUTHN_TYPE)
    return config, authn["typed_config"]["providers"]


def ingress_listeners(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The HTTP listeners with token providers (the egress listener verifies none)."""
    return [x for x in envoy_bootstrap.http_listeners(config)
            if x["name"] not in envoy_bootstrap.EGRESS_LISTENERS]


async def test_a_provider_every_listener_repeats_is_one_provider(tmp_path: Path,
                                                                 tls: TlsFiles) -> None:
    config, _ = two_listeners(tls)
    assert len(ingress_listeners(config)) == 2
    found = verifier(tmp_path, config)
    assert (await found.identity(f"Bearer {signed(claims())}"))["sub"] == "alice"


async def test_the_providers_of_every_listener_verify(tmp_path: Path, tls: TlsFiles) -> None:
    """The TLS listener trusts another issuer (a provider of its own): tokens of both
    issuers verify, each against its own provider."""
    config, providers = two_listeners(tls)
    partners = "https://partners.example"
    providers["partners"] = {**providers.pop("tollgate-dev"), "issuer": partners}
    found = verifier(tmp_path, config)
    pat = signed(claims(iss=partners, sub="pat"))
    assert (await found.identity(f"Bearer {pat}"))["sub"] == "pat"
    assert (await found.identity(f"Bearer {signed(claims())}"))["sub"] == "alice"
    assert "not trusted" in await refused(found, f"Bearer {signed(claims(iss='https://x.test'))}")


def test_one_provider_name_configured_two_ways_is_refused_naming_both(tmp_path: Path,
                                                                     tls: TlsFiles) -> None:
    config, providers = two_listeners(tls)
    providers["tollgate-dev"]["audiences"] = ["someone-else"]
    with pytest.raises(VerifierError) as error:
        verifier(tmp_path, config)
    assert str(error.value) == (
        f"{tmp_path / 'envoy.yaml'}: cannot read its jwt_authn providers (jwt_authn provider "
        "'tollgate-dev' is configured differently in listener ingress and listener "
        "ingress_tls: give them different names, or the same config)")


# -- unusable bootstraps -------------------------------------------------------------------


def test_a_bootstrap_without_jwt_authn_providers_is_refused(tmp_path: Path) -> None:
    config = envoy_bootstrap.without_http_filters(bootstrap(), envoy_bootstrap.JWT_AUTHN_TYPE)
    path = envoy_bootstrap.write(config, tmp_path / "no-authn.yaml")
    with pytest.raises(VerifierError) as error:
        Verifier.from_bootstrap(path, Identity())
    assert str(path) in str(error.value) and "no jwt_authn provider" in str(error.value)


@pytest.mark.parametrize("kind", ["missing", "directory", "not-yaml", "not-envoy"])
def test_an_unreadable_bootstrap_is_refused_naming_it(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "envoy.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "not-yaml":
        path.write_text("static_resources: [unclosed\n", encoding="utf-8")
    elif kind == "not-envoy":
        path.write_text("just: a mapping\n", encoding="utf-8")
    with pytest.raises(VerifierError) as error:
        Verifier.from_bootstrap(path, Identity())
    assert str(path) in str(error.value)


def test_a_provider_with_an_unreadable_jwks_file_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-jwks.json"
    config = bootstrap(local_jwks={"filename": str(missing)})
    path = envoy_bootstrap.write(config, tmp_path / "envoy.yaml")
    with pytest.raises(VerifierError) as error:
        Verifier.from_bootstrap(path, Identity())
    assert str(path) in str(error.value) and "no-such-jwks.json" in str(error.value)


def test_a_provider_without_keys_is_refused(tmp_path: Path) -> None:
    path = envoy_bootstrap.write(bootstrap(local_jwks=None), tmp_path / "envoy.yaml")
    with pytest.raises(VerifierError) as error:
        Verifier.from_bootstrap(path, Identity())
    assert str(path) in str(error.value) and "neither local_jwks nor remote_jwks" in str(
        error.value)
