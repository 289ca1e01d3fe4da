"""The ext_proc servicer: one gRPC stream is one exchange, read top to bottom.

    request headers ─► [request body] ─► decide ─► [response headers] ─► [response body]

Envoy is asked only for the phases the target needs (`mode_override` on the
first answer), and the stream ends as soon as nothing more is needed: a GET to
a target that does not inspect responses costs exactly one message each way.
Every refusal is a JSON answer carrying the trace id; anything tollgate cannot
decide fails closed.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse
from opentelemetry.trace import Span, Status, StatusCode

from extproc import envoy_wire as wire
from extproc.body_masking import ByteStream, MaskError, is_event_stream, mask_body, spec_of
from extproc.config import Config, Target
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
from extproc.identity import identity_of, span_attributes
from extproc.masking import Masker, MaskSpec
from extproc.policy import Decision, PolicyEngine, PolicyError
from extproc.policy.decision import POLICY_ERROR
from extproc.policy.input import InputEncoder
from extproc.telemetry import Telemetry, trace_id_of

log = logging.getLogger("tollgate.exchange")


class _StreamEnded(Exception):
    """Envoy closed the stream before the phase we waited for (the client went away)."""


class _OutOfOrder(Exception):
    """Envoy sent a phase the exchange did not ask for."""


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
    response: dict[str, Any] | None = None
    decisions: list[Decision] = field(default_factory=list)
    # What the decisions so far ask to mask, merged (None: nothing).
    mask: MaskSpec | None = None
    masked: Counter[str] = field(default_factory=Counter)

    def policy_input(self, phase: str) -> str:
        return self.encoder.encode(phase, self.identity, self.request, self.response)


class ExtProcServicer(ext_proc_grpc.ExternalProcessorServicer):
    def __init__(
        self, config: Config, engine: PolicyEngine, telemetry: Telemetry,
        credentials: CredentialStore, masker: Masker,
    ) -> None:
        self._engine = engine
        self._masker = masker
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
        self._encoders = {t.name: InputEncoder(t) for t in config.targets}

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
        identity = identity_of(wire.jwt_claims(first, self._identity.payload_key), self._identity)
        span = self._telemetry.start_exchange(
            f"tollgate {headers.get(':method', '')} {target_name}", headers,
            {**_request_attributes(headers, target_name), **span_attributes(identity)},
        )
        trace_id = trace_id_of(span)
        outcome: dict[str, Any] = {}
        try:
            if target is None:
                raise BadInput(
                    404, "unknown_target",
                    f"no target matches route {route!r} or cluster {cluster!r}",
                )
            if not identity["authenticated"] and not target.anonymous:
                # Envoy's jwt_authn refuses these first; reaching here means a route
                # without the filter's requirement: refuse rather than trust it.
                raise BadInput(
                    401, "unauthenticated",
                    f"target {target.name} needs a verified token (Authorization: Bearer ...)",
                )
            exchange = Exchange(
                target, self._encoders[target.name], span, trace_id, identity,
                request_view(headers, self._sensitive), outcome,
            )
            has_body = not first.request_headers.end_of_stream
            wants_body = target.inspect.request_body and has_body
            mode = wire.processing_mode(
                target.inspect.request_body if has_body else None, target.inspect.response
            )

            # 2. Request body, when the target inspects it and the request has one.
            if wants_body:
                check_declared_length(headers, target.inspect.max_body_bytes)
                yield wire.continue_request_headers(trace_id, mode)
                body = await _expect(messages, "request_body")
                exchange.request["body"] = decode_request_body(headers, body.request_body.body)

            # The request decision.
            decision = await self._decide(exchange, "request")
            if decision.action != "allow":
                yield _deny(outcome, trace_id, decision)
                return
            # Allowed: the upstream gets the target's credential, never the client's,
            # and an LLM's prompt is masked when the policy asks.
            injection = self._credentials.injection(target.name)
            reads_response = target.inspect.response == "body"
            if wants_body:
                yield wire.continue_request_body(
                    injection, self._masked_prompt(exchange, body), reads_response
                )
            else:
                yield wire.continue_request_headers(trace_id, mode, injection, reads_response)
            if target.inspect.response == "none":
                return

            # 3. Response headers, then 4. the response body, decided on again, masked.
            reply = await _expect(messages, "response_headers")
            response_headers = wire.headers_of(reply.response_headers)
            status = int(response_headers.get(":status", "0") or 0)
            outcome["http.response.status_code"] = status
            exchange.response = {
                "status": status,
                "headers": policy_headers(response_headers, self._sensitive),
                "body": None,
            }
            reads_body = (
                target.inspect.response == "body" and not reply.response_headers.end_of_stream
            )
            if reads_body and is_event_stream(response_headers):
                # A stream (an LLM's completion): decided on its headers, masked as it flows.
                decision = await self._decide(exchange, "response")
                if decision.action != "allow":
                    yield _deny(outcome, trace_id, decision)
                    return
                async for answer in self._masked_stream(exchange, response_headers, messages):
                    yield answer
                return
            content = None
            if reads_body:
                yield wire.CONTINUE_RESPONSE_HEADERS
                raw = (await _expect(messages, "response_body")).response_body.body
                content = self._readable(target, response_headers, raw)
                if content is not None:
                    exchange.response["body"] = decode_response_body(response_headers, content)
            decision = await self._decide(exchange, "response")
            if decision.action != "allow":
                yield _deny(outcome, trace_id, decision)
                return
            if content is not None and exchange.mask is not None:
                masked, counts = mask_body(
                    self._masker, exchange.mask, response_headers.get("content-type", ""), content
                )
                _record_masking(exchange, counts)
                yield wire.replace_response_body(masked)
            elif reads_body:
                yield wire.CONTINUE_RESPONSE_BODY
            else:
                yield wire.CONTINUE_RESPONSE_HEADERS
        except BadInput as bad:
            yield _refuse(outcome, trace_id, bad)
        except _StreamEnded:
            # The client went away, or Envoy refused the body itself (over its buffer limit).
            outcome["tollgate.outcome"] = "stream_ended"
        except _OutOfOrder as exc:
            log.error("trace %s: %s", trace_id, exc)
            yield _refuse(outcome, trace_id, BadInput(500, "internal_error", str(exc)))
        except Exception:
            log.exception("trace %s: exchange failed", trace_id)
            span.set_status(Status(StatusCode.ERROR, "exchange failed"))
            yield _refuse(outcome, trace_id, BadInput(
                500, "internal_error", "tollgate could not process this request"
            ))
        finally:
            span.set_attributes(outcome)
            span.end()

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
        if (decision.action == "allow" and decision.masks_anything
                and exchange.target.inspect.response != "body"):
            # Nothing would be masked: letting the data through would leak what the
            # policy asked to hide.
            decision = Decision(
                action="deny",
                reasons=(f"masking requested, but target {exchange.target.name} does not "
                         "inspect response bodies (inspect.response: body)",),
                rules=(*decision.rules, "tollgate.mask_unavailable"),
            )
        elif decision.action == "hold":
            # Holding for approval is not built yet; until it is, a hold refuses.
            decision = Decision(
                action="deny",
                reasons=("approval required", *decision.reasons),
                rules=decision.rules,
                status=decision.status,
            )
        exchange.decisions.append(decision)
        exchange.mask = spec_of(d.mask for d in exchange.decisions)
        exchange.span.add_event(
            "tollgate.decision",
            {
                "tollgate.phase": phase,
                "tollgate.decision.action": decision.action,
                "tollgate.decision.rules": decision.rules,
                "tollgate.decision.reasons": decision.reasons,
                "tollgate.policy.revision": self._engine.revision,
                "tollgate.policy.duration_us": int((time.perf_counter() - started) * 1e6),
            },
        )
        exchange.attributes["tollgate.decision.action"] = decision.action
        exchange.attributes["tollgate.decision.rules"] = decision.rules
        return decision

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
        _record_masking(exchange, counts)
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
        while True:
            chunk = (await _expect(messages, "response_body")).response_body
            released = stream.feed(chunk.body)
            if chunk.end_of_stream:
                released += stream.finish()
            yield wire.stream_response_chunk(released, chunk.end_of_stream)
            if chunk.end_of_stream:
                break
        _record_masking(exchange, stream.counts)


def _record_masking(exchange: Exchange, counts: Counter[str]) -> None:
    """The evidence: how many values each detector masked, on the span (and the record)."""
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


def _deny(outcome: dict[str, Any], trace_id: str, decision: Decision) -> ProcessingResponse:
    outcome["http.response.status_code"] = decision.status
    return wire.immediate(
        decision.status,
        {
            "error": "denied",
            "reasons": list(decision.reasons),
            "rules": list(decision.rules),
            "trace_id": trace_id,
        },
        trace_id,
    )


def _refuse(outcome: dict[str, Any], trace_id: str, bad: BadInput) -> ProcessingResponse:
    outcome.update({
        "http.response.status_code": bad.status,
        "tollgate.decision.action": "deny",
        "tollgate.refusal": bad.error,
    })
    return wire.immediate(
        bad.status, {"error": bad.error, "message": bad.message, "trace_id": trace_id}, trace_id
    )
