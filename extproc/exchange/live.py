"""The sessions open in this process, and the identities locked everywhere: what a front
registers when its client logs in, and what the pipeline checks before each exchange.

A connection front (PostgreSQL, MySQL, SSH) opens a `LiveSession` once its client is
identified and closes it when the connection ends; its acts count into it (exchanges,
refusals, holds waiting), in memory only. Another part of the process (live_store.py)
writes the open sessions to the store every few seconds, deletes the closed ones, and
hands over what the store says: the ends asked of this process's sessions (`end`) and
the identities locked (`lock_set`). An ended session's `ended` event is what its front
waits on, to tell its client in its protocol's words and close. A person's end or lock
taken while the store was out (kept.py) is carried out here at once (`kept`) and held
beside the store's until a reading of the store made after it was written (`settled`).

Nothing here does I/O: a lock is checked from the set last read (`refusal`), so the
exchange's hot path is a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from extproc.codecs import durations
from extproc.codecs.refusal import Refused
from extproc.exchange.presence import Attendance


def now_us() -> int:
    return int(time.time() * 1_000_000)


def utc_text(us: int) -> str:
    """A moment (µs since the epoch) as the messages say it: 2026-11-28T09:00:00Z."""
    return durations.utc_text(us / 1e6)


# How long ending a session locks its identity out unless the moderator says otherwise
# (the API, the page and `tollgate sessions end` alike): an ended client that reconnects
# at once has not been stopped.
END_LOCK_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class Lock:
    """An identity (a token's subject) refused everywhere until `until_us` (None: until
    unlocked), by whom and why."""

    identity: str
    reason: str
    by: str
    until_us: int | None = None

    def holds(self, at_us: int) -> bool:
        return self.until_us is None or at_us < self.until_us

    def message(self) -> str:
        until = ("until unlocked" if self.until_us is None
                 else f"until {utc_text(self.until_us)}")
        return f"identity {self.identity} is locked {until} by {self.by}: {self.reason}"


@dataclass(slots=True, eq=False)
class LiveSession:
    """One client's session on a connection front, while it is open."""

    session_id: str
    front: str
    identity: str
    target: str | None
    started_us: int = field(default_factory=now_us)
    active_us: int = 0
    exchanges: int = 0
    refusals: int = 0
    holds: int = 0
    # Set once the session is to end (asked through the admin API, or its identity
    # locked): its front tells the client `reason` and closes.
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None
    by: str | None = None
    # Attendance (presence.py): whether the policy asked for a moderator in this session
    # (its attendance is then kept up to date here), and, for a terminal session, where
    # a peer's keys go (typist, keys): into its line editor, decided as the agent's are.
    moderated: bool = False
    joined: Callable[[str, bytes], None] | None = None

    def counted(self, refused: bool) -> None:
        """One exchange of the session ended (`refused`: tollgate refused it)."""
        self.exchanges += 1
        self.refusals += refused
        self.active_us = now_us()

    def end(self, reason: str, by: str) -> None:
        """Ask the session to end (once: the first reason stands)."""
        if not self.ended.is_set():
            self.reason, self.by = reason, by
            self.ended.set()

    def why(self) -> str:
        """Why it ended: who ended it, and their reason."""
        return f"this session was ended by {self.by}: {self.reason}"

    def farewell(self) -> str:
        """What its client is told as it ends."""
        return f"tollgate: {self.why()}"


class LiveSessions:
    """This process's open sessions, and the locks last read from the store."""

    def __init__(self) -> None:
        self.open_sessions: dict[str, LiveSession] = {}
        # Closed since the store last heard: their rows are deleted at the next write.
        self.closed: set[str] = set()
        self._locks: dict[str, Lock] = {}
        # The sessions ended through the store, refused wherever they come back (a
        # request front's session is no one connection): id -> (reason, by).
        self._ended: dict[str, tuple[str, str]] = {}
        # The ends and locks kept on this replica's disk while the store was out, by
        # act id: (session id, reason, by) or None, the lock or None, and when
        # (monotonic) the store took it (None: not yet).
        self._kept: dict[str, tuple[tuple[str, str, str] | None, Lock | None,
                                    float | None]] = {}
        self._kept_ended: dict[str, tuple[str, str]] = {}
        self._kept_locks: dict[str, Lock] = {}
        # Set when a session opens or closes: the writer writes then, not at its beat.
        self.changed = asyncio.Event()
        # Who attends the sessions here that need it (presence.py).
        self.attendance = Attendance()

    def open(self, session_id: str, front: str, identity: str,
             target: str | None) -> LiveSession:
        """A session the front's client opened: listed, counted, endable. Ended at once
        when its identity is locked (its front then tells the client why)."""
        session = LiveSession(session_id, front, identity, target)
        session.active_us = session.started_us
        self.open_sessions[session_id] = session
        self.changed.set()
        if (lock := self.locked(identity)) is not None:
            session.end(lock.message(), lock.by)
        elif (ended := self._ended.get(session_id)
              or self._kept_ended.get(session_id)) is not None:
            session.end(*ended)
        return session

    def close(self, session: LiveSession) -> None:
        """The session's connection ended: its row goes at the next write."""
        if self.open_sessions.pop(session.session_id, None) is not None:
            self.closed.add(session.session_id)
            self.changed.set()

    def end(self, session_id: str, reason: str, by: str) -> bool:
        """End an open session of this process; whether it was open here."""
        self._ended.setdefault(session_id, (reason, by))  # should it come back
        session = self.open_sessions.get(session_id)
        if session is None:
            return False
        session.end(reason, by)
        return True

    def ended_set(self, ended: Iterable[tuple[str, str, str]]) -> None:
        """The sessions the store holds ended now (id, reason, by): each open here ends,
        and one opened again later is ended as it opens."""
        self._ended = {session_id: (reason, by) for session_id, reason, by in ended}
        for session_id, (reason, by) in self._ended.items():
            self.end(session_id, reason, by)

    def lock_set(self, locks: Iterable[Lock]) -> None:
        """The locks the store holds now: each locked identity's sessions here end."""
        self._locks = {lock.identity: lock for lock in locks}
        self._end_locked(self._locks)

    def _end_locked(self, locks: dict[str, Lock]) -> None:
        if not locks:
            return
        at = now_us()
        for session in list(self.open_sessions.values()):
            lock = locks.get(session.identity)
            if lock is not None and lock.holds(at):
                session.end(lock.message(), lock.by)

    def kept(self, act_id: str, ended: tuple[str, str, str] | None,
             lock: Lock | None) -> None:
        """A person's end (session id, reason, by) or lock that the store could not
        take, kept on this replica's disk: carried out here now, and held until the
        store has it."""
        if act_id in self._kept:
            return
        self._kept[act_id] = (ended, lock, None)
        self._rekept()
        if ended is not None:
            self.end(*ended)
        if lock is not None:
            self._end_locked({lock.identity: lock})

    def kept_written(self, act_id: str, at: float) -> None:
        """The store took the kept act at `at` (monotonic): held until read from it."""
        if (kept := self._kept.get(act_id)) is not None and kept[2] is None:
            self._kept[act_id] = (kept[0], kept[1], at)

    def settled(self, read_at: float) -> None:
        """The store's ends and locks were read as of `read_at` (monotonic): the kept
        acts it had taken by then are its own now."""
        done = [act_id for act_id, (_, _, written) in self._kept.items()
                if written is not None and written < read_at]
        for act_id in done:
            del self._kept[act_id]
        if done:
            self._rekept()

    def _rekept(self) -> None:
        self._kept_ended = {ended[0]: (ended[1], ended[2])
                            for ended, _, _ in self._kept.values() if ended is not None}
        self._kept_locks = {lock.identity: lock
                            for _, lock, _ in self._kept.values() if lock is not None}

    def locked(self, identity: str) -> Lock | None:
        """The lock that holds `identity` now, if any (the store's, else a kept one)."""
        at = now_us()
        for locks in (self._locks, self._kept_locks):
            lock = locks.get(identity)
            if lock is not None and lock.holds(at):
                return lock
        return None

    def refusal(self, identity: str, session: LiveSession | None) -> Refused | None:
        """Why an exchange of `identity` (in `session`, if it has one) may not go on:
        its session ended, or its identity locked; None: it may."""
        if (self._locks or self._kept_locks) and (lock := self.locked(identity)) is not None:
            return Refused(403, "locked", lock.message())
        if session is not None and session.ended.is_set():
            return Refused(403, "session_ended", session.why())
        return None
