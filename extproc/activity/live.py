"""The few counts a rule needs summed over every worker and replica at the moment it
decides, read from the store in one round trip per request's decision.

The tracker's counts (tracker.py) reach the other processes every `sync_seconds`: a burst
faster than that, spread by Envoy over workers or replicas, is invisible to each alone.
The rules that guard against bursts, copies and volume across identities read these:

- an identity's refusals within the last minute (key `sub:S`, metric `refusals`, per
  clock minute), incremented before the refusal is answered: whatever exchange starts
  after it, anywhere, counts it;
- a token's source addresses and environments within the day (`activity_seen`, key
  `jti:J`), upserted the first time in a clock minute this process sees the value: on
  PostgreSQL in the same round trip as the decision's read, on SQLite just after it, off
  the request path (a store that cannot write holds no decision);
- the personal values masked per target (`target:T`) and per group (`group:G`) within
  the hour, per detector, written as soon as the exchange is counted (`count_masked`,
  off the request path).

A reading is tried again through a blip of the store (store/retry.py: for up to
0.75 s, each try within `live_timeout_seconds`); one the store still does not give is
`unknown`, and while the store stays out readings are `unknown` at once, but for a
probe a second: the pack refuses with 503 what its rule cannot decide without the
count. Deltas the store could not take are kept (bounded) and written
once it answers. Nothing here holds content: subjects, token ids, target and group
names, addresses, detector names and counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from extproc.store import Connection, StoreError, connect
from extproc.store.retry import BUDGET, Retrying

log = logging.getLogger("tollgate.activity")

Rows = list[tuple[Any, ...]]

# The groups of an identity whose masked values are counted (the first, sorted).
GROUPS_MOST = 8
# A token's addresses and environments read back (more only says "many").
SEEN_MOST = 16
_HOUR, _DAY = 60, 1440  # in minutes
_KEEP_MINUTES = 2 * _HOUR  # activity_live rows older than this are deleted
_PRUNE_EVERY = 300.0
_RETRY_SECONDS = 1.0
# Masked counts gathered this long before they are written: one write for the exchanges
# of a busy moment rather than one each, soon enough for the next reads to see them.
_GATHER_SECONDS = 0.01
# A reading is reused this long by the same process for the same identity, token and
# target when the request adds nothing new to the store (no address or environment the
# token has not shown this process this minute): steady traffic costs a round trip per
# second, not per request, while a copied token's first request from a new address, and
# the first decision after one of this process's refusals, always read afresh.
FRESH_SECONDS = 1.0
_FRESH_MOST = 10_000  # cached readings kept at most (then all are dropped)
_MOST_PENDING = 100_000
UNKNOWN = b'{"status":"unknown","identity":null,"token":null,"target":null,"groups":{}}'

_UPSERT = ("INSERT INTO activity_live (key, minute, metric, value) VALUES (?, ?, ?, ?) "
           "ON CONFLICT (key, minute, metric) "
           "DO UPDATE SET value = activity_live.value + excluded.value")
_SEEN = ("INSERT INTO activity_seen (key, value, last_minute) VALUES {rows} "
         "ON CONFLICT (key, value) DO UPDATE SET last_minute = excluded.last_minute "
         "WHERE activity_seen.last_minute < excluded.last_minute")


@functools.cache
def _select(keys: int, token: bool) -> str:
    """The reading: each key's (metric, this minute, the last one, the hour) sums, and
    the token's values seen within the day."""
    sql = ("SELECT key, metric, SUM(CASE WHEN minute = ? THEN value ELSE 0 END),"
           " SUM(CASE WHEN minute = ? THEN value ELSE 0 END), SUM(value)"
           f" FROM activity_live WHERE minute > ? AND key IN ({', '.join('?' * keys)})"
           " GROUP BY key, metric")
    if token:
        sql += (" UNION ALL SELECT * FROM (SELECT key, value, 0 AS a, 0 AS b, 0 AS c"
                " FROM activity_seen WHERE key = ? AND last_minute > ?"
                f" LIMIT {SEEN_MOST + 1}) AS seen")
    return sql


class _Sqlite:
    """Two connections, each on a thread of its own: the readings on one, the writes on
    the other. WAL lets a reading go on while another holds the write lock, but not a
    statement queued on a thread behind a write that waits out busy_timeout (5 s) for a
    lock the store does not give (a writer holding it, a full disk): a reading behind a
    delta's write held its request past Envoy's 2 s for the message (504). So a reading
    never waits on a write: the token's new values are upserted on the writer's thread
    once read (a reading is of the store before them, as PostgreSQL's CTE's is), the
    reading waiting for that at most `wait` seconds, and not at all while the writes
    fail (the store cannot write: nothing on the request path waits for its lock);
    `unseen(values)` is told of those the store did not take, to be tried again."""

    def __init__(self, url: str, wait: float,
                 unseen: Callable[[list[tuple[str, str, int]]], None]) -> None:
        self._url, self._wait, self._unseen = url, wait, unseen
        self._writes_fail = False
        self._connections: dict[str, Connection] = {}
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="tollgate-live-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="tollgate-live-write")
        self._upserts: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """Nothing to do: connected at the first call."""

    async def read(self, select: str, params: Sequence[Any],
                   seen: list[tuple[str, str, int]]) -> Rows:
        rows = await self._run(self._reader, "read",
                               lambda connection: connection.execute(select, params))
        if seen:
            upsert = asyncio.create_task(self._upsert(seen))
            self._upserts.add(upsert)
            upsert.add_done_callback(self._upserts.discard)
            if not self._writes_fail:  # shared at decision time while the store writes
                await asyncio.wait({upsert}, timeout=self._wait)
        return rows

    async def _upsert(self, seen: list[tuple[str, str, int]]) -> None:
        def work(connection: Connection) -> Rows:
            connection.executemany(_SEEN.format(rows="(?, ?, ?)"), seen)
            return []
        try:
            await self._run(self._writer, "write", work)
        except StoreError:
            self._unseen(seen)

    async def write(self, sql: str, rows: Sequence[Sequence[Any]]) -> Rows:
        def work(connection: Connection) -> Rows:
            if len(rows) == 1:
                return connection.execute(sql, rows[0])
            with connection.transaction():
                connection.executemany(sql, rows)
            return []
        return await self._run(self._writer, "write", work)

    async def _run(self, thread: ThreadPoolExecutor, role: str,
                   work: Callable[[Connection], Rows]) -> Rows:
        return await asyncio.get_running_loop().run_in_executor(
            thread, self._on_thread, role, work)

    def _on_thread(self, role: str, work: Callable[[Connection], Rows]) -> Rows:
        connection = self._connections.get(role)
        if connection is None:
            connection = self._connections[role] = connect(self._url)
            # Counts, not records: a power cut may lose the latest, never corrupt them.
            connection.execute("PRAGMA synchronous=NORMAL")
        try:
            found = work(connection)
        except StoreError:
            connection.close()
            del self._connections[role]
            if role == "write":
                self._writes_fail = True
            raise
        if role == "write":
            self._writes_fail = False
        return found

    async def close(self) -> None:
        await asyncio.gather(*self._upserts)
        loop = asyncio.get_running_loop()
        for role, thread in (("read", self._reader), ("write", self._writer)):
            connection = self._connections.pop(role, None)
            if connection is not None:
                await loop.run_in_executor(thread, connection.close)
            thread.shutdown()


def open_store(url: str, timeout: float,
               unseen: Callable[[list[tuple[str, str, int]]], None] = lambda _: None) -> Any:
    """The store the request path reads and writes in one round trip (this module's and
    flow.py's): SQLite's threads, or a PostgreSQL pool (live_postgres.py: only a
    PostgreSQL store imports psycopg, as store/connection.py says why). `unseen`: told of
    a token's values SQLite did not take."""
    if url.startswith(("postgresql://", "postgres://")):
        from extproc.activity.live_postgres import LivePostgres

        return LivePostgres(url, timeout, _SEEN)
    return _Sqlite(url, min(timeout, BUDGET), unseen)


class Live:
    def __init__(self, url: str, timeout: float) -> None:
        self._store = open_store(url, timeout, self._unseen)
        self._timeout = timeout
        # A refusal's count is a write: it waits on the store's write lock, which another
        # process (the record's writer mid-commit, a frozen one, `tollgate audit`) can hold
        # past any reading's timeout. Its answer must still reach Envoy within the 2 s
        # of the ext_proc message, so it waits no longer than a reading's retries.
        self._refusal_wait = min(timeout, BUDGET)
        self._late: set[asyncio.Future[Rows]] = set()  # refusals' writes still going
        self._retrying = Retrying()  # a reading rides out a blip of the store
        self._failing = False
        # (token key, value) this process upserted within the clock minute `_minute`.
        self._registered: set[tuple[str, str]] = set()
        self._minute = 0
        # Deltas not written yet: (key, minute, metric) -> value; observers may run on
        # other threads than the loop's.
        self._pending: Counter[tuple[str, int, str]] = Counter()
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._pruned = -math.inf  # never: the monotonic clock counts from boot
        # sub -> (jti, target, groups) -> (monotonic time read, reading).
        self._fresh: dict[str, dict[tuple[Any, ...], tuple[float, bytes]]] = {}

    async def start(self) -> None:
        await self._store.open()
        self._loop = asyncio.get_running_loop()
        self._flusher = asyncio.create_task(self._flush_loop())

    # -- the request path ----------------------------------------------------------------

    async def read(self, sub: str, jti: str | None, target: str | None,
                   groups: Sequence[str], address: str | None,
                   environment: str | None) -> bytes:
        """`input.activity.live` as JSON: the sums every process wrote, as of now. The
        token's address and environment are upserted in the same round trip."""
        now = time.time()
        minute = int(now // 60)
        groups = sorted(groups)[:GROUPS_MOST]
        keys = [sub, *([f"target:{target}"] if target else []), *(f"group:{g}" for g in groups)]
        seen = self._first_seen(jti, minute, address, environment)
        asked = (jti, target, tuple(groups))
        cached = self._fresh.get(sub, {}).get(asked)
        if not seen and cached is not None and time.monotonic() - cached[0] < FRESH_SECONDS:
            return cached[1]
        params: list[Any] = [minute, minute - 1, minute - _HOUR, *keys]
        if jti is not None:
            params += [jti, minute - _DAY]
        select = _select(len(keys), jti is not None)
        try:
            rows = await self._retrying(lambda: asyncio.wait_for(
                self._store.read(select, params, seen), self._timeout))
        except (StoreError, TimeoutError) as exc:
            self._unseen(seen)
            self._failed(exc)
            return UNKNOWN
        self._answered()
        reading = _reading(rows, sub, jti, target, groups, now)
        if sum(map(len, self._fresh.values())) >= _FRESH_MOST:
            self._fresh.clear()
        self._fresh.setdefault(sub, {})[asked] = (time.monotonic(), reading)
        return reading

    def _unseen(self, seen: list[tuple[str, str, int]]) -> None:
        """Values the store did not take: the next reading that meets them upserts them."""
        self._registered.difference_update((key, value) for key, value, _ in seen)

    def _first_seen(self, jti: str | None, minute: int, address: str | None,
                    environment: str | None) -> list[tuple[str, str, int]]:
        """The token's values this process has not upserted in this clock minute."""
        if jti is None:
            return []
        if minute != self._minute:
            self._minute, self._registered = minute, set()
        values = [f"{kind}:{value}" for kind, value in
                  (("address", address), ("environment", environment)) if value]
        new = [(jti, value, minute) for value in values
               if (jti, value) not in self._registered]
        self._registered.update((jti, value) for _, value, _ in new)
        return new

    async def refused(self, sub: str) -> int | None:
        """Count a refusal before it is answered; the identity's refusals in this clock
        minute (None: the store did not answer in time, the count is written later). The
        next decision for this identity in this process reads afresh."""
        self._fresh.pop(sub, None)
        row = (sub, int(time.time() // 60), "refusals", 1)
        if self._retrying.out:  # the store is out: written once it is back
            self._add([row])
            return None
        # Not cancelled when the answer stops waiting: a write already on its way may
        # still land, and the row kept for later as well was counted twice.
        write = asyncio.ensure_future(self._store.write(f"{_UPSERT} RETURNING value", [row]))
        try:
            rows = await asyncio.wait_for(asyncio.shield(write), self._refusal_wait)
        except StoreError as exc:
            self._failed(exc)
            self._add([row])
            return None
        except TimeoutError as exc:
            self._failed(exc)
            self._late.add(write)
            write.add_done_callback(functools.partial(self._landed, row))
            return None
        self._answered()
        return int(rows[0][0])

    def _landed(self, row: tuple[str, int, str, int], write: asyncio.Future[Rows]) -> None:
        """A refusal's count written after its answer stopped waiting; kept to be written
        again only if the store did not take it."""
        self._late.discard(write)
        if write.cancelled() or write.exception() is not None:
            self._add([row])

    # -- after the exchange ----------------------------------------------------------------

    def count_masked(self, target: str | None, groups: Sequence[str],
                     masked: Mapping[str, int]) -> None:
        """Count the values masked in an exchange's answer for its target and groups;
        written at once, off the request path."""
        minute = int(time.time() // 60)
        keys = [*([f"target:{target}"] if target else []),
                *(f"group:{g}" for g in sorted(groups)[:GROUPS_MOST])]
        self._add([(key, minute, f"masked:{detector}", n)
                   for key in keys for detector, n in masked.items() if n > 0])

    def _add(self, deltas: list[tuple[str, int, str, int]]) -> None:
        if not deltas:
            return
        with self._lock:
            for key, minute, metric, value in deltas:
                self._pending[(key, minute, metric)] += value
            if len(self._pending) > _MOST_PENDING:  # the store has been away long
                for oldest in sorted(self._pending, key=lambda k: k[1])[:_MOST_PENDING // 10]:
                    del self._pending[oldest]
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _flush_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _PRUNE_EVERY)
            if not self._stopping:
                await asyncio.sleep(_GATHER_SECONDS)
            self._wake.clear()
            if not await self.flush() and not self._stopping:
                with contextlib.suppress(TimeoutError):  # the store is away: not at once
                    await asyncio.wait_for(self._wake.wait(), _RETRY_SECONDS)
                self._wake.set()

    async def flush(self) -> bool:
        """Write the pending deltas (and delete old rows now and then); False if the store
        did not take them (they are kept)."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
        current = int(time.time() // 60)
        try:
            if pending:
                # In one order, so two replicas' upserts cannot deadlock on PostgreSQL.
                await self._store.write(_UPSERT, [(*k, v) for k, v in sorted(pending.items())])
            if time.monotonic() - self._pruned > _PRUNE_EVERY:
                await self._store.write("DELETE FROM activity_live WHERE minute < ?",
                                        [(current - _KEEP_MINUTES,)])
                await self._store.write("DELETE FROM activity_seen WHERE last_minute < ?",
                                        [(current - _DAY - _HOUR,)])
                self._pruned = time.monotonic()
        except StoreError as exc:
            self._add([(*k, v) for k, v in pending.items()])
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:
            log.error("activity: the store gives no live counts (%s): the rules that need "
                      "them see them unknown", str(exc) or "no answer in time")
        self._failing = True

    def _answered(self) -> None:
        if self._failing:
            log.info("activity: the store gives live counts again")
        self._failing = False

    async def close(self) -> None:
        """Stop; write what is still pending (nothing to do if never started)."""
        if self._loop is None:
            return
        self._stopping = True
        self._wake.set()
        await asyncio.gather(*self._late, return_exceptions=True)
        if self._flusher is not None:
            await self._flusher
        await self.flush()
        await self._store.close()


def _reading(rows: Rows, sub: str, jti: str | None, target: str | None,
             groups: Sequence[str], now: float) -> bytes:
    """The reading's JSON from its rows: the minute's refusals are this minute's plus the
    last one's weighted by how much of it is still within 60 s (as tracker.py's)."""
    weight = 1.0 - (now % 60) / 60
    refusals = 0
    seen: dict[str, list[str]] = {"address": [], "environment": []}
    masked: dict[str, dict[str, int]] = {}
    for key, metric, this_minute, last_minute, hour in rows:
        kind, _, name = metric.partition(":")
        if key == jti:
            seen.setdefault(kind, []).append(name)
        elif key == sub and metric == "refusals":
            refusals = int(this_minute) + math.ceil(int(last_minute) * weight)
        elif kind == "masked":
            masked.setdefault(key, {})[name] = int(hour)
    return orjson.dumps({
        "status": "known",
        "identity": {"minute": {"refusals": refusals}},
        "token": None if jti is None else {"seen": {
            "addresses": sorted(seen["address"])[:SEEN_MOST],
            "environments": sorted(seen["environment"])[:SEEN_MOST]}},
        "target": None if target is None else {
            "hour": {"masked": masked.get(f"target:{target}", {})}},
        "groups": {g: {"hour": {"masked": masked.get(f"group:{g}", {})}} for g in groups},
    })
