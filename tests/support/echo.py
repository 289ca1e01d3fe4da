"""A local TCP server that answers each connection's bytes upper-cased, then closes: what
a pod's port answers in the Kubernetes stand-in's port-forwards."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def upper_echo() -> Iterator[int]:
    """The server's port, while the block runs."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        def serve() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(conn.recv(1024).upper())

        threading.Thread(target=serve, daemon=True).start()
        yield server.getsockname()[1]
