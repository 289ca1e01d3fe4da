"""`tollgate serve`: the grpc.aio server, its health service, and a draining shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from extproc.config import Config
from extproc.credentials import CredentialError, CredentialStore
from extproc.policy import open_engine
from extproc.policy.reload import PolicyReloader
from extproc.servicer import ExtProcServicer
from extproc.telemetry import Telemetry, TelemetryError

log = logging.getLogger("tollgate.server")

EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"


class ServeError(Exception):
    """tollgate cannot start serving (the message says why, in one line)."""


async def serve(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight exchanges and return."""
    try:
        credentials = CredentialStore.from_config(config)
    except CredentialError as exc:
        raise ServeError(str(exc)) from None
    engine = await open_engine(config.policy, config.policy_dir)
    where = config.policy.url if config.policy.engine == "opa" else "in process"
    log.info(
        "policies from %s loaded, %s engine %s (revision %s)",
        config.policy_dir, config.policy.engine, where, engine.revision,
    )
    try:
        telemetry = Telemetry(config.telemetry)
    except TelemetryError as exc:
        await engine.close()
        raise ServeError(str(exc)) from None

    server = grpc.aio.server()
    ext_proc_grpc.add_ExternalProcessorServicer_to_server(
        ExtProcServicer(config, engine, telemetry, credentials), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        server.add_insecure_port(config.listen.grpc)
    except RuntimeError:
        await engine.close()
        raise ServeError(f"cannot listen on {config.listen.grpc}: address in use?") from None
    await server.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ("", EXT_PROC_SERVICE):
        await health_servicer.set(service, serving)
    log.info("serving ext_proc on %s (%d targets)", config.listen.grpc, len(config.targets))

    reloader = PolicyReloader(
        engine, config.policy_dir, config.policy.watch_seconds, config.policy.upload
    )
    reloading = asyncio.create_task(reloader.run())
    # Credential files are re-read on change, as often as policies are checked.
    watching = asyncio.create_task(credentials.watch(config.policy.watch_seconds or 2.0))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reloader.requested.set)
    await stop.wait()

    # Health turns NOT_SERVING first so Envoy stops sending new exchanges here;
    # those already in flight get up to drain_seconds to finish.
    log.info("draining (up to %.0fs)", config.listen.drain_seconds)
    reloading.cancel()
    watching.cancel()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(config.listen.drain_seconds)
    await engine.close()
    telemetry.shutdown()
    log.info("stopped")
