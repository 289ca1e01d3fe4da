"""`tollgate audit search` and `replay` on egress records, made as tollgate makes them:
the real servicer, over gRPC, with the egress proxy (proxy tokens checked by a real
Verifier, names resolved by a DNS server on 127.0.0.1) and the default policy pack with
egress lists; a tunnel's end from an access log entry streamed to tollgate's
AccessLogService as Envoy streams it, carrying the metadata tollgate's answer gave
Envoy; every record written by a real Recorder into a SQLite store. Then the command,
run as a process, on that store."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingResponse
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from extproc import config, envoy_bootstrap
from extproc.activity.seen import Seen
from extproc.approvals import ApprovalStore
from extproc.approvals.auth import Verifier
from extproc.approvals.hold import Holds
from extproc.credentials import CredentialStore
from extproc.egress.proxy import EgressProxy
from extproc.exchange.alerts import Alerts
from extproc.exchange.pipeline import Pipeline
from extproc.http.front import ExtProcServicer
from extproc.masking import Masker
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules
from extproc.recording import Recorder, RecorderSettings
from extproc.recording.chain import Signer
from extproc.recording.tunnels import TunnelLog
from extproc.telemetry import Telemetry
from tests.egress.test_tunnels import access_log_entry
from tests.http.test_front import Stream, headers
from tests.support import tokens
from tests.support.cli import tollgate
from tests.support.dns import DnsServer
from tests.support.packs import pack_with_egress

pytestmark = pytest.mark.e2e  # `tollgate audit` run from its command line (tests/support/cli.py)

REPO = Path(__file__).resolve().parents[2]
AGENT = tokens.token("ada", ["agents"])
LISTS = {
    "groups": {"agents": {"allow": ["pypi.test:443", "app.test"], "hold": [],
                          "first_seen": "alert"}},
    "approvers": ["group:security"],
    "hold_seconds": 30,
}
NAMES = {"pypi.test": ["10.1.2.3", "10.1.2.4"], "app.test": ["10.1.2.5"]}
# What Envoy's access log says of the tunnel to pypi.test when it ends: the client sent
# 5098 bytes, got 30115, and closed it after 3.61 s.
UP, DOWN, LASTED_NS = 5098, 30115, 3_610_345_289


@dataclass
class Played:
    config: Path  # names the store and the key
    traces: dict[str, str]  # scenario -> the trace id tollgate handed Envoy


def proxy_basic(token: str) -> str:
    """What HTTPS_PROXY=http://agent:TOKEN@gateway:3128 makes a client send."""
    return "Basic " + base64.b64encode(f"agent:{token}".encode()).decode()


async def through(stub: Any, pairs: dict[str, str], end_of_stream: bool = True,
                  ) -> list[ProcessingResponse]:
    """One request through the egress listener, as Envoy hands it to tollgate: tollgate's
    answers until it ends the stream."""
    call = stub.Process()
    answers = [await Stream(call).send(headers(
        {"user-agent": "curl/8.5.0", "x-request-id": f"req-{pairs[':authority']}", **pairs},
        end_of_stream, route="egress", claims=None))]
    while (answer := await asyncio.wait_for(call.read(), 10)) is not grpc.aio.EOF:
        answers.append(answer)
    return answers


def trace_of(answers: list[ProcessingResponse]) -> str:
    """The trace id tollgate handed Envoy: in its metadata, or on its refusal."""
    for answer in answers:
        if "tollgate" in answer.dynamic_metadata.fields:
            return str(answer.dynamic_metadata.fields["tollgate"].struct_value["trace_id"])
        if answer.WhichOneof("response") == "immediate_response":
            return next(h.header.raw_value.decode()
                        for h in answer.immediate_response.headers.set_headers
                        if h.header.key == "x-tollgate-trace-id")
    raise AssertionError(f"no trace id in {answers}")


async def scenarios(stub: Any, logs: Any) -> dict[str, str]:
    traces = {}
    # A tunnel to a listed destination (its first time: allowed, with an alert); when it
    # ends, Envoy logs it with the metadata tollgate's answer left in the stream.
    started_ns = time.time_ns()
    connect = await through(stub, {":method": "CONNECT", ":authority": "pypi.test:443",
                                   "proxy-authorization": proxy_basic(AGENT)}, False)
    traces["tunnel"] = trace_of(connect)
    entry = access_log_entry(trace_id=None, up=UP, down=DOWN, duration_ns=LASTED_NS,
                             flags=["downstream_connection_termination"])
    entry.common_properties.start_time.FromNanoseconds(started_ns)
    entry.common_properties.metadata.filter_metadata["tollgate"].CopyFrom(
        connect[0].dynamic_metadata.fields["tollgate"].struct_value)

    async def stream() -> AsyncIterator[als_pb2.StreamAccessLogsMessage]:
        message = als_pb2.StreamAccessLogsMessage()
        message.http_logs.log_entry.append(entry)
        yield message

    await logs.StreamAccessLogs(stream(), timeout=10)
    # A plain request in absolute form (Envoy splits it into authority and path).
    traces["plain"] = trace_of(await through(stub, {
        ":method": "GET", ":scheme": "http", ":authority": "app.test:8080",
        ":path": "/simple/probe/?x=1", "proxy-authorization": f"Bearer {AGENT}"}))
    # Refused: a destination no list names; and a CONNECT without a proxy token.
    traces["unlisted"] = trace_of(await through(stub, {
        ":method": "CONNECT", ":authority": "unlisted.test:443",
        "proxy-authorization": proxy_basic(AGENT)}, False))
    traces["no-token"] = trace_of(await through(stub, {
        ":method": "CONNECT", ":authority": "pypi.test:443"}, False))
    return traces


def play(tmp: Path) -> Played:
    """The scenarios against one servicer, recording to tmp/records.db."""
    dns = DnsServer(NAMES, ttl=30).start()
    cfg = config.parse({"targets": [
        {"name": "egress", "protocol": "egress", "match": {"route": "egress"},
         "inspect": {"response": "none"}, "egress": {"nameservers": [dns.address]}}]})
    bootstrap = envoy_bootstrap.with_jwt_issuer(envoy_bootstrap.load(), tokens.ISSUER,
                                                [tokens.AUDIENCE], tokens.jwks())
    verifier = Verifier.from_bootstrap(envoy_bootstrap.write(bootstrap, tmp / "envoy.yaml"),
                                       cfg.identity)
    engine = EmbeddedEngine(read_modules(pack_with_egress(tmp / "policies", LISTS)),
                            cfg.policy.query)
    masker = Masker(b"k" * 32)
    url = f"sqlite:///{tmp}/records.db"
    recorder = Recorder(url, RecorderSettings(64, 16, 1000, 3600, writer_id="egress"),
                        Signer.from_file(tmp / "audit.key", create=True), masker)

    async def main(engine: EmbeddedEngine) -> dict[str, str]:
        telemetry = Telemetry(cfg.telemetry, InMemorySpanExporter())
        holds = Holds(await ApprovalStore.open(f"sqlite:///{tmp}/approvals.db"), None, masker,
                      cfg.approvals, "http://approvals.test", "egress-test")
        seen = Seen(holds.store.store)
        alerts = Alerts(cfg.alerts, None, holds.store.store, recorder, None)
        server = grpc.aio.server()
        ext_proc_grpc.add_ExternalProcessorServicer_to_server(ExtProcServicer(
            cfg, Pipeline(cfg, engine, telemetry, CredentialStore.from_config(cfg), masker,
                          recorder, holds, alerts=alerts),
            egress=EgressProxy(verifier, cfg.targets, seen)), server)
        als_pb2_grpc.add_AccessLogServiceServicer_to_server(
            TunnelLog(recorder, cfg.targets), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await scenarios(ext_proc_grpc.ExternalProcessorStub(channel),
                                       als_pb2_grpc.AccessLogServiceStub(channel))
        finally:
            await server.stop(None)
            await alerts.close()
            await seen.close()
            await recorder.close()
            await holds.close()
            telemetry.shutdown()

    recorder.start()
    try:
        traces = asyncio.run(main(engine))
    finally:
        dns.stop()
    del engine  # regorus's engine is freed on the thread that made it
    gc.collect()
    path = tmp / "tollgate.yaml"
    path.write_text(json.dumps({  # JSON is YAML
        "store": {"url": url}, "recording": {"signing_key_file": str(tmp / "audit.key")},
        "targets": [{"name": "orders", "match": {"route": "orders"}}]}))
    return Played(path, traces)


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    yield play(tmp_path_factory.mktemp("audit-egress"))


def audit(played: Played, *args: str) -> str:
    result = tollgate("audit", *args, "--config", played.config)
    assert result.returncode == 0, result
    return result.stdout


def rows(played: Played, *args: str) -> dict[str, list[list[str]]]:
    """The search table's rows by trace id (the last column), each row as its cells;
    several on one trace in the table's order (newest first)."""
    lines = audit(played, "search", *args).splitlines()
    starts = [lines[0].index(name) for name in (
        "TIME", "RECORD", "IDENTITY", "TARGET", "WHAT", "ACTION", "STATUS", "RULES",
        "SESSION", "TRACE")]
    found: dict[str, list[list[str]]] = {}
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None],
                                                   strict=True)]
        found.setdefault(cells[-1], []).append(cells)
    return found


def row(played: Played, trace: str, request: str) -> list[str]:
    """The cells from IDENTITY to RULES of the one row on `trace` whose REQUEST starts
    with `request`."""
    (found,) = [cells[2:8] for cells in rows(played)[trace] if cells[4].startswith(request)]
    return found


def records(played: Played, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit(played, *args, "--json").splitlines()]


def field(text: str, label: str) -> list[str]:
    """The values of one label in a replay's lines (`  label     value`)."""
    return [line[12:] for line in text.splitlines() if line[2:11].rstrip() == label]


def shown(text: str) -> dict[str, str]:
    """A replay's records by kind (the text of each, from its `==` line on)."""
    parts = [part for part in text.split("\n== ") if part.strip()]
    return {(part.split("(", 1)[1].split(" ", 1)[0] if " record)" in part.splitlines()[0]
             else "exchange"): part for part in parts}


# -- search ------------------------------------------------------------------------------


def test_search_shows_a_connect_by_its_destination_and_a_tunnels_end(played: Played) -> None:
    trace = played.traces["tunnel"]
    assert row(played, trace, "CONNECT") == [
        "ada", "egress", "CONNECT pypi.test:443", "allow", "-", "-"]
    assert row(played, trace, "TUNNEL") == [
        "ada", "egress", "TUNNEL pypi.test:443 ↑5.1 kB ↓30 kB 3.6 s client_closed", "allow",
        "-", "-"]
    assert row(played, trace, "ALERT")[2].startswith(
        "ALERT egress.first_seen [warning]: ada reached")


def test_search_by_kind_finds_tunnel_records(played: Played) -> None:
    assert list(rows(played, "--kind", "tunnel")) == [played.traces["tunnel"]]
    (found,) = records(played, "search", "--kind", "tunnel")
    assert found["meaning"]["tunnel"] == {
        "destination": "pypi.test:443", "address": "10.1.2.3:443",
        "bytes_up": UP, "bytes_down": DOWN, "duration_ms": 3610.345, "ended": "client_closed",
        "details": "downstream_remote_disconnect", "status": 200}
    # A tunnel's meaning is its own metadata, unmasked, as `destination` is.
    assert found["destination"]["address"] == "10.1.2.3"


def test_search_shows_a_plain_request_after_its_destination(played: Played) -> None:
    assert row(played, played.traces["plain"], "GET") == [
        "ada", "egress", "GET app.test:8080/simple/probe/?x=1", "allow", "-", "-"]


def test_search_shows_refused_connects_by_destination_or_why_it_has_none(
        played: Played) -> None:
    assert row(played, played.traces["unlisted"], "CONNECT") == [
        "ada", "egress", "CONNECT unlisted.test:443", "deny", "403", "egress.not_allowed"]
    assert row(played, played.traces["no-token"], "CONNECT") == [
        "-", "egress", "CONNECT (destination not read)", "deny", "407", "-"]


# -- replay ------------------------------------------------------------------------------


def test_replay_of_a_tunnels_trace_shows_its_decision_and_its_end(played: Played) -> None:
    by_kind = shown(audit(played, "replay", played.traces["tunnel"]))
    assert sorted(by_kind) == ["alert", "exchange", "tunnel"]
    connect, tunnel = by_kind["exchange"], by_kind["tunnel"]
    assert field(connect, "request") == ["CONNECT pypi.test:443"]
    assert field(connect, "egress") == [
        "tunnel to pypi.test:443; addresses 10.1.2.3 (private), 10.1.2.4 (private); "
        "connected to 10.1.2.3; first time for this identity"]
    # Decided on the name, then on its addresses.
    assert [d.split("  ")[0] for d in field(connect, "decision")] == [
        "request: allow", "request: allow"]
    assert field(tunnel, "tunnel") == ["pypi.test:443, connected to 10.1.2.3"]
    assert field(tunnel, "bytes") == [
        "↑5.1 kB (5098) from the client, ↓30 kB (30115) to it"]
    assert field(tunnel, "ended") == [
        "client_closed after 3.6 s (Envoy: downstream_remote_disconnect, status 200)"]
    assert field(tunnel, "decision") == ["in the CONNECT's exchange record on this trace"]
    # Nothing of an exchange it is not: no request, response or timings of its own.
    assert not field(tunnel, "request") and not field(tunnel, "response")
    assert not field(tunnel, "timings")


def test_the_tunnel_is_in_its_connects_session(played: Played) -> None:
    """No x-session-id: the token groups the CONNECT and its tunnel into one run."""
    by_kind = {r["kind"]: r for r in records(played, "replay", played.traces["tunnel"])}
    session = by_kind["exchange"]["session_id"]
    assert (by_kind["tunnel"]["session_id"], by_kind["tunnel"]["session_rule"]) == (
        session, "token")
    in_session = shown(audit(played, "replay", "--session", session))
    assert field(in_session["tunnel"], "tunnel") == [
        "pypi.test:443, connected to 10.1.2.3"]


def test_replay_of_a_plain_request_and_of_a_refused_name(played: Played) -> None:
    plain = shown(audit(played, "replay", played.traces["plain"]))["exchange"]
    assert field(plain, "request") == ["GET app.test:8080/simple/probe/?x=1"]
    assert field(plain, "egress") == [
        "plain HTTP to app.test:8080; addresses 10.1.2.5 (private); connected to "
        "10.1.2.5; first time for this identity"]
    refused = audit(played, "replay", played.traces["unlisted"])
    assert field(refused, "egress") == [
        "tunnel to unlisted.test:443; not looked up (decided on its name); first time for "
        "this identity"]
    assert field(refused, "outcome") == ["deny, status 403"]
