"""Identity end to end: Envoy's jwt_authn verifies real RSA and EC tokens, tollgate decides on who.

Tokens are signed by PyJWT with keys made for the session (tests/support/tokens.py); Envoy
verifies them against a JWKS holding the public halves, exactly as it would for an
identity provider.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.standins.otlp_receiver import OtlpReceiver
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway, route

# Denies /whoami with the identity it saw as the reason; the rest as the default pack
# would, plus: group `agents` may not run DELETE, group `dba` may.
POLICY = """package tollgate
import rego.v1

default decision := {"action": "allow"}

decision := {"action": "deny", "reasons": [json.marshal(input.identity)], "rules": ["whoami"]} if {
	input.request.path == "/whoami"
}

decision := {"action": "deny", "reasons": ["DELETE needs group dba"], "rules": ["sql.delete"]} if {
	input.request.path == "/sql"
	regex.match(`(?i)(^|[^a-z])delete([^a-z]|$)`, input.request.body.sql)
	not "dba" in input.identity.groups
}
"""


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("identity-policies")
    (directory / "policy.rego").write_text(POLICY)
    return directory


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver,
       policies: Path) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "identity", policy_dir=policies, targets=[
        {"name": "demo", "match": {"route": "demo"}},
        {"name": "open", "match": {"route": "open"}, "anonymous": True},
        {"name": "unguarded", "match": {"route": "unguarded"}},
    ], routes=[
        route("open", "/open/", requirement_name="token_if_any"),
        # A route Envoy does not check tokens on: tollgate must not trust it.
        route("unguarded", "/unguarded/", disabled=True),
    ]) as running:
        yield running


@pytest.fixture(autouse=True)
def upstream_forgets(gw: Gateway) -> None:
    """One gateway serves the module: each test sees only what its own requests reached."""
    gw.upstream.requests.clear()


def whoami(gw: Gateway, token: str) -> dict:
    reply = gw.request("GET", "/whoami", token=token)
    assert reply.status == 403, reply.body
    return json.loads(reply.json()["reasons"][0])


@pytest.mark.parametrize("kid", ["test-rsa", "test-ec"])
def test_a_valid_token_passes_and_its_identity_reaches_decision_and_span(
    gw: Gateway, kid: str
) -> None:
    token = tokens.token("svc-autogen", ["agents", "readers"], kid=kid, email="bot@example.com")
    assert gw.request("GET", "/echo", token=token).status == 200
    seen = whoami(gw, token)
    assert seen == {
        "authenticated": True, "sub": "svc-autogen", "iss": tokens.ISSUER,
        "aud": [tokens.AUDIENCE], "email": "bot@example.com", "groups": ["agents", "readers"],
        "jti": jwt.decode(token, options={"verify_signature": False})["jti"],
    }
    reply = gw.request("GET", "/echo", token=token)
    span = gw.otlp.spans_of(reply.trace_id)[0]
    assert span.attributes["enduser.id"] == "svc-autogen"
    assert span.attributes["tollgate.identity.groups"] == ("agents", "readers")
    assert span.attributes["tollgate.identity.issuer"] == tokens.ISSUER


def _signed_by_another_key() -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(tokens.token(), options={"verify_signature": False})
    return jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "test-rsa"})


def _tampered() -> str:
    header, payload, signature = tokens.token(groups=["agents"]).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["dba"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _alg_none() -> str:
    claims = jwt.decode(tokens.token(), options={"verify_signature": False})
    return jwt.encode(claims, None, algorithm="none")


BAD_TOKENS: dict[str, Callable[[], str | None]] = {
    "expired": lambda: tokens.token(exp=int(time.time()) - 300, iat=int(time.time()) - 600),
    "not-yet-valid": lambda: tokens.token(nbf=int(time.time()) + 600),
    # Good forever, or for longer than the provider's max_lifetime (7 days from now).
    "no-expiry": lambda: tokens.token(exp=None),
    "expiring-in-8-days": lambda: tokens.token(ttl=8 * 86400),
    "expiring-in-8-days-without-iat": lambda: tokens.token(ttl=8 * 86400, iat=None),
    "wrong-issuer": lambda: tokens.token(iss="https://evil.test"),
    "wrong-audience": lambda: tokens.token(aud="someone-else"),
    "alg-none": _alg_none,
    "bad-signature": _signed_by_another_key,
    "tampered-payload": _tampered,
    "not-a-jwt": lambda: "not.a.token",
    "missing": lambda: None,
}


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_bad_or_missing_tokens_get_401_from_envoy_and_reach_nothing(
    gw: Gateway, make_token: Callable[[], str | None]
) -> None:
    token = make_token()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    asked = gw.envoy_stat("http.ingress.ext_proc.streams_started")
    reply = gw.request("POST", "/sql", {"sql": "SELECT 1"}, headers=headers, token=None)
    assert reply.status == 401, reply.body
    answer = reply.json()
    assert answer["error"] == "unauthenticated"
    assert "Jwt" in answer["message"]  # Envoy's reason, e.g. "Jwt is expired"
    assert gw.upstream.requests == []
    # tollgate never asked
    assert gw.envoy_stat("http.ingress.ext_proc.streams_started") == asked


def test_a_forged_payload_header_is_stripped_and_ignored(gw: Gateway) -> None:
    forged = base64.b64encode(json.dumps({"sub": "root", "groups": ["dba"]}).encode()).decode()
    token = tokens.token("svc-autogen", ["agents"])
    reply = gw.request("GET", "/whoami", headers={"x-jwt-payload": forged}, token=token)
    assert json.loads(reply.json()["reasons"][0])["groups"] == ["agents"]
    echo = gw.request("GET", "/echo", headers={"x-jwt-payload": forged}, token=token).json()
    assert "x-jwt-payload" not in {k.lower() for k in echo["headers"]}


def test_group_based_policy_end_to_end(gw: Gateway) -> None:
    delete = {"sql": "DELETE FROM customers WHERE id = 'c-1004'"}
    agent = gw.request("POST", "/sql", delete, token=tokens.token("svc-autogen", ["agents"]))
    assert agent.status == 403 and agent.json()["rules"] == ["sql.delete"]
    assert [r.path for r in gw.upstream.requests] == []
    dba = gw.request("POST", "/sql", delete, token=tokens.token("alice", ["dba"]))
    assert dba.status == 200, dba.body
    assert [r.path for r in gw.upstream.requests] == ["/sql"]


def test_agent_token_never_reaches_the_upstream(gw: Gateway) -> None:
    token = tokens.token()
    echo = gw.request("GET", "/echo", token=token).json()
    assert token not in json.dumps(echo)
    assert "authorization" not in {k.lower() for k in echo["headers"]}


def test_anonymous_target_decides_without_identity_but_still_refuses_bad_tokens(
    gw: Gateway,
) -> None:
    # The demo upstream knows no /open/ path: its 404 shows the request got there.
    assert gw.request("GET", "/open/anonymous", token=None).status == 404
    assert gw.request("GET", "/open/with-token", token=tokens.token()).status == 404
    bad = gw.request("GET", "/open/bad-token", token=tokens.token(aud="someone-else"))
    assert bad.status == 401
    assert gw.upstream_paths() == ["/open/anonymous", "/open/with-token"]


@pytest.mark.parametrize("sub", [None, ""], ids=["no-sub", "empty-sub"])
@pytest.mark.parametrize("path", ["/echo", "/open/x"], ids=["guarded", "anonymous-target"])
def test_a_verified_token_naming_no_subject_is_refused_by_tollgate(
    gw: Gateway, sub: str | None, path: str,
) -> None:
    """It identifies nobody: not an identity, and not anonymous either (a token sent is
    judged, even on an anonymous target). Refused 401, with the reason and trace id."""
    reply = gw.request("GET", path, token=tokens.token(sub=sub))
    assert reply.status == 401, reply.body
    answer = reply.json()
    assert answer["error"] == "unauthenticated"
    assert "names no subject" in answer["message"]
    assert answer["trace_id"] == reply.trace_id
    assert gw.upstream.requests == []
    span = gw.otlp.spans_of(reply.trace_id)[0]
    assert span.attributes["tollgate.identity.authenticated"] is False
    assert span.attributes["tollgate.refusal"] == "unauthenticated"


def test_a_route_envoy_does_not_guard_is_refused_by_tollgate(gw: Gateway) -> None:
    reply = gw.request("GET", "/unguarded/thing", token=None)
    assert reply.status == 401
    assert reply.json()["error"] == "unauthenticated"
    assert "needs a verified token" in reply.json()["message"]
    assert reply.json()["trace_id"] == reply.trace_id
    assert gw.upstream.requests == []
