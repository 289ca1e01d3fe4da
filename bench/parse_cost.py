"""What parsing one ext_proc request-headers message costs: xds-protos against envoy-data-plane.

docs/architecture.md puts xds-protos (upb) on the request path and keeps envoy-data-plane's
pure-Python dataclasses off it; this measures the gap that rule rests on, on a
message shaped like the ones Envoy sends tollgate (ten headers, the route and
cluster attributes).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpHeaders, ProcessingRequest
from envoy_data_plane.envoy.service.ext_proc.v3 import ProcessingRequest as DataclassRequest
from google.protobuf.internal import api_implementation
from google.protobuf.struct_pb2 import Struct, Value

from extproc.http.wire import ATTRIBUTES_KEY

HEADERS = {
    ":authority": "127.0.0.1:10000",
    ":path": "/api/customers?limit=10",
    ":method": "GET",
    ":scheme": "http",
    "user-agent": "autogen/0.4 python-httpx/0.28.1",
    "accept": "application/json",
    "x-forwarded-proto": "http",
    "x-request-id": "0f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzdmMtYXV0b2dlbiJ9.c2lnbmF0dXJl",
}


def request_headers_message() -> bytes:
    """The wire bytes of a request-headers message as Envoy's ext_proc filter sends it."""
    attributes = Struct(fields={
        "xds.route_name": Value(string_value="demo"),
        "xds.cluster_name": Value(string_value="demo_upstream"),
    })
    message = ProcessingRequest(
        request_headers=HttpHeaders(
            headers=HeaderMap(headers=[
                HeaderValue(key=k, raw_value=v.encode()) for k, v in HEADERS.items()
            ]),
            end_of_stream=True,
        ),
        attributes={ATTRIBUTES_KEY: attributes},
    )
    return message.SerializeToString()


def median_us(parse: Callable[[bytes], object], data: bytes, batch: int, batches: int) -> float:
    """Median over `batches` of the mean µs per call in a batch (after one warm-up batch)."""
    per_call: list[float] = []
    for _ in range(batches + 1):
        started = time.perf_counter_ns()
        for _ in range(batch):
            parse(data)
        per_call.append((time.perf_counter_ns() - started) / batch / 1000)
    return statistics.median(per_call[1:])


def main() -> None:
    data = request_headers_message()
    # Both parsers must read the same message, or the comparison means nothing.
    upb, dataclass = ProcessingRequest.FromString(data), DataclassRequest.parse(data)
    for parsed in (upb, dataclass):
        assert len(parsed.request_headers.headers.headers) == len(HEADERS)
    route = dataclass.attributes[ATTRIBUTES_KEY].fields["xds.route_name"].string_value
    assert route == upb.attributes[ATTRIBUTES_KEY].fields["xds.route_name"].string_value == "demo"

    protobuf_us = median_us(ProcessingRequest.FromString, data, batch=20_000, batches=15)
    dataclass_us = median_us(DataclassRequest.parse, data, batch=200, batches=15)
    backend = api_implementation.Type()
    print(f"Parsing one ext_proc request-headers message ({len(data)} bytes, "
          f"{len(HEADERS)} headers + route/cluster attributes); median of 15 batches")
    print(f"{'parser':<48} {'µs/parse':>10} {'ratio':>8}")
    print(f"{f'xds-protos ProcessingRequest.FromString ({backend})':<48} "
          f"{protobuf_us:>10.2f} {1:>7.0f}x")
    print(f"{'envoy-data-plane ProcessingRequest.parse':<48} "
          f"{dataclass_us:>10.2f} {dataclass_us / protobuf_us:>7.0f}x")


if __name__ == "__main__":
    main()
