"""The live sessions API on the admin port: see the sessions open now on every replica,
end one, lock an identity.

    GET  /sessions/live?identity=SUB&target=T&front=F    the sessions open now, and
                                                         whether the caller moderates
                                                         (viewers)
    GET  /sessions/live/{id}                             one of them (viewers)
    POST /sessions/live/{id}/end  {"reason": "...", "lock_seconds": N}
                                  ends it on whichever replica holds it and locks its
                                  identity out for N seconds (none given: 900; 0: no
                                  lock, its client may reconnect at once) (moderators)
    GET  /sessions/locks                                 the locks that hold (viewers)
    POST /sessions/locks  {"identity": "SUB", "reason": "...", "seconds": N}
                          refuses the identity everywhere, for N seconds or until
                          unlocked, and ends its open sessions (moderators)
    POST /sessions/locks/{identity}/unlock  {"reason": "..."}   (moderators)

Every call carries the caller's own token, verified as the other admin APIs verify it
(admin/caller.py); `sessions.viewers` (the monitor's viewers by default) may look,
`sessions.moderators` may also end and lock. An end, a lock and an unlock, refused or
not, are records of the audit chain (kind `moderation`): who, what, why; an end's record
is in the ended session's (its `x-session-id`). The sessions are the store's
(exchange/live_store.py): the replica holding one carries out its end within a poll.
Errors are JSON: {"error": code, "message": ...}.

An end or a lock that the store cannot take now (it is out), or whose record the
recorder cannot admit, is not refused: it is carried out on this replica at once, kept
on its disk and written to the store when it is back (exchange/kept.py), and answered
202 with `kept` and an `effect` that says so. An unlock is refused while the store is
out (a lock is never loosened on one replica alone).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import orjson
from aiohttp import web

from extproc.admin.caller import caller_of
from extproc.approvals.auth import AuthError, Verifier
from extproc.codecs.message import parse_json, redact, request_view
from extproc.config import Target
from extproc.exchange.kept import KeptAct, KeptActs, moderation_evidence
from extproc.exchange.live import END_LOCK_SECONDS, LiveSessions, Lock, now_us, utc_text
from extproc.exchange.live_store import Listed, LiveStore
from extproc.exchange.recorded import recorded
from extproc.identity import Authenticated, principals
from extproc.recording import BodyCapture, Evidence, Recorder, RecordingUnavailable
from extproc.store import StoreError

log = logging.getLogger("tollgate.sessions")

_REASON_CHARS = 1000
_SUBJECT_CHARS = 1024
_FRONTS = ("postgres", "mysql", "ssh", "http", "llm", "mcp", "egress", "kubernetes")
# How long an end waits to see the session gone before answering (`ended`: false then,
# and the replica holding it still carries it out).
_END_WAIT_SECONDS = 5.0
_END_POLL_SECONDS = 0.05
# The longest lock a call may give (a longer one: no `seconds`, until unlocked).
_MOST_LOCK_SECONDS = 366 * 86400

Act = Callable[[Authenticated, dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any]]]
# The same act kept on this replica's disk (kept.py) instead: given why the store cannot
# take it now, the act and the answer to give.
Keep = Callable[[Authenticated, dict[str, Any], dict[str, Any], str],
                tuple[KeptAct, dict[str, Any]]]


class SessionsError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.status = code, status


class SessionsApi:
    def __init__(self, store: LiveStore, here: LiveSessions, verifier: Verifier,
                 recorder: Recorder, targets: Mapping[str, Target],
                 viewers: Collection[str], moderators: Collection[str],
                 sensitive: tuple[str, ...], record_limit: int,
                 kept: KeptActs | None = None) -> None:
        """`here`: this process's own sessions (ended at once, without waiting for a
        poll); `sensitive`: the headers a record redacts; `kept`: where an end or a lock
        the store cannot take now is kept (None: it is refused)."""
        self._store, self._here, self._verifier = store, here, verifier
        self._kept = kept
        self._recorder, self._targets = recorder, targets
        self._viewers, self._moderators = frozenset(viewers), frozenset(moderators)
        self._sensitive, self._record_limit = sensitive, record_limit

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/sessions/live", self._list),
            web.get("/sessions/live/{id}", self._show),
            web.post("/sessions/live/{id}/end", self._end),
            web.get("/sessions/locks", self._locks),
            web.post("/sessions/locks", self._lock),
            web.post("/sessions/locks/{identity}/unlock", self._unlock),
        ]

    # -- for the watch and the join (watch.py) ---------------------------------------------

    @property
    def viewers(self) -> frozenset[str]:
        return self._viewers

    @property
    def moderators(self) -> frozenset[str]:
        return self._moderators

    async def caller(self, request: web.Request, allowed: frozenset[str]) -> Authenticated:
        """The verified caller, when one of `allowed`; else SessionsError."""
        return await self._caller(request, allowed)

    async def acted(self, request: web.Request, action: str,
                    act: Callable[[Authenticated, dict[str, Any], dict[str, Any]],
                                  Awaitable[dict[str, Any]]],
                    session_id: str, allowed: frozenset[str]) -> web.Response:
        """A person's act on a session, recorded as the moderators' are (`_acted`), by
        one of `allowed`."""
        return await self._acted(request, action, act, session_id, allowed)

    # -- reading -------------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        async def answer() -> dict[str, Any]:
            caller = await self._caller(request, self._viewers | self._moderators)
            query = request.query
            front = query.get("front")
            if front is not None and front not in _FRONTS:
                raise SessionsError("bad_request", f"front must be one of "
                                    f"{', '.join(_FRONTS)}, got {front!r}", 400)
            found = await self._store.listed(
                _text(query, "identity"), _text(query, "target"), front)
            return {"sessions": [s.as_json() for s in found],
                    "moderator": bool(principals(caller) & self._moderators)}
        return await _answered(answer)

    async def _show(self, request: web.Request) -> web.Response:
        async def answer() -> dict[str, Any]:
            await self._caller(request, self._viewers | self._moderators)
            return (await self._live(request.match_info["id"])).as_json()
        return await _answered(answer)

    async def _locks(self, request: web.Request) -> web.Response:
        async def answer() -> dict[str, Any]:
            await self._caller(request, self._viewers | self._moderators)
            return {"locks": [_lock_json(lock) for lock in await self._store.locks()]}
        return await _answered(answer)

    # -- acting --------------------------------------------------------------------------

    async def _end(self, request: web.Request) -> web.Response:
        session_id = request.match_info["id"]

        async def act(caller: Authenticated, body: dict[str, Any],
                      meaning: dict[str, Any]) -> dict[str, Any]:
            reason = _reason(body, required=True)
            seconds = _end_lock(body)
            meaning.update({"session": session_id, "reason": reason})
            found = await self._store.get(session_id)
            if found is None:
                raise SessionsError("not_found", f"no live session {session_id}", 404)
            meaning.update({"identity": found.identity, "front": found.front,
                            "target": found.target, "replica": found.replica})
            asked = await self._store.ask_end(session_id, reason, caller["sub"])
            if asked is None:
                raise SessionsError("not_found", f"no live session {session_id} (it "
                                    "ended meanwhile)", 404)
            self._here.end(session_id, reason, caller["sub"])
            lock = None
            if seconds:  # after the end: the client is told the end's reason
                lock = Lock(found.identity, reason, caller["sub"],
                            now_us() + seconds * 1_000_000)
                meaning["lock_until_us"] = lock.until_us
                await self._store.lock(lock)
                self._here.lock_set(await self._store.locks())
            ended = await self._gone(session_id)
            log.info("session %s (%s of %s on %s) ended by %s: %s", session_id,
                     found.front, found.identity, found.target, caller["sub"], reason)
            done = (f"session {session_id} ended on {found.replica}" if ended
                    else f"{found.replica}, which holds session {session_id}, is asked "
                    "to end it (it has not yet)")
            return {"session": found.as_json(), "ended": ended,
                    "lock": _lock_json(lock) if lock else None,
                    "effect": done + "; " + _locked_out(found.identity, lock)}

        def keep(caller: Authenticated, body: dict[str, Any], meaning: dict[str, Any],
                 why: str) -> tuple[KeptAct, dict[str, Any]]:
            reason = _reason(body, required=True)
            seconds = _end_lock(body)
            meaning.update({"session": session_id, "reason": reason})
            here = self._here.open_sessions.get(session_id)
            replica = self._kept.replica if self._kept is not None else ""
            if here is not None:
                meaning.update({"identity": here.identity, "front": here.front,
                                "target": here.target, "replica": replica})
            identity = meaning.get("identity")  # the store's, if it answered that much
            taken = now_us()
            act = KeptAct(os.urandom(16).hex(), "end", taken, caller["sub"], reason,
                          session_id=session_id, identity=identity, locking=seconds > 0,
                          until_us=taken + seconds * 1_000_000 if seconds else None)
            lock = act.lock()
            if seconds:
                meaning["lock_until_us"] = act.until_us
            if here is not None:
                done = f"session {session_id} ended on {replica} now"
            else:
                done = (f"session {session_id} is not held by {replica}: the replica "
                        "holding it ends it once the store has the end")
            if lock is not None:
                done += f"; {_locked_out(lock.identity, lock)} (on {replica} now)"
            elif act.until_us is not None:
                done += (f"; its identity is locked out until {utc_text(act.until_us)} "
                         "once the store has it")
            else:
                done += "; " + _locked_out("", None)
            return act, {"session": None if here is None else {
                             "session_id": session_id, "front": here.front,
                             "identity": here.identity, "target": here.target,
                             "replica": replica},
                         "ended": here is not None,
                         "lock": _lock_json(lock) if lock else None,
                         "effect": _kept_effect(done, replica, why)}
        return await self._acted(request, "end", act, session_id, keep=keep)

    async def _lock(self, request: web.Request) -> web.Response:
        async def act(caller: Authenticated, body: dict[str, Any],
                      meaning: dict[str, Any]) -> dict[str, Any]:
            identity = meaning["identity"] = _identity(body)
            reason = meaning["reason"] = _reason(body, required=True)
            seconds = _seconds(body, "seconds")
            lock = Lock(identity, reason, caller["sub"],
                        None if seconds is None else now_us() + seconds * 1_000_000)
            meaning["lock_until_us"] = lock.until_us
            await self._store.lock(lock)
            self._here.lock_set(await self._store.locks())
            ended = await self._store.listed(identity=identity)
            log.info("%s locked by %s: %s", identity, caller["sub"], reason)
            return {"lock": _lock_json(lock),
                    "ending": [s.session_id for s in ended],
                    "effect": f"{lock.message()}; its {len(ended)} open sessions end"}

        def keep(caller: Authenticated, body: dict[str, Any], meaning: dict[str, Any],
                 why: str) -> tuple[KeptAct, dict[str, Any]]:
            identity = _identity(body)
            meaning["identity"] = identity
            reason = meaning["reason"] = _reason(body, required=True)
            seconds = _seconds(body, "seconds")
            taken = now_us()
            act = KeptAct(os.urandom(16).hex(), "lock", taken, caller["sub"], reason,
                          identity=identity, locking=True,
                          until_us=None if seconds is None else taken + seconds * 1_000_000)
            meaning["lock_until_us"] = act.until_us
            lock = act.lock()
            assert lock is not None
            ending = sorted(s.session_id for s in self._here.open_sessions.values()
                            if s.identity == identity)
            replica = self._kept.replica if self._kept is not None else ""
            return act, {"lock": _lock_json(lock), "ending": ending,
                         "effect": _kept_effect(
                             f"{lock.message()}; on {replica} now, where its {len(ending)} "
                             "open sessions end", replica, why)}
        return await self._acted(request, "lock", act, keep=keep)

    async def _unlock(self, request: web.Request) -> web.Response:
        identity = request.match_info["identity"]

        async def act(caller: Authenticated, body: dict[str, Any],
                      meaning: dict[str, Any]) -> dict[str, Any]:
            meaning.update({"identity": identity, "reason": _reason(body, required=False)})
            if self._kept is not None:  # a lock kept here lands first, not after this
                await self._kept.write()
            lock = await self._store.unlock(identity)
            if lock is None:
                raise SessionsError("not_found", f"{identity} is not locked", 404)
            self._here.lock_set(await self._store.locks())
            log.info("%s unlocked by %s", identity, caller["sub"])
            return {"unlocked": _lock_json(lock),
                    "effect": f"{identity} may act again"}
        return await self._acted(request, "unlock", act)

    async def _acted(self, request: web.Request, action: str, act: Act,
                     session_id: str | None = None,
                     allowed: frozenset[str] | None = None,
                     keep: Keep | None = None) -> web.Response:
        """A moderator's act (by one of `allowed`: the moderators unless given), recorded
        whatever its end (what cannot be recorded is not done): the caller checked, the
        body read, `act` run with them and the record's meaning to fill. With `keep`
        (an end, a lock) and a folder to keep it in, an act the store cannot take, or
        whose record cannot be admitted now, is kept instead (its record with it)."""
        started = time.time()
        try:  # a verified caller's attempt is recorded, allowed or not; nobody's is not
            caller = await self._caller(request, None)
        except SessionsError as refused:
            return _error(refused)
        raw = await request.read()
        meaning: dict[str, Any] = {"action": action}
        response = web.Response(status=500)  # replaced below, whatever happens

        def finish() -> Evidence:
            return self._evidence(request, raw, caller, started, meaning, response,
                                  session_id)

        keeping = self._kept if keep is not None else None
        with recorded(self._recorder, None, finish) as admit:
            try:
                later: RecordingUnavailable | None = None
                try:
                    admit()
                except RecordingUnavailable as exc:
                    if keeping is None:
                        raise
                    later = exc  # kept with the act, recorded when the store is back
                self._allowed(request, caller, allowed or self._moderators)
                body = _body(raw)
                if keep is not None and keeping is not None and later is not None:
                    record = self._record_later(request, raw, caller, started, session_id)
                    response = self._keep(keeping, keep, caller, body, meaning, str(later),
                                          record)
                else:
                    try:
                        response = _json(200, await act(caller, body, meaning))
                    except StoreError as exc:
                        if keep is None or keeping is None:
                            raise
                        response = self._keep(keeping, keep, caller, body, meaning,
                                              f"the store cannot answer: {exc}", None)
            except RecordingUnavailable as exc:
                response = _error(SessionsError("recording_unavailable", str(exc), 503))
            except SessionsError as refused:
                response = _error(refused)
            except StoreError as exc:
                response = _error(_unavailable(exc))
            except Exception:  # a bug: answered and recorded all the same
                log.exception("sessions API: %s %s failed", request.method, request.path)
                response = _error(SessionsError(
                    "internal_error", "tollgate could not process this request", 500))
        return response

    def _keep(self, kept: KeptActs, keep: Keep, caller: Authenticated,
              body: dict[str, Any], meaning: dict[str, Any], why: str,
              record: dict[str, Any] | None) -> web.Response:
        """The act kept on this replica's disk and carried out here (202), or refused
        (503) when it cannot be kept."""
        act, answer = keep(caller, body, meaning, why)
        meaning["kept"] = {"act": act.act_id, "replica": kept.replica, "why": why}
        if record is not None:
            act = dataclasses.replace(act, record={**record, "meaning": meaning})
        try:
            kept.keep(act)
        except OSError as exc:
            del meaning["kept"]
            raise SessionsError("store_unavailable", f"{why}; and {kept.replica} cannot "
                                f"keep it on its disk ({kept.folder}: {exc}): not done",
                                503) from None
        return _json(202, {**answer, "kept": meaning["kept"]})

    def _evidence(self, request: web.Request, raw: bytes, caller: Authenticated,
                  started: float, meaning: dict[str, Any], response: web.Response,
                  session_id: str | None) -> Evidence:
        """The act as the audit record keeps it (kind `moderation`): who, the request,
        what was ended or locked and why, the answer; an end in its session's record."""
        headers = _headers(request, session_id)
        refusal = None
        if response.status >= 300:
            refusal = orjson.loads(response.body)["error"]  # type: ignore[arg-type]
        return moderation_evidence(
            started, os.urandom(16).hex(), os.urandom(8).hex(), headers, caller,
            self._targets.get(str(meaning.get("target"))),
            request_view(headers, self._sensitive), BodyCapture.of(raw, self._record_limit),
            meaning, response.status, response.content_type, refusal,
            (time.time() - started) * 1000)

    def _record_later(self, request: web.Request, raw: bytes, caller: Authenticated,
                      started: float, session_id: str | None) -> dict[str, Any]:
        """What the act's record is built from when the store is back (kept.py), in
        JSON: its secrets redacted, as the record has them."""
        headers = _headers(request, session_id)
        return {"started": started, "trace_id": os.urandom(16).hex(),
                "span_id": os.urandom(8).hex(),
                "headers": {name: redact(value) if name in self._sensitive else value
                            for name, value in headers.items()},
                "caller": dict(caller), "request": request_view(headers, self._sensitive),
                "body": raw.decode("utf-8", "replace"), "status": 202,
                "duration_ms": (time.time() - started) * 1000}

    # -- helpers -------------------------------------------------------------------------

    async def _live(self, session_id: str) -> Listed:
        found = await self._store.get(session_id)
        if found is None:
            raise SessionsError("not_found", f"no live session {session_id}", 404)
        return found

    async def _gone(self, session_id: str) -> bool:
        """Whether the session's row went (its replica ended it) within the wait."""
        deadline = time.monotonic() + _END_WAIT_SECONDS
        while time.monotonic() < deadline:
            if await self._store.get(session_id) is None:
                return True
            await asyncio.sleep(_END_POLL_SECONDS)
        return False

    async def _caller(self, request: web.Request,
                      allowed: frozenset[str] | None) -> Authenticated:
        """The verified caller, when one of `allowed` (None: whoever it is)."""
        try:
            caller = await caller_of(self._verifier, request)
        except AuthError as exc:
            log.warning("sessions API: %s %s refused: %s", request.method, request.path,
                        exc)
            raise SessionsError("unauthenticated", str(exc), 401) from None
        if allowed is not None:
            self._allowed(request, caller, allowed)
        return caller

    def _allowed(self, request: web.Request, caller: Authenticated,
                 allowed: frozenset[str]) -> None:
        """SessionsError (403, naming the config's list) unless the caller is in it."""
        if not principals(caller) & allowed:
            who = ("sessions.moderators" if allowed == self._moderators
                   else "sessions.viewers or sessions.moderators")
            log.warning("sessions API: %s %s refused: %s is not in %s", request.method,
                        request.path, caller["sub"], who)
            raise SessionsError("forbidden", f"{caller['sub']} is not in {who}", 403)


async def _answered(answer: Callable[[], Awaitable[dict[str, Any]]]) -> web.Response:
    try:
        return _json(200, await answer())
    except SessionsError as refused:
        return _error(refused)
    except StoreError as exc:
        return _error(_unavailable(exc))


def _headers(request: web.Request, session_id: str | None) -> dict[str, str]:
    """The request's headers as a record keeps them (an end's in its session's)."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers.update({":method": request.method, ":path": request.path_qs})
    if session_id is not None:
        headers["x-session-id"] = session_id
    return headers


def _identity(body: dict[str, Any]) -> str:
    identity = body.get("identity")
    if not isinstance(identity, str) or not 0 < len(identity) <= _SUBJECT_CHARS:
        raise SessionsError("bad_request", "identity must be the subject (sub) of the "
                            f"tokens to refuse, 1-{_SUBJECT_CHARS} characters", 400)
    return identity


def _kept_effect(done: str, replica: str, why: str) -> str:
    """What a kept end or lock means: done here now, in the store when it is back."""
    return (f"accepted, not yet in the store ({why}): {done}. Kept on {replica}'s disk "
            "and written to the store when it returns; every replica applies it then")


def _text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is not None and not 0 < len(value) <= _SUBJECT_CHARS:
        raise SessionsError("bad_request", f"{name} must be 1-{_SUBJECT_CHARS} characters",
                            400)
    return value


def _body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SessionsError("bad_json", f"the body is not JSON: {exc}", 400) from None
    if not isinstance(body, dict):
        raise SessionsError("bad_request", "expected a JSON object", 400)
    return body


def _reason(body: dict[str, Any], required: bool) -> str:
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise SessionsError("bad_request", "reason must be a string", 400)
    reason = " ".join((reason or "").split())
    if required and not reason:
        raise SessionsError("reason_required", 'say why: {"reason": "..."} (the client '
                            "is told it, and the record keeps it)", 400)
    if len(reason) > _REASON_CHARS:
        raise SessionsError("bad_request",
                            f"reason is longer than {_REASON_CHARS} characters", 400)
    return reason


def _seconds(body: dict[str, Any], name: str) -> int | None:
    seconds = body.get(name)
    if seconds is None:
        return None
    if type(seconds) is not int or not 0 < seconds <= _MOST_LOCK_SECONDS:
        raise SessionsError("bad_request", f"{name} must be a whole number of seconds, "
                            f"1 to {_MOST_LOCK_SECONDS}, got {seconds!r}", 400)
    return seconds


def _end_lock(body: dict[str, Any]) -> int:
    """How long an end locks its session's identity out: `lock_seconds`, else the
    default; 0 is no lock, said so."""
    seconds = body.get("lock_seconds", END_LOCK_SECONDS)
    if type(seconds) is not int or not 0 <= seconds <= _MOST_LOCK_SECONDS:
        raise SessionsError("bad_request", "lock_seconds must be a whole number of "
                            f"seconds, 1 to {_MOST_LOCK_SECONDS}, or 0 for no lock (none "
                            f"given: {END_LOCK_SECONDS}), got {seconds!r}", 400)
    return seconds


def _locked_out(identity: str, lock: Lock | None) -> str:
    """What an end means for its client's coming back."""
    if lock is None:
        return "not locked: its client may reconnect at once"
    until = "until unlocked" if lock.until_us is None else f"until {utc_text(lock.until_us)}"
    return f"{identity} is locked out {until}"


def _lock_json(lock: Lock) -> dict[str, Any]:
    return {"identity": lock.identity, "reason": lock.reason, "locked_by": lock.by,
            "until_us": lock.until_us,
            "until": None if lock.until_us is None else utc_text(lock.until_us),
            "message": lock.message()}


def _unavailable(exc: StoreError) -> SessionsError:
    return SessionsError("store_unavailable", f"the store cannot answer: {exc}", 503)


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body),
                        content_type="application/json")


def _error(refused: SessionsError) -> web.Response:
    return _json(refused.status, {"error": refused.code, "message": str(refused)})


error_response, unavailable = _error, _unavailable
