"""POST /v1/ssh/certificates on a real admin server: agents' real signed tokens verified
with the issuer's keys, real keys certified by a real user CA; what is refused is
answered in the admin API's JSON shape."""

from __future__ import annotations

import datetime
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from extproc import config as config_module
from extproc.config import Identity
from extproc.ssh.certificates import PRINCIPAL, KeyFileError, UserCA
from extproc.ssh.certificates_api import PATH, CertificatesApi
from tests.support import tokens
from tests.support.ssh_certificates import admin_api, agent_verifier, public_line, write_key


class Client:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self._url, self._session = url, session

    async def post(self, body: Any, token: str | None = None,
                   authorization: str | None = None) -> tuple[int, dict[str, Any]]:
        headers = {"authorization": authorization or f"Bearer {token}"} \
            if token or authorization else {}
        data = body if isinstance(body, bytes) else None
        async with self._session.post(self._url + PATH, headers=headers, data=data,
                                      json=None if data is not None else body) as reply:
            assert reply.content_type == "application/json"
            return reply.status, await reply.json()


@pytest.fixture
def ca() -> UserCA:
    return UserCA(ed25519.Ed25519PrivateKey.generate(), Identity())


@asynccontextmanager
async def serve(api: CertificatesApi) -> AsyncIterator[Client]:
    async with admin_api(api.routes()) as url, aiohttp.ClientSession() as session:
        yield Client(url, session)


@pytest.fixture
async def client(ca: UserCA, tmp_path: Path) -> AsyncIterator[Client]:
    api = CertificatesApi(agent_verifier(tmp_path), Identity(), ca, "ssh-ed25519 AAAAHOST",
                          60, 2222, ("web-1", "db-jump"))
    async with serve(api) as found:
        yield found


async def test_an_agents_token_and_key_get_a_certificate(ca: UserCA, client: Client) -> None:
    """The certificate carries the token's subject and groups, names tollgate's principal,
    ends with the token (five minutes, though an hour is allowed); the answer names the
    gateway's host key, its SSH port and its targets' logins."""
    token = tokens.token("svc-autogen", ["agents", "deployers"], ttl=300)
    status, body = await client.post({"public_key": public_line(
        ed25519.Ed25519PrivateKey.generate())}, token)
    assert status == 200, body
    assert set(body) == {"certificate", "key_id", "principals", "valid_before",
                         "gateway_host_key", "ssh_port", "logins"}
    carried = ca.claims_of(body["certificate"])
    assert (carried["sub"], carried["groups"]) == ("svc-autogen", ["agents", "deployers"])
    assert (body["key_id"], body["principals"]) == ("svc-autogen", [PRINCIPAL])
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert body["valid_before"] == datetime.datetime.fromtimestamp(
        expires, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (body["gateway_host_key"], body["ssh_port"]) == ("ssh-ed25519 AAAAHOST", 2222)
    assert body["logins"] == ["web-1", "db-jump"]


def stranger_token() -> str:
    """A token of the trusted issuer's shape, signed by a key nobody trusts."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode({"iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": "mallory",
                       "exp": int(time.time()) + 300}, key, algorithm="RS256",
                      headers={"kid": "test-rsa"})


@pytest.mark.parametrize(("authorization", "why"), [
    (lambda: None, "the agent's token is needed: Authorization: Bearer <token>"),
    (lambda: "Basic dXNlcjpwYXNz", "the agent's token is needed"),
    (lambda: "Bearer ", "the agent's token is needed"),
    (lambda: f"Bearer {stranger_token()}", "the token does not verify"),
    (lambda: f"Bearer {tokens.token(ttl=-120)}",
     "the token does not verify: it expired at "),
    (lambda: f"Bearer {tokens.token(sub='')}", "names no subject"),
], ids=["none", "basic", "empty", "stranger", "expired", "no-subject"])
async def test_no_certificate_without_a_token_that_verifies(
        client: Client, authorization: Callable[[], str | None], why: str) -> None:
    status, body = await client.post({"public_key": public_line(
        ed25519.Ed25519PrivateKey.generate())}, authorization=authorization())
    assert (status, body["error"]) == (401, "unauthenticated")
    assert why in body["message"]


@pytest.mark.parametrize(("body", "error", "why"), [
    (b"{not json", "bad_json", "the body is not JSON"),
    (b"\xff", "bad_json", "the body is not JSON"),
    ([], "bad_request", 'expected a JSON object {"public_key": "ssh-ed25519 AAAA..."}'),
    ({}, "bad_request", "expected a JSON object"),
    ({"public_key": 1}, "bad_request", "expected a JSON object"),
    ({"public_key": "ssh-ed25519 AAAA", "principals": ["root"]}, "bad_request",
     "expected a JSON object"),
    ({"public_key": "ssh-ed25519 @@@"}, "bad_key", "not an OpenSSH public key line"),
    ({"public_key": public_line(rsa.generate_private_key(public_exponent=65537, key_size=1024))},
     "bad_key", "an RSA key of 1024 bits is too weak"),
], ids=["not-json", "not-utf8", "a-list", "no-key", "key-not-text", "more-than-a-key",
        "bad-key", "weak-key"])
async def test_a_body_or_key_that_cannot_be_certified_is_a_bad_request(
        client: Client, body: Any, error: str, why: str) -> None:
    status, answer = await client.post(body, tokens.token())
    assert (status, answer["error"]) == (400, error)
    assert why in answer["message"]


async def test_a_certificate_is_not_certified_again(ca: UserCA, client: Client) -> None:
    line = ca.issue(public_line(ed25519.Ed25519PrivateKey.generate()),
                    {"sub": "svc", "exp": time.time() + 60}, 1).line
    status, answer = await client.post({"public_key": line}, tokens.token())
    assert (status, answer) == (400, {"error": "bad_key",
                                      "message": "a certificate, not a public key"})


def config_with(tmp_path: Path, **ssh: Any) -> config_module.Config:
    return config_module.parse({"targets": [{"name": "demo", "match": {"route": "demo"}}],
                                **({"ssh": ssh} if ssh else {})},
                               source=tmp_path / "tollgate.yaml")


async def test_a_gateway_without_a_user_ca_answers_404_to_agents_only(
        tmp_path: Path) -> None:
    """No ssh section, or one without user_ca_key_file: a verified caller learns there is
    no CA; one without a token learns nothing."""
    for found in (config_with(tmp_path), config_with(tmp_path, host_key_file="host")):
        api = CertificatesApi.of(found, agent_verifier(tmp_path), None)
        async with serve(api) as client:
            status, body = await client.post({"public_key": "ssh-ed25519 AAAA"},
                                             tokens.token())
            assert (status, body["error"]) == (404, "not_found")
            assert "no ssh.user_ca_key_file" in body["message"]
            assert (await client.post({"public_key": "ssh-ed25519 AAAA"}))[0] == 401


async def test_the_config_names_the_ca_the_host_key_and_the_longest_life(
        tmp_path: Path) -> None:
    """Paths resolve against the config file's folder; certificate_minutes bounds the
    life when the token lives longer."""
    ca_line = write_key(tmp_path / "ssh" / "user_ca")
    host_line = write_key(tmp_path / "ssh" / "host_ed25519")
    found = config_with(tmp_path, host_key_file="ssh/host_ed25519",
                        user_ca_key_file="ssh/user_ca", certificate_minutes=5)
    api = CertificatesApi.of(found, agent_verifier(tmp_path), 2222)
    async with serve(api) as client:
        started = time.time()
        status, body = await client.post(
            {"public_key": public_line(ed25519.Ed25519PrivateKey.generate())},
            tokens.token(ttl=3600))
    assert status == 200, body
    assert body["gateway_host_key"] == host_line
    ca = UserCA.from_file(tmp_path / "ssh" / "user_ca", Identity())
    assert ca.public_key_line == ca_line
    assert ca.claims_of(body["certificate"])["sub"] == "svc-autogen"
    until = datetime.datetime.fromisoformat(body["valid_before"]).timestamp()
    assert started + 5 * 60 - 1 <= until <= time.time() + 5 * 60


def test_a_ca_key_file_it_cannot_use_stops_the_start(tmp_path: Path) -> None:
    found = config_with(tmp_path, host_key_file="host", user_ca_key_file="missing")
    with pytest.raises(KeyFileError, match="missing: cannot read it"):
        CertificatesApi.of(found, agent_verifier(tmp_path), None)
