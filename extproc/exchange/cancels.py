"""A client's cancel and the gateway's own statements, kept apart.

A cancel (PostgreSQL's CancelRequest, MySQL's KILL QUERY) makes the database interrupt
whatever the session's backend runs at that instant. Through tollgate the backend also
runs the gateway's own statements: the estimate's and reach's questions and the
transaction or savepoint around them, the readings of a measured write, the release or
rollback of its savepoint, the COMMIT of a transaction the front opened. A cancel that
lands on one of those leaves the session other than the gateway pictures it: its own
ROLLBACK interrupted before it ran leaves the transaction failed (every later statement
fails with PostgreSQL's 25P02: asyncpg's COPY, which sends its cancel right behind its
CopyFail while the gateway is still asking the catalog about the table, met exactly that
under load), and a refused write whose rollback is interrupted would stay in the
client's transaction.

So the database's cancel goes only while nothing of the gateway's that a cancel could
break is outstanding, and only if something of the client's is; the gateway sends
nothing of its own while a cancel is on its way. A cancel that comes while the gateway
is still deciding the client's statement (asking the catalog) is the gateway's to carry
out, where the front says so (`deciding`): the statement is answered as cancelled and
never runs. What the client sent before its cancel counts as outstanding from the
moment it reaches this host, read or not: a session busy elsewhere, or whose stream is
paused, leaves the statement in its socket or stream while the cancel's own connection
is served (asyncpg's test_cancellation_03 met exactly that under load, its statement
run whole, the transaction left good). So a cancel waits until the session has passed
on every byte that had arrived when it came (`arrived`, `passed`): a statement among
them decided meanwhile takes it, one sent on meets the database's cancel. Only one
that comes while nothing of the client's is received, decided or run has nothing to
interrupt, as at an idle backend. The readings around a measured write may be
interrupted: the reading fails, and the write is refused and rolled back, which is what
the client asked for.

Both databases let the cancel's connection end only once the backend is told, and drop
a cancel that reaches a backend waiting for its next statement: once the cancel is done,
what the gateway sends next is safe from it.
"""

from __future__ import annotations

import asyncio
import fcntl
import struct
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

SENT = "cancel sent"
TAKEN = "cancel taken: the statement being decided does not run"
NOTHING = "cancel not sent: nothing of the client's was running"


@dataclass(eq=False)
class _Owed:
    """A cancel waiting for the session to pass on the bytes before `until` (the end of
    what had arrived when it came); `taken` once a statement among them took it."""

    until: int
    taken: bool = False


class CancelGate:
    """One session's cancels, and its own statements' turn."""

    def __init__(self) -> None:
        self._sending: asyncio.Future[None] | None = None
        # A client's message is being read and decided; a cancel came meanwhile.
        self._deciding = self._wanted = False
        # How many of the client's bytes the session has decided and passed on; the
        # cancels waiting for more of them; what wakes those when something changes.
        self._passed = 0
        self._owed: list[_Owed] = []
        self._moved: asyncio.Future[None] | None = None
        self._ended = False

    def deciding(self, now: bool) -> None:
        """The session begins (True) or ends (False) deciding a client's message; a
        cancel its decision did not take goes with it."""
        self._deciding = now
        self._wanted = False
        self._move()

    def passed(self, count: int) -> None:
        """The session decided and passed on the client's next `count` bytes (a message:
        what it became is upstream before the session next waits)."""
        self._passed += count
        self._move()

    def ended(self) -> None:
        """The session relays no more: a cancel still waiting has nothing to interrupt."""
        self._ended = True
        self._move()

    def take(self) -> bool:
        """Whether a cancel came for the statement just decided (then it does not run):
        while it was decided, or before its bytes were passed on."""
        owed = [o for o in self._owed if o.until > self._passed]
        wanted, self._wanted = self._wanted or bool(owed), False
        for cancel in owed:
            cancel.taken = True
        if owed:
            self._move()
        return wanted

    @property
    def sending(self) -> bool:
        """A cancel is on its way to the database."""
        return self._sending is not None

    async def turn(self) -> None:
        """Before the gateway's own statements go upstream: never while a cancel is on its
        way. Nothing may be awaited between this and writing them."""
        while self._sending is not None:
            await asyncio.shield(self._sending)

    async def cancel(self, guarded: Callable[[], list[asyncio.Future[Any]]],
                     running: Callable[[], bool], send: Callable[[], Awaitable[None]],
                     within: float, arrived: Callable[[], int] | None = None) -> str:
        """The database's cancel (`send`) once none of `guarded()` (the gateway's own
        statements outstanding) is, if `running()` (something of the client's is); what
        became of it, for the record. `arrived()`: how many of the client's bytes had
        reached the session (read or not) when it came, counted as `passed` counts them
        (None: only the message being decided, if one is)."""
        owed = _Owed(arrived() if arrived is not None
                     else self._passed + 1 if self._deciding else self._passed)
        self._owed.append(owed)
        behind = False  # what the wait was for, when it runs out: the client's bytes
        try:
            async with asyncio.timeout(within):
                while not owed.taken and not self._ended:
                    waiting = guarded()
                    if self._sending is not None:
                        waiting.append(self._sending)
                    if waiting:
                        behind = False
                        await asyncio.wait([*waiting, self._moving()],
                                           return_when=asyncio.FIRST_COMPLETED)
                        continue
                    if running():
                        break
                    if owed.until <= self._passed:
                        return NOTHING
                    if self._deciding:
                        self._wanted = True
                        return TAKEN
                    behind = True
                    await self._moving()
        except TimeoutError:
            if behind:
                return (f"cancel not sent: what the client sent before it was still unread "
                        f"after {within:g} s")
            return (f"cancel not sent: the gateway's own statements were still running "
                    f"after {within:g} s")
        finally:
            self._owed.remove(owed)
        if owed.taken:
            return TAKEN
        if self._ended:
            return "cancel not sent: the session ended"
        sending = self._sending = asyncio.get_running_loop().create_future()
        try:
            await send()
        finally:
            self._sending = None
            sending.set_result(None)
        return SENT

    def _moving(self) -> asyncio.Future[None]:
        """A future that ends when the session next moves (passes, decides, takes, ends)."""
        if self._moved is None:
            self._moved = asyncio.get_running_loop().create_future()
        return self._moved

    def _move(self) -> None:
        moved, self._moved = self._moved, None
        if moved is not None and not moved.done():
            moved.set_result(None)


def unread(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Bytes the client sent that reached this host and its session has not read: what
    its stream holds (asyncio gives no count of its own), and what its socket does."""
    stream: Any = reader
    return len(stream._buffer) + in_socket(writer)


def in_socket(writer: asyncio.StreamWriter) -> int:
    """The bytes waiting in a plain connection's socket (a paused stream leaves them
    there). Over TLS they are records, not yet the client's bytes: not counted."""
    sock = writer.get_extra_info("socket")
    if sock is None or writer.get_extra_info("ssl_object") is not None:
        return 0
    try:
        waiting = fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4))
    except (OSError, ValueError):  # closed meanwhile
        return 0
    return int(struct.unpack("i", waiting)[0])
