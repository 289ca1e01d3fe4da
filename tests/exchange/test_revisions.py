"""exchange/revisions.py: processes sharing a store that serve different policy
revisions are told past the grace, and one behind refuses when told to; on SQLite and
PostgreSQL, with real engines and the real store."""

from __future__ import annotations

from extproc import metrics
from extproc.config import Policy
from extproc.exchange.revisions import Revisions
from extproc.policy.embedded import EmbeddedEngine
from extproc.store.aio import AsyncStore

QUERY = "data.tollgate.decision"
OLD = [("p.rego", 'package tollgate\nimport rego.v1\ndecision := {"action": "allow"}\n')]
NEW = [("p.rego", 'package tollgate\nimport rego.v1\ndecision := {"action": "deny"}\n')]



class _Alerts:
    """Where Revisions sends its alert (the real one records and posts it: exchange
    tests cover that path); here what it was told is kept."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []

    async def __call__(self, message: str, key: str) -> None:
        self.told.append((message, key))


def _process(store: AsyncStore, name: str, modules: list[tuple[str, str]],
             alerts: _Alerts, **policy: object) -> tuple[Revisions, EmbeddedEngine]:
    engine = EmbeddedEngine(modules, QUERY)
    settings = Policy(agreement_seconds=0, **policy)  # type: ignore[arg-type]
    return Revisions(store, name, engine, settings, alerts), engine


async def test_processes_that_agree_say_nothing(store: AsyncStore) -> None:
    alerts = _Alerts()
    one, _ = _process(store, "replica-0", OLD, alerts)
    two, _ = _process(store, "replica-1", OLD, alerts)
    await one.beat()
    reading = await two.beat()
    assert reading is not None and len(reading.served) == 1
    assert not two.differ and alerts.told == [] and two.refusal() is None


async def test_a_disagreement_past_the_grace_alerts_once_and_the_older_refuses(
        store: AsyncStore) -> None:
    alerts = _Alerts()
    behind, _ = _process(store, "replica-0", OLD, alerts, behind="refuse")
    await behind.beat()  # OLD first served now
    ahead, engine = _process(store, "replica-1", NEW, alerts, behind="refuse")
    await ahead.beat()  # NEW first served later: the newest
    await behind.beat()
    assert behind.differ and ahead.differ
    refusal = behind.refusal()
    assert refusal is not None and f"behind {engine.revision}" in refusal
    assert ahead.refusal() is None  # the newest never refuses
    assert len(alerts.told) == 2  # one per process (the store deduplicates the alert)
    message, key = alerts.told[0]
    assert "policy revisions differ" in message and "replica-0" in message
    assert key == ",".join(sorted({_engine(behind).revision, engine.revision}))
    await behind.beat()
    assert len(alerts.told) == 2  # not again while it lasts
    # It catches up: the newest is what it serves, and the reading agrees again.
    await _engine(behind).load(NEW)
    await behind.beat()
    await ahead.beat()
    assert behind.refusal() is None and not behind.differ and not ahead.differ


async def test_serving_behind_by_default_alerts_but_decides(store: AsyncStore) -> None:
    alerts = _Alerts()
    behind, _ = _process(store, "replica-0", OLD, alerts)
    await behind.beat()
    ahead, _ = _process(store, "replica-1", NEW, alerts)
    await ahead.beat()
    await behind.beat()
    assert behind.differ and behind.refusal() is None and alerts.told


async def test_a_restarted_process_with_an_old_revision_is_not_the_newest(
        store: AsyncStore) -> None:
    """Newest is the revision first served last, not the process started last."""
    alerts = _Alerts()
    old, _ = _process(store, "replica-0", OLD, alerts, behind="refuse")
    await old.beat()
    new, _ = _process(store, "replica-1", NEW, alerts, behind="refuse")
    await new.beat()
    restarted, _ = _process(store, "replica-2", OLD, alerts, behind="refuse")
    await restarted.beat()
    await new.beat()
    assert restarted.refusal() is not None and new.refusal() is None


async def test_a_grace_not_yet_passed_says_nothing(store: AsyncStore) -> None:
    alerts = _Alerts()
    engine = EmbeddedEngine(OLD, QUERY)
    slow = Revisions(store, "replica-0", engine, Policy(agreement_seconds=3600,
                                                        behind="refuse"), alerts)
    await slow.beat()
    other, _ = _process(store, "replica-1", NEW, _Alerts())
    await other.beat()
    await slow.beat()
    assert not slow.differ and slow.refusal() is None and alerts.told == []


def _engine(revisions: Revisions) -> EmbeddedEngine:
    return revisions._engine  # type: ignore[return-value]


def test_the_metric_says_whether_they_differ() -> None:
    metrics.policy_revisions_differ(True)
    assert metrics.POLICY_REVISIONS_DIFFER._value.get() == 1
    metrics.policy_revisions_differ(False)
    assert metrics.POLICY_REVISIONS_DIFFER._value.get() == 0
