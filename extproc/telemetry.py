"""OpenTelemetry for exchanges: one SERVER span each, exported by the record's writer.

An exchange's span is an `ExchangeSpan`: plain values while the exchange runs, which
end as `SpanData` (a tuple of them) in the exchange's evidence. The recording writer
process (recording/writer.py) turns each into a `ReadableSpan` once its record is
stored, and exports it (`SpanExport`): the request path builds no SDK span, and the
OTLP encoding, which holds a GIL, runs on the writer's core. An exchange the record
could not take (a full queue) has its span exported here instead (`Telemetry.exported`).
An agent's W3C `traceparent` is continued, so its own trace and the gateway's join.

The SDK's own `Span` validates every attribute on every call, under a lock; profiled,
that was the largest part of tollgate's own time on a headers-only exchange. The SDK
stays the tracing layer: its resource, processors and OTLP exporter, configured as
usual, and the spans that are not an exchange's (an approver's decision) are its own.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from extproc import __version__, config

_propagator = TraceContextTextMapPropagator()
log = logging.getLogger("tollgate.telemetry")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
_PRIMITIVE = (str, bool, int, float)
_PRIMITIVE_SET = frozenset(_PRIMITIVE)
# The version of OpenTelemetry's semantic conventions the spans follow, as the scope's
# schema URL tells backends: the one the SDK's opentelemetry-semantic-conventions
# package holds (tests/test_telemetry_semconv.py checks every attribute name against it).
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
# What every exchange's span is exported with.
SCOPE = InstrumentationScope("tollgate", __version__, SCHEMA_URL)


class TelemetryError(Exception):
    """The configured exporter cannot run (the message says how to fix it)."""


def _otlp_exporter(endpoint: str) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        from extproc.codecs.otlp_encoding import encode_request
    except ImportError as exc:
        # xds-protos ships an old copy of opentelemetry/proto/*; installed after
        # opentelemetry-proto, it replaces that package's files (see the Makefile).
        raise TelemetryError(
            f"the OTLP exporter cannot load ({exc}); reinstall opentelemetry-proto: "
            "pip install --no-deps --force-reinstall opentelemetry-proto==1.45.2"
        ) from None

    class Exporter(OTLPSpanExporter):
        """The SDK's OTLP/gRPC exporter (retries, backoff, TLS, headers), encoding ~10x faster."""

        def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
            return ExportTraceServiceRequest.FromString(encode_request(data))

    return Exporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))


# An ended exchange span, as plain values (they cross to the writer process in a pickle):
# name, trace id, span id, parent (trace id, span id, remote, flags, trace state pairs)
# or None, attributes, events (name, attributes, time), status (code, description),
# start and end (ns since the epoch).
SpanData = tuple[str, int, int, tuple[int, int, bool, int, tuple[tuple[str, str], ...]] | None,
                 Mapping[str, Any], tuple[tuple[str, Mapping[str, Any], int], ...],
                 tuple[int, str | None], int, int]


def _resource(settings: config.Telemetry) -> Resource:
    return Resource.create(
        {"service.name": settings.service_name, "service.version": __version__})


def _batched(endpoint: str) -> BatchSpanProcessor:
    """The OTLP export of spans, in batches on the processor's own thread.

    Batches of 32 rather than the SDK's 512: encoding holds the GIL, so smaller batches
    keep each stall short (measured by bench/load.py at 200 req/s when this ran in the
    request process: p99 ~8 ms with 32, ~19 with 128, ~100 with 512). The standard
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE wins when set."""
    batch = None if "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in os.environ else 32
    return BatchSpanProcessor(_otlp_exporter(endpoint), max_export_batch_size=batch)


def readable(data: SpanData, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    """An exchange's span as the SDK's processors take it."""
    name, trace_id, span_id, parent, attributes, events, status, start, end = data
    parent_context = None if parent is None else SpanContext(
        parent[0], parent[1], is_remote=parent[2], trace_flags=TraceFlags(parent[3]),
        trace_state=TraceState(parent[4]))
    state = parent_context.trace_state if parent_context is not None else None
    context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED,
                          trace_state=state)
    return ReadableSpan(
        name, context, parent_context, resource, attributes,
        tuple(Event(n, a, t) for n, a, t in events), (), SpanKind.SERVER, None,
        _UNSET if status[0] == StatusCode.UNSET.value
        else Status(StatusCode(status[0]), status[1]), start, end, scope)


class SpanExport:
    """The exchanges' spans, exported where the record is written (the writer process):
    each as its record is stored, with the request process's resource and scope."""

    def __init__(self, settings: config.Telemetry) -> None:
        assert settings.otlp_endpoint is not None
        self._resource = _resource(settings)
        self._processor = _batched(settings.otlp_endpoint)

    def export(self, data: SpanData) -> None:
        self._processor.on_end(readable(data, self._resource, SCOPE))

    def flush(self, seconds: float) -> None:
        """Export what is queued, waiting at most `seconds` (a collector that is down
        must not hold a stopping writer)."""
        self._processor.force_flush(int(seconds * 1000))


class Telemetry:
    def __init__(
        self, settings: config.Telemetry, exporter: SpanExporter | None = None
    ) -> None:
        """`exporter` (tests only): also given every span as it ends, synchronously,
        in this process (an exchange's too, which the writer exports besides)."""
        self._provider = TracerProvider(
            resource=_resource(settings),
            # Every exchange is traced, whatever the agent's own trace decided: the
            # default sampler follows the caller's sampled flag, so an agent sending
            # `traceparent: ...-00` would have hidden the gateway's spans.
            sampler=ALWAYS_ON,
        )
        # The processors of every span; `_here`, those an exchange's span is also
        # given in this process as it ends (the tests' exporter).
        self._processors: list[SpanProcessor] = []
        self._here: list[SpanProcessor] = []
        if settings.otlp_endpoint:
            self._add(_batched(settings.otlp_endpoint))
        if exporter is not None:
            self._here.append(self._add(SimpleSpanProcessor(exporter)))
        # Whether an exchange's span goes anywhere: else it is not even built.
        self.traced = bool(settings.otlp_endpoint) or exporter is not None
        self._tracer = self._provider.get_tracer("tollgate", __version__, SCHEMA_URL)
        # What every exchange's span is exported with.
        self.resource = self._provider.resource
        self._ids = self._provider.id_generator

    def _add(self, processor: SpanProcessor) -> SpanProcessor:
        """A processor for every span: the SDK's (approvals) and the exchanges' own."""
        self._provider.add_span_processor(processor)
        self._processors.append(processor)
        return processor

    def start_exchange(
        self, name: str, headers: Mapping[str, str], attributes: dict[str, Any]
    ) -> ExchangeSpan:
        """Open the exchange's span, continuing the caller's trace when it sent one."""
        parent = None
        if "traceparent" in headers:
            found = trace.get_current_span(_propagator.extract(headers)).get_span_context()
            parent = found if found.is_valid else None
        context = SpanContext(
            parent.trace_id if parent else self._ids.generate_trace_id(),
            self._ids.generate_span_id(), is_remote=False, trace_flags=_SAMPLED,
            trace_state=parent.trace_state if parent else None)
        return ExchangeSpan(self, name, context, parent, attributes)

    def ended(self, data: SpanData) -> None:
        """An exchange's span, complete: to the processors of this process that take
        it as it ends (the writer exports it with its record)."""
        if self._here:
            span = readable(data, self.resource, SCOPE)
            for processor in self._here:
                processor.on_end(span)

    def exported(self, data: SpanData | None) -> None:
        """An exchange's span that no record carries (the record could not take the
        exchange): exported from this process."""
        if data is None:
            return
        span = readable(data, self.resource, SCOPE)
        for processor in self._processors:
            if processor not in self._here:
                processor.on_end(span)

    def start_in_trace(
        self, name: str, trace_id: str, parent_span_id: str, attributes: Mapping[str, Any]
    ) -> Span:
        """Open a span under another one, by its ids (an approver's decision, under the
        span of the request it was asked for, which may have ended long before)."""
        parent = trace.NonRecordingSpan(trace.SpanContext(
            int(trace_id, 16), int(parent_span_id, 16), is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))
        return self._tracer.start_span(
            name, context=trace.set_span_in_context(parent), kind=SpanKind.SERVER,
            attributes=attributes,
        )

    def start_span(self, name: str, attributes: Mapping[str, Any]) -> Span:
        """Open a span of a trace of its own."""
        return self._tracer.start_span(name, kind=SpanKind.SERVER, attributes=attributes)

    def shutdown(self) -> None:
        """Flush what is still queued (the SDK waits up to 30 s for the exporter)."""
        self._provider.shutdown()


class ExchangeSpan:
    """One exchange's span, as plain values until it ends (see the module's docstring).

    The subset of the API an exchange uses: attributes, events, status, end. Attribute
    values are checked once, when the span ends: what OTLP cannot carry is dropped with a
    warning, as the SDK does."""

    __slots__ = ("_attributes", "_context", "_events", "_name", "_parent", "_start",
                 "_status", "_telemetry")

    def __init__(self, telemetry: Telemetry, name: str, context: SpanContext,
                 parent: SpanContext | None, attributes: dict[str, Any]) -> None:
        self._telemetry, self._name, self._context, self._parent = (
            telemetry, name, context, parent)
        self._attributes = attributes
        self._events: list[tuple[str, Mapping[str, Any], int]] = []
        self._status = _UNSET
        self._start = time.time_ns()

    def get_span_context(self) -> SpanContext:
        return self._context

    @property
    def continued(self) -> bool:
        """Whether the span continues a trace its caller sent (an agent's run)."""
        return self._parent is not None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self._attributes.update(attributes)

    def add_event(self, name: str, attributes: Mapping[str, Any]) -> None:
        self._events.append((name, _checked(attributes), time.time_ns()))

    def set_status(self, status: Status) -> None:
        self._status = status

    def end(self) -> SpanData | None:
        """The span's values, ended (None where no span goes anywhere)."""
        telemetry = self._telemetry
        if not telemetry.traced:
            return None
        parent, context, status = self._parent, self._context, self._status
        data: SpanData = (
            self._name, context.trace_id, context.span_id,
            None if parent is None else (
                parent.trace_id, parent.span_id, parent.is_remote, int(parent.trace_flags),
                tuple(parent.trace_state.items())),
            _checked(self._attributes), tuple(self._events),
            (status.status_code.value, status.description), self._start, time.time_ns())
        telemetry.ended(data)
        return data


def _checked(attributes: Mapping[str, Any]) -> Mapping[str, Any]:
    """`attributes` as OTLP can carry them: primitives, and sequences of one primitive
    type (as tuples); anything else is dropped, with a warning. Copied only when
    something must change (tollgate's own values are already right)."""
    out: dict[str, Any] | None = None
    for key, value in attributes.items():
        kind = type(value)
        if kind in _PRIMITIVE or (kind is tuple and _uniform(value)):
            continue
        if out is None:
            out = dict(attributes)
        if kind is list and _uniform(value):
            out[key] = tuple(value)
            continue
        log.warning("span attribute %s dropped: %s cannot be exported", key, kind.__name__)
        del out[key]
    return attributes if out is None else out


def _uniform(values: tuple[Any, ...] | list[Any]) -> bool:
    """Values of one primitive type (or none): what an OTLP array attribute holds."""
    kinds = {type(v) for v in values}
    return len(kinds) <= 1 and kinds <= _PRIMITIVE_SET


def trace_id_of(span: Span | ExchangeSpan) -> str:
    return trace.format_trace_id(span.get_span_context().trace_id)


def span_id_of(span: Span | ExchangeSpan) -> str:
    return trace.format_span_id(span.get_span_context().span_id)
