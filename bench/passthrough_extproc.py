"""A do-nothing ext_proc service: the floor any Python ext_proc pays on this machine.

Same stack as tollgate (grpc.aio on uvloop, xds-protos messages, gRPC health),
no policy, no telemetry: it lets every phase through and ends the stream after
the last one Envoy sends. The budget's reference machine measured this at ~250 µs
CPU per request, which is also the headers-only budget; bench/load.py runs it
beside tollgate so that each tollgate set-up is read against the floor of the
same phases.

`--response-body` asks, on the request headers, for what tollgate asks for a
target whose answers it masks (the same `wire.processing_mode`): the response
headers and the buffered response body. It counts the response bodies it is
sent in the file named (8 bytes, little-endian, memory-mapped: a store per
message, no system call), so the bench can check the floor really carried them.
"""

from __future__ import annotations

import argparse
import mmap
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import uvloop
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyResponse,
    CommonResponse,
    HeadersResponse,
    ProcessingRequest,
    ProcessingResponse,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from extproc.http import wire

TRACE_ID = "0" * 32
CONTINUE_REQUEST_BODY = ProcessingResponse(request_body=BodyResponse(response=CommonResponse()))
CONTINUE_RESPONSE_HEADERS = ProcessingResponse(
    response_headers=HeadersResponse(response=CommonResponse()))
CONTINUE_RESPONSE_BODY = ProcessingResponse(response_body=BodyResponse(response=CommonResponse()))
COUNTER = struct.Struct("<Q")


class Counter:
    """A count another process reads from a file at any time."""

    def __init__(self, path: Path) -> None:
        path.write_bytes(bytes(COUNTER.size))
        with path.open("r+b") as file:
            self._map = mmap.mmap(file.fileno(), COUNTER.size)
        self._value = 0

    def add(self) -> None:
        self._value += 1
        COUNTER.pack_into(self._map, 0, self._value)


def read_count(path: Path) -> int:
    """What a `Counter` on `path` has counted so far."""
    return int(COUNTER.unpack(path.read_bytes()[:COUNTER.size])[0])


class PassThrough(ext_proc_grpc.ExternalProcessorServicer):
    def __init__(self, response_bodies: Counter | None) -> None:
        self._bodies = response_bodies
        answer = wire.continue_request_headers(
            TRACE_ID, wire.processing_mode(None, "body") if response_bodies else None)
        self._request_headers = answer
        self._last_is_request = response_bodies is None

    async def Process(
        self, requests: AsyncIterator[ProcessingRequest], _context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ProcessingResponse]:
        async for message in requests:
            kind = message.WhichOneof("request")
            if kind == "request_headers":
                yield self._request_headers
                if self._last_is_request and message.request_headers.end_of_stream:
                    return
            elif kind == "request_body":
                yield CONTINUE_REQUEST_BODY
                if self._last_is_request:
                    return
            elif kind == "response_headers":
                yield CONTINUE_RESPONSE_HEADERS
                if message.response_headers.end_of_stream:
                    return
            else:
                if self._bodies is not None:
                    self._bodies.add()
                yield CONTINUE_RESPONSE_BODY
                return


async def serve(address: str, response_bodies: Counter | None) -> None:
    server = grpc.aio.server()
    ext_proc_grpc.add_ExternalProcessorServicer_to_server(PassThrough(response_bodies), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(address)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--response-body", type=Path, metavar="COUNT_FILE",
                        help="ask for the buffered response body too; count bodies here")
    args = parser.parse_args()
    uvloop.run(serve(args.listen, args.response_body and Counter(args.response_body)))
