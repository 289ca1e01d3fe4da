"""MCP sessions bound to the identity and target that opened them (http/mcp_sessions.py),
on a real store (SQLite and PostgreSQL) with the real pipeline and alerts; the record is
the in-memory one of tests/support/fakes.py, which keeps what it is given."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from extproc import config
from extproc.codecs.message import request_view
from extproc.codecs.refusal import Refusal
from extproc.exchange.alerts import Alerts
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.state import Exchange
from extproc.http import mcp_sessions
from extproc.http.mcp_sessions import (
    NOT_FOUND,
    RULE,
    McpSessions,
    NotFound,
    announced,
    canonical,
    named,
)
from extproc.masking import Masker
from extproc.policy.embedded import EmbeddedEngine
from extproc.recording import Evidence
from extproc.store.aio import AsyncStore, open_store
from extproc.telemetry import Telemetry
from tests.support.fakes import ListedResponse, MemoryHolds, MemoryRecorder, StaticCredentials
from tests.support.waiting import until

ALLOW = 'package tollgate\ndecision := {"action": "allow"}\n'
ISSUER = "https://issuer.test"
SID = "5f0c6a3e9b2d4c1e8a7f6b5c4d3e2f1a"


class Setup:
    """One process's pipeline, alerts and session bindings over `store`."""

    def __init__(self, store: AsyncStore, made: list[Setup]) -> None:
        cfg = config.parse({"targets": [
            {"name": "tools", "match": {"route": "mcp"}, "protocol": "mcp"},
            {"name": "other", "match": {"route": "other"}, "protocol": "mcp"}]})
        self.recorder = MemoryRecorder()
        self.alerts = Alerts(config.Alerts(), None, store, self.recorder, None)
        self.pipeline = Pipeline(
            cfg, EmbeddedEngine([("p.rego", ALLOW)], "data.tollgate.decision"),
            Telemetry(cfg.telemetry, InMemorySpanExporter()), StaticCredentials(),
            Masker(b"k" * 32), self.recorder, MemoryHolds(), alerts=self.alerts)
        self.sessions = McpSessions(store, self.alerts)
        made.append(self)

    async def exchange(self, method: str = "POST", path: str = "/mcp",
                       headers: dict[str, str] | None = None, sub: str = "agent",
                       iss: str = ISSUER, route: str = "mcp", jti: str = "j-1") -> Exchange:
        raw = {":method": method, ":path": path, **(headers or {})}
        exchange = self.pipeline.act("t", raw, {}, self.pipeline.target_for(route, None),
                                      {"sub": sub, "iss": iss, "jti": jti}).exchange
        exchange.request = request_view(raw, ())
        await self.pipeline.interpret(exchange, 0)
        return exchange

    async def opened(self, session_id: str = SID, **who: Any) -> None:
        """An initialize (naming no session) answered with `session_id`."""
        await self.sessions.answered(await self.exchange(**who), 200,
                                     {":status": "200", "mcp-session-id": session_id})

    async def check(self, session_id: str = SID, method: str = "POST",
                    **who: Any) -> NotFound | None:
        exchange = await self.exchange(method, headers={"mcp-session-id": session_id}, **who)
        return await self.sessions.check(exchange)

    def hijacks(self) -> list[Evidence]:
        return [e for e in self.recorder.submitted
                if e.kind == "alert" and e.meaning["rule"] == RULE]



@pytest.fixture
async def made() -> AsyncIterator[list[Setup]]:
    """The setups a test made, their alerts' background work ended after it."""
    setups: list[Setup] = []
    yield setups
    for setup in setups:
        await setup.alerts.close()


def test_every_place_a_server_may_read_a_session_from_is_named() -> None:
    assert named({":path": "/mcp", "mcp-session-id": "a"}) == ["a"]
    assert named({":path": "/m?session_id=b&x=1"}) == ["b"]
    assert named({":path": "/m?x=1;Session_ID=c&session%5Fid=d+e"}) == ["c", "d e"]
    assert named({":path": "/m?session_id=f&session_id=g"}) == ["f", "g"]
    assert named({":path": "/m?session_id=h", "mcp_session_id": "i",
                  "mcp-session-id": "j, k"}) == ["i", "j, k", "h"]
    assert named({":path": "/mcp?sessionid=x"}) == []


def test_ids_are_read_as_loosely_as_a_server_may_and_endpoints_for_theirs() -> None:
    dashed = f"{SID[:8]}-{SID[8:12]}-{SID[12:16]}-{SID[16:20]}-{SID[20:]}"
    for variant in (SID.upper(), dashed, "{" + dashed + "}", "urn:uuid:" + dashed, f" {SID} "):
        assert canonical(variant) == SID
    assert announced(f"/messages/?session_id={SID}") == [SID]
    assert announced("http://h/messages/?session_id=a&session_id=b") == ["a", "b"]


async def test_a_session_is_its_openers_whatever_token_it_holds_now(
        store: AsyncStore, made: list[Setup]) -> None:
    setup = Setup(store, made)
    await setup.opened()
    assert await setup.check(jti="j-refreshed") is None
    assert await setup.check(method="GET") is None
    assert await setup.check(method="DELETE") is None
    assert setup.hijacks() == []


@pytest.mark.parametrize("who", [{"sub": "mallory"}, {"iss": "https://other-issuer.test"},
                                 {"route": "other"}],
                         ids=["another-subject", "same-subject-another-issuer",
                              "same-identity-another-target"])
async def test_anyone_else_gets_the_servers_not_found_and_an_alert(
        store: AsyncStore, made: list[Setup], who: dict[str, str]) -> None:
    setup = Setup(store, made)
    await setup.opened()
    exchange = await setup.exchange(headers={"mcp-session-id": SID}, **who)
    refused = await setup.sessions.check(exchange)
    assert refused == NotFound(*NOT_FOUND["streamable-http"])
    assert refused.status == 404 and b"Session not found" in refused.body
    assert exchange.outcome["tollgate.refusal"] == "mcp_session_not_found"
    assert exchange.outcome["tollgate.decision.action"] == "deny"
    assert exchange.outcome["tollgate.alerts"] == (RULE,)
    (alert,) = await until(setup.hijacks)
    assert alert.trace_id == exchange.trace_id and alert.meaning["severity"] == "critical"
    assert "agent (https://issuer.test) on target tools" in alert.meaning["message"]
    # The owner's session goes on.
    assert await setup.check() is None


async def test_a_session_tollgate_never_saw_opened_is_not_found_without_an_alert(
        store: AsyncStore, made: list[Setup]) -> None:
    setup = Setup(store, made)
    exchange = await setup.exchange(headers={"mcp-session-id": SID})
    assert await setup.sessions.check(exchange) == NotFound(*NOT_FOUND["streamable-http"])
    assert "tollgate.alerts" not in exchange.outcome
    legacy = await setup.exchange(path=f"/messages/?session_id={SID}")
    assert await setup.sessions.check(legacy) == NotFound(*NOT_FOUND["sse"])
    await asyncio.sleep(0.05)
    assert setup.hijacks() == []


async def test_the_owners_delete_ends_the_session_for_everyone(
        store: AsyncStore, made: list[Setup]) -> None:
    setup = Setup(store, made)
    await setup.opened()
    deleting = await setup.exchange("DELETE", headers={"mcp-session-id": SID})
    assert await setup.sessions.check(deleting) is None
    await setup.sessions.answered(deleting, 200, {":status": "200"})
    assert await setup.check() is not None
    assert setup.hijacks() == []
    assert await setup.check(sub="mallory") is not None
    await until(setup.hijacks)


async def test_a_delete_the_server_refused_ends_nothing(
        store: AsyncStore, made: list[Setup]) -> None:
    setup = Setup(store, made)
    await setup.opened()
    deleting = await setup.exchange("DELETE", headers={"mcp-session-id": SID})
    await setup.sessions.answered(deleting, 405, {":status": "405"})
    assert await setup.check() is None


MALLORY = "0d6b9d1f1c2e4a5b8c7d6e5f4a3b2c1d"


@pytest.mark.parametrize("headers,path", [
    ({"mcp-session-id": MALLORY}, f"/mcp?session_id={SID}"),
    ({"mcp-session-id": SID}, f"/messages/?session_id={MALLORY}"),
    ({"mcp-session-id": f"{MALLORY}, {SID}"}, "/mcp"),
    ({"mcp-session-id": MALLORY, "mcp_session_id": SID}, "/mcp"),
    ({}, f"/messages/?session_id={MALLORY}&session_id={SID}"),
    ({}, f"/messages/?session_id={MALLORY};session_id={SID}"),
    ({}, f"/messages/?session_id={MALLORY}&Session%5FID={SID}"),
    ({"mcp-session-id": SID.upper()}, "/mcp"),
    ({}, f"/messages/?session_id={{{SID}}}"),
], ids=["query-beside-own-header", "header-beside-own-query", "repeated-header",
        "underscore-header", "repeated-query", "semicolon-query", "encoded-key",
        "upper-case-id", "braced-id"])
async def test_every_id_a_request_names_must_be_the_callers(
        store: AsyncStore, made: list[Setup], headers: dict[str, str], path: str) -> None:
    setup = Setup(store, made)
    await setup.opened()
    await setup.opened(MALLORY, sub="mallory")
    exchange = await setup.exchange(path=path, headers=headers, sub="mallory")
    refused = await setup.sessions.check(exchange)
    assert refused is not None and refused.status == 404
    (alert,) = await until(setup.hijacks)
    assert alert.meaning["identity"] == "mallory"


async def test_the_http_sse_endpoint_event_binds_its_session_before_it_goes_on(
        store: AsyncStore, made: list[Setup]) -> None:
    setup = Setup(store, made)
    stream = await setup.exchange("GET", path="/sse")
    pieces = [b"event: endpoint\r\nda", f"ta: /messages/?session_id={SID}\r\n\r\n".encode(),
              b": ping\r\n\r\n"]
    watched = setup.sessions.watched(stream, 200, ListedResponse(
        {":status": "200", "content-type": "text/event-stream"}, list(pieces)))
    posting = f"/messages/?session_id={SID}"
    assert await watched.chunk() == (pieces[0], False)
    assert await setup.sessions.check(await setup.exchange(path=posting)) is not None
    assert await watched.chunk() == (pieces[1], False)
    assert await setup.sessions.check(await setup.exchange(path=posting)) is None
    assert await watched.chunk() == (pieces[2], True)
    mallory = await setup.exchange(path=posting, sub="mallory")
    assert await setup.sessions.check(mallory) == NotFound(*NOT_FOUND["sse"])


async def test_an_id_the_server_gives_again_stays_its_first_openers(
        store: AsyncStore, made: list[Setup]) -> None:
    setup = Setup(store, made)
    await setup.opened()
    with pytest.raises(Refusal) as refused:
        await setup.opened(sub="mallory")
    assert (refused.value.status, refused.value.error) == (502, "mcp_session_conflict")
    assert await setup.check(sub="mallory") is not None
    assert await setup.check() is None


async def test_every_process_sharing_the_store_agrees(
        store: AsyncStore, made: list[Setup], store_url: str) -> None:
    other_store = await open_store(store_url)
    try:
        one, other = Setup(store, made), Setup(other_store, made)
        await one.opened()
        assert await other.check() is None
        assert await other.check(sub="mallory") is not None
    finally:
        await other_store.close()


@pytest.mark.parametrize("uptime", [5.0, None], ids=["machine-up-5s", "machine-up-long"])
async def test_a_session_idle_a_day_is_forgotten(
        store: AsyncStore, made: list[Setup], uptime: float | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if uptime is not None:  # the monotonic clock counts from boot: a first prune still runs
        monkeypatch.setattr(mcp_sessions.time, "monotonic", lambda: uptime)
    setup = Setup(store, made)
    await setup.opened()
    day_ago = int((time.time() - 86_401) * 1e6)
    await store.execute("UPDATE mcp_sessions SET used_us = ?", (day_ago,))
    await Setup(store, made).opened("another-session")  # a process's first binding prunes
    assert await setup.check() is not None


async def test_a_store_that_cannot_answer_refuses_503(sqlite_url: str,
                                                     made: list[Setup]) -> None:
    store = await open_store(sqlite_url)
    setup = Setup(store, made)
    await setup.opened()
    await store.close()
    with pytest.raises(Refusal) as refused:
        await setup.check()
    assert (refused.value.status, refused.value.error) == (503, "mcp_sessions_unavailable")
