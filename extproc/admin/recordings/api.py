"""The recordings API on the admin port: the audit record, read by its readers.

    GET /recordings/search?identity=&target=&action=&kind=&since=7d&limit=50
                                        records, newest first (as `tollgate audit search`)
    GET /recordings/sessions?identity=&target=&since=7d&limit=50
                                        agent runs, the latest active first
    GET /recordings/sessions/{id}       one run: its records and those sharing their
                                        traces (alerts, approvals, decision records)
    GET /recordings/records/{key}       one record (writer:seq), or one trace's records
    GET /recordings/report?since=30d&target=&format=html|json
                                        the compliance report (extproc/reporting/)
    GET /recordings/ui                  the page: a run as a timeline

Every call but the page carries the caller's own token (Authorization: Bearer), verified
as the approvals API verifies it; readers.py says whose token reads what. Each record is
answered with its place in its writer's chain: the hash it follows, its own, whether that
hash is its content's, the first signed checkpoint at or after it.

Every read is itself a record, of kind `access`: who asked, for what, and the records it
was answered with (or why it was refused, 401 and 403 included). It takes its place in the
record's queue before anything is read: a read that cannot be recorded is refused (503),
so nobody looks unrecorded. Every query is bounded, by its key or time and by a LIMIT.
Errors are JSON: {"error": code, "message": ...}.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from extproc import admin
from extproc.admin.recordings.readers import NotAReader, Readers, Scope
from extproc.admin.recordings.report import FORMATS, ReportError, Reports
from extproc.approvals.auth import AuthError, Verifier
from extproc.codecs.durations import Unusable, parse_duration
from extproc.codecs.message import request_view
from extproc.codecs.vocabulary import ACTIONS, KINDS
from extproc.config import Recordings
from extproc.exchange.recorded import recorded
from extproc.identity import Authenticated
from extproc.recording import Evidence, Recorder, RecordingUnavailable
from extproc.recording.chain import record_hash
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
                 clock: Callable[[], float] = time.time) -> None:
        self._store, self._verifier, self._recorder = store, verifier, recorder
        self._readers, self._settings, self._sensitive = readers, settings, sensitive
        self._reports, self._clock = reports, clock

    def routes(self) -> list[web.RouteDef]:
        return [
            *admin.page_routes("/recordings/ui", "extproc.admin.recordings"),
            web.get("/recordings/search", self._reading("search", self._search)),
            web.get("/recordings/sessions", self._reading("sessions", self._sessions)),
            web.get("/recordings/sessions/{id}", self._reading("session", self._session)),
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
                answer = await read(request, self._scope(request, caller))
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
                   "returned_truncated": len(returned) > _MOST_IDS_KEPT}
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
            return await self._verifier.identity(request.headers.get("Authorization"))
        except AuthError as exc:
            log.warning("recordings API: %s %s refused: %s", request.method, request.path,
                        exc)
            raise RecordingsError("unauthenticated", str(exc), 401) from None

    def _scope(self, request: web.Request, caller: Authenticated) -> Scope:
        try:
            return self._readers.scope(caller)
        except NotAReader as exc:
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
        """Agent runs (sessions of exchanges) matching the filters, the latest active
        first: their first and last exchange, how many, whose, on which target."""
        where, params = self._filters(request, scope)
        limit = _limit(request.query.get("limit", str(_LISTED)))
        rows = await self._store.execute(
            "SELECT session_id, MIN(started_us), MAX(started_us), COUNT(*), MIN(identity), "
            "MIN(target), MAX(target) FROM records WHERE kind IN ('exchange', 'decision') "
            f"AND {' AND '.join(where)} GROUP BY session_id "
            "ORDER BY MAX(started_us) DESC, session_id LIMIT ?", (*params, limit))
        sessions = [{"session_id": sid, "first_us": first, "last_us": last, "records": count,
                     "identity": identity,
                     "targets": sorted({t for t in (low, high) if t is not None})}
                    for sid, first, last, count, identity, low, high in rows]
        return Answer(orjson.dumps({"sessions": sessions, "limit": limit}),
                      [row[0] for row in rows])

    async def _session(self, request: web.Request, scope: Scope) -> Answer:
        """One run's records, and the others of their traces (an alert, an approval, a
        strict target's decision record), oldest first."""
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
        traces = sorted({row[5] for row in rows})
        rows += await self._store.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM records WHERE trace_id IN "
            f"({', '.join('?' * len(traces))}) AND session_id <> ? AND {allowed} "
            "ORDER BY started_us, writer, seq LIMIT ?",
            (*traces, session_id, *params, _MOST_SESSION + 1))
        rows.sort(key=lambda row: (row[4], row[1], row[2]))
        kept = rows[:_MOST_SESSION]
        shown = await self._shown(kept)
        head = {"session_id": session_id, "truncated": len(rows) > _MOST_SESSION,
                "trace_url": self._settings.trace_url}
        return Answer(_joined(head, "records", shown), [row[0] for row in kept])

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
        return Answer(body, content_type=FORMATS[format_], headers=_REPORT_HEADERS)

    # -- helpers -------------------------------------------------------------------------

    def _filters(self, request: web.Request, scope: Scope) -> tuple[list[str], list[Any]]:
        """The conditions every search takes: the scope, identity, target, since."""
        allowed, scoped = scope.sql()
        where: list[str] = [allowed, "started_us >= ?"]
        seconds = _seconds(request.query.get("since", _DEFAULT_SINCE))
        params: list[Any] = [*scoped, int((self._clock() - seconds) * 1e6)]
        for column in ("identity", "target"):
            value = request.query.get(column)
            if value is None:
                continue
            if not value or len(value) > _TEXT_CHARS:
                raise RecordingsError("bad_request",
                                      f"{column} must be 1-{_TEXT_CHARS} characters", 400)
            where.append(f"{column} = ?")
            params.append(value)
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


def _error(refused: RecordingsError) -> web.Response:
    return web.Response(status=refused.status, content_type="application/json",
                        body=orjson.dumps({"error": refused.code, "message": str(refused)}))
