"""A real OTLP/gRPC trace receiver for tests: what a collector or Jaeger would get.

It implements `opentelemetry.proto.collector.trace.v1.TraceService/Export` on a
free port of 127.0.0.1 and keeps every span it receives, decoded into plain
values, so end-to-end tests can assert on what tollgate exported over the wire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


@dataclass(frozen=True)
class Event:
    name: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    events: tuple[Event, ...]
    resource: dict[str, Any]
    status_code: int


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: list[KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self._spans: list[Span] = []
        self._changed = threading.Condition()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, _context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        received = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    received.append(Span(
                        trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(), name=s.name, kind=s.kind,
                        attributes=_attributes(s.attributes),
                        events=tuple(Event(e.name, _attributes(e.attributes)) for e in s.events),
                        resource=resource, status_code=s.status.code,
                    ))
        with self._changed:
            self._spans.extend(received)
            self._changed.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(
        self, condition: Callable[[list[Span]], bool], timeout: float = 15.0
    ) -> list[Span]:
        """Every span received so far, once `condition` holds for them (or AssertionError)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self._spans):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"spans not received within {timeout}s; have {len(self._spans)}"
                    )
                self._changed.wait(remaining)
            return list(self._spans)

    def spans_of(self, trace_id: str, count: int = 1) -> list[Span]:
        """The spans of one trace, once at least `count` of them have arrived."""
        spans = self.wait_for(lambda all_: sum(s.trace_id == trace_id for s in all_) >= count)
        return [s for s in spans if s.trace_id == trace_id]

    def span_of(self, record: dict[str, Any]) -> Span:
        """A recorded exchange's own span, once it has arrived (the writer exports it
        after storing the record; an approval's span in its trace may come first)."""
        wanted = (record["trace_id"], record["span_id"])
        spans = self.wait_for(lambda all_: any((s.trace_id, s.span_id) == wanted
                                               for s in all_))
        return next(s for s in spans if (s.trace_id, s.span_id) == wanted)

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(None)
