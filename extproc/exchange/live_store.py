"""Live sessions and identity locks in the store: how an end asked through one replica's
admin API reaches the replica holding the session, and a lock every replica.

Each process writes its open sessions (live.py) to `live_sessions` in one transaction
every `WRITE_SECONDS`, sooner when one opens or closes, never per exchange; a closed
session's row is deleted then. It reads, every `POLL_SECONDS`, the ends asked of its
own sessions, the sessions ended (`ended_sessions`: an end is kept there for
`ended_seconds`, the longest an approval's grant lasts, so a request front's session
id is refused on every replica for the rest of any grant it held) and the locks
(`identity_locks`), and sooner when told: on PostgreSQL by a
NOTIFY the asking replica sends with its change; on SQLite the poll alone (its
processes share one host). A replica not heard of for the silence approvals take for
gone (policy_revisions.seen_us, approvals/abandon.py's rule) is not listed: its rows
are left to be pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from extproc.exchange.live import LiveSession, LiveSessions, Lock, now_us
from extproc.exchange.polling import polling
from extproc.store import StoreError
from extproc.store.aio import AsyncStore, Execute

if TYPE_CHECKING:  # kept.py imports this module
    from extproc.exchange.kept import KeptAct

log = logging.getLogger("tollgate.sessions")

CHANNEL = "tollgate_sessions"
WRITE_SECONDS = 2.0
POLL_SECONDS = 1.0
ENDED_SECONDS = 24 * 3600.0  # approvals.max_window_seconds' default
# How long a kept act's id stays in `kept_acts`: far longer than a replica stays down
# with its file unwritten.
KEPT_ACTS_SECONDS = 90 * 86400.0
_COLUMNS = ("session_id", "front", "identity", "target", "replica", "started_us",
            "active_us", "exchanges", "refusals", "holds", "end_reason", "end_by", "end_us")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM live_sessions"
# A row is live while its replica is heard of, or it is younger than the silence (a
# replica's first beat may come after its first session).
_ALIVE = ("(replica IN (SELECT process FROM policy_revisions WHERE seen_us > ?) "
          "OR started_us > ?)")
_UPSERT = ("INSERT INTO live_sessions (session_id, front, identity, target, replica, "
           "started_us, active_us, exchanges, refusals, holds) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
           "identity = excluded.identity, target = excluded.target, "
           "active_us = excluded.active_us, exchanges = excluded.exchanges, "
           "refusals = excluded.refusals, holds = excluded.holds")


@dataclass(frozen=True, slots=True)
class Listed:
    """A live session as the store lists it."""

    session_id: str
    front: str
    identity: str
    target: str | None
    replica: str
    started_us: int
    active_us: int
    exchanges: int
    refusals: int
    holds: int
    end_reason: str | None
    end_by: str | None
    end_us: int | None

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS}


class LiveStore:
    """The store's live sessions and locks, for the processes' writers and the API."""

    def __init__(self, store: AsyncStore, silent_seconds: float,
                 ended_seconds: float = ENDED_SECONDS) -> None:
        """`silent_seconds`: how long a replica goes unheard of before its sessions are
        taken for gone; `ended_seconds`: how long an ended session's id stays refused."""
        self.store, self._silent, self._ended_for = store, silent_seconds, ended_seconds

    def _alive(self) -> tuple[int, int]:
        since = now_us() - int(self._silent * 1_000_000)
        return since, since

    # -- a process's own sessions --------------------------------------------------------

    async def write(self, replica: str, sessions: Sequence[LiveSession],
                    closed: Sequence[str]) -> None:
        """`sessions` as they stand now, and `closed` deleted, in one transaction."""
        async with self.store.transaction() as execute:
            for s in sessions:
                await execute(_UPSERT, (s.session_id, s.front, s.identity, s.target,
                                        replica, s.started_us, s.active_us, s.exchanges,
                                        s.refusals, s.holds))
            if closed:
                await execute(f"DELETE FROM live_sessions WHERE session_id IN "
                              f"({', '.join('?' * len(closed))})", tuple(closed))

    async def forget(self, replica: str) -> None:
        """Every row of `replica` deleted: it starts, or stops, with none open."""
        await self.store.execute("DELETE FROM live_sessions WHERE replica = ?", (replica,))

    async def ends(self, replica: str) -> list[tuple[str, str, str]]:
        """The ends asked of `replica`'s sessions: (session id, reason, by)."""
        rows = await self.store.execute(
            "SELECT session_id, end_reason, end_by FROM live_sessions "
            "WHERE replica = ? AND end_us IS NOT NULL", (replica,))
        return [(str(i), str(reason), str(by)) for i, reason, by in rows]

    async def ended(self) -> list[tuple[str, str, str]]:
        """The sessions ended and still refused: (session id, reason, by)."""
        rows = await self.store.execute(
            "SELECT session_id, reason, ended_by FROM ended_sessions WHERE until_us > ?",
            (now_us(),))
        return [(str(i), str(reason), str(by)) for i, reason, by in rows]

    async def locks(self) -> list[Lock]:
        """The locks that hold now."""
        rows = await self.store.execute(
            "SELECT identity, reason, locked_by, until_us FROM identity_locks "
            "WHERE until_us IS NULL OR until_us > ? ORDER BY identity", (now_us(),))
        return [Lock(str(i), str(reason), str(by), None if until is None else int(until))
                for i, reason, by, until in rows]

    async def prune(self) -> None:
        """Rows of replicas gone silent, and locks past their end, deleted."""
        at = now_us()
        await self.store.execute(f"DELETE FROM live_sessions WHERE NOT {_ALIVE}",
                                 self._alive())
        await self.store.execute("DELETE FROM identity_locks WHERE until_us <= ?", (at,))
        await self.store.execute("DELETE FROM ended_sessions WHERE until_us <= ?", (at,))
        await self.store.execute("DELETE FROM kept_acts WHERE written_us <= ?",
                                 (at - int(KEPT_ACTS_SECONDS * 1_000_000),))

    # -- the admin API -------------------------------------------------------------------

    async def listed(self, identity: str | None = None, target: str | None = None,
                     front: str | None = None, limit: int = 1000) -> list[Listed]:
        """The live sessions, oldest first, narrowed to those given."""
        where, params = [_ALIVE], list[Any](self._alive())
        for column, value in (("identity", identity), ("target", target), ("front", front)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self.store.execute(
            f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY started_us, session_id "
            f"LIMIT {int(limit)}", params)
        return [_listed(row) for row in rows]

    async def get(self, session_id: str) -> Listed | None:
        rows = await self.store.execute(f"{_SELECT} WHERE session_id = ? AND {_ALIVE}",
                                        (session_id, *self._alive()))
        return _listed(rows[0]) if rows else None

    async def ask_end(self, session_id: str, reason: str, by: str) -> Listed | None:
        """Ask the replica holding a live session to end it (the first ask stands), and
        every replica to refuse its id from now on; the session as it then stands, None
        when no live session has that id."""
        async with self.store.transaction() as execute:
            found = await self._ask_end(execute, session_id, reason, by, now_us())
            await self.store.notify(execute, CHANNEL, "end")
        return found

    async def _ask_end(self, execute: Execute, session_id: str, reason: str, by: str,
                       at: int) -> Listed | None:
        await execute(
            f"UPDATE live_sessions SET end_reason = ?, end_by = ?, end_us = ? "
            f"WHERE session_id = ? AND end_us IS NULL AND {_ALIVE}",
            (reason, by, at, session_id, *self._alive()))
        await execute(
            "INSERT INTO ended_sessions (session_id, reason, ended_by, ended_us, "
            "until_us) VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING",
            (session_id, reason, by, at, at + int(self._ended_for * 1_000_000)))
        rows = await execute(f"{_SELECT} WHERE session_id = ? AND {_ALIVE}",
                             (session_id, *self._alive()))
        return _listed(rows[0]) if rows else None

    async def lock(self, lock: Lock) -> None:
        """Lock an identity (a lock already there is replaced: its end, reason, by)."""
        async with self.store.transaction() as execute:
            await _lock(execute, lock, now_us())
            await self.store.notify(execute, CHANNEL, "lock")

    async def write_kept(self, act: KeptAct) -> tuple[bool, str | None]:
        """A person's end or lock that was kept on disk while the store was out
        (kept.py), written as it would have been then, once: False when an earlier
        write of it committed (its id is in `kept_acts`). And the identity an end locks
        out (None: no lock, or its session is gone from the store, its identity unknown
        here)."""
        async with self.store.transaction() as execute:
            fresh = await execute(
                "INSERT INTO kept_acts (act_id, written_us) VALUES (?, ?) "
                "ON CONFLICT (act_id) DO NOTHING RETURNING act_id", (act.act_id, now_us()))
            if not fresh:
                return False, None
            identity = act.identity
            if act.session_id is not None:
                await self._ask_end(execute, act.session_id, act.reason, act.by,
                                    act.taken_us)
                if identity is None and act.locking:  # any row: its replica may be quiet
                    rows = await execute("SELECT identity FROM live_sessions "
                                         "WHERE session_id = ?", (act.session_id,))
                    identity = str(rows[0][0]) if rows else None
            lock = act.lock(identity)
            if lock is not None:
                await _lock(execute, lock, act.taken_us, kept=True)
            await self.store.notify(execute, CHANNEL, "kept")
        return True, None if lock is None else lock.identity

    async def recorded(self, trace_id: str) -> bool:
        """Whether the record holds an act of this trace (a kept act's, handed over)."""
        return bool(await self.store.execute(
            "SELECT 1 FROM records WHERE trace_id = ? LIMIT 1", (trace_id,)))

    async def unlock(self, identity: str) -> Lock | None:
        """The lock that held `identity` (None: none did), now gone."""
        async with self.store.transaction() as execute:
            rows = await execute(
                "DELETE FROM identity_locks WHERE identity = ? "
                "RETURNING identity, reason, locked_by, until_us", (identity,))
            await self.store.notify(execute, CHANNEL, "unlock")
        if not rows:
            return None
        found, reason, by, until = rows[0]
        return Lock(str(found), str(reason), str(by), None if until is None else int(until))


class LiveSync:
    """One process's open sessions kept in the store, and the ends and locks the store
    holds carried out here."""

    def __init__(self, store: LiveStore, sessions: LiveSessions, replica: str,
                 write_seconds: float = WRITE_SECONDS,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self._store, self._sessions, self.replica = store, sessions, replica
        self._write_every, self._poll_every = write_seconds, poll_seconds
        self._written: dict[str, tuple[Any, ...]] = {}
        self._told = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Rows left by an earlier run under this name deleted; the loops started."""
        with contextlib.suppress(StoreError):
            await self._store.forget(self.replica)
        self._tasks = [asyncio.create_task(self._writing()),
                       asyncio.create_task(self._polling())]
        if self._store.store.backend == "postgresql":
            self._tasks.append(asyncio.create_task(self._listening()))

    async def stop(self) -> None:
        """The loops stopped, and this process's rows deleted (it holds none now)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(StoreError):
            await self._store.forget(self.replica)

    async def write(self) -> None:
        """The sessions changed since the last write, and those closed, written."""
        registry = self._sessions
        changed = []
        for session in list(registry.open_sessions.values()):
            state = (session.identity, session.target, session.active_us,
                     session.exchanges, session.refusals, session.holds)
            if self._written.get(session.session_id) != state:
                changed.append((session, state))
        closed = sorted(registry.closed)
        if not changed and not closed:
            return
        await self._store.write(self.replica, [s for s, _ in changed], closed)
        for session, state in changed:
            self._written[session.session_id] = state
        for session_id in closed:
            registry.closed.discard(session_id)
            self._written.pop(session_id, None)

    async def poll(self) -> None:
        """The ends asked of this process's sessions, the sessions ended anywhere, and
        the locks, carried out; the kept acts the store had taken before are its own."""
        read_at = time.monotonic()
        for session_id, reason, by in await self._store.ends(self.replica):
            self._sessions.end(session_id, reason, by)
        self._sessions.ended_set(await self._store.ended())
        self._sessions.lock_set(await self._store.locks())
        self._sessions.settled(read_at)

    async def _writing(self) -> None:
        changed = self._sessions.changed
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), self._write_every)
            changed.clear()
            try:
                await self.write()
            except StoreError as exc:  # written at the next beat
                log.warning("live sessions: cannot write to the store: %s", exc)

    async def _polling(self) -> None:
        await polling(self.poll, self._store.prune, self._told, self._poll_every,
                      "ends and locks")

    async def _listening(self) -> None:
        async for _ in self._store.store.listen(CHANNEL):
            self._told.set()


async def _lock(execute: Execute, lock: Lock, at: int, kept: bool = False) -> None:
    """Lock an identity as of `at`, replacing its lock; a `kept` one (written once the
    store is back) replaces none given since it was taken."""
    await execute(
        "INSERT INTO identity_locks (identity, reason, locked_by, locked_us, until_us) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (identity) DO UPDATE SET "
        "reason = excluded.reason, locked_by = excluded.locked_by, "
        "locked_us = excluded.locked_us, until_us = excluded.until_us"
        + (" WHERE identity_locks.locked_us <= excluded.locked_us" if kept else ""),
        (lock.identity, lock.reason, lock.by, at, lock.until_us))


def _listed(row: Sequence[Any]) -> Listed:
    values = dict(zip(_COLUMNS, row, strict=True))
    for name in ("started_us", "active_us", "exchanges", "refusals", "holds"):
        values[name] = int(values[name])
    if values["end_us"] is not None:
        values["end_us"] = int(values["end_us"])
    return Listed(**values)
