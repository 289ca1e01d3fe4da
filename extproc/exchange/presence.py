"""Who attends a live session, whichever replica they came through: the moderators a
moderated session waits for, and the lines a peer types into a terminal session.

    tollgate sessions watch|join ID ──► admin API (replica A): a `live_attendance` row,
                                        its `seen_us` beaten every BEAT_SECONDS while the
                                        person stays, deleted as they go (NOTIFY)
    replica B, holding the session  ◄── reads the rows (POLL_SECONDS, at once on NOTIFY):
                                        a moderated session's exchanges go on while a
                                        moderator is among them, and wait while none is
    a peer's line ──► `live_input` ──► replica B takes it (deleting it) into the
                                        session's line editor (LiveSession.joined)

A row not beaten for STALE_SECONDS is nobody's: the replica that beat it is gone, and a
session it kept going pauses. A moderated exchange waits at most WAIT_SECONDS for a
moderator, then is refused (`moderator_absent`): nothing runs unattended.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from extproc.codecs.refusal import Refused, Unavailable
from extproc.exchange.polling import polling
from extproc.store import StoreError

if TYPE_CHECKING:
    from extproc.exchange.live import LiveSessions
    from extproc.exchange.state import Exchange
    from extproc.store.aio import AsyncStore

log = logging.getLogger("tollgate.sessions")

CHANNEL = "tollgate_attendance"
BEAT_SECONDS = 1.0
STALE_SECONDS = 3.5
POLL_SECONDS = 0.25
WAIT_SECONDS = 300
_PRUNE_SECONDS = 60.0
_MOST_ROWS = 10_000
ROLES = ("watch", "join")


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Attendee:
    """One person attending a live session: how (`watch` or `join`), whether as a
    moderator, through which replica, since when."""

    attendance_id: str
    session_id: str
    who: str
    role: str
    moderator: bool
    replica: str
    since_us: int

    def as_json(self) -> dict[str, Any]:
        return {"who": self.who, "role": self.role, "moderator": self.moderator,
                "replica": self.replica, "since_us": self.since_us}


class AttendanceStore:
    """The attendance and typed lines in the store, for the admin API and the syncs."""

    def __init__(self, store: AsyncStore) -> None:
        self.store = store

    async def attend(self, session_id: str, who: str, role: str, moderator: bool,
                     replica: str) -> Attendee:
        """A person now attends `session_id` (until `leave`; beaten meanwhile)."""
        at = now_us()
        attendee = Attendee(os.urandom(16).hex(), session_id, who, role, moderator,
                            replica, at)
        async with self.store.transaction() as execute:
            await execute(
                "INSERT INTO live_attendance (attendance_id, session_id, who, role, "
                "moderator, replica, since_us, seen_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (attendee.attendance_id, session_id, who, role, int(moderator), replica,
                 at, at))
            await self.store.notify(execute, CHANNEL, "attend")
        return attendee

    async def beat(self, attendance_id: str) -> None:
        await self.store.execute(
            "UPDATE live_attendance SET seen_us = ? WHERE attendance_id = ?",
            (now_us(), attendance_id))

    async def leave(self, attendance_id: str) -> None:
        async with self.store.transaction() as execute:
            await execute("DELETE FROM live_attendance WHERE attendance_id = ?",
                          (attendance_id,))
            await self.store.notify(execute, CHANNEL, "leave")

    async def present(self, session_id: str | None = None) -> list[Attendee]:
        """Who attends now (of one session, or of all), oldest first."""
        where, params = "seen_us > ?", [now_us() - int(STALE_SECONDS * 1_000_000)]
        if session_id is not None:
            where += " AND session_id = ?"
            params.append(session_id)  # type: ignore[arg-type]
        rows = await self.store.execute(
            "SELECT attendance_id, session_id, who, role, moderator, replica, since_us "
            f"FROM live_attendance WHERE {where} ORDER BY since_us, attendance_id "
            f"LIMIT {_MOST_ROWS}", params)
        return [Attendee(str(a), str(s), str(who), str(role), bool(m), str(r), int(since))
                for a, s, who, role, m, r, since in rows]

    async def type(self, session_id: str, typist: str, data: bytes) -> None:
        """Keys a peer typed into a terminal session, for the replica holding it."""
        async with self.store.transaction() as execute:
            await execute(
                "INSERT INTO live_input (input_id, session_id, typist, data, asked_us) "
                "VALUES (?, ?, ?, ?, ?)",
                (os.urandom(16).hex(), session_id, typist,
                 data.decode("utf-8", "surrogateescape"), time.time_ns()))
            await self.store.notify(execute, CHANNEL, "input")

    async def take(self, session_ids: Sequence[str]) -> list[tuple[str, str, bytes]]:
        """The keys typed into these sessions, taken from the store in the order asked:
        (session id, typist, keys)."""
        if not session_ids:
            return []
        marks = ", ".join("?" * len(session_ids))
        # Read first, outside a transaction (the poll's usual answer is none): only the
        # replica holding these sessions takes their lines, so none is taken twice.
        rows = await self.store.execute(
            f"SELECT input_id, session_id, typist, data FROM live_input WHERE "
            f"session_id IN ({marks}) ORDER BY asked_us, input_id LIMIT {_MOST_ROWS}",
            tuple(session_ids))
        if rows:
            await self.store.execute(
                f"DELETE FROM live_input WHERE input_id IN ({', '.join('?' * len(rows))})",
                tuple(r[0] for r in rows))
        return [(str(s), str(t), str(d).encode("utf-8", "surrogateescape"))
                for _, s, t, d in rows]

    async def prune(self) -> None:
        """Rows nobody beats any more, and lines no replica took, deleted."""
        before = now_us() - int(_PRUNE_SECONDS * 1_000_000)
        await self.store.execute("DELETE FROM live_attendance WHERE seen_us < ?", (before,))
        await self.store.execute("DELETE FROM live_input WHERE asked_us < ?",
                                 (before * 1000,))


class Attendance:
    """What this process knows of the attendance of the sessions it holds, as last read,
    and the moderated exchanges waiting on it. A moderated exchange reads its session's
    attendance from the store as it comes (one query): a moderator who just left is
    gone for it, whatever the last poll said; the poll wakes those that wait."""

    def __init__(self) -> None:
        self._present: dict[str, tuple[Attendee, ...]] = {}
        self._changed: dict[str, asyncio.Event] = {}
        # How one session's attendance is read from the store now (AttendanceSync's);
        # None: nobody can attend (no store), and a moderated exchange waits in vain.
        self.reader: Callable[[str], Awaitable[list[Attendee]]] | None = None
        # Set to have the sync read the attendance now (a session newly moderated).
        self.poke = asyncio.Event()

    def moderators(self, session_id: str) -> list[str]:
        return sorted({a.who for a in self._present.get(session_id, ()) if a.moderator})

    def update(self, session_ids: Sequence[str], attendees: Sequence[Attendee]) -> None:
        """The attendance of `session_ids` as read now; their waiters woken."""
        found: dict[str, list[Attendee]] = {}
        for attendee in attendees:
            found.setdefault(attendee.session_id, []).append(attendee)
        for session_id in session_ids:
            self._present[session_id] = tuple(found.get(session_id, ()))
            event = self._changed.get(session_id)
            if event is not None:
                event.set()

    def forget(self, keep: set[str]) -> None:
        """Sessions no longer held here forgotten."""
        for session_id in set(self._present) - keep:
            self._present.pop(session_id, None)
            self._changed.pop(session_id, None)

    async def attended(self, exchange: Exchange, wait_seconds: float = WAIT_SECONDS) -> None:
        """Return once a moderator attends the exchange's session: at once when one does,
        else after telling the client why it waits; Refused when none comes within
        `wait_seconds`, the session ends or its client goes meanwhile."""
        live = exchange.live
        if live is None:
            raise Refused(403, "moderator_required", "this target needs a moderator "
                          "present, and this exchange is not part of a live session "
                          "one can attend")
        session_id = live.session_id
        event = self._changed.setdefault(session_id, asyncio.Event())
        if not live.moderated:  # read at each poll from now on, to wake what waits
            live.moderated = True
            self.poke.set()
        if self.reader is not None:  # as the store says now: a moderator just gone is
            try:
                self.update([session_id], await self.reader(session_id))
            except StoreError as exc:
                raise Unavailable(503, "moderation_unavailable", "this session needs a "
                                  "moderator present, and the store cannot say whether "
                                  f"one is: {exc}") from None
        if not self.moderators(session_id):
            if exchange.tell is not None:
                exchange.tell(f"tollgate: this session needs a moderator present; it waits "
                              f"up to {int(wait_seconds)} s for one to watch or join it "
                              f"(tollgate sessions watch {session_id}) "
                              f"[trace {exchange.trace_id}]")
            live.holds += 1
            try:
                await self._until_moderated(exchange, event, wait_seconds)
            finally:
                live.holds -= 1
        exchange.outcome["tollgate.moderators"] = ", ".join(self.moderators(session_id))

    async def _until_moderated(self, exchange: Exchange, event: asyncio.Event,
                               wait_seconds: float) -> None:
        live = exchange.live
        assert live is not None
        deadline = time.monotonic() + wait_seconds
        stops = [live.ended] + ([exchange.gone] if exchange.gone is not None else [])
        while not self.moderators(live.session_id):
            if live.ended.is_set():
                raise Refused(403, "session_ended", live.why())
            if exchange.gone is not None and exchange.gone.is_set():
                exchange.outcome["tollgate.outcome"] = "client left"
                raise Refused(499, "client_left", "the client went away while its "
                              "request waited for a moderator")
            left = deadline - time.monotonic()
            if left <= 0:
                raise Refused(403, "moderator_absent", f"this session needs a moderator "
                              f"present, and none attended it within {int(wait_seconds)} s")
            event.clear()
            waits = [asyncio.ensure_future(e.wait()) for e in (event, *stops)]
            try:
                await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()


class AttendanceSync:
    """One process's view of the attendance of the sessions it holds that need it
    (moderated, or joinable terminals), and the peers' lines carried into them."""

    def __init__(self, store: AttendanceStore, sessions: LiveSessions,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self._store, self._sessions = store, sessions
        self._attendance = sessions.attendance
        self._poll_every = poll_seconds
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._attendance.reader = self._store.present
        self._tasks = [asyncio.create_task(self._polling())]
        if self._store.store.backend == "postgresql":
            self._tasks.append(asyncio.create_task(self._listening()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def poll(self) -> None:
        """The attendance of the sessions here that need it read, and the lines typed
        into those that take them carried in."""
        open_sessions = list(self._sessions.open_sessions.values())
        self._attendance.forget({s.session_id for s in open_sessions})
        attended = [s.session_id for s in open_sessions
                    if s.moderated or s.joined is not None]
        if attended:
            self._attendance.update(attended, await self._store.present())
        feeders: dict[str, Callable[[str, bytes], None]] = {
            s.session_id: s.joined for s in open_sessions if s.joined is not None}
        for session_id, typist, data in await self._store.take(sorted(feeders)):
            feeders[session_id](typist, data)

    async def _polling(self) -> None:
        await polling(self.poll, self._store.prune, self._attendance.poke,
                      self._poll_every, "their attendance")

    async def _listening(self) -> None:
        async for _ in self._store.store.listen(CHANNEL):
            self._attendance.poke.set()
