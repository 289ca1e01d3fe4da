"""A bad policy revision through a running gateway: pushed into its policy directory it
never serves (the old one decides, a `tollgate.policy_reload_failed` alert is recorded);
at start it keeps tollgate from starting; a runtime error an exchange meets is refused
with `policy error`, logged with its rule and trace, and alerted."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import yaml

from extproc.quickstart import stack
from tests.support.gateway import GatewayFactory

HEAD = "package tollgate\nimport rego.v1\n"
GOOD = HEAD + (
    'decision := {"action": "deny", "reasons": ["closed"], "rules": ["t.closed"]} '
    'if input.request.method == "DELETE"\n'
    'decision := {"action": "allow"} if input.request.method != "DELETE"\n')
# Compiles; then `to_number("ten")` fails every decision.
BROKEN = HEAD + 'limit := to_number("ten")\ndecision := {"action": "allow"} if limit > 1\n'
# Decides every input of the smoke set; fails on a request whose x-limit is not a number.
LIMITED = HEAD + (
    'limit := to_number(object.get(input.request.headers, "x-limit", "1"))\n'
    'decision := {"action": "allow"} if limit <= 100\n'
    'decision := {"action": "deny", "reasons": ["over the limit"], "rules": ["t.limit"]} '
    "if limit > 100\n")


def pack(tmp_path: Path, source: str) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir(exist_ok=True)
    (directory / "policy.rego").write_text(source)
    return directory


def alerts_of(records: list[dict], rule: str) -> list[dict]:
    return [r["meaning"]["alert"] for r in records if r["meaning"]["alert"]["rule"] == rule]


def test_a_broken_revision_pushed_while_serving_never_serves(
        tmp_path: Path, make_gateway: GatewayFactory) -> None:
    directory = pack(tmp_path, GOOD)
    gw = make_gateway(policy_dir=directory, policy={"watch_seconds": 0.2})
    assert gw.request("GET", "/echo").status == 200
    assert gw.request("DELETE", "/echo").json()["rules"] == ["t.closed"]

    (directory / "policy.rego").write_text(BROKEN)  # the watcher sees the files change
    stack.wait_until(lambda: alerts_of(gw.records("alert"), "tollgate.policy_reload_failed"),
                     20, "the refused reload's alert")
    (alert,) = alerts_of(gw.records("alert"), "tollgate.policy_reload_failed")
    assert alert["severity"] == "critical" and alert["identity"] == "tollgate"
    assert "could not parse string as number" in alert["message"]
    log = gw.tollgate.tail(200)
    assert "ERROR tollgate.policy: policies not reloaded (files changed)" in log
    assert "in rule data.tollgate.limit" in log
    assert gw.tollgate.alive()
    # Still the old revision's decisions, and only its load recorded.
    assert gw.request("GET", "/echo").status == 200
    refused = gw.request("DELETE", "/echo")
    assert refused.status == 403 and refused.json()["rules"] == ["t.closed"]
    assert [r["meaning"]["policy"]["why"] for r in gw.records("policy")] == ["start"]

    # Asked again (SIGHUP) with the same broken files: refused again, alerted once.
    gw.tollgate.signal(signal.SIGHUP)
    stack.wait_until(lambda: "policies not reloaded (SIGHUP)" in gw.tollgate.tail(200), 20,
                     "the second refusal")
    (directory / "policy.rego").write_text(GOOD.replace("t.closed", "t.closed.v2"))
    stack.wait_until(lambda: "policies reloaded (files changed)" in gw.tollgate.tail(200), 20,
                     "the good revision's reload")
    assert gw.request("DELETE", "/echo").json()["rules"] == ["t.closed.v2"]
    assert len(alerts_of(gw.records("alert"), "tollgate.policy_reload_failed")) == 1


def test_a_runtime_error_in_an_exchange_answers_policy_error_and_alerts(
        tmp_path: Path, make_gateway: GatewayFactory) -> None:
    gw = make_gateway(policy_dir=pack(tmp_path, LIMITED), policy={"watch_seconds": 0})
    assert gw.request("GET", "/echo", headers={"x-limit": "5"}).status == 200
    reply = gw.request("GET", "/echo", headers={"x-limit": "ten"})
    assert reply.status == 403
    body = reply.json()
    assert (body["reasons"], body["rules"]) == (["policy error"], ["tollgate.policy_error"])
    stack.wait_until(lambda: alerts_of(gw.records("alert"), "tollgate.policy_error"), 20,
                     "the policy error's alert")
    (alert,) = alerts_of(gw.records("alert"), "tollgate.policy_error")
    assert alert["trace_ids"][0] == reply.trace_id and alert["target"] == "demo"
    assert "in rule data.tollgate.limit" in alert["message"]
    assert (f"trace {reply.trace_id}: policy error in rule data.tollgate.limit on target "
            "demo (refused)") in gw.tollgate.tail(200)


def test_tollgate_refuses_to_start_on_a_pack_failing_its_smoke_set(tmp_path: Path) -> None:
    config = tmp_path / "tollgate.yaml"
    config.write_text(yaml.safe_dump({
        "policy": {"dir": str(pack(tmp_path, BROKEN))},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "targets": [{"name": "t", "match": {"route": "r"}}],
    }))
    result = subprocess.run(
        [sys.executable, "-m", "extproc", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "fail their smoke set, so tollgate does not serve them: smoke input " \
        in result.stderr
    assert "in rule data.tollgate.limit" in result.stderr
