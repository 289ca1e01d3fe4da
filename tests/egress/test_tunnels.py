"""Tunnel records from Envoy's gRPC access log: entries built as Envoy 1.40 fills them for a
pinned CONNECT (docs/research/egress-envoy-1.40.md, section 4), their `tollgate` metadata
as ext_proc's answer carried it, read into `tunnel` records; and once through a real gRPC
server, as Envoy streams them."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
import pytest
from envoy.config.core.v3.base_pb2 import Node, RequestMethod
from envoy.data.accesslog.v3.accesslog_pb2 import AccessLogType, HTTPAccessLogEntry
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from extproc import config
from extproc.http import wire
from extproc.masking import Masker
from extproc.recording.record import content_of
from extproc.recording.tunnels import TunnelLog
from tests.support.fakes import MemoryRecorder

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
IDENTITY = {"authenticated": True, "sub": "agent-1", "groups": ["agents"]}
# What EgressProxy.pin gives a tunnel (tests/egress/test_proxy.py checks that it does).
PIN = {"pin_host": "10.1.2.3", "pin_port": "443", "span_id": "00f067aa0ba902b7",
       "target": "egress", "destination": "pypi.test:443",
       "identity": json.dumps(IDENTITY), "session": "run-7"}
STARTED_NS = 1_750_000_000_123_456_789
TARGETS = config.parse({"targets": [
    {"name": "egress", "protocol": "egress", "match": {"route": "egress"}},
    {"name": "shop", "match": {"destination": "shop.internal.test:8080"}},
]}).targets


def access_log_entry(
    details: str = "downstream_remote_disconnect", code: int = 200, up: int = 5098,
    down: int = 30115, duration_ns: int = 3_610_345_289,
    upstream: tuple[str, int] | None = ("10.1.2.3", 443), flags: Iterable[str] = (),
    pin: dict[str, str] | None = None, trace_id: str | None = TRACE_ID,
    intermediate: bool = False, authority: str = "pypi.test:443",
) -> HTTPAccessLogEntry:
    """A CONNECT's access log entry as Envoy sends it; `pin`: the metadata tollgate's
    decision left (None: PIN), handed to Envoy in ext_proc's answer."""
    entry = HTTPAccessLogEntry(protocol_version=HTTPAccessLogEntry.HTTP11)
    common = entry.common_properties
    common.downstream_remote_address.socket_address.address = "127.0.0.1"
    common.downstream_remote_address.socket_address.port_value = 50312
    common.start_time.FromNanoseconds(STARTED_NS)
    common.duration.FromNanoseconds(duration_ns)
    common.stream_id = "6a3c1b2e-2f4d-4c0e-9d1c-3b0c5e7a9f11"  # the request's x-request-id
    common.route_name = "egress"
    common.upstream_cluster = "dfp"
    common.intermediate_log_entry = intermediate
    common.access_log_type = (AccessLogType.DownstreamPeriodic if intermediate
                              else AccessLogType.DownstreamEnd)
    if upstream is not None:
        common.upstream_remote_address.socket_address.address = upstream[0]
        common.upstream_remote_address.socket_address.port_value = upstream[1]
    for flag in flags:
        setattr(common.response_flags, flag, True)
    if trace_id is not None:
        answer = wire.continue_request_headers(trace_id, None, metadata=PIN if pin is None
                                               else pin)
        common.metadata.filter_metadata["tollgate"].CopyFrom(
            answer.dynamic_metadata.fields["tollgate"].struct_value)
    entry.request.request_method = RequestMethod.Value("CONNECT")
    entry.request.authority = authority
    entry.request.request_body_bytes = up
    entry.response.response_code.value = code
    entry.response.response_code_details = details
    entry.response.response_body_bytes = down
    return entry


def recorded(*entries: HTTPAccessLogEntry, recorder: MemoryRecorder | None = None
             ) -> MemoryRecorder:
    recorder = recorder or MemoryRecorder()
    log = TunnelLog(recorder, TARGETS)
    for entry in entries:
        log.record(entry)
    return recorder


def test_a_tunnel_the_client_closed_is_a_record_on_the_connects_trace() -> None:
    recorder = recorded(access_log_entry(flags=["downstream_connection_termination"]))
    assert recorder.admitted == [None]
    [evidence] = recorder.submitted
    assert (evidence.kind, evidence.trace_id, evidence.span_id) == (
        "tunnel", TRACE_ID, "00f067aa0ba902b7")
    assert evidence.started == pytest.approx(STARTED_NS / 1e9)
    assert evidence.identity == IDENTITY
    assert evidence.headers == {"x-session-id": "run-7"}  # the session it belongs to
    assert evidence.target is TARGETS[0]
    assert evidence.meaning_key == "tunnel"
    assert evidence.meaning == {
        "destination": "pypi.test:443", "address": "10.1.2.3:443",
        "bytes_up": 5098, "bytes_down": 30115, "duration_ms": 3610.345,
        "ended": "client_closed", "details": "downstream_remote_disconnect", "status": 200,
    }
    assert evidence.outcome == {
        "tollgate.decision.action": "allow",
        "tollgate.egress.destination": "pypi.test:443",
        "tollgate.egress.scheme": "tunnel",
        "tollgate.egress.address": "10.1.2.3",
    }


# Envoy 1.40's response code details and flags for each way a tunnel ends.
@pytest.mark.parametrize(("details", "code", "flags", "ended"), [
    ("downstream_remote_disconnect", 200, ["downstream_connection_termination"],
     "client_closed"),
    ("via_upstream", 200, [], "destination_closed"),
    ("upstream_reset_before_response_started{remote_connection_failure|"
     "delayed_connect_error:_Connection_refused}", 503, ["upstream_connection_failure"],
     "connect_failed"),
    ("dns_resolution_failure{cares_norecords:DNS_server_returned_answer_with_no_data}", 503,
     ["dns_resolution_failure"], "connect_failed"),
    ("upstream_reset_after_response_started{connection_termination}", 200,
     ["upstream_connection_termination"], "destination_reset"),
    ("stream_idle_timeout", 200, ["stream_idle_timeout"], "idle_timeout"),
    ("via_upstream", 200, ["stream_idle_timeout"], "idle_timeout"),  # the flag says more
    ("duration_timeout", 200, ["duration_timeout"], "timeout"),
    ("downstream_remote_reset", 200, ["downstream_remote_reset"], "client_reset"),
    ("some_detail_of_a_later_envoy", 200, [], "some_detail_of_a_later_envoy"),
    ("", 0, [], "unknown"),
])
def test_how_the_tunnel_ended_is_read_from_envoys_details(
        details: str, code: int, flags: list[str], ended: str) -> None:
    [evidence] = recorded(access_log_entry(details, code, flags=flags)).submitted
    assert evidence.meaning["ended"] == ended
    assert evidence.meaning["details"] == details
    assert evidence.meaning["status"] == code


def test_a_tunnel_that_never_connected_has_no_address() -> None:
    entry = access_log_entry(
        "dns_resolution_failure{cares_norecords:DNS_server_returned_answer_with_no_data}",
        503, up=0, down=22, duration_ns=1_500_000, upstream=None,
        flags=["dns_resolution_failure"])
    [evidence] = recorded(entry).submitted
    assert evidence.meaning["address"] is None
    assert (evidence.meaning["bytes_up"], evidence.meaning["bytes_down"]) == (0, 22)
    assert evidence.meaning["duration_ms"] == 1.5
    assert evidence.outcome["tollgate.egress.address"] is None


def test_an_ipv6_address_connected_to_is_bracketed() -> None:
    [evidence] = recorded(access_log_entry(upstream=("2001:db8::6", 443))).submitted
    assert evidence.meaning["address"] == "[2001:db8::6]:443"


def test_what_the_metadata_lacks_is_taken_from_the_entry() -> None:
    pin = {k: v for k, v in PIN.items() if k not in ("destination", "session", "span_id")}
    [evidence] = recorded(access_log_entry(pin=pin, authority="files.test:443")).submitted
    assert evidence.meaning["destination"] == "files.test:443"
    assert evidence.headers == {} and evidence.span_id == ""


def test_an_empty_session_is_none() -> None:
    [evidence] = recorded(access_log_entry(pin={**PIN, "session": ""})).submitted
    assert evidence.headers == {}


def test_a_target_no_longer_configured_is_none() -> None:
    [evidence] = recorded(access_log_entry(pin={**PIN, "target": "gone"})).submitted
    assert evidence.target is None
    assert evidence.trace_id == TRACE_ID


@pytest.mark.parametrize("pin", [
    {k: v for k, v in PIN.items() if k != "identity"},
    None,  # no tollgate metadata at all: `trace_id` None below
])
def test_an_entry_without_tollgates_metadata_is_not_recorded(
        pin: dict[str, str] | None, caplog: pytest.LogCaptureFixture) -> None:
    entry = access_log_entry(pin=pin, trace_id=TRACE_ID if pin is not None else None)
    with caplog.at_level(logging.WARNING, "tollgate.egress"):
        recorder = recorded(entry)
    assert recorder.submitted == [] and recorder.admitted == []
    assert "without tollgate's metadata (stream 6a3c1b2e-" in caplog.text


def test_a_tunnel_the_record_cannot_take_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "tollgate.egress"):
        recorder = recorded(access_log_entry(), recorder=MemoryRecorder(full=True))
    assert recorder.submitted == []
    assert f"pypi.test:443 (trace {TRACE_ID}) could not be recorded" in caplog.text


# -- in the record ------------------------------------------------------------------------


def test_the_record_of_a_tunnel_to_an_address_keeps_its_destination() -> None:
    """A tunnel's meaning is its own metadata (where it went, Envoy's numbers), not data
    it carried: the record keeps an address destination as it is, in `meaning.tunnel`
    as in `destination`, where `tollgate audit` reads it. The CONNECT's exchange record
    is masked as every exchange's."""
    pin = {**PIN, "destination": "10.20.30.40:8443", "pin_host": "10.20.30.40"}
    entry = access_log_entry(pin=pin, authority="10.20.30.40:8443",
                             upstream=("10.20.30.40", 8443))
    [evidence] = recorded(entry).submitted
    content = content_of(evidence, Masker(b"k" * 32))
    assert content["meaning"]["tunnel"]["destination"] == "10.20.30.40:8443"
    assert content["meaning"]["tunnel"]["address"] == "10.20.30.40:8443"
    assert content["destination"]["destination"] == "10.20.30.40:8443"
    assert "REDACTED" not in json.dumps(content)


# -- through gRPC, as Envoy streams it -----------------------------------------------------


def message(*entries: HTTPAccessLogEntry, first: bool = False
            ) -> als_pb2.StreamAccessLogsMessage:
    found = als_pb2.StreamAccessLogsMessage()
    if first:  # Envoy names itself and the log in a stream's first message
        found.identifier.node.CopyFrom(Node(id="tollgate-envoy", cluster="tollgate"))
        found.identifier.log_name = "tollgate_egress"
    found.http_logs.log_entry.extend(entries)
    return found


async def test_envoys_access_log_stream_becomes_tunnel_records() -> None:
    recorder = MemoryRecorder()
    server = grpc.aio.server()
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(TunnelLog(recorder, TARGETS), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    closed = access_log_entry(flags=["downstream_connection_termination"])
    other = access_log_entry("via_upstream", pin={**PIN, "destination": "files.test:443"},
                             trace_id="0af7651916cd43dd8448eb211c80319c")

    async def stream() -> AsyncIterator[als_pb2.StreamAccessLogsMessage]:
        # The tunnel established, then a periodic entry: intermediate, not records.
        yield message(access_log_entry(intermediate=True, up=0, down=0), first=True)
        yield message(access_log_entry(intermediate=True, up=50, down=100), closed)
        yield message(other, access_log_entry(trace_id=None))

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = als_pb2_grpc.AccessLogServiceStub(channel)
            answer: Any = await stub.StreamAccessLogs(stream(), timeout=10)
    finally:
        await server.stop(None)
    assert isinstance(answer, als_pb2.StreamAccessLogsResponse)
    assert [(e.trace_id, e.meaning["destination"], e.meaning["ended"])
            for e in recorder.submitted] == [
        (TRACE_ID, "pypi.test:443", "client_closed"),
        ("0af7651916cd43dd8448eb211c80319c", "files.test:443", "destination_closed"),
    ]
    assert recorder.submitted[0].meaning["bytes_up"] == 5098  # the final count
