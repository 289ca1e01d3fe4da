"""The recordings API on the admin port: the audit record, read by its readers.

    GET /recordings/search?identity=&target=&action=&kind=&since=7d&limit=50
                                        records, newest first (as `tollgate audit search`);
                                        with approval=ID, an approver of that approval who
                                        is no reader reads its requester's on its target
    GET /recordings/sessions?identity=&target=&kind=&since=7d&sort=start&order=desc
                            &offset=0&limit=50  (or from=&until=: Unix seconds, a
                                        window such as the monitor chart's minutes)
                                        agent runs (recording/sessions.py sums them up:
                                        kind, whose, when, how long, how they ended),
                                        sorted by any of those, a page at a time
    GET /recordings/sessions/{id}       one run: its records and those sharing their
                                        traces (alerts, approvals, decision records), its
                                        summary, what grouped it, its terminal recordings
    GET /recordings/terminal/{trace}    one terminal recording (asciicast v2), checked
                                        against the record of its exchange
    GET /recordings/records/{key}       one record (writer:seq), or one trace's records
    GET /recordings/report?since=30d&target=&format=html|json|pdf|zip
                                        the compliance report (extproc/reporting/),
                                        signed; zip: its JSON, HTML and PDF of one run
    GET /recordings/ui                  the page: runs listed, a run as a timeline, its
                                        terminal recordings played
    GET /recordings/player/asciinema-player.min.js, .../asciinema-player.css
                                        the page's terminal player (asciinema-player, from
                                        the npm registry: the Makefile puts it in vendor/)

Every call but the page and its player carries the caller's own token (Authorization:
Bearer), verified as the approvals API verifies it; readers.py says whose token reads
what. Each record is answered with its place in its writer's chain: the hash it follows,
its own, whether that hash is its content's, the first signed checkpoint at or after it.

Every read is itself a record, of kind `access`: who asked, for what, and the records it
was answered with (or why it was refused, 401 and 403 included), and whether a page made
the read on its own, nobody asking (`background=1`: the report counts such a refused read
as no person's attempt). It takes its place in the
record's queue before anything is read: a read that cannot be recorded is refused (503),
so nobody looks unrecorded. Every query is bounded, by its key or time and by a LIMIT.
Errors are JSON: {"error": code, "message": ...}.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from typing import Any

import orjson
from aiohttp import web

from extproc import admin
from extproc.admin.caller import caller_of
from extproc.admin.recordings.readers import NotAReader, Readers, Scope, approvers_scope
from extproc.admin.recordings.report import FORMATS, ReportError, Reports, file_name
from extproc.approvals.auth import AuthError, Verifier
from extproc.approvals.model import ApprovalError
from extproc.approvals.store import ApprovalStore
from extproc.codecs.durations import Unusable, parse_duration
from extproc.codecs.message import request_view
from extproc.codecs.vocabulary import ACTIONS, KINDS, SESSION_KINDS, session_kinds
from extproc.config import Recordings
from extproc.exchange.recorded import recorded
from extproc.identity import Authenticated
from extproc.recording import Evidence, Recorder, RecordingUnavailable
from extproc.recording.chain import record_hash
from extproc.recording.sessions import Summary, fold, page_query, records_query
from extproc.recording.store import containing, content_of
from extproc.store import StoreError
from extproc.store.aio import AsyncStore

log = logging.getLogger("tollgate.recordings")

# Records a search lists, by default and at most; sessions a session search lists.
_LISTED, _MOST_LISTED = 50, 200
# Records one trace answers with (an exchange, its decision record, its alert, the
# approvers' acts: a handful), and one session (an agent's run, with its traces' others).
_MOST_TRACE, _MOST_SESSION = 50, 500
_DEFAULT_SINCE, _REPORT_SINCE = "7d", "30d"
# A report's page: escaped values and inline styles and charts, nothing run or fetched.
_REPORT_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                   "img-src data:; frame-ancestors 'none'", "X-Content-Type-Options": "nosniff",
                   "Cache-Control": "no-store"}
_TEXT_CHARS = 1024
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_RECORD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}:[0-9]{1,19}")
_SUMMARY = ("id", "writer", "seq", "kind", "started_us", "trace_id", "session_id", "identity",
            "target", "action", "status", "prev_hash", "hash")
_COLUMNS = (*_SUMMARY, "content")
# What the access record keeps of the records returned: their ids, up to this many.
_MOST_IDS_KEPT = _MOST_SESSION

# What a session list sorts by. By start, newest first (the default), a page is chosen
# on the indexed columns and only its sessions are read; by anything else, the latest
# begun _MOST_SORTED of the period are summed up, _FOLDED at a time, and sorted.
SORTS = ("start", "duration", "identity", "kind", "exchanges", "allowed", "refused", "held",
         "masked")
_MOST_SORTED, _FOLDED = 500, 50
# A terminal recording's chunks answered at most (a chunk is a few seconds of output).
_MOST_CHUNKS = 20_000
# The page may run the terminal player's WebAssembly (compiled from the player's own
# script: 'wasm-unsafe-eval', which lets no string be run as script) and use its
# stylesheet ('self'); everything else as every admin page (extproc/admin/server.py).
_PAGE_POLICY = ("default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; "
                "style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; "
                "base-uri 'none'; form-action 'none'")
_PAGE_HEADERS = {"Content-Security-Policy": _PAGE_POLICY, "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
# The player's files (Makefile: `make` copies them from the npm registry's package).
PLAYER_FILES = {"asciinema-player.min.js": "text/javascript",
                "asciinema-player.css": "text/css"}


class RecordingsError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@dataclass(frozen=True)
class Answer:
    """A read's answer: its body, the ids of the records it returns (for its access
    record), and what it is."""

    body: bytes
    returned: list[str] = field(default_factory=list)
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


# A read: given the request and the caller's scope, its answer.
Read = Callable[[web.Request, Scope], Awaitable[Answer]]


class RecordingsApi:
    def __init__(self, store: AsyncStore, verifier: Verifier, recorder: Recorder,
                 readers: Readers, settings: Recordings, sensitive: tuple[str, ...],
                 reports: Reports | None = None,
                 clock: Callable[[], float] = time.time,
                 player: Traversable | None = None,
                 approvals: ApprovalStore | None = None) -> None:
        """`player`: the folder of the player's files (default: this package's vendor/,
        which an install without npm lacks); `approvals`: where an approver's search by
        an approval (`approval=`) finds it."""
        self._store, self._verifier, self._recorder = store, verifier, recorder
        self._approvals = approvals
        self._readers, self._settings, self._sensitive = readers, settings, sensitive
        self._reports, self._clock = reports, clock
        self._player = player or resources.files("extproc.admin.recordings").joinpath("vendor")

    def routes(self) -> list[web.RouteDef]:
        return [
            *_page_routes(),
            *(web.get(f"/recordings/player/{name}", _player_file(self._player, name, kind))
              for name, kind in PLAYER_FILES.items()),
            web.get("/recordings/search", self._reading("search", self._search)),
            web.get("/recordings/sessions", self._reading("sessions", self._sessions)),
            web.get("/recordings/sessions/{id}", self._reading("session", self._session)),
            web.get("/recordings/terminal/{id}", self._reading("terminal", self._terminal)),
            web.get("/recordings/records/{key}", self._reading("records", self._records)),
            web.get("/recordings/report", self._reading("report", self._report)),
        ]

    # -- every read, recorded ------------------------------------------------------------

    def _reading(self, endpoint: str, read: Read) -> admin.Handler:
        async def handle(request: web.Request) -> web.Response:
            return await self._recorded(request, endpoint, read)

        return handle

    async def _recorded(self, request: web.Request, endpoint: str,
                        read: Read) -> web.Response:
        """Answer one read as an act of the record: admitted first (else 503), the
        caller verified and scoped, the read made; its access record submitted whatever
        the answer."""
        started = time.time()
        caller: Authenticated | None = None
        returned: list[str] = []
        response = web.Response(status=500)  # replaced below, whatever happens

        def finish() -> Evidence:
            return self._access(request, endpoint, started, caller, returned, response)

        with recorded(self._recorder, None, finish) as admit:
            try:
                admit()
                caller = await self._caller(request)
                answer = await read(request, await self._scope(request, endpoint, caller))
                returned = answer.returned
                response = web.Response(status=200, body=answer.body,
                                        content_type=answer.content_type,
                                        headers=answer.headers)
            except RecordingUnavailable as exc:
                log.error("recordings API: %s %s refused, the read cannot be recorded: %s",
                          request.method, request.path, exc)
                response = _error(RecordingsError(
                    "recording_unavailable", f"this read cannot be recorded, so it is not "
                    f"made: {exc}", 503))
            except RecordingsError as refused:
                response = _error(refused)
            except StoreError as exc:
                response = _error(RecordingsError(
                    "store_unavailable", f"the store cannot answer: {exc}", 503))
            except Exception:  # a bug: answered and recorded all the same
                log.exception("recordings API: %s %s failed", request.method, request.path)
                response = _error(RecordingsError(
                    "internal_error", "tollgate could not process this request", 500))
        return response

    def _access(self, request: web.Request, endpoint: str, started: float,
                caller: Authenticated | None, returned: list[str],
                response: web.Response) -> Evidence:
        """The read as the record keeps it (kind `access`): who, which endpoint with
        which query, the records returned (ids, and how many), the answer's status."""
        headers = {name.lower(): value for name, value in request.headers.items()}
        headers.update({":method": request.method, ":path": request.path_qs})
        refusal = None
        if response.status != 200:
            refusal = orjson.loads(response.body)["error"]  # type: ignore[arg-type]
        meaning = {"endpoint": endpoint, "path": request.path,
                   "query": dict(request.query), "count": len(returned),
                   "returned": returned[:_MOST_IDS_KEPT],
                   "returned_truncated": len(returned) > _MOST_IDS_KEPT,
                   "background": request.query.get("background") == "1"}
        return Evidence(
            "access", started, os.urandom(16).hex(), os.urandom(8).hex(), headers, caller,
            None, request_view(headers, self._sensitive), meaning_key="access",
            meaning=meaning,
            outcome={"tollgate.decision.action": "allow" if response.status == 200
                     else "deny", "http.response.status_code": response.status,
                     **({"tollgate.refusal": refusal} if refusal else {})},
            duration_ms=(time.time() - started) * 1000)

    async def _caller(self, request: web.Request) -> Authenticated:
        try:
            return await caller_of(self._verifier, request)
        except AuthError as exc:
            log.warning("recordings API: %s %s refused: %s", request.method, request.path,
                        exc)
            raise RecordingsError("unauthenticated", str(exc), 401) from None

    async def _scope(self, request: web.Request, endpoint: str,
                     caller: Authenticated) -> Scope:
        """The caller's scope as a reader; else, searching by an approval they may decide
        (`approval=`), its requester's records on its target."""
        try:
            return self._readers.scope(caller)
        except NotAReader as exc:
            approval_id = request.query.get("approval")
            if endpoint == "search" and approval_id and self._approvals is not None:
                try:
                    approval = await self._approvals.get(approval_id)
                except ApprovalError:
                    approval = None
                if approval is not None and approval.is_approver(caller["sub"],
                                                                 caller["groups"]):
                    return approvers_scope(approval.requester, approval.target)
            log.warning("recordings API: %s %s refused: %s: %s", request.method,
                        request.path, caller["sub"], exc)
            raise RecordingsError("forbidden", str(exc), 403) from None

    # -- the reads -----------------------------------------------------------------------

    async def _search(self, request: web.Request, scope: Scope) -> Answer:
        where, params = self._filters(request, scope)
        for column, known in (("action", ACTIONS), ("kind", KINDS)):
            value = request.query.get(column)
            if value is not None:
                if value not in known:
                    raise RecordingsError(
                        "bad_request", f"{column} must be one of {', '.join(known)}", 400)
                where.append(f"{column} = ?")
                params.append(value)
        limit = _limit(request.query.get("limit", str(_LISTED)))
        rows = await self._store.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM records WHERE {' AND '.join(where)} "
            "ORDER BY started_us DESC, writer, seq DESC LIMIT ?", (*params, limit))
        shown = await self._shown(rows, with_content=False)
        return Answer(_joined({"count": len(rows), "limit": limit}, "records", shown),
                      [row[0] for row in rows])

    async def _sessions(self, request: web.Request, scope: Scope) -> Answer:
        """Agent runs with records matching the filters, each summed up from its records
        (recording/sessions.py, as `tollgate audit sessions`): its kinds, whose, when,
        how long, how its exchanges ended; sorted, a page at a time."""
        query = request.query
        where, params = self._filters(request, scope)
        limit = _limit(query.get("limit", str(_LISTED)))
        offset = _number(query.get("offset", "0"), "offset", _MOST_SORTED)
        sort, order = query.get("sort", "start"), query.get("order", "desc")
        if sort not in SORTS:
            raise RecordingsError("bad_request", f"sort must be one of {', '.join(SORTS)}", 400)
        if order not in ("asc", "desc"):
            raise RecordingsError("bad_request", "order must be asc or desc", 400)
        kind, protocols = query.get("kind"), None
        head: dict[str, Any] = {"sort": sort, "order": order, "offset": offset,
                                "limit": limit, "kind": kind}
        if kind is not None:
            if kind not in SESSION_KINDS:
                raise RecordingsError("bad_request",
                                      f"kind must be one of {', '.join(SESSION_KINDS)}", 400)
            protocols = SESSION_KINDS[kind]
            targets = await self._targets_of(protocols, self._since_us(request))
            if not targets:
                return Answer(orjson.dumps({**head, "more": False, "sorted_among": None,
                                            "sorted_truncated": False, "sessions": []}))
            where.append(f"target IN ({', '.join('?' * len(targets))})")
            params += targets
        fast = sort == "start" and order == "desc"
        sql, chosen = page_query(where, params, offset + limit + 1 if fast
                                 else _MOST_SORTED + 1)
        ids = [row[0] for row in await self._store.execute(sql, chosen)]
        among = None
        if fast:
            more = len(ids) > offset + limit
            found = await self._summed(ids[offset:offset + limit], scope)
        else:
            among = min(len(ids), _MOST_SORTED)
            found = await self._summed(ids[:_MOST_SORTED], scope)
            found.sort(key=lambda s: (_sort_key(s, sort), s.first_us, s.session_id),
                       reverse=order == "desc")
        if protocols is not None:
            found = [s for s in found if not s.protocols.isdisjoint(protocols)]
        if not fast:
            more = len(found) > offset + limit
            found = found[offset:offset + limit]
        head.update(more=more, sorted_among=among,
                    sorted_truncated=among is not None and len(ids) > _MOST_SORTED)
        return Answer(orjson.dumps({**head, "sessions": [_summary(s) for s in found]}),
                      [s.session_id for s in found])

    async def _summed(self, session_ids: list[str], scope: Scope) -> list[Summary]:
        """These sessions summed up from their records the caller may read, newest
        first."""
        allowed, scoped = scope.sql()
        found: list[Summary] = []
        for at in range(0, len(session_ids), _FOLDED):
            sql, params = records_query(session_ids[at:at + _FOLDED])
            found += fold(await self._store.execute(f"{sql} AND {allowed}",
                                                    (*params, *scoped)))
        return sorted(found, key=lambda s: (s.first_us, s.session_id), reverse=True)

    async def _targets_of(self, protocols: frozenset[str], since_us: int) -> list[str]:
        """The targets of the exchanges since `since_us` that speak one of `protocols`,
        as each target's latest record says (as recording/sessions.py reads them)."""
        found = []
        for name, latest in await self._store.execute(
                "SELECT target, MAX(started_us) FROM records WHERE kind = 'exchange' AND "
                "target IS NOT NULL AND started_us >= ? GROUP BY target", (since_us,)):
            contents = await self._store.execute(
                "SELECT content FROM records WHERE kind = 'exchange' AND target = ? AND "
                "started_us = ? LIMIT 1", (name, latest))
            if contents and (content_of(contents[0][0]).get("target") or {}).get(
                    "protocol") in protocols:
                found.append(name)
        return sorted(found)

    async def _session(self, request: web.Request, scope: Scope) -> Answer:
        """One run's records, and the others of their traces (an alert, an approval, a
        strict target's decision record), oldest first; the run summed up, what grouped
        it, and its terminal recordings (without their contents)."""
        session_id = request.match_info["id"]
        if len(session_id) > _TEXT_CHARS:
            raise RecordingsError("bad_request",
                                  f"a session id is 1-{_TEXT_CHARS} characters", 400)
        allowed, params = scope.sql()
        rows = list(await self._store.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM records WHERE session_id = ? AND {allowed} "
            "ORDER BY started_us, writer, seq LIMIT ?",
            (session_id, *params, _MOST_SESSION + 1)))
        if not rows:
            raise RecordingsError("not_found", f"no record of session {session_id}", 404)
        own = rows[:_MOST_SESSION]
        traces = sorted({row[5] for row in rows})
        rows += await self._store.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM records WHERE trace_id IN "
            f"({', '.join('?' * len(traces))}) AND session_id <> ? AND {allowed} "
            "ORDER BY started_us, writer, seq LIMIT ?",
            (*traces, session_id, *params, _MOST_SESSION + 1))
        rows.sort(key=lambda row: (row[4], row[1], row[2]))
        kept = rows[:_MOST_SESSION]
        shown = await self._shown(kept)
        # Summed up as the list sums it (from the records read here: all of them, unless
        # the session has more than a page holds).
        summed = fold((row[6], row[3], row[4], row[7], row[9], row[13]) for row in own)
        head = {"session_id": session_id, "truncated": len(rows) > _MOST_SESSION,
                "trace_url": self._settings.trace_url,
                "summary": _summary(summed[0]) if summed else None,
                "grouping": _grouping(own),
                "terminals": await self._terminals(session_id, traces, scope)}
        return Answer(_joined(head, "records", shown), [row[0] for row in kept])

    async def _terminals(self, session_id: str, traces: list[str],
                         scope: Scope) -> list[dict[str, Any]]:
        """The session's terminal recordings, oldest first: each named by the trace of
        the exchange that vouches for it; a full reader also gets those of the session no
        record vouches for yet (the shell still open)."""
        if not traces or not await self._store.execute(
                "SELECT version FROM tollgate_schema WHERE component = 'terminal'"):
            return []
        either = "" if scope.targets is not None else " OR session_id = ?"
        rows = await self._store.execute(
            "SELECT recording_id, MIN(session_id), COUNT(*), MAX(chunk), SUM(LENGTH(data)), "
            "MIN(written_us), MAX(written_us) FROM terminal_recordings WHERE recording_id "
            f"IN ({', '.join('?' * len(traces))}){either} GROUP BY recording_id "
            "ORDER BY MIN(written_us), recording_id LIMIT ?",
            (*traces, *((session_id,) if either else ()), _MOST_TRACE))
        return [{"recording_id": recording, "session_id": session, "chunks": chunks,
                 "missing": chunks != last + 1, "bytes": size, "first_us": first,
                 "last_us": written, "recorded": recording in traces}
                for recording, session, chunks, last, size, first, written in rows]

    async def _terminal(self, request: web.Request, scope: Scope) -> Answer:
        """One terminal recording (asciicast v2) as stored, checked against the record of
        the exchange it belongs to (its size and SHA-256), with that exchange's trace's
        records for its access record. A reader of some targets reads the recordings of
        their targets' exchanges only."""
        recording_id = request.match_info["id"].lower()
        if not _TRACE_ID.fullmatch(recording_id):
            raise RecordingsError("bad_request", "expected a recording id (its exchange's "
                                  "trace id: 32 hexadecimal digits)", 400)
        allowed, params = scope.sql()
        rows = await self._store.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM records WHERE trace_id = ? AND {allowed} "
            "ORDER BY started_us, writer, seq LIMIT ?", (recording_id, *params, _MOST_TRACE))
        chunks = []
        if rows or scope.targets is None:
            chunks = await self._store.execute(
                "SELECT chunk, session_id, data, written_us FROM terminal_recordings WHERE "
                "recording_id = ? ORDER BY chunk LIMIT ?", (recording_id, _MOST_CHUNKS + 1))
        if not chunks:
            raise RecordingsError("not_found", f"no terminal recording {recording_id}", 404)
        kept = chunks[:_MOST_CHUNKS]
        data = "".join(str(chunk[2]) for chunk in kept).encode("utf-8")
        numbers = {int(chunk[0]) for chunk in kept}
        verified, detail = _checked(data, rows)
        answer = {"recording_id": recording_id, "session_id": kept[0][1],
                  "chunks": len(kept), "truncated": len(chunks) > _MOST_CHUNKS,
                  "missing": [n for n in range(max(numbers)) if n not in numbers],
                  "bytes": len(data), "first_us": min(int(c[3]) for c in kept),
                  "last_us": max(int(c[3]) for c in kept), "verified": verified,
                  "detail": detail, "cast": data.decode("utf-8")}
        return Answer(orjson.dumps(answer), [row[0] for row in rows])

    async def _records(self, request: web.Request, scope: Scope) -> Answer:
        """One record by its id, or every record of a trace, oldest first."""
        key = request.match_info["key"]
        key = key.lower() if _TRACE_ID.fullmatch(key.lower()) else key
        if not (_TRACE_ID.fullmatch(key) or _RECORD_ID.fullmatch(key)):
            raise RecordingsError("bad_request", "expected a record id (writer:seq) or a "
                                  "trace id (32 hexadecimal digits)", 400)
        allowed, params = scope.sql()
        rows = await self._store.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM records WHERE (id = ? OR trace_id = ?) AND "
            f"{allowed} ORDER BY started_us, writer, seq LIMIT ?",
            (key, key, *params, _MOST_TRACE + 1))
        if not rows:
            raise RecordingsError("not_found", f"no record {key}", 404)
        kept = rows[:_MOST_TRACE]
        shown = await self._shown(kept)
        head = {"key": key, "truncated": len(rows) > _MOST_TRACE,
                "trace_url": self._settings.trace_url}
        return Answer(_joined(head, "records", shown), [row[0] for row in kept])

    async def _report(self, request: web.Request, scope: Scope) -> Answer:
        """The compliance report on the period (of one target: a reader of some targets
        only must name one of theirs), made in a thread."""
        if self._reports is None:
            raise RecordingsError("not_found", "no report here (no recording)", 404)
        format_ = request.query.get("format", "html")
        if format_ not in FORMATS:
            raise RecordingsError("bad_request", f"format must be one of {', '.join(FORMATS)}",
                                  400)
        target = request.query.get("target")
        if scope.targets is not None and target not in scope.targets:
            raise RecordingsError("forbidden", "name a target of yours: target=NAME", 403)
        now = self._clock()
        since_us = int((now - _seconds(request.query.get("since", _REPORT_SINCE))) * 1e6)
        try:
            body = await asyncio.to_thread(self._reports.render, since_us, int(now * 1e6),
                                           target, format_)
        except ReportError as exc:
            raise RecordingsError("store_unavailable", f"no report now: {exc}", 503) from None
        headers = _REPORT_HEADERS
        if format_ != "html":
            name = file_name(since_us, int(now * 1e6), target)
            headers = {**headers, "Content-Disposition":
                       f'attachment; filename="{name}.{format_}"'}
        return Answer(body, content_type=FORMATS[format_], headers=headers)

    # -- helpers -------------------------------------------------------------------------

    def _since_us(self, request: web.Request) -> int:
        return int((self._clock() - _seconds(request.query.get("since", _DEFAULT_SINCE)))
                   * 1e6)

    def _window(self, request: web.Request) -> tuple[int, int | None]:
        """Records started in [from, until) (Unix seconds: a window of the monitor's
        chart, brushed), or since a duration ago (`since`, 7 days unless given)."""
        query = request.query
        if "from" in query and "since" in query:
            raise RecordingsError("bad_request", "give since or from, not both", 400)
        since_us = (_instant(query["from"], "from") if "from" in query
                    else self._since_us(request))
        until_us = _instant(query["until"], "until") if "until" in query else None
        if until_us is not None and until_us <= since_us:
            raise RecordingsError("bad_request", "until must be after from (or since)", 400)
        return since_us, until_us

    def _filters(self, request: web.Request, scope: Scope) -> tuple[list[str], list[Any]]:
        """The conditions every search takes: the scope, identity, target, the window
        (since, or from and until), and `text` the content holds (store.containing)."""
        allowed, scoped = scope.sql()
        since_us, until_us = self._window(request)
        where: list[str] = [allowed, "started_us >= ?"]
        params: list[Any] = [*scoped, since_us]
        if until_us is not None:
            where.append("started_us < ?")
            params.append(until_us)
        for column in ("identity", "target"):
            value = request.query.get(column)
            if value is None:
                continue
            if not value or len(value) > _TEXT_CHARS:
                raise RecordingsError("bad_request",
                                      f"{column} must be 1-{_TEXT_CHARS} characters", 400)
            where.append(f"{column} = ?")
            params.append(value)
        text = request.query.get("text")
        if text is not None:
            if not text.strip() or len(text) > _TEXT_CHARS:
                raise RecordingsError("bad_request",
                                      f"text must be 1-{_TEXT_CHARS} characters", 400)
            condition, pattern = containing(text)
            where.append(condition)
            params.append(pattern)
        return where, params

    async def _shown(self, rows: list[tuple[Any, ...]],
                     with_content: bool = True) -> list[bytes]:
        """Each row as JSON (`_record`) with the first signed checkpoint at or after it:
        the checkpoints read once per writer (a session's hundreds of records are a few
        chains), from its lowest record's to the first at or after its highest."""
        seqs: dict[str, list[int]] = defaultdict(list)
        for row in rows:
            seqs[row[1]].append(row[2])
        checkpoints: dict[str, list[tuple[Any, ...]]] = {}
        for writer, numbers in seqs.items():
            low, high = min(numbers), max(numbers)
            checkpoints[writer] = await self._store.execute(
                "SELECT seq, signed_us, key_id FROM checkpoints WHERE writer = ? "
                "AND kind = 'checkpoint' AND seq >= ? AND seq <= COALESCE((SELECT MIN(seq) "
                "FROM checkpoints WHERE writer = ? AND kind = 'checkpoint' AND seq >= ?), ?) "
                "ORDER BY seq", (writer, low, writer, high, high))
        shown = []
        for row in rows:
            signed = checkpoints[row[1]]
            at = bisect.bisect_left(signed, row[2], key=lambda found: found[0])
            shown.append(_record(row, signed[at] if at < len(signed) else None,
                                 with_content))
        return shown


def _record(row: tuple[Any, ...], checkpoint: tuple[Any, ...] | None,
            with_content: bool) -> bytes:
    """One record as JSON: its columns, its place in its writer's chain (the hash it
    follows, its own, whether that hash is its content's, the first signed checkpoint
    at or after it), and its content exactly as stored and hashed."""
    found = dict(zip(_COLUMNS, row, strict=True))
    content: str = found.pop("content")
    found["hash_matches"] = record_hash(found["prev_hash"], found["writer"],
                                        found["seq"], content) == found["hash"]
    found["checkpoint"] = dict(zip(("seq", "signed_us", "key_id"), checkpoint,
                                   strict=True)) if checkpoint else None
    if not with_content:
        return orjson.dumps(found)
    try:
        # The standard library's parser: orjson's takes no integers beyond 64 bits,
        # which a client's JSON may have carried into the record.
        json.loads(content)
    except ValueError:
        found["content_error"] = "the stored content is not JSON"
        return orjson.dumps({**found, "content": None})
    head = orjson.dumps(found)
    return head[:-1] + b',"content":' + content.encode() + b"}"


def _instant(text: str, name: str) -> int:
    """Unix seconds (a whole number, as the monitor's buckets start), in microseconds."""
    if not text.isdigit() or not 0 < int(text) < 2**40:
        raise RecordingsError("bad_request", f"{name} must be Unix seconds (a whole number), "
                              f"got {text[:40]!r}", 400)
    return int(text) * 1_000_000


def _seconds(since: str) -> int:
    try:
        return parse_duration(since, "since", "30m, 1h, 7d or 1d12h")
    except Unusable as exc:
        raise RecordingsError("bad_request", str(exc), 400) from None


def _joined(head: dict[str, Any], key: str, items: list[bytes]) -> bytes:
    """`head` with `key` set to the JSON `items`, as they are (contents stay verbatim)."""
    return orjson.dumps(head)[:-1] + f',"{key}":['.encode() + b",".join(items) + b"]}"


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= _MOST_LISTED:
        raise RecordingsError("bad_request", f"limit must be 1-{_MOST_LISTED}, got {text!r}",
                              400)
    return int(text)


def _number(text: str, name: str, most: int) -> int:
    if not text.isdigit() or int(text) > most:
        raise RecordingsError("bad_request", f"{name} must be 0-{most}, got {text!r}", 400)
    return int(text)


def _summary(summary: Summary) -> dict[str, Any]:
    return {**summary.as_json(), "kinds": session_kinds(summary.protocols)}


def _sort_key(summary: Summary, sort: str) -> Any:
    if sort == "start":
        return summary.first_us
    if sort == "duration":
        return summary.duration_us
    if sort == "identity":
        return ", ".join(each or "" for each in summary.named_identities())
    if sort == "kind":
        return "+".join(session_kinds(summary.protocols))
    return getattr(summary, sort)


def _grouping(rows: list[tuple[Any, ...]]) -> dict[str, str] | None:
    """What grouped the session, as its first record that says (`session_rule`, what
    recording/record.py's `session_of` and `grouped_by` found), in words: the SSH and
    Kubernetes stream fronts name each connection or stream themselves (as the agent's
    `x-session-id` would), so for them that header is theirs, not the agent's."""
    for row in rows:
        document = content_of(row[13])
        rule = document.get("session_rule")
        if not isinstance(rule, str):
            continue
        protocol = (document.get("target") or {}).get("protocol")
        k8s = ((document.get("meaning") or {}).get("k8s") or {})
        if rule == "header" and protocol == "ssh":
            words = ("one SSH connection: tollgate names each connection an agent opens, "
                     "and every command, line typed and file moved in it is of it")
        elif rule == "header" and protocol == "k8s" and isinstance(k8s.get("exec"), dict):
            words = ("one Kubernetes exec, attach or cp stream: tollgate names each stream "
                     "it relays, and every line typed and file moved in it is of it")
        elif rule == "header":
            words = "the agent's own x-session-id header, which every exchange here sent"
        elif rule == "mcp":
            words = ("one MCP session: the Mcp-Session-Id the MCP server gave the agent "
                     "when it initialized")
        elif rule == "token":
            words = ("the agent's token (its jti): its exchanges that named no session, "
                     "none more than recording.session_idle_minutes after the one before")
        elif rule == "identity":
            words = ("the agent's identity (its token's subject; the token has no jti): its "
                     "exchanges that named no session, none more than "
                     "recording.session_idle_minutes after the one before")
        elif rule == "trace":
            words = ("one trace: the exchange named no session, and no verified token "
                     "groups it with others")
        else:
            words = f"rule {rule}"
        return {"rule": rule, "words": words}
    return None


def _checked(data: bytes, rows: list[tuple[Any, ...]]) -> tuple[bool | None, str]:
    """Whether a recording is the one the record of its exchange vouches for (its size
    and SHA-256, which `tollgate audit replay` checks too); None: nothing to check it
    against."""
    exchanges = [row for row in rows if row[3] == "exchange"]
    if not exchanges:
        return None, ("not verified: no record of its exchange (the session may still be "
                      "open, or tollgate stopped before its end)")
    record_id, body = exchanges[0][0], (
        (content_of(exchanges[0][13]).get("response") or {}).get("body") or {})
    if "sha256" not in body:
        return None, f"not verified: record {record_id} keeps no SHA-256 of it"
    digest = hashlib.sha256(data).hexdigest()
    if body.get("size") == len(data) and body["sha256"] == digest:
        return True, (f"verified: its size and SHA-256 are those record {record_id} keeps "
                      f"({len(data)} bytes, sha256 {digest[:16]}…)")
    return False, (f"DOES NOT MATCH the record: record {record_id} keeps {body.get('size')} "
                   f"bytes, sha256 {str(body['sha256'])[:16]}…; the store holds {len(data)} "
                   f"bytes, sha256 {digest[:16]}…")


def _page_routes() -> list[web.RouteDef]:
    """The page and its script, under the page's own policy (`_PAGE_POLICY`)."""
    return admin.page_routes("/recordings/ui", "extproc.admin.recordings",
                             headers=_PAGE_HEADERS)


def _player_file(folder: Traversable, name: str, kind: str) -> admin.Handler:
    """One of the player's files, read as asked (it may be installed after the start); a
    404 saying why when it is not there."""
    path = folder.joinpath(name)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    missing = _error(RecordingsError(
        "not_found", f"the terminal player is not installed here ({name}: `make` puts it "
        "in extproc/admin/recordings/vendor/ from the npm registry, or "
        "recordings.player_dir names a folder holding it)", 404))

    async def player(_request: web.Request) -> web.Response:
        try:
            body = path.read_bytes()
        except OSError:
            return missing
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=headers)

    return player


def _error(refused: RecordingsError) -> web.Response:
    return web.Response(status=refused.status, content_type="application/json",
                        body=orjson.dumps({"error": refused.code, "message": str(refused)}))
