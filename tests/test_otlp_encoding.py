"""The fast OTLP encoder writes exactly the message the SDK's encoder builds."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from extproc.codecs.otlp_encoding import encode_request


class Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: list[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def provider(name: str, schema_url: str = "") -> tuple[TracerProvider, Keep]:
    kept = Keep()
    tracer_provider = TracerProvider(
        resource=Resource.create({"service.name": name, "n": 1}, schema_url=schema_url)
    )
    tracer_provider.add_span_processor(SimpleSpanProcessor(kept))
    return tracer_provider, kept


def remote_parent(sampled: bool = True) -> object:
    context = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7,
        is_remote=True, trace_flags=TraceFlags(1 if sampled else 0),
        trace_state=TraceState([("vendor", "value")]),
    )
    return set_span_in_context(NonRecordingSpan(context))


def same(spans: list[ReadableSpan]) -> None:
    ours = ExportTraceServiceRequest.FromString(encode_request(spans))
    assert ours == encode_spans(spans)


ATTRIBUTES = {
    "str": "value", "unicode": "héllo ✓", "empty": "", "true": True, "false": False,
    "int": 42, "zero": 0, "negative": -7, "big": 2**62, "float": 1.5, "neg_float": -0.25,
    "strs": ("a", "b"), "ints": (1, -2), "bools": (True, False), "floats": (0.5,),
    "empty_tuple": (),
}


def test_exchange_span_shapes() -> None:
    tracer_provider, kept = provider("tollgate")
    tracer = tracer_provider.get_tracer("tollgate", "0.1.0")
    span = tracer.start_span("tollgate GET demo", kind=SpanKind.SERVER, attributes=ATTRIBUTES)
    span.add_event("tollgate.decision", {"tollgate.decision.rules": ("sql.destructive",)})
    span.add_event("bare")
    span.set_attributes({"tollgate.decision.action": "deny"})
    span.end()
    child = tracer.start_span("child", context=set_span_in_context(span))
    child.set_status(Status(StatusCode.ERROR, "exchange failed"))
    child.end()
    remote = tracer.start_span("continued", context=remote_parent(), kind=SpanKind.CLIENT)
    remote.set_status(Status(StatusCode.OK))
    remote.end()
    same(kept.spans)


def test_several_resources_and_scopes_group_like_the_sdk() -> None:
    first, kept_first = provider("a", schema_url="https://opentelemetry.io/schemas/1.21.0")
    second, kept_second = provider("b")
    for tracer_provider in (first, second):
        for scope in ("one", "two"):
            tracer = tracer_provider.get_tracer(scope, schema_url="https://example.com/s")
            for kind in SpanKind:
                tracer.start_span(f"{scope}-{kind.name}", kind=kind).end()
    same(kept_first.spans + kept_second.spans)


def test_spans_with_links_fall_back_to_the_sdk_encoder() -> None:
    tracer_provider, kept = provider("links")
    context = SpanContext(1, 2, is_remote=False)
    tracer_provider.get_tracer("x").start_span("linked", links=[Link(context, {"k": 1})]).end()
    same(kept.spans)


def test_no_spans_is_an_empty_request() -> None:
    assert encode_request([]) == b""


def test_unencodable_value_is_refused() -> None:
    from extproc.codecs import otlp_encoding

    with pytest.raises(TypeError):
        otlp_encoding._any_value(object())
