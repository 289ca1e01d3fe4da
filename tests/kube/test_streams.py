"""The stream relay's outboxes when their peer closes first, over real WebSockets.

The pod's command can end, and the API server close its side, while the client's stdin
(or its v5 close signal) is still on its way: what tollgate then has for the pod must not
end the stream, or the pod's last output and Status, read after its close, are cut off
(kubectl exits 0 with nothing printed). A client that closed still ends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from extproc.codecs import k8s_channels as ch
from extproc.kube.streams import Outbox


@pytest.fixture
async def closed_peer() -> AsyncIterator[ClientConnection]:
    """A connection whose server end has closed it (as the API server does after the
    Status), its close handshake done."""

    async def close_at_once(server: ServerConnection) -> None:
        await server.close(1000, "")

    async with serve(close_at_once, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as peer:
            await peer.wait_closed()
            yield peer


async def test_what_is_left_for_a_pod_that_closed_is_dropped(
    closed_peer: ClientConnection,
) -> None:
    outbox = Outbox(closed_peer, 5, "the pod", outlived=True)
    outbox.put(bytes((ch.CLOSE, ch.STDIN)))  # the client's close, after the pod's end
    async with asyncio.timeout(5):
        await outbox.run()  # returns: the stream goes on to the pod's output and Status
        outbox.put(b"\x00more stdin")
        await outbox.drain()
        await outbox.flushed()


async def test_a_client_that_closed_ends_the_stream(closed_peer: ClientConnection) -> None:
    outbox = Outbox(closed_peer, 5)
    outbox.put(b"\x01output")
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(5):
            await outbox.run()
