"""The monitoring API on the admin port, and the page that draws it.

    GET /monitor/activity                   identities active in the last day, their totals
    GET /monitor/activity?identity=<sub>    one identity: exchanges, refusals, holds and
                                            masked values per minute over the last hour,
                                            its totals, its latest alerts and refusals
    GET /monitor/ui                         the page: all of it, live

Every call but the page carries the caller's own token (Authorization: Bearer), verified
as the approvals API verifies it (approvals/auth.py); `viewers`, when given, narrows who
may look (`user:SUB` or `group:NAME`). Counts come from `activity_counts` (per identity,
clock minute and metric, summed across workers and replicas by extproc/activity/);
alerts and refusals from the records table, newest first, within the last day; their
records are read on the recordings page (extproc/recordings/), by its readers. Every
query is bounded: by its key or time range, and by a LIMIT.
Errors are JSON: {"error": code, "message": ...}.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

import orjson
from aiohttp import web

from extproc import admin
from extproc.approvals.auth import AuthError, Verifier
from extproc.identity import Authenticated, principals
from extproc.store import StoreError
from extproc.store.aio import AsyncStore

log = logging.getLogger("tollgate.monitor")

_HOUR, _DAY = 60, 1440  # in minutes
# The overview lists at most this many identities, the most recently active first.
_MOST_IDENTITIES = 500
# Alerts and refusals shown per identity (`limit`), and the most a caller may ask for.
_LISTED, _MOST_LISTED = 20, 100
# The overview is read at most this often per process, however many pages poll it.
_OVERVIEW_SECONDS = 4.0
_SUBJECT_CHARS = 1024
# Of the counts the tracker keeps, what the page shows.
_TOTALS = ("exchanges", "refusals", "holds", "masked", "administrative")


def _sums(since: str = "") -> str:
    """SQL summing each of _TOTALS per group (from `minute >= ?` on, given `since`); the
    casts keep PostgreSQL's SUM of BIGINT an integer, not a numeric."""
    window = f"minute >= {since} AND " if since else ""
    return ", ".join(
        f"CAST(SUM(CASE WHEN {window}{test} THEN value ELSE 0 END) AS BIGINT)"
        for test in ("metric = 'exchanges'", "metric = 'refusals'", "metric = 'holds'",
                     "metric LIKE 'masked:%'", "metric = 'administrative'"))


class MonitorError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.status = code, status


class MonitorApi:
    def __init__(self, store: AsyncStore, verifier: Verifier,
                 viewers: Collection[str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._store, self._verifier = store, verifier
        self._viewers = frozenset(viewers) if viewers is not None else None
        self._clock = clock
        self._overview: tuple[float, dict[str, Any]] | None = None  # (monotonic, answer)

    def routes(self) -> list[web.RouteDef]:
        return [
            *admin.page_routes("/monitor/ui", "extproc.admin.monitor"),
            web.get("/monitor/activity", self._activity),
        ]

    # -- activity ------------------------------------------------------------------------

    async def _activity(self, request: web.Request) -> web.Response:
        try:
            await self._caller(request)
            identity = request.query.get("identity")
            if identity is None:
                return _json(200, await self.overview())
            if not identity or len(identity) > _SUBJECT_CHARS:
                raise MonitorError("bad_request",
                                   f"identity must be 1-{_SUBJECT_CHARS} characters", 400)
            limit = _limit(request.query.get("limit", str(_LISTED)))
            return _json(200, await self.identity(identity, limit))
        except MonitorError as refused:
            return _error(refused)
        except StoreError as exc:
            return _error(_unavailable(exc))

    async def overview(self) -> dict[str, Any]:
        """Identities with counts in the last day, the most recently active first: their
        totals over the last hour and day. Read at most every few seconds per process."""
        cached = self._overview
        if cached is not None and time.monotonic() - cached[0] < _OVERVIEW_SECONDS:
            return cached[1]
        now = self._clock()
        minute = int(now // 60)
        rows = await self._store.execute(
            f"SELECT key, MAX(minute), {_sums('?')}, {_sums()} FROM activity_counts "
            "WHERE minute > ? AND key LIKE 'sub:%' GROUP BY key "
            "ORDER BY MAX(minute) DESC, key LIMIT ?",
            (*[minute - _HOUR + 1] * len(_TOTALS), minute - _DAY, _MOST_IDENTITIES + 1))
        identities = [{
            "identity": key.removeprefix("sub:"),
            # Those beyond the tracker's bound, counted together.
            "aggregated": key == "sub:~others",
            "last_active": last * 60,
            "hour": dict(zip(_TOTALS, sums[:len(_TOTALS)], strict=True)),
            "day": dict(zip(_TOTALS, sums[len(_TOTALS):], strict=True)),
        } for key, last, *sums in rows[:_MOST_IDENTITIES]]
        answer = {"now": now, "since": (minute - _DAY + 1) * 60, "identities": identities,
                  "truncated": len(rows) > _MOST_IDENTITIES}
        self._overview = (time.monotonic(), answer)
        return answer

    async def identity(self, identity: str, limit: int = _LISTED) -> dict[str, Any]:
        """One identity: its counts per minute over the last hour (every minute, oldest
        first, zeros included), its totals, its latest alerts and refusals of the day."""
        now = self._clock()
        minute = int(now // 60)
        key = f"sub:{identity}"
        rows = await self._store.execute(
            f"SELECT minute, {_sums()} FROM activity_counts WHERE key = ? AND minute > ? "
            "GROUP BY minute ORDER BY minute LIMIT ?", (key, minute - _HOUR, _HOUR + 1))
        by_minute = {m: sums for m, *sums in rows}
        minutes = [{"start": m * 60, **dict(zip(_TOTALS, by_minute.get(m, [0] * len(_TOTALS)),
                                                strict=True))}
                   for m in range(minute - _HOUR + 1, minute + 1)]
        day = await self._store.execute(
            f"SELECT {_sums()} FROM activity_counts WHERE key = ? AND minute > ?",
            (key, minute - _DAY))
        since_us = int((now - _DAY * 60) * 1e6)
        alerts = await self._latest(identity, "kind = 'alert'", since_us, limit)
        refusals = await self._latest(
            identity, "kind = 'exchange' AND action = 'deny'", since_us, limit)
        return {
            "identity": identity, "now": now, "since_us": since_us, "minutes": minutes,
            "hour": {name: sum(m[name] for m in minutes) for name in _TOTALS},
            "day": dict(zip(_TOTALS, (int(v or 0) for v in day[0]), strict=True)) if day
            else dict.fromkeys(_TOTALS, 0),
            "alerts": [_alert(row) for row in alerts],
            "refusals": [_refusal(row) for row in refusals],
        }

    async def _latest(self, identity: str, which: str, since_us: int,
                      limit: int) -> list[tuple[Any, ...]]:
        """The identity's newest records of a kind, within the window; an anonymous
        identity's records name none (their counts go to `sub:anonymous`)."""
        who = "(identity = ? OR identity IS NULL)" if identity == "anonymous" \
            else "identity = ?"
        return await self._store.execute(
            "SELECT id, trace_id, started_us, target, status, content FROM records "
            f"WHERE {who} AND {which} AND started_us >= ? "
            "ORDER BY started_us DESC, writer, seq DESC LIMIT ?",
            (identity, since_us, limit))

    # -- helpers -------------------------------------------------------------------------

    async def _caller(self, request: web.Request) -> Authenticated:
        try:
            caller = await self._verifier.identity(request.headers.get("Authorization"))
        except AuthError as exc:
            log.warning("monitor API: %s %s refused: %s", request.method, request.path, exc)
            raise MonitorError("unauthenticated", str(exc), 401) from None
        if self._viewers is not None and not principals(caller) & self._viewers:
            log.warning("monitor API: %s %s refused: %s is no viewer", request.method,
                        request.path, caller["sub"])
            raise MonitorError("forbidden", "the monitor is for its viewers only", 403)
        return caller


def _document(content: str) -> dict[str, Any]:
    try:
        found = json.loads(content)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _alert(row: tuple[Any, ...]) -> dict[str, Any]:
    """An alert record as the page lists it: what the alert says (`meaning.alert`)."""
    record_id, trace_id, started_us, target, _status, content = row
    alert = (_document(content).get("meaning") or {}).get("alert") or {}
    return {
        "record_id": record_id, "trace_id": trace_id, "started_us": started_us,
        "target": target, "rule": alert.get("rule"), "severity": alert.get("severity"),
        "message": alert.get("message"), "trace_ids": alert.get("trace_ids") or [],
        "delivery": alert.get("delivery"),
    }


def _refusal(row: tuple[Any, ...]) -> dict[str, Any]:
    """A refused exchange as the page lists it: what was asked, why it was refused."""
    record_id, trace_id, started_us, target, status, content = row
    document = _document(content)
    request = document.get("request") or {}
    decisions = [d for d in document.get("decisions") or [] if d.get("action") == "deny"]
    return {
        "record_id": record_id, "trace_id": trace_id, "started_us": started_us,
        "target": target, "status": status,
        "method": request.get("method"), "path": request.get("path"),
        "refusal": (document.get("outcome") or {}).get("refusal"),
        "rules": [r for d in decisions for r in d.get("rules") or []],
        "reasons": [r for d in decisions for r in d.get("reasons") or []],
    }


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= _MOST_LISTED:
        raise MonitorError("bad_request", f"limit must be 1-{_MOST_LISTED}, got {text!r}", 400)
    return int(text)


def _unavailable(exc: StoreError) -> MonitorError:
    return MonitorError("store_unavailable", f"the store cannot answer: {exc}", 503)


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _error(refused: MonitorError) -> web.Response:
    return _json(refused.status, {"error": refused.code, "message": str(refused)})


