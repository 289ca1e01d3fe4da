"""Holding for approval, end to end: a real Envoy, tollgate, the demo's SQL upstream, real
signed tokens, and approvers using `tollgate approvals` (a real subprocess) and the API.

The default pack holds a DELETE without WHERE for `group:dba`. A held request waits
in-stream (Envoy keeps it while tollgate has sent `override_message_timeout`) until an
approver decides, or its hold ends with a 403 naming the approval; a retry of the same
request passes once it is approved, and no other request does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from extproc import stack
from tests import tokens
from tests.conftest import Gateway, Reply, module_gateway

AGENT = tokens.token("svc-autogen", ["agents"], ttl=600)
DBA = tokens.token("dana", ["dba"], ttl=600)
OTHER_DBA = tokens.token("dmitri", ["dba"], ttl=600)
NOT_AN_APPROVER = tokens.token("ann", ["agents"], ttl=600)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    """The default pack; a hold waits up to 30 s (approvals come within it)."""
    with module_gateway(tmp_path_factory, otlp, "approvals",
                        settings={"approvals": {"max_hold_seconds": 30}}) as running:
        yield running


class Held:
    """A request sent in a thread of its own: it waits while tollgate holds it."""

    def __init__(self, send: Callable[[], Reply]) -> None:
        self.reply: Reply | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send: Callable[[], Reply]) -> None:
        try:
            self.reply = send()
        except BaseException as exc:  # surfaced by result()
            self.error = exc

    def result(self, timeout: float = 40) -> Reply:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the held request never got an answer"
        if self.error is not None:
            raise self.error
        assert self.reply is not None
        return self.reply

    @property
    def answered(self) -> bool:
        return not self._thread.is_alive()


def api(gw: Gateway, method: str, path: str, token: str | None,
        body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """One call to the admin API; (status, JSON answer)."""
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        gw.admin_url + path, method=method, headers=headers,
        data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def cli(gw: Gateway, *args: str, token: str | None = DBA) -> subprocess.CompletedProcess[str]:
    """`tollgate approvals ...` against this gateway's admin API."""
    env_token = ["--token", token] if token is not None else []
    return subprocess.run(
        [sys.executable, "-m", "extproc", "approvals", *args, "--url", gw.admin_url,
         *env_token],
        capture_output=True, text=True, timeout=30, check=False)


def pending_for(gw: Gateway, sql: str, timeout: float = 15) -> dict[str, Any]:
    """The pending approval of the request that sent `sql`, once it exists."""
    found: list[dict[str, Any]] = []

    def exists() -> bool:
        _, answer = api(gw, "GET", "/approvals?status=pending", OTHER_DBA)
        found[:] = [a for a in answer["approvals"] if a["request"]["body"] == {"sql": sql}]
        return bool(found)

    stack.wait_until(exists, timeout, f"a pending approval for {sql!r}")
    return found[0]


def sql(gw: Gateway, text: str, token: str = AGENT, timeout: float = 40) -> Reply:
    return gw.request("POST", "/sql", {"sql": text}, token=token, timeout=timeout)


def names(gw: Gateway) -> list[str]:
    reply = sql(gw, "SELECT name FROM customers ORDER BY id")
    return [row[0] for row in reply.json()["rows"]]


def test_a_held_write_approved_with_the_cli_completes_with_200(gw: Gateway) -> None:
    """An UPDATE without WHERE (held, like a DELETE without WHERE) waits for a dba."""
    text = "UPDATE customers SET name = upper(name)"
    before = len(gw.upstream.requests)
    held = Held(lambda: sql(gw, text))
    approval = pending_for(gw, text)
    # Held in-stream: no answer yet, and the upstream has seen nothing.
    assert not held.answered
    assert len(gw.upstream.requests) == before
    assert approval["requester"] == "svc-autogen"
    assert approval["approvers"] == ["group:dba"]
    assert approval["rules"] == ["sql.unbounded_write"]
    assert approval["summary"] == text

    done = cli(gw, "approve", approval["id"], "--reason", "cleanup ticket 42")
    assert done.returncode == 0, done.stderr
    assert f"{approval['id']} approved by dana: cleanup ticket 42" in done.stdout

    reply = held.result()
    assert reply.status == 200, reply.body
    assert len(gw.upstream.requests) == before + 1
    assert all(name == name.upper() for name in names(gw))
    spans = gw.otlp.spans_of(reply.trace_id, count=2)  # the exchange, the approval
    exchange = next(s for s in spans if s.name.startswith("tollgate POST"))
    assert exchange.attributes["tollgate.decision.action"] == "allow"
    assert exchange.attributes["tollgate.approval.status"] == "used"
    events = [e for e in exchange.events if e.name == "tollgate.approval"]
    assert events[0].attributes["tollgate.approval.status"] == "pending"
    assert events[-1].attributes["tollgate.approval.decided_by"] == "dana"
    assert events[-1].attributes["tollgate.approval.reason"] == "cleanup ticket 42"
    decision = next(s for s in spans if s.name == "tollgate approval approve")
    assert decision.attributes["enduser.id"] == "dana"
    assert decision.parent_span_id == exchange.span_id


def test_a_held_write_denied_gets_403_and_never_runs(gw: Gateway) -> None:
    text = "DELETE FROM customers"
    before = len(gw.upstream.requests)
    held = Held(lambda: sql(gw, text))
    approval = pending_for(gw, text)
    done = cli(gw, "deny", approval["id"], "--reason", "not during the freeze")
    assert done.returncode == 0, done.stderr
    reply = held.result()
    assert reply.status == 403
    body = reply.json()
    assert (body["error"], body["status"], body["approval_id"]) == (
        "approval_denied", "denied", approval["id"])
    assert "denied by dana: not during the freeze" in body["message"]
    assert len(gw.upstream.requests) == before
    assert len(names(gw)) == 4


def test_nobody_approves_their_own_request(gw: Gateway) -> None:
    """A dba's own unbounded write is held too, and their own token cannot approve it."""
    text = "UPDATE customers SET email = email"
    held = Held(lambda: sql(gw, text, token=DBA))
    approval = pending_for(gw, text)
    assert approval["requester"] == "dana"
    refused = cli(gw, "approve", approval["id"], token=DBA)
    assert refused.returncode == 1
    assert "403 self_approval" in refused.stderr
    assert not held.answered
    assert cli(gw, "deny", approval["id"], "--reason", "ask someone else",
               token=OTHER_DBA).returncode == 0
    assert held.result().status == 403
