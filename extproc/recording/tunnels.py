"""How each allowed tunnel ended, for the record: Envoy's gRPC access log, served here.

A CONNECT is decided on its headers, and its exchange is recorded then. What follows —
bytes each way, how long, who closed it — only Envoy knows: ext_proc hears nothing of a
tunnel once its headers are answered (and a streamed body would put tollgate in every
chunk's path). So the egress listener logs each pinned CONNECT when it ends to tollgate's
gRPC service (envoy.access_loggers.http_grpc), and each entry becomes a record of kind
`tunnel` on the CONNECT's trace, with its identity and session: `audit replay` shows
the decision and the tunnel together. The entry carries what the decision left in the
stream's dynamic metadata (trace, identity, session, destination); Envoy adds the
bytes, the duration, the address it connected to and why the stream ended.

A tunnel tollgate reads has its TLS ended by Envoy's inspect listener, with a
certificate of the egress CA. A client that pins its certificates, or does not trust
that CA, ends the connection in the handshake, and nothing inside reaches ext_proc: the
inspect listener's own access log (`tollgate_inspect`) tells of it, with the tunnel's
ticket, and tollgate raises an alert per destination with the advice to tunnel it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from envoy.data.accesslog.v3.accesslog_pb2 import HTTPAccessLogEntry, TCPAccessLogEntry
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from google.protobuf.wrappers_pb2 import StringValue

from extproc.codecs.ticket import Ticket
from extproc.config import Target
from extproc.recording.record import Evidence
from extproc.recording.recorder import Recorder, RecordingUnavailable

log = logging.getLogger("tollgate.egress")

# The inspect listener's access log, and the filter state that carries a tunnel's ticket.
INSPECT_LOG = "tollgate_inspect"
TICKET_STATE = "tollgate.inspect"
# Told of a client that refused the gateway's certificate: (destination, message).
CertificateRefused = Callable[[str, str], Awaitable[None]]

# Envoy's response code details (RESPONSE_CODE_DETAILS), read as how a tunnel ended.
_ENDINGS = (
    ("downstream_remote_disconnect", "client_closed"),
    ("via_upstream", "destination_closed"),
    ("upstream_reset_before_response_started", "connect_failed"),
    ("dns_resolution_failure", "connect_failed"),
    ("upstream_reset_after_response_started", "destination_reset"),
    ("stream_idle_timeout", "idle_timeout"),
    ("duration_timeout", "timeout"),
    ("downstream_", "client_reset"),
)


def ended(entry: HTTPAccessLogEntry) -> str:
    """How the tunnel ended, in words a reader of the record knows."""
    details = entry.response.response_code_details
    flags = entry.common_properties.response_flags
    if flags.stream_idle_timeout:
        return "idle_timeout"
    for prefix, name in _ENDINGS:
        if details.startswith(prefix):
            return name
    return details or "unknown"


def metadata(entry: HTTPAccessLogEntry) -> dict[str, str]:
    """What tollgate's decision left in the stream's `tollgate` metadata."""
    fields = entry.common_properties.metadata.filter_metadata["tollgate"].fields
    return {name: value.string_value for name, value in fields.items()}


def meaning(entry: HTTPAccessLogEntry, left: dict[str, str]) -> dict[str, Any]:
    """`meaning.tunnel` of the record."""
    common = entry.common_properties
    upstream = common.upstream_remote_address.socket_address
    host = f"[{upstream.address}]" if ":" in upstream.address else upstream.address
    return {
        "destination": left.get("destination", entry.request.authority),
        "address": f"{host}:{upstream.port_value}" if upstream.address else None,
        "bytes_up": entry.request.request_body_bytes,
        "bytes_down": entry.response.response_body_bytes,
        "duration_ms": round(common.duration.ToNanoseconds() / 1e6, 3),
        "ended": ended(entry),
        "details": entry.response.response_code_details,
        "status": entry.response.response_code.value,
    }


class TunnelLog(als_pb2_grpc.AccessLogServiceServicer):
    def __init__(self, recorder: Recorder, targets: tuple[Target, ...],
                 refused: CertificateRefused | None = None) -> None:
        self._recorder, self._refused = recorder, refused
        self._targets = {t.name: t for t in targets}

    async def StreamAccessLogs(
        self, request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage],
        _context: grpc.aio.ServicerContext,
    ) -> als_pb2.StreamAccessLogsResponse:
        name = ""  # a stream names its log in its first message only
        async for message in request_iterator:
            name = message.identifier.log_name or name
            for entry in message.http_logs.log_entry:
                if not entry.common_properties.intermediate_log_entry:
                    self.record(entry)
            if name == INSPECT_LOG:
                for tcp in message.tcp_logs.log_entry:
                    await self.handshake(tcp)
        return als_pb2.StreamAccessLogsResponse()

    async def handshake(self, entry: TCPAccessLogEntry) -> None:
        """A connection to the inspect listener: one whose TLS handshake failed is a
        client that refused the gateway's certificate, told per destination."""
        common = entry.common_properties
        reason = common.downstream_transport_failure_reason
        if not reason:
            return
        state = common.filter_state_objects.get(TICKET_STATE)
        text = StringValue()
        try:
            if state is None or not state.Unpack(text):
                raise ValueError("no ticket")
            ticket = Ticket.read(text.value)
        except ValueError:
            log.warning("egress: a TLS handshake with the inspect listener failed, of no "
                        "tunnel's ticket: %s", reason)
            return
        who = ticket.claims.get("sub") or "an agent"
        message = (
            f"{who} opened a tunnel to {ticket.destination} that tollgate reads, and its "
            f"client refused the gateway's certificate (TLS: {reason}): the client pins its "
            "certificates, or does not trust the egress CA. Put "
            f"{ticket.destination} on an allow list to tunnel it unread, or have the client "
            "trust the CA (tollgate egress ca --install-hint)")
        log.warning("egress: %s (trace %s)", message, ticket.trace_id)
        if self._refused is not None:
            await self._refused(ticket.destination, message)

    def record(self, entry: HTTPAccessLogEntry) -> None:
        """The tunnel as a record of its own (only those tollgate pinned are logged)."""
        left = metadata(entry)
        trace_id = left.get("trace_id")
        if not trace_id or "identity" not in left:
            log.warning("egress: an access log entry without tollgate's metadata (stream %s)",
                        entry.common_properties.stream_id)
            return
        session = left.get("session")
        found = meaning(entry, left)
        # A record is in time order by when it happened: a tunnel's end (its start is
        # the CONNECT's exchange, a record before it).
        ended_at = (entry.common_properties.start_time.ToNanoseconds()
                    + entry.common_properties.duration.ToNanoseconds()) / 1e9
        evidence = Evidence(
            "tunnel", ended_at, trace_id,
            left.get("span_id", ""), {"x-session-id": session} if session else {},
            json.loads(left["identity"]), self._targets.get(left.get("target", "")),
            meaning_key="tunnel", meaning=found,
            outcome={"tollgate.decision.action": "allow",
                     "tollgate.egress.destination": found["destination"],
                     "tollgate.egress.scheme": "tunnel",
                     "tollgate.egress.address": entry.common_properties
                     .upstream_remote_address.socket_address.address or None})
        try:
            self._recorder.admit()
        except RecordingUnavailable as exc:
            log.error("egress: the tunnel to %s (trace %s) could not be recorded: %s",
                      found["destination"], trace_id, exc)
            return
        self._recorder.submit(evidence)
