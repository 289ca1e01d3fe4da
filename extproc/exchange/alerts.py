"""The policy's alerts (`data.tollgate.alerts`), told to people while it is happening.

An alert a decision carries goes at once onto the exchange's span (an event, and the
`tollgate.alerts` attribute); then, once per rule and identity (and the alert's `key`,
when it has one) within `dedup_seconds` over every worker and replica (claimed in the
store), into the chained record as a record of its own kind (`tollgate audit search
--action alert`) and to the webhook (Slack-compatible text, retried). A webhook that
fails for good is recorded too: an `alert` record saying so. A store that cannot say
whether an alert was raised already lets it be raised again: a repeat is better than
silence.

tollgate raises alerts of its own the same way: about an exchange (`raise_soon`: a
policy error), about an identity outside any one exchange (`raise_about`: someone waits
on its session's lock), or about no exchange at all (`raise_own`: a policy reload
refused, with `tollgate` as who); the last two under a trace of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from extproc import metrics
from extproc.activity.tracker import Tracker
from extproc.codecs.inert import slack
from extproc.config import Alerts as AlertsSettings
from extproc.config import Target
from extproc.exchange.ports import Recorder
from extproc.exchange.state import Exchange
from extproc.identity import Who, subject_of
from extproc.policy.decision import Alert, Severity
from extproc.recording import Evidence, RecordingUnavailable
from extproc.store import StoreError
from extproc.store.aio import AsyncStore, Rows
from extproc.store.retry import BUDGET
from extproc.telemetry import span_id_of
from extproc.webhook import Background, Delivery, Webhook

log = logging.getLogger("tollgate.alerts")

# Raised alerts remembered in the process, so a burst asks the store once.
_MOST_REMEMBERED = 10_000


# Who raises an alert of tollgate's own, about no exchange: its record's `identity`.
OWN = "tollgate"


def _deduplicated(who: str, alert: Alert) -> str:
    """What an alert is deduplicated on beside its rule: the identity, and its key."""
    return f"{who} {alert.key}" if alert.key else who


@dataclass(frozen=True, slots=True)
class _About:
    """What an alert is about, for its record: an exchange, or none (tollgate's own)."""

    who: str
    trace_id: str
    span_id: str
    identity: Who | None = None
    target: Target | None = None

    @classmethod
    def of(cls, exchange: Exchange) -> _About:
        return cls(exchange.who, exchange.trace_id, span_id_of(exchange.span),
                   exchange.identity, exchange.target)

    @classmethod
    def outside(cls, who: str = OWN, identity: Who | None = None,
                target: Target | None = None) -> _About:
        """No one exchange: a trace of its own, as a policy load's record has (`who`:
        tollgate's own, unless it is about an identity)."""
        return cls(who, os.urandom(16).hex(), os.urandom(8).hex(), identity, target)


class Alerts:
    def __init__(self, settings: AlertsSettings, webhook_url: str | None, store: AsyncStore,
                 recorder: Recorder, tracker: Tracker | None) -> None:
        self._dedup = settings.dedup_seconds
        self._webhook = Webhook(webhook_url, settings.webhook_attempts) if webhook_url \
            else None
        self._store, self._recorder, self._tracker = store, recorder, tracker
        self._until: dict[tuple[str, str], float] = {}  # (rule, identity) -> monotonic
        self._background = Background()

    async def raised(self, exchange: Exchange, alerts: tuple[Alert, ...]) -> None:
        """The alerts on the span at once; each new one claimed in the store before this
        returns (the decision's answer waits for it: of two processes raising the same
        alert one after the other, the first is the one claimed), then recorded and sent
        in the background."""
        self._on_span(exchange, alerts)
        await self._claimed(_About.of(exchange), alerts)

    def raise_soon(self, exchange: Exchange, rule: str, severity: Severity,
                   message: str) -> None:
        """An alert of tollgate's own `raised`, for code that cannot wait for the store:
        on the span at once, claimed in the background."""
        alerts = (Alert(rule, severity, message),)
        self._on_span(exchange, alerts)
        self._background.spawn(self._claimed(_About.of(exchange), alerts))

    async def raise_own(self, rule: str, severity: Severity, message: str,
                        key: str = "") -> None:
        """An alert of tollgate's own about no exchange (a policy reload refused):
        claimed as `raised` claims one, deduplicated on its rule and `key` (who is
        always OWN), then recorded and sent in the background."""
        await self._claimed(_About.outside(), (Alert(rule, severity, message, key),))

    async def raise_about(self, identity: Who, target: Target, rule: str, severity: Severity,
                          message: str, key: str = "") -> None:
        """An alert of tollgate's own about an identity's doing on a target outside any
        one exchange (a lock its session holds: exchange/lock_waits.py), under a trace
        of its own, recorded under that identity."""
        await self._claimed(_About.outside(subject_of(identity), identity, target),
                            (Alert(rule, severity, message, key),))

    def _on_span(self, exchange: Exchange, alerts: tuple[Alert, ...]) -> None:
        for alert in alerts:
            exchange.span.add_event("tollgate.alert", {
                "tollgate.alert.rule": alert.rule, "tollgate.alert.severity": alert.severity,
                "tollgate.alert.message": alert.message,
            })
        exchange.outcome["tollgate.alerts"] = tuple(sorted({a.rule for a in alerts}))

    async def _claimed(self, about: _About, alerts: tuple[Alert, ...]) -> None:
        """Each alert not raised within the window claimed, then recorded and sent."""
        who, now, raised = about.who, time.monotonic(), time.time()
        for alert in alerts:
            key = (alert.rule, _deduplicated(who, alert))
            if self._until.get(key, 0.0) > now:
                continue
            if len(self._until) >= _MOST_REMEMBERED:
                self._until = {k: t for k, t in self._until.items() if t > now}
            self._until[key] = now + self._dedup
            notable = self._tracker.notable(about.identity) \
                if self._tracker and about.identity is not None else []
            trace_ids = [about.trace_id, *(t for t in notable if t != about.trace_id)]
            if await self._claim(alert, _deduplicated(who, alert), about.trace_id):
                self._background.spawn(self._raise(alert, about, trace_ids, raised))

    async def _raise(self, alert: Alert, about: _About, trace_ids: list[str],
                     raised: float) -> None:
        """A claimed alert recorded and sent; `raised`: when the decision raised it (the
        alert record's time)."""
        who = about.who
        metrics.alert_raised(alert.rule, alert.severity)
        found = {"rule": alert.rule, "severity": alert.severity, "message": alert.message,
                 "identity": who, "target": about.target.name if about.target else None,
                 "trace_ids": trace_ids[:11], **({"key": alert.key} if alert.key else {})}
        log.warning("alert %s (%s): %s — %s on %s, trace %s", alert.rule, alert.severity,
                    alert.message, who, found["target"], about.trace_id)
        self._record(found, about, raised, None)
        if self._webhook is None:
            return
        delivery = await self._webhook.deliver(message(found))
        if delivery.ok:
            return
        log.error("alert %s for %s: the webhook at %s failed %d times (%s)", alert.rule,
                  who, self._webhook.host, delivery.attempts, delivery.error)
        self._record(found, about, raised, delivery)

    async def _claim(self, alert: Alert, who: str, trace_id: str) -> bool:
        """Whether this process raises the alert (no other did within the window). The
        decision's answer waits for the claim at most a store read's retries (BUDGET):
        on SQLite the claim waits for the write lock, which another process can hold
        past Envoy's 2 s for the message (the record's writer frozen mid-commit). A
        claim not answered in time is raised, as one the store fails; it is not
        cancelled, so the window it claims still holds for the others."""
        now_us = int(time.time() * 1e6)
        claim = asyncio.ensure_future(self._store.execute(
            "INSERT INTO alerts_raised (rule, identity, until_us, trace_id) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (rule, identity) DO UPDATE SET "
            "until_us = excluded.until_us, trace_id = excluded.trace_id "
            "WHERE alerts_raised.until_us <= ? RETURNING trace_id",
            (alert.rule, who, now_us + int(self._dedup * 1e6), trace_id, now_us)))
        try:
            rows = await asyncio.wait_for(asyncio.shield(claim), BUDGET)
        except (StoreError, TimeoutError) as exc:
            if not claim.done():
                self._background.spawn(_landing(claim))
            log.error("alert %s for %s: the store cannot say whether it was raised "
                      "already (%s): raised", alert.rule, who, str(exc) or "no answer in time")
            return True
        return bool(rows)

    def _record(self, found: dict[str, Any], about: _About, raised: float,
                delivery: Delivery | None) -> None:
        """The alert as a record of its own (kind `alert`, its fields as `meaning.alert`),
        on the trace of what it is about."""
        meaning = found if delivery is None else {**found, "delivery": delivery.as_dict()}
        evidence = Evidence(
            "alert", raised, about.trace_id, about.span_id, {},
            about.identity, about.target, meaning_key="alert", meaning=meaning,
            outcome={"tollgate.decision.action": "alert"})
        try:
            self._recorder.admit()
        except RecordingUnavailable as exc:
            log.error("alert %s for %s could not be recorded: %s", found["rule"],
                      found["identity"], exc)
            return
        self._recorder.submit(evidence)

    async def close(self) -> None:
        await self._background.close()
        if self._webhook is not None:
            await self._webhook.close()


def message(alert: dict[str, Any]) -> dict[str, Any]:
    """The webhook body: `text` for chat tools, and the alert's fields, exact."""
    text = (f"tollgate alert [{alert['severity']}] {slack(alert['rule'])}: "
            f"{slack(alert['message'])} ({slack(alert['identity'])}"
            + (f" on {slack(alert['target'])}" if alert["target"] else "")
            + f"; trace {alert['trace_ids'][0]})")
    return {"text": text, "mrkdwn": False, "alert": alert}


async def _landing(claim: asyncio.Future[Rows]) -> None:
    """A claim whose decision stopped waiting, left to land (its error is the store's,
    told already)."""
    with contextlib.suppress(StoreError):
        await claim
