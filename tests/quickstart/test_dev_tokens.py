"""`tollgate token`: development tokens the quickstart's Envoy accepts, and only for it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from extproc import config, envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import dev_tokens
from tests.support import cli

pytestmark = pytest.mark.e2e  # `tollgate token` run from its command line (tests/support/cli.py)

def tollgate(*args: str) -> subprocess.CompletedProcess[str]:
    """`tollgate token ARGS` (in this process: tests/support/cli.py)."""
    return cli.tollgate("token", *args)


def test_prints_one_token_the_quickstart_jwks_verifies() -> None:
    result = tollgate("--sub", "alice", "--groups", "dba, agents", "--ttl", "30m")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"  # alone on stdout, for $(tollgate token ...)
    provider = envoy_bootstrap.jwt_provider(envoy_bootstrap.load())
    (jwk,) = json.loads(provider["local_jwks"]["inline_string"])["keys"]
    claims = jwt.decode(
        token, jwt.algorithms.RSAAlgorithm.from_jwk(jwk), algorithms=["RS256"],
        issuer=provider["issuer"], audience=provider["audiences"][0],
    )
    assert (claims["sub"], claims["groups"]) == ("alice", ["dba", "agents"])
    assert abs(claims["exp"] - time.time() - 1800) < 60
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]


def test_refuses_a_configuration_without_the_development_key(tmp_path: Path) -> None:
    path = tmp_path / "tollgate.yaml"
    path.write_text(yaml.safe_dump({"targets": [{"name": "t", "match": {"route": "r"}}]}))
    result = tollgate("--sub", "alice", "--config", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"tollgate: {path}: identity.development_key is not set; tokens for this "
        "configuration come from your identity provider\n"
    )


@pytest.mark.parametrize("ttl", ["0s", "8d", "1 hour", "1h-", "h"])
def test_refuses_a_bad_ttl(ttl: str) -> None:
    result = tollgate("--sub", "alice", "--ttl", ttl)
    assert result.returncode == 2
    assert result.stderr.startswith("tollgate: --ttl: ")


def test_refuses_a_key_the_bootstrap_does_not_trust(tmp_path: Path) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "key.pem").write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    settings = config.parse({"targets": [{"name": "t", "match": {"route": "r"}}],
                             "identity": {"development_key": "key.pem"}},
                            source=tmp_path / "tollgate.yaml")
    with pytest.raises(dev_tokens.TokenError, match="does not trust the development key"):
        dev_tokens.mint(settings, "alice", [], 60)


def test_the_quickstart_names_the_development_key() -> None:
    settings = config.load(QUICKSTART_CONFIG)
    assert settings.identity.development_key is not None
    assert settings.resolve(settings.identity.development_key).is_file()


def test_the_provider_holding_the_development_key_is_found_among_several(
    tmp_path: Path,
) -> None:
    """A bootstrap with a listener of its own for partners (another issuer, another key):
    the token is the dev provider's, whichever listener comes first."""
    bootstrap = envoy_bootstrap.with_tls(envoy_bootstrap.load(), tmp_path / "c.pem",
                                         tmp_path / "k.pem", 10443)
    first, _ = envoy_bootstrap.http_filters(bootstrap, envoy_bootstrap.JWT_AUTHN_TYPE)
    first["typed_config"]["providers"] = {"partners": {
        "issuer": "https://partners.example", "audiences": ["partners"],
        "local_jwks": {"inline_string": json.dumps({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "p-1", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8"
             "Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]})}}}
    path = envoy_bootstrap.write(bootstrap, tmp_path / "envoy.yaml")
    token = dev_tokens.mint(config.load(QUICKSTART_CONFIG), "alice", ["dba"], 60, path)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"]) == ("https://tollgate.dev.local", "tollgate")
