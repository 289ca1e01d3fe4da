"""The ext_proc servicer: one gRPC stream is one exchange, read top to bottom.

    request headers ─► [request body] ─► decide ─► [response headers] ─► [response body]

Envoy is asked only for the phases the target needs (`mode_override` on the
first answer), and the stream ends as soon as nothing more is needed: a GET to
a target that does not inspect responses costs exactly one message each way.
Every refusal is a JSON answer carrying the trace id; anything tollgate cannot
decide fails closed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse
from opentelemetry.trace import Span, Status, StatusCode

from extproc import envoy_wire as wire
from extproc.config import Config, Target
from extproc.http_message import (
    BadInput,
    check_declared_length,
    collect_headers,
    decode_request_body,
    decode_response_body,
    policy_headers,
    request_view,
)
from extproc.policy import Decision, PolicyEngine, PolicyError
from extproc.telemetry import Telemetry, trace_id_of

log = logging.getLogger("tollgate.exchange")


class _StreamEnded(Exception):
    """Envoy closed the stream before the phase we waited for (the client went away)."""


class _OutOfOrder(Exception):
    """Envoy sent a phase the exchange did not ask for."""


@dataclass(slots=True)
class Exchange:
    """What one exchange has shown so far; becomes the policy input."""

    target: Target
    span: Span
    trace_id: str
    request: dict[str, Any]
    response: dict[str, Any] | None = None
    decisions: list[Decision] = field(default_factory=list)

    def policy_input(self, phase: str) -> str:
        return json.dumps(
            {
                "phase": phase,
                # Verified identity arrives with Envoy's jwt_authn (not wired yet).
                "identity": {"authenticated": False},
                "target": {
                    "name": self.target.name,
                    "protocol": self.target.protocol,
                    "environment": self.target.environment,
                    "labels": self.target.labels,
                },
                "request": self.request,
                "response": self.response,
                "sql": None,
                "k8s": None,
                "llm": None,
                "approval": None,
            },
            separators=(",", ":"),
        )


class ExtProcServicer(ext_proc_grpc.ExternalProcessorServicer):
    def __init__(self, config: Config, engine: PolicyEngine, telemetry: Telemetry) -> None:
        self._config = config
        self._engine = engine
        self._telemetry = telemetry
        self._sensitive = config.policy.sensitive_headers
        self._by_route = {t.match.route: t for t in config.targets if t.match.route}
        self._by_cluster = {t.match.cluster: t for t in config.targets if t.match.cluster}

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

        # 1. Request headers: find the target, open the span.
        headers = collect_headers(wire.header_pairs(first.request_headers))
        method = headers.get(":method", "")
        route = wire.attribute(first, "xds.route_name")
        cluster = wire.attribute(first, "xds.cluster_name")
        target = self._by_route.get(route) or self._by_cluster.get(cluster)  # type: ignore[arg-type]
        span = self._telemetry.start_exchange(method, target.name if target else "unknown", headers)
        trace_id = trace_id_of(span)
        _set_request_attributes(span, headers)
        try:
            if target is None:
                raise BadInput(
                    404, "unknown_target",
                    f"no target matches route {route!r} or cluster {cluster!r}",
                )
            span.set_attribute("tollgate.target", target.name)
            exchange = Exchange(target, span, trace_id, request_view(headers, self._sensitive))
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
                yield _deny(span, trace_id, decision)
                return
            yield wire.CONTINUE_REQUEST_BODY if wants_body else wire.continue_request_headers(
                trace_id, mode
            )
            if target.inspect.response == "none":
                return

            # 3. Response headers, then 4. the response body, decided on again.
            reply = await _expect(messages, "response_headers")
            response_headers = collect_headers(wire.header_pairs(reply.response_headers))
            status = int(response_headers.get(":status", "0") or 0)
            span.set_attribute("http.response.status_code", status)
            exchange.response = {
                "status": status,
                "headers": policy_headers(response_headers, self._sensitive),
                "body": None,
            }
            wants_response_body = (
                target.inspect.response == "body" and not reply.response_headers.end_of_stream
            )
            if wants_response_body:
                yield wire.CONTINUE_RESPONSE_HEADERS
                body = await _expect(messages, "response_body")
                exchange.response["body"] = decode_response_body(
                    response_headers, body.response_body.body
                )
            decision = await self._decide(exchange, "response")
            if decision.action != "allow":
                yield _deny(span, trace_id, decision)
                return
            yield wire.CONTINUE_RESPONSE_BODY if wants_response_body else (
                wire.CONTINUE_RESPONSE_HEADERS
            )
        except BadInput as bad:
            yield _refuse(span, trace_id, bad)
        except _StreamEnded:
            # The client went away, or Envoy refused the body itself (over its buffer limit).
            span.set_attribute("tollgate.outcome", "stream_ended")
        except _OutOfOrder as exc:
            log.error("trace %s: %s", trace_id, exc)
            yield _refuse(span, trace_id, BadInput(500, "internal_error", str(exc)))
        except Exception:
            log.exception("trace %s: exchange failed", trace_id)
            span.set_status(Status(StatusCode.ERROR, "exchange failed"))
            yield _refuse(span, trace_id, BadInput(
                500, "internal_error", "tollgate could not process this request"
            ))
        finally:
            span.end()

    async def _decide(self, exchange: Exchange, phase: str) -> Decision:
        """Ask the policy; an engine that cannot answer denies, unless the target fails open."""
        started = time.perf_counter()
        try:
            decision = await self._engine.decide(exchange.policy_input(phase))
            cause = None
        except PolicyError as exc:
            cause = str(exc)
            fail_open = exchange.target.fail_mode == "open"
            log.error(
                "trace %s: policy error on target %s (%s): %s",
                exchange.trace_id, exchange.target.name,
                "failing open" if fail_open else "refused", cause,
            )
            decision = Decision(
                action="allow" if fail_open else "deny",
                reasons=("policy error",),
                rules=("tollgate.policy_error",),
                status=403,
            )
            exchange.span.set_attribute("tollgate.policy.error", cause)
            if fail_open:
                exchange.span.set_attribute("tollgate.fail_open", True)
        if decision.action == "allow" and decision.masks_anything:
            # Masking is not built yet: letting the data through would leak what
            # the policy asked to hide.
            decision = Decision(
                action="deny",
                reasons=("masking requested but not available",),
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
        exchange.span.set_attributes(
            {
                "tollgate.decision.action": decision.action,
                "tollgate.decision.rules": decision.rules,
            }
        )
        return decision


async def _expect(messages: AsyncIterator[ProcessingRequest], phase: str) -> ProcessingRequest:
    message = await anext(messages, None)
    if message is None:
        raise _StreamEnded
    got = message.WhichOneof("request")
    if got != phase:
        raise _OutOfOrder(f"expected {phase} from Envoy, got {got}")
    return message


def _set_request_attributes(span: Span, headers: dict[str, str]) -> None:
    path = headers.get(":path", "")
    span.set_attributes(
        {
            "http.request.method": headers.get(":method", ""),
            "url.path": path.partition("?")[0],
            "url.scheme": headers.get(":scheme", ""),
            "server.address": headers.get(":authority", ""),
            "user_agent.original": headers.get("user-agent", ""),
            # Envoy's request id: what joins Envoy's own refusals (its 413) to this span.
            "tollgate.request_id": headers.get("x-request-id", ""),
        }
    )


def _deny(span: Span, trace_id: str, decision: Decision) -> ProcessingResponse:
    span.set_attribute("http.response.status_code", decision.status)
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


def _refuse(span: Span, trace_id: str, bad: BadInput) -> ProcessingResponse:
    span.set_attributes(
        {
            "http.response.status_code": bad.status,
            "tollgate.decision.action": "deny",
            "tollgate.refusal": bad.error,
        }
    )
    return wire.immediate(
        bad.status, {"error": bad.error, "message": bad.message, "trace_id": trace_id}, trace_id
    )
