"""/metrics of a real tollgate, after real exchanges through a real Envoy.

One gateway of one process (the default registry): an allowed exchange, a refused one,
a masked answer and a held request an approver lets through are each counted as the
record has them, and the Grafana dashboard queries nothing /metrics lacks. One gateway
of two worker processes (the multi-process mode): worker 0's /metrics adds up both, and
a worker killed and restarted leaves its counts in the sums and no stale gauges.
"""

from __future__ import annotations

import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from extproc import config
from extproc.quickstart import stack
from tests.e2e.test_approvals_e2e import AGENT, DBA, Held, api, sql
from tests.e2e.test_workers_e2e import pending, scratch_delete, worker_pids, writers_of
from tests.support.gateway import Gateway, GatewayFactory, module_gateway
from tests.test_metrics import dashboard_queries, metric_names, served_names

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    with module_gateway(tmp_path_factory, otlp, "metrics",
                        settings={"approvals": {"max_hold_seconds": 30}}) as running:
        yield running


def text_of(gw: Gateway) -> str:
    """The admin port's /metrics, as Prometheus scrapes it: no token."""
    with urllib.request.urlopen(f"{gw.admin_url}/metrics", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
        return str(reply.read().decode())


def scrape(gw: Gateway) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text_of(gw))
            for s in family.samples}


def of(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def counted(gw: Gateway, name: str, at_least: float, **labels: str) -> Samples:
    """The samples once `name{labels}` has reached `at_least` (an exchange is counted
    when its record is handed over, just after its answer)."""
    found: Samples = {}

    def reached() -> bool:
        nonlocal found
        found = scrape(gw)
        return of(found, name, **labels) >= at_least

    stack.wait_until(reached, 10, f"{name}{labels} >= {at_least}")
    return found


def test_real_exchanges_are_counted_as_their_records_say(gw: Gateway) -> None:
    before = scrape(gw)
    allowed = gw.request("GET", "/echo")
    assert allowed.status == 200
    refused = sql(gw, "DROP TABLE customers")
    assert refused.status == 403
    rules = refused.json()["rules"]
    masked = gw.request("GET", "/api/customers")
    assert masked.status == 200 and "[REDACTED:EMAIL_ADDRESS]" in masked.body.decode()

    # An exchange is counted as it ends, after its answer reached the client: wait for both.
    counted(gw, "tollgate_exchanges_total", of(
        before, "tollgate_exchanges_total", target="demo", action="allow") + 2,
        target="demo", action="allow")
    after = counted(gw, "tollgate_exchanges_total", of(
        before, "tollgate_exchanges_total", target="demo", action="deny") + 1,
        target="demo", action="deny")
    for rule in rules:
        assert of(after, "tollgate_exchange_rules_total", target="demo", action="deny",
                  rule=rule) == of(before, "tollgate_exchange_rules_total", target="demo",
                                   action="deny", rule=rule) + 1
    assert of(after, "tollgate_masked_values_total", target="demo", detector="email") > of(
        before, "tollgate_masked_values_total", target="demo", detector="email")
    assert of(after, "tollgate_decision_duration_seconds_count", target="demo",
              phase="request") >= of(before, "tollgate_decision_duration_seconds_count",
                                     target="demo", phase="request") + 3
    assert of(after, "tollgate_exchange_duration_seconds_count", target="demo") >= of(
        before, "tollgate_exchange_duration_seconds_count", target="demo") + 3
    # The records, written off the request path: write latency observed for each.
    records = gw.wait_for_records(3)
    written = counted(gw, "tollgate_record_write_duration_seconds_count", len(records))
    assert of(written, "tollgate_record_queue_capacity") == config.load(
        gw.config_path).recording.queue_size
    # The revision the records' decisions name is the one served, alone.
    revisions = {d["policy_revision"] for r in records for d in r.get("decisions", [])}
    served = {dict(labels)["revision"] for (name, labels), v in written.items()
              if name == "tollgate_policy_info" and v == 1}
    assert served == revisions and len(served) == 1
    # No identity, token or trace id is a label.
    text = text_of(gw)
    for secret in (allowed.trace_id, refused.trace_id, "svc-autogen", AGENT):
        assert secret and secret not in text


def test_a_hold_an_approver_decides_is_counted(gw: Gateway) -> None:
    before = scrape(gw)
    text = scratch_delete()
    held = Held(lambda: sql(gw, text, AGENT))
    approval = pending(gw, text)
    waiting = scrape(gw)
    assert of(waiting, "tollgate_approvals_pending") >= 1
    assert of(waiting, "tollgate_approvals_created_total") == of(
        before, "tollgate_approvals_created_total") + 1
    status, _ = api(gw, "POST", f"/approvals/{approval['id']}/approve", DBA, {"reason": "ok"})
    assert status == 200
    reply = held.result(10)
    assert reply.status != 403  # let through (the table is the demo's to lack)
    after = counted(gw, "tollgate_exchanges_total", of(
        before, "tollgate_exchanges_total", target="demo", action="allow") + 1,
        target="demo", action="allow")
    assert of(after, "tollgate_approvals_decided_total", outcome="approved") == of(
        before, "tollgate_approvals_decided_total", outcome="approved") + 1
    assert of(after, "tollgate_approvals_pending") == of(waiting,
                                                         "tollgate_approvals_pending") - 1
    # The held exchange's latency is its record's, the wait for its approval included.
    records: list[dict[str, object]] = []

    def recorded() -> bool:
        records[:] = [r for r in gw.records() if r["trace_id"] == reply.trace_id
                      and r["kind"] == "exchange"]
        return bool(records)

    stack.wait_until(recorded, 10, "the held exchange's record")
    (record,) = records
    assert [d["action"] for d in record["decisions"]] == ["hold"]
    assert of(after, "tollgate_exchange_duration_seconds_sum", target="demo") - of(
        before, "tollgate_exchange_duration_seconds_sum", target="demo") == pytest.approx(
        record["duration_ms"] / 1000, abs=1e-5)


def test_the_dashboard_queries_what_a_real_tollgate_serves(gw: Gateway) -> None:
    served = served_names(text_of(gw))
    used = set().union(*(metric_names(q) for q in dashboard_queries()))
    assert used and used <= served, sorted(used - served)


def test_two_workers_are_added_up_and_a_restarted_one_keeps_its_counts(
        make_gateway: GatewayFactory) -> None:
    gw = make_gateway(workers=2, settings={"recording": {"writer_id": "gw"}})
    traces = []
    for _ in range(20):
        reply = gw.request("GET", "/echo")
        assert reply.status == 200
        traces.append(reply.trace_id)
    counted(gw, "tollgate_exchanges_total", 20, target="demo", action="allow")
    stack.wait_until(lambda: set(traces) <= set(writers_of(gw)), 10, "the 20 records")
    assert {writers_of(gw)[t] for t in traces} == {"gw-w0", "gw-w1"}  # both answered
    found = scrape(gw)
    assert of(found, "tollgate_exchanges_total", target="demo", action="allow") == 20
    queue = config.load(gw.config_path).recording.queue_size
    assert of(found, "tollgate_record_queue_capacity") == 2 * queue  # two live workers
    # The exchanges', and each worker's policy load's (kind `policy`).
    assert of(found, "tollgate_record_write_duration_seconds_count") == 20 + 2
    assert len([k for k, v in found.items() if k[0] == "tollgate_policy_info" and v]) == 1
    assert "pid=" not in text_of(gw)

    before = worker_pids(gw.tollgate)
    os.kill(before[1], signal.SIGKILL)
    port = gw.ports.ext_proc + 1
    stack.wait_until(lambda: not stack.grpc_serving(port)(), 10, "worker 1 gone")
    stack.wait_until(stack.grpc_serving(port), 30, "worker 1 restarted")
    assert worker_pids(gw.tollgate)[1] != before[1]
    found = scrape(gw)
    # Its exchanges stay counted; its gauges are the new process's, not both.
    assert of(found, "tollgate_exchanges_total", target="demo", action="allow") == 20
    assert of(found, "tollgate_record_queue_capacity") == 2 * queue
    # The workers' directory is the supervisor's for this run, and goes with it.
    after = worker_pids(gw.tollgate)
    directories = {folder for pid in after.values() for folder in counting_in(pid)}
    (directory,) = directories
    # Only workers count there (not their record writers): the supervisor's files hold
    # the families it made as it imported them, all zero, before it forked the workers.
    owners = {int(f.stem.rsplit("_", 1)[1]) for f in Path(directory).glob("*.db")}
    supervisor = gw.tollgate.popen.pid
    assert owners - {supervisor} and owners <= {*before.values(), *after.values(), supervisor}
    assert {value for f in Path(directory).glob(f"*_{supervisor}.db")
            for _, value, *_ in MmapedDict.read_all_values_from_file(str(f))} <= {0.0}
    assert gw.tollgate.stop(30) == 0
    assert not Path(directory).exists()


def counting_in(pid: int) -> set[Path]:
    """The folders of the metrics files a process has mapped (prometheus-client's
    multi-process mode counts in memory-mapped files)."""
    with open(f"/proc/{pid}/maps", encoding="utf-8") as maps:
        return {Path(line.split()[-1]).parent for line in maps if line.rstrip().endswith(".db")}
