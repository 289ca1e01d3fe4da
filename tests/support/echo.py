"""A local TCP server that answers each connection's bytes upper-cased, then closes: what
a pod's port answers in the Kubernetes stand-in's port-forwards, and a replica of a
front behind Envoy that a test kills and starts again on its port."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class UpperEcho:
    """The server on `port` (0: a free one, then kept), started and stopped at will;
    `answered` counts the connections that sent something (a TCP health check sends
    nothing)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.answered = 0
        self._server: socket.socket | None = None

    def start(self) -> UpperEcho:
        self._server = server = socket.create_server(("127.0.0.1", self.port))
        self.port = server.getsockname()[1]
        threading.Thread(target=self._serve, args=(server,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Its port refuses connections from now on."""
        if self._server is not None:
            # shutdown wakes the thread in accept(), which close alone leaves accepting
            # on the socket it still holds.
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None

    def _serve(self, server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(1024)
                if data:
                    self.answered += 1
                    conn.sendall(data.upper())


@contextlib.contextmanager
def upper_echo() -> Iterator[int]:
    """The server's port, while the block runs."""
    echo = UpperEcho().start()
    try:
        yield echo.port
    finally:
        echo.stop()
