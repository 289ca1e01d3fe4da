"""An MCP server's answer, read message by message, as JSON or as an event stream.

What the server sends reaches the client only as the policy lets it:

- a tools/list result shows only the tools a call to which this identity may make: each
  listed tool is checked against its pinned definition (a change asks a human to
  approve the new one, and the tool is refused meanwhile), then probed — the policy's
  decision on a call to it with no arguments — and a denied one is left out;
- a request the server sends the client (`sampling/createMessage`, elicitation,
  `roots/list`) is decided; refused, it never reaches the client, and the client's
  request whose answer is awaited is answered with the refusal instead (the client
  would otherwise wait for an answer that cannot come): the call whose answer carried
  it, or, asked on a stream of its own, the session's calls pending in this process;
  an input-required result (2026-07-28) is decided the same way, each of its input
  requests as the server request it replaces, and refused (or unreadable) answers the
  call with the refusal;
- a result's text is read for instructions to the model reading it (overrides, words
  addressed to a model, tool calls asked for, role markers, text hidden from a person:
  interpret/instructions.py), each kind named in the span and the record; the result
  still passes, noted first as untrusted content for the decisions after it
  (activity/flow.py, docs/flows.md);
- every message is masked whole as the request's decision asks — result, error, params,
  method, id, keys a client ignores — except the id of the client's own request, which
  the client matches answers by (it sent it); a string holding a JSON document (a tool's
  rows or records as text) as that document. Binary content (mcp_content.py) is shown
  to the policy first (`input.mcp.content`), which may refuse it; an image's text is
  read by OCR and what must be masked is drawn over (masking/images.py). A JSON value
  that is no message (an array: a batch; a string) is read element by element, every
  string masked; an answer on a call's stream to any other id is refused, but for an
  error of id null while the call is unanswered (`_unidentified`: the server's answer
  to a request whose id it could not read).

An event stream is released event by event as it comes (an MCP event is one whole
message), on the POST's answer as on a GET stream or the HTTP+SSE transport's, and each
event is written anew from what was read (`_Reader.event`): nothing the server wrote
reaches the client unread, in a field a client ignores or not.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from extproc.codecs import jsonenc
from extproc.codecs.message import content_encoding, parse_json
from extproc.codecs.refusal import Unavailable
from extproc.codecs.sse import EventSplitter, LineSplitter, event_of, fields
from extproc.exchange.act import Act
from extproc.exchange.reads import let_go
from extproc.http.responses import Mode, Out, ResponseWire, by_shape, readable
from extproc.interpret import mcp, mcp_content
from extproc.interpret.instructions import instructions_in
from extproc.masking.body import is_event_stream
from extproc.masking.documents import Documents
from extproc.masking.images import UnreadableImage

if TYPE_CHECKING:
    from extproc.interpret import Mcp

log = logging.getLogger("tollgate.mcp")


class McpAnswer:
    mode: Mode = "body"

    def run(self, act: Act, response: ResponseWire[Out]) -> AsyncGenerator[Out, None]:
        if (not response.ends and not is_event_stream(response.headers)
                and (act.exchange.meaning or {}).get("method") in _LISTENS):
            return _streamed(act, response, lines=True)
        return by_shape(act, response, _streamed, _whole)


ANSWER = McpAnswer()
# MCP's event types: `message`, and the HTTP+SSE transport's first event, `endpoint`,
# naming where to POST (its data, a path, passes as it is). A client ignores any other.
_MESSAGE, _ENDPOINT = "message", "endpoint"
_ID_MAX = 256  # an event id a client keeps and sends back (Last-Event-ID): longer, dropped
_RETRY_MAX = 9  # digits of a reconnection delay in ms (over a day: dropped)
# Requests whose answer is a stream for as long as the client listens (2026-07-28), which a
# server may write as JSON, one message a line, rather than as events: read line by line.
_LISTENS = frozenset({"subscriptions/listen"})
_LINES_MAX = 16 << 20  # a message over lines no longer than this; longer, dropped
# Seconds Envoy is asked to wait beyond an answer's images (its policy probes, the rest).
_READING_MARGIN = 5
Refusal = tuple[str, dict[str, Any]]  # a refused server request's method, tollgate's body
_INPUTS_MAX = 64  # input requests one input-required result may hold (each is a probe)
_UNREADABLE = "(unreadable input request)"  # what a refused malformed one is recorded as
Key = tuple[str, str]  # a target's name, an MCP session


class Awaited:
    """The requests of each MCP session whose answer its client awaits, in this process:
    where a server request refused on a stream of its own (a GET stream, the HTTP+SSE
    transport's) is answered. A call answered on its own event stream (streamable HTTP)
    waits on a future the refusal resolves; on the HTTP+SSE transport, every answer
    comes on the GET stream, whose reader answers the ids pending itself. A call's
    answer may start after the refusal came (the server asked aside before answering
    the call's headers): the session's last refusal is kept, and answers a call sent
    before it."""

    def __init__(self) -> None:
        self._calls: dict[Key, dict[bytes, tuple[Any, asyncio.Future[Refusal] | None]]] = {}
        self._last: dict[Key, tuple[float, Refusal]] = {}  # the clock is Exchange.clock's

    def expect(self, key: Key, rpc_id: Any, streamed: bool,
               sent: float = 0.0) -> asyncio.Future[Refusal] | None:
        """A call whose answer the client awaits (`sent`: when its request came)."""
        calls = self._calls.setdefault(key, {})
        if len(calls) >= _PENDING_MAX:  # a client that never gets answers: the oldest go
            del calls[next(iter(calls))]
        waiter = asyncio.get_running_loop().create_future() if streamed else None
        last = self._last.get(key)
        if waiter is not None and last is not None and last[0] >= sent:
            waiter.set_result(last[1])
        calls[_id_key(rpc_id)] = (rpc_id, waiter)
        return waiter

    def answered(self, key: Key, rpc_id: Any) -> None:
        calls = self._calls.get(key, {})
        calls.pop(_id_key(rpc_id), None)
        if not calls:
            self._calls.pop(key, None)

    def refuse(self, key: Key, refusal: Refusal) -> list[Any]:
        """Every pending call of the session answered with `refusal`: those on streams of
        their own are woken; the ids whose answer the caller's stream carries are
        returned (and forgotten)."""
        if len(self._last) >= _PENDING_MAX:
            del self._last[next(iter(self._last))]
        self._last[key] = (time.perf_counter(), refusal)
        carried = []
        for rpc_id, waiter in self._calls.pop(key, {}).values():
            if waiter is None:
                carried.append(rpc_id)
            elif not waiter.done():
                waiter.set_result(refusal)
        return carried

    def forget(self, key: Key) -> None:
        self._calls.pop(key, None)
        self._last.pop(key, None)


_PENDING_MAX = 256
_DROPPED_KINDS = 16
AWAITED = Awaited()


def _scoped_private(message: dict[str, Any]) -> dict[str, Any]:
    """A result the server marked `cacheScope: public` (2026-07-28: any cache may serve it
    across tokens) marked private: what passes tollgate is what this identity's decision
    let through (a listing without the tools it may not call, values masked, or all of
    it where another identity is refused), which a cache shared across tokens would serve
    to another identity past its own decision. `ttlMs` passes: tollgate itself keeps no
    result."""
    result = message.get("result")
    if isinstance(result, dict) and result.get("cacheScope") == "public":
        return {**message, "result": {**result, "cacheScope": "private"}}
    return message


def _id_key(rpc_id: Any) -> bytes:
    """A JSON-RPC id as a key: 1 and "1" are two ids."""
    return jsonenc.dumps(rpc_id).encode()


def _same_id(a: Any, b: Any) -> bool:
    return _id_key(a) == _id_key(b)


def _as_server_request(key: Any, entry: Any) -> dict[str, Any] | str:
    """The server request an input request stands for, keyed by its key as by an id; or
    why it reads as none (its method no string, its params no object)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("method"), str):
        return f"its input request {str(key)[:64]!r} names no method"
    message = {"jsonrpc": "2.0", "id": key, "method": entry["method"]}
    if "params" not in entry:
        return message
    if not isinstance(entry["params"], dict):
        return f"the params of its input request {str(key)[:64]!r} are no object"
    return {**message, "params": entry["params"]}


class _Reader:
    """One answer's messages, as the client gets them; what was hidden, changed, refused,
    dropped and masked, for the span and the record once the answer ends."""

    def __init__(self, act: Act) -> None:
        exchange = act.exchange
        self._act, self._exchange = act, act.exchange
        interpreter = exchange.interpreter
        assert interpreter is not None and exchange.target is not None
        self._mcp: Mcp = interpreter  # type: ignore[assignment]
        self._masked: Counter[str] = Counter()
        self.hidden: list[str] = []
        self.changed: list[str] = []
        self.refused: list[str] = []
        self.dropped: Counter[str] = Counter()  # what of the server's was not passed
        self.unmaskable: list[str] = []  # what binary content answers were refused for
        self.content: list[dict[str, Any]] = []  # each binary item, described and hashed
        # A refused server request answered the client's request: nothing more follows.
        self.ended = False
        asked = self._asked = exchange.meaning or {}
        # The id of the request this answer is to (None: a stream of the session's own).
        self.call = asked.get("id") if asked.get("kind") == "request" else None
        session = asked.get("session")
        self.key: Key | None = None if session is None else (exchange.target.name, session)
        self._first = True  # the next event is the stream's first (a BOM may lead it)
        self._partial = ""  # a JSON-lines stream's message so far, over several lines
        self._aside: list[Any] = []  # refusals of the session's calls, this stream carries
        self._refused_ids: set[bytes] = set()  # calls answered so: their answers dropped
        self._answered = False  # the call's answer has passed on this stream
        # The codes of errors of id null passed as the call's answer (`_unidentified`).
        self.unidentified: list[int] = []
        # What the server's results say to the model reading them, by kind: the first
        # excerpt of each (interpret/instructions.py).
        self.instructions: dict[str, str] = {}

    async def message(self, message: Any) -> Any | None:
        """A server's message as the client gets it (None: dropped)."""
        if not isinstance(message, dict):
            return await self._masked_message(message)  # no message: every string masked
        if mcp.server_request(message):
            return await self._server_request(message)
        refused = mcp.refusal_carried(message)
        if refused is not None:  # a refused HTTP+SSE request, answered on this stream
            return await self._answer(refused)
        if "id" in message and ("result" in message or "error" in message):
            if self.call is not None and not _same_id(message["id"], self.call):
                if not self._unidentified(message):
                    return self._wrong_id(message["id"])
                message = self._as_the_calls(message)
            if self.call is not None:
                self._answered = True
            if _id_key(message["id"]) in self._refused_ids:
                self._drop("an answer to a call already refused")
                return None
            if mcp.input_required(message):
                return await self._input_required(message)
        tools = mcp.listed_tools(message)
        if tools is not None:
            message = await self._listing(message, tools)
        return await self._answer(message)

    async def event(self, raw: bytes) -> bytes:
        """One event as the client gets it (b"": nothing), written anew from what a client
        reads in it: `data` read as JSON-RPC, masked and re-encoded (one empty `data`
        line, a priming event's, as it is); `id` masked (a client hands it back as
        Last-Event-ID); `retry` if digits; `event` if MCP's (else its data is dropped: a
        client ignores it); a comment emptied (a keep-alive stays one); any other field
        dropped."""
        kept: list[tuple[str, str]] = []
        data: list[str] = []
        kind, comment = _MESSAGE, False
        for name, value in fields(raw, first=self._first):
            if name == "data":
                data.append(value)
            elif name == "event":
                kind = value
                kept.append(("event", value))
            elif name == "id" and "\0" not in value and len(value) <= _ID_MAX:
                kept.append(("id", self.masked_text(value.encode()).decode()))
            elif name == "retry" and value.isascii() and value.isdigit() \
                    and len(value) <= _RETRY_MAX:
                kept.append(("retry", value))
            elif name == ":":
                comment = True
            else:
                self._drop(f"event field {name[:32]!r}")
        self._first = False
        typed, carried = await self._event_data(kind, data)
        if not typed:
            kept = [(n, v) for n, v in kept if n != "event"]
        if carried is not None:
            kept.append(("data", carried))
        if not kept:
            return self._carried() if not comment else b":\n\n" + self._carried()
        return event_of(kept) + self._carried()

    async def _event_data(self, kind: str, data: list[str]) -> tuple[bool, str | None]:
        """Whether an event keeps its type, and the data it carries on (None: none)."""
        if kind == _ENDPOINT and data:
            self._endpoint("\n".join(data))
            return True, "\n".join(data)
        if kind != _MESSAGE:
            self._drop(f"event type {kind[:32]!r}")
            return False, None
        if data == [""]:
            # A priming event: an id the client may resume from (Last-Event-ID) and one
            # empty data line, no message; passed as it is, as a client reads it.
            return True, ""
        if not data:
            return True, None
        out = await self._data("\n".join(data))
        return (False, None) if out is None else (True, jsonenc.dumps(out))

    async def line(self, raw: bytes) -> bytes:
        """One line of a JSON-lines stream as the client gets it (b"": nothing): a message
        (or a batch) read, masked and written anew, one line; a message written over
        several lines (pretty-printed) goes out once its last line is read; an empty
        line between messages passes (a keep-alive)."""
        text = self._partial + raw.decode("utf-8", "replace")
        if not text.strip():
            return raw
        try:
            payload = parse_json(text)
        except ValueError:
            if len(text) > _LINES_MAX:
                self._partial = ""
                self._drop("a line that is no JSON")
                return b""
            self._partial = text
            return b""
        self._partial = ""
        out = await self._payload(payload)
        return b"" if out is None else jsonenc.dumps(out).encode() + b"\n"

    def awaiting(self) -> asyncio.Future[Refusal] | None:
        """Where a refusal of a server request on the session's own stream reaches this
        answer's call (streamable HTTP; None: no call, or no session)."""
        if self.call is None or self.key is None or self._asked.get("transport") == "sse":
            return None
        return AWAITED.expect(self.key, self.call, True, self._exchange.clock)

    def expected(self) -> None:
        """An HTTP+SSE request sent: its answer comes on the session's GET stream."""
        if self.call is not None and self.key is not None:
            AWAITED.expect(self.key, self.call, False)

    def refused_aside(self, refusal: Refusal) -> bytes:
        """This call answered with the refusal of a server request asked on the session's
        own stream; the rest of the answer is dropped."""
        method, body = refusal
        self.refused.append(method)
        self.ended = True
        return event_of([("event", _MESSAGE), ("data", jsonenc.dumps(
            mcp.rpc_error(self.call, body)))])

    def finish(self) -> None:
        """What the answer showed, in the span and (as `meaning.mcp.answer`) the record."""
        exchange = self._exchange
        if self._partial.strip():
            self._drop("a line that is no JSON")
        if self.key is not None:
            if self.call is not None and self._asked.get("transport") != "sse":
                AWAITED.answered(self.key, self.call)
            elif self.call is None and self._asked.get("transport") == "sse":
                AWAITED.forget(self.key)  # the HTTP+SSE session's stream: the session
        exchange.record_masking(self._masked)
        shown = {key: names for key, names in (
            ("hidden_tools", self.hidden), ("changed_tools", self.changed),
            ("refused_server_requests", self.refused), ("dropped", self.dropped),
            ("unmaskable", self.unmaskable), ("content", self.content),
            ("unidentified_errors", self.unidentified),
            ("instructions", [{"kind": kind, "excerpt": excerpt}
                              for kind, excerpt in self.instructions.items()])) if names}
        for key, names in shown.items():
            if key not in ("unmaskable", "dropped", "content", "unidentified_errors",
                           "instructions"):
                exchange.outcome[f"tollgate.mcp.{key}"] = tuple(names)
        if self.instructions:
            exchange.outcome["tollgate.mcp.instructions"] = tuple(self.instructions)
        if self.dropped:
            exchange.span.add_event("tollgate.mcp.dropped", {
                "tollgate.mcp.dropped": tuple(self.dropped)})
        if self.ended:
            exchange.outcome["tollgate.outcome"] = "server_request_refused"
        elif self.unmaskable:
            exchange.outcome["tollgate.outcome"] = "unmaskable_content"
        if shown and isinstance(exchange.evidence.meaning, dict):
            exchange.evidence.meaning = {**exchange.evidence.meaning, "answer": shown}

    def _drop(self, what: str) -> None:
        """What of the server's does not reach the client, counted (a few kinds only: a
        long stream of them holds no more)."""
        if what in self.dropped or len(self.dropped) < _DROPPED_KINDS:
            self.dropped[what] += 1

    async def _data(self, text: str) -> Any | None:
        """An event's data as the client gets it (None: dropped): JSON-RPC, a message or
        (a batch, gone from MCP since 2025-06-18, read all the same) a list of them."""
        try:
            payload = parse_json(text)
        except ValueError:
            self._drop("event data that is no JSON")
            log.warning("trace %s: an MCP server's event data is no JSON; dropped",
                        self._exchange.trace_id)
            return None
        return await self._payload(payload)

    async def _payload(self, payload: Any) -> Any | None:
        """A message, or a batch of them, as the client gets it (None: dropped)."""
        if isinstance(payload, list):
            answered = [await self.message(m) for m in payload]
            kept = [m for m in answered if m is not None]
            return kept or None
        return await self.message(payload)

    def _endpoint(self, path: str) -> None:
        """The HTTP+SSE transport's session is named in its endpoint: this stream's."""
        session = parse_qs(urlsplit(path).query).get("session_id")
        if session and self._exchange.target is not None:
            self.key = (self._exchange.target.name, session[0])

    def _carried(self) -> bytes:
        """The refusals this stream carries for calls of the session (HTTP+SSE)."""
        out = b"".join(event_of([("event", _MESSAGE), ("data", jsonenc.dumps(m))])
                       for m in self._aside)
        self._aside.clear()
        return out

    async def _answer(self, message: dict[str, Any]) -> Any | None:
        """A message masked; an answer passing on the session's stream is no longer
        awaited."""
        if self.call is None and self.key is not None and "id" in message \
                and "method" not in message:
            AWAITED.answered(self.key, message["id"])
        if "result" in message:
            found: dict[str, str] = {}  # each kind's first excerpt, in the order found
            for each in instructions_in(jsonenc.dumps(message["result"])):
                found.setdefault(each.kind, each.excerpt)
            if found:  # noted before the agent reads it (activity/flow.py)
                await self._act.received("instructions", tuple(found))
            for kind, excerpt in found.items():
                self.instructions.setdefault(kind, excerpt)
        return await self._masked_message(_scoped_private(message))

    def _unidentified(self, message: dict[str, Any]) -> bool:
        """Whether an answer to another id on this call's stream is the server's answer
        to the call all the same: an error of id null (JSON-RPC 2.0 has a server answer
        so when it could not read the request's id: a parse error, an invalid request),
        while the call is unanswered here. Not a result of id null (a result answers a
        request the server read, by its id), nor a second answer once the call has one
        (no request of this stream is in flight then), nor what is no error object (an
        integer code, a string message)."""
        error = message.get("error")
        return (message["id"] is None and "result" not in message and not self._answered
                and isinstance(error, dict) and type(error.get("code")) is int
                and isinstance(error.get("message"), str))

    def _as_the_calls(self, message: dict[str, Any]) -> dict[str, Any]:
        """An error of id null, passed as the call's answer: the call's id in place of
        null (a client matches answers by id, and this stream carries its call's alone;
        left null, a client may take it for no call's, or for another's), the error as
        the server wrote it; counted for the record."""
        self.unidentified.append(message["error"]["code"])
        log.info("trace %s: the MCP server answered the call %.64s with an error of id "
                 "null (it could not read the request's id); passed as the call's answer",
                 self._exchange.trace_id, jsonenc.dumps(self.call))
        return {**message, "id": self.call}

    def _wrong_id(self, rpc_id: Any) -> dict[str, Any]:
        """An answer on this call's stream to an id the client did not send here: refused,
        and the call answered with the refusal (the server broke the protocol)."""
        exchange = self._exchange
        self._drop("an answer to another id")
        self.ended = True
        log.warning("trace %s: the MCP server answered id %.64s on the answer to %.64s; "
                    "refused", exchange.trace_id, jsonenc.dumps(rpc_id),
                    jsonenc.dumps(self.call))
        return mcp.rpc_error(self.call, {
            "error": "denied", "rules": [], "trace_id": exchange.trace_id,
            "reasons": ["the server answered another request's id on this call's answer"]})

    async def _listing(self, message: dict[str, Any], tools: list[Any]) -> dict[str, Any]:
        exchange, target = self._exchange, self._exchange.target
        assert target is not None and target.mcp is not None
        entries = [mcp.declared_of(tool) for tool in tools]
        named = [entry for entry in entries if entry is not None]
        pins = self._mcp.pins
        # A page asked for with a cursor: the rest of a listing (its first may be trusted).
        continued = "cursor" in ((exchange.meaning or {}).get("params") or {})
        found = ({name: mcp.UNKNOWN for name, _ in named} if pins is None else
                 await pins.listed(target.name, target.mcp.pin_approvers, named,
                                   exchange.evidence, continued))
        kept = []
        for tool, entry in zip(tools, entries, strict=True):
            if entry is None:
                self.hidden.append("(unnamed)")  # what has no name cannot be judged
                continue
            name, declared = entry
            pin = found[name]
            if pin["status"] == "changed":
                self.changed.append(name)
            decision = await self._act.probe(
                "request", self._mcp.probe(exchange.meaning, name, declared, pin))
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
        refusal = await self._judged(message)
        if refusal is None:
            return await self._masked_message(message)
        if self.call is not None:
            self.ended = True
            return mcp.rpc_error(self.call, refusal[1])
        if self.key is not None:  # on a stream of its own: the session's calls answered
            carried = AWAITED.refuse(self.key, refusal)
            self._aside += [mcp.rpc_error(rpc_id, refusal[1]) for rpc_id in carried]
            self._refused_ids |= {_id_key(rpc_id) for rpc_id in carried}
        return None

    async def _judged(self, message: dict[str, Any]) -> Refusal | None:
        """A request the server sends the client, decided (None: allowed); refused, it is
        counted and its refusal's reason names the method."""
        exchange = self._exchange
        asked = exchange.meaning or {}
        meaning = mcp.message_reading(message, asked.get("transport", "streamable-http"),
                                      "server", asked.get("session"))
        decision = await self._act.probe("response", meaning)
        method = str(message.get("method"))
        exchange.span.add_event("tollgate.mcp.server_request", {
            "tollgate.mcp.method": method, "tollgate.decision.action": decision.action,
            "tollgate.decision.rules": decision.rules})
        if decision.action == "allow":
            return None
        self.refused.append(method)
        log.warning("trace %s: the server's %s request was refused (%s)", exchange.trace_id,
                    method, ", ".join(decision.rules))
        body = exchange.refusal_body(decision)
        body["reasons"] = [f"the server asked the client for {method}, which is refused: "
                           f"{'; '.join(decision.reasons) or 'denied'}"]
        return method, body

    async def _input_required(self, message: dict[str, Any]) -> Any | None:
        """An input-required result (2026-07-28): each input request stands for the server
        request of the session form it replaces, and is decided as that one. One refused
        (or unreadable: never passed unread), the call is answered with the refusal, as
        the client would otherwise ask its user or model what the policy refuses."""
        asked = message["result"].get("inputRequests")
        refusals: list[Refusal | None]
        if not isinstance(asked, dict) or len(asked) > _INPUTS_MAX:
            refusals = [self._unreadable_inputs(
                "its inputRequests are no object" if not isinstance(asked, dict) else
                f"it holds over {_INPUTS_MAX} input requests")]
        else:
            read = [_as_server_request(key, entry) for key, entry in asked.items()]
            refusals = [self._unreadable_inputs(request) if isinstance(request, str)
                        else await self._judged(request) for request in read]
        found = [refusal for refusal in refusals if refusal is not None]
        if not found:
            return await self._answer(message)
        body = {**found[0][1], "rules": sorted({r for _, b in found for r in b["rules"]}),
                "reasons": [reason for _, b in found for reason in b["reasons"]]}
        if self.call is None:  # an answer on the session's stream (HTTP+SSE)
            return await self._answer(mcp.rpc_error(message["id"], body))
        self.ended = True
        return mcp.rpc_error(self.call, body)

    def _unreadable_inputs(self, why: str) -> Refusal:
        """An input-required result tollgate cannot read as server requests: refused."""
        exchange = self._exchange
        self.refused.append(_UNREADABLE)
        log.warning("trace %s: the server's input-required result is refused: %s",
                    exchange.trace_id, why)
        return _UNREADABLE, {
            "error": "denied", "rules": [], "trace_id": exchange.trace_id,
            "reasons": [f"the server asked the client for input tollgate cannot read ({why}); "
                        "it is refused rather than passed unread"]}

    async def _masked_message(self, message: Any) -> Any:
        """A message masked whole as the decision asks: method, keys and ids too, but the
        id of the client's own request (it sent it, and matches the answer by it). Base64
        content that decodes to text is masked as that text, and so is any encoded text in a
        string (the masker reads it decoded: masking/decoding.py); a string that holds a
        JSON document (a tool's rows as text) is masked as that document, by key and by
        column (masking/documents.py); binary content goes to the policy, and an image's
        text is masked in the image (`_binary`)."""
        spec = self._exchange.mask
        own = (isinstance(message, dict) and self.call is not None and "id" in message
               and _same_id(message["id"], self.call))
        read = {k: v for k, v in message.items() if k != "id"} if own else message
        items = mcp_content.binary_items(read)
        imaged = await self._binary(message, items) if items else {}
        if isinstance(imaged, tuple):
            return self._unmaskable(message, *imaged)
        if spec is None:  # nothing to mask: no image was changed either
            return message
        shown = mcp_content.replaced(read, imaged)
        decoded = _decoded_blobs(shown)
        documents = Documents(decoded)
        masked, counts = self._act.masker.mask_json(documents.value, spec.for_server_answers)
        if not counts and decoded is shown:
            if shown is read:
                return message
            masked = documents.value
        self._masked += counts
        out = _encoded_blobs(documents.written(masked))
        return {"id": message["id"], **out} if own else out

    async def _binary(self, message: Any, items: list[mcp_content.Item]
                      ) -> dict[int, tuple[str, bytes]] | tuple[str, str]:
        """The policy's word on a message's binary content (each item recorded with its
        hash), then each image's text masked in it: the images masked anew, by where they
        are; or what is refused, and why."""
        described = [item.described() for item in items]
        self.content += described
        asked = self._exchange.meaning or {}
        reading = mcp.message_reading(message, asked.get("transport", "streamable-http"),
                                      "server", asked.get("session"))
        decision = await self._act.probe("response", {**reading, "content": described})
        if decision.action != "allow":
            kinds = ", ".join(sorted({f"{d['kind']} {d['mime_type'] or d['type']}"
                                      for d in described}))
            return kinds, (f"the server's answer holds {kinds}, which the policy refuses: "
                           f"{'; '.join(decision.reasons) or decision.action}")
        spec = self._exchange.mask
        new: dict[int, tuple[str, bytes]] = {}
        for item in items:
            if spec is None or item.kind != "image":
                continue  # the policy passed it; nothing in it can be masked
            try:
                data, counts = await self._act.masker.images.mask(item.data, spec,
                                                                  self._act.masker)
            except UnreadableImage as exc:
                return f"image {item.mime_type or ''}".strip(), (
                    f"the server's answer holds an image ({item.mime_type}) that cannot be "
                    f"read: {exc}; it is refused rather than passed unread")
            if data is not item.data:
                self._masked += counts
                new[id(item.node)] = (item.key, data)
        return new

    def _unmaskable(self, message: dict[str, Any], what: str, reason: str) -> Any:
        """A message refused for its binary content: the call answered with the reason."""
        exchange = self._exchange
        self.unmaskable.append(what)
        body = {"error": "unmaskable_body", "reasons": [reason], "rules": [],
                "trace_id": exchange.trace_id}
        if not isinstance(message, dict) or "id" not in message:
            return None
        return mcp.rpc_error(self.call if self.call is not None else message["id"], body)

    def image_seconds(self, messages: list[Any]) -> int:
        """The longest reading `messages`' images may take, each within its own bound
        (0: none is read, for none is there or nothing is masked)."""
        if self._exchange.mask is None:
            return 0
        images = sum(item.kind == "image" for message in messages
                     for item in mcp_content.binary_items(message))
        return math.ceil(images * self._act.masker.images.limits.ocr_ms / 1000)

    def masked_text(self, raw: bytes) -> bytes:
        """What is no JSON-RPC message (an event's id, the HTTP+SSE transport's
        `Accepted`), masked as the text it is."""
        spec = self._exchange.mask
        if spec is None:
            return raw
        text, counts = self._act.masker.mask_text(raw.decode("utf-8", "replace"),
                                                  spec.for_server_answers)
        self._masked += counts
        return text.encode()


async def _whole(act: Act,
                 response: ResponseWire[Out]) -> AsyncGenerator[Out, None]:
    exchange = act.exchange
    target, headers = exchange.target, response.headers
    assert target is not None
    yield response.proceed()
    raw = await response.body()
    content = readable(target, headers, raw)
    if content is None:  # an encoding the target lets pass unread
        exchange.delivered(raw)
        yield response.keep_body()
        return
    reader = _Reader(act)
    if (exchange.meaning or {}).get("transport") == "sse":
        reader.expected()  # its answer comes on the session's GET stream
    try:
        payload = parse_json(content.decode("utf-8", "replace"))
    except ValueError:  # no message (the HTTP+SSE transport's `Accepted`): text
        out = reader.masked_text(content)
    else:
        messages = payload if isinstance(payload, list) else [payload]
        seconds = reader.image_seconds(messages)
        if seconds:  # Envoy's own deadline for this answer (2 s) must not cut OCR short
            yield response.more_time(seconds + _READING_MARGIN)
        answered = [await reader.message(m) for m in messages]
        kept = [m for m in answered if m is not None]
        changed = any(a is not m for a, m in zip(answered, messages, strict=True))
        value = kept if isinstance(payload, list) else (kept[0] if kept else None)
        out = content if not changed else jsonenc.dumps(value).encode()
    reader.finish()
    await act.delivering(out.decode("utf-8", "replace"))
    exchange.delivered(out, exchange.mask)
    yield response.replace_body(out) if out is not raw else response.keep_body()


async def _streamed(act: Act, response: ResponseWire[Out],
                    lines: bool = False) -> AsyncGenerator[Out, None]:
    """An answer released as it flows: event by event, or (`lines`: a listen stream the
    server writes as JSON) line by line."""
    exchange = act.exchange
    if content_encoding(response.headers) != "identity":
        raise Unavailable(502, "unreadable_encoding",
                       "a compressed event stream cannot be read as it flows; it is refused")
    yield response.stream_through()
    reader = _Reader(act)
    events: EventSplitter | LineSplitter = LineSplitter() if lines else EventSplitter()
    read = reader.line if lines else reader.event
    delivered = exchange.delivering()
    aside = reader.awaiting()
    chunk: asyncio.Future[tuple[bytes, bool]] | None = None
    held = b""  # a refusal that came before any of the body: Envoy takes none before it
    ends = started = False
    try:
        while not ends:
            chunk = chunk or asyncio.ensure_future(response.chunk())
            if aside is not None:
                # A server request refused on the session's own stream may answer this
                # call before its server does: whichever comes first.
                await asyncio.wait((chunk, aside), return_when=asyncio.FIRST_COMPLETED)
                if aside.done():
                    refused = b"" if reader.ended else reader.refused_aside(aside.result())
                    aside = None
                    if not started:
                        held = refused
                        continue
                    delivered.add(refused)
                    for answer in response.send(refused, False):
                        yield answer
                    continue
            piece, ends = await chunk
            chunk, started = None, True
            released = held + await _read_piece(reader, events, read, piece, ends)
            held = b""
            if released:
                await act.delivering(released.decode("utf-8", "replace"))
            delivered.add(released)
            if ends:  # what the answer held goes in its record, written as its end is sent
                reader.finish()
            for answer in response.send(released, ends):
                yield answer
    finally:
        if chunk is not None:
            let_go(chunk)
        if not ends:
            reader.finish()


async def _read_piece(reader: _Reader, events: EventSplitter | LineSplitter,
                     read: Callable[[bytes], Awaitable[bytes]], piece: bytes,
                     ends: bool) -> bytes:
    """What a piece of the stream completes (its events or lines; at the end, the rest),
    each read as the client gets it; nothing once the reader has ended the answer."""
    out = []
    for raw in events.feed(piece) + (events.finish() if ends else []):
        if not reader.ended:
            out.append(await read(raw))
    return b"".join(out)


# Where MCP content carries base64: an image's or audio's `data`, a resource's `blob`.
_BLOB = "\x00tollgate-blob:"


def _decoded_blobs(value: Any) -> Any:
    """`value` with each base64 payload that decodes to text replaced by that text (marked,
    to be encoded again after masking); binary payloads (read by `_binary`) as they are."""
    if isinstance(value, list):
        items = [_decoded_blobs(v) for v in value]
        changed = any(d is not v for d, v in zip(items, value, strict=True))
        return items if changed else value
    if not isinstance(value, dict):
        return value
    out = value
    for key, item in value.items():
        payload = key == "blob" or (key == "data" and value.get("type") in ("image", "audio"))
        if payload and isinstance(item, str):
            text = _text_of(item)
            if text is not None:
                out = {**out, key: _BLOB + text}
        elif isinstance(item, dict | list):
            decoded = _decoded_blobs(item)
            if decoded is not item:
                out = {**out, key: decoded}
    return out


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
