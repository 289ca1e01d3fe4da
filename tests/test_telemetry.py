"""The exchange's span: plain values while the exchange runs, ended as `SpanData` that the
record's writer exports (a ReadableSpan for the SDK's processors), the agent's trace
continued; exported here only when no record carries it."""

from __future__ import annotations

import logging
import pickle

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from extproc import config
from extproc import telemetry as telemetry_module
from extproc.telemetry import SCHEMA_URL, SCOPE, Telemetry, readable, span_id_of, trace_id_of

AGENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
AGENT_SPAN = "00f067aa0ba902b7"


def telemetry() -> tuple[Telemetry, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    return Telemetry(config.Telemetry(), spans), spans


def test_an_exchange_span_reaches_the_processors_whole_when_it_ends() -> None:
    tel, spans = telemetry()
    span = tel.start_exchange("tollgate GET demo", {}, {"tollgate.target": "demo"})
    span.add_event("tollgate.decision", {"tollgate.decision.rules": ("a", "b")})
    assert spans.get_finished_spans() == ()
    span.set_attributes({"http.response.status_code": 200})
    span.set_status(Status(StatusCode.ERROR, "exchange failed"))
    span.end()
    [done] = spans.get_finished_spans()
    assert done.name == "tollgate GET demo" and done.kind is SpanKind.SERVER
    assert dict(done.attributes or {}) == {"tollgate.target": "demo",
                                           "http.response.status_code": 200}
    [event] = done.events
    assert event.name == "tollgate.decision"
    assert event.attributes == {"tollgate.decision.rules": ("a", "b")}
    assert done.status.status_code is StatusCode.ERROR
    assert done.start_time is not None and done.end_time is not None
    assert done.start_time <= event.timestamp <= done.end_time
    assert done.resource.attributes["service.name"] == "tollgate"
    # The semantic conventions' version its attributes follow, for backends to read.
    assert done.instrumentation_scope is not None
    assert done.instrumentation_scope.schema_url == SCHEMA_URL
    assert trace_id_of(span) == f"{done.context.trace_id:032x}"
    assert span_id_of(span) == f"{done.context.span_id:016x}"


def test_the_agents_traceparent_is_continued() -> None:
    tel, spans = telemetry()
    span = tel.start_exchange(
        "tollgate GET demo", {"traceparent": f"00-{AGENT_TRACE}-{AGENT_SPAN}-00"}, {})
    span.end()
    [done] = spans.get_finished_spans()
    assert trace_id_of(span) == AGENT_TRACE
    assert done.parent is not None and f"{done.parent.span_id:016x}" == AGENT_SPAN
    assert done.parent.is_remote
    assert done.context.trace_flags.sampled  # traced whatever the agent sampled


@pytest.mark.parametrize("traceparent", ["garbage", f"00-{'0' * 32}-{AGENT_SPAN}-01"])
def test_an_unusable_traceparent_begins_a_trace_of_its_own(traceparent: str) -> None:
    tel, spans = telemetry()
    span = tel.start_exchange("x", {"traceparent": traceparent}, {})
    span.end()
    [done] = spans.get_finished_spans()
    assert done.parent is None and trace_id_of(span) != "0" * 32


def test_values_otlp_cannot_carry_are_dropped_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    tel, spans = telemetry()
    span = tel.start_exchange("x", {}, {"ok": "yes", "rules": ["a", "b"]})
    span.set_attributes({"none": None, "mixed": [1, "a"], "object": {"a": 1}})
    with caplog.at_level(logging.WARNING, "tollgate.telemetry"):
        span.end()
    [done] = spans.get_finished_spans()
    assert dict(done.attributes or {}) == {"ok": "yes", "rules": ("a", "b")}
    assert sorted(r.getMessage().split(":")[0] for r in caplog.records) == [
        "span attribute mixed dropped", "span attribute none dropped",
        "span attribute object dropped"]


def test_an_ended_span_crosses_to_the_writer_as_plain_values() -> None:
    tel, spans = telemetry()
    span = tel.start_exchange(
        "tollgate GET demo", {"traceparent": f"00-{AGENT_TRACE}-{AGENT_SPAN}-01",
                              "tracestate": "vendor=1"}, {"tollgate.target": "demo"})
    span.add_event("tollgate.masking", {"tollgate.masking.count": 2})
    span.set_status(Status(StatusCode.ERROR, "exchange failed"))
    data = span.end()
    assert data is not None
    [here] = spans.get_finished_spans()
    # What the writer process rebuilds from the pickle is the span this process saw.
    there = readable(pickle.loads(pickle.dumps(data)), tel.resource, SCOPE)
    assert there.to_json() == here.to_json()
    assert there.parent is not None and there.parent.trace_state.get("vendor") == "1"


def test_a_span_nothing_exports_is_not_built() -> None:
    tel = Telemetry(config.Telemetry())
    assert tel.start_exchange("tollgate GET demo", {}, {}).end() is None


def test_an_unrecorded_exchanges_span_is_exported_from_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An exchange the record refused carries its span nowhere: this process's OTLP
    processor exports it (the writer exports every other)."""
    otlp = InMemorySpanExporter()
    monkeypatch.setattr(telemetry_module, "_batched", lambda _endpoint: SimpleSpanProcessor(otlp))
    tel = Telemetry(config.Telemetry(otlp_endpoint="http://127.0.0.1:4317"))
    data = tel.start_exchange("tollgate GET demo", {}, {}).end()
    assert otlp.get_finished_spans() == ()  # ended: left to the writer
    tel.exported(data)
    [done] = otlp.get_finished_spans()
    assert done.name == "tollgate GET demo"
