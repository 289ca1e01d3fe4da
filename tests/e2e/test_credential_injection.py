"""The agent never holds a target's credential: tollgate injects it, and leaks it nowhere.

Through a real Envoy: the demo upstream's /echo shows what arrived upstream. Then
every place a secret could escape is searched for it — tollgate's log, every
exported span (attributes and events), the policy input and every error body.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import pytest

from tests.support import tokens
from tests.support.gateway import Gateway, GatewayFactory, Reply

# Shows the policy input as the deny reason on /inspect; refuses DROP as the pack does.
POLICY = """package tollgate
import rego.v1

default decision := {"action": "allow"}

decision := {"action": "deny", "reasons": [json.marshal(input)], "rules": ["inspect"]} if {
	input.request.path == "/inspect"
}

decision := {"action": "deny", "reasons": ["no DROP"], "rules": ["sql.destructive"]} if {
	contains(upper(input.request.body.sql), "DROP")
}
"""


@pytest.fixture
def secret_env() -> dict[str, str]:
    return {"ORDERS_TOKEN": f"s3cr3t-{secrets.token_hex(12)}",
            "LEGACY_LOGIN": f"svc:pw-{secrets.token_hex(12)}",
            "REPORTS_KEY": f"key-{secrets.token_hex(12)}"}


@pytest.fixture
def gw(make_gateway: GatewayFactory, tmp_path: Path, secret_env: dict[str, str]) -> Gateway:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "policy.rego").write_text(POLICY)
    return make_gateway(policy_dir=tmp_path / "policies", env=secret_env, targets=[
        {"name": "demo", "match": {"route": "demo"}, "strip_headers": ["x-agent-session"],
         "credential": {"type": "bearer", "from_env": "ORDERS_TOKEN"}},
        {"name": "legacy", "match": {"route": "legacy"},
         "credential": {"type": "basic", "from_env": "LEGACY_LOGIN"}},
        {"name": "reports", "match": {"route": "reports"},
         "credential": {"type": "header", "from_env": "REPORTS_KEY", "header": "x-api-key"}},
    ], routes=[
        {"name": "legacy", "match": {"prefix": "/legacy/"},
         "route": {"cluster": "demo_upstream", "prefix_rewrite": "/echo?"}},
        {"name": "reports", "match": {"prefix": "/reports/"},
         "route": {"cluster": "demo_upstream", "prefix_rewrite": "/echo?"}},
    ])


def echoed(reply: Reply) -> dict[str, str]:
    assert reply.status == 200, reply.body
    return {k.lower(): v for k, v in reply.json()["headers"].items()}


def test_each_credential_type_reaches_the_upstream_instead_of_the_agents_token(
    gw: Gateway, secret_env: dict[str, str]
) -> None:
    token = tokens.token()
    bearer = echoed(gw.request("GET", "/echo", token=token))
    assert bearer["authorization"] == f"Bearer {secret_env['ORDERS_TOKEN']}"

    basic = echoed(gw.request("GET", "/legacy/x", token=token))
    assert basic["authorization"] == (
        "Basic " + base64.b64encode(secret_env["LEGACY_LOGIN"].encode()).decode()
    )

    header = echoed(gw.request("GET", "/reports/x", token=token,
                               headers={"x-api-key": "the-agents-own-guess"}))
    assert header["x-api-key"] == secret_env["REPORTS_KEY"]
    assert "authorization" not in header  # the agent's token stops at the gateway
    for seen in (bearer, basic, header):
        assert token not in json.dumps(seen)


def test_stripped_headers_do_not_reach_the_upstream(gw: Gateway) -> None:
    seen = echoed(gw.request("GET", "/echo", headers={"x-agent-session": "abc", "x-keep": "1"}))
    assert "x-agent-session" not in seen
    assert seen["x-keep"] == "1"


def test_a_body_request_gets_the_credential_too(gw: Gateway, secret_env: dict[str, str]) -> None:
    reply = gw.request("POST", "/echo", {"sql": "SELECT 1"})
    assert echoed(reply)["authorization"] == f"Bearer {secret_env['ORDERS_TOKEN']}"


def test_no_secret_and_no_agent_token_leaks_anywhere(
    gw: Gateway, secret_env: dict[str, str]
) -> None:
    token = tokens.token("svc-leaky", ["agents"])
    replies = [
        gw.request("GET", "/echo", token=token),                            # allowed
        gw.request("GET", "/inspect", token=token,                          # the policy input
                   headers={"x-api-key": secret_env["REPORTS_KEY"]}),
        gw.request("POST", "/sql", {"sql": "DROP TABLE t"}, token=token),   # denied
        gw.request("POST", "/sql", b'{"sql": ', token=token,                # malformed JSON
                   headers={"content-type": "application/json"}),
        gw.request("GET", "/reports/x", token=token),                       # header credential
        gw.request("GET", "/legacy/x", token=token),                        # basic credential
        gw.request("GET", "/echo", token="not.a.token"),                    # refused by Envoy
    ]
    assert [r.status for r in replies] == [200, 403, 403, 400, 200, 200, 401]
    policy_input = replies[1].json()["reasons"][0]
    assert json.loads(policy_input)["request"]["headers"]["x-api-key"].startswith("<redacted:")

    trace_ids = [r.trace_id for r in replies[:6]]
    spans = gw.otlp.wait_for(lambda spans: {s.trace_id for s in spans} >= set(trace_ids))
    exported = json.dumps([
        {"name": s.name, "attributes": s.attributes,
         "events": [(e.name, e.attributes) for e in s.events]}
        for s in spans if s.trace_id in trace_ids
    ], default=str)
    errors = [r.body.decode() for r in replies[1:4] + replies[6:]]
    logs = gw.tollgate.tail(10_000)
    basic = base64.b64encode(secret_env["LEGACY_LOGIN"].encode()).decode()
    for secret in [*secret_env.values(), basic, token]:
        for where, text in [("spans", exported), ("policy input", policy_input),
                            ("error bodies", "\n".join(errors)), ("tollgate log", logs)]:
            assert secret not in text, f"a secret leaked into the {where}"
