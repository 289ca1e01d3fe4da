"""Reading Envoy's ext_proc messages and building the answers, on real xds-protos messages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpHeaders, ProcessingRequest

from extproc.credentials import Injection
from extproc.http import wire


def message(*headers: HeaderValue) -> HttpHeaders:
    return HttpHeaders(headers=HeaderMap(headers=list(headers)))


def test_repeated_headers_are_joined_in_order() -> None:
    got = wire.headers_of(message(
        HeaderValue(key="accept", raw_value=b"a"), HeaderValue(key="x-one", raw_value=b"1"),
        HeaderValue(key="accept", raw_value=b"b"),
    ))
    assert got == {"accept": "a, b", "x-one": "1"}


def test_old_value_field_and_invalid_utf8_are_read() -> None:
    got = wire.headers_of(message(
        HeaderValue(key="old", value="v"), HeaderValue(key="bin", raw_value=b"a\xffb"),
    ))
    assert got == {"old": "v", "bin": "a\ufffdb"}


def test_no_mode_override_when_there_is_nothing_to_ask() -> None:
    assert wire.processing_mode(None, "none") is None


def test_mode_override_turns_body_buffering_off_or_on() -> None:
    assert wire.processing_mode(False, "none").request_body_mode == ProcessingMode.NONE
    assert wire.processing_mode(True, "none").request_body_mode == ProcessingMode.BUFFERED
    mode = wire.processing_mode(None, "body")
    assert mode.response_header_mode == ProcessingMode.SEND
    assert mode.response_body_mode == ProcessingMode.BUFFERED
    assert mode.request_body_mode == ProcessingMode.DEFAULT  # the bootstrap's setting stands
    duplex = wire.processing_mode(True, "duplex")
    assert duplex.response_body_mode == ProcessingMode.FULL_DUPLEX_STREAMED
    assert duplex.response_trailer_mode == ProcessingMode.SEND
    assert wire.processing_mode(None, "headers").response_body_mode == ProcessingMode.DEFAULT


def test_immediate_answer_marks_itself_for_envoys_local_reply_mappers() -> None:
    reply = wire.immediate(404, {"error": "unknown_target", "trace_id": "t"}, "t", "unknown_target")
    answer = reply.immediate_response
    assert answer.status.code == 404
    assert json.loads(answer.body) == {"error": "unknown_target", "trace_id": "t"}
    headers = {h.header.key: h.header.raw_value for h in answer.headers.set_headers}
    assert headers == {"content-type": b"application/json", "x-tollgate-trace-id": b"t"}
    metadata = reply.dynamic_metadata.fields["tollgate"].struct_value.fields
    assert metadata["refusal"].string_value == "unknown_target"
    assert metadata["trace_id"].string_value == "t"


def test_a_forwarded_request_names_this_exchanges_span_whatever_was_cached() -> None:
    """The target's mutation is built once and cached; each exchange's traceparent goes
    on a copy of it, with the headers or with the body."""
    injection = Injection(remove=("authorization",), header="authorization", value=b"Bearer t")
    for digit in "01":
        parent = wire.traceparent(digit * 32, digit * 16)
        answers = (
            wire.continue_request_headers("t", None, injection, True, parent)
            .request_headers.response.header_mutation,
            wire.continue_request_body(injection, None, False, parent)
            .request_body.response.header_mutation,
        )
        for mutation in answers:
            sets = [(h.header.key, h.header.raw_value.decode()) for h in mutation.set_headers]
            assert ("authorization", "Bearer t") in sets
            assert [v for k, v in sets if k == "traceparent"] == [
                f"00-{digit * 32}-{digit * 16}-01"]
            assert list(mutation.remove_headers) == ["authorization"]


def test_an_answer_is_the_exchanges_last_only_when_envoy_will_send_nothing_more() -> None:
    """What the front records before it lets go (front.py): a local reply, headers that
    pass the body unread, or anything once Envoy sent its last message; never a word
    that only asks Envoy for time, which must go at once."""
    messages = wire.Messages(_nothing())
    refusal = wire.immediate_bytes(403, b"{}", "0" * 32, "denied")
    assert messages.final(refusal)
    assert messages.final(wire.PASS_RESPONSE_BODY)
    assert not messages.final(wire.CONTINUE_RESPONSE_HEADERS)
    assert not messages.final(wire.override_message_timeout(30))
    messages.last = True
    assert messages.final(wire.CONTINUE_RESPONSE_BODY)
    assert not messages.final(wire.override_message_timeout(30))
    assert wire.asks_time(wire.override_message_timeout(30))
    assert not wire.asks_time(refusal)


async def _nothing() -> AsyncIterator[ProcessingRequest]:
    """An Envoy side that sends nothing (final() reads no message)."""
    for message in ():
        yield message
