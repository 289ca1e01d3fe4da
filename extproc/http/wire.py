"""Envoy's ext_proc messages in and out (xds-protos, upb-backed: ~1 µs to parse).

The HTTP front is the only caller; everything below it sees plain Python values.
Messages that never change are built once at import.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyResponse,
    CommonResponse,
    HeaderMutation,
    HeadersResponse,
    HttpHeaders,
    ImmediateResponse,
    ProcessingRequest,
    ProcessingResponse,
    TrailersResponse,
)
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.protobuf.struct_pb2 import Value

from extproc.codecs import jsonenc

if TYPE_CHECKING:
    from extproc.credentials import Injection
    from extproc.exchange.state import Answer

ATTRIBUTES_KEY = "envoy.filters.http.ext_proc"
# The dynamic metadata namespace Envoy's bootstrap lets tollgate write
# (`metadata_options.receiving_namespaces`) and reads the trace id header from.
METADATA_NAMESPACE = "tollgate"
TRACE_HEADER = "x-tollgate-trace-id"

_SEND = ProcessingMode.SEND
_BUFFERED = ProcessingMode.BUFFERED
_NONE = ProcessingMode.NONE


def headers_of(headers: HttpHeaders) -> dict[str, str]:
    """Header names (Envoy sends them lower-cased) to values; repeats joined as HTTP allows.

    One pass over the message: this runs for every request.
    """
    result: dict[str, str] = {}
    for h in headers.headers.headers:
        # Envoy sends values as raw bytes nowadays; `value` is the older field.
        value = h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
        key = h.key
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


def attribute(request: ProcessingRequest, name: str) -> str | None:
    """A string attribute Envoy sent with a message (`request_attributes` with the request
    headers, `response_attributes` with the response headers)."""
    attrs = request.attributes.get(ATTRIBUTES_KEY)
    if attrs is None or name not in attrs.fields:
        return None
    return attrs.fields[name].string_value or None


# What Envoy verified of an upstream's certificate (the egress listeners'
# `response_attributes`), as the record names each.
_PEER_ATTRIBUTES = {"upstream.tls_version": "tls_version",
                    "upstream.subject_peer_certificate": "subject",
                    "upstream.dns_san_peer_certificate": "dns_names",
                    "upstream.sha256_peer_certificate_digest": "sha256"}


def peer_certificate(reply: ProcessingRequest) -> dict[str, str] | None:
    """The upstream's certificate as Envoy sent it with the response headers (None:
    not over TLS, or not asked for)."""
    facts = {name: value for key, name in _PEER_ATTRIBUTES.items()
             if (value := attribute(reply, key))}
    return facts if "subject" in facts else None


def source_address(request: ProcessingRequest) -> str | None:
    """The client's IP address (Envoy's `source.address` attribute, without the port):
    the TCP peer of Envoy's listener, not a header a client could write."""
    address = attribute(request, "source.address")
    if not address:
        return None
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return address
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


JWT_AUTHN_NAMESPACE = "envoy.filters.http.jwt_authn"


def jwt_claims(request: ProcessingRequest, payload_key: str) -> dict[str, Any] | None:
    """The claims jwt_authn verified (`payload_in_metadata`), or None when no token was.

    Envoy forwards them as metadata (ext_proc's `metadata_options.forwarding_namespaces`),
    which a client cannot set. An agent sends the same token request after request, so
    the conversion is kept by the payload's bytes (serializing is C, reading the Struct
    field by field is Python): the dict returned is shared, and read only.
    """
    namespace = request.metadata_context.filter_metadata.get(JWT_AUTHN_NAMESPACE)
    if namespace is None or payload_key not in namespace.fields:
        return None
    payload = namespace.fields[payload_key].struct_value
    key = payload.SerializeToString(deterministic=True)
    claims = _claims_seen.get(key)
    if claims is None:
        if len(_claims_seen) >= _CLAIMS_KEPT:
            _claims_seen.clear()
        claims = _claims_seen[key] = {k: _plain(v) for k, v in payload.fields.items()}
    return claims


# Claims converted, by their payload's bytes; emptied when full (tokens expire anyway).
_claims_seen: dict[bytes, dict[str, Any]] = {}
_CLAIMS_KEPT = 4096


def _plain(value: Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "list_value":
        return [_plain(v) for v in value.list_value.values]
    if kind == "struct_value":
        return {k: _plain(v) for k, v in value.struct_value.fields.items()}
    if kind == "null_value" or kind is None:
        return None
    return getattr(value, kind)


def processing_mode(request_body: bool | None, response: str) -> ProcessingMode | None:
    """The phases to ask for beyond request headers, or None when there is nothing to say.

    `request_body` is None for a request without a body, else whether to buffer it
    for a decision. Envoy's bootstrap buffers request bodies by default (so that an
    oversize body gets Envoy's 413 rather than a stalled stream); a target that
    does not read bodies turns that off here, per request. `response` is the response
    handler's mode: `none`, `headers`, `body` (buffered), or `duplex`: the body is
    streamed to tollgate chunk by chunk without Envoy waiting for the answer to the
    response headers (FULL_DUPLEX_STREAMED, which needs the trailer phase), so tollgate
    can hold the headers until it has read enough of the body to decide.
    """
    if request_body is None and response == "none":
        return None
    mode = ProcessingMode()
    if request_body is not None:
        mode.request_body_mode = _BUFFERED if request_body else _NONE
    if response != "none":
        mode.response_header_mode = _SEND
    if response == "body":
        mode.response_body_mode = _BUFFERED
    elif response == "duplex":
        mode.response_body_mode = ProcessingMode.FULL_DUPLEX_STREAMED
        mode.response_trailer_mode = _SEND
    return mode


def _set_metadata(response: ProcessingResponse, trace_id: str, refusal: str | None = None,
                  more: dict[str, str] | None = None) -> None:
    """What tollgate tells Envoy about the exchange (namespace `tollgate`).

    Envoy writes `trace_id` on the response; `refusal` marks tollgate's own
    answers, so Envoy's local-reply rewriting leaves them alone; `more`: what else the
    listener's filters read (the egress proxy's pinned address). (Field access,
    not Struct's dict helpers: ~3x cheaper, and this runs for every request.)
    """
    fields = response.dynamic_metadata.fields[METADATA_NAMESPACE].struct_value.fields
    fields["trace_id"].string_value = trace_id
    if refusal is not None:
        fields["refusal"].string_value = refusal
    for name, value in (more or {}).items():
        fields[name].string_value = value


def traceparent(trace_id: str, span_id: str) -> str:
    """The W3C `traceparent` naming tollgate's span, for the upstream, so that an
    instrumented upstream's spans hang under tollgate's rather than beside it (the
    agent's `tracestate` passes as it came). Sampled: tollgate samples every exchange."""
    return f"00-{trace_id}-{span_id}-01"


def continue_request_headers(
    trace_id: str, mode: ProcessingMode | None, injection: Injection | None = None,
    plain_response: bool = False, traceparent: str | None = None,
    metadata: dict[str, str] | None = None, replaced: dict[str, str] | None = None,
) -> ProcessingResponse:
    """Let the request headers through, hand Envoy the trace id, ask for later phases.

    With an `injection` (an allowed request), the headers go upstream changed: the
    client's credentials removed, the target's own set, `traceparent` naming tollgate's
    span, and with `plain_response` Accept-Encoding narrowed to identity, so a response
    to be read comes uncompressed. `replaced`: headers (`:path` among them) set to these
    values (masked).
    """
    response = ProcessingResponse(request_headers=HeadersResponse(response=CommonResponse()))
    _set_metadata(response, trace_id, more=metadata)
    if mode is not None:
        response.mode_override.CopyFrom(mode)
    if injection is not None:
        _forwarded(response.request_headers.response.header_mutation, injection,
                   plain_response, traceparent)
    _replaced(response.request_headers.response.header_mutation, replaced)
    return response


def _replaced(mutation: HeaderMutation, replaced: dict[str, str] | None) -> None:
    for name, value in (replaced or {}).items():
        mutation.set_headers.append(_header(name, value))


def continue_request_body(
    injection: Injection, body: bytes | None = None, plain_response: bool = False,
    traceparent: str | None = None, trace_id: str | None = None,
    metadata: dict[str, str] | None = None, replaced: dict[str, str] | None = None,
) -> ProcessingResponse:
    """Let a buffered request body through (replaced by `body` when given, e.g. masked);
    Envoy applies the header mutation with it. `metadata` (with the `trace_id`): what
    the listener's filters read after this answer (the egress proxy's pin)."""
    response = ProcessingResponse(request_body=BodyResponse(response=CommonResponse()))
    if metadata is not None and trace_id is not None:
        _set_metadata(response, trace_id, more=metadata)
    common = response.request_body.response
    _forwarded(common.header_mutation, injection, plain_response, traceparent)
    _replaced(common.header_mutation, replaced)
    if body is not None:
        common.body_mutation.body = body
        common.header_mutation.set_headers.append(_header("content-length", str(len(body))))
    return response


def _forwarded(mutation: HeaderMutation, injection: Injection, plain_response: bool,
               traceparent: str | None) -> None:
    """What an allowed request's headers go upstream with: the target's (cached) mutation,
    and this exchange's traceparent, set in place (~1 µs; `_header` and a copy: ~2.6)."""
    mutation.CopyFrom(_mutation(injection, plain_response))
    if traceparent is not None:
        added = mutation.set_headers.add()
        added.header.key = "traceparent"
        added.header.raw_value = traceparent.encode()
        added.append_action = HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


@functools.lru_cache(maxsize=1024)
def _mutation(injection: Injection, plain_response: bool) -> HeaderMutation:
    """Built once per credential version (Injection hashes by identity; a reload makes a
    new one): ~12 µs to build, ~2 µs to copy. Envoy removes before it sets, so a
    client's copy of the credential header never survives."""
    sets = [] if injection.header is None else [_header(injection.header, injection.value)]
    if plain_response:
        # Decoding gzip/br costs CPU that narrowing saves; tollgate still decodes
        # what an upstream compresses anyway (message.decoded_content).
        sets.append(_header("accept-encoding", "identity"))
    return HeaderMutation(remove_headers=injection.remove, set_headers=sets)


CONTINUE_RESPONSE_HEADERS = ProcessingResponse(
    response_headers=HeadersResponse(response=CommonResponse())
)
CONTINUE_RESPONSE_BODY = ProcessingResponse(
    response_body=BodyResponse(response=CommonResponse())
)
# Let the response headers through and the body flow past tollgate, unread.
PASS_RESPONSE_BODY = ProcessingResponse(
    response_headers=HeadersResponse(response=CommonResponse()),
    mode_override=ProcessingMode(response_header_mode=_SEND, response_body_mode=_NONE),
)
# What a rewritten body makes stale; content-length is set to the new length.
_STALE_WITH_BODY = ("content-encoding", "content-md5", "etag", "digest")


def stream_response_headers() -> ProcessingResponse:
    """Let the response headers through and have the body streamed to tollgate chunk by
    chunk (FULL_DUPLEX_STREAMED, which needs the trailer phase too), so a masked stream
    starts flowing at once instead of after the whole body. Masking may change its
    length: a length the upstream announced goes (HTTP/2 resets a stream whose body
    differs from it)."""
    response = ProcessingResponse(response_headers=HeadersResponse(response=CommonResponse()))
    response.response_headers.response.header_mutation.remove_headers.extend(
        ("content-length", *_STALE_WITH_BODY))
    response.mode_override.CopyFrom(ProcessingMode(
        response_header_mode=_SEND, response_body_mode=ProcessingMode.FULL_DUPLEX_STREAMED,
        response_trailer_mode=_SEND,
    ))
    return response


def replace_response_body(body: bytes) -> ProcessingResponse:
    """Send `body` (decoded, masked) instead of the upstream's, with consistent headers."""
    response = ProcessingResponse(response_body=BodyResponse(response=CommonResponse()))
    common = response.response_body.response
    common.body_mutation.body = body
    common.header_mutation.remove_headers.extend(_STALE_WITH_BODY)
    common.header_mutation.set_headers.append(_header("content-length", str(len(body))))
    return response


def streamed_response_headers(length: int | None) -> ProcessingResponse:
    """Let the response headers through ahead of a body tollgate sends itself (duplex):
    what the new body makes stale removed, and its length when known (else chunked)."""
    response = ProcessingResponse(response_headers=HeadersResponse(response=CommonResponse()))
    mutation = response.response_headers.response.header_mutation
    mutation.remove_headers.extend(_STALE_WITH_BODY)
    if length is None:
        mutation.remove_headers.append("content-length")
    else:
        mutation.set_headers.append(_header("content-length", str(length)))
    return response


CONTINUE_RESPONSE_TRAILERS = ProcessingResponse(response_trailers=TrailersResponse())


def stream_response_chunk(data: bytes, end_of_stream: bool) -> ProcessingResponse:
    """One chunk of a streamed (FULL_DUPLEX_STREAMED) response body, as tollgate passes it."""
    response = ProcessingResponse(response_body=BodyResponse(response=CommonResponse()))
    streamed = response.response_body.response.body_mutation.streamed_response
    streamed.body = data
    streamed.end_of_stream = end_of_stream
    return response


def immediate(status: int, body: dict[str, Any], trace_id: str, error: str,
              headers: tuple[tuple[str, str], ...] = ()) -> ProcessingResponse:
    """Answer the client directly with a JSON body; the upstream never sees the request.
    `error` is the refusal's code (`denied`, `malformed_json`...), whatever the body's shape;
    `headers`: more to set."""
    return immediate_bytes(status, jsonenc.dumps(body).encode(), trace_id, error,
                           (("content-type", "application/json"), *headers))


def immediate_bytes(status: int, body: bytes, trace_id: str, error: str,
                    headers: tuple[tuple[str, str], ...] = ()) -> ProcessingResponse:
    """Answer the client directly with `body` as it is, with `headers` (its content type
    among them, if it has one): an upstream's own answer mirrored, as MCP's not-found."""
    response = ProcessingResponse(
        immediate_response=ImmediateResponse(
            status=HttpStatus(code=status),
            headers=HeaderMutation(
                set_headers=[
                    _header(TRACE_HEADER, trace_id),
                    *(_header(name, value) for name, value in headers),
                ]
            ),
            body=body,
            details=f"tollgate_{error}",
        )
    )
    _set_metadata(response, trace_id, error)
    return response


def _header(name: str, value: str | bytes) -> HeaderValueOption:
    """A header to set, replacing any value the request or response had."""
    raw = value.encode() if isinstance(value, str) else value
    return HeaderValueOption(
        header=HeaderValue(key=name, raw_value=raw),
        append_action=HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def override_message_timeout(seconds: int) -> ProcessingResponse:
    """Tell Envoy to wait up to `seconds` for tollgate's answer to the current message (a
    request held for approval, an answer's images read); Envoy's `max_message_timeout`
    bounds it, and takes one such word per message."""
    response = ProcessingResponse()
    response.override_message_timeout.seconds = seconds
    return response


class StreamEnded(Exception):
    """Envoy closed the stream before the phase we waited for (the client went away, or
    Envoy refused the body itself, over its buffer limit)."""


class OutOfOrder(Exception):
    """Envoy sent a phase the exchange did not ask for."""


def asks_time(answer: ProcessingResponse) -> bool:
    """Whether `answer` only asks Envoy to wait longer (a hold, a slow reading): it must
    go at once, never held back behind what it asks time for."""
    return answer.HasField("override_message_timeout") and answer.WhichOneof("response") \
        is None


class Messages:
    """Envoy's side of one ext_proc stream, read by phase: each read names the phase it
    expects, and anything else ends the exchange (fail closed)."""

    __slots__ = ("_messages", "last", "trailers")

    def __init__(self, requests: AsyncIterator[ProcessingRequest]) -> None:
        self._messages = aiter(requests)
        # Trailers ended the response body: they follow it, and are answered last.
        self.trailers = False
        # Envoy will send nothing more (its last phase came, or the front asked for no
        # more): what is answered now is the exchange's last answer.
        self.last = False

    def final(self, answer: ProcessingResponse) -> bool:
        """Whether `answer` ends the exchange for its client: a local reply, an answer
        to Envoy's last message, or response headers that let the body pass unread. The
        front records the act before it leaves."""
        if asks_time(answer):
            return False
        return self.last or answer.HasField("immediate_response") or (
            answer.HasField("response_headers") and answer.HasField("mode_override")
            and answer.mode_override.response_body_mode == _NONE)

    async def first(self) -> ProcessingRequest | None:
        """The stream's opening message (None: Envoy closed it at once)."""
        return await anext(self._messages, None)

    async def expect(self, phase: str) -> ProcessingRequest:
        message = await anext(self._messages, None)
        if message is None:
            raise StreamEnded
        got = message.WhichOneof("request")
        if got != phase:
            raise OutOfOrder(f"expected {phase} from Envoy, got {got}")
        if got in ("response_headers", "response_body") \
                and getattr(message, got).end_of_stream:
            self.last = True
        return message

    async def request_body(self) -> bytes:
        """The request body, buffered whole by Envoy."""
        return (await self.expect("request_body")).request_body.body

    async def chunk(self) -> tuple[bytes, bool]:
        """The next piece of a response body streamed to tollgate (FULL_DUPLEX_STREAMED),
        and whether it is the last (trailers ending it make it the last, empty)."""
        message = await anext(self._messages, None)
        if message is None:
            raise StreamEnded
        kind = message.WhichOneof("request")
        if kind == "response_body":
            ends = message.response_body.end_of_stream
            self.last = self.last or ends
            return message.response_body.body, ends
        if kind == "response_trailers":
            self.trailers = self.last = True
            return b"", True
        raise OutOfOrder(f"expected response_body from Envoy, got {kind}")


class EnvoyResponse:
    """An HTTP response as a response handler sees it (http/responses.py's
    ResponseWire): its headers, its body as Envoy hands it over, and the answers."""

    __slots__ = ("_messages", "ends", "headers")

    def __init__(self, messages: Messages, headers: dict[str, str], ends: bool) -> None:
        self._messages, self.headers, self.ends = messages, headers, ends

    async def body(self) -> bytes:
        """The body Envoy buffered whole (after `proceed`)."""
        return (await self._messages.expect("response_body")).response_body.body

    async def chunk(self) -> tuple[bytes, bool]:
        return await self._messages.chunk()

    @staticmethod
    def proceed() -> ProcessingResponse:
        """The headers go on unchanged (a buffered body, if asked for, comes next)."""
        return CONTINUE_RESPONSE_HEADERS

    @staticmethod
    def keep_body() -> ProcessingResponse:
        return CONTINUE_RESPONSE_BODY

    @staticmethod
    def replace_body(body: bytes) -> ProcessingResponse:
        return replace_response_body(body)

    @staticmethod
    def pass_unread() -> ProcessingResponse:
        return PASS_RESPONSE_BODY

    @staticmethod
    def stream_through() -> ProcessingResponse:
        return stream_response_headers()

    @staticmethod
    def send_headers(length: int | None) -> ProcessingResponse:
        return streamed_response_headers(length)

    @staticmethod
    def more_time(seconds: int) -> ProcessingResponse:
        return override_message_timeout(seconds)

    def send(self, data: bytes, last: bool) -> tuple[ProcessingResponse, ...]:
        """A piece of the body the client gets; the last one, when trailers ended the
        body, is followed by the answer to them (they pass unchanged), keeping the
        headers-body-trailers order."""
        if not last:
            return (stream_response_chunk(data, False),)
        if self._messages.trailers:
            return stream_response_chunk(data, False), CONTINUE_RESPONSE_TRAILERS
        return (stream_response_chunk(data, True),)

    @staticmethod
    def refuse(answer: Answer) -> ProcessingResponse:
        return refusal(answer)


def refusal(answer: Answer) -> ProcessingResponse:
    """tollgate's answer in the upstream's place."""
    return immediate(answer.status, answer.body, answer.trace_id, answer.error, answer.headers)
