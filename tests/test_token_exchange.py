"""Exchanged upstream credentials: what the configuration refuses, what the token endpoint
is sent, and how long its tokens are kept (a real HTTP token endpoint, a fake clock)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from extproc import config, envoy_bootstrap
from extproc.credentials import CredentialStore
from extproc.token_exchange import TOKEN_EXCHANGE_GRANT, Subject, TokenUnavailable, verified_subject
from tests.support.http_server import LocalServer, refusing_port

SECRET = "client-secret-LEAKED-IF-SHOWN"
AGENT_TOKEN = "agent.jwt.LEAKED-IF-SHOWN"


def exchanged(token_url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "token_exchange", "from_env": "TG_CLIENT_SECRET", "token_url": token_url,
            "client_id": "tollgate", "resource": "http://127.0.0.1:9/mcp", **extra}


def store(tmp_path: Path, credential: dict[str, Any], protocol: str = "http"
          ) -> CredentialStore:
    target = {"name": "orders", "protocol": protocol, "match": {"route": "orders"},
              "credential": credential}
    return CredentialStore.from_config(
        config.parse({"targets": [target]}, source=tmp_path / "tollgate.yaml"))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_CLIENT_SECRET", SECRET)


@pytest.mark.parametrize(
    ("credential", "expected"),
    [
        ({k: v for k, v in exchanged("http://127.0.0.1:9/token").items() if k != "token_url"},
         "credential.token_url: required for type 'token_exchange'"),
        (exchanged("http://as.example/token"), "credential.token_url: expected the token "
                                               "endpoint as https://"),
        (exchanged("https://as.example/token", client_id=None),
         "credential.client_id: required"),
        (exchanged("https://as.example/token", resource=None),
         "credential: needs 'audience' or 'resource'"),
        (exchanged("https://as.example/token", scope="a  b"), "credential.scope: "),
        (exchanged("https://as.example/token", timeout=0), "credential.timeout: "),
        ({"type": "bearer", "from_env": "X", "token_url": "https://as.example/token"},
         "credential.token_url: only used with type 'token_exchange' or"),
    ],
)
def test_config_mistakes_are_named(credential: dict[str, Any], expected: str) -> None:
    target = {"name": "a", "match": {"route": "a"}, "credential": credential}
    with pytest.raises(config.ConfigError) as err:
        config.parse({"targets": [target]})
    assert expected in str(err.value)


@pytest.mark.parametrize("protocol", ["k8s", "ssh", "postgres", "mysql"])
def test_exchanged_credentials_are_refused_off_the_http_front(protocol: str) -> None:
    target: dict[str, Any] = {"name": "a", "protocol": protocol,
                              "credential": {**exchanged("https://as.example/token"),
                                             "type": "client_credentials"}}
    if protocol in ("postgres", "mysql"):
        target |= {"match": {"database": "d"}, protocol: {"upstream": "db:1", "user": "u"}}
    elif protocol == "ssh":
        target |= {"match": {"login": "l"}}
    else:
        target |= {"match": {"route": "a"}}
    expected = (f"a {protocol} target's credential is a password"
                if protocol in ("postgres", "mysql") else
                "client_credentials is for targets reached through the HTTP front")
    with pytest.raises(config.ConfigError) as err:
        config.parse({"targets": [target]})
    assert f"targets[0].credential.type: {expected}" in str(err.value)


class TokenEndpoint:
    """A token endpoint answering `answers` in turn, keeping the forms it was sent."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.server = LocalServer(self.answer, path="/token")

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        status, data = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return status, json.dumps(data).encode()

    @property
    def url(self) -> str:
        return self.server.url


def test_token_exchange_sends_the_agents_token_and_caches_to_expiry(
        tmp_path: Path, secret: None) -> None:
    clock = Clock()
    endpoint = TokenEndpoint((200, {"access_token": "upstream-1", "token_type": "Bearer",
                                    "expires_in": 300}),
                             (200, {"access_token": "upstream-2", "token_type": "Bearer",
                                    "expires_in": 300}))
    with endpoint.server:
        credentials = store(tmp_path, exchanged(endpoint.url, scope="tools:read"))
        source = credentials.sources["orders"]
        source.clock = clock

        async def run() -> list[bytes]:
            values = []
            for advance in (0, 200, 70):  # 270 s: within the margin of the 300 s lifetime
                clock.now += advance
                injection = await credentials.upstream("orders", Subject(AGENT_TOKEN, None))
                values.append(injection.value)
                assert injection.header == "authorization"
                assert "authorization" in injection.remove
            return values

        values = asyncio.run(run())
        received = endpoint.server.received

    assert values == [b"Bearer upstream-1", b"Bearer upstream-1", b"Bearer upstream-2"]
    assert len(received) == 2
    form = {k: v[0] for k, v in parse_qs(received[0].body.decode()).items()}
    assert form == {"grant_type": TOKEN_EXCHANGE_GRANT, "subject_token": AGENT_TOKEN,
                    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                    "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "resource": "http://127.0.0.1:9/mcp", "scope": "tools:read"}
    auth = received[0].headers["authorization"]
    assert base64.b64decode(auth.removeprefix("Basic ")).decode() == f"tollgate:{SECRET}"


def test_a_token_the_upstream_refused_is_dropped_and_no_other(
        tmp_path: Path, secret: None) -> None:
    endpoint = TokenEndpoint(*((200, {"access_token": f"upstream-{i}", "token_type": "Bearer",
                                      "expires_in": 300}) for i in (1, 2)))
    with endpoint.server:
        credentials = store(tmp_path, exchanged(endpoint.url))

        async def run() -> list[bytes]:
            first = await credentials.upstream("orders", Subject(AGENT_TOKEN, None))
            credentials.rejected("orders", "upstream-0")  # not one it gave: nothing goes
            kept = await credentials.upstream("orders", Subject(AGENT_TOKEN, None))
            credentials.rejected("orders", "upstream-1")
            return [first.value, kept.value, (await credentials.upstream(
                "orders", Subject(AGENT_TOKEN, None))).value]

        values = asyncio.run(run())
    assert values == [b"Bearer upstream-1", b"Bearer upstream-1", b"Bearer upstream-2"]
    assert len(endpoint.server.received) == 2


def test_each_agent_token_has_its_own_exchange_and_none_outlives_it(
        tmp_path: Path, secret: None) -> None:
    clock = Clock()
    endpoint = TokenEndpoint((200, {"access_token": "t", "token_type": "bearer",
                                    "expires_in": 3600}))
    with endpoint.server:
        credentials = store(tmp_path, exchanged(endpoint.url))
        credentials.sources["orders"].clock = clock

        async def run() -> None:
            await credentials.upstream("orders", Subject("agent-a", clock.now + 60))
            await credentials.upstream("orders", Subject("agent-b", clock.now + 60))
            await credentials.upstream("orders", Subject("agent-a", clock.now + 60))  # cached
            clock.now += 61  # agent-a's token expired: its exchange is not kept
            await credentials.upstream("orders", Subject("agent-a", clock.now + 60))

        asyncio.run(run())
        subjects = [parse_qs(r.body.decode())["subject_token"][0]
                    for r in endpoint.server.received]
    assert subjects == ["agent-a", "agent-b", "agent-a"]


def test_client_credentials_are_shared_by_every_agent(tmp_path: Path, secret: None) -> None:
    endpoint = TokenEndpoint((200, {"access_token": "own", "token_type": "Bearer",
                                    "expires_in": 600}))
    with endpoint.server:
        credentials = store(tmp_path, {**exchanged(endpoint.url), "type": "client_credentials",
                                       "resource": None, "audience": "orders-api"})

        async def run() -> None:
            await asyncio.gather(*(credentials.upstream("orders", Subject(f"agent-{i}", None))
                                   for i in range(5)))
            await credentials.upstream("orders", None)

        asyncio.run(run())
        received = endpoint.server.received
    assert len(received) == 1  # concurrent requests waited for the one exchange
    assert parse_qs(received[0].body.decode()) == {"grant_type": ["client_credentials"],
                                                   "audience": ["orders-api"]}


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((400, {"error": "invalid_grant"}), "refused: HTTP 400 (invalid_grant)"),
        ((200, {"token_type": "Bearer"}), "answered without an access_token"),
        ((200, {"access_token": "x", "token_type": "N_A"}), "of type 'N_A', not Bearer"),
        ((200, {"access_token": "a b", "token_type": "Bearer"}), "not a bearer token"),
    ],
)
def test_a_refusing_endpoint_gives_no_token_and_says_why(
        tmp_path: Path, secret: None, answer: tuple[int, dict[str, Any]], reason: str,
        caplog: pytest.LogCaptureFixture) -> None:
    endpoint = TokenEndpoint(answer)
    with endpoint.server:
        credentials = store(tmp_path, exchanged(endpoint.url))
        with pytest.raises(TokenUnavailable) as err:
            asyncio.run(credentials.upstream("orders", Subject(AGENT_TOKEN, None)))
    assert reason in str(err.value)
    for text in (str(err.value), caplog.text):
        assert SECRET not in text and AGENT_TOKEN not in text


def test_an_endpoint_down_or_without_a_subject_gives_no_token(
        tmp_path: Path, secret: None) -> None:
    with refusing_port() as port:
        credentials = store(tmp_path, exchanged(f"http://127.0.0.1:{port}/token"))
        with pytest.raises(TokenUnavailable, match="cannot be reached"):
            asyncio.run(credentials.upstream("orders", Subject(AGENT_TOKEN, None)))
    with pytest.raises(TokenUnavailable, match="this request carries none"):
        asyncio.run(credentials.upstream("orders", None))


@pytest.mark.parametrize(("kind", "kept"), [("token_exchange", True),
                                            ("client_credentials", False), (None, False)])
def test_the_bootstrap_keeps_the_agents_token_only_for_token_exchange(
        kind: str | None, kept: bool) -> None:
    """jwt_authn leaves the verified token in its header only when tollgate trades it."""
    credential = {**exchanged("https://as.example/token"), "type": kind} if kind else None
    target = {"name": "orders", "match": {"route": "orders"}, "credential": credential}
    written = envoy_bootstrap.for_config(config.parse({"targets": [target]}))
    providers = envoy_bootstrap.jwt_providers(written.bootstrap).values()
    assert providers and all(p.get("forward", False) is kept for p in providers)


def test_only_the_token_whose_claims_envoy_verified_is_exchanged() -> None:
    """jwt_authn may verify a token from the query (`access_token`) while the header
    carries another: that other is never traded for an upstream token."""
    from tests.support import tokens

    mine, other = tokens.token("svc-a", ["agents"]), tokens.token("svc-b", ["agents"])
    claims = _claims(mine)
    assert verified_subject(claims, {"authorization": f"Bearer {mine}"}) == Subject(
        mine, claims["exp"])
    assert verified_subject(claims, {"authorization": f"Bearer {other}"}) is None
    assert verified_subject(claims, {"authorization": "Bearer not-a-jwt"}) is None
    assert verified_subject(None, {"authorization": f"Bearer {mine}"}) is None
    # As Envoy hands the claims over (a protobuf Struct): numbers as floats.
    floated = {k: float(v) if isinstance(v, int) else v for k, v in claims.items()}
    assert verified_subject(floated, {"authorization": f"Bearer {mine}"}) == Subject(
        mine, float(claims["exp"]))


def _claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
