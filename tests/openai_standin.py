"""A STAND-IN for a hosted OpenAI-compatible LLM API, which cannot be reached (or
installed) from this machine.

It is an HTTP server on 127.0.0.1 that answers the way api.openai.com answers the routes
tollgate's LLM targets use, so that the real `openai` client, and Envoy in front of it,
see the real wire format:

    POST /v1/chat/completions   a `chat.completion` JSON; with `"stream": true` a
                                `text/event-stream` (chunked transfer) of
                                `chat.completion.chunk` events, one write and flush
                                each, ending with `data: [DONE]`
    GET  /v1/models             the model list

Streams follow OpenAI's framing: a first chunk with the role (and `content: ""`, or
`content: null` when only tools follow), the text in token-sized pieces, each tool call
as one chunk with its index, id, type, name and empty arguments then argument fragments,
a last chunk with an empty delta and `finish_reason` (`stop` or `tool_calls`), and with
`stream_options.include_usage` every chunk has `"usage": null` and a final chunk with no
choices carries the usage. Ids look real (`chatcmpl-...`, `call_...`), answers carry
`created`, `model` (as requested), `system_fingerprint`, `usage`, `x-request-id`.
Errors have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`: malformed
JSON and missing `model`/`messages` are 400, a wrong or missing key is 401 when the
stand-in was given an `api_key`, an unknown route is 404.

Not the model: replies are scripted per test, a queue of `Reply`s (text, tool calls, or
both; an HTTP error; an error event inside a stream), and with none queued the reply
echoes the last user message. `n`, logprobs, audio and the other endpoints are not
implemented. Every request received is recorded (method, path, headers, parsed body) so
tests can assert what reached the model, e.g. that a masked prompt arrived masked.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ALNUM = string.ascii_letters + string.digits
# Token-sized pieces, as a model streams them: words, runs of blanks, runs of symbols.
_PIECES = re.compile(r"\w+|\s+|[^\w\s]+")


def _random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


@dataclass(frozen=True)
class ToolCall:
    """A tool call the scripted model makes; `arguments` an object (sent as its JSON
    text) or the exact text to send (broken JSON included)."""

    name: str
    arguments: dict[str, Any] | str
    id: str | None = None  # default: a fresh call_... id

    @property
    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    `status` >= 400: an HTTP error answer with body `{"error": error}` (or `body`, for a
    refusal not in OpenAI's shape, as a gateway may answer in its place). Otherwise the
    model's text and/or tool calls; with `error` too, a stream sends it as an error event
    (`data: {"error": ...}`) after the text and ends without `[DONE]`, as the API does
    when a stream fails midway (a non-streamed answer carries it as its body).
    """

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    status: int = 200
    error: dict[str, Any] | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Received:
    """One request as the stand-in received it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body; None when absent or not JSON
    raw: bytes


def api_error(message: str, type_: str = "invalid_request_error", *, param: str | None = None,
              code: str | None = None) -> dict[str, Any]:
    """An error object as OpenAI shapes it."""
    return {"message": message, "type": type_, "param": param, "code": code}


class OpenAIStandIn:
    """The stand-in server (see the module doc). Use as a context manager, or
    `start()`/`stop()`; `base_url` is what `openai.OpenAI(base_url=...)` takes."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None,
                 models: tuple[str, ...] = ("gpt-4o", "gpt-4o-mini")) -> None:
        self.host = host
        self.api_key = api_key
        self.models = models
        self._port = port
        self._replies: deque[Reply] = deque()
        self._received: list[Received] = []
        self._state = threading.Condition()  # guards the replies and the received list
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}/v1"

    def start(self) -> OpenAIStandIn:
        self._server = _Server((self.host, self._port), _Handler, self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="openai-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> OpenAIStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting and what was received -----------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue replies; each chat request takes the next one."""
        with self._state:
            self._replies.extend(replies)

    @property
    def requests(self) -> list[Received]:
        with self._state:
            return list(self._received)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The requests received, once there are at least `count` (TimeoutError if not
        within `timeout` seconds)."""
        with self._state:
            if not self._state.wait_for(lambda: len(self._received) >= count, timeout):
                raise TimeoutError(f"{len(self._received)} requests, expected {count}")
            return list(self._received)

    def _record(self, request: Received) -> None:
        with self._state:
            self._received.append(request)
            self._state.notify_all()

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._state:
            if self._replies:
                return self._replies.popleft()
        return Reply(text="echo: " + _last_user_text(body.get("messages")))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 standin: OpenAIStandIn) -> None:
        super().__init__(address, handler)
        self.standin = standin

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away (the openai client does, on an error event) is normal."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as the API serves
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on `requests`, not on a log."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        standin = self.server.standin
        raw = self._body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        standin._record(Received(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, raw
        ))
        path = self.path.split("?", 1)[0]
        route = (self.command, path)
        if route not in (("POST", "/v1/chat/completions"), ("GET", "/v1/models")):
            self._json(404, {"error": api_error(f"Invalid URL ({self.command} {path})")})
            return
        refusal = self._auth_error(standin.api_key)
        if refusal is not None:
            self._json(401, {"error": refusal})
        elif route == ("GET", "/v1/models"):
            created = int(time.time())
            self._json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": created, "owned_by": "system"}
                for m in standin.models
            ]})
        else:
            self._chat(body)

    def _body(self) -> bytes:
        """The request body: sized, or chunked (as Envoy forwards a body it rewrote)."""
        if "chunked" not in self.headers.get("transfer-encoding", "").lower():
            return self.rfile.read(int(self.headers.get("content-length") or 0))
        parts = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after the chunk
        while self.rfile.readline().strip():
            pass  # trailers, up to the blank line
        return b"".join(parts)

    def _auth_error(self, api_key: str | None) -> dict[str, Any] | None:
        if api_key is None:
            return None
        sent = self.headers.get("authorization", "")
        if not sent:
            return api_error("You didn't provide an API key. You need to provide your API "
                             "key in an Authorization header using Bearer auth (i.e. "
                             "Authorization: Bearer YOUR_KEY).")
        if sent != f"Bearer {api_key}":
            key = sent.removeprefix("Bearer ")
            return api_error(f"Incorrect API key provided: {key[:3]}***{key[-4:]}.",
                             code="invalid_api_key")
        return None

    def _chat(self, body: Any) -> None:
        if not isinstance(body, dict):
            self._json(400, {"error": api_error(
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.")})
            return
        for name in ("model", "messages"):
            if name not in body:
                self._json(400, {"error": api_error(
                    f"Missing required parameter: '{name}'.", param=name,
                    code="missing_required_parameter")})
                return
        reply = self.server.standin._next_reply(body)
        if reply.status >= 400:
            refusal = reply.body if reply.body is not None else {"error": reply.error}
            self._json(reply.status, refusal)
            return
        completion = _Completion(reply, body)
        if body.get("stream") is True:
            self._stream(completion)
        else:
            self._json(200, completion.whole())

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", _random_id("req_", 32))
        self.send_header("openai-version", "2020-10-01")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, completion: _Completion) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("x-request-id", _random_id("req_", 32))
        self.send_header("openai-version", "2020-10-01")
        self.end_headers()
        try:
            for event in completion.events():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except ConnectionError:
            self.close_connection = True  # the client went away mid-stream: nothing to do


class _Completion:
    """One scripted reply rendered as a completion, whole or as stream events."""

    def __init__(self, reply: Reply, request: dict[str, Any]) -> None:
        self.reply = reply
        self.id = _random_id("chatcmpl-", 29)
        self.created = int(time.time())
        self.model = request["model"]
        self.fingerprint = "fp_" + secrets.token_hex(5)
        self.calls = [(c, c.id or _random_id("call_", 24)) for c in reply.tool_calls]
        options = request.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.prompt_tokens = sum(len(_PIECES.findall(_text(m))) for m in
                                 request.get("messages") or () if isinstance(m, dict))
        self.completion_tokens = len(_PIECES.findall(reply.text or "")) + sum(
            len(_PIECES.findall(c.arguments_text)) for c in reply.tool_calls)
        self.finish_reason = "tool_calls" if reply.tool_calls else "stop"

    def _usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        }

    def _envelope(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def whole(self) -> dict[str, Any]:
        if self.reply.error is not None:
            return {"error": self.reply.error}
        message: dict[str, Any] = {"role": "assistant", "content": self.reply.text,
                                   "refusal": None, "annotations": []}
        if self.calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments_text}}
                for c, call_id in self.calls
            ]
        return {
            **self._envelope("chat.completion"),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": self.finish_reason}],
            "usage": self._usage(),
            "service_tier": "default",
            "system_fingerprint": self.fingerprint,
        }

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk = {
            **self._envelope("chat.completion.chunk"),
            "service_tier": "default",
            "system_fingerprint": self.fingerprint,
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return _event(chunk)

    def events(self) -> Iterator[bytes]:
        """The stream, one server-sent event at a time."""
        text = self.reply.text
        # The role opens the stream; with no text, it rides on the first tool call.
        role: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if text or not self.calls:
            yield self._chunk({**role, "content": ""})
            role = {}
        for piece in _PIECES.findall(text or ""):
            yield self._chunk({"content": piece})
        if self.reply.error is not None:
            yield _event({"error": self.reply.error})
            return
        for index, (call, call_id) in enumerate(self.calls):
            yield self._chunk({**role, "tool_calls": [{
                "index": index, "id": call_id, "type": "function",
                "function": {"name": call.name, "arguments": ""}}]})
            role = {}
            for piece in _PIECES.findall(call.arguments_text):
                yield self._chunk({"tool_calls": [{"index": index,
                                                   "function": {"arguments": piece}}]})
        yield self._chunk({}, self.finish_reason)
        if self.include_usage:
            yield _event({**self._envelope("chat.completion.chunk"), "service_tier": "default",
                          "system_fingerprint": self.fingerprint, "choices": [],
                          "usage": self._usage()})
        yield b"data: [DONE]\n\n"


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content
                         if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


def _last_user_text(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message)
    return ""
