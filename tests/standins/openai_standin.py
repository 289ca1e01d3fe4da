"""A STAND-IN for a hosted OpenAI-compatible LLM API, which cannot be reached (or
installed) from this machine.

It is an HTTP server on 127.0.0.1 that answers the routes tollgate's LLM targets use
(`POST /v1/chat/completions`, `GET /v1/models`) in OpenAI's wire format, as
extproc/quickstart/openai_wire.py renders it (read there: whole answers, streams, errors), so that
the real `openai` client, and Envoy in front of it, see the real thing. A wrong or
missing key is 401 when the stand-in was given an `api_key`, an unknown route is 404.

Not the model: replies are scripted per test, a queue of `Reply`s (text, tool calls, or
both; an HTTP error; an error event inside a stream), and with none queued the reply
echoes the last user message. `n`, logprobs, audio and the other endpoints are not
implemented. Every request received is recorded (method, path, headers, parsed body) so
tests can assert what reached the model, e.g. that a masked prompt arrived masked.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from extproc.quickstart.openai_wire import (
    Reply,
    ToolCall,
    api_error,
    chat_request_error,
    message_text,
    model_list,
    read_body,
    send_json,
    send_reply,
)

# The wire types are the tests' vocabulary for scripting too.
__all__ = ["OpenAIStandIn", "Received", "Reply", "ToolCall", "api_error"]


@dataclass(frozen=True)
class Received:
    """One request as the stand-in received it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body; None when absent or not JSON
    raw: bytes


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
        raw = read_body(self)
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
            send_json(self, 404, {"error": api_error(f"Invalid URL ({self.command} {path})")})
            return
        refusal = self._auth_error(standin.api_key)
        if refusal is not None:
            send_json(self, 401, {"error": refusal})
        elif route == ("GET", "/v1/models"):
            send_json(self, 200, model_list(standin.models))
        elif (error := chat_request_error(body)) is not None:
            send_json(self, 400, {"error": error})
        else:
            send_reply(self, standin._next_reply(body), body)

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


def _last_user_text(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""
