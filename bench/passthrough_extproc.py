"""A do-nothing ext_proc service: the floor any Python ext_proc pays on this machine.

Same stack as tollgate (grpc.aio on uvloop, xds-protos messages, gRPC health),
no policy, no telemetry: it lets every phase through and ends the stream after
the last one Envoy sends. The budget's reference machine measured this at ~250 µs
CPU per request, which is also the headers-only budget; bench/load.py runs it
beside tollgate so the budget can be read against this machine.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import grpc
import uvloop
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyResponse,
    CommonResponse,
    ProcessingRequest,
    ProcessingResponse,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from extproc.http import wire

CONTINUE_REQUEST_BODY = ProcessingResponse(request_body=BodyResponse(response=CommonResponse()))


class PassThrough(ext_proc_grpc.ExternalProcessorServicer):
    async def Process(
        self, requests: AsyncIterator[ProcessingRequest], _context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ProcessingResponse]:
        async for message in requests:
            if message.WhichOneof("request") == "request_headers":
                yield wire.continue_request_headers("0" * 32, None)
                if message.request_headers.end_of_stream:
                    return
            else:
                yield CONTINUE_REQUEST_BODY
                return


async def serve(address: str) -> None:
    server = grpc.aio.server()
    ext_proc_grpc.add_ExternalProcessorServicer_to_server(PassThrough(), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(address)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    uvloop.run(serve(parser.parse_args().listen))
