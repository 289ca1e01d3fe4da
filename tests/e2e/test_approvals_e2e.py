"""Holding for approval, end to end: a real Envoy, tollgate, the demo's SQL upstream, real
signed tokens, and approvers using `tollgate approvals` (a real subprocess) and the API.

The default pack holds a DELETE without WHERE for `group:dba`. A held request waits
in-stream (Envoy keeps it while tollgate has sent `override_message_timeout`) until an
approver decides, or its hold ends with a 403 naming the approval; a retry of the same
request passes once it is approved, and no other request does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from extproc.codecs.inert import terminal
from extproc.quickstart import stack
from tests.support import tokens
from tests.support.gateway import Gateway, GatewayFactory, Reply, module_gateway
from tests.support.http_server import LocalServer
from tests.test_inert import ERASE, FORGED, raw

AGENT = tokens.token("svc-autogen", ["agents"])
DBA = tokens.token("dana", ["dba"])
OTHER_DBA = tokens.token("dmitri", ["dba"])
NOT_AN_APPROVER = tokens.token("ann", ["agents"])


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    """The default pack; a hold waits up to 30 s (approvals come within it)."""
    with module_gateway(tmp_path_factory, otlp, "approvals",
                        settings={"approvals": {"max_hold_seconds": 30}}) as running:
        yield running


T = TypeVar("T")


class Held(Generic[T]):
    """A request sent in a thread of its own (an HTTP request, a SQL statement): it
    waits while tollgate holds it."""

    def __init__(self, send: Callable[[], T]) -> None:
        self.reply: T | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send: Callable[[], T]) -> None:
        try:
            self.reply = send()
        except BaseException as exc:  # surfaced by result()
            self.error = exc

    def result(self, timeout: float = 40) -> T:
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
        body: dict[str, Any] | None = None, replica: int = 0) -> tuple[int, dict[str, Any]]:
    """One call to the admin API (of one replica); (status, JSON answer)."""
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{gw.replica_admin_ports[replica]}{path}", method=method,
        headers=headers,
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


def pending_where(gw: Gateway, matches: Callable[[dict[str, Any]], bool], token: str,
                  what: str, timeout: float = 15, replica: int = 0) -> dict[str, Any]:
    """The first pending approval `matches` picks, once it exists (as `token` sees it on
    the API of replica `replica`); `what` names it in a timeout's message."""
    found: list[dict[str, Any]] = []

    def exists() -> bool:
        _, answer = api(gw, "GET", "/approvals?status=pending", token, replica=replica)
        found[:] = [a for a in answer["approvals"] if matches(a)]
        return bool(found)

    stack.wait_until(exists, timeout, what)
    return found[0]


def pending_for(gw: Gateway, sql: str, timeout: float = 15, replica: int = 0
                ) -> dict[str, Any]:
    """The pending approval of the request that sent `sql`, once it exists (as the API
    of replica `replica` shows it)."""
    return pending_where(gw, lambda a: a["request"]["body"] == {"sql": sql}, OTHER_DBA,
                         f"a pending approval for {sql!r}", timeout, replica)


def left_while_held(gw: Gateway, approval_id: str, token: str) -> dict[str, Any]:
    """The approval, once the client of the request held on it has left: answered as
    left (its exchange's record), nobody waiting on it, withdrawn (its client never knew
    it was held: approving it grants nothing, a retry asks anew)."""

    def shown() -> dict[str, Any]:
        status, answer = api(gw, "GET", f"/approvals/{approval_id}", token)
        assert status == 200, answer
        return answer

    stack.wait_until(lambda: bool((shown()["wait"]["answered"] or {}).get("client_left")),
                     10, "the held request's end as its client left")
    found = shown()
    assert (found["wait"]["waiting"], found["status"]) == (False, "abandoned"), found
    assert found["reason"].startswith("withdrawn: "), found
    return found


def approve_pending(gw: Gateway, body: Any) -> None:
    """The pending approval of the request whose body was `body` (a database front's
    statement: its text), given by a dba."""
    _, answer = api(gw, "GET", "/approvals?status=pending", DBA)
    (approval,) = [a for a in answer["approvals"] if a["request"]["body"] == body]
    status, _ = api(gw, "POST", f"/approvals/{approval['id']}/approve", DBA, {})
    assert status == 200


def sql(gw: Gateway, text: str, token: str = AGENT, timeout: float = 40) -> Reply:
    return gw.request("POST", "/sql", {"sql": text}, token=token, timeout=timeout)


def held_sql(gw: Gateway, text: str, token: str = AGENT
             ) -> tuple[Held[Reply], dict[str, Any]]:
    """`text` sent as `token`'s agent, held: the waiting request, and its approval once
    pending."""
    held = Held(lambda: sql(gw, text, token=token))
    return held, pending_for(gw, text)


def names(gw: Gateway) -> list[str]:
    reply = sql(gw, "SELECT name FROM customers ORDER BY id")
    return [row[0] for row in reply.json()["rows"]]


def test_a_held_write_denied_gets_403_and_never_runs(gw: Gateway) -> None:
    text = "DELETE FROM customers"
    before = len(gw.upstream.requests)
    held, approval = held_sql(gw, text)
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
    held, approval = held_sql(gw, text, token=DBA)
    assert approval["requester"] == "dana"
    refused = cli(gw, "approve", approval["id"], token=DBA)
    assert refused.returncode == 1
    assert "403 self_approval" in refused.stderr
    assert not held.answered
    assert cli(gw, "deny", approval["id"], "--reason", "ask someone else",
               token=OTHER_DBA).returncode == 0
    assert held.result().status == 403


def test_a_held_delete_approved_with_the_cli_completes_with_200(gw: Gateway) -> None:
    """A DELETE without WHERE waits for a dba, who approves it with `tollgate approvals`
    within the hold: it runs. (After the tests above, which need the customers.)"""
    text = "DELETE FROM customers"
    before = len(gw.upstream.requests)
    held, approval = held_sql(gw, text)
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
    assert names(gw) == []
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


def test_an_agents_terminal_tricks_reach_the_approver_inert(gw: Gateway) -> None:
    """A held statement that erases the terminal line and writes a harmless one over it,
    with a bidi override: `tollgate approvals list` and `show` print no control byte and
    show the tricks as escapes, so the approver sees the real statement and what is in it."""
    text = f"UPDATE customers SET name = '{ERASE}{FORGED} \u202e'"
    held, approval = held_sql(gw, text)

    listed = cli(gw, "list")
    assert listed.returncode == 0, listed.stderr
    assert raw(listed.stdout) == []
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(approval["id"])]
    assert "UPDATE customers SET name = '\\x1b[2K SELECT count(*)" in row

    shown = cli(gw, "show", approval["id"])
    assert shown.returncode == 0, shown.stderr
    assert raw(shown.stdout) == []
    lines = shown.stdout.splitlines()
    # The one-line what (its line break a space), and the body exactly as sent.
    assert f"what       {terminal(approval['summary'])}" in lines
    assert "\\x1b[2K" in terminal(approval["summary"])
    body = next(line for line in lines if line.startswith("body "))
    assert f"\\u001b[2K\\r{FORGED} \\u202e" in body
    assert f"page       {gw.admin_url}/approvals/ui#{approval['id']}" in lines
    assert not any(line.startswith(FORGED) for line in lines)

    assert cli(gw, "deny", approval["id"], "--reason", "terminal tricks").returncode == 0
    assert held.result().status == 403


def test_a_path_cannot_forge_a_line_in_tollgates_log(gw: Gateway) -> None:
    """The admin API logs a refused call with its path, which aiohttp decodes: a %0A in it
    is a newline. The log shows it as an escape, on the refusal's own line."""
    forged = "2026-01-01 00:00:00,000 INFO tollgate.approvals: approval ap-1 approved by ceo"
    code, _ = api(gw, "GET", "/approvals/x%0A" + quote(forged), None)
    assert code == 401
    log = gw.tollgate.tail(10_000)
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())
    assert f"GET /approvals/x\\n{forged} refused: " in log


# -- holds that end, retries, grants, webhooks: a gateway with a policy of its own -------

HOLDS = """package tollgate
import rego.v1
default decision := {"action": "allow"}
# Writes wait for a dba, each approval lets its one request through.
decision := {"action": "hold", "reasons": ["writes need a dba"], "rules": ["test.write"],
             "approvers": ["group:dba"], "hold_seconds": 3} if input.request.method == "PUT"
# Deploys wait for an SRE, whose approval opens a window for the agent on this target.
decision := {"action": "hold", "reasons": ["deploys need an SRE"], "rules": ["test.deploy"],
             "approvers": ["group:sre"], "hold_seconds": 3, "grant": "window",
             "grant_minutes": 5} if input.request.method == "PATCH"
"""
SRE = tokens.token("sam", ["sre"])
HOLD_SECONDS = 3  # the policy's; Envoy's message_timeout is 2 s


def message_for(webhook: LocalServer, approval_id: str) -> dict[str, Any]:
    """The JSON the webhook was sent for `approval_id`, once it has arrived."""
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        found[:] = [m for m in (r.json() for r in webhook.received)
                    if m["approval"]["id"] == approval_id]
        return bool(found)

    stack.wait_until(arrived, 10, f"the webhook message for {approval_id}")
    return found[0]


@pytest.fixture(scope="module")
def webhook() -> Iterator[LocalServer]:
    """A real HTTP endpoint approvers are told at."""
    receiver = LocalServer(lambda *_: (200, b""), "/hooks/approvals")
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory, otlp, webhook: LocalServer  # type: ignore[no-untyped-def]
          ) -> Iterator[Gateway]:
    """Holds of 3 s, window grants cut to 4 s, approvers told at a real webhook."""
    policies = tmp_path_factory.mktemp("holds-policy")
    (policies / "holds.rego").write_text(HOLDS)
    with module_gateway(
        tmp_path_factory, otlp, "approvals-short", policy_dir=policies,
        targets=[{"name": "deploys", "match": {"route": "demo"}, "protocol": "http"}],
        settings={"approvals": {"webhook_url": webhook.url, "max_window_seconds": 4}},
    ) as running:
        yield running


def timed(send: Callable[[], Reply]) -> tuple[Reply, float]:
    started = time.monotonic()
    reply = send()
    return reply, time.monotonic() - started


def test_a_hold_nobody_decides_ends_403_naming_its_approval(short: Gateway) -> None:
    """Envoy keeps the stream past its 2 s message_timeout for the 3 s hold, then the
    client learns which approval to ask for and where."""
    reply, took = timed(lambda: short.request("PUT", "/echo?case=nobody", token=AGENT))
    assert reply.status == 403, reply.body
    assert took >= HOLD_SECONDS
    body = reply.json()
    assert (body["error"], body["status"]) == ("approval_required", "pending")
    assert body["approve_url"] == f"{short.admin_url}/approvals/{body['approval_id']}"
    assert body["reasons"] == ["writes need a dba"] and body["rules"] == ["test.write"]
    assert body["trace_id"] == reply.trace_id
    status, shown = api(short, "GET", f"/approvals/{body['approval_id']}", DBA)
    assert (status, shown["status"], shown["requester"]) == (200, "pending", "svc-autogen")
    assert "case=nobody" not in [r.query for r in short.upstream.requests]


def test_approving_x_lets_x_through_once_and_never_y(short: Gateway) -> None:
    x = short.request("PUT", "/echo?case=x", body={"rows": 1}, token=AGENT)
    approval_id = x.json()["approval_id"]
    status, _ = api(short, "POST", f"/approvals/{approval_id}/approve", DBA, {})
    assert status == 200
    # Y differs from X by its body only: it is held, on an approval of its own.
    y = short.request("PUT", "/echo?case=x", body={"rows": 2}, token=AGENT)
    assert (y.status, y.json()["error"]) == (403, "approval_required")
    assert y.json()["approval_id"] != approval_id
    # So is X from someone else.
    other = short.request("PUT", "/echo?case=x", body={"rows": 1}, token=NOT_AN_APPROVER)
    assert other.status == 403
    # X itself passes, at once, and only once.
    retry, took = timed(lambda: short.request("PUT", "/echo?case=x", body={"rows": 1},
                                              token=AGENT))
    assert retry.status == 200, retry.body
    assert took < HOLD_SECONDS
    again = short.request("PUT", "/echo?case=x", body={"rows": 1}, token=AGENT)
    assert (again.status, again.json()["error"]) == (403, "approval_required")
    assert again.json()["approval_id"] not in (approval_id, y.json()["approval_id"])
    assert [r.query for r in short.upstream.requests].count("case=x") == 1
    status, shown = api(short, "GET", f"/approvals/{approval_id}", DBA)
    assert (shown["status"], shown["decided_by"]) == ("used", "dana")
    # The record of the retry says which approval let it through.
    record = short.the_record(lambda r: r["trace_id"] == retry.trace_id, "the retry's",
                              kind="exchange")
    assert record["approval"]["id"] == approval_id
    assert record["approval"]["via"] == "grant"
    assert (record["approval"]["requested_by"], record["approval"]["decided_by"]) == (
        "svc-autogen", "dana")
    assert record["outcome"]["action"] == "allow"


def test_a_window_grant_lets_repeats_through_until_it_ends(short: Gateway) -> None:
    held = Held(lambda: short.request("PATCH", "/echo?case=deploy-1", token=AGENT))
    approval = pending_for_case(short, "deploy-1", SRE)
    assert approval["grant_mode"] == "window" and approval["grant_minutes"] == 5
    status, decided = api(short, "POST", f"/approvals/{approval['id']}/approve", SRE,
                          {"reason": "release 7"})
    assert status == 200
    # approvals.max_window_seconds (4 s here) cuts the policy's 5 minutes.
    assert decided["grant_until_us"] - decided["decided_us"] == 4_000_000
    assert held.result().status == 200
    for n in (2, 3):  # other requests, same agent and target: no wait
        reply, took = timed(lambda n=n: short.request("PATCH", f"/echo?case=deploy-{n}",
                                                      token=AGENT))
        assert reply.status == 200, reply.body
        assert took < HOLD_SECONDS
    # Not for another agent, nor for what others must decide (a write waits for a dba).
    assert short.request("PATCH", "/echo?case=deploy-4", token=NOT_AN_APPROVER).status == 403
    write = short.request("PUT", "/echo?case=deploy-write", token=AGENT)
    assert (write.status, write.json()["error"]) == (403, "approval_required")
    # Once the window has ended, the agent waits again.
    stack.wait_until(lambda: time.time() * 1e6 > decided["grant_until_us"], 10,
                     "the window's end")
    late = short.request("PATCH", "/echo?case=deploy-5", token=AGENT)
    assert (late.status, late.json()["error"]) == (403, "approval_required")


def pending_for_case(gw: Gateway, case: str, token: str) -> dict[str, Any]:
    """The pending approval of the request to /echo?case=`case`, once it exists."""
    found: list[dict[str, Any]] = []

    def exists() -> bool:
        _, answer = api(gw, "GET", "/approvals?status=pending", token)
        found[:] = [a for a in answer["approvals"] if a["request"]["query"] == {"case": [case]}]
        return bool(found)

    stack.wait_until(exists, 15, f"a pending approval for case {case}")
    return found[0]


def test_approvers_are_told_at_the_webhook_and_its_link_decides(short: Gateway,
                                                                 webhook: LocalServer) -> None:
    held = Held(lambda: short.request("PUT", "/echo?case=told", token=AGENT, timeout=20))
    approval = pending_for_case(short, "told", DBA)
    message = message_for(webhook, approval["id"])
    text = message["text"]
    for part in ("svc-autogen", "deploys", "PUT /echo?case=told", "writes need a dba",
                 "group:dba"):
        assert part in text, (part, text)
    # The link opens the approval's view on the approvers' page; the API's is in the JSON.
    assert approval["page_url"] == f"{short.admin_url}/approvals/ui#{approval['id']}"
    assert text.endswith(f"Review and decide: {approval['page_url']}")
    assert message["approval"]["page_url"] == approval["page_url"]
    status, _ = api(short, "POST", message["approval"]["approve_url"].removeprefix(
        short.admin_url) + "/approve", DBA, {})
    assert status == 200
    assert held.result().status == 200
    status, shown = api(short, "GET", f"/approvals/{approval['id']}", DBA)
    assert shown["notified"]["ok"] is True and shown["notified"]["attempts"] == 1


# -- the API's answers to bad calls, and what the record keeps --------------------------


def untrusted_token() -> str:
    """Signed by a key the gateway does not trust, under a kid it does."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    return jwt.encode({"iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": "mallory",
                       "groups": ["dba"], "iat": now, "exp": now + 300}, key,
                      algorithm="RS256", headers={"kid": "test-rsa"})


@pytest.mark.parametrize(("token", "error"), [
    (None, "unauthenticated"),
    ("not-a-token", "unauthenticated"),
    ("untrusted", "unauthenticated"),
    (tokens.token("dana", ["dba"], ttl=-60), "unauthenticated"),
    (tokens.token("dana", ["dba"], aud="someone-else"), "unauthenticated"),
], ids=["none", "garbage", "untrusted-key", "expired", "other-audience"])
def test_the_api_wants_a_token_it_can_verify(short: Gateway, token: str | None,
                                             error: str) -> None:
    token = untrusted_token() if token == "untrusted" else token
    for method, path in (("GET", "/approvals"), ("POST", "/approvals/ap-x/approve")):
        status, answer = api(short, method, path, token, {} if method == "POST" else None)
        assert (status, answer["error"]) == (401, error), answer


def test_approvers_see_and_decide_only_what_is_theirs(short: Gateway) -> None:
    reply = short.request("PUT", "/echo?case=theirs", token=AGENT)
    approval_id = reply.json()["approval_id"]
    # The requester sees their own; a dba (an approver) sees it; an SRE neither.
    for token, visible in ((AGENT, True), (DBA, True), (SRE, False)):
        _, listed = api(short, "GET", "/approvals?status=all", token)
        assert (approval_id in {a["id"] for a in listed["approvals"]}) is visible
        status, _ = api(short, "GET", f"/approvals/{approval_id}", token)
        assert status == (200 if visible else 404)
    status, answer = api(short, "POST", f"/approvals/{approval_id}/approve", SRE, {})
    assert (status, answer["error"]) == (403, "forbidden")
    assert "group:dba" in answer["message"]
    status, answer = api(short, "POST", f"/approvals/{approval_id}/approve", AGENT, {})
    assert (status, answer["error"]) == (403, "self_approval")
    status, answer = api(short, "POST", f"/approvals/{approval_id}/deny", DBA, {})
    assert (status, answer["error"]) == (400, "reason_required")
    status, answer = api(short, "POST", f"/approvals/{approval_id}/deny", DBA,
                         {"reason": "no", "extra": 1})
    assert (status, answer["error"]) == (400, "bad_request")
    status, answer = api(short, "POST", f"/approvals/{approval_id}/deny", DBA,
                         {"reason": "not today"})
    assert (status, answer["status"], answer["reason"]) == (200, "denied", "not today")
    status, answer = api(short, "POST", f"/approvals/{approval_id}/approve", OTHER_DBA, {})
    assert (status, answer["error"]) == (409, "not_pending")
    status, answer = api(short, "POST", "/approvals/ap-nope/approve", DBA, {})
    assert (status, answer["error"]) == (404, "not_found")
    status, answer = api(short, "GET", "/approvals?status=maybe", DBA)
    assert (status, answer["error"]) == (400, "bad_request")
    status, answer = api(short, "GET", "/nothing-here", DBA)
    assert (status, answer["error"]) == (404, "not_found")
    # Every attempt to decide is in the audit record: who, what, and how it ended.
    stack.wait_until(lambda: len([
        r for r in short.records() if r["kind"] == "approval"
        and (r["approval"] or {}).get("id") == approval_id]) >= 6, 10, "6 attempts recorded")
    attempts = [r for r in short.records() if r["kind"] == "approval"
                and (r["approval"] or {}).get("id") == approval_id]
    outcomes = [(r["identity"]["sub"], r["outcome"]["action"], r["outcome"]["status"],
                 r["outcome"]["refusal"]) for r in attempts]
    assert outcomes == [
        ("sam", "approve", 403, "forbidden"),
        ("svc-autogen", "approve", 403, "self_approval"),
        ("dana", "deny", 400, "reason_required"),
        ("dana", "deny", 400, "bad_request"),
        ("dana", "deny", 200, None),
        ("dmitri", "approve", 409, "not_pending"),
    ]
    denial = attempts[4]
    assert denial["request"]["body"]["value"] == {"reason": "not today"}
    assert DBA.split(".")[2] not in json.dumps(attempts)  # no approver's token, in any part
    assert (denial["approval"]["status"], denial["approval"]["decided_by"]) == (
        "denied", "dana")
    assert denial["trace_id"] == reply.trace_id  # the held request's trace


def test_the_record_with_approvals_in_it_verifies(short: Gateway) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "extproc", "audit", "verify", "--config",
         str(short.config_path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shutdown_answers_held_requests_with_their_approval(make_gateway: GatewayFactory
                                                            ) -> None:
    """SIGTERM while a request waits: it is answered at once (its approval stays, so a
    retry, on another replica, passes once approved), and tollgate exits cleanly."""
    gw = make_gateway(settings={"approvals": {"max_hold_seconds": 60}})
    held = Held(lambda: sql(gw, "UPDATE customers SET phone = phone", timeout=60))
    approval = pending_for(gw, "UPDATE customers SET phone = phone")
    started = time.monotonic()
    gw.tollgate.signal(signal.SIGTERM)
    reply = held.result()
    assert time.monotonic() - started < 5
    assert reply.status == 403
    assert (reply.json()["error"], reply.json()["approval_id"]) == (
        "approval_required", approval["id"])
    assert gw.tollgate.popen.wait(20) == 0


def test_expiry_and_a_webhook_that_is_down(make_gateway: GatewayFactory,
                                           closed_port: int) -> None:
    """The webhook cannot be reached: the approval exists all the same and says the
    notification failed. Nobody decides: it expires, can no longer be approved, and the
    same request asks anew."""
    gw = make_gateway(settings={"approvals": {
        "max_hold_seconds": 1, "expire_seconds": 2, "webhook_attempts": 1,
        "webhook_url": f"http://127.0.0.1:{closed_port}/down"}})
    first = sql(gw, "DELETE FROM customers")
    assert (first.status, first.json()["error"]) == (403, "approval_required")
    approval_id = first.json()["approval_id"]
    shown: dict[str, Any] = {}

    def notification_failed() -> bool:
        shown.update(api(gw, "GET", f"/approvals/{approval_id}", DBA)[1])
        return shown.get("notified") is not None

    stack.wait_until(notification_failed, 10, "the webhook's failure on the approval")
    assert shown["status"] in ("pending", "expired")
    assert shown["notified"]["ok"] is False and shown["notified"]["attempts"] == 1
    assert "ClientConnectorError" in shown["notified"]["error"]
    stack.wait_until(
        lambda: api(gw, "GET", f"/approvals/{approval_id}", DBA)[1]["status"] == "expired",
        10, "the approval's expiry")
    status, answer = api(gw, "POST", f"/approvals/{approval_id}/approve", DBA, {})
    assert (status, answer["error"]) == (409, "not_pending")
    again = sql(gw, "DELETE FROM customers")
    assert again.json()["approval_id"] != approval_id
    assert len(names(gw)) == 4


def test_an_approver_who_reads_no_record_still_sees_the_requesters_refusals(
        gw: Gateway) -> None:
    """dana decides for group:dba but is no reader of the record (recordings.readers is
    security and auditors here): by the approval, she reads its requester's records on
    its target, refusals first to see, and nothing else; each read is recorded."""
    assert sql(gw, "DROP TABLE customers").status == 403  # what the agent tried before
    text = "UPDATE customers SET email = email -- what else did it do?"
    held, approval = held_sql(gw, text)
    code, shown = api(gw, "GET", f"/approvals/{approval['id']}", DBA)
    assert code == 200 and (shown["reads_record"], shown["reads_requester"]) == (False, True)
    query = (f"/recordings/search?since=1d&identity=svc-autogen&target="
             f"{approval['target']}")

    def found() -> list[dict[str, Any]]:
        code, answer = api(gw, "GET", f"{query}&approval={approval['id']}", DBA)
        assert code == 200, answer
        return list(answer["records"])

    stack.wait_until(lambda: any(r["action"] == "deny" for r in found()), 15,
                     "the agent's refused DROP, read by the approval's approver")
    assert {(r["identity"], r["target"]) for r in found()} == {
        ("svc-autogen", approval["target"])}
    # Someone else's records are not hers to read by it, nor is the record without it.
    code, answer = api(gw, "GET", f"/recordings/search?since=1d&identity=dmitri"
                       f"&approval={approval['id']}", DBA)
    assert code == 200 and answer["records"] == []
    assert api(gw, "GET", query, DBA)[0] == 403
    assert api(gw, "GET", f"{query}&approval={approval['id']}", NOT_AN_APPROVER)[0] == 403
    assert api(gw, "GET", f"{query}&approval={approval['id']}", AGENT)[0] == 403
    assert api(gw, "GET", f"{query}&approval=ap-none", DBA)[0] == 403
    code, _ = api(gw, "POST", f"/approvals/{approval['id']}/deny", OTHER_DBA,
                  {"reason": "the test is over"})
    assert code == 200 and held.result().status == 403

    def reads() -> list[dict[str, Any]]:
        return [r for r in gw.records("access")
                if r["meaning"]["access"]["query"].get("approval") == approval["id"]
                and r["identity"]["sub"] == "dana"]

    stack.wait_until(lambda: any(r["outcome"]["status"] == 200 for r in reads()), 10,
                     "dana's reads by the approval, in the record")
