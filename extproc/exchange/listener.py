"""A database front's listener: one task per client connection, each given a grace at
stop, and a client told why when tollgate stops under it; and what else a database front
is before its protocol: its targets, the TLS its clients see, and the gateway's own way
to the targets' servers.

The PostgreSQL and MySQL fronts speak their protocols on asyncio streams behind Envoy's
tcp_proxy; what differs is the session (`serve`) and the protocol's words for "the
server is shutting down" or "an administrator ended this session" (`goodbye`): a
session ended through the admin API (live.py) stops relaying, its client told why.
The SSH and Kubernetes fronts run on their libraries' servers, which keep their own
connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extproc.config import Target
from extproc.exchange import lock_waits
from extproc.exchange.session_limits import SessionLimits

if TYPE_CHECKING:
    from extproc.exchange.live import LiveSession
    from extproc.exchange.pipeline import Pipeline

SHUTTING_DOWN = "tollgate is shutting down"

log = logging.getLogger("tollgate.fronts")


class StreamListener(ABC):
    """Serves `protocol` clients on `address` until stopped."""

    def __init__(self, protocol: str, address: tuple[str, int]) -> None:
        self._protocol, self._address = protocol, address
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        host, port = self._address
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Watched(asyncio.StreamReader(), self._accept), host, port)
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
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    gone: asyncio.Event) -> None:
        """One client's connection, from its first byte to its end; `gone` is set once
        the client has closed it (a hold stops waiting then)."""

    @abstractmethod
    def goodbye(self, reason: str = SHUTTING_DOWN) -> bytes:
        """What a client in session is sent when tollgate stops under it, or its session
        is ended (`reason`), in the protocol's words for an administrator's end."""

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      gone: asyncio.Event) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self.serve(reader, writer, gone)
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


class _Watched(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, which also tells when the client closed its side
    (`gone`), whether or not anything reads: a session waiting on a decision reads
    nothing, and its client may have left meanwhile."""

    def __init__(self, reader: asyncio.StreamReader,
                 accept: Callable[[asyncio.StreamReader, asyncio.StreamWriter,
                                   asyncio.Event], Awaitable[None]]) -> None:
        self.gone = asyncio.Event()
        super().__init__(reader, lambda r, w: accept(r, w, self.gone))

    def eof_received(self) -> bool:
        self.gone.set()
        return bool(super().eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone.set()
        super().connection_lost(exc)


class DatabaseFront(StreamListener):
    """A database front: `protocol`'s clients served on `address`, for the targets of
    `kind` (each by the database it serves), their acts opened on `pipeline`, with `tls`
    where clients ask for it (None: no certificate), each identity's sessions counted
    (session_limits.py); the targets' servers reached with the gateway's credentials,
    and files their settings name resolved by `resolve`. `front_log`: where the front
    says what it serves."""

    def __init__(self, protocol: str, kind: str, address: tuple[str, int],
                 pipeline: Pipeline, targets: Sequence[Target], tls: ssl.SSLContext | None,
                 resolve: Callable[[Path], Path], front_log: logging.Logger) -> None:
        super().__init__(protocol, address)
        self._pipeline = pipeline
        self._targets = {t.match.database: t for t in targets
                         if t.protocol == kind and t.match.database}
        self._tls, self._resolve = tls, resolve
        self._limits = SessionLimits()
        self._log = front_log
        # Who waits on the locks its sessions hold (lock_waits.py), asked while any
        # session is in a transaction.
        self._watch = lock_waits.watch(self.holdings, self.lock_waits, pipeline)

    @abstractmethod
    def holdings(self) -> Iterable[lock_waits.Holding]:
        """This front's sessions in an open transaction now."""

    @abstractmethod
    async def lock_waits(self, target: Target,
                         upstream_ids: Sequence[int]) -> list[lock_waits.Waiter]:
        """The sessions of `target`'s server that wait on a lock one of these of its
        connections holds, asked on a connection of the gateway's own."""

    async def start(self) -> None:
        await super().start()
        self._watch.start()
        self._log.info("serving %s clients on %s:%d (%d targets, TLS %s)", self._protocol,
                       *self._address, len(self._targets),
                       "on" if self._tls else "off: no tls_cert_file")

    async def stop(self, grace: float) -> None:
        await self._watch.close()
        await super().stop(grace)

    async def relay_until_ended(self, relay: Coroutine[Any, Any, None], live: LiveSession,
                                writer: asyncio.StreamWriter) -> None:
        """The session's `relay`, until it ends, or until the session is ended (live.py):
        then the relay stops (its exchanges in progress end), the client is told why
        (`goodbye`) and the connection closes. The session is unlisted either way."""
        relaying = asyncio.ensure_future(relay)
        ended = asyncio.ensure_future(live.ended.wait())
        try:
            await asyncio.wait((relaying, ended), return_when=asyncio.FIRST_COMPLETED)
            if not relaying.done():
                relaying.cancel()
                await asyncio.gather(relaying, return_exceptions=True)
                with contextlib.suppress(ConnectionError, RuntimeError):
                    writer.write(self.goodbye(live.farewell()))
                    await writer.drain()
                self._log.info("%s session %s ended by %s: %s", self._protocol,
                               live.session_id, live.by, live.reason)
            else:
                relaying.result()
        finally:
            ended.cancel()
            relaying.cancel()
            self._pipeline.live.close(live)

    def _password(self, target: Target) -> str | None:
        """The gateway's own password on `target`'s server (None: it has none)."""
        secret = self._pipeline.credential(target).value
        return secret.decode("utf-8") if secret else None

    def _path(self, path: Path | None) -> Path | None:
        """A file a target's settings name, where the configuration says it is."""
        return None if path is None else self._resolve(path)
