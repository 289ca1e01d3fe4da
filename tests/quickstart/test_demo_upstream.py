"""The demo upstream `tollgate up` runs: a client that goes away is not a traceback."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from extproc.quickstart.demo_upstream import DemoUpstream


def test_a_client_resetting_a_keep_alive_connection_prints_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = DemoUpstream().start()
    try:
        before = threading.active_count()
        client = socket.create_connection(("127.0.0.1", server.port))
        client.sendall(b"GET /api/customers HTTP/1.1\r\nhost: demo\r\n\r\n")
        assert client.recv(12, socket.MSG_WAITALL) == b"HTTP/1.1 200"
        # The server now waits for the next request on this connection; a reset ends it.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        deadline = time.monotonic() + 10
        while threading.active_count() > before:  # the connection's thread has ended
            assert time.monotonic() < deadline, "the connection's thread did not end"
            time.sleep(0.01)
    finally:
        server.stop()
    assert "Exception occurred" not in capsys.readouterr().err
