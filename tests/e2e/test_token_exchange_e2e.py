"""Credentials exchanged upstream, through a real Envoy, tollgate and the development
OpenID provider: the upstream gets a token made for it (RFC 8693), never the agent's."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc import envoy_bootstrap
from extproc.quickstart import dev_oidc, stack
from tests.support import tokens
from tests.support.gateway import GatewayFactory
from tests.support.http_server import LocalServer, refusing_port
from tests.support.oidc import free_port

CLIENT = "tollgate-upstream"


def claims_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@contextlib.contextmanager
def exchanging_provider(folder: Path) -> Iterator[tuple[int, str, str]]:
    """The development provider exchanging the test tokens for the upstream's: its port,
    the upstream's resource URL and the gateway's client secret."""
    why = dev_oidc.missing()
    if why is not None:
        pytest.fail(f"no development OpenID provider: {why}; `make test` installs it")
    port, secret = free_port(), secrets.token_hex(16)
    resource = "http://127.0.0.1:9/orders"
    process = dev_oidc.start(port, "http://127.0.0.1:1", folder, resources={resource: ["orders"]},
                             token_exchange={"client_id": CLIENT, "client_secret": secret,
                                             "subject_issuer": tokens.ISSUER,
                                             "subject_jwks": json.loads(tokens.jwks())})
    try:
        yield port, resource, secret
    finally:
        process.stop()


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[tuple[int, str, str]]:
    with exchanging_provider(tmp_path) as running:
        yield running


def exchanges(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/dev/exchanges", timeout=5) as got:
        return int(json.load(got)["exchanges"])


def target(token_url: str, resource: str) -> dict[str, Any]:
    return {"name": "demo", "match": {"route": "demo"},
            "credential": {"type": "token_exchange", "from_env": "TG_CLIENT_SECRET",
                           "token_url": token_url, "client_id": CLIENT,
                           "resource": resource, "timeout": 3}}


def test_the_upstream_gets_an_exchanged_token_for_it_cached_per_agent_token(
        make_gateway: GatewayFactory, provider: tuple[int, str, str]) -> None:
    port, resource, secret = provider
    gw = make_gateway(targets=[target(f"http://127.0.0.1:{port}/token", resource)],
                      env={"TG_CLIENT_SECRET": secret},
                      envoy=envoy_bootstrap.with_verified_token_kept)
    agent = tokens.token(sub="agent-7")
    for _ in range(2):
        reply = gw.request("GET", "/echo", token=agent)
        assert reply.status == 200, reply.body
    seen = [r.headers.get("authorization", "") for r in gw.upstream.requests[-2:]]
    assert seen[0] == seen[1]  # the second request used the cached token
    assert exchanges(port) == 1
    upstream_token = seen[0].removeprefix("Bearer ")
    assert upstream_token != agent and agent not in json.dumps(
        [dict(r.headers) for r in gw.upstream.requests])
    claims = claims_of(upstream_token)
    assert claims["aud"] == resource
    assert claims["sub"] == "agent-7"
    assert claims["act"] == {"sub": CLIENT}


def test_a_provider_down_refuses_with_a_clear_503(make_gateway: GatewayFactory) -> None:
    secret = f"client-secret-{secrets.token_hex(8)}"
    with refusing_port() as port:
        gw = make_gateway(targets=[target(f"http://127.0.0.1:{port}/token",
                                          "http://127.0.0.1:9/orders")],
                          env={"TG_CLIENT_SECRET": secret},
                          envoy=envoy_bootstrap.with_verified_token_kept)
        before = len(gw.upstream.requests)
        reply = gw.request("GET", "/echo", token=tokens.token(sub="agent-7"))
    assert reply.status == 503
    body = reply.body.decode()
    assert "credential cannot be obtained" in body and "cannot be reached" in body, body
    assert len(gw.upstream.requests) == before  # nothing went upstream
    refused: list[dict[str, Any]] = []

    def recorded() -> bool:
        refused[:] = [r for r in gw.records("exchange")
                      if "credential_unavailable" in json.dumps(r)]
        return bool(refused)

    stack.wait_until(recorded, 10, "the refusal's record")
    assert secret not in json.dumps(refused)


def test_a_token_the_upstream_refuses_is_asked_for_anew(
        make_gateway: GatewayFactory, provider: tuple[int, str, str]) -> None:
    """A 401 from the upstream (the token revoked before its expiry) drops it from the
    cache: the next request goes with a new token, not with the refused one until it
    expires."""
    port, resource, secret = provider
    statuses = iter([401, 200, 200])

    def answer(method: str, path: str, body: bytes) -> tuple[int, bytes]:
        return next(statuses), b"{}"

    upstream = LocalServer(answer)
    with upstream:
        gw = make_gateway(
            targets=[{**target(f"http://127.0.0.1:{port}/token", resource),
                      "match": {"route": "revoking"}}],
            routes=[{"name": "revoking", "match": {"prefix": "/revoking"},
                     "route": {"cluster": "revoking"}}],
            clusters={"revoking": upstream.port}, env={"TG_CLIENT_SECRET": secret},
            envoy=envoy_bootstrap.with_verified_token_kept)
        agent = tokens.token(sub="agent-7")
        seen = [gw.request("GET", "/revoking", token=agent).status for _ in range(3)]
    assert seen == [401, 200, 200]
    first, second, third = (r.headers["authorization"] for r in upstream.received)
    assert first != second == third  # the refused token never went again
    assert exchanges(port) == 2
