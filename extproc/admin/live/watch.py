"""Watching a live session as it happens, and joining it as a peer, through any replica.

    GET  /sessions/live/{id}/watch            the session as it happens, NDJSON: one event
                                              a line (viewers); ?join=1 joins it (moderators)
    GET  /sessions/live/{id}/attendance       who watches or joined it now (viewers)
    POST /sessions/live/{id}/input  {"keys": "ls\\r"}
                                              keys typed into a joined terminal session

What a watch shows is read from the shared store, never from one process's memory, so
the replica holding the session may be another: the session's audit records as the
writer stores them (masked as recorded), every POLL_SECONDS, and for a terminal its
screen, the asciicast chunks the session writes (terminal/session.py), as they come.
The events:

    {"event": "session", "session": {...}, "attendees": [...], "role": "watch"|"join"}
    {"event": "record", "record": {"id", "writer", "seq", "kind", "started_us", "action",
                                   "status", "what", "said", "typist", "trace_id",
                                   "content"}}
    {"event": "screen", "recording_id": T, "chunk": N, "cast": "<asciicast lines>"}
    {"event": "attendance", "attendees": [{"who", "role", "moderator", ...}]}
    {"event": "activity", "exchanges": N, "refusals": N, "holds": N}
                                             the session's counts, when they change
    {"event": "beat"}                        nothing new (a closed watcher is seen)

The records are the session's and those sharing a trace with them (an alert, an
approval), as the recordings page shows the session; they come as they are stored,
which is not the order they began in (an exchange is stored as it ends, a shell's line
when the next is entered): a reader places each by (started_us, writer, seq), the
record's own order. `said` words a record that is no decision (wording.py). While the
stream is open its watcher's attendance row is beaten every BEAT_SECONDS: the
attendance the stream, the CLI and the attendance API show is that one row.
    {"event": "ended", "by": SUB|null, "reason": TEXT, "message": TEXT}   the last
    {"event": "error", "error": "store_unavailable", "message": ...}   instead, when the
                                             store stops answering

While the stream is open its watcher attends the session (presence.py): a row beaten
every second, deleted as the stream ends, which the replica holding a moderated
session reads to let it go on. Opening a watch or a join is a `moderation` record of
the session (action `watch` or `join`: who, when); a line a peer types is decided and
recorded as the session's own, its typist named (terminal/session.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from extproc.admin.live.api import SessionsApi, SessionsError, error_response, unavailable
from extproc.admin.live.wording import said
from extproc.exchange.live_store import Listed, LiveStore
from extproc.exchange.presence import BEAT_SECONDS, AttendanceStore, Attendee
from extproc.identity import Authenticated, principals
from extproc.recording.store import content_of
from extproc.store import StoreError

if TYPE_CHECKING:
    from extproc.store.aio import AsyncStore

log = logging.getLogger("tollgate.sessions")

POLL_SECONDS = 0.2
# Records a watch shows of what happened before it began, as many as the recordings
# page shows of a session; a terminal's screen is shown whole (the player needs all of
# it), up to this many chunks.
_BACKLOG = 500
_MOST_CHUNKS = 20_000
_MOST_KEYS = 4096
# After its session's row went: how long the watch looks for the record saying who ended
# it (the end's record is written as its API call answers).
_END_RECORD_SECONDS = 2.0
_RECORD_COLUMNS = "id, writer, seq, kind, started_us, trace_id, action, status, content"
_JOINABLE = ("ssh", "kubernetes")
# The fronts whose sessions have a screen (a terminal recording).
_SCREENS = ("ssh", "kubernetes")
# Chunks are read from a little before the last one shown: each is stamped as its
# process writes it, and the one after it can only be written once it is.
_OVERLAP_US = 2_000_000


class WatchApi:
    def __init__(self, sessions: SessionsApi, live: LiveStore,
                 attendance: AttendanceStore, replica: str) -> None:
        self._sessions, self._live, self._attendance = sessions, live, attendance
        self._store: AsyncStore = live.store
        self._replica = replica

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/sessions/live/{id}/watch", self._watch),
                web.get("/sessions/live/{id}/attendance", self._attending),
                web.post("/sessions/live/{id}/input", self._input)]

    async def _attending(self, request: web.Request) -> web.Response:
        """Who attends a session now, through any replica (viewers)."""
        session_id = request.match_info["id"]
        try:
            await self._sessions.caller(request,
                                        self._sessions.viewers | self._sessions.moderators)
            found = await self._attendance.present(session_id)
        except SessionsError as refused:
            return error_response(refused)
        except StoreError as exc:
            return error_response(unavailable(exc))
        return web.json_response({"session": session_id,
                                  "attendees": [a.as_json() for a in found]})

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        session_id = request.match_info["id"]
        role = "join" if request.query.get("join") == "1" else "watch"
        opened: dict[str, Any] = {}

        async def act(caller: Authenticated, _body: dict[str, Any],
                      meaning: dict[str, Any]) -> dict[str, Any]:
            found = await self._live.get(session_id)
            if found is None:
                raise SessionsError("not_found", f"no live session {session_id}", 404)
            meaning.update({"session": session_id, "identity": found.identity,
                            "front": found.front, "target": found.target,
                            "replica": found.replica})
            if role == "join" and found.front not in _JOINABLE:
                raise SessionsError("not_joinable", f"a {found.front} session cannot be "
                                    "joined (only a terminal: ssh, kubernetes); watch it",
                                    409)
            opened.update(caller=caller, found=found)
            return {}

        allowed = (self._sessions.moderators if role == "join"
                   else self._sessions.viewers | self._sessions.moderators)
        answered = await self._sessions.acted(request, role, act, session_id, allowed)
        if answered.status != 200:
            return answered
        caller: Authenticated = opened["caller"]
        moderator = bool(principals(caller) & self._sessions.moderators)
        attendee = await self._attendance.attend(session_id, caller["sub"], role,
                                                 moderator, self._replica)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        try:
            await _Watch(self._store, self._live, self._attendance, opened["found"],
                         role, response.write, attendee.attendance_id).run()
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the watcher went
        except StoreError as exc:  # said, and the stream ends: the watcher may open another
            with contextlib.suppress(ConnectionResetError):
                await response.write(orjson.dumps({
                    "event": "error", "error": "store_unavailable",
                    "message": f"the store cannot answer: {exc}"}) + b"\n")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._attendance.leave(attendee.attendance_id))
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _input(self, request: web.Request) -> web.Response:
        """Keys a moderator who joined the session typed: to the replica holding it."""
        session_id = request.match_info["id"]
        try:
            caller = await self._sessions.caller(request, self._sessions.moderators)
            keys = _keys(await request.read())
            joined = [a for a in await self._attendance.present(session_id)
                      if a.who == caller["sub"] and a.role == "join"]
            if not joined:
                raise SessionsError("not_joined", f"{caller['sub']} has not joined session "
                                    f"{session_id} (tollgate sessions join {session_id})",
                                    409)
            await self._attendance.type(session_id, caller["sub"], keys)
        except SessionsError as refused:
            return error_response(refused)
        except StoreError as exc:
            return error_response(unavailable(exc))
        return web.json_response({"session": session_id, "typed": len(keys)})


def _keys(raw: bytes) -> bytes:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SessionsError("bad_json", f"the body is not JSON: {exc}", 400) from None
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, str) or not 0 < len(keys) <= _MOST_KEYS:
        raise SessionsError("bad_request", 'expected {"keys": "..."}: the keys typed, '
                            f"1-{_MOST_KEYS} characters (Enter: \\r)", 400)
    return keys.encode("utf-8", "surrogateescape")


class _Watch:
    """One watch's stream: what is new in the store, every POLL_SECONDS, until the
    session's row goes."""

    def __init__(self, store: AsyncStore, live: LiveStore, attendance: AttendanceStore,
                 found: Listed, role: str, write: Callable[[bytes], Any],
                 attendance_id: str) -> None:
        self._store, self._live, self._attendance = store, live, attendance
        self._found, self._role, self._write = found, role, write
        self._attendance_id = attendance_id  # the watcher's own row, beaten while open
        self._seqs: dict[str, int] = {}  # the last record shown of each writer
        # The records of other sessions sharing a trace with this one's, shown already.
        self._traced: set[str] = set()
        self._counts = (found.exchanges, found.refusals, found.holds)
        self._chunks: dict[str, int] = {}  # the next chunk of each terminal recording
        self._written = 0  # when the last chunk shown was written (µs)
        self._attendees: list[dict[str, Any]] = []
        self._ended: tuple[str, str] | None = None  # (by, reason) of an end's record

    async def run(self) -> None:
        session_id = self._found.session_id
        self._attendees = await self._present()
        await self._send({"event": "session", "session": self._found.as_json(),
                          "role": self._role, "attendees": self._attendees})
        await self._records(backlog=True)
        await self._screen()
        beat = attended = time.monotonic()
        while True:
            if time.monotonic() - attended >= BEAT_SECONDS:
                await self._attendance.beat(self._attendance_id)
                attended = time.monotonic()
            found = await self._live.get(session_id)
            sent = await self._records() + await self._screen()
            if found is not None and (
                    counts := (found.exchanges, found.refusals, found.holds)) != self._counts:
                self._counts = counts
                await self._send({"event": "activity", "exchanges": counts[0],
                                  "refusals": counts[1], "holds": counts[2]})
                sent += 1
            if (now := await self._present()) != self._attendees:
                self._attendees = now
                await self._send({"event": "attendance", "attendees": now})
                sent += 1
            if found is None:
                await self._end()
                return
            if found.end_by is not None:
                self._ended = (found.end_by, found.end_reason or "")
            if not sent and time.monotonic() - beat >= BEAT_SECONDS:
                await self._send({"event": "beat"})
            if sent or time.monotonic() - beat >= BEAT_SECONDS:
                beat = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)

    async def _send(self, event: dict[str, Any]) -> None:
        await self._write(orjson.dumps(event) + b"\n")

    async def _present(self) -> list[dict[str, Any]]:
        found: list[Attendee] = await self._attendance.present(self._found.session_id)
        return [a.as_json() for a in found]

    async def _records(self, backlog: bool = False) -> int:
        """The session's records not shown yet (the last _BACKLOG at first), then those
        of other sessions sharing a trace with them."""
        session_id = self._found.session_id
        if backlog:
            rows = list(reversed(await self._store.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE session_id = ? "
                f"ORDER BY started_us DESC, writer, seq DESC LIMIT {_BACKLOG}",
                (session_id,))))
            if len(rows) == _BACKLOG:  # older records left out: not shown later either
                for row in await self._store.execute(
                        "SELECT writer, MAX(seq) FROM records WHERE session_id = ? "
                        "GROUP BY writer", (session_id,)):
                    self._seqs[str(row[0])] = int(row[1])
            # Else every record of the session is in `rows`, the high-water marks below
            # come from them alone: one written since is the next poll's, never skipped.
        else:
            newer = " OR ".join(["(writer = ? AND seq > ?)"] * len(self._seqs))
            known = ", ".join("?" * len(self._seqs))
            where = (f"({newer} OR writer NOT IN ({known}))" if self._seqs else "1 = 1")
            params: list[Any] = [session_id]
            for writer, seq in self._seqs.items():
                params += [writer, seq]
            params += list(self._seqs)
            rows = await self._store.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE session_id = ? AND {where} "
                f"ORDER BY started_us, writer, seq LIMIT {_BACKLOG * 20}", params)
        for row in rows:
            writer, seq = str(row[1]), int(row[2])
            self._seqs[writer] = max(self._seqs.get(writer, -1), seq)
            await self._send({"event": "record", "record": self._record(row)})
        return len(rows) + await self._traced_records()

    async def _traced_records(self) -> int:
        """The records of other sessions in this one's traces (an approver's decision, an
        alert) not shown yet: read whole each time (they are few), as one may be stored
        before the exchange whose trace names it."""
        if len(self._traced) >= _BACKLOG:
            return 0
        rows = await self._store.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE session_id <> ? AND trace_id IN "
            "(SELECT trace_id FROM records WHERE session_id = ?) "
            f"ORDER BY started_us, writer, seq LIMIT {_BACKLOG}",
            (self._found.session_id, self._found.session_id))
        sent = 0
        for row in rows:
            if str(row[0]) not in self._traced:
                self._traced.add(str(row[0]))
                await self._send({"event": "record", "record": self._record(row)})
                sent += 1
        return sent

    def _record(self, row: tuple[Any, ...]) -> dict[str, Any]:
        record_id, writer, seq, kind, started_us, trace_id, action, status, content = row
        document = content_of(str(content))
        request = document.get("request") or {}
        headers = request.get("headers") or {}
        identity = document.get("identity") or {}
        if kind == "moderation":
            meaning = (document.get("meaning") or {}).get("moderation") or {}
            if meaning.get("action") == "end" and action == "allow":
                self._ended = (str(identity.get("sub")), str(meaning.get("reason") or ""))
        return {"id": record_id, "writer": writer, "seq": int(seq), "kind": kind,
                "started_us": int(started_us), "trace_id": trace_id, "action": action,
                "status": status, "method": request.get("method"),
                "what": document.get("what"), "said": said(str(kind), str(action), document),
                # Only a terminal's exchanges are tollgate's own requests, which alone
                # set it: on a request front the header is the client's, and names no one.
                "typist": (headers.get("x-tollgate-typist")
                           if self._found.front in _SCREENS else None),
                "by": identity.get("sub") if kind == "moderation" else None,
                "detail": (document.get("outcome") or {}).get("detail"),
                "content": document}

    async def _screen(self) -> int:
        """A terminal session's recording chunks not shown yet (all of them at first)."""
        if self._found.front not in _SCREENS:
            return 0
        rows = await self._store.execute(
            "SELECT recording_id, chunk, data, written_us FROM terminal_recordings WHERE "
            "session_id = ? AND written_us >= ? ORDER BY written_us, recording_id, chunk "
            "LIMIT ?", (self._found.session_id, self._written - _OVERLAP_US, _MOST_CHUNKS))
        sent = 0
        for recording_id, chunk, data, written_us in rows:
            recording, number = str(recording_id), int(chunk)
            if number != self._chunks.get(recording, 0):
                continue  # shown already, or one before it is not stored yet
            self._chunks[recording] = number + 1
            self._written = max(self._written, int(written_us))
            await self._send({"event": "screen", "recording_id": recording,
                              "chunk": number, "cast": str(data)})
            sent += 1
        return sent

    async def _end(self) -> None:
        """The session's row went: who ended it and why, from the end's record (waited
        for a little: it is written as the end's call answers), else a lock, else its
        client closed it."""
        deadline = time.monotonic() + _END_RECORD_SECONDS
        while self._ended is None and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            await self._records()
            await self._screen()
        if self._ended is None:
            lock = next((lock for lock in await self._live.locks()
                         if lock.identity == self._found.identity), None)
            if lock is not None:
                self._ended = (lock.by, lock.message())
        if self._ended is not None:
            by, reason = self._ended
            message = f"the session was ended by {by}: {reason}"
        else:
            by, reason = None, "closed"
            message = "the session closed (its client left, or its connection ended)"
        await self._send({"event": "ended", "by": by, "reason": reason,
                          "message": message})
