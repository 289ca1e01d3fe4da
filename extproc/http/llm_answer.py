"""A model's answer, read as it streams, so a tool call is decided before the agent sees it.

The front asks for the response body streamed to tollgate while the response headers
wait (Envoy's FULL_DUPLEX_STREAMED), so tollgate holds the headers until it knows
whether the model asks for a tool call: a refused call is replaced by the deny answer
before the agent sees a byte of it.

A whole answer is read whatever its Content-Type says (a client reads JSON from
`text/plain`, events from `application/json`). A streamed answer's text flows as it
comes (masked); from the first tool-call delta on, events are held until the answer
is complete and decided on. A refusal after text has flowed ends the stream with an
error event, which OpenAI-compatible clients raise as an error.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import TYPE_CHECKING, cast

from extproc.codecs import jsonenc
from extproc.codecs.message import content_encoding, decode_response_body
from extproc.codecs.refusal import Unavailable
from extproc.exchange.act import Act
from extproc.exchange.pipeline import off_loop
from extproc.exchange.state import Exchange
from extproc.http.responses import (
    Mode,
    Out,
    ResponseWire,
    gathered,
    masked_as_asked,
    readable,
)
from extproc.interpret import Llm, answer_attributes, output_bytes
from extproc.masking.body import EventMasking, is_event_stream

if TYPE_CHECKING:
    from extproc.interpret.llm import Event
    from extproc.policy import Decision
    from extproc.recording import BodyCapture


def _llm(exchange: Exchange) -> Llm:
    """The model target's interpreter: only its requests are answered here."""
    return cast(Llm, exchange.interpreter)


class ModelAnswer:
    """The answer to a chat completion or a Responses API call."""

    mode: Mode = "duplex"

    def run(self, act: Act, response: ResponseWire[Out]) -> AsyncGenerator[Out, None]:
        return (self._whole if not is_event_stream(response.headers)
                else self._streamed)(act, response)

    async def _whole(self, act: Act, response: ResponseWire[Out]) -> AsyncGenerator[Out, None]:
        exchange = act.exchange
        target, headers = exchange.target, response.headers
        assert target is not None and exchange.response is not None
        raw = b"" if response.ends else await gathered(response, target.inspect)
        content = readable(target, headers, raw)
        # Read whatever its declared type, as clients read it; a body in an encoding
        # tollgate cannot read is read as the bytes it is (an error, refused to agents).
        meaning, body = await off_loop(
            len(raw), _llm(exchange).answer, exchange.meaning, raw if content is None else content)
        if body is None and content is not None:
            body = decode_response_body(headers, content)
        exchange.response["body"] = body
        answer_attributes(body, exchange.outcome)
        exchange.output_bytes = output_bytes(body)
        exchange.interpret(meaning)
        decision = await act.decide("response")
        out = raw if content is None else content
        if decision.action != "allow":
            yield response.refuse(exchange.refuse_response(decision, out))
            return
        if content is not None and exchange.mask is not None:
            out = masked_as_asked(act, headers, content)
        if response.ends:
            yield response.proceed()
            return
        exchange.delivered(out)
        yield response.send_headers(len(out)) if out is not raw else response.proceed()
        for answer in response.send(out, True):
            yield answer

    async def _streamed(self, act: Act, response: ResponseWire[Out]) -> AsyncGenerator[Out, None]:
        exchange = act.exchange
        if content_encoding(response.headers) != "identity":
            raise Unavailable(502, "unreadable_encoding",
                           "a compressed event stream cannot be read as it flows; it is refused")
        stream = _llm(exchange).stream()
        spec = exchange.mask
        masking = EventMasking(act.masker, spec) if spec is not None else None
        held: list[bytes] = []  # from the first tool-call delta on
        headers_sent, ends = False, response.ends
        delivered = exchange.delivering()
        received = exchange.capture()  # for the record, should it be refused
        while not ends:
            chunk, ends = await response.chunk()
            received.add(chunk)
            events = stream.feed(chunk)
            if ends:
                events += stream.finish()
            _told(events, exchange)
            flowing = _flowing(events, masking, held)
            if masking is not None and ends:
                held.append(masking.finish())
            if flowing:
                for answer in _sent(response, delivered, flowing, not headers_sent, False):
                    yield answer
                headers_sent = True
        exchange.interpret(await off_loop(received.size, _llm(exchange).streamed, exchange.meaning,
                                          stream))
        decision = await act.decide("response")
        if masking is not None:
            exchange.record_masking(masking.counts)
        if decision.action != "allow":
            if not headers_sent:
                yield response.refuse(exchange.refuse_response(decision, received))
                return
            exchange.outcome["tollgate.outcome"] = "stream_refused"
            exchange.evidence.upstream_body = received
            error = self._error_event(exchange, decision)
            for answer in _sent(response, delivered, [error], False, True):
                yield answer
            return
        for answer in _sent(response, delivered, held, not headers_sent, True):
            yield answer

    def _error_event(self, exchange: Exchange, decision: Decision) -> bytes:
        """A refusal inside an event stream already under way: an event carrying the
        error, which OpenAI-compatible clients raise as an error; no `[DONE]` follows."""
        _, refusal = _llm(exchange).refusal(exchange.refusal_body(decision), 200, exchange.meaning)
        return f"data: {jsonenc.dumps(refusal)}\n\n".encode()


def _told(events: list[Event], exchange: Exchange) -> None:
    """What the events say of the answer (its model, id, token usage), for the span; and
    the output they carry, counted."""
    for event in events:
        answer_attributes(event.payload, exchange.outcome)
        exchange.output_bytes += output_bytes(event.payload)


def _flowing(events: list[Event], masking: EventMasking | None, held: list[bytes]
             ) -> list[bytes]:
    """The events' bytes (masked) that may reach the client now; from the first tool-call
    delta on, each joins `held` instead, until the whole answer is decided. So does
    `[DONE]`: a client that stops reading there (the openai client does) would otherwise
    end the stream before tollgate has read its end, and the answer would go undecided
    and its reading unrecorded."""
    flowing: list[bytes] = []
    for event in events:
        raw = masking.event(event.raw, event.payload) if masking else event.raw
        (held if held or event.tool_delta or event.done else flowing).append(raw)
    return flowing


def _sent(response: ResponseWire[Out], delivered: BodyCapture, parts: list[bytes],
          first: bool, end: bool) -> Iterator[Out]:
    """The answers that send `parts` to the client (the response headers before them when
    `first`), kept as delivered for the record."""
    data = b"".join(parts)
    if first:
        yield response.send_headers(None)
    delivered.add(data)
    yield from response.send(data, end)


MODEL_ANSWER = ModelAnswer()
