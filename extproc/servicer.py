"""The ext_proc servicer: one gRPC stream is one exchange, read top to bottom.

    request headers ─► [request body] ─► interpret ─► decide ─► [response headers]
        ─► [response body] ─► decide

Envoy is asked only for the phases the target needs (`mode_override` on the
first answer), and the stream ends as soon as nothing more is needed: a GET to
a target that does not inspect responses costs exactly one message each way.
The target's protocol interpreter turns the request (and an LLM's answer) into
what it means — SQL statements, a Kubernetes verb, a model's tool calls — so
policies decide on meaning, not bytes. Every refusal is a JSON answer carrying
the trace id; anything tollgate cannot decide fails closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse
from opentelemetry.trace import Span, Status, StatusCode

from extproc import envoy_wire as wire
from extproc import jsonenc
from extproc.approvals import Approval
from extproc.approvals.hold import Holds, bound_to
from extproc.body_masking import (
    ByteStream,
    EventMasking,
    MaskError,
    is_event_stream,
    mask_body,
    spec_of,
)
from extproc.config import Config, Inspect, Target
from extproc.credentials import CredentialStore
from extproc.http_message import (
    BadInput,
    check_declared_length,
    content_encoding,
    decode_request_body,
    decode_response_body,
    decoded_content,
    policy_headers,
    request_view,
)
from extproc.identity import identity_of, refusal, span_attributes, subject_of
from extproc.interpret import Interpreter, Llm, Refusal, interpreter_for, model_api
from extproc.masking import Masker, MaskSpec
from extproc.policy import Decision, PolicyEngine, PolicyError
from extproc.policy.decision import APPROVED, HOLD_TOO_LATE, POLICY_ERROR
from extproc.policy.input import InputEncoder
from extproc.recording import (
    BodyCapture,
    Decided,
    Evidence,
    Recorder,
    RecordingQuota,
    RecordingUnavailable,
)
from extproc.store import StoreError
from extproc.telemetry import Telemetry, span_id_of, trace_id_of

log = logging.getLogger("tollgate.exchange")


class _StreamEnded(Exception):
    """Envoy closed the stream before the phase we waited for (the client went away)."""


class _OutOfOrder(Exception):
    """Envoy sent a phase the exchange did not ask for."""


# Envoy waits this much longer than a hold, so the hold's own answer comes first.
_HOLD_MARGIN = 5


@dataclass(slots=True)
class Exchange:
    """What one exchange has shown so far: the policy input, and its span's attributes.

    Span attributes are gathered here and set once when the exchange ends: each
    call into the OpenTelemetry SDK costs tens of µs on the request path.
    """

    target: Target
    encoder: InputEncoder
    span: Span
    trace_id: str
    identity: dict[str, Any]
    request: dict[str, Any]
    attributes: dict[str, Any]
    # What the exchange leaves in the audit record, gathered as it goes.
    evidence: Evidence
    interpreter: Interpreter | None = None
    # What the interpreter read the request (and response) to mean: input.sql, .k8s, .llm.
    meaning: Any = None
    # How much of the response tollgate reads: none, headers, body (a tunnel: none).
    response_mode: str = "body"
    response: dict[str, Any] | None = None
    decisions: list[Decision] = field(default_factory=list)
    # What the decisions so far ask to mask, merged (None: nothing).
    mask: MaskSpec | None = None
    masked: Counter[str] = field(default_factory=Counter)
    # The approval that let a held request through: it covers the rest of the exchange.
    approval: Approval | None = None

    def interpret(self, meaning: Any) -> None:
        """Take what the interpreter read (for the policy), and its summary (for the span)."""
        self.meaning = self.evidence.meaning = meaning
        if self.interpreter is not None:
            self.attributes.update(self.interpreter.attributes(meaning))

    def policy_input(self, phase: str) -> str:
        return self.encoder.encode(
            phase, self.identity, self.request, self.response, self.meaning
        )


class ExtProcServicer(ext_proc_grpc.ExternalProcessorServicer):
    def __init__(
        self, config: Config, engine: PolicyEngine, telemetry: Telemetry,
        credentials: CredentialStore, masker: Masker, recorder: Recorder, holds: Holds,
    ) -> None:
        self._engine = engine
        self._masker = masker
        self._recorder = recorder
        self._holds = holds
        self._record_limit = config.recording.max_body_bytes
        self._telemetry = telemetry
        self._credentials = credentials
        # A client's copy of a target's credential header reaches policies hashed too.
        self._sensitive = tuple(dict.fromkeys([
            *config.policy.sensitive_headers,
            *(t.credential.header_name for t in config.targets if t.credential),
        ]))
        self._identity = config.identity
        self._by_route = {t.match.route: t for t in config.targets if t.match.route}
        self._by_cluster = {t.match.cluster: t for t in config.targets if t.match.cluster}
        self._interpreters = {t.name: interpreter_for(t) for t in config.targets}
        self._encoders = {
            t.name: InputEncoder(t, getattr(self._interpreters[t.name], "key", None))
            for t in config.targets
        }

    async def Process(
        self, requests: AsyncIterator[ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ProcessingResponse]:
        messages = aiter(requests)
        first = await anext(messages, None)
        if first is None:
            return
        if first.WhichOneof("request") != "request_headers":
            log.error("stream opened with %s, not request headers", first.WhichOneof("request"))
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "expected request headers")

        # 1. Request headers: find the target and who acts, open the span.
        headers = wire.headers_of(first.request_headers)
        route = wire.attribute(first, "xds.route_name")
        cluster = wire.attribute(first, "xds.cluster_name")
        target = self._by_route.get(route) or self._by_cluster.get(cluster)  # type: ignore[arg-type]
        target_name = target.name if target else "unknown"
        claims = wire.jwt_claims(first, self._identity.payload_key)
        identity = identity_of(claims, self._identity)
        span = self._telemetry.start_exchange(
            f"tollgate {headers.get(':method', '')} {target_name}", headers,
            {**_request_attributes(headers, target_name), **span_attributes(identity)},
        )
        trace_id = trace_id_of(span)
        outcome: dict[str, Any] = {}
        interpreter = self._interpreters[target.name] if target else None
        # The target protocol's shape for refusals, every one of them (a missing token too).
        shape: Refusal | None = getattr(interpreter, "refusal", None)
        clock = time.perf_counter()
        evidence = Evidence("exchange", time.time(), trace_id, span_id_of(span), headers,
                            identity, target)
        admitted, who = False, subject_of(identity)
        try:
            # A place in the audit record's queue first: what cannot be recorded does
            # not pass (RecordingUnavailable, a 503; RecordingQuota, 429: this identity
            # holds its whole share of the queue).
            self._recorder.admit(who)
            admitted = True
            if target is None:
                raise BadInput(
                    404, "unknown_target",
                    f"no target matches route {route!r} or cluster {cluster!r}",
                )
            # No token: Envoy's jwt_authn refuses it first, and reaching here means a
            # route without the filter's requirement: refuse rather than trust it.
            unidentified = refusal(claims, identity, target.name, target.anonymous)
            if unidentified is not None:
                raise BadInput(401, "unauthenticated", unidentified)
            exchange = Exchange(
                target, self._encoders[target.name], span, trace_id, identity,
                request_view(headers, self._sensitive), outcome, evidence, interpreter,
                masked=evidence.masked,
            )
            evidence.request = exchange.request
            evidence.meaning_key = getattr(interpreter, "key", None)
            # A WebSocket or SPDY upgrade (kubectl exec) makes the stream a tunnel: it is
            # decided on its headers, and its bytes pass unbuffered and unread (what the
            # session runs is in the request line, which the policy saw).
            tunnel = "upgrade" in headers
            has_body = not first.request_headers.end_of_stream
            body_size = 0
            wants_body = target.inspect.request_body and has_body and not tunnel
            exchange.response_mode = "none" if tunnel else target.inspect.response
            # An LLM's answer is read as it streams, its headers held until tollgate
            # knows whether the model asks for a tool call (see _model_answer).
            duplex = (isinstance(interpreter, Llm) and exchange.response_mode == "body"
                      and model_api(exchange.request) is not None)
            mode = wire.processing_mode(
                wants_body if has_body else None, exchange.response_mode, duplex
            )

            # 2. Request body, when the target inspects it and the request has one.
            if wants_body:
                check_declared_length(headers, target.inspect.max_body_bytes)
                yield wire.continue_request_headers(trace_id, mode)
                body = await _expect(messages, "request_body")
                received = body.request_body.body
                evidence.request_body = BodyCapture.of(received, self._record_limit)
                exchange.request["body"] = decode_request_body(headers, received)
                body_size = len(received)
            if interpreter is not None:
                size = body_size + len(headers.get(":path", ""))
                exchange.interpret(await _interpreted(interpreter, exchange.request, size))

            # The request decision; a hold waits here for a human (or a grant).
            decision = await self._decide(exchange, "request")
            if decision.action == "hold":
                async for waiting in self._hold(exchange, decision):
                    yield waiting
                decision = exchange.decisions[-1]
            if decision.action != "allow":
                yield _deny(exchange, decision)
                return
            # Allowed: the upstream gets the target's credential, never the client's,
            # and an LLM's prompt is masked when the policy asks.
            injection = self._credentials.injection(target.name)
            reads_response = exchange.response_mode == "body"
            prompt = self._masked_prompt(exchange, body) if wants_body else None
            if prompt is not None:  # the record keeps the body as it went upstream
                evidence.request_body = BodyCapture.of(prompt, self._record_limit)
            if target.record == "strict":
                await self._recorder.commit(_decision_evidence(evidence, clock), who)
            forwarded = time.perf_counter()
            # The upstream continues tollgate's span, not the agent's.
            traceparent = wire.traceparent(trace_id, evidence.span_id)
            if wants_body:
                yield wire.continue_request_body(injection, prompt, reads_response, traceparent)
            else:
                yield wire.continue_request_headers(trace_id, mode, injection, reads_response,
                                                    traceparent)
            if exchange.response_mode == "none":
                return

            # 3. Response headers, then 4. the response body, decided on again, masked.
            reply = await _expect(messages, "response_headers")
            evidence.upstream_ms = (time.perf_counter() - forwarded) * 1000
            response_headers = wire.headers_of(reply.response_headers)
            status = int(response_headers.get(":status", "0") or 0)
            outcome["http.response.status_code"] = status
            exchange.response = evidence.response = {
                "status": status,
                "headers": policy_headers(response_headers, self._sensitive),
                "body": None,
            }
            evidence.response_type = response_headers.get("content-type", "")
            ends = reply.response_headers.end_of_stream
            if duplex:
                async for answer in self._model_answer(exchange, response_headers, ends,
                                                       messages):
                    yield answer
                return
            reads_body = exchange.response_mode == "body" and not ends
            if reads_body and is_event_stream(response_headers):
                # A stream (an LLM's completion): decided on its headers, masked as it flows.
                decision = await self._decide(exchange, "response")
                if decision.action != "allow":
                    yield self._refused(exchange, decision)
                    return
                async for answer in self._masked_stream(exchange, response_headers, messages):
                    yield answer
                return
            content = received = None  # received: the body as read, decompressed if it can be
            if reads_body:
                yield wire.CONTINUE_RESPONSE_HEADERS
                raw = (await _expect(messages, "response_body")).response_body.body
                content = self._readable(target, response_headers, raw)
                received = raw if content is None else content
                if content is not None:
                    exchange.response["body"] = decode_response_body(response_headers, content)
            decision = await self._decide(exchange, "response")
            if decision.action != "allow":
                yield self._refused(exchange, decision, received)
                return
            if content is not None and exchange.mask is not None:
                masked, counts = mask_body(
                    self._masker, exchange.mask, response_headers.get("content-type", ""), content
                )
                _record_masking(exchange, counts)
                self._delivered(exchange, masked)
                yield wire.replace_response_body(masked)
            elif received is not None:
                self._delivered(exchange, received)
                yield wire.CONTINUE_RESPONSE_BODY
            else:
                yield wire.CONTINUE_RESPONSE_HEADERS
        except RecordingQuota as quota:
            yield _refuse(outcome, trace_id, BadInput(429, "recording_quota", str(quota)), shape)
        except RecordingUnavailable as unavailable:
            log.error("trace %s: refused: %s", trace_id, unavailable)
            yield _refuse(outcome, trace_id, BadInput(503, "recording_unavailable", str(
                unavailable)), shape)
        except BadInput as bad:
            yield _refuse(outcome, trace_id, bad, shape)
        except _StreamEnded:
            # The client went away, or Envoy refused the body itself (over its buffer limit).
            outcome["tollgate.outcome"] = "stream_ended"
        except _OutOfOrder as exc:
            log.error("trace %s: %s", trace_id, exc)
            yield _refuse(outcome, trace_id, BadInput(500, "internal_error", str(exc)), shape)
        except Exception:
            log.exception("trace %s: exchange failed", trace_id)
            span.set_status(Status(StatusCode.ERROR, "exchange failed"))
            yield _refuse(outcome, trace_id, BadInput(
                500, "internal_error", "tollgate could not process this request"
            ), shape)
        finally:
            span.set_attributes(outcome)
            span.end()
            if admitted:
                evidence.outcome = outcome
                evidence.duration_ms = (time.perf_counter() - clock) * 1000
                self._recorder.submit(evidence, who)

    def _delivered(self, exchange: Exchange, body: bytes) -> None:
        """The response body as the client gets it, for the record."""
        self._delivering(exchange).add(body)

    def _delivering(self, exchange: Exchange) -> BodyCapture:
        """Where a response body is captured for the record as it goes to the client."""
        capture = exchange.evidence.response_body = BodyCapture(self._record_limit)
        exchange.evidence.response_read = True
        return capture

    def _refused(self, exchange: Exchange, decision: Decision,
                 received: bytes | BodyCapture | None = None) -> ProcessingResponse:
        """A response the policy refused: the deny answer in its place. The record keeps
        both sides: the refusal as what the client got, and what the upstream had sent
        (`received`, when tollgate read it) — the answer an investigation is about."""
        answer = _deny(exchange, decision)
        evidence = exchange.evidence
        evidence.response_body = BodyCapture.of(answer.immediate_response.body,
                                                self._record_limit)
        evidence.delivered_type = "application/json"
        if received is not None:
            evidence.upstream_body = received if isinstance(received, BodyCapture) else (
                BodyCapture.of(received, self._record_limit))
            evidence.response_read = True
        return answer

    async def _decide(self, exchange: Exchange, phase: str) -> Decision:
        """Ask the policy; an engine that cannot answer denies, unless the target fails open."""
        started = time.perf_counter()
        try:
            decision = await self._engine.decide(exchange.policy_input(phase))
            if decision.action == "allow" and decision.masks_anything:
                spec_of([decision.mask])  # a detector or strategy that exists nowhere
        except (PolicyError, MaskError) as exc:
            fail_open = exchange.target.fail_mode == "open"
            log.error(
                "trace %s: policy error on target %s (%s): %s",
                exchange.trace_id, exchange.target.name,
                "failing open" if fail_open else "refused", exc,
            )
            decision = replace(POLICY_ERROR, action="allow") if fail_open else POLICY_ERROR
            exchange.attributes["tollgate.policy.error"] = str(exc)
            if fail_open:
                exchange.attributes["tollgate.fail_open"] = True
        if (decision.action in ("allow", "hold") and decision.masks_anything
                and exchange.response_mode != "body"):
            # Nothing would be masked: letting the data through would leak what the
            # policy asked to hide (a hold too: nobody need be asked to approve it).
            decision = Decision(
                action="deny",
                reasons=(_unmaskable(exchange),),
                rules=(*decision.rules, "tollgate.mask_unavailable"),
            )
        elif decision.action == "hold" and phase != "request":
            decision = self._held_again(exchange, decision)
        exchange.decisions.append(decision)
        exchange.mask = spec_of(d.mask for d in exchange.decisions)
        duration_us = int((time.perf_counter() - started) * 1e6)
        exchange.evidence.decisions.append(Decided(
            phase, decision.action, decision.reasons, decision.rules, decision.status,
            self._engine.revision, duration_us, decision.approvers, decision.hold_seconds,
            exchange.meaning,
        ))
        exchange.span.add_event(
            "tollgate.decision",
            {
                "tollgate.phase": phase,
                "tollgate.decision.action": decision.action,
                "tollgate.decision.rules": decision.rules,
                "tollgate.decision.reasons": decision.reasons,
                "tollgate.policy.revision": self._engine.revision,
                "tollgate.policy.duration_us": duration_us,
            },
        )
        exchange.attributes["tollgate.decision.action"] = decision.action
        exchange.attributes["tollgate.decision.rules"] = decision.rules
        return decision

    async def _hold(self, exchange: Exchange, held: Decision,
                    ) -> AsyncIterator[ProcessingResponse]:
        """Wait for a human: pass on a grant that covers this request, else wait on its
        approval up to `hold_seconds`, telling Envoy to wait as long
        (`override_message_timeout`; Envoy's `max_message_timeout` bounds it). Ends with
        the settled decision last in `exchange.decisions`: an allow on approval; else a
        refusal naming the approval (raised as BadInput)."""
        holds = self._holds
        bound = bound_to(exchange.evidence)
        try:
            approval = await holds.granted(bound, held, exchange.evidence)
            via, passes = "grant", approval is not None
            if approval is None:
                approval = await holds.ask(bound, held, exchange.evidence)
                via, seconds = "hold", holds.seconds(held)
                self._approval_event(exchange, approval, via, seconds)
                yield wire.override_message_timeout(seconds + _HOLD_MARGIN)
                approval = await holds.store.wait(approval.id, seconds)
                passes = approval.state() == "approved"
                if passes and approval.grant_mode == "once":
                    # Retries of one request may wait on one approval: the first to
                    # take it passes, once.
                    used = await holds.store.use(approval.id, exchange.trace_id)
                    passes = used is not None
                    approval = used or await holds.store.get(approval.id)
        except StoreError as exc:
            raise BadInput(503, "approvals_unavailable", "this request needs an approval, "
                           f"and the approvals store cannot answer: {exc}") from None
        self._approval_event(exchange, approval, via)
        if not passes:
            raise _approval_refusal(approval, holds.approve_url(approval))
        exchange.approval = approval
        settled = exchange.decisions[-1] = _approved(held, approval)
        exchange.mask = spec_of(d.mask for d in exchange.decisions)
        exchange.attributes["tollgate.decision.action"] = settled.action
        exchange.attributes["tollgate.decision.rules"] = settled.rules

    @staticmethod
    def _held_again(exchange: Exchange, held: Decision) -> Decision:
        """A hold after the request went upstream (the policy holds its response too): the
        approval its request got covers the whole exchange; without one there is nothing
        left to hold, the upstream having acted, and the response is refused."""
        if exchange.approval is not None:
            return _approved(held, exchange.approval)
        return Decision(action="deny", reasons=("a response cannot be held for approval",
                                                *held.reasons),
                        rules=(*held.rules, HOLD_TOO_LATE), status=held.status)

    @staticmethod
    def _approval_event(exchange: Exchange, approval: Approval, via: str,
                        seconds: int | None = None) -> None:
        """The approval as it stands, on the span (an event) and in the record."""
        state = approval.state()
        exchange.span.add_event("tollgate.approval", {
            "tollgate.approval.id": approval.id,
            "tollgate.approval.status": state,
            "tollgate.approval.approvers": approval.approvers,
            "tollgate.approval.grant": approval.grant_mode,
            **({"tollgate.approval.hold_seconds": seconds} if seconds is not None else {}),
            **({"tollgate.approval.decided_by": approval.decided_by}
               if approval.decided_by else {}),
            **({"tollgate.approval.reason": approval.reason} if approval.reason else {}),
        })
        exchange.attributes["tollgate.approval.id"] = approval.id
        exchange.attributes["tollgate.approval.status"] = state
        exchange.evidence.approval = approval.for_record(via)

    def _readable(self, target: Target, headers: dict[str, str], raw: bytes) -> bytes | None:
        """The response body decompressed; None when the target lets an encoding tollgate
        cannot read pass unread (`inspect.unreadable_encoding: pass`)."""
        try:
            return decoded_content(headers, raw, target.inspect.max_body_bytes)
        except BadInput as bad:
            if bad.error == "unreadable_encoding" and target.inspect.unreadable_encoding == "pass":
                return None
            raise

    def _masked_prompt(self, exchange: Exchange, body: ProcessingRequest) -> bytes | None:
        """An LLM target's request body masked as the policy asks (None: unchanged)."""
        if exchange.target.protocol != "llm" or exchange.mask is None:
            return None
        content_type = exchange.request["headers"].get("content-type", "")
        masked, counts = mask_body(
            self._masker, exchange.mask, content_type, body.request_body.body
        )
        if not counts:
            return None
        _record_masking(exchange, counts, "request")
        return masked

    async def _masked_stream(
        self, exchange: Exchange, headers: dict[str, str],
        messages: AsyncIterator[ProcessingRequest],
    ) -> AsyncIterator[ProcessingResponse]:
        """A streamed response, masked chunk by chunk with a held-back tail (so a secret
        cut between chunks is still caught), released as it comes: no whole-stream buffer."""
        spec = exchange.mask
        readable = content_encoding(headers) == "identity"
        if spec is None or (
            not readable and exchange.target.inspect.unreadable_encoding == "pass"
        ):
            yield wire.PASS_RESPONSE_BODY  # nothing to mask: it flows past tollgate
            return
        if not readable:
            raise BadInput(
                502, "unreadable_encoding",
                "a compressed event stream cannot be masked as it flows; it is refused",
            )
        yield wire.stream_response_headers()
        stream = ByteStream(self._masker, spec, events=True)
        delivered = self._delivering(exchange)
        ends = trailers = False
        while not ends:
            data, ends, trailers = await _body_chunk(messages)
            released = stream.feed(data)
            delivered.add(released)
            if ends:
                rest = stream.finish()
                delivered.add(rest)
                released += rest
                _record_masking(exchange, stream.counts)
                for answer in _last_chunk(released, trailers):
                    yield answer
            else:
                yield wire.stream_response_chunk(released, False)


    async def _model_answer(
        self, exchange: Exchange, headers: dict[str, str], ends: bool,
        messages: AsyncIterator[ProcessingRequest],
    ) -> AsyncIterator[ProcessingResponse]:
        """An LLM's answer, read chunk by chunk while Envoy waits for nothing
        (FULL_DUPLEX_STREAMED, asked for with the request): the response headers are
        held until tollgate knows whether the model asks for a tool call, so a refused
        call is replaced by the deny answer before the agent sees a byte of it.

        A whole answer is read whatever its Content-Type says (a client reads JSON
        from `text/plain`, events from `application/json`). A streamed answer's text
        flows as it comes (masked); from the first tool-call delta on, events are held
        until the answer is complete and decided on. A refusal after text has flowed
        ends the stream with an error event, which OpenAI-compatible clients raise as
        an error.
        """
        assert isinstance(exchange.interpreter, Llm)
        llm, spec = exchange.interpreter, exchange.mask
        if not is_event_stream(headers):
            raw, trailers = (b"", False) if ends else await _whole_body(
                messages, exchange.target.inspect)
            content = self._readable(exchange.target, headers, raw)
            # Read whatever its declared type, as clients read it; a body in an encoding
            # tollgate cannot read is read as the bytes it is (an error, refused to agents).
            meaning, body = await _off_loop(
                len(raw), llm.answer, exchange.meaning, raw if content is None else content)
            if body is None and content is not None:
                body = decode_response_body(headers, content)
            exchange.response["body"] = body  # type: ignore[index]
            exchange.interpret(meaning)
            decision = await self._decide(exchange, "response")
            out = raw if content is None else content
            if decision.action != "allow":
                yield self._refused(exchange, decision, out)
                return
            if content is not None and spec is not None:
                out, counts = mask_body(
                    self._masker, spec, headers.get("content-type", ""), content
                )
                _record_masking(exchange, counts)
            if ends:
                yield wire.CONTINUE_RESPONSE_HEADERS
                return
            self._delivered(exchange, out)
            yield wire.streamed_response_headers(len(out)) if out is not raw else (
                wire.CONTINUE_RESPONSE_HEADERS)
            for answer in _last_chunk(out, trailers):
                yield answer
            return

        if content_encoding(headers) != "identity":
            raise BadInput(
                502, "unreadable_encoding",
                "a compressed event stream cannot be read as it flows; it is refused",
            )
        stream = llm.stream()
        masking = EventMasking(self._masker, spec) if spec is not None else None
        held: list[bytes] = []  # from the first tool-call delta on
        headers_sent = False
        trailers = False
        delivered = self._delivering(exchange)
        received = BodyCapture(self._record_limit)  # for the record, should it be refused
        while not ends:
            chunk, ends, trailers = await _body_chunk(messages)
            received.add(chunk)
            events = stream.feed(chunk)
            if ends:
                events += stream.finish()
            flowing = []
            for event in events:
                raw = masking.event(event.raw, event.payload) if masking else event.raw
                (held if held or event.tool_delta else flowing).append(raw)
            if masking is not None and ends:
                held.append(masking.finish())
            if flowing:
                if not headers_sent:
                    yield wire.streamed_response_headers(None)
                    headers_sent = True
                delivered.add(b"".join(flowing))
                yield wire.stream_response_chunk(b"".join(flowing), False)
        exchange.interpret(await _off_loop(received.size, llm.streamed, exchange.meaning,
                                           stream))
        decision = await self._decide(exchange, "response")
        if masking is not None:
            _record_masking(exchange, masking.counts)
        if decision.action != "allow":
            if not headers_sent:
                yield self._refused(exchange, decision, received)
                return
            exchange.attributes["tollgate.outcome"] = "stream_refused"
            exchange.evidence.upstream_body = received
            error = _error_event(exchange, decision)
            delivered.add(error)
            for answer in _last_chunk(error, trailers):
                yield answer
            return
        if not headers_sent:
            yield wire.streamed_response_headers(None)
        delivered.add(b"".join(held))
        for answer in _last_chunk(b"".join(held), trailers):
            yield answer


# Above this, a request's meaning is read on a worker thread: parsing 100 KiB of SQL
# takes tens to hundreds of ms, which must not stall every other exchange's messages.
_INLINE_SIZE = 16 * 1024
_T = TypeVar("_T")


async def _off_loop(size: int, read: Callable[..., _T], *args: Any) -> _T:
    """`read(*args)`, on a worker thread when it reads more than _INLINE_SIZE bytes: a
    model's answer of a megabyte of command lines can take over a second to read."""
    if size <= _INLINE_SIZE:
        return read(*args)
    return await asyncio.to_thread(read, *args)


async def _interpreted(interpreter: Interpreter, request: dict[str, Any], size: int) -> Any:
    """The request's meaning; `size` is its body and path (the query included) in bytes."""
    return await _off_loop(size, interpreter.request, request)


def _approved(held: Decision, approval: Approval) -> Decision:
    """A hold its approval lets through: an allow, masked as the policy asked."""
    return replace(held, action="allow", reasons=(f"approved by {approval.decided_by}",
                                                  *held.reasons),
                   rules=(*held.rules, APPROVED))


def _approval_refusal(approval: Approval, approve_url: str | None) -> BadInput:
    """A held request's refusal: which approval, where it stands, where to decide it.
    A retry of the same request passes once it is approved."""
    state = approval.state()
    if state == "denied":
        message = (f"approval {approval.id} was denied by {approval.decided_by}"
                   + (f": {approval.reason}" if approval.reason else ""))
    elif state == "pending":
        message = (f"this request needs an approval by {', '.join(approval.approvers)}; "
                   f"approval {approval.id} is pending: retry once it is approved")
    elif state == "used":
        message = (f"approval {approval.id} let another request like this one through, "
                   "once; a retry asks anew")
    else:
        message = f"approval {approval.id} expired undecided; a retry asks anew"
    details = {"approval_id": approval.id, "status": state, "approve_url": approve_url,
               "reasons": list(approval.reasons), "rules": list(approval.rules)}
    if state == "denied":
        return BadInput(403, "approval_denied", message, details=details)
    return BadInput(403, "approval_required", message, details=details, action="hold")


def _decision_evidence(evidence: Evidence, clock: float) -> Evidence:
    """A strict target's decision record: the exchange so far, as it stands now."""
    return replace(
        evidence, kind="decision", decisions=list(evidence.decisions),
        masked=Counter(evidence.masked), outcome={},
        duration_ms=(time.perf_counter() - clock) * 1000,
    )


def _error_event(exchange: Exchange, decision: Decision) -> bytes:
    """A refusal inside an event stream already under way: an event carrying the error,
    which OpenAI-compatible clients raise as an error; no `[DONE]` follows."""
    return f"data: {jsonenc.dumps(Llm.refusal(_denial(exchange, decision), 200))}\n\n".encode()


async def _body_chunk(
    messages: AsyncIterator[ProcessingRequest],
) -> tuple[bytes, bool, bool]:
    """The next piece of a response streamed to tollgate (FULL_DUPLEX_STREAMED), whether
    it is the last, and whether trailers ended the body (they then follow it)."""
    message = await anext(messages, None)
    if message is None:
        raise _StreamEnded
    kind = message.WhichOneof("request")
    if kind == "response_body":
        return message.response_body.body, message.response_body.end_of_stream, False
    if kind == "response_trailers":
        return b"", True, True
    raise _OutOfOrder(f"expected response_body from Envoy, got {kind}")


def _last_chunk(data: bytes, trailers: bool) -> tuple[ProcessingResponse, ...]:
    """The end of a streamed body: its last chunk, then, when trailers ended it, the
    answer to them (they pass unchanged), keeping the headers-body-trailers order."""
    if trailers:
        return wire.stream_response_chunk(data, False), wire.CONTINUE_RESPONSE_TRAILERS
    return (wire.stream_response_chunk(data, True),)


async def _whole_body(
    messages: AsyncIterator[ProcessingRequest], inspect: Inspect,
) -> tuple[bytes, bool]:
    """A streamed response body gathered whole, at most `inspect.max_body_bytes`; and
    whether trailers ended it."""
    parts: list[bytes] = []
    size, ends, trailers = 0, False, False
    while not ends:
        chunk, ends, trailers = await _body_chunk(messages)
        size += len(chunk)
        if size > inspect.max_body_bytes:
            raise BadInput(
                502, "response_too_large",
                f"the upstream's answer exceeds this target's limit of {inspect.max_body_bytes} "
                "bytes",
            )
        parts.append(chunk)
    return b"".join(parts), trailers


def _unmaskable(exchange: Exchange) -> str:
    if exchange.response_mode != "none" or exchange.target.inspect.response != "body":
        return (f"masking requested, but target {exchange.target.name} does not inspect "
                "response bodies (inspect.response: body)")
    return "masking requested, but an upgraded connection (WebSocket, SPDY) cannot be masked"


def _record_masking(exchange: Exchange, counts: Counter[str], body: str = "response") -> None:
    """The evidence: how many values each detector masked in which body, as a span event,
    in the span's totals, and in the record."""
    if counts:
        exchange.span.add_event("tollgate.masking", {
            "tollgate.masking.body": body, "tollgate.masked_values": sum(counts.values()),
            **{f"tollgate.masked.{detector}": count for detector, count in counts.items()},
        })
    for detector, count in counts.items():
        exchange.masked[detector] += count
    exchange.attributes["tollgate.masked_values"] = sum(exchange.masked.values())
    for detector, count in exchange.masked.items():
        exchange.attributes[f"tollgate.masked.{detector}"] = count


async def _expect(messages: AsyncIterator[ProcessingRequest], phase: str) -> ProcessingRequest:
    message = await anext(messages, None)
    if message is None:
        raise _StreamEnded
    got = message.WhichOneof("request")
    if got != phase:
        raise _OutOfOrder(f"expected {phase} from Envoy, got {got}")
    return message


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


def _denial(exchange: Exchange, decision: Decision) -> dict[str, Any]:
    return {
        "error": "denied",
        "reasons": list(decision.reasons),
        "rules": list(decision.rules),
        "trace_id": exchange.trace_id,
    }


def _deny(exchange: Exchange, decision: Decision) -> ProcessingResponse:
    exchange.attributes["http.response.status_code"] = decision.status
    body = _denial(exchange, decision)
    shape = getattr(exchange.interpreter, "refusal", None)
    return wire.immediate(
        decision.status, shape(body, decision.status) if shape else body, exchange.trace_id,
        "denied",
    )


def _refuse(
    outcome: dict[str, Any], trace_id: str, bad: BadInput, shape: Refusal | None = None
) -> ProcessingResponse:
    outcome.update({
        "http.response.status_code": bad.status,
        "tollgate.decision.action": bad.action,
        "tollgate.refusal": bad.error,
    })
    body = {"error": bad.error, "message": bad.message, **bad.details, "trace_id": trace_id}
    return wire.immediate(
        bad.status, shape(body, bad.status) if shape else body, trace_id, bad.error
    )
