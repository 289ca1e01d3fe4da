"""A real HTTP server on a free port of 127.0.0.1, in a thread of its own, for what tollgate
calls out to in tests (a webhook, an identity provider's key set, a scripted upstream): it
answers every request with `answer(method, path, body)` — a status and a body, JSON unless
a content type follows — and keeps what it received."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[str, str, bytes], tuple[int, bytes] | tuple[int, bytes, str]]


class Received:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


class LocalServer:
    def __init__(self, answer: Answer, path: str = "/") -> None:
        self.received: list[Received] = []
        served = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                served.received.append(Received(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                    body))
                status, reply, *content_type = answer(self.command, self.path, body)
                self.send_response(status)
                self.send_header("content-type", content_type[0] if content_type
                                 else "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port of 127.0.0.1 that refuses connections for as long as it is held: bound, not
    listening, so no server started meanwhile (a gateway's, a test's) can take it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]
