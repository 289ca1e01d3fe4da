"""Alerts a decision carries: on the span at once; recorded and sent to the webhook (a
real HTTP server on 127.0.0.1) once per rule and identity within the window, over every
process sharing the store; a webhook that fails for good recorded as such."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from extproc import config
from extproc.activity.tracker import Tracker
from extproc.exchange.alerts import Alerts
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.state import Exchange
from extproc.masking import Masker
from extproc.policy.embedded import EmbeddedEngine
from extproc.recording import Evidence
from extproc.store.aio import AsyncStore, open_store
from extproc.store.retry import BUDGET
from extproc.telemetry import Telemetry
from tests.support.fakes import MemoryHolds, MemoryRecorder, StaticCredentials
from tests.support.http_server import LocalServer
from tests.support.waiting import until

# Refuses and alerts on every DELETE; says what input.activity held, in the reason.
ALERTING = """package tollgate
import rego.v1
decision := {"action": "deny", "reasons": [sprintf("%v", [input.activity.identity.day.refusals])],
             "rules": ["t.delete"],
             "alerts": [{"rule": "t.delete", "severity": "warning",
                         "message": "a <!channel> delete"}]} if input.request.method == "DELETE"
decision := {"action": "allow"} if input.request.method != "DELETE"
"""


class Setup:
    def __init__(self, store: AsyncStore, url: str, webhook: str | None,
                 dedup: float = 600, attempts: int = 1) -> None:
        cfg = config.parse({"targets": [{"name": "demo", "match": {"route": "demo"}}]})
        self.spans = InMemorySpanExporter()
        self.recorder = MemoryRecorder()
        self.tracker = Tracker(config.Activity(), url)
        self.recorder.observers = [self.tracker.observe]
        self.alerts = Alerts(config.Alerts(dedup_seconds=dedup, webhook_attempts=attempts),
                             webhook, store, self.recorder, self.tracker)
        self.pipeline = Pipeline(
            cfg, EmbeddedEngine([("p.rego", ALERTING)], "data.tollgate.decision"),
            Telemetry(cfg.telemetry, self.spans), StaticCredentials(), Masker(b"k" * 32),
            self.recorder, MemoryHolds(), activity=self.tracker, alerts=self.alerts)

    async def exchange(self, method: str = "DELETE", sub: str = "agent") -> Exchange:
        exchange = self.pipeline.act(f"tollgate {method} demo", {":method": method},
                                      {}, self.pipeline.target_for("demo", None),
                                      {"sub": sub, "groups": ["agents"]}, "10.0.0.7").exchange
        exchange.request = {"method": method, "path": "/rows", "query": {},
                            "headers": {}, "body": None}
        await self.pipeline.decide(exchange, "request")
        self.recorder.submit(exchange.finish())
        return exchange

    def alerts_recorded(self) -> list[Evidence]:
        return [e for e in self.recorder.submitted if e.kind == "alert"]



async def test_an_alert_is_on_the_span_in_the_record_and_sent_once_a_burst(
        store: AsyncStore, store_url: str) -> None:
    hook = LocalServer(lambda *_: (200, b"ok"), "/hooks/alerts")
    setup = Setup(store, store_url, hook.url)
    counted = REGISTRY.get_sample_value(
        "tollgate_alerts_total", {"rule": "t.delete", "severity": "warning"}) or 0
    try:
        first = await setup.exchange()
        for _ in range(4):
            await setup.exchange()
        (recorded,) = await until(setup.alerts_recorded)
        await until(lambda: hook.received)
        # The exchange's own span says so, on every exchange of the burst.
        spans = setup.spans.get_finished_spans()
        assert len(spans) == 5
        for span in spans:
            (event,) = [e for e in span.events if e.name == "tollgate.alert"]
            assert event.attributes == {"tollgate.alert.rule": "t.delete",
                                        "tollgate.alert.severity": "warning",
                                        "tollgate.alert.message": "a <!channel> delete"}
            assert span.attributes["tollgate.alerts"] == ("t.delete",)
        alert = recorded.meaning
        assert (recorded.trace_id, recorded.outcome) == (
            first.trace_id, {"tollgate.decision.action": "alert"})
        assert alert["rule"] == "t.delete" and alert["identity"] == "agent"
        assert alert["target"] == "demo" and alert["trace_ids"][0] == first.trace_id
        body = json.loads(hook.received[0].body)
        assert body["alert"] == alert and body["mrkdwn"] is False
        # Inert in chat: no mention forms from what the policy's message carries.
        assert "<!channel>" not in body["text"] and "&lt;!channel&gt;" in body["text"]
        await asyncio.sleep(0)  # nothing else was scheduled: the burst is one alert
        assert len(setup.alerts_recorded()) == 1 and len(hook.received) == 1
        assert REGISTRY.get_sample_value(
            "tollgate_alerts_total", {"rule": "t.delete", "severity": "warning"}) == counted + 1
    finally:
        await setup.alerts.close()
        await setup.tracker.close()
        hook.stop()


async def test_the_alert_is_claimed_before_the_decision_returns(
        store: AsyncStore, store_url: str) -> None:
    """Of two processes deciding one after the other, the first raises the alert: its
    claim is in the store once its decision is made, before the answer goes (claimed in
    the background, the second's claim could come first, and the alert then named the
    later exchange)."""
    one, other = Setup(store, store_url, None), Setup(store, store_url, None)
    try:
        first = await one.exchange()
        assert await store.execute("SELECT trace_id FROM alerts_raised WHERE rule = ?",
                                   ("t.delete",)) == [(first.trace_id,)]
        await other.exchange()
        (recorded,) = await until(one.alerts_recorded)
        assert recorded.trace_id == first.trace_id
        await until(lambda: other.alerts._background._tasks == set())
        assert other.alerts_recorded() == []
    finally:
        for setup in (one, other):
            await setup.alerts.close()
            await setup.tracker.close()


async def test_a_decision_does_not_wait_on_a_write_lock_another_holds(
        sqlite_url: str) -> None:
    """SQLite: while another process holds the write lock (the record's writer frozen
    mid-commit), a refusal's alert claim waits no longer than a read's retries, and
    the alert is raised (as when the store fails); reads of the store go on at once
    meanwhile. Once the lock goes, the claim that was on its way lands."""
    store = await open_store(sqlite_url)
    setup = Setup(store, sqlite_url, None)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        await setup.exchange(method="GET")  # the store's connections opened, as in use
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        first = await setup.exchange()
        assert time.monotonic() - started < BUDGET + 0.5, "the decision waited on the lock"
        assert first.decision.action == "deny"
        await until(setup.alerts_recorded)
        started = time.monotonic()
        assert await store.execute("SELECT trace_id FROM alerts_raised") == []
        assert time.monotonic() - started < 1.0, "a read waited behind the claim"
        holder.execute("ROLLBACK")
        await until(lambda: setup.alerts._background._tasks == set())
        assert await store.execute("SELECT trace_id FROM alerts_raised") == [
            (first.trace_id,)]
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        await setup.alerts.close()
        await setup.tracker.close()
        await store.close()


WINDOW = 2.0


async def test_two_processes_raise_one_alert_and_the_window_ends(
        store: AsyncStore, store_url: str) -> None:
    # A window long enough for a loaded machine to reach the second exchange within it.
    one, other = Setup(store, store_url, None, dedup=WINDOW), Setup(store, store_url, None,
                                                                     dedup=WINDOW)
    try:
        await one.exchange()
        await until(one.alerts_recorded)
        await other.exchange()
        await until(lambda: other.alerts._background._tasks == set())
        assert other.alerts_recorded() == []
        await asyncio.sleep(WINDOW + 0.1)  # the window ends: time passing is what is tested
        await other.exchange()
        await until(other.alerts_recorded)
        # Another identity is its own alert.
        await one.exchange(sub="someone-else")
        await until(lambda: len(one.alerts_recorded()) == 2)
    finally:
        for setup in (one, other):
            await setup.alerts.close()
            await setup.tracker.close()


async def test_a_webhook_that_fails_is_recorded(store: AsyncStore, store_url: str,
                                                closed_port: int) -> None:
    setup = Setup(store, store_url, f"http://127.0.0.1:{closed_port}/hook", attempts=1)
    try:
        await setup.exchange()
        first, failed = await until(lambda: len(setup.alerts_recorded()) == 2
                                    and setup.alerts_recorded())
        assert "delivery" not in first.meaning
        delivery = failed.meaning.pop("delivery")
        assert delivery["ok"] is False and delivery["attempts"] == 1
        assert failed.meaning == first.meaning
    finally:
        await setup.alerts.close()
        await setup.tracker.close()


async def test_the_policy_sees_what_the_identity_did(store: AsyncStore,
                                                     store_url: str) -> None:
    setup = Setup(store, store_url, None)
    try:
        first, second = await setup.exchange(), await setup.exchange()
        assert first.decision.reasons == ("0",) and second.decision.reasons == ("1",)
    finally:
        await setup.alerts.close()
        await setup.tracker.close()
