"""Prometheus metrics, served as `/metrics` on the admin port (listen.admin).

Why it is shaped so:

- **Every family is defined here**, once per process, so the names, labels and buckets
  that docs/telemetry.md lists and deploy/grafana/tollgate.json queries live in one place.
- **Counted where it already happens, off the request path.** Exchanges, decisions,
  latencies and masked values come from the finished exchange's evidence, as a record
  observer (`observe`, in `Recorder.observers`), after the exchange has answered, into
  plain dictionaries of this process (`_Pending`): no lock, no file. They reach the
  families every FLUSH_SECONDS (`flushing`, one task per process) and before a scrape
  (`flush`): each series touched once per flush, however many exchanges it counted — in
  multi-process mode each touch is a write to a memory-mapped file under a lock, about
  seven per exchange before. A scrape sees the other workers' counts up to
  FLUSH_SECONDS late. The record's queue depth is set when the recorder writes to its
  writer or hears back (per batch, not per request); approvals pending is one count in
  the store per scrape.
- **Several worker processes** (listen.workers > 1): the supervisor gives each worker
  the same fresh `PROMETHEUS_MULTIPROC_DIR`; prometheus-client's multi-process mode keeps
  each worker's samples in memory-mapped files there, and worker 0, which serves the
  admin port, adds them up (`MultiProcessCollector`). Counters of a worker that died
  stay counted; its gauges go (the supervisor marks it dead). One process: the default
  registry, with the process and Python collectors.
- **Bounded labels only**: targets (the config's), actions, phases, outcomes and
  severities (a handful each), rules and detectors (the policy pack's and the masker's).
  Never an identity, a token, a trace id or a path. A rule, detector or alert rule
  beyond the first `MOST_VALUES` seen by a process counts as `other`, so a policy that
  builds rule names from its input cannot grow the series without bound.
- No token guards `/metrics`: Prometheus scrapes it, and it holds no identity or
  content, only counts by those labels.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from extproc.recording.record import Evidence

log = logging.getLogger("tollgate.metrics")

# Set by the supervisor for its workers (extproc/workers.py): prometheus-client reads it.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Distinct values a process counts under one rule, detector or alert rule label.
MOST_VALUES = 256
OTHER = "other"
NONE = "none"
# How long a scrape waits for the store's count of pending approvals.
_COUNT_SECONDS = 5.0
# How often the exchanges' counts reach the families (and, with workers, their files).
FLUSH_SECONDS = 1.0

# No `_created` series beside each counter and histogram (the multi-process mode has
# none either): half the series, and nothing on the dashboard reads them.
disable_created_metrics()

# Decisions take from tens of microseconds (regorus, headers only) to the OPA
# backend's timeout; exchanges up to a hold for approval (minutes).
_DECISION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                     0.1, 0.25, 0.5, 1.0)
_EXCHANGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                     5.0, 10.0, 30.0, 60.0, 300.0)
# From a record's submission to the writer's word that it is in the store: the 2 ms
# send batching, the writer's 50 ms gathering, one transaction.
_WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
                  10.0, 30.0)

EXCHANGES = Counter(
    "tollgate_exchanges", "Exchanges finished, by target and the action that settled them.",
    ["target", "action"])
EXCHANGE_RULES = Counter(
    "tollgate_exchange_rules",
    "Exchanges finished, by target, action and each rule of the decision that settled "
    "them (rule=\"none\" when it named none); an exchange two rules settled counts under "
    "both.", ["target", "action", "rule"])
DECISION_SECONDS = Histogram(
    "tollgate_decision_duration_seconds",
    "How long the policy engine took for one decision, by target and phase.",
    ["target", "phase"], buckets=_DECISION_BUCKETS)
EXCHANGE_SECONDS = Histogram(
    "tollgate_exchange_duration_seconds",
    "How long an exchange took, from its first message to its end (holds included).",
    ["target"], buckets=_EXCHANGE_BUCKETS)
MASKED = Counter(
    "tollgate_masked_values", "Values masked in exchanges, by target and detector.",
    ["target", "detector"])
APPROVALS_CREATED = Counter(
    "tollgate_approvals_created", "Approvals asked for (a held request, a changed MCP tool).")
APPROVALS_DECIDED = Counter(
    "tollgate_approvals_decided", "Approvals decided by an approver, by outcome.",
    ["outcome"])
APPROVALS_ABANDONED = Counter(
    "tollgate_approvals_abandoned",
    "Approvals marked abandoned: the replica whose request waited on them stopped.")
APPROVALS_WITHDRAWN = Counter(
    "tollgate_approvals_withdrawn",
    "Approvals withdrawn: their request stopped waiting (its client left, its stream "
    "ended) before a decision, its client never told of them.")
APPROVALS_PENDING = Gauge(
    "tollgate_approvals_pending",
    "Approvals waiting for a decision now, not expired (in the store: every replica "
    "sharing it reports the same number).", multiprocess_mode="livemax")
ALERTS = Counter(
    "tollgate_alerts", "Alerts the policy raised, by rule and severity.",
    ["rule", "severity"])
RECORD_QUEUE = Gauge(
    "tollgate_record_queue_depth",
    "Records admitted to the audit record's queue and not yet written.",
    multiprocess_mode="livesum")
RECORD_QUEUE_SIZE = Gauge(
    "tollgate_record_queue_capacity",
    "Places in the audit record's queue (recording.queue_size, per process).",
    multiprocess_mode="livesum")
RECORD_WRITE_SECONDS = Histogram(
    "tollgate_record_write_duration_seconds",
    "From a record's submission to the writer's word that the store holds it.",
    buckets=_WRITE_BUCKETS)
_POLICY_INFO = "tollgate_policy_info"
POLICY_INFO = Gauge(
    _POLICY_INFO, "The policy revision served (1; one series per revision "
    "served, two while workers or replicas differ).", ["revision"],
    multiprocess_mode="livemax")
TUNNELS = Counter(
    "tollgate_egress_tunnels", "Egress proxy tunnels ended, by how they ended "
    "(client_closed, destination_closed, connect_failed ...).", ["ended"])
TUNNEL_BYTES = Counter(
    "tollgate_egress_tunnel_bytes", "Bytes carried by ended egress proxy tunnels, by "
    "direction (up: agent to destination; down: destination to agent).", ["direction"])
POLICY_RELOAD_FAILURES = Counter(
    "tollgate_policy_reload_failures",
    "Policy reloads that failed (the previous revision kept serving).")
POLICY_REVISIONS_DIFFER = Gauge(
    "tollgate_policy_revisions_differ",
    "1 while the processes sharing the store serve different policy revisions for longer "
    "than policy.agreement_seconds, else 0.", multiprocess_mode="livemax")
KEY_RELOAD_FAILURES = Counter(
    "tollgate_key_reload_failures",
    "Signing key reloads that failed: an unreadable bootstrap or key file, a remote key "
    "set not fetched (the keys already read kept verifying).")


class _Values:
    """At most MOST_VALUES distinct values of one label; later new ones are `other`."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        seen = self._seen
        if value in seen:
            return value
        if len(seen) >= MOST_VALUES:
            return OTHER
        seen.add(value)
        return value


class _Children:
    """A labelled family's children by label values: a dict lookup per use, where
    prometheus-client's `labels()` checks and converts its arguments every time."""

    __slots__ = ("_family", "_found")

    def __init__(self, family: Any) -> None:
        self._family = family
        self._found: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._found.get(values)
        if child is None:
            child = self._found[values] = self._family.labels(*values)
        return child


_exchanges, _rules = _Children(EXCHANGES), _Children(EXCHANGE_RULES)
_decisions, _durations = _Children(DECISION_SECONDS), _Children(EXCHANGE_SECONDS)
_masked, _alerts = _Children(MASKED), _Children(ALERTS)
_rule_values, _detector_values, _alert_values = _Values(), _Values(), _Values()
_tunnels, _ending_values = _Children(TUNNELS), _Values()


class _Pending:
    """The exchanges' counts since the last flush: per counter child, its increment; per
    histogram child, its sum and its observations per bucket (as prometheus-client keeps
    them: each in the first bucket whose bound holds it, summed when served)."""

    __slots__ = ("counts", "observed")

    def __init__(self) -> None:
        self.counts: dict[tuple[_Children, tuple[str, ...]], float] = {}
        self.observed: dict[tuple[_Children, tuple[str, ...]], list[float]] = {}

    def inc(self, family: _Children, labels: tuple[str, ...], amount: float = 1.0) -> None:
        key = (family, labels)
        self.counts[key] = self.counts.get(key, 0.0) + amount

    def observe(self, family: _Children, labels: tuple[str, ...], value: float,
                bounds: tuple[float, ...]) -> None:
        key = (family, labels)
        found = self.observed.get(key)
        if found is None:  # the sum, then one count per bucket (+Inf last)
            found = self.observed[key] = [0.0] * (len(bounds) + 2)
        found[0] += value
        found[1 + bisect.bisect_left(bounds, value)] += 1

    def flush(self) -> None:
        counts, self.counts = self.counts, {}
        observed, self.observed = self.observed, {}
        for (family, labels), amount in counts.items():
            family(*labels).inc(amount)
        for (family, labels), (total, *buckets) in observed.items():
            # Histogram.observe's own writes, once for the lot: the sum, then each
            # bucket's count (prometheus-client keeps them per bucket, not cumulated).
            child = family(*labels)
            child._sum.inc(total)
            for bucket, count in zip(child._buckets, buckets, strict=True):
                if count:
                    bucket.inc(count)


_pending = _Pending()


def flush() -> None:
    """The exchanges counted since the last flush, into the families."""
    _pending.flush()


async def flushing() -> None:
    """`flush` every FLUSH_SECONDS, and once more when cancelled (the process stops)."""
    try:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            flush()
    finally:
        flush()


def observe(evidence: Evidence) -> None:
    """Count one finished exchange, or an egress tunnel's end (a record observer:
    `Recorder.observers`)."""
    if evidence.kind == "tunnel":
        _tunnel_ended(evidence.meaning)
        return
    if evidence.kind != "exchange":
        return
    target = evidence.target.name if evidence.target is not None else NONE
    outcome = evidence.outcome
    action = _action(evidence)
    pending = _pending
    pending.inc(_exchanges, (target, action))
    rules = outcome.get("tollgate.decision.rules") or (NONE,)
    for rule in rules:
        pending.inc(_rules, (target, action, _rule_values(rule)))
    for decided in evidence.decisions:
        pending.observe(_decisions, (target, decided.phase), decided.duration_us / 1e6,
                        _DECISION_BUCKETS)
    pending.observe(_durations, (target,), evidence.duration_ms / 1e3, _EXCHANGE_BUCKETS)
    for detector, count in evidence.masked.items():
        if count:
            pending.inc(_masked, (target, _detector_values(detector)), count)


def _action(evidence: Evidence) -> str:
    """The action that settled the exchange, as its record says (record._outcome)."""
    outcome = evidence.outcome
    action = outcome.get("tollgate.decision.action")
    if action is not None:
        return str(action)
    if "tollgate.refusal" in outcome:
        return "deny"
    if evidence.decisions:
        return next((d.action for d in evidence.decisions if d.action != "allow"), "allow")
    return NONE  # the client went away before anything was decided


def _tunnel_ended(tunnel: Any) -> None:
    if isinstance(tunnel, dict):
        _tunnels(_ending_values(str(tunnel.get("ended")))).inc()
        TUNNEL_BYTES.labels("up").inc(int(tunnel.get("bytes_up") or 0))
        TUNNEL_BYTES.labels("down").inc(int(tunnel.get("bytes_down") or 0))


def alert_raised(rule: str, severity: str) -> None:
    """One alert the policy raised (called by the alerts module, once per alert sent)."""
    _alerts(_alert_values(rule), severity).inc()


def approval_created() -> None:
    APPROVALS_CREATED.inc()


def approvals_abandoned(count: int) -> None:
    APPROVALS_ABANDONED.inc(count)


def approval_withdrawn() -> None:
    APPROVALS_WITHDRAWN.inc()


def approval_decided(approved: bool) -> None:
    APPROVALS_DECIDED.labels("approved" if approved else "denied").inc()


_revision: str | None = None


def policy_revision(revision: str) -> None:
    """The revision this process serves now: its series is 1, the previous one's gone
    (in multi-process mode it stays in the files as 0, and `_Workers` leaves it out)."""
    global _revision
    if revision == _revision:
        return
    previous, _revision = _revision, revision
    POLICY_INFO.labels(revision).set(1)
    if previous is not None:
        POLICY_INFO.labels(previous).set(0)
        if not multiprocess():
            POLICY_INFO.remove(previous)


def policy_reload_failed() -> None:
    POLICY_RELOAD_FAILURES.inc()


def policy_revisions_differ(differ: bool) -> None:
    POLICY_REVISIONS_DIFFER.set(1 if differ else 0)


def key_reload_failed() -> None:
    KEY_RELOAD_FAILURES.inc()


# -- serving ------------------------------------------------------------------------------


def multiprocess() -> bool:
    """Whether this process is one worker of several (its samples go to files)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class _Workers(Collector):
    """Every worker's samples, added up from the files (MultiProcessCollector), less the
    series a revision no longer served left at 0."""

    def __init__(self, path: str) -> None:
        self._files = MultiProcessCollector(None, path)

    def collect(self) -> Iterable[Metric]:
        for metric in self._files.collect():
            if metric.name == _POLICY_INFO:
                metric.samples = [s for s in metric.samples if s.value]
            yield metric


def registry() -> CollectorRegistry:
    """What /metrics serves: every worker's samples in multi-process mode, else this
    process's (the default registry)."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return REGISTRY
    found = CollectorRegistry(auto_describe=True)
    found.register(_Workers(path))
    return found


def routes(pending: Callable[[], Awaitable[int]] | None = None) -> list[web.RouteDef]:
    """`GET /metrics` for the admin server; `pending` counts approvals pending in the
    store (asked once per scrape; a store that does not answer leaves the last count)."""
    served = registry()

    async def metrics(_request: web.Request) -> web.Response:
        flush()  # this process's own, at once; the other workers' within FLUSH_SECONDS
        if pending is not None:
            try:
                APPROVALS_PENDING.set(await asyncio.wait_for(pending(), _COUNT_SECONDS))
            except Exception as exc:  # the store is down: every other metric still serves
                log.warning("metrics: approvals pending not counted: %s", exc)
        # Reading every worker's files is file I/O: off the event loop exchanges use.
        body = await asyncio.to_thread(generate_latest, served)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    return [web.get("/metrics", metrics)]

