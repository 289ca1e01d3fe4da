"""A database front's listener: one task per client connection, each given a grace at
stop, and a client told why when tollgate stops under it.

The PostgreSQL and MySQL fronts speak their protocols on asyncio streams behind Envoy's
tcp_proxy; what differs is the session (`serve`) and the protocol's words for "the
server is shutting down" (`goodbye`). The SSH and Kubernetes fronts run on their
libraries' servers, which keep their own connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod

log = logging.getLogger("tollgate.fronts")


class StreamListener(ABC):
    """Serves `protocol` clients on `address` until stopped."""

    def __init__(self, protocol: str, address: tuple[str, int]) -> None:
        self._protocol, self._address = protocol, address
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        host, port = self._address
        try:
            self._server = await asyncio.start_server(self._accept, host, port)
        except OSError as exc:
            raise OSError(f"cannot listen for {self._protocol} clients on {host}:{port}: "
                          f"{exc.strerror}") from None

    async def stop(self, grace: float) -> None:
        """No new sessions; those open get `grace` seconds, then are closed."""
        if self._server is not None:
            self._server.close()
        if self._sessions:
            _, running = await asyncio.wait(self._sessions, timeout=grace)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    @abstractmethod
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client's connection, from its first byte to its end."""

    @abstractmethod
    def goodbye(self) -> bytes:
        """What a client in session is sent when tollgate stops under it."""

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self.serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away, or never logged in in time
        except asyncio.CancelledError:
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.write(self.goodbye())
        except Exception:
            log.exception("%s session failed", self._protocol)
        finally:
            self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
