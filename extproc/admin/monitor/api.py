"""The monitoring API on the admin port, and the page that draws it.

    GET /monitor/activity?range=1h          identities active in the range, their totals,
                                            and the range's refusals, identical ones
                                            together (all identities)
    GET /monitor/activity?identity=<sub>&range=1h
                                            one identity: allowed, refused, held and masked
                                            per bucket over the range, its totals, its
                                            alerts and refusals of the range (identical
                                            ones together too)
    GET /monitor/ui                         the page: all of it, live

The range is `range=15m|1h|6h|24h` (the default 1h), or `since=S&until=U` (seconds since
the epoch) within the last day, which the activity counts cover: each is whole clock
minutes, counted per minute up to an hour and in buckets of up to an hour beyond (at
most 120 buckets). Refusals are grouped by what the exchange did (the record's `what`),
the rules that refused it and its target: each group with its count, first and last
time, the identities that sent it, its reasons and its newest traces; the newest
_MOST_GROUPED refusals of the range are grouped, and the answer says when there were
more.

Every call but the page carries the caller's own token (Authorization: Bearer), verified
as the approvals API verifies it (approvals/auth.py); `viewers`, when given, narrows who
may look (`user:SUB` or `group:NAME`). Counts come from `activity_counts` (per identity,
clock minute and metric, summed across workers and replicas by extproc/activity/);
alerts and refusals from the records table, newest first, within the range; their
records are read on the recordings page (extproc/recordings/), by its readers. Every
query is bounded: by its key or time range, and by a LIMIT.
Errors are JSON: {"error": code, "message": ...}.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from extproc import admin
from extproc.admin.caller import caller_of
from extproc.approvals.auth import AuthError, Verifier
from extproc.approvals.model import denial
from extproc.identity import Authenticated, principals
from extproc.recording.store import content_of
from extproc.store import StoreError
from extproc.store.aio import AsyncStore

log = logging.getLogger("tollgate.monitor")

_DAY = 1440  # in minutes
# The ranges the page offers, in minutes; a custom one is within the last day (the
# activity counts are kept a day).
RANGES = {"15m": 15, "1h": 60, "6h": 360, "24h": _DAY}
_DEFAULT_RANGE = "1h"
# A range is drawn in at most this many buckets, each a whole number of these minutes.
_MOST_BUCKETS = 120
_STEPS = (1, 2, 5, 10, 15, 30, 60)
# The overview lists at most this many identities, the most recently active first.
_MOST_IDENTITIES = 500
# Alerts, refusals and refusal groups shown (`limit`), and the most a caller may ask for.
_LISTED, _MOST_LISTED = 20, 100
# Refusals grouped per answer: the range's newest.
_MOST_GROUPED = 2000
# Identities named per refusal group, its reasons, and its traces linked.
_GROUP_IDENTITIES, _GROUP_REASONS, _GROUP_TRACES = 20, 5, 5
# The overview is read at most this often per process and range, however many pages
# poll it; this many ranges' answers are kept.
_OVERVIEW_SECONDS = 4.0
_OVERVIEWS_KEPT = 16
_SUBJECT_CHARS = 1024
# Of the counts the tracker keeps, what the page shows.
_TOTALS = ("exchanges", "refusals", "holds", "masked", "administrative")


def _sums() -> str:
    """SQL summing each of _TOTALS per group; the casts keep PostgreSQL's SUM of BIGINT an
    integer, not a numeric."""
    return ", ".join(
        f"CAST(SUM(CASE WHEN {test} THEN value ELSE 0 END) AS BIGINT)"
        for test in ("metric = 'exchanges'", "metric = 'refusals'", "metric = 'holds'",
                     "metric LIKE 'masked:%'", "metric = 'administrative'"))


def _totals(values: Any) -> dict[str, int]:
    """_TOTALS from summed values, with `allowed`: the exchanges not refused."""
    found = dict(zip(_TOTALS, (int(v or 0) for v in values), strict=True))
    return {**found, "allowed": max(0, found["exchanges"] - found["refusals"])}


@dataclass(frozen=True)
class Range:
    """Whole clock minutes, `first` to `last` (both in), drawn `step` minutes a bucket."""

    name: str  # one of RANGES, or "custom"
    first: int
    last: int
    step: int

    @property
    def since_us(self) -> int:
        return self.first * 60_000_000

    @property
    def until_us(self) -> int:
        return (self.last + 1) * 60_000_000

    def buckets(self) -> list[int]:
        """Each bucket's first minute, oldest first; the last bucket ends with the range
        (the first may begin before it, and counts only the range's minutes)."""
        count = math.ceil((self.last - self.first + 1) / self.step)
        return [self.last + 1 - (count - i) * self.step for i in range(count)]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "since": self.first * 60, "until": (self.last + 1) * 60,
                "step": self.step * 60, "minutes": self.last - self.first + 1}


def range_of(query: Mapping[str, str], now: float) -> Range:
    """The range a request asks for (`range=`, or `since=` and `until=`)."""
    current = int(now // 60)
    name = query.get("range")
    if "since" in query or "until" in query:
        if name not in (None, "custom"):
            raise MonitorError("bad_request", "give range or since and until, not both", 400)
        since, until = _seconds(query, "since"), _seconds(query, "until")
        if since >= until:
            raise MonitorError("bad_request", "since must be before until", 400)
        first, last = int(since // 60), min(current, math.ceil(until / 60) - 1)
        if first < current - _DAY:
            raise MonitorError("bad_request", "since must be within the last day: the "
                               "activity counts go back a day", 400)
        if last < first:
            raise MonitorError("bad_request", "the range is in the future", 400)
        name = "custom"
    else:
        name = name or _DEFAULT_RANGE
        if name not in RANGES:
            raise MonitorError("bad_request", f"range must be one of {', '.join(RANGES)}, "
                               "or since and until", 400)
        first, last = current - RANGES[name] + 1, current
    span = last - first + 1
    step = next((s for s in _STEPS if math.ceil(span / s) <= _MOST_BUCKETS), _STEPS[-1])
    return Range(name, first, last, step)


def _seconds(query: Mapping[str, str], key: str) -> float:
    text = query.get(key, "")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise MonitorError("bad_request", f"{key} must be seconds since the epoch, got "
                           f"{text[:40]!r}", 400)
    return value


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
        # Per range and limit: (monotonic, answer), the oldest read first.
        self._overviews: dict[tuple[Range, int], tuple[float, dict[str, Any]]] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            *admin.page_routes("/monitor/ui", "extproc.admin.monitor"),
            web.get("/monitor/activity", self._activity),
        ]

    # -- activity ------------------------------------------------------------------------

    async def _activity(self, request: web.Request) -> web.Response:
        try:
            await self._caller(request)
            query = request.query
            span = range_of(query, self._clock())
            limit = _limit(query.get("limit", str(_LISTED)))
            identity = query.get("identity")
            if identity is None:
                return _json(200, await self.overview(span, limit))
            if not identity or len(identity) > _SUBJECT_CHARS:
                raise MonitorError("bad_request",
                                   f"identity must be 1-{_SUBJECT_CHARS} characters", 400)
            return _json(200, await self.identity(identity, span, limit))
        except MonitorError as refused:
            return _error(refused)
        except StoreError as exc:
            return _error(_unavailable(exc))

    async def overview(self, span: Range | None = None, limit: int = _LISTED,
                       ) -> dict[str, Any]:
        """Identities with counts in the range, the most recently active first, with their
        totals over it; the range's refusals of every identity, identical ones together.
        Read at most every few seconds per process and range."""
        span = span or range_of({}, self._clock())
        cached = self._overviews.get((span, limit))
        if cached is not None and time.monotonic() - cached[0] < _OVERVIEW_SECONDS:
            return cached[1]
        rows = await self._store.execute(
            f"SELECT key, MAX(minute), {_sums()} FROM activity_counts "
            "WHERE minute >= ? AND minute <= ? AND key LIKE 'sub:%' GROUP BY key "
            "ORDER BY MAX(minute) DESC, key LIMIT ?",
            (span.first, span.last, _MOST_IDENTITIES + 1))
        identities = [{
            "identity": key.removeprefix("sub:"),
            # Those beyond the tracker's bound, counted together.
            "aggregated": key == "sub:~others",
            "last_active": last * 60,
            "totals": _totals(sums),
        } for key, last, *sums in rows[:_MOST_IDENTITIES]]
        answer = {"now": self._clock(), "range": span.as_json(), "identities": identities,
                  "truncated": len(rows) > _MOST_IDENTITIES,
                  "refusal_groups": await self._groups(None, span, limit)}
        self._overviews.pop((span, limit), None)
        self._overviews[(span, limit)] = (time.monotonic(), answer)
        while len(self._overviews) > _OVERVIEWS_KEPT:
            del self._overviews[next(iter(self._overviews))]
        return answer

    async def identity(self, identity: str, span: Range | None = None,
                       limit: int = _LISTED) -> dict[str, Any]:
        """One identity over the range: its counts per bucket (every bucket, oldest first,
        zeros included), its totals over the range and the last day, its alerts and
        refusals of the range (the newest, and all of them grouped)."""
        now = self._clock()
        span = span or range_of({}, now)
        key = f"sub:{identity}"
        rows = await self._store.execute(
            f"SELECT minute, {_sums()} FROM activity_counts WHERE key = ? AND minute >= ? "
            "AND minute <= ? GROUP BY minute ORDER BY minute LIMIT ?",
            (key, span.first, span.last, _DAY + 1))
        starts = span.buckets()
        sums = [[0] * len(_TOTALS) for _ in starts]
        for minute, *values in rows:
            at = (minute - starts[0]) // span.step
            for n, value in enumerate(values):
                sums[at][n] += int(value or 0)
        buckets = [{"start": start * 60, **_totals(values)}
                   for start, values in zip(starts, sums, strict=True)]
        day = await self._store.execute(
            f"SELECT {_sums()} FROM activity_counts WHERE key = ? AND minute > ?",
            (key, int(now // 60) - _DAY))
        alerts = await self._latest(identity, "kind = 'alert'", span, limit)
        refusals = await self._latest(
            identity, "kind = 'exchange' AND action = 'deny'", span, limit)
        return {
            "identity": identity, "now": now, "range": span.as_json(), "buckets": buckets,
            "totals": {name: sum(b[name] for b in buckets) for name in (*_TOTALS, "allowed")},
            "day": _totals(day[0] if day else [0] * len(_TOTALS)),
            "alerts": [_alert(row) for row in alerts],
            "refusals": [_refusal(row) for row in refusals],
            "refusal_groups": await self._groups(identity, span, limit),
        }

    async def _groups(self, identity: str | None, span: Range,
                      limit: int) -> dict[str, Any]:
        """The range's refused exchanges (of `identity`, or of all), the newest
        _MOST_GROUPED of them grouped: identical ones are one group."""
        who, params = _who(identity)
        rows = await self._store.execute(
            "SELECT id, trace_id, started_us, target, status, content, identity FROM records "
            f"WHERE {who} kind = 'exchange' AND action = 'deny' AND started_us >= ? "
            "AND started_us < ? ORDER BY started_us DESC, writer, seq DESC LIMIT ?",
            (*params, span.since_us, span.until_us, _MOST_GROUPED + 1))
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in rows[:_MOST_GROUPED]:
            refused = _refusal(row[:6])
            sender = row[6] or "anonymous"
            rules = refused["rules"] or [f"tollgate: {refused['refusal'] or 'refused'}"]
            key = (refused["what"], tuple(sorted(set(rules))), refused["target"])
            group = groups.get(key)
            if group is None:  # the newest of its kind: rows come newest first
                group = groups[key] = {
                    "what": refused["what"], "rules": sorted(set(rules)),
                    "target": refused["target"], "count": 0,
                    "first_us": refused["started_us"], "last_us": refused["started_us"],
                    "identities": [], "identities_count": 0, "reasons": [],
                    "refusal": refused["refusal"], "status": refused["status"],
                    "trace_ids": [], "_identities": set()}
            group["count"] += 1
            group["first_us"] = refused["started_us"]
            if sender not in group["_identities"]:
                group["_identities"].add(sender)
                if len(group["identities"]) < _GROUP_IDENTITIES:
                    group["identities"].append(sender)
            for reason in refused["reasons"]:
                if reason not in group["reasons"] and len(group["reasons"]) < _GROUP_REASONS:
                    group["reasons"].append(reason)
            if len(group["trace_ids"]) < _GROUP_TRACES \
                    and refused["trace_id"] not in group["trace_ids"]:
                group["trace_ids"].append(refused["trace_id"])
        ordered = sorted(groups.values(), key=lambda g: (-g["count"], -g["last_us"]))
        for group in ordered:
            group["identities_count"] = len(group.pop("_identities"))
            group["identities"].sort()
        return {"groups": ordered[:limit], "count": len(ordered),
                "grouped": min(len(rows), _MOST_GROUPED),
                "truncated": len(rows) > _MOST_GROUPED}

    async def _latest(self, identity: str, which: str, span: Range,
                      limit: int) -> list[tuple[Any, ...]]:
        """The identity's newest records of a kind, within the range."""
        who, params = _who(identity)
        return await self._store.execute(
            "SELECT id, trace_id, started_us, target, status, content FROM records "
            f"WHERE {who} {which} AND started_us >= ? AND started_us < ? "
            "ORDER BY started_us DESC, writer, seq DESC LIMIT ?",
            (*params, span.since_us, span.until_us, limit))

    # -- helpers -------------------------------------------------------------------------

    async def _caller(self, request: web.Request) -> Authenticated:
        try:
            caller = await caller_of(self._verifier, request)
        except AuthError as exc:
            log.warning("monitor API: %s %s refused: %s", request.method, request.path, exc)
            raise MonitorError("unauthenticated", str(exc), 401) from None
        if self._viewers is not None and not principals(caller) & self._viewers:
            log.warning("monitor API: %s %s refused: %s is no viewer", request.method,
                        request.path, caller["sub"])
            raise MonitorError("forbidden", "the monitor is for its viewers only", 403)
        return caller


def _who(identity: str | None) -> tuple[str, tuple[str, ...]]:
    """The SQL condition (and its parameters) for one identity's records, or all; an
    anonymous identity's records name none (their counts go to `sub:anonymous`)."""
    if identity is None:
        return "", ()
    if identity == "anonymous":
        return "(identity = ? OR identity IS NULL) AND", (identity,)
    return "identity = ? AND", (identity,)


def _alert(row: tuple[Any, ...]) -> dict[str, Any]:
    """An alert record as the page lists it: what the alert says (`meaning.alert`)."""
    record_id, trace_id, started_us, target, _status, content = row
    alert = (content_of(content).get("meaning") or {}).get("alert") or {}
    return {
        "record_id": record_id, "trace_id": trace_id, "started_us": started_us,
        "target": target, "rule": alert.get("rule"), "severity": alert.get("severity"),
        "message": alert.get("message"), "trace_ids": alert.get("trace_ids") or [],
        "delivery": alert.get("delivery"),
    }


def _refusal(row: tuple[Any, ...]) -> dict[str, Any]:
    """A refused exchange as the page lists it: what it did (the record's `what`; for a
    record from before it, its request line), why it was refused: the policy's reasons,
    after who denied its approval and why, when an approver did."""
    record_id, trace_id, started_us, target, status, content = row
    document = content_of(content)
    request = document.get("request") or {}
    decisions = [d for d in document.get("decisions") or [] if d.get("action") == "deny"]
    reasons = [r for d in decisions for r in d.get("reasons") or []]
    approval = document.get("approval") or {}
    if approval.get("status") == "denied":
        reasons.insert(0, denial(str(approval.get("id")), approval.get("decided_by"),
                                 approval.get("reason")))
    what = document.get("what")
    if not isinstance(what, str) or not what:
        what = f"{request.get('method') or ''} {request.get('path') or ''}".strip()
    return {
        "record_id": record_id, "trace_id": trace_id, "started_us": started_us,
        "target": target, "status": status, "what": what,
        "method": request.get("method"), "path": request.get("path"),
        "refusal": (document.get("outcome") or {}).get("refusal"),
        "rules": [r for d in decisions for r in d.get("rules") or []],
        "reasons": reasons,
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


