"""What one exchange leaves in the record, built off the request path.

The exchange (exchange/state.py) gathers `Evidence` as it goes (references to what it
already holds, and the bodies as they crossed the wire); the writer process turns it
into the record's `content` here. Everything that could carry personal data or secrets
— bodies, query values, headers, what the interpreter read, the policy's reasons — is
masked with every detector first, whatever the policy let through: the record never
holds what masking would hide. Bodies longer than `max_body_bytes` are kept cut, with
the size and SHA-256 of the whole as it crossed the wire.
"""

from __future__ import annotations

import datetime
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from extproc.codecs.message import Request, Response, is_json, media_type, parse_json
from extproc.config import Target
from extproc.identity import Who
from extproc.interpret.llm import ChatStream
from extproc.interpret.what import what_of
from extproc.masking import ALL_DETECTORS, Masker, MaskSpec
from extproc.masking.body import EventMasking
from extproc.masking.record_mask import RECORD_MASK

# What the record still masks in a body masked with a mask that `covers_record`: a model's
# tool-call arguments, which the gateway may leave readable for the agent to act on
# (MaskSpec.actions) and the record does not.
_ACTIONS_ONLY = MaskSpec(detectors=frozenset(), fields=frozenset(), actions=ALL_DETECTORS,
                         keep_masked=True)


class BodyCapture:
    """A body as it crossed the wire, chunk by chunk: its first `limit` bytes, and the
    size and SHA-256 of all of it."""

    __slots__ = ("_digest", "head", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.limit, self.size, self.head = limit, 0, b""
        self._digest = hashlib.sha256()

    @classmethod
    def of(cls, data: bytes, limit: int) -> BodyCapture:
        capture = cls(limit)
        capture.add(data)
        return capture

    def add(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        self._digest.update(data)
        if len(self.head) < self.limit:
            self.head += data[: self.limit - len(self.head)]

    @property
    def truncated(self) -> bool:
        return self.size > len(self.head)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class _Digested:
    """A SHA-256 computed before the capture crossed to the writer process."""

    __slots__ = ("_hex",)

    def __init__(self, hex_digest: str) -> None:
        self._hex = hex_digest

    def hexdigest(self) -> str:
        return self._hex


def received(limit: int, size: int, head: bytes, sha256: str) -> BodyCapture:
    """A capture as the writer process gets it: what the record needs of it (the hash
    object itself does not cross processes)."""
    capture = BodyCapture.__new__(BodyCapture)
    capture.limit, capture.size, capture.head = limit, size, head
    capture._digest = _Digested(sha256)  # type: ignore[assignment]
    return capture


class RecordedTarget(NamedTuple):
    """What the record keeps of a target: the writer process gets this, not the
    target's whole configuration (its credential settings included)."""

    name: str
    protocol: str
    environment: str
    labels: dict[str, str]


@dataclass(slots=True)
class Decided:
    """One decision of the exchange, as the record keeps it."""

    phase: str
    action: str
    reasons: tuple[str, ...]
    rules: tuple[str, ...]
    status: int
    revision: str
    duration_us: int
    approvers: tuple[str, ...] = ()
    hold_seconds: int | None = None
    # What the interpreter had read when this decision was made (an LLM's answer adds the
    # model's tool calls to the reading the request decision saw).
    meaning: Any = None


@dataclass(slots=True)
class Evidence:
    """What the exchange pipeline saw of one exchange, for its record."""

    kind: str  # "exchange", or "decision" (a strict target's record before it proceeds)
    started: float  # time.time() at the first message
    trace_id: str
    span_id: str
    headers: dict[str, str]  # Envoy's request headers, pseudo-headers included
    identity: Who | None = None
    target: Target | RecordedTarget | None = None
    request: Request | None = None  # secrets already redacted
    request_body: BodyCapture | None = None  # as forwarded upstream
    meaning_key: str | None = None
    meaning: Any = None
    decisions: list[Decided] = field(default_factory=list)
    approval: dict[str, Any] | None = None
    response: Response | None = None  # without its body
    response_type: str = ""  # the upstream's content-type
    response_body: BodyCapture | None = None  # as delivered to the client
    # The client's body's content-type, when tollgate answered in the upstream's place.
    delivered_type: str | None = None
    # The upstream's body as tollgate read it, when the client did not get it: a response
    # refused (for a stream, every event received, those held back included).
    upstream_body: BodyCapture | None = None
    response_read: bool = False  # tollgate saw the response body (else it passed unread)
    # The delivered body is masked already as the record's masking would mask it
    # (`covers_record`): the writer does not scan it a second time.
    response_masked: bool = False
    outcome: dict[str, Any] = field(default_factory=dict)  # the span's outcome attributes
    masked: Counter[str] = field(default_factory=Counter)
    upstream_ms: float | None = None
    duration_ms: float = 0.0
    # Through the egress proxy: where to (host:port), which binds an approval too.
    destination: str | None = None
    # A measured write that stood without an approval: the rows it deleted in each table
    # (exchange/effect.py's `deleted`), which the activity counts sum.
    deleted: dict[str, int] = field(default_factory=dict)
    # The exchange's span, ended (telemetry.SpanData): the writer exports it with the
    # record; None where no span is exported.
    span: Any = None


class Session(NamedTuple):
    """The agent run a record belongs to, and the rule that said so, first rule first:
    `header` (the agent's `x-session-id`), `mcp` (its MCP session), `token` (its token's
    `jti`) and `identity` (its `sub`), each with an idle gap (sessions.py), else `trace`."""

    id: str
    rule: str


# The record kinds an agent's token or identity groups (a tunnel's end is its CONNECT's
# exchange continued); the others (an approval, an alert, an access) are of an exchange,
# and join its session by its trace.
_GROUPED_KINDS = frozenset({"exchange", "decision", "tunnel"})
_SESSION_MOST = 128  # characters of a session id kept

# The outcome's detail (`tollgate.outcome`) of an exchange whose client went away before
# it ended: while it was decided or held, or before its answer reached it.
CLIENT_LEFT = "client_left"


def content_of(evidence: Evidence, masker: Masker,
               session: Session | None = None) -> dict[str, Any]:
    """The record's content: a JSON object whose canonical text is hashed in the chain."""
    (content,) = contents_of([evidence], masker, None if session is None else [session])
    if isinstance(content, Exception):
        raise content
    return content


def contents_of(evidences: list[Evidence], masker: Masker,
                sessions: Sequence[Session] | None = None) -> list[dict[str, Any] | Exception]:
    """Each evidence's record content, or why it could not be built; the contents are
    masked in one scan for all of them, each exactly as it would be alone. Each is in its
    session of `sessions` (by position; the writer resolves them, sessions.py), else in
    the one `session_of` finds.

    A scan has a fixed cost per detector whatever the text's size: a headers-only
    exchange's record alone masked in ~87 µs, fifty in one scan ~15 µs each. When the
    scan of the lot fails, each is masked alone, so that only the one at fault fails."""
    built: list[dict[str, Any] | Exception] = []
    for n, evidence in enumerate(evidences):
        try:
            built.append(_unmasked(evidence, masker,
                                   session_of(evidence) if sessions is None else sessions[n]))
        except Exception as exc:  # recorded as unbuildable by the writer
            built.append(exc)
    # Each built content with whether its delivered body is scanned again, by position.
    masking = [(i, (content, not evidence.response_masked))
               for i, (content, evidence) in enumerate(zip(built, evidences, strict=True))
               if not isinstance(content, Exception)]
    try:
        _mask(masker, [each for _, each in masking])
    except Exception:
        for i, each in masking:
            try:
                _mask(masker, [each])
            except Exception as exc:
                built[i] = exc
    return built


def _unmasked(evidence: Evidence, masker: Masker, session: Session) -> dict[str, Any]:
    headers = evidence.headers
    target = evidence.target
    request = evidence.request
    line = {"method": headers.get(":method", ""),
            "path": headers.get(":path", "").partition("?")[0],
            "query": request["query"] if request else {}}
    return {
        "kind": evidence.kind,
        # What the exchange does, in one line (extproc/interpret/what.py): every page,
        # listing and report shows this, masked with the rest.
        "what": what_of(line, evidence.meaning_key, evidence.meaning, evidence.destination),
        "trace_id": evidence.trace_id,
        "span_id": evidence.span_id,
        "request_id": headers.get("x-request-id", ""),
        "session_id": session.id,
        "session_rule": session.rule,
        "started_at": _timestamp(evidence.started),
        # Where the client connected from (what a copied token's investigation needs).
        "source": _source(evidence),
        # Where the egress proxy let it go (addresses are structure here, not data).
        "destination": _destination(evidence),
        "duration_ms": round(evidence.duration_ms, 3),
        "upstream_ms": None if evidence.upstream_ms is None else round(evidence.upstream_ms, 3),
        "identity": evidence.identity,
        "target": {
            "name": target.name, "protocol": target.protocol,
            "environment": target.environment, "labels": target.labels,
        } if target else None,
        "request": {
            "method": headers.get(":method", ""),
            "path": headers.get(":path", "").partition("?")[0],
            "query": request["query"] if request else {},
            "headers": request["headers"] if request else {},
            "body": _body(evidence.request_body, headers.get("content-type", "")),
        },
        "meaning": {evidence.meaning_key: evidence.meaning} if evidence.meaning_key else None,
        "decisions": [_decision(d, evidence) for d in evidence.decisions],
        "approval": evidence.approval,
        "response": _response(evidence, masker),
        "outcome": _outcome(evidence),
        "masked": dict(sorted(evidence.masked.items())),
    }


def _mask(masker: Masker, contents: list[tuple[dict[str, Any], bool]]) -> None:
    """Mask, in place and in one scan for all `contents`, every part of a record that
    could carry personal data or secrets: query values, headers, bodies, what the
    interpreter read, the policy's reasons (a parser's message can quote the request)
    and a policy error; of the response's body only its actions where its flag
    (`rescan_body`) is False (its data masked already as this would). Nothing changes
    unless all of it could be masked."""
    parts: list[list[tuple[dict[str, Any], str]]] = []
    actions: dict[str, Any] = {}  # record -> its delivered body, of which only actions
    for r, (content, rescan_body) in enumerate(contents):
        own = [(content["request"], "query"), (content["request"], "headers"),
               (content["outcome"], "policy_error")]
        if content["kind"] != "tunnel":
            # A tunnel's meaning is Envoy's numbers and its own destination and address
            # (kept in `destination` unmasked too): nothing of the bytes it carried.
            own += [(content, "meaning"), (content, "what")]
        for decision in content["decisions"]:
            own += [(decision, "reasons"), (decision, "meaning")]
        response = content["response"]
        if response is not None:
            own.append((response, "headers"))
        delivered = response and response["body"]
        if delivered is not None and not rescan_body and delivered.get("value") is not None:
            actions[str(r)] = delivered["value"]
            delivered = None
        for holder in (content["request"]["body"], delivered,
                       response and response["upstream_body"]):
            if holder is not None:
                own.append((holder, "value"))
        parts.append(own)
    # Each record's parts under its own key, as one record's are when masked alone: a
    # value's key is its scan's context, and no context reaches across values.
    found = {str(r): {str(i): holder[key] for i, (holder, key) in enumerate(own)
                      if holder.get(key) is not None} for r, own in enumerate(parts)}
    masked, _ = masker.mask_json(found, RECORD_MASK)
    masked_actions = masker.mask_json(actions, _ACTIONS_ONLY)[0] if actions else {}
    for r, own in enumerate(parts):
        mine = masked[str(r)]
        for i, (holder, key) in enumerate(own):
            if str(i) in mine:
                holder[key] = mine[str(i)]
        if str(r) in masked_actions:
            contents[r][0]["response"]["body"]["value"] = masked_actions[str(r)]


def unbuildable(evidence: Evidence, error: Exception,
                session: Session | None = None) -> dict[str, Any]:
    """The record of an exchange whose full record could not be built (a bug): what is
    certain about it, and why the rest is missing. Nothing it held is in it."""
    session = session or session_of(evidence)
    return {
        "kind": evidence.kind, "trace_id": evidence.trace_id, "span_id": evidence.span_id,
        "request_id": evidence.headers.get("x-request-id", ""),
        "session_id": session.id, "session_rule": session.rule,
        "started_at": _timestamp(evidence.started),
        "identity": evidence.identity,
        "target": {"name": evidence.target.name} if evidence.target else None,
        "request": {"method": evidence.headers.get(":method", ""),
                    "path": evidence.headers.get(":path", "").partition("?")[0]},
        "outcome": {"action": "unknown",
                    "status": evidence.outcome.get("http.response.status_code"),
                    "refusal": evidence.outcome.get("tollgate.refusal")},
        "error": f"the record could not be built: {type(error).__name__}",
    }


def _source(evidence: Evidence) -> dict[str, str] | None:
    address = evidence.outcome.get("client.address")
    return {"address": address} if isinstance(address, str) else None


def _destination(evidence: Evidence) -> dict[str, Any] | None:
    """An egress exchange's destination: its name, each address it resolved to with its
    range, the one connected to, and whether the identity had reached it before."""
    outcome = evidence.outcome
    name = outcome.get("tollgate.egress.destination")
    if not isinstance(name, str):
        return None
    addresses = outcome.get("tollgate.egress.addresses") or ()
    ranges = outcome.get("tollgate.egress.ranges") or ()
    found = {
        "destination": name,
        "scheme": outcome.get("tollgate.egress.scheme"),
        "addresses": [{"address": a, "range": r}
                      for a, r in zip(addresses, ranges, strict=False)],
        "address": outcome.get("tollgate.egress.address"),
        "first_seen": outcome.get("tollgate.egress.first_seen"),
    }
    # A tunnel tollgate reads: the CONNECT says so; a request read inside names its
    # tunnel (the CONNECT's trace/span) and what the destination's certificate showed,
    # or why its TLS failed.
    for key in ("inspected", "tunnel", "tls_failure"):
        if (value := outcome.get(f"tollgate.egress.{key}")) is not None:
            found[key] = value
    prefix = "tollgate.egress.certificate."
    certificate = {k.removeprefix(prefix): v for k, v in outcome.items() if k.startswith(prefix)}
    if certificate:
        found["certificate"] = certificate
    return found


def session_of(evidence: Evidence) -> Session:
    """The agent run an exchange belongs to, as the exchange alone says: the agent's
    `x-session-id` header when it sends one, else its MCP session (`Mcp-Session-Id`, or
    the HTTP+SSE transport's `?session_id=`, or the one the server's answer to
    `initialize` names), else the trace (an agent that propagates its trace context).
    The writer groups those left to the trace by token or identity (`grouped_by`)."""
    headers = evidence.headers
    if session := headers.get("x-session-id", "").strip():
        return Session(session[:_SESSION_MOST], "header")
    session = headers.get("mcp-session-id", "").strip()
    if not session and evidence.meaning_key == "mcp" and isinstance(evidence.meaning, dict):
        session = str(evidence.meaning.get("session") or "")
    if not session and evidence.response is not None:
        # An MCP server names the session in its answer to `initialize`.
        session = evidence.response["headers"].get("mcp-session-id", "").strip()
    if session:
        return Session(session[:_SESSION_MOST], "mcp")
    return Session(evidence.trace_id, "trace")


def grouped_by(evidence: Evidence) -> tuple[str, str] | None:
    """What groups an exchange that names no session of its own into one (rule, name):
    its token's id when the token has one, else its authenticated subject. None: its
    session is its own (`session_of`), or its trace (an anonymous one, or a record of
    another kind)."""
    identity = evidence.identity
    if (evidence.kind not in _GROUPED_KINDS or identity is None
            or not identity["authenticated"] or session_of(evidence).rule != "trace"):
        return None
    if jti := identity["jti"]:
        return "token", jti
    return "identity", identity["sub"]


def grouped_session(rule: str, name: str, first_us: int) -> Session:
    """The session a token's (or an identity's) exchanges from `first_us` on make: named
    after both, readable, the same whichever writer names it."""
    at = datetime.datetime.fromtimestamp(first_us // 1_000_000, datetime.UTC).strftime(
        "@%Y-%m-%dT%H:%M:%SZ")
    prefix = f"{rule}:"
    return Session(prefix + name[:_SESSION_MOST - len(prefix) - len(at)] + at, rule)


def _outcome(evidence: Evidence) -> dict[str, Any]:
    """How the exchange ended: the action that settled it, the status the client got,
    and the refusal's code when tollgate answered it itself."""
    outcome = evidence.outcome
    refusal = outcome.get("tollgate.refusal")
    # The action that settled it, as the span says (an approved hold is an allow, a
    # refusal a deny, a hold still waiting for its approval a hold).
    action = outcome.get("tollgate.decision.action")
    if action is None and refusal is not None:
        action = "deny"
    elif action is None and evidence.decisions:
        action = next((d.action for d in evidence.decisions if d.action != "allow"), "allow")
    elif action is None:
        action = "none"  # the client went away before anything was decided
    status = outcome.get("http.response.status_code")
    found = {
        "action": action,
        "status": status if isinstance(status, int) else None,
        "refusal": refusal,
        "detail": outcome.get("tollgate.outcome"),
        "fail_open": bool(outcome.get("tollgate.fail_open")),
        "policy_error": outcome.get("tollgate.policy.error"),
    }
    # A moderated exchange (exchange/presence.py): the moderators it went on before.
    if (moderators := outcome.get("tollgate.moderators")) is not None:
        found["moderators"] = moderators
    # An answer noted as untrusted content before the agent read it (activity/flow.py).
    if (received := outcome.get("tollgate.flow.received")) is not None:
        found["received"] = list(received)
    # Protected values it carried unmasked, kept as fingerprints first (activity/flow.py).
    if (kept := outcome.get("tollgate.flow.kept")) is not None:
        found["kept"] = kept
    return found


def _decision(decided: Decided, evidence: Evidence) -> dict[str, Any]:
    found = {
        "phase": decided.phase, "action": decided.action, "rules": list(decided.rules),
        "reasons": list(decided.reasons), "status": decided.status,
        "policy_revision": decided.revision, "duration_us": decided.duration_us,
        "approvers": list(decided.approvers), "hold_seconds": decided.hold_seconds,
    }
    if evidence.meaning_key and decided.meaning is not evidence.meaning:
        # Made on an earlier reading (the request's, before an LLM's answer was read):
        # kept with it.
        found["meaning"] = {evidence.meaning_key: decided.meaning}
    return found


def _response(evidence: Evidence, masker: Masker) -> dict[str, Any] | None:
    """The upstream's answer (status, headers), what the client got of it (`body`: the
    upstream's body masked as the policy asked, or tollgate's refusal in its place), and
    what the upstream sent when the client got a refusal instead (`upstream_body`)."""
    response = evidence.response
    if response is None:
        return None
    body = _body(evidence.response_body, evidence.delivered_type or evidence.response_type)
    upstream = _body(evidence.upstream_body, evidence.response_type)
    for found in (body, upstream):
        if found and found["media_type"] == "text/event-stream" and found["encoding"] == "text":
            found["value"] = _masked_events(masker, found["value"])
    return {
        "status": response["status"],
        "headers": response["headers"],
        "body": body,
        "upstream_body": upstream,
        # A stream nothing needed to change flows past tollgate unread.
        "body_read": evidence.response_read,
    }


def _masked_events(masker: Masker, text: str) -> str:
    """An event stream's text masked across its events, as the gateway masks a model's
    stream: a model sends a few characters per event, so a secret cut over several of
    them would pass masking the text whole (which `_mask` does next, all the same).

    Text still held back when a choice never finished (a stream cut, or refused) goes
    out after the last event with choices, before the closing ones (an error, `[DONE]`),
    where it was in the stream."""
    stream, masking = ChatStream(), EventMasking(masker, RECORD_MASK)
    events = stream.feed(text.encode()) + stream.finish()
    masked = [masking.event(event.raw, event.payload) for event in events]
    last = max((i for i, event in enumerate(events) if isinstance(event.payload, dict)
                and event.payload.get("choices")), default=len(events) - 1)
    masked.insert(last + 1, masking.finish())
    return b"".join(masked).decode("utf-8", "replace")


def _body(capture: BodyCapture | None, content_type: str) -> Any:
    """A body as the record keeps it: JSON as a value, text as text (both masked with the
    rest of the record), other bytes by size and hash only; cut ones marked, with the
    whole's SHA-256."""
    if capture is None or capture.size == 0:
        return None
    media = media_type(content_type)
    found: dict[str, Any] = {"media_type": media, "size": capture.size,
                             "truncated": capture.truncated}
    if capture.truncated:
        found["sha256"] = capture.sha256
    try:
        text = capture.head.decode("utf-8")
    except UnicodeDecodeError:
        if not capture.truncated:  # a cut may fall inside a character
            found["sha256"] = capture.sha256
            found["encoding"] = "binary"
            return found
        text = capture.head.decode("utf-8", "ignore")
    if is_json(media) and not capture.truncated:
        try:
            value = parse_json(text)
        except ValueError:
            pass
        else:
            found["encoding"], found["value"] = "json", value
            return found
    found["encoding"], found["value"] = "text", text
    return found


def _timestamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(
        timespec="microseconds").replace("+00:00", "Z")


def started_us(seconds: float) -> int:
    return int(seconds * 1_000_000)
