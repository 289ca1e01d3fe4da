"""Evidence on its way to the writer process: one pickle of plain values.

The request path pays for this encoding, so it is the cheapest that keeps the evidence
exactly (measured against orjson and msgpack, README "Performance"): pickle writes the
values as they are — tuples stay tuples, integers beyond 64 bits pass, a decision's
reading that is the exchange's own reading stays the same object — so the record built
from them is the one the in-process writer built. Objects are sent as tuples of their
fields (pickling an object costs a few microseconds more each): a target as what its
record keeps (`RecordedTarget`, not its configuration), a body as its head, size and
SHA-256.

Evidence that cannot be pickled (a bug: an object no reading should hold) goes as what
is certain about it, and is recorded as unbuildable: submitting never fails.
"""

from __future__ import annotations

import pickle
from collections import Counter
from typing import Any

from extproc.recording.record import BodyCapture, Decided, Evidence, RecordedTarget, received

# What an evidence that cannot be pickled still says, for `unbuildable`: all of it that
# is certain, else its ids alone (strings and a float: they always pickle).
_CERTAIN = ("kind", "started", "trace_id", "span_id", "headers", "identity", "outcome")
_IDS = ("kind", "started", "trace_id", "span_id")


def encode(evidence: Evidence) -> bytes:
    """The evidence as the writer process will rebuild it (`decode`)."""
    e = evidence
    values = (
        e.kind, e.started, e.trace_id, e.span_id, e.headers, e.identity, _target(e),
        e.request, _capture(e.request_body), e.meaning_key, e.meaning,
        [_decided(d) for d in e.decisions],
        e.approval, e.response, e.response_type, _capture(e.response_body), e.delivered_type,
        _capture(e.upstream_body), e.response_read, e.response_masked, e.outcome,
        dict(e.masked), e.upstream_ms, e.duration_ms, e.destination, e.deleted, e.span,
    )
    try:
        return pickle.dumps((values, None), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # whatever it is, the exchange is recorded
        error = f"{type(exc).__name__}: {exc}"
    try:
        return _part(evidence, _CERTAIN, error)
    except Exception:  # headers or claims that do not pickle either
        return _part(evidence, _IDS, error)


def decode(data: bytes | memoryview) -> tuple[Evidence, str | None]:
    """The evidence, and why it could not be sent whole (None when it was)."""
    values, error = pickle.loads(data)
    if error is not None:
        return Evidence(**{"headers": {}, **values}), error
    (kind, started, trace_id, span_id, headers, identity, target, request, request_body,
     meaning_key, meaning, decisions, approval, response, response_type, response_body,
     delivered_type, upstream_body, response_read, response_masked, outcome, masked,
     upstream_ms, duration_ms, destination, deleted, span) = values
    return Evidence(
        kind, started, trace_id, span_id, headers, identity,
        target and RecordedTarget(*target), request, _captured(request_body), meaning_key,
        meaning, [Decided(*d) if type(d) is tuple else d for d in decisions], approval,
        response, response_type, _captured(response_body), delivered_type,
        _captured(upstream_body), response_read, response_masked, outcome, Counter(masked),
        upstream_ms, duration_ms, destination, deleted, span,
    ), None


def _target(evidence: Evidence) -> tuple[str, str, str, dict[str, str]] | None:
    """What the record keeps of the target (not its configuration)."""
    t = evidence.target
    return None if t is None else (t.name, t.protocol, t.environment, t.labels)


def _decided(decided: Decided) -> Any:
    """A decision's fields, in order (anything else as it is: a bug the writer records)."""
    d = decided
    return (d.phase, d.action, d.reasons, d.rules, d.status, d.revision, d.duration_us,
            d.approvers, d.hold_seconds, d.meaning) if type(d) is Decided else d


def _capture(capture: BodyCapture | None) -> tuple[int, int, bytes, str] | None:
    return None if capture is None else (capture.limit, capture.size, capture.head,
                                         capture.sha256)


def _captured(values: tuple[int, int, bytes, str] | None) -> BodyCapture | None:
    return None if values is None else received(*values)


def _part(evidence: Evidence, names: tuple[str, ...], error: str) -> bytes:
    target = _target(evidence)
    values = {n: getattr(evidence, n) for n in names}
    values["target"] = target and RecordedTarget(*target)
    return pickle.dumps((values, error), pickle.HIGHEST_PROTOCOL)
