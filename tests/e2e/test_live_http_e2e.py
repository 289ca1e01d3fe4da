"""Live sessions of the HTTP front end to end: an agent's requests that name a session
(`x-session-id`) are listed as one session of front `http`, counted; ending it refuses
every later request carrying its id with 403 `session_ended` naming who and why, on the
replica that holds it and on the other one (the end travels through the store).

Real Envoy, tollgate and the demo upstream; an HTTP client of the standard library.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from extproc.quickstart import stack
from extproc.store import connect
from tests.e2e.test_approvals_e2e import api
from tests.e2e.test_live_sessions_e2e import SECURITY, end, listed, moderation, sessions_cli
from tests.support import tokens
from tests.support.gateway import POLICIES, Gateway, GatewayFactory, module_gateway

QUERY = "/echo?x=1"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "live-http") as running:
        yield running


def ask(gw: Gateway, token: str, session: str) -> Any:
    return gw.request("GET", QUERY, headers={"x-session-id": session}, token=token)


def refused_after(gw: Gateway, asked: float, token: str, session: str) -> float:
    """Seconds from the end's call until a request of the session is refused."""
    refused: list[Any] = []

    def told() -> bool:
        reply = ask(gw, token, session)
        refused[:] = [reply] if reply.status == 403 else []
        return bool(refused)
    stack.wait_until(told, 10, "a request of the ended session refused")
    return time.monotonic() - asked


def test_a_named_session_is_listed_ended_and_refused_afterwards(gw: Gateway) -> None:
    sub, session = "svc-live-http", "run-http-1"
    token = tokens.token(sub, ["agents"])
    for _ in range(3):
        assert ask(gw, token, session).status == 200
    stack.wait_until(lambda: [s["exchanges"] for s in listed(gw, sub)] == [3], 10,
                     "the three requests counted")
    (found,) = listed(gw, sub)
    assert (found["session_id"], found["front"], found["target"]) == (session, "http", "demo")
    shown = sessions_cli(gw, "list", "--front", "http", "--identity", sub)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split()[:3] == [session, "http", sub]
    asked, answer = end(gw, session, "scraping")
    seconds = refused_after(gw, asked, token, session)
    print(f"\nan end reached an HTTP client (its next request refused) in "
          f"{seconds * 1000:.0f} ms")
    assert answer["ended"] is True, answer  # nothing in flight: closed at once
    reply = ask(gw, token, session)
    assert reply.status == 403, reply.body
    assert reply.json()["error"] == "session_ended"
    assert "this session was ended by sec-sam: scraping" in reply.json()["message"]
    # Another session of the same identity is not ended (a lock would be).
    assert ask(gw, token, "run-http-2").status == 200
    record = moderation(gw, session)
    assert record["meaning"]["moderation"]["front"] == "http"


def test_a_lock_refuses_every_session_of_the_identity(gw: Gateway) -> None:
    sub = "svc-live-http-lock"
    token = tokens.token(sub, ["agents"])
    assert ask(gw, token, "lock-1").status == 200
    listed(gw, sub)
    status, answer = api(gw, "POST", "/sessions/locks", SECURITY,
                         {"identity": sub, "reason": "rotating", "seconds": 600})
    assert status == 200, answer
    listed(gw, sub, 0)  # its session ended, so closed
    reply = ask(gw, token, "lock-2")
    assert reply.status == 403 and reply.json()["error"] == "locked", reply.body
    status, _ = api(gw, "POST", f"/sessions/locks/{sub}/unlock", SECURITY, {})
    assert status == 200
    assert ask(gw, token, "lock-1").status == 200  # the lock's end, not the session's


def test_the_front_filter_names_each_front_and_refuses_others(gw: Gateway) -> None:
    for front in ("http", "llm", "mcp", "egress", "kubernetes"):
        status, answer = api(gw, "GET", f"/sessions/live?front={front}", SECURITY)
        assert status == 200, answer
    status, answer = api(gw, "GET", "/sessions/live?front=ftp", SECURITY)
    assert (status, answer["error"]) == (400, "bad_request")
    assert "kubernetes" in answer["message"]


def test_an_end_through_one_replica_is_refused_by_both(
        make_gateway: GatewayFactory, pg_url: str) -> None:
    """Envoy spreads one session's requests over both replicas: the end, asked of either,
    is refused by each (the store's ended_sessions, read at NOTIFY)."""
    pair = make_gateway(POLICIES, replicas=2, settings={"store": {"url": pg_url}})
    sub, session = "svc-live-http-pair", "run-pair-1"
    token = tokens.token(sub, ["agents"])
    for _ in range(4):
        assert ask(pair, token, session).status == 200
    (found,) = listed(pair, sub)
    other = 1 - int(found["replica"].rsplit("-", 1)[1])
    asked, _ = end(pair, session, "two replicas", replica=other)
    seconds = refused_after(pair, asked, token, session)
    print(f"\nan end through the other replica reached an HTTP client in "
          f"{seconds * 1000:.0f} ms")
    for _ in range(20):  # Envoy spreads them over both replicas
        reply = ask(pair, token, session)
        assert reply.status == 403 and reply.json()["error"] == "session_ended", reply.body
    stack.wait_until(lambda: _refusing_writers(pair, session) == {"replica-0", "replica-1"},
                     15, "both replicas refusing the ended session")


def _refusing_writers(gw: Gateway, session: str) -> set[str]:
    """The replicas that recorded a refusal of `session`."""
    connection = connect(gw.store_url)
    try:
        rows = connection.execute("SELECT DISTINCT writer FROM records WHERE "
                                  "session_id = ? AND status = 403", (session,))
    finally:
        connection.close()
    return {str(writer) for (writer,) in rows}
