"""The HTTP front: Envoy's ext_proc stream turned into calls on the exchange pipeline.

    request headers ─► [request body] ─► interpret ─► decide ─► [hold] ─► forward
        ─► [response headers ─► response body, by the response handler]

One gRPC stream is one exchange. Envoy is asked only for the phases the target needs
(`mode_override` on the first answer), and the stream ends as soon as nothing more is
needed: a GET to a target that does not read responses costs one message each way.
Everything Envoy-specific stays here and in wire.py; the pipeline below sees
plain values, and every refusal is an answer in the protocol's shape, with the trace id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse

from extproc import ledger
from extproc.codecs.message import (
    check_declared_length,
    decode_request_body,
    policy_headers,
    request_view,
)
from extproc.codecs.refusal import OverLimit, Refusal, Refused, Unavailable
from extproc.config import INSPECTED_ROUTE_SUFFIX, Config
from extproc.egress.proxy import TICKET_HEADER, TLS_FAILURE_HEADER, EgressProxy, Outbound
from extproc.exchange.act import Act
from extproc.exchange.live_requests import FRONTS, RequestSessions, until_ended
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.state import Answer, Exchange
from extproc.http import wire
from extproc.http.answers import handler_for
from extproc.http.mcp_sessions import McpSessions
from extproc.http.responses import ResponseHandler, ResponseWire
from extproc.masking.body import mask_body

if TYPE_CHECKING:
    from extproc.policy import Decision

log = logging.getLogger("tollgate.exchange")

# Envoy waits this much longer than a hold, so the hold's own answer comes first.
_HOLD_MARGIN = 5
# Why the egress proxy refused, on its answers.
REASON_HEADER = "x-tollgate-reason"


def _decided_refusal(exchange: Exchange, upgrade: bool) -> Answer | None:
    """The decision's refusal; or, for a Kubernetes stream it allowed, tollgate's own
    (`upgrade`: the request asks to upgrade the connection)."""
    if exchange.decision.action != "allow":
        return exchange.refuse_decided(exchange.decision)
    target = exchange.target
    if upgrade and target is not None and target.protocol == "k8s":
        return exchange.refuse(_UNRELAYED_STREAM)
    return None

# An allowed Kubernetes stream that reached ext_proc rather than the stream front.
_UNRELAYED_STREAM = Refused(
    400, "stream_not_relayed", "this Kubernetes stream is not relayed: kubectl's WebSocket "
    "streams go through tollgate's Kubernetes front (Envoy's stream route; "
    "docs/architecture.md), and SPDY is refused (unset KUBECTL_REMOTE_COMMAND_WEBSOCKETS and "
    "KUBECTL_PORT_FORWARD_WEBSOCKETS)")

class ExtProcServicer(ext_proc_grpc.ExternalProcessorServicer):
    """Envoy's ext_proc service, driving the process's pipeline (built by the server,
    shared with every other front)."""

    def __init__(self, config: Config, pipeline: Pipeline, egress: EgressProxy | None = None,
                 sessions: McpSessions | None = None,
                 live: RequestSessions | None = None) -> None:
        self._pipeline = pipeline
        # The live sessions its exchanges name (None: not listed, as in unit tests).
        self._live = live
        # Who opened each MCP session (None: sessions are not bound, as in unit tests).
        self._sessions = sessions
        # Requests through the egress listener (None: no egress target).
        self._egress = egress
        self._payload_key = config.identity.payload_key
        # A client's copy of a target's credential header reaches policies hashed too.
        self._sensitive = tuple(dict.fromkeys([
            *config.policy.sensitive_headers,
            *(t.credential.header_name for t in config.targets if t.credential),
        ]))

    async def Process(
        self, requests: AsyncIterator[ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ProcessingResponse]:
        messages = wire.Messages(requests)
        first = await messages.first()
        if first is None:
            return
        if first.WhichOneof("request") != "request_headers":
            log.error("stream opened with %s, not request headers", first.WhichOneof("request"))
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "expected request headers")
        headers = wire.headers_of(first.request_headers)
        route = wire.attribute(first, "xds.route_name")
        cluster = wire.attribute(first, "xds.cluster_name")
        # Envoy's inspect listener: a request inside an inspected tunnel, of the egress
        # target whose route the name extends.
        inspected = route is not None and route.endswith(INSPECTED_ROUTE_SUFFIX)
        if route is not None and inspected:
            route = route.removesuffix(INSPECTED_ROUTE_SUFFIX)
        target = self._pipeline.target_for(route, cluster)
        claims = wire.jwt_claims(first, self._payload_key)
        outbound = None
        source = wire.source_address(first)
        if target is not None and target.protocol == "egress" and self._egress is not None:
            # Through the egress proxy: its own token, and a destination maybe read as
            # a target of its own. Inside a read tunnel, Envoy is the peer: the client
            # is the one its CONNECT came from.
            outbound = await self._egress.read(target, headers, inspected)
            target, claims = outbound.target, outbound.claims
            if outbound.ticket is not None:
                source = outbound.ticket.source
            # Read: the ticket (claims, a token's jti) stays out of the record.
            headers.pop(TICKET_HEADER, None)
        with self._pipeline.act(
            f"tollgate {headers.get(':method', '')} {target.name if target else 'unknown'}",
            headers, _request_attributes(headers, target.name if target else "unknown"),
            target, claims, source,
        ) as act:
            live = None
            if self._live is not None and target is not None:
                live = self._live.join(act.exchange, "egress" if outbound is not None
                                       else FRONTS.get(target.protocol, "http"))
            try:
                # A place in the record's queue first: what cannot be recorded does not pass.
                act.admit()
                if outbound is not None and self._egress is not None:
                    await self._egress.read_destination(act.exchange, outbound)
                act.check(f"route {route!r} or cluster {cluster!r}")
                # Ended (or its identity locked) while in flight: what waits stops, and
                # the stream closes with the refusal.
                # Closed in order, innermost first, however the stream ends: Envoy may
                # close it at an answer it yielded (its client had what it wanted), and
                # what each layer notes as it closes must be in the record the act ends.
                async with aclosing(_recorded_before_the_last(act, messages, until_ended(
                        self._exchange(act, first, messages, outbound), act.exchange.live)
                        )) as answers:
                    async for answer in answers:
                        yield answer
            except Exception as exc:  # every failure is answered: fail closed
                refused = _refusal(act, exc)
                if refused is not None:
                    yield _last_recorded(act, _refusal_answer(refused, outbound))
            finally:
                if live is not None and self._live is not None:
                    self._live.leave(live)

    async def _exchange(self, act: Act, first: ProcessingRequest,
                        messages: wire.Messages, outbound: Outbound | None
                        ) -> AsyncGenerator[ProcessingResponse, None]:
        exchange = act.exchange
        headers = exchange.evidence.headers
        target = exchange.target
        assert target is not None
        exchange.request = exchange.evidence.request = request_view(headers, self._sensitive)
        # A WebSocket or SPDY upgrade, or a proxy's CONNECT, makes the stream a tunnel:
        # it is decided on its headers, and its bytes pass unbuffered and unread (where
        # a CONNECT goes is its destination). A Kubernetes exec, attach or port-forward
        # is decided, then refused even when allowed: its WebSocket goes to the stream
        # front (extproc/kube/), which reads it; what reaches ext_proc is SPDY or a
        # bootstrap without the stream route.
        tunnel = "upgrade" in headers or (outbound is not None and outbound.tunnel)
        has_body = not first.request_headers.end_of_stream
        wants_body = target.inspect.request_body and has_body and not tunnel
        # Inside a tunnel the policy chose to read, an answer of text is read and masked
        # too, whatever the egress target's setting for plain HTTP (a linked target has
        # its own).
        exchange.response_mode = "none" if tunnel else "text" if outbound is not None \
            and outbound.inspected and target is outbound.proxy else target.inspect.response
        handler = handler_for(exchange)
        mode = wire.processing_mode(wants_body if has_body else None,
                                    handler.mode if handler else "none")
        body = b""
        if wants_body:
            check_declared_length(headers, target.inspect.max_body_bytes)
            yield wire.continue_request_headers(exchange.trace_id, mode)
            body = await _body_by_deadline(messages, target.inspect.body_seconds)
            exchange.evidence.request_body = exchange.kept(body)
            exchange.request["body"] = decode_request_body(headers, body)
        unknown = await self._interpret(act, len(body) + len(headers.get(":path", "")))
        if unknown is not None:
            yield unknown
            return

        decision = await self._decide_request(act, outbound)
        refused: Answer | None = None
        try:
            if decision.action == "hold":  # waits here for a human (or a grant)
                # Envoy is asked for the hold's time first, as for OCR: finding a grant,
                # asking and recording the hold all wait on stores, and under load they
                # outlast its 2 s message_timeout, whose 504 would end a hold its client
                # was never told of. A request a grant lets through costs one more word.
                yield wire.override_message_timeout(act.hold_seconds(decision) + _HOLD_MARGIN)
                async for _ in act.hold(decision):
                    pass  # Envoy waits as long as the hold's first word asked
        except Refusal as bad:  # the hold's refusal: not approved (in time)
            refused = exchange.refuse(bad)
        if refused is None:
            refused = _decided_refusal(exchange, tunnel and outbound is None)
        if refused is not None and (refused.in_place is None or not wants_body):
            yield _refusal_answer(refused, outbound)
            return
        if refused is not None:
            # The client reads its answer elsewhere (MCP's HTTP+SSE transport): what goes
            # upstream carries the refusal there; the record keeps what the agent sent.
            exchange.outcome["tollgate.outcome"] = "refused_in_place"
            prompt = refused.in_place
        else:
            # Allowed: an LLM's prompt is masked when the policy asks; the record keeps
            # the body as it went upstream.
            prompt = _masked_prompt(act, body, outbound is not None) if wants_body else None
            if prompt is not None:
                exchange.evidence.request_body = exchange.kept(prompt)
        # Leaving through the proxy, what the URL and headers carry is data leaving too.
        replaced = _masked_request_line(act) \
            if outbound is not None and not tunnel and refused is None else None
        # Unread, the answer comes from upstream with no more word from Envoy: the act
        # ends (recorded) before the request leaves.
        injection = await act.forward(ends_first=handler is None)
        forwarded = time.perf_counter()
        reads_body = handler is not None and handler.mode != "headers"
        # The upstream continues tollgate's span, not the agent's.
        traceparent = wire.traceparent(exchange.trace_id, exchange.evidence.span_id)
        # Through the proxy: the address decided on, which Envoy's routes require.
        metadata = self._egress.pin(exchange) if outbound and self._egress else None
        # Unread, the answer comes from upstream with no more word from Envoy.
        messages.last = handler is None
        if wants_body:
            yield wire.continue_request_body(injection, prompt, reads_body, traceparent,
                                             exchange.trace_id, metadata, replaced)
        else:
            yield wire.continue_request_headers(exchange.trace_id, mode, injection, reads_body,
                                                traceparent, metadata, replaced)
        async with aclosing(self._response(act, handler, messages, forwarded)) as answers:
            async for answer in answers:
                yield answer

    def _mcp_sessions(self, exchange: Exchange) -> McpSessions | None:
        target = exchange.target
        return self._sessions if target is not None and target.protocol == "mcp" else None

    async def _interpret(self, act: Act, size: int) -> ProcessingResponse | None:
        """Read what the request means; then, on an MCP target, whether it may use the
        session it names: None, else the server's own not-found (before any decision)."""
        await act.read(size)
        exchange = act.exchange
        sessions = self._mcp_sessions(exchange)
        unknown = await sessions.check(exchange) if sessions is not None else None
        if unknown is None:
            return None
        return wire.immediate_bytes(unknown.status, unknown.body, exchange.trace_id,
                                    unknown.error, unknown.headers)

    async def _response(self, act: Act, handler: ResponseHandler | None,
                        messages: wire.Messages, forwarded: float
                        ) -> AsyncGenerator[ProcessingResponse, None]:
        """The upstream's answer, as the request's handler reads it (None: it is not
        read); an MCP session it opens is bound first, before its id goes on."""
        if handler is None:
            return
        exchange = act.exchange
        sessions = self._mcp_sessions(exchange)
        reply = await messages.expect("response_headers")
        messages.last = messages.last or handler.mode == "headers"
        for name, value in (wire.peer_certificate(reply) or {}).items():
            exchange.outcome[f"tollgate.egress.certificate.{name}"] = value
        response_headers = wire.headers_of(reply.response_headers)
        # Envoy's refusal of a destination whose TLS did not verify (the inspect
        # listener's local reply): TLS's reason, for the record.
        if failure := response_headers.get(TLS_FAILURE_HEADER):
            exchange.outcome["tollgate.egress.tls_failure"] = failure
        status = int(response_headers.get(":status", "0") or 0)
        act.responded(status, policy_headers(response_headers, self._sensitive),
                      response_headers.get("content-type", ""),
                      (time.perf_counter() - forwarded) * 1000)
        response: ResponseWire[ProcessingResponse] = wire.EnvoyResponse(
            messages, response_headers, reply.response_headers.end_of_stream)
        if sessions is not None:
            await sessions.answered(exchange, status, response_headers)
            response = sessions.watched(exchange, status, response)
        async with aclosing(handler.run(act, response)) as answers:
            async for answer in answers:
                yield answer

    async def _decide_request(self, act: Act, outbound: Outbound | None) -> Decision:
        """The request's decision. Through the egress proxy, a name is decided on first
        and looked up only if that does not refuse it; then decided on with its
        addresses (both decisions are in the record)."""
        decision = await act.decide()
        if outbound is not None and self._egress is not None and decision.action != "deny" \
                and act.exchange.context["resolution"]["status"] == "pending":
            await self._egress.resolve(act.exchange, outbound)
            decision = await act.decide()
        return decision


def _masked_prompt(act: Act, body: bytes, outbound: bool) -> bytes | None:
    """An LLM target's request body, or one leaving through the egress proxy (plain or
    inside an inspected tunnel), masked as the policy asks (None: unchanged): what an
    agent posts to a destination is data leaving, as what a model is sent is."""
    exchange = act.exchange
    target, request, mask = exchange.target, exchange.request, exchange.mask
    if target is None or not (outbound or target.protocol == "llm") or request is None \
            or mask is None:
        return None
    content_type = request["headers"].get("content-type", "")
    with ledger.stage(exchange.front, "mask"):
        masked, counts = mask_body(act.masker, mask, content_type, body)
    if not counts:
        return None
    act.counted(counts, "request")
    return masked


# What a request leaving through the proxy keeps whole: what frames and routes it (Envoy
# checks those, and tollgate checked the host against the tunnel's) and what tollgate
# replaces (traceparent) or removes (the proxy's own credential). Any other header's value,
# whoever usually sets it, is masked as a body is: a User-Agent, an If-None-Match or an
# x-envoy- header carries an agent's data out as well as a cookie does.
_KEPT_WHOLE = frozenset({
    "host", "content-length", "transfer-encoding", "traceparent", "proxy-authorization",
})
# Envoy's own headers, which its mutation rules keep an ext_proc from changing.
_UNCHANGEABLE = "x-envoy-"


def _masked_request_line(act: Act) -> dict[str, str] | None:
    """A request's URL and header values masked as its policy asks, for a request leaving
    through the egress proxy (None: nothing masked); the record then keeps them as they
    left. What cannot be masked in place (a header's name, the method, an x-envoy-
    header) is refused rather than passed."""
    exchange = act.exchange
    if exchange.mask is None:
        return None
    headers, replaced = exchange.evidence.headers, {}
    counts: Counter[str] = Counter()
    path, found = _masked_url(act, headers.get(":path", ""))
    if path is not None:
        replaced[":path"] = path
        counts += found
    if _named_data(act, [name for name in headers if not name.startswith(":")]):
        raise _unmaskable("a header's name", "a name cannot be masked")
    for name, value in headers.items():
        if name in _KEPT_WHOLE or (name.startswith(":") and name != ":method"):
            continue
        masked, found = act.masker.mask_text(value, exchange.mask)
        if found and (name == ":method" or name.startswith(_UNCHANGEABLE)):
            raise _unmaskable(name, "Envoy lets tollgate change no method or "
                              f"{_UNCHANGEABLE} header")
        if found:
            replaced[name] = masked
            counts += found
    if not counts:
        return None
    act.counted(counts, "request")
    headers.update(replaced)
    return replaced


def _named_data(act: Act, names: list[str]) -> bool:
    """Whether a header's name carries what the policy masks: each read whole, and from
    after each of its first separators (`x-123-45-6789`: a dash glued before a number
    reads as an id's tail, not an SSN), all in one scan, a line each."""
    assert act.exchange.mask is not None
    lines = [name[at:] for name in names
             for at in [0, *(i + 1 for i, c in enumerate(name) if c in "-_")][:9]]
    return bool(act.masker.mask_text("\n".join(lines), act.exchange.mask)[1])


def _masked_url(act: Act, path: str) -> tuple[str | None, Counter[str]]:
    """The URL's path and query masked, each read percent-decoded (the query's `+` as a
    space), so that `123%2D45%2D6789` is found too, and written back encoded as what it
    was (None: nothing found): a `%3F` in the path stays one, never a query's start."""
    assert act.exchange.mask is not None
    mask, masker = act.exchange.mask, act.masker
    raw_path, question, raw_query = path.partition("?")
    masked_path, found = masker.mask_text(unquote(raw_path), mask)
    masked_query, in_query = masker.mask_text(unquote_plus(raw_query), mask) if question \
        else ("", Counter[str]())
    if not (found or in_query):
        return None, found
    written = quote(masked_path, safe="/:@!$&'()*+,;=~-._") if found else raw_path
    if question:
        written += "?" + (quote_plus(masked_query, safe="/?:@!$&'()*,;=~-._") if in_query
                          else raw_query)
    return written, found + in_query


def _unmaskable(what: str, why: str) -> Refused:
    return Refused(403, "unmaskable_header",
                   f"{what} carries what the policy masks, and {why}: the request is "
                   "refused rather than passed unmasked")


async def _body_by_deadline(messages: wire.Messages, seconds: float) -> bytes:
    """The request body Envoy buffered, or a 408 once `seconds` passed: Envoy has no
    deadline of its own for a body trickled in (its request_timeout outlasts holds)."""
    try:
        return await asyncio.wait_for(messages.request_body(), seconds)
    except TimeoutError:
        raise OverLimit(408, "request_timeout", "the request body did not arrive within "
                       f"{seconds:g} s of its headers (inspect.body_seconds)") from None


def _refusal(act: Act, exc: Exception) -> Answer | None:
    """What an exchange that failed answers (None: nobody is left to answer)."""
    exchange = act.exchange
    if isinstance(exc, wire.StreamEnded):
        # The client went away, or Envoy refused the body itself (over its buffer limit).
        exchange.outcome["tollgate.outcome"] = "stream_ended"
        return None
    if isinstance(exc, wire.OutOfOrder):
        log.error("trace %s: %s", exchange.trace_id, exc)
        return exchange.refuse(Unavailable(500, "internal_error", str(exc)))
    return act.refusal(exc)


async def _recorded_before_the_last(act: Act, messages: wire.Messages,
                                   answers: AsyncGenerator[ProcessingResponse, None]
                                   ) -> AsyncGenerator[ProcessingResponse, None]:
    """`answers` as they come until one ends the exchange (wire.Messages.final); from
    there the rest are gathered (none waits on Envoy, which has sent its last; one that
    asks Envoy for more time goes at once), the act is ended, its record journaled
    (recording/journal.py), and then they go: no process death can leave an answered
    exchange unrecorded, and the record holds what the handler noted after its last
    answer too (a stream's finish reasons)."""
    async with aclosing(answers):
        async for answer in answers:
            if not messages.final(answer):
                yield answer
                continue
            last = [answer]
            async for rest in answers:
                if wire.asks_time(rest):  # Envoy is to wait for the rest: told at once
                    yield rest
                else:
                    last.append(rest)
            act.end()
            for answer in last:
                yield answer
            return


def _last_recorded(act: Act, answer: ProcessingResponse) -> ProcessingResponse:
    """A refusal (a local reply: the exchange's last), the act ended first."""
    act.end()
    return answer


def _refusal_answer(answer: Answer, outbound: Outbound | None) -> ProcessingResponse:
    """A refusal; the egress proxy's with its reason in a header too: curl, for one,
    shows a failed CONNECT's status and headers, never its body."""
    if outbound is None:
        return wire.refusal(answer)
    body = answer.body
    reasons = body.get("reasons")
    reason = "; ".join(str(r) for r in reasons) if isinstance(reasons, list) and reasons \
        else str(body.get("message") or body.get("error") or "refused")
    # A header value is visible ASCII and spaces, on one line.
    text = "".join(c if " " <= c <= "~" else "?" for c in reason)[:400]
    return wire.refusal(replace(answer, headers=(*answer.headers, (REASON_HEADER, text))))


def _request_attributes(headers: dict[str, str], target: str) -> dict[str, Any]:
    """The span's attributes known from the request headers (HTTP semantic conventions)."""
    return {
        "http.request.method": headers.get(":method", ""),
        "url.path": headers.get(":path", "").partition("?")[0],
        "url.scheme": headers.get(":scheme", ""),
        "server.address": headers.get(":authority", ""),
        "user_agent.original": headers.get("user-agent", ""),
        # Envoy's request id: what joins Envoy's own refusals (its 413) to this span.
        "tollgate.request_id": headers.get("x-request-id", ""),
        "tollgate.target": target,
    }

