"""OpenTelemetry for exchanges: one SERVER span each, exported off the request path.

Spans go to a BatchSpanProcessor, so the request path only records in memory;
export to the OTLP endpoint happens on the processor's own thread. An agent's
W3C `traceparent` is continued, so its own trace and the gateway's join.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from extproc import __version__, config

_propagator = TraceContextTextMapPropagator()


class TelemetryError(Exception):
    """The configured exporter cannot run (the message says how to fix it)."""


def _otlp_exporter(endpoint: str) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        from extproc.otlp_encoding import encode_request
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


class Telemetry:
    def __init__(
        self, settings: config.Telemetry, exporter: SpanExporter | None = None
    ) -> None:
        """`exporter` (tests only): also given every span as it ends, synchronously."""
        self._provider = TracerProvider(
            resource=Resource.create(
                {"service.name": settings.service_name, "service.version": __version__}
            ),
            # Every exchange is traced, whatever the agent's own trace decided: the
            # default sampler follows the caller's sampled flag, so an agent sending
            # `traceparent: ...-00` would have hidden the gateway's spans.
            sampler=ALWAYS_ON,
        )
        if settings.otlp_endpoint:
            otlp = _otlp_exporter(settings.otlp_endpoint)
            # Export batches of 32 rather than the SDK's 512: encoding holds the GIL,
            # so smaller batches keep each stall of the request path short (measured
            # by bench/load.py at 200 req/s: p99 ~8 ms with 32, ~19 with 128, ~100
            # with 512). The standard OTEL_BSP_MAX_EXPORT_BATCH_SIZE wins when set.
            batch = None if "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in os.environ else 32
            self._provider.add_span_processor(
                BatchSpanProcessor(otlp, max_export_batch_size=batch)
            )
        if exporter is not None:
            self._provider.add_span_processor(SimpleSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("tollgate", __version__)

    def start_exchange(
        self, name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]
    ) -> Span:
        """Open the exchange's span, continuing the caller's trace when it sent one."""
        context = _propagator.extract(headers) if "traceparent" in headers else None
        return self._tracer.start_span(
            name, context=context, kind=SpanKind.SERVER, attributes=attributes
        )

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


def trace_id_of(span: Span) -> str:
    return trace.format_trace_id(span.get_span_context().trace_id)


def span_id_of(span: Span) -> str:
    return trace.format_span_id(span.get_span_context().span_id)
