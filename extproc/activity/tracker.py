"""What each identity and token has been doing: counts over the last minute, hour and day.

Each finished exchange is counted after it is recorded (`observe`, a record observer: off
the request path, a few µs), into the process's own view and into a batch of deltas.
Every `sync_seconds` the process writes its deltas to the store (`activity_counts`, one
row per key, clock minute and metric, summed by upsert) and reads back, for the keys it
tracks, the sums every worker and replica wrote: the view it decides with is the store's
as of that sync plus its own exchanges since. So a count made by another process reaches
this one's decisions within two syncs (`sync_seconds` twice, plus the store's time), and
reading the view (`input_json`) costs a decision no I/O.

Windows are of clock minutes: `minute` is the current minute's count plus the previous
one's weighted by how much of it is still within 60 s (the sliding-window estimate),
`hour` the last 60 minutes, `day` the last 1,440. Distinct targets, environments and
source addresses are counted as the values with exchanges in the window; the day's
values themselves (`seen`, at most 16 each) let a rule ask whether this one is new.

The few counts a rule needs summed over every process at the moment it decides (an
identity's refusals within the minute, a token's addresses, personal values per target
and group) are read from the store at each request's decision instead (`live.py`, one
round trip), and put beside the view as `live`.

A measured write that stood also counts the rows it deleted of each table
(`deleted:target:table`, policies/blast.rego's blast.split sums them over the hour).

Memory is bounded: at most `max_identities` identities (and as many tokens) are counted
apart; those beyond are counted together under one key and the input says
`aggregated`. A store that cannot be reached for `stale_seconds` makes the counts
`unknown` to the policy; deltas are kept (bounded) and written once it answers again.
Nothing here holds content: subjects, token ids, target names, addresses and counts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from extproc.activity.live import Live
from extproc.config import Activity, Target
from extproc.identity import Who
from extproc.recording import Evidence
from extproc.store import Connection, StoreError, connect

log = logging.getLogger("tollgate.activity")

WINDOWS = ("minute", "hour", "day")
_HOUR, _DAY = 60, 1440  # in minutes
# The counts of one window, in the input's order; distinct values are counted apart.
COUNTS = ("exchanges", "refusals", "holds", "masked_total", "items", "bytes",
          "administrative")
DISTINCT = {"target": "targets", "environment": "environments", "address": "addresses"}
SEEN_MOST = 16
OTHERS = "~others"
# The most delta rows kept while the store cannot take them (then the oldest go).
_MOST_PENDING = 200_000
# Keys are dropped from the view a day after they were last used.
_FORGET_SECONDS = 86_400 + 3_600
_PRUNE_EVERY = 300.0  # seconds between deletions of rows older than a day
_CLOSE_SECONDS = 3.0  # the most a stop waits for the last counts to be written
_IN_CHUNK = 500  # keys per SELECT ... IN (...)
# A JSON response body up to this size is read for its number of items (rows, a list).
_ITEMS_BODY_BYTES = 64 * 1024
_NOTABLE = 10
_NOTABLE_METRICS = ("refusals", "holds", "administrative", "masked_total")


class _Window:
    __slots__ = ("counts", "deleted", "distinct", "masked")

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(COUNTS, 0)
        self.masked: dict[str, int] = {}
        self.deleted: dict[str, int] = {}
        self.distinct: dict[str, set[str]] = {name: set() for name in DISTINCT}

    def add(self, metric: str, value: int) -> None:
        kind, _, name = metric.partition(":")
        self.add_parts(((kind, name, value),))

    def add_parts(self, parts: Iterable[tuple[str, str, int]]) -> None:
        """Metrics already split into their kind and name (`split`): one call for an
        exchange's, whose every metric goes into every window."""
        counts = self.counts
        for kind, name, value in parts:
            if kind == "masked":
                self.masked[name] = self.masked.get(name, 0) + value
                counts["masked_total"] += value
            elif kind == "deleted":
                self.deleted[name] = self.deleted.get(name, 0) + value
            elif kind in DISTINCT:
                self.distinct[kind].add(name)
            else:
                counts[kind] = counts.get(kind, 0) + value

    def view(self) -> dict[str, Any]:
        distinct = self.distinct
        view = {**self.counts, "masked": self.masked, "targets": len(distinct["target"]),
                "environments": len(distinct["environment"]),
                "addresses": len(distinct["address"])}
        if self.deleted:
            view["deleted"] = self.deleted
        return view


class _Entry:
    """One key's counts: the store's as of the last sync, plus this process's since; its
    windows and input JSON are built when first read after a change."""

    __slots__ = ("carried", "json", "local", "notable", "seen", "stored", "used", "windows")

    def __init__(self) -> None:
        # (metric, minute, hour, day) sums, as the last sync read them from the store.
        self.stored: list[tuple[str, int, int, int]] = []
        # Counted here and written to the store by a sync not yet read back (`carried`),
        # and counted here since the last sync began (`local`).
        self.carried: Counter[str] = Counter()
        self.local: Counter[str] = Counter()
        self.windows: dict[str, _Window] | None = None
        self.json: bytes | None = None
        # The day's distinct values as JSON, and how many of each it was made of.
        self.seen: tuple[tuple[int, int, int], bytes] | None = None
        self.used = time.monotonic()
        # The trace ids of this process's latest exchanges that were refused, held,
        # administrative or masked: what an alert on this key points to.
        self.notable: collections.deque[str] = collections.deque(maxlen=_NOTABLE)

    def add(self, metrics: Mapping[str, int], parts: Sequence[tuple[str, str, int]]) -> None:
        """One exchange's metrics (each non-zero), and the same split (`split`)."""
        local = self.local
        for metric, value in metrics.items():
            local[metric] += value
        if self.windows is not None:
            for window in self.windows.values():
                window.add_parts(parts)
        self.json = None

    def synced(self, stored: list[tuple[str, int, int, int]]) -> None:
        """The store's sums now include what was carried."""
        self.stored, self.carried = stored, Counter()
        self.windows = self.json = self.seen = None

    def encoded(self) -> bytes:
        if self.json is None:
            windows = self.windows
            if windows is None:
                windows = self.windows = {name: _Window() for name in WINDOWS}
                for metric, *sums in self.stored:
                    for window, value in zip(windows.values(), sums, strict=True):
                        if value:
                            window.add(metric, value)
                for metric, value in (self.carried + self.local).items():
                    for window in windows.values():
                        window.add(metric, value)
            day = windows["day"].distinct
            seen = (len(day["target"]), len(day["environment"]), len(day["address"]))
            if self.seen is None or self.seen[0] != seen:  # a value new to the day
                self.seen = seen, orjson.dumps({plural: sorted(day[kind])[:SEEN_MOST]
                                                for kind, plural in DISTINCT.items()})
            self.json = orjson.dumps({name: w.view() for name, w in windows.items()})[:-1] \
                + b',"seen":' + self.seen[1] + b"}"
        return self.json


def split(metrics: Mapping[str, int]) -> list[tuple[str, str, int]]:
    """Each metric as (kind, name, value): `masked:email` is ("masked", "email", n)."""
    return [(*_parts(metric), value) for metric, value in metrics.items()]


@functools.lru_cache(maxsize=4096)
def _parts(metric: str) -> tuple[str, str]:
    kind, _, name = metric.partition(":")
    return kind, name


def counted(evidence: Evidence) -> Counter[str]:
    """The metrics one finished exchange adds to its identity's and token's counts."""
    outcome = evidence.outcome
    action = outcome.get("tollgate.decision.action")
    if action is None and "tollgate.refusal" in outcome:
        action = "deny"
    metrics: Counter[str] = Counter(exchanges=1)
    if action == "deny":
        metrics["refusals"] = 1
    if evidence.approval is not None or any(d.action == "hold" for d in evidence.decisions):
        metrics["holds"] = 1
    if evidence.masked:
        metrics["masked_total"] = 0  # marks the exchange notable; the detectors count
    if outcome.get("tollgate.activity.administrative"):
        metrics["administrative"] = 1
    for detector, count in evidence.masked.items():
        metrics[f"masked:{detector}"] = count
    body = evidence.response_body
    if body is not None and body.size:
        metrics["bytes"] = body.size
    items = _items(evidence)
    if items:
        metrics["items"] = items
    metrics.update(_where(evidence))
    return metrics


def _where(evidence: Evidence) -> Counter[str]:
    """Where the exchange went (its target, environment, source address), and the rows a
    measured write that stood deleted in each of its target's tables."""
    metrics: Counter[str] = Counter()
    target = evidence.target
    if target is not None:
        metrics[f"target:{target.name}"] = 1
        metrics[f"environment:{target.environment}"] = 1
        for table, rows in evidence.deleted.items():
            metrics[f"deleted:{target.name}:{table}"] = rows
    address = evidence.outcome.get("client.address")
    if isinstance(address, str) and address:
        metrics[f"address:{address}"] = 1
    return metrics


def _items(evidence: Evidence) -> int:
    """Rows or items the client got: a PostgreSQL front's row count, else the length of
    a JSON answer's list (`rows`, `data`, `items`, or the answer itself) when small."""
    rows = evidence.outcome.get("tollgate.postgres.rows")
    if isinstance(rows, int):
        return rows
    body = evidence.response_body
    if (body is None or body.truncated or body.size > _ITEMS_BODY_BYTES
            or "json" not in (evidence.delivered_type or evidence.response_type)):
        return 0
    try:
        value = orjson.loads(body.head)
    except orjson.JSONDecodeError:
        return 0
    if isinstance(value, dict):
        value = next((value[k] for k in ("rows", "data", "items")
                      if isinstance(value.get(k), list)), None)
    return len(value) if isinstance(value, list) else 0


def keys_of(identity: Who | None) -> tuple[str, str | None]:
    """The identity's key (`sub:`; every anonymous request is one) and its token's."""
    if identity is None or not identity["authenticated"]:
        return "sub:anonymous", None
    jti = identity["jti"]
    return f"sub:{identity['sub']}", (f"jti:{jti}" if jti else None)


class Tracker:
    def __init__(self, settings: Activity, store_url: str) -> None:
        self._settings, self._url = settings, store_url
        self._entries: dict[str, _Entry] = {}
        self._tracked = {"sub": 0, "jti": 0}  # keys of each kind counted apart
        self._pending: Counter[tuple[str, int, str]] = Counter()
        self._connection: Connection | None = None
        self._synced = -math.inf  # monotonic time of the last sync that reached the store
        self._pruned = -math.inf  # never: the monotonic clock counts from boot
        self._failing = False
        self._running: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.syncs = 0
        self.live = Live(store_url, settings.live_timeout_seconds) \
            if settings.enabled and settings.live else None

    # -- the request path ----------------------------------------------------------------

    async def input_json(self, identity: Who | None, administrative: bool,
                         target: Target | None = None, source: str | None = None) -> str:
        """`input.activity` for this identity acting now, as JSON text. With the
        exchange's `target` (a request's decision), its `live` counts are read from the
        store (one round trip); without, `live` is null."""
        counts = self.counts_json(identity, administrative)
        if target is None or self.live is None:
            return counts[:-1] + ',"live":null}'
        sub, jti = keys_of(identity)
        groups = identity["groups"] if identity is not None and identity["authenticated"] \
            else []
        live = await self.live.read(sub, jti, target.name, groups, source,
                                    target.environment)
        return f'{counts[:-1]},"live":{live.decode()}}}'

    async def refused(self, identity: Who | None) -> None:
        """Count a refusal in the live counts, before it is answered."""
        if self.live is not None:
            await self.live.refused(keys_of(identity)[0])

    def counts_json(self, identity: Who | None, administrative: bool) -> str:
        """`input.activity` but its `live`: the process's view, read without I/O."""
        exchange = b'{"administrative":true}' if administrative else \
            b'{"administrative":false}'
        if not self._settings.enabled:
            return ('{"status":"off","aggregated":false,"exchange":'
                    f'{exchange.decode()},"identity":null,"token":null}}')
        status = "known" if time.monotonic() - self._synced <= self._settings.stale_seconds \
            else "unknown"
        sub, jti = keys_of(identity)
        (identity_key, aggregated), token = self._entry(sub), None
        if jti is not None:
            token, shared = self._entry(jti)
            if shared:  # tokens beyond the bound: their counts are all of theirs
                token = None
        token_json = self._entries[token].encoded() if token else b"null"
        return (f'{{"status":"{status}","aggregated":{"true" if aggregated else "false"},'
                f'"exchange":{exchange.decode()},'
                f'"identity":{self._entries[identity_key].encoded().decode()},'
                f'"token":{token_json.decode()}}}')

    def notable(self, identity: Who | None) -> list[str]:
        """The trace ids of the identity's latest notable exchanges in this process."""
        entry = self._entries.get(keys_of(identity)[0])
        return list(entry.notable) if entry is not None else []

    def _entry(self, key: str) -> tuple[str, bool]:
        """The key counted for `key` (its own, or its kind's aggregate beyond the bound),
        and whether it is the aggregate; the entry exists afterwards."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.used = time.monotonic()
            return key, key.endswith(OTHERS)
        kind = key.partition(":")[0]
        if self._tracked[kind] >= self._settings.max_identities:
            key = f"{kind}:{OTHERS}"
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            entry.used = time.monotonic()
            return key, True
        self._tracked[kind] += 1
        self._entries[key] = _Entry()
        return key, False

    # -- after the exchange ----------------------------------------------------------------

    def observe(self, evidence: Evidence) -> None:
        """Count a finished exchange (a record observer)."""
        if evidence.kind != "exchange" or not self._settings.enabled:
            return
        minute = int(time.time() // 60)
        metrics = counted(evidence)
        notable = any(m in metrics for m in _NOTABLE_METRICS)
        sub, jti = keys_of(evidence.identity)
        nonzero = {metric: value for metric, value in metrics.items() if value}
        parts = split(nonzero)
        pending = self._pending
        for key in (sub, jti):
            if key is None:
                continue
            key = self._entry(key)[0]
            entry = self._entries[key]
            if notable:
                entry.notable.appendleft(evidence.trace_id)
            entry.add(nonzero, parts)
            for metric, value in nonzero.items():
                pending[(key, minute, metric)] += value
        if self.live is not None and evidence.masked:
            identity = evidence.identity
            self.live.count_masked(
                evidence.target.name if evidence.target else None,
                identity["groups"] if identity is not None and identity["authenticated"]
                else [], evidence.masked)
        if len(self._pending) > _MOST_PENDING:  # the store has been away a long time
            for oldest in sorted(self._pending, key=lambda k: k[1])[:len(self._pending) // 10]:
                del self._pending[oldest]

    # -- syncing -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Sync now (the first decisions see the store's counts), then every
        `sync_seconds` until `close`."""
        await self.sync()
        if self.live is not None:
            await self.live.start()
        self._running = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._settings.sync_seconds)
            await self.sync()  # at the stop too: the last exchanges' counts

    async def sync(self) -> bool:
        """Write this process's deltas, read everyone's sums back; False if the store
        could not be reached (the deltas are kept for the next time)."""
        if not self._settings.enabled:
            return True
        self._forget()
        pending, self._pending = self._pending, Counter()
        keys = list(self._entries)
        for entry in self._entries.values():
            entry.carried.update(entry.local)
            entry.local = Counter()
        now = time.time()
        try:
            stored = await asyncio.to_thread(self._with_store, pending, keys, now)
        except StoreError as exc:
            self._pending.update(pending)
            if not self._failing:
                log.error("activity: the store cannot be reached (%s): counts become "
                          "unknown to the policy after %.0fs", exc, self._settings.stale_seconds)
            self._failing = True
            return False
        if self._failing:
            log.info("activity: the store answers again")
        self._failing = False
        for key in keys:
            if (kept := self._entries.get(key)) is not None:
                kept.synced(stored.pop(key, []))
        for key, sums in stored.items():  # active elsewhere: tracked here from now on
            kind = key.partition(":")[0]
            if key not in self._entries and not key.endswith(OTHERS) \
                    and self._tracked.get(kind, self._settings.max_identities) \
                    < self._settings.max_identities:
                self._tracked[kind] += 1
                self._entries[key] = entry = _Entry()
                entry.synced(sums)
        self._synced = time.monotonic()
        self.syncs += 1
        return True

    def _forget(self) -> None:
        """Drop keys unused for a day (their counts would all be zero)."""
        horizon = time.monotonic() - _FORGET_SECONDS
        for key in [k for k, e in self._entries.items() if e.used < horizon]:
            del self._entries[key]
            kind = key.partition(":")[0]
            if not key.endswith(OTHERS):
                self._tracked[kind] -= 1

    def _with_store(self, pending: Counter[tuple[str, int, str]], keys: list[str],
                    now: float) -> dict[str, list[tuple[str, int, int, int]]]:
        """On a worker thread: upsert the deltas, then sum each key's rows by window."""
        if self._connection is None:
            self._connection = connect(self._url)
        connection = self._connection
        try:
            current = int(now // 60)
            with connection.transaction():
                # In one order, so two replicas' upserts cannot deadlock on PostgreSQL.
                connection.executemany(
                    "INSERT INTO activity_counts (key, minute, metric, value) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (key, minute, metric) "
                    "DO UPDATE SET value = activity_counts.value + excluded.value",
                    [(*k, v) for k, v in sorted(pending.items())])
            if now - self._pruned > _PRUNE_EVERY:
                connection.execute("DELETE FROM activity_counts WHERE minute < ?",
                                   (current - _DAY - 60,))
                self._pruned = now
            # Keys any process counted within the last two minutes, which this one may
            # not know yet: a token copied to another replica's client is known there
            # from the sync after the copy's first use, not after its own first.
            known = set(keys)
            keys = keys + [key for (key,) in connection.execute(
                "SELECT DISTINCT key FROM activity_counts WHERE minute >= ? LIMIT ?",
                (current - 1, 2 * self._settings.max_identities + 2))
                if key not in known]
            rows: list[tuple[Any, ...]] = []
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start:start + _IN_CHUNK]
                rows += connection.execute(
                    "SELECT key, metric,"
                    " SUM(CASE WHEN minute = ? THEN value ELSE 0 END),"
                    " SUM(CASE WHEN minute = ? THEN value ELSE 0 END),"
                    " SUM(CASE WHEN minute > ? THEN value ELSE 0 END),"
                    " SUM(value) FROM activity_counts"
                    f" WHERE minute > ? AND key IN ({', '.join('?' * len(chunk))})"
                    " GROUP BY key, metric",
                    (current, current - 1, current - _HOUR, current - _DAY, *chunk))
            return _windowed(rows, now)
        except StoreError:
            with contextlib.suppress(StoreError):
                connection.close()
            self._connection = None
            raise

    async def close(self) -> None:
        """Stop syncing; write what is still pending (nothing counted is lost at a stop
        the store answers). A store that does not answer within _CLOSE_SECONDS loses the
        last counts, said at ERROR: the record, closed after, must still have the time to
        spool what it holds before a supervisor's grace period ends."""
        try:
            await asyncio.wait_for(self._close(), _CLOSE_SECONDS)
        except TimeoutError:
            log.error("activity: the counts of the last %g s could not be written before "
                      "shutdown: the store did not answer within %g s",
                      self._settings.sync_seconds, _CLOSE_SECONDS)

    async def _close(self) -> None:
        self._stopping.set()
        if self._running is not None:
            await self._running  # a sync under way ends, then the last one
        elif self._pending:
            await self.sync()
        if self.live is not None:
            await self.live.close()
        if self._connection is not None:
            with contextlib.suppress(StoreError):
                self._connection.close()
            self._connection = None


def _windowed(rows: list[tuple[Any, ...]],
              now: float) -> dict[str, list[tuple[str, int, int, int]]]:
    """Each key's (metric, minute, hour, day) sums from (key, metric, this minute, the
    last minute, hour, day) rows: the minute is this one plus the last weighted by how
    much of it is still within 60 s; for distinct values, any use in the two."""
    weight = 1.0 - (now % 60) / 60
    stored: dict[str, list[tuple[str, int, int, int]]] = {}
    for key, metric, *sums in rows:
        # PostgreSQL sums BIGINTs as NUMERIC.
        this_minute, last_minute, hour, day = (int(s or 0) for s in sums)
        if metric.partition(":")[0] in DISTINCT:
            minute = this_minute + last_minute
        else:
            minute = this_minute + math.ceil(last_minute * weight)
        stored.setdefault(key, []).append((metric, minute, hour, day))
    return stored
