"""An MCP server's answer, read message by message, as JSON or as an event stream.

What the server sends reaches the client only as the policy lets it:

- a tools/list result shows only the tools a call to which this identity may make: each
  listed tool is checked against its pinned definition (a change asks a human to
  approve the new one, and the tool is refused meanwhile), then probed — the policy's
  decision on a call to it with no arguments — and a denied one is left out;
- a request the server sends the client (`sampling/createMessage`, elicitation,
  `roots/list`) is decided; refused, it never reaches the client, and when it came in
  the answer to a client's request, that request is answered with the refusal instead
  (the client would otherwise wait for an answer that cannot come);
- every message's result, error and params are masked as the request's decision asks
  (never its id: the client matches answers by it).

An event stream is released event by event as it comes (an MCP event is one whole
message), on the POST's answer as on a GET stream or the HTTP+SSE transport's.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from extproc import jsonenc
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.refusal import BadInput
from extproc.exchange.state import Exchange
from extproc.http.body_masking import event_bytes, other_lines
from extproc.http.message import content_encoding, parse_json
from extproc.http.responses import Mode, Out, ResponseWire, by_shape, readable
from extproc.http.sse import EventSplitter, event_data
from extproc.interpret import mcp

if TYPE_CHECKING:
    from extproc.interpret import Mcp

log = logging.getLogger("tollgate.mcp")


class McpAnswer:
    mode: Mode = "body"

    def run(self, pipeline: Pipeline, exchange: Exchange,
            response: ResponseWire[Out]) -> AsyncIterator[Out]:
        return by_shape(pipeline, exchange, response, _streamed, _whole)


ANSWER = McpAnswer()
# The HTTP+SSE transport's first event, naming where to POST: passed as it is.
_ENDPOINT = (("event", " endpoint"), ("event", "endpoint"))


class _Reader:
    """One answer's messages, as the client gets them; what was hidden, changed, refused
    and masked, for the span and the record once the answer ends."""

    def __init__(self, pipeline: Pipeline, exchange: Exchange) -> None:
        self._pipeline, self._exchange = pipeline, exchange
        interpreter = exchange.interpreter
        assert interpreter is not None and exchange.target is not None
        self._mcp: Mcp = interpreter  # type: ignore[assignment]
        self._masked: Counter[str] = Counter()
        self.hidden: list[str] = []
        self.changed: list[str] = []
        self.refused: list[str] = []
        self.unmaskable: list[str] = []  # what binary content answers were refused for
        # A refused server request answered the client's request: nothing more follows.
        self.ended = False

    async def message(self, message: Any) -> Any | None:
        """A server's message as the client gets it (None: dropped)."""
        if mcp.server_request(message):
            return await self._server_request(message)
        refused = mcp.refusal_carried(message)
        if refused is not None:  # a refused HTTP+SSE request, answered on this stream
            return refused
        tools = mcp.listed_tools(message)
        if tools is not None:
            message = await self._listing(message, tools)
        return self._masked_message(message)

    async def event(self, raw: bytes) -> bytes:
        """One event of a stream as the client gets it (b"": dropped)."""
        data, _ = event_data(raw)
        lines = other_lines(raw)
        if data is None or any(line.partition(":")[::2] in _ENDPOINT for line in lines):
            return raw  # a comment, a keep-alive, the HTTP+SSE transport's endpoint
        try:
            payload = parse_json(data.decode("utf-8", "replace"))
        except ValueError:
            return self.masked_text(raw)
        out = await self.message(payload)
        if out is None:
            return b""
        return raw if out is payload else event_bytes(lines, out)

    def finish(self) -> None:
        """What the answer showed, in the span and (as `meaning.mcp.answer`) the record."""
        exchange = self._exchange
        exchange.record_masking(self._masked)
        shown = {key: names for key, names in (
            ("hidden_tools", self.hidden), ("changed_tools", self.changed),
            ("refused_server_requests", self.refused), ("unmaskable", self.unmaskable))
            if names}
        for key, names in shown.items():
            if key != "unmaskable":
                exchange.outcome[f"tollgate.mcp.{key}"] = tuple(names)
        if self.ended:
            exchange.outcome["tollgate.outcome"] = "server_request_refused"
        elif self.unmaskable:
            exchange.outcome["tollgate.outcome"] = "unmaskable_content"
        if shown and isinstance(exchange.evidence.meaning, dict):
            exchange.evidence.meaning = {**exchange.evidence.meaning, "answer": shown}

    async def _listing(self, message: dict[str, Any], tools: list[Any]) -> dict[str, Any]:
        exchange, target = self._exchange, self._exchange.target
        assert target is not None and target.mcp is not None
        entries = [mcp.declared_of(tool) for tool in tools]
        named = [entry for entry in entries if entry is not None]
        pins = self._mcp.pins
        found = ({name: mcp.UNKNOWN for name, _ in named} if pins is None else
                 await pins.listed(target.name, target.mcp.pin_approvers, named,
                                   exchange.evidence))
        kept = []
        for tool, entry in zip(tools, entries, strict=True):
            if entry is None:
                self.hidden.append("(unnamed)")  # what has no name cannot be judged
                continue
            name, declared = entry
            pin = found[name]
            if pin["status"] == "changed":
                self.changed.append(name)
            decision = await self._pipeline.probe(
                exchange, "request", self._mcp.probe(exchange.meaning, name, declared, pin))
            if decision.action == "deny":
                self.hidden.append(name)
            else:
                kept.append(tool)
        if self.hidden or self.changed:
            exchange.span.add_event("tollgate.mcp.tools", {
                "tollgate.mcp.listed": len(tools), "tollgate.mcp.hidden": tuple(self.hidden),
                "tollgate.mcp.changed": tuple(self.changed)})
        return {**message, "result": {**message["result"], "tools": kept}}

    async def _server_request(self, message: dict[str, Any]) -> Any | None:
        exchange = self._exchange
        asked = exchange.meaning or {}
        meaning = mcp.message_reading(message, asked.get("transport", "streamable-http"),
                                      "server", asked.get("session"))
        decision = await self._pipeline.probe(exchange, "response", meaning)
        method = str(message.get("method"))
        exchange.span.add_event("tollgate.mcp.server_request", {
            "tollgate.mcp.method": method, "tollgate.decision.action": decision.action,
            "tollgate.decision.rules": decision.rules})
        if decision.action == "allow":
            return self._masked_message(message)
        self.refused.append(method)
        log.warning("trace %s: the server's %s request was refused (%s)", exchange.trace_id,
                    method, ", ".join(decision.rules))
        if asked.get("kind") != "request" or asked.get("id") is None:
            return None  # on a stream of its own: the server's request goes unanswered
        self.ended = True
        body = exchange.denial(decision)
        body["reasons"] = [f"the server asked the client for {method}, which is refused: "
                           f"{'; '.join(decision.reasons) or 'denied'}"]
        return mcp.rpc_error(asked["id"], body)

    def _masked_message(self, message: Any) -> Any:
        """A message's result, error and params masked as the decision asks (its id and
        method never). Base64 content (an image, audio, a resource's `blob`) is masked as
        the text it decodes to; binary content cannot be masked, and a message holding
        some is refused rather than passed unmasked (as an HTTP body is)."""
        spec = self._exchange.mask
        if spec is None or not isinstance(message, dict):
            return message
        masker, out = self._pipeline.masker, message
        for key in ("result", "error", "params"):
            if key in message:
                decoded, binary = _decoded_blobs(message[key])
                if binary is not None:
                    return self._unmaskable(message, binary)
                masked, counts = masker.mask_json(decoded, spec)
                if counts or decoded is not message[key]:
                    out = {**out, key: _encoded_blobs(masked)}
                    self._masked += counts
        return out

    def _unmaskable(self, message: dict[str, Any], what: str) -> Any:
        exchange = self._exchange
        self.unmaskable.append(what)
        reason = (f"the server's answer holds {what}, which cannot be masked: it is "
                  "refused rather than passed unmasked")
        body = {"error": "unmaskable_body", "reasons": [reason], "rules": [],
                "trace_id": exchange.trace_id}
        return mcp.rpc_error(message.get("id"), body) if "id" in message else None

    def masked_text(self, raw: bytes) -> bytes:
        """What is no JSON-RPC message, masked as the text it is."""
        spec = self._exchange.mask
        if spec is None:
            return raw
        text, counts = self._pipeline.masker.mask_text(raw.decode("utf-8", "replace"), spec)
        self._masked += counts
        return text.encode()


async def _whole(pipeline: Pipeline, exchange: Exchange,
                 response: ResponseWire[Out]) -> AsyncIterator[Out]:
    target, headers = exchange.target, response.headers
    assert target is not None
    yield response.proceed()
    raw = await response.body()
    content = readable(target, headers, raw)
    if content is None:  # an encoding the target lets pass unread
        exchange.delivered(raw)
        yield response.keep_body()
        return
    reader = _Reader(pipeline, exchange)
    try:
        payload = parse_json(content.decode("utf-8", "replace"))
    except ValueError:  # no message (the HTTP+SSE transport's `Accepted`): text
        out = reader.masked_text(content)
    else:
        messages = payload if isinstance(payload, list) else [payload]
        answered = [await reader.message(m) for m in messages]
        kept = [m for m in answered if m is not None]
        changed = any(a is not m for a, m in zip(answered, messages, strict=True))
        value = kept if isinstance(payload, list) else (kept[0] if kept else None)
        out = content if not changed else jsonenc.dumps(value).encode()
    reader.finish()
    exchange.delivered(out, exchange.mask)
    yield response.replace_body(out) if out is not raw else response.keep_body()


async def _streamed(pipeline: Pipeline, exchange: Exchange,
                    response: ResponseWire[Out]) -> AsyncIterator[Out]:
    if content_encoding(response.headers) != "identity":
        raise BadInput(502, "unreadable_encoding",
                       "a compressed event stream cannot be read as it flows; it is refused")
    yield response.stream_through()
    reader = _Reader(pipeline, exchange)
    events = EventSplitter()
    delivered = exchange.delivering()
    ends = False
    try:
        while not ends:
            chunk, ends = await response.chunk()
            out = []
            for raw in events.feed(chunk) + (events.finish() if ends else []):
                if not reader.ended:
                    out.append(await reader.event(raw))
            released = b"".join(out)
            delivered.add(released)
            for answer in response.send(released, ends):
                yield answer
    finally:
        reader.finish()


# Where MCP content carries base64: an image's or audio's `data`, a resource's `blob`.
_BLOB = "\x00tollgate-blob:"


def _decoded_blobs(value: Any) -> tuple[Any, str | None]:
    """`value` with each base64 payload replaced by the text it decodes to (marked, to be
    encoded again after masking); and what binary payload there is, if any (None)."""
    if isinstance(value, list):
        items = [_decoded_blobs(v) for v in value]
        binary = next((b for _, b in items if b is not None), None)
        changed = any(d is not v for (d, _), v in zip(items, value, strict=True))
        return ([d for d, _ in items] if changed else value), binary
    if not isinstance(value, dict):
        return value, None
    out = value
    for key, item in value.items():
        payload = key == "blob" or (key == "data" and value.get("type") in ("image", "audio"))
        if payload and isinstance(item, str):
            text = _text_of(item)
            if text is None:
                return value, f"binary {value.get('mimeType') or value.get('type') or 'content'}"
            out = {**out, key: _BLOB + text}
        elif isinstance(item, dict | list):
            decoded, binary = _decoded_blobs(item)
            if binary is not None:
                return value, binary
            if decoded is not item:
                out = {**out, key: decoded}
    return out, None


def _encoded_blobs(value: Any) -> Any:
    if isinstance(value, list):
        return [_encoded_blobs(v) for v in value]
    if isinstance(value, dict):
        return {k: _encoded_blobs(v) for k, v in value.items()}
    if isinstance(value, str) and value.startswith(_BLOB):
        return base64.b64encode(value[len(_BLOB):].encode()).decode()
    return value


def _text_of(payload: str) -> str | None:
    """The UTF-8 text a base64 payload holds (None: not base64, or not text)."""
    try:
        return base64.b64decode(payload, validate=True).decode("utf-8")
    except ValueError:
        return None
