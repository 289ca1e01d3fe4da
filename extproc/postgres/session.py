"""One PostgreSQL session, once logged in: every statement decided, every result masked.

Two loops relay the session, and this module is only them: reading the sockets, feeding
what they read to the session's parts, writing what those give back. The client's loop
reads the agent's messages in order and has each decided (client.py) where its text
enters the database, holding the rest of the stream while a decision waits (a human's
approval, the planner's estimate). The database's loop feeds the answers to a sans-IO
machine (answers.py) that masks the rows and ends each exchange when its last answer has
gone by, and writes to the client what it returns.

The parts share one explicit state (state.py): the exchanges waiting for answers, the
transaction's status, the batch in progress, the names of prepared statements and
portals (names.py). A refused message goes upstream as a stand-in whose error is
replaced by tollgate's refusal (refusals.py); the front's own questions (questions.py)
and a limited write's measured run (measured.py) go in the same upstream connection,
their answers to the front alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from extproc.codecs.refusal import Refusal, Refused
from extproc.exchange.act import Opener
from extproc.exchange.cancels import unread
from extproc.exchange.lock_waits import Holding
from extproc.postgres import encodings
from extproc.postgres import messages as pg
from extproc.postgres.answers import Answers
from extproc.postgres.client import Client
from extproc.postgres.measured import Measuring
from extproc.postgres.questions import ESTIMATE_SECONDS, Questions
from extproc.postgres.refusals import Fatal
from extproc.postgres.state import Run, State, end
from extproc.postgres.upstream import Upstream

if TYPE_CHECKING:
    from extproc.exchange.live import LiveSession

log = logging.getLogger("tollgate.postgres")

_READ_SIZE = 256 * 1024


class Session:
    """One logged-in client and its upstream connection, relayed until either ends."""

    def __init__(self, opener: Opener,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 upstream: Upstream, context: dict[str, Any], max_message: int,
                 first: bytes = b"") -> None:
        self._open = opener
        self._reader, self._writer, self._upstream = reader, writer, upstream
        # A statement waiting (for a moderator) is told why in a NOTICE, which psql shows.
        opener.tell = lambda text: writer.write(pg.notice(text))
        self.context = context
        self._max = max_message
        # What the client sent before its login ended (the session's first bytes), and
        # how many bytes of the client's the session has read, those with them.
        self._first, self._read = first, len(first)
        self.state = State(opener, context, encodings.Wire(
            context["encoding"], encodings.readable(
                upstream.parameters.get("server_encoding", ""))),
            upstream.transaction_status)
        self._questions = Questions(self.state, upstream.writer)
        self._client = Client(self.state, self._questions,
                              Measuring(self.state, self._questions, writer), writer)
        self._answers = Answers(self.state, max_message)

    @property
    def wire(self) -> encodings.Wire:
        """The session's encoding, as the database's changes it (front.py speaks it)."""
        return self.state.wire

    async def cancel(self, send: Callable[[], Awaitable[None]]) -> str:
        """The client's CancelRequest: the database's (`send`) goes only while what the
        backend runs is the client's (cancels.py); what became of it."""
        pending = self.state.pending
        return await self.state.cancels.cancel(
            lambda: [p.probe.done for p in pending
                     if p.probe is not None and not p.probe.cancellable],
            lambda: any(p.probe is None and not p.own for p in pending),
            send, ESTIMATE_SECONDS,
            lambda: self._read + unread(self._reader, self._writer))

    @property
    def live(self) -> LiveSession:
        """The session as listed among those open (the front listed it at login)."""
        assert self._open.live is not None
        return self._open.live

    def holding(self) -> Holding | None:
        """The session, while its transaction is open (the locks its statements took
        are held till it ends: exchange/lock_waits.py asks who waits on them)."""
        if self.state.status == b"I" or self._open.target is None or self._open.live is None:
            return None
        return Holding(self._open.live.session_id, self._open.identity, self._open.target,
                       self._upstream.process_id)

    async def relay(self) -> None:
        """Both directions until either side ends; every exchange still open ends then."""
        client = asyncio.ensure_future(self._from_client())
        server = asyncio.ensure_future(self._from_server())
        try:
            done, _ = await asyncio.wait((client, server), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failure in either: logged by the caller
        finally:
            for task in (client, server):
                task.cancel()
            await asyncio.gather(client, server, return_exceptions=True)
            self.state.cancels.ended()
            # Closed here, not left to the collector: over TLS nothing else closes it,
            # and the server's backend would wait for it until the gateway stops.
            self._upstream.close()
            pending = self.state.pending
            while pending:
                end(pending.popleft(), self.state.ended or "connection closed before its answer")

    # -- the client's messages ---------------------------------------------------------

    async def _from_client(self) -> None:
        try:
            await self._client_loop()
        except (Fatal, pg.ProtocolViolation) as exc:
            self._violation(str(exc))

    def _violation(self, problem: str) -> None:
        """Bad input from the client ends the session: recorded as a refused exchange,
        answered with a FATAL protocol_violation naming its trace."""
        answer = self.state.act("PROTOCOL", None).refuse(
            Refused(400, "protocol_violation", problem))
        self._client_error(pg.error("08P01", f"tollgate: {problem}",
                                    detail=f"trace id {answer.trace_id}", severity="FATAL"))

    async def _client_loop(self) -> None:
        framer = pg.Framer(pg.FRONTEND_KINDS, self._max)
        upstream, client, cancels = self._upstream.writer, self._client, self.state.cancels
        data = self._first
        while True:
            if not data:
                data = await self._reader.read(_READ_SIZE)
                self._read += len(data)
            if not data:
                if framer.buffered:
                    raise Fatal(f"the connection closed {framer.buffered} bytes into a "
                                "message (a truncated message)")
                return
            out: list[bytes] = []
            for message in framer.feed(data):
                if message.kind == b"X":
                    return
                if (message.kind in (b"Q", b"P", b"F") or client.waits(message)) and out:
                    # A decision may wait (a hold): what came before it goes first.
                    upstream.write(b"".join(out))
                    out.clear()
                cancels.deciding(True)
                try:
                    out += await client.message(message)
                finally:
                    cancels.deciding(False)
                # Upstream before the session next waits: a cancel that came after these
                # bytes arrived finds what they became there (exchange/cancels.py).
                cancels.passed(message.size)
            if out:
                upstream.write(b"".join(out))
            await upstream.drain()
            data = b""

    # -- the database's answers --------------------------------------------------------

    async def _from_server(self) -> None:
        encodings.reading_answers()
        try:
            await self._server_loop()
        except (Fatal, pg.ProtocolViolation) as exc:
            log.error("session %s: %s", self.context["policy"]["session_id"], exc)
            self._client_error(pg.error("08P01", f"tollgate: the database's answer cannot "
                                        f"be relayed: {exc}", severity="FATAL"))

    async def _server_loop(self) -> None:
        reader, client, answers = self._upstream.reader, self._writer, self._answers
        while True:
            try:
                data = await reader.read(_READ_SIZE)
            except ConnectionError:
                data = b""
            if not data:
                self._client_error(answers.closed())
                return
            out = answers.feed(data)
            own = answers.sent()
            if own:
                self._upstream.writer.write(own)
            self._questions.answered()
            if answers.unkept and not await self._kept(answers.unkept):
                return
            if out:
                client.write(out)
                await client.drain()

    async def _kept(self, runs: list[Run]) -> bool:
        """The fingerprints of the rows about to go on kept first (activity/flow.py);
        False where the store cannot keep them: the session ends, the rows unsent."""
        try:
            while runs:
                await runs.pop(0).keep()
        except Refusal as bad:
            log.error("session %s: %s", self.context["policy"]["session_id"], bad.message)
            self._client_error(pg.error("58000", f"tollgate: {bad.message}",
                                        severity="FATAL"))
            return False
        return True

    def _client_error(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            self._writer.write(message)
