"""What tollgate does with an HTTP response, chosen when the request is decided.

A handler reads the response through a `ResponseWire` (the front's side of it: Envoy's
in wire.EnvoyResponse, a list in the unit tests), decides on it with the pipeline,
masks it, and yields the front's answers. Which handler, and so which phases the front
asks its peer for, is known from the request: headers only, the body (buffered, or
masked as it streams when it is an event stream), or a model's answer read as it
streams (http/llm_answer.py).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Literal, Protocol, TypeVar

from extproc import ledger
from extproc.codecs.message import (
    content_encoding,
    decode_response_body,
    decoded_content,
    media_type,
)
from extproc.codecs.refusal import Refusal, Unavailable
from extproc.config import Inspect, Target
from extproc.exchange.act import Act
from extproc.exchange.state import Answer
from extproc.exchange.streamed import reading
from extproc.interpret.instructions import kinds_in
from extproc.masking.body import ByteStream, is_event_stream, is_text, mask_body

Out = TypeVar("Out")
Out_co = TypeVar("Out_co", covariant=True)


class ResponseWire(Protocol[Out_co]):
    """A front's side of a response: its headers and body as they arrive, and the answers
    a handler gives (each an `Out`, the front's own message)."""

    headers: dict[str, str]
    ends: bool  # the headers ended the response: there is no body

    async def body(self) -> bytes:
        """The body, buffered whole by the peer (after `proceed`)."""
        ...

    async def chunk(self) -> tuple[bytes, bool]:
        """The next piece of a body streamed to tollgate, and whether it is the last."""
        ...

    def proceed(self) -> Out_co:
        """The headers go on unchanged (a buffered body, if asked for, comes next)."""
        ...

    def keep_body(self) -> Out_co:
        """The buffered body goes on unchanged."""
        ...

    def replace_body(self, body: bytes) -> Out_co:
        """The buffered body goes on as `body` (masked), with consistent headers."""
        ...

    def pass_unread(self) -> Out_co:
        """The headers go on and the body flows past tollgate, unread."""
        ...

    def stream_through(self) -> Out_co:
        """The headers go on; the body is streamed to tollgate piece by piece."""
        ...

    def send_headers(self, length: int | None) -> Out_co:
        """Headers held while reading a streamed body go on, ahead of the body tollgate
        sends itself (`length`: its length when known, else chunked)."""
        ...

    def send(self, data: bytes, last: bool) -> Iterable[Out_co]:
        """A piece of the body as the client gets it."""
        ...

    def refuse(self, answer: Answer) -> Out_co:
        """tollgate's answer instead of the response."""
        ...

    def more_time(self, seconds: int) -> Out_co:
        """The peer waits up to `seconds` for the answer to what it sent last: slow
        reading ahead (an image's OCR) must not be cut by the peer's own deadline."""
        ...


Mode = Literal["headers", "body", "duplex"]


class ResponseHandler(Protocol):
    mode: Mode
    """What the front asks its peer for: the response headers; the body too (buffered,
    or streamed on request); or the body streamed while the headers wait (duplex)."""

    def run(self, act: Act, response: ResponseWire[Out]) -> AsyncGenerator[Out, None]:
        ...


class Headers:
    """Decided on the status and headers alone."""

    mode: Mode = "headers"

    async def run(self, act: Act, response: ResponseWire[Out]) -> AsyncGenerator[Out, None]:
        exchange = act.exchange
        decision = await act.decide("response")
        if decision.action != "allow":
            yield response.refuse(exchange.refuse_response(decision))
            return
        yield response.proceed()


class Body:
    """The body read whole (buffered by the peer), decided on and masked; an event stream
    is decided on its headers and masked as it flows instead."""

    mode: Mode = "body"

    def run(self, act: Act, response: ResponseWire[Out]) -> AsyncGenerator[Out, None]:
        return by_shape(act, response, _stream, _buffered)


HEADERS, BODY = Headers(), Body()

Handle = Callable[[Act, ResponseWire[Out]], AsyncGenerator[Out, None]]


def by_shape(act: Act, response: ResponseWire[Out],
             streamed: Handle[Out], whole: Handle[Out]) -> AsyncGenerator[Out, None]:
    """A body's handling by its shape: the headers alone when there is none, `streamed`
    for an event stream, `whole` for the rest. Where only text is read (inside a read
    tunnel), a body that is no text passes unread, and one of text whose length is not
    announced (a chunked stream: NDJSON, a log being tailed) is streamed too."""
    if response.ends:
        return HEADERS.run(act, response)
    if is_event_stream(response.headers):
        return streamed(act, response)
    if act.exchange.response_mode == "text":
        if not is_text(response.headers.get("content-type", "")):
            return _unread(act, response)
        if "content-length" not in response.headers:
            return streamed(act, response)
    return whole(act, response)


async def _unread(act: Act, response: ResponseWire[Out]) -> AsyncGenerator[Out, None]:
    """A body that is no text, where only text is read: decided on its headers, then
    passed unread (not buffered, whatever its size)."""
    exchange = act.exchange
    decision = await act.decide("response")
    if decision.action != "allow":
        yield response.refuse(exchange.refuse_response(decision))
        return
    exchange.outcome["tollgate.response.unread"] = media_type(
        response.headers.get("content-type", "")) or "untyped"
    yield response.pass_unread()


async def _buffered(act: Act, response: ResponseWire[Out]) -> AsyncGenerator[Out, None]:
    exchange = act.exchange
    target, headers = exchange.target, response.headers
    assert target is not None and exchange.response is not None
    yield response.proceed()
    raw = await response.body()
    content = readable(target, headers, raw)
    received = raw if content is None else content  # as read, decompressed if it can be
    if content is not None and act.decides_responses():
        exchange.response["body"] = decode_response_body(headers, content)
    decision = await act.decide("response")
    if decision.action != "allow":
        yield response.refuse(exchange.refuse_response(decision, received))
        return
    if content is not None and act.reads_words:
        # A page: does it speak to the model?
        told = kinds_in(content.decode("utf-8", "replace"))
        if told:  # noted before the agent reads it (activity/flow.py)
            await act.received("instructions", told)
    if content is not None and exchange.mask is not None:
        masked = masked_as_asked(act, headers, content)
        await act.delivering(masked.decode("utf-8", "replace"))
        exchange.delivered(masked, exchange.mask)
        yield response.replace_body(masked)
        return
    if content is not None:
        await act.delivering(content.decode("utf-8", "replace"))
    exchange.delivered(received)
    yield response.keep_body()


async def _stream(act: Act, response: ResponseWire[Out]) -> AsyncGenerator[Out, None]:
    """A stream (of events, or of text), decided on its headers, masked chunk by chunk
    with a held-back tail (so a secret cut between chunks is still caught), read for the
    flow, released as it comes: no whole-stream buffer."""
    exchange = act.exchange
    decision = await act.decide("response")
    if decision.action != "allow":
        yield response.refuse(exchange.refuse_response(decision))
        return
    target, spec = exchange.target, exchange.mask
    assert target is not None
    # Read for the flow as it goes (exchange/streamed.py): values the mask leaves, and
    # an untrusted target's words to the model.
    read = reading(act)
    readable_encoding = content_encoding(response.headers) == "identity"
    if (spec is None and read is None) or (
            not readable_encoding and target.inspect.unreadable_encoding == "pass"):
        yield response.pass_unread()  # nothing to mask or read: it flows past tollgate
        return
    if not readable_encoding:
        raise Unavailable(502, "unreadable_encoding",
                       "a compressed stream cannot be masked as it flows; it is refused")
    yield response.stream_through()
    stream = ByteStream(act.masker, spec, events=is_event_stream(response.headers)) \
        if spec is not None else None
    delivered = exchange.delivering()
    ends = False
    while not ends:
        data, ends = await response.chunk()
        released = data if stream is None else stream.feed(data)
        if ends and stream is not None:
            released += stream.finish()
            exchange.record_masking(stream.counts)
        if read is not None and released:
            await read(released)
        delivered.add(released)
        for answer in response.send(released, ends):
            yield answer


def masked_as_asked(act: Act, headers: dict[str, str],
                    content: bytes) -> bytes:
    """A whole response body masked as the exchange's decisions ask (`exchange.mask`),
    what each detector masked counted in its span and record."""
    exchange = act.exchange
    assert exchange.mask is not None
    with ledger.stage(exchange.front, "mask"):
        masked, counts = mask_body(
            act.masker, exchange.mask, headers.get("content-type", ""), content)
    exchange.record_masking(counts)
    return masked


def readable(target: Target, headers: dict[str, str], raw: bytes) -> bytes | None:
    """The response body decompressed; None when the target lets an encoding tollgate
    cannot read pass unread (`inspect.unreadable_encoding: pass`)."""
    try:
        return decoded_content(headers, raw, target.inspect.max_body_bytes)
    except Refusal as bad:
        if bad.error == "unreadable_encoding" and target.inspect.unreadable_encoding == "pass":
            return None
        raise


async def gathered(response: ResponseWire[Out], inspect: Inspect) -> bytes:
    """A streamed body gathered whole, at most `inspect.max_body_bytes`."""
    parts: list[bytes] = []
    size, ends = 0, False
    while not ends:
        chunk, ends = await response.chunk()
        size += len(chunk)
        if size > inspect.max_body_bytes:
            raise Unavailable(
                502, "response_too_large",
                f"the upstream's answer exceeds this target's limit of {inspect.max_body_bytes} "
                "bytes",
            )
        parts.append(chunk)
    return b"".join(parts)
