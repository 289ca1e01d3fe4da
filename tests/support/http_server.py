"""A real HTTP server on a free port of 127.0.0.1, in a thread of its own, for what tollgate
calls out to in tests (a webhook, an identity provider's key set, a scripted upstream): it
answers every request with `answer(method, path, body)` — a status and a body, JSON unless
a content type follows — and keeps what it received. Given TLS files it speaks HTTPS (an
egress destination that clients verify); a `Streamed` body is written as it is made (a
throughput test's hundreds of megabytes)."""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.tls import TlsFiles


@dataclass(frozen=True)
class Streamed:
    """A body of `length` bytes sent chunk by chunk, never held whole (`length` None: not
    announced, the body ends as the server closes the connection, HTTP/1.0's way)."""

    length: int | None
    chunks: Iterable[bytes]


Body = bytes | Streamed
Answer = Callable[[str, str, bytes], tuple[int, Body] | tuple[int, Body, str]]


class Received:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


class LocalServer:
    def __init__(self, answer: Answer, path: str = "/", tls: TlsFiles | None = None) -> None:
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
                size, chunks = ((reply.length, reply.chunks) if isinstance(reply, Streamed)
                                else (len(reply), (reply,)))
                if size is not None:
                    self.send_header("content-length", str(size))
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(chunk)

            do_GET = do_POST = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        context = None
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls.cert, tls.key)
            context.set_alpn_protocols(["http/1.1"])
        self._server = _Server(Handler, context)
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    def __init__(self, handler: type[BaseHTTPRequestHandler],
                 context: ssl.SSLContext | None) -> None:
        self._context = context
        super().__init__(("127.0.0.1", 0), handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """The TLS handshake is left to the first read, in the request's own thread, so a
        client that never finishes one holds up no other."""
        connection, address = super().get_request()
        if self._context is not None:
            connection = self._context.wrap_socket(connection, server_side=True,
                                                   do_handshake_on_connect=False)
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer, or refused the certificate, is no error of
        the server's: not worth a traceback."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port of 127.0.0.1 that refuses connections for as long as it is held: bound, not
    listening, so no server started meanwhile (a gateway's, a test's) can take it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]
