"""OpenAI's chat completions wire format, for the servers here that answer as a model.

The demo upstream's scripted model (`tollgate up`) and the tests' stand-in for a hosted
model (tests/standins/openai_standin.py) answer the way api.openai.com answers, so that the real
clients in front of them (the `openai` package, AutoGen, AG2), and Envoy between, see
the real wire format:

    a whole answer      a `chat.completion` JSON
    a streamed answer   with `"stream": true`, a `text/event-stream` (chunked transfer)
                        of `chat.completion.chunk` events, one write and flush each,
                        ending with `data: [DONE]`
    the model list      `{"object": "list", "data": [{"id", "object": "model", ...}]}`

Streams follow OpenAI's framing: a first chunk with the role (and `content: ""`, or
`content: null` when only tools follow), the text in token-sized pieces, each tool call
as one chunk with its index, id, type, name and empty arguments then argument fragments,
a last chunk with an empty delta and `finish_reason` (`stop` or `tool_calls`), and with
`stream_options.include_usage` every chunk has `"usage": null` and a final chunk with no
choices carries the usage. Ids look real (`chatcmpl-...`, `call_...`), answers carry
`created`, `model` (as requested), `system_fingerprint`, `usage`, `x-request-id`.
Errors have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`; a request
body that is not JSON, or lacks `model` or `messages`, is a 400 as the API words it.

What is said (the `Reply`) is the caller's: this module only says it in the format.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

_ALNUM = string.ascii_letters + string.digits
# Token-sized pieces, as a model streams them: words, runs of blanks, runs of symbols.
_PIECES = re.compile(r"\w+|\s+|[^\w\s]+")


def random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


@dataclass(frozen=True)
class ToolCall:
    """A tool call a model makes; `arguments` an object (sent as its JSON text) or the
    exact text to send (broken JSON included)."""

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
    """One answer.

    `status` >= 400: an HTTP error answer with body `{"error": error}` (or `body`, for a
    refusal not in OpenAI's shape, as a gateway may answer in its place). Otherwise the
    model's text and/or tool calls; with `error` too, a stream sends it as an error event
    (`data: {"error": ...}`) after the text and ends without `[DONE]`, as the API does
    when a stream fails midway (a non-streamed answer carries it as its body). `usage`:
    the token counts the answer reports (`prompt_tokens`, `completion_tokens`) in place
    of its own, as a model or a proxy in front of one may misreport them.
    """

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    status: int = 200
    error: dict[str, Any] | None = None
    body: dict[str, Any] | None = None
    usage: tuple[int, int] | None = None


def api_error(message: str, type_: str = "invalid_request_error", *, param: str | None = None,
              code: str | None = None) -> dict[str, Any]:
    """An error object as OpenAI shapes it."""
    return {"message": message, "type": type_, "param": param, "code": code}


def chat_request_error(body: Any) -> dict[str, Any] | None:
    """The API's error for a chat request it would refuse with a 400 (None: it is one)."""
    if not isinstance(body, dict):
        return api_error(
            "We could not parse the JSON body of your request. (HINT: This likely means "
            "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
            "payload, but what was sent was not valid JSON.")
    for name in ("model", "messages"):
        if name not in body:
            return api_error(f"Missing required parameter: '{name}'.", param=name,
                             code="missing_required_parameter")
    return None


def model_list(models: tuple[str, ...]) -> dict[str, Any]:
    created = int(time.time())
    return {"object": "list", "data": [
        {"id": m, "object": "model", "created": created, "owned_by": "system"} for m in models
    ]}


def message_text(message: dict[str, Any]) -> str:
    """A message's content as text: a string, or the text parts of a list."""
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content
                         if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


# -- on an http.server handler -----------------------------------------------------


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body: sized, or chunked (as Envoy forwards a body it rewrote)."""
    if "chunked" not in handler.headers.get("transfer-encoding", "").lower():
        return handler.rfile.read(int(handler.headers.get("content-length") or 0))
    parts = []
    while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
        parts.append(handler.rfile.read(size))
        handler.rfile.readline()  # the CRLF after the chunk
    while handler.rfile.readline().strip():
        pass  # trailers, up to the blank line
    return b"".join(parts)


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    handler.send_header("x-request-id", random_id("req_", 32))
    handler.send_header("openai-version", "2020-10-01")
    handler.end_headers()
    handler.wfile.write(data)


def send_reply(handler: BaseHTTPRequestHandler, reply: Reply, request: dict[str, Any]) -> None:
    """`reply` to the chat `request`: an error answer, a whole completion, or a stream."""
    if reply.status >= 400:
        send_json(handler, reply.status,
                  reply.body if reply.body is not None else {"error": reply.error})
        return
    completion = Completion(reply, request)
    if request.get("stream") is not True:
        send_json(handler, 200, completion.whole())
        return
    handler.send_response(200)
    handler.send_header("content-type", "text/event-stream; charset=utf-8")
    handler.send_header("transfer-encoding", "chunked")
    handler.send_header("x-request-id", random_id("req_", 32))
    handler.send_header("openai-version", "2020-10-01")
    handler.end_headers()
    try:
        for event in completion.events():
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
    except ConnectionError:
        handler.close_connection = True  # the client went away mid-stream: nothing to do


class Completion:
    """One reply rendered as a completion, whole or as stream events."""

    def __init__(self, reply: Reply, request: dict[str, Any]) -> None:
        self.reply = reply
        self.id = random_id("chatcmpl-", 29)
        self.created = int(time.time())
        self.model = request["model"]
        self.fingerprint = "fp_" + secrets.token_hex(5)
        self.calls = [(c, c.id or random_id("call_", 24)) for c in reply.tool_calls]
        options = request.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.prompt_tokens = sum(len(_PIECES.findall(message_text(m))) for m in
                                 request.get("messages") or () if isinstance(m, dict))
        self.completion_tokens = len(_PIECES.findall(reply.text or "")) + sum(
            len(_PIECES.findall(c.arguments_text)) for c in reply.tool_calls)
        if reply.usage is not None:
            self.prompt_tokens, self.completion_tokens = reply.usage
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
