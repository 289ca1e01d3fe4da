"""extproc/metrics.py: what each family counts, served on a real admin server.

Counts come from the same places as in tollgate: the record observer on evidence as the
exchange pipeline builds it, a real Recorder and its writer process, a real approvals
store, a real PolicyReloader. Several worker processes are real processes writing to one
PROMETHEUS_MULTIPROC_DIR. deploy/grafana/tollgate.json is checked against what
`/metrics` serves, and docs/telemetry.md's Metrics table against what is defined.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from extproc import admin, metrics
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.reload import PolicyReloader
from extproc.policy.sources import read_modules
from extproc.quickstart import stack
from extproc.recording import Decided, Evidence, Recorder
from extproc.recording.chain import Signer
from extproc.recording.record import RecordedTarget
from extproc.store import StoreError
from tests.approvals.conftest import create, opened
from tests.recording.conftest import MASKER, TARGET, evidence, settings

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "grafana" / "tollgate.json"
DOC = REPO / "docs" / "telemetry.md"


def value(name: str, **labels: str) -> float:
    """A sample of this process's registry (0 when it has none yet), the exchanges
    observed so far flushed into it first."""
    metrics.flush()
    return REGISTRY.get_sample_value(name, labels) or 0.0


def exchange(action: str = "allow", rules: tuple[str, ...] = (), **masked: int) -> Evidence:
    """A finished exchange's evidence, as the pipeline leaves it: a request decision, a
    response decision, the settling action and rules on the outcome."""
    found = evidence(action=action, rules=rules)
    found.decisions.append(Decided("response", action, (), rules, 200, "rev-1", 250))
    found.outcome.update({"tollgate.decision.action": action,
                          "tollgate.decision.rules": rules})
    found.masked = collections.Counter(masked)
    found.duration_ms = 12.5
    return found


# -- what is counted ----------------------------------------------------------------------


def readings(target: str) -> dict[str, float]:
    """What one denied, masked exchange on `target` moves."""
    return {
        "exchanges": value("tollgate_exchanges_total", target=target, action="deny"),
        "rule_a": value("tollgate_exchange_rules_total", target=target, action="deny",
                        rule="sql.destroy"),
        "rule_b": value("tollgate_exchange_rules_total", target=target, action="deny",
                        rule="sql.production"),
        "request": value("tollgate_decision_duration_seconds_count", target=target,
                         phase="request"),
        "fast": value("tollgate_decision_duration_seconds_bucket", target=target,
                      phase="request", le="0.0001"),
        "response": value("tollgate_decision_duration_seconds_count", target=target,
                          phase="response"),
        "duration": value("tollgate_exchange_duration_seconds_sum", target=target),
        "email": value("tollgate_masked_values_total", target=target, detector="email"),
    }


def test_an_exchange_is_counted_by_target_action_rule_latency_and_masking() -> None:
    target = TARGET.name
    before = readings(target)
    metrics.observe(exchange("deny", ("sql.destroy", "sql.production"), email=3, us_ssn=0))
    after = readings(target)
    assert {k: after[k] - before[k] for k in before} == {
        "exchanges": 1, "rule_a": 1, "rule_b": 1, "request": 1,
        "fast": 1,  # the request decision took 40 µs
        "response": 1, "duration": pytest.approx(0.0125), "email": 3}
    # A detector that masked nothing adds no series.
    metrics.flush()
    assert REGISTRY.get_sample_value("tollgate_masked_values_total",
                                     {"target": target, "detector": "us_ssn"}) is None


def test_an_exchange_is_counted_in_memory_and_reaches_the_families_at_a_flush() -> None:
    """Off the path: observing touches no family (in multi-process mode, no file and no
    lock); a flush adds what was observed since the last, each series once."""
    metrics.flush()
    before = REGISTRY.get_sample_value("tollgate_exchanges_total",
                                       {"target": TARGET.name, "action": "allow"}) or 0.0
    for _ in range(3):
        metrics.observe(exchange("allow"))
    assert (REGISTRY.get_sample_value("tollgate_exchanges_total",
                                      {"target": TARGET.name, "action": "allow"}) or 0.0
            ) == before
    metrics.flush()
    assert REGISTRY.get_sample_value("tollgate_exchanges_total",
                                     {"target": TARGET.name, "action": "allow"}) == before + 3


def test_a_flushed_histogram_is_the_one_its_observations_would_have_made() -> None:
    """The batched buckets and sum equal prometheus-client's own observe, value by value,
    bounds included (a value on a bound is in that bound's bucket)."""
    own = Histogram("tollgate_test_reference_seconds", "reference",
                    buckets=metrics._EXCHANGE_BUCKETS, registry=CollectorRegistry())
    target = "histogram-check"
    values = [0.0, 0.001, 0.0011, 0.0025, 0.03, 0.25, 7.0, 300.0, 301.0, 12_000.0]
    for seconds in values:
        found = exchange("allow")
        found.target = RecordedTarget(target, "http", "prod", {})
        found.duration_ms = seconds * 1000
        metrics.observe(found)
        own.observe(seconds)
    metrics.flush()
    served = {(s.labels.get("le"), s.name): s.value for m in REGISTRY.collect()
              if m.name == "tollgate_exchange_duration_seconds" for s in m.samples
              if s.labels.get("target") == target}
    reference = {(s.labels.get("le"), s.name.replace("tollgate_test_reference_seconds",
                                                     "tollgate_exchange_duration_seconds")):
                 s.value for m in own.collect() for s in m.samples}
    assert served == pytest.approx(reference)


async def test_counts_not_yet_flushed_are_flushed_when_the_process_stops() -> None:
    metrics.flush()
    before = value("tollgate_exchanges_total", target=TARGET.name, action="allow")
    counting = asyncio.create_task(metrics.flushing())
    await asyncio.sleep(0)  # running, asleep until its first beat
    metrics.observe(exchange("allow"))
    counting.cancel()
    await asyncio.gather(counting, return_exceptions=True)
    assert REGISTRY.get_sample_value("tollgate_exchanges_total", {
        "target": TARGET.name, "action": "allow"}) == before + 1


def test_an_exchange_no_rule_settled_counts_under_rule_none() -> None:
    before = value("tollgate_exchange_rules_total", target=TARGET.name, action="allow",
                   rule="none")
    metrics.observe(exchange("allow"))
    assert value("tollgate_exchange_rules_total", target=TARGET.name, action="allow",
                 rule="none") == before + 1


def test_a_refusal_before_any_decision_or_target_is_a_deny_of_no_target() -> None:
    """No token, an unknown target: tollgate refused it before the policy was asked."""
    found = evidence()
    found.target, found.decisions = None, []
    found.outcome = {"tollgate.refusal": "unknown_target", "http.response.status_code": 404}
    before = value("tollgate_exchanges_total", target="none", action="deny")
    metrics.observe(found)
    assert value("tollgate_exchanges_total", target="none", action="deny") == before + 1


def test_acts_that_are_no_exchange_are_not_counted() -> None:
    """Approvers' decisions, alerts and a strict target's decision record are in the
    record too, but they are no exchange of an agent's."""
    before = value("tollgate_exchanges_total", target=TARGET.name, action="allow")
    for kind in ("approval", "alert", "decision"):
        act = exchange()
        act.kind = kind
        metrics.observe(act)
    assert value("tollgate_exchanges_total", target=TARGET.name, action="allow") == before


def test_rule_names_beyond_the_bound_count_as_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy that builds rule names from its input cannot grow the series unbounded."""
    monkeypatch.setattr(metrics, "MOST_VALUES", 3)
    values = metrics._Values()
    assert [values(f"rule.{n}") for n in range(5)] == [
        "rule.0", "rule.1", "rule.2", "other", "other"]
    assert values("rule.1") == "rule.1"  # one already seen keeps its name


def test_no_identity_token_or_trace_id_reaches_a_label() -> None:
    found = exchange("deny", ("sql.destroy",), email=1)
    metrics.observe(found)
    text = exposition()
    assert found.identity is not None
    for secret in (found.trace_id, found.span_id, found.identity["sub"],
                   found.identity["jti"], found.headers["x-request-id"]):
        assert secret not in text


def test_alerts_are_counted_by_rule_and_severity() -> None:
    before = value("tollgate_alerts_total", rule="token_reuse", severity="critical")
    metrics.alert_raised("token_reuse", "critical")
    metrics.alert_raised("token_reuse", "critical")
    assert value("tollgate_alerts_total", rule="token_reuse", severity="critical") == before + 2


# -- where it is hooked -------------------------------------------------------------------


QUERY = "data.tollgate.decision"
ALLOW = 'package tollgate\nimport rego.v1\ndecision := {"action": "allow"}\n'
DENY = ('package tollgate\nimport rego.v1\n'
        'decision := {"action": "deny", "reasons": ["closed"], "rules": ["t.closed"]}\n')


def revisions() -> dict[str, float]:
    return {s.labels["revision"]: s.value
            for family in REGISTRY.collect() if family.name == "tollgate_policy_info"
            for s in family.samples}


async def test_the_policy_revision_is_one_series_and_failed_reloads_are_counted(
        tmp_path: Path) -> None:
    (tmp_path / "policy.rego").write_text(ALLOW)
    engine = EmbeddedEngine(read_modules(tmp_path), QUERY)
    reloader = PolicyReloader(engine, tmp_path, 0)
    first = engine.revision
    assert revisions() == {first: 1}
    (tmp_path / "policy.rego").write_text(DENY)
    assert await reloader.reload("test")
    assert revisions() == {engine.revision: 1} and engine.revision != first
    failures = value("tollgate_policy_reload_failures_total")
    (tmp_path / "policy.rego").write_text("package tollgate\ndecision := {\n")
    assert not await reloader.reload("test")
    assert value("tollgate_policy_reload_failures_total") == failures + 1
    assert revisions() == {engine.revision: 1}


async def test_approvals_asked_decided_and_pending(sqlite_url: str) -> None:
    asked = value("tollgate_approvals_created_total")
    approved = value("tollgate_approvals_decided_total", outcome="approved")
    denied = value("tollgate_approvals_decided_total", outcome="denied")
    async with opened(sqlite_url) as store:
        first, second, third = [await create(store) for _ in range(3)]
        await store.decide(first.id, "dana", ["dba"], True, None)
        await store.decide(second.id, "dana", ["dba"], False, "no")
        # One more, already expired: not pending any more, though nobody decided it.
        await create(store, expire_seconds=0)
        assert await store.pending_count() == 1
        async with serving(store.pending_count) as scrape:
            assert sample(await scrape(), "tollgate_approvals_pending") == 1
            await store.decide(third.id, "dana", ["dba"], True, None)
            assert sample(await scrape(), "tollgate_approvals_pending") == 0
    assert value("tollgate_approvals_created_total") == asked + 4
    assert value("tollgate_approvals_decided_total", outcome="approved") == approved + 2
    assert value("tollgate_approvals_decided_total", outcome="denied") == denied + 1


async def test_a_store_that_cannot_count_leaves_the_rest_served(
        caplog: pytest.LogCaptureFixture) -> None:
    async def down() -> int:
        raise StoreError("the store is down")

    async with serving(down) as scrape:
        text = await scrape()
    assert "tollgate_exchanges_total" in text
    assert "approvals pending not counted: the store is down" in caplog.text


async def test_the_record_queue_depth_and_write_latency(sqlite_url: str,
                                                        signer: Signer) -> None:
    """The depth is set as records are sent to the writer and as it answers: records
    waiting on a writer that does not answer (a slow or stuck store) show at once."""
    # The histogram is the process's: what this test adds to it is what it shows.
    writes = value("tollgate_record_write_duration_seconds_count")
    waited = value("tollgate_record_write_duration_seconds_sum")
    recorder = Recorder(sqlite_url, settings(queue_size=50), signer, MASKER)
    assert value("tollgate_record_queue_capacity") == 50
    recorder.start()
    writer = recorder.writer_process
    assert writer is not None
    try:
        os.kill(writer, signal.SIGSTOP)
        for n in range(5):
            recorder.admit()
            recorder.submit(evidence(n))
        await asyncio.sleep(0.05)  # sent within 2 ms, not written
        assert value("tollgate_record_queue_depth") == 5
        os.kill(writer, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while recorder.written < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert recorder.written == 5
        assert value("tollgate_record_queue_depth") == 0
        assert value("tollgate_record_write_duration_seconds_count") == writes + 5
        added = value("tollgate_record_write_duration_seconds_sum") - waited
        assert 0.05 * 5 <= added < 60
    finally:
        os.kill(writer, signal.SIGCONT)
        await recorder.close()


# -- serving ------------------------------------------------------------------------------


@asynccontextmanager
async def serving(pending: Callable[[], Awaitable[int]] | None = None,
                  ) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """A real admin server serving /metrics on a free port; a function that scrapes it
    (asserting the answer Prometheus expects, with no token)."""
    port = stack.free_port()
    runner = await admin.start(f"127.0.0.1:{port}", metrics.routes(pending))

    async def scrape() -> str:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/metrics") as reply:
            assert reply.status == 200
            assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
            return await reply.text()

    try:
        yield scrape
    finally:
        await runner.cleanup()


def exposition() -> str:
    from prometheus_client import generate_latest
    metrics.flush()
    return generate_latest(REGISTRY).decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


def served_names(text: str) -> set[str]:
    """Every series name the text's families can have (a counter's `_total`, a
    histogram's `_bucket`, `_sum`, `_count`), labelled families without series yet
    included."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "gauge": ("",), "summary": ("_sum", "_count", ""), "untyped": ("",)}
    return {family.name + suffix for family in text_string_to_metric_families(text)
            for suffix in suffixes[family.type]}


def defined() -> dict[str, MetricWrapperBase]:
    """tollgate's metric families, by the name PromQL queries them by."""
    found = {}
    for item in vars(metrics).values():
        if isinstance(item, MetricWrapperBase):
            name = item._name + ("_total" if item._type == "counter" else "")
            found[name] = item
    return found


async def test_metrics_serves_every_family_in_prometheus_text_to_anyone() -> None:
    async with serving() as scrape:
        text = await scrape()
    names = {f.name for f in text_string_to_metric_families(text)}
    for name, family in defined().items():
        assert family._name in names, f"{name} is not served"
        assert name.startswith("tollgate_")


# -- several worker processes -------------------------------------------------------------

WORKER = textwrap.dedent("""
    import collections, sys
    from extproc import metrics
    from extproc.recording.record import Decided, Evidence, RecordedTarget
    n, revisions = int(sys.argv[1]), sys.argv[2].split(",")
    for i in range(n):
        metrics.observe(Evidence(
            "exchange", 0.0, f"{i:032x}", f"{i:016x}", {},
            target=RecordedTarget("orders", "http", "prod", {}),
            decisions=[Decided("request", "allow", (), (), 200, "r", 100)],
            outcome={"tollgate.decision.action": "allow"},
            masked=collections.Counter(email=1), duration_ms=2.0))
    for revision in revisions:
        metrics.policy_revision(revision)
    metrics.RECORD_QUEUE_SIZE.set(100)
    metrics.flush()
    print("done", flush=True)
""")


@pytest.mark.slow
def test_several_worker_processes_are_added_up(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {"PATH": "/usr/bin:/bin", metrics.MULTIPROC_ENV: str(directory)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(n), revisions],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
               for n, revisions in ((3, "rev-a"), (5, "rev-a,rev-b"))]
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0 and out.strip() == "done"
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(directory))
    from prometheus_client import generate_latest
    text = generate_latest(metrics.registry()).decode()
    assert sample(text, "tollgate_exchanges_total", target="orders", action="allow") == 8
    assert sample(text, "tollgate_masked_values_total", target="orders",
                  detector="email") == 8
    assert sample(text, "tollgate_exchange_duration_seconds_count", target="orders") == 8
    assert sample(text, "tollgate_record_queue_capacity") == 200  # two live workers
    # Each revision served by a worker, once: rev-a by the first, rev-b by the second
    # (whose rev-a, left at 0 in its file, is not served).
    assert sample(text, "tollgate_policy_info", revision="rev-a") == 1
    assert sample(text, "tollgate_policy_info", revision="rev-b") == 1
    assert "pid=" not in text
    # A worker gone: its gauges go, its counts stay.
    mark_process_dead(workers[0].pid, str(directory))
    text = generate_latest(metrics.registry()).decode()
    assert sample(text, "tollgate_record_queue_capacity") == 100
    assert sample(text, "tollgate_policy_info", revision="rev-a") is None
    assert sample(text, "tollgate_policy_info", revision="rev-b") == 1
    assert sample(text, "tollgate_exchanges_total", target="orders", action="allow") == 8


# -- the documentation --------------------------------------------------------------------


def documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """docs/telemetry.md's Metrics table: name -> (type, labels)."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 4:
            continue
        name = re.fullmatch(r"`(tollgate_\w+)`", cells[0])
        if name:
            labels = set(re.findall(r"`(\w+)`", cells[2]))
            found[name[1]] = (cells[1], labels)
    return found


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    documented = documented_metrics()
    assert set(documented) == set(defined())
    for name, family in defined().items():
        kind, labels = documented[name]
        assert kind == family._type, name
        assert labels == set(family._labelnames), name


# -- the dashboard ------------------------------------------------------------------------

# What a PromQL expression names that is no metric: functions and aggregations (followed
# by a parenthesis, read as such below), keywords, and literals.
PROMQL_WORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "atan2", "inf", "nan", "Inf", "NaN"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (with Grafana's $variables) reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "",
                  expr)
    found = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][\w:]*", expr):
        if expr[match.end():].lstrip().startswith("(") or match[0] in PROMQL_WORDS:
            continue
        found.add(match[0])
    return found


def test_metric_names_reads_promql() -> None:
    assert metric_names('histogram_quantile(0.99, sum by (le, phase) (rate('
                        'a_bucket{target=~"$target", x="by(y)"}[$__rate_interval])))'
                        ) == {"a_bucket"}
    assert metric_names("sum(rate(a_total[5m])) by (target) / ignoring(x) b offset 1h"
                        ) == {"a_total", "b"}
    assert metric_names("max(c) > bool 1e3 and on(instance) d") == {"c", "d"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels, and the metric its variables'
    `label_values(metric, label)` read."""
    found = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            label_values = re.fullmatch(r"label_values\((\w+),\s*\w+\)", text)
            assert label_values, f"variable {variable['name']}: {text}"
            found.append(label_values[1])
    return found


def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_of_the_users_choice() -> None:
    board = dashboard()
    assert board["uid"] == "tollgate" and board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    taken: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        place = panel["gridPos"]
        assert place["x"] + place["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(place["x"], place["x"] + place["w"])
                 for y in range(place["y"], place["y"] + place["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and panel["description"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


async def test_the_dashboard_queries_only_what_metrics_serves_and_every_family() -> None:
    metrics.observe(exchange("deny", ("sql.destroy",), email=1))
    async with serving() as scrape:
        served = served_names(await scrape())
    used = set().union(*(metric_names(q) for q in dashboard_queries()))
    assert used, "no metric found in the dashboard's queries"
    assert used <= served, f"the dashboard queries what /metrics does not serve: " \
        f"{sorted(used - served)}"
    for name, family in defined().items():
        queried = {name} if family._type != "histogram" else {f"{name}_bucket"}
        assert queried & used, f"no panel shows {name}"
