"""What each identity and agent run has received that may steer what it does next, for
the policy as `input.flow` (docs/flows.md).

An agent puts what it reads into its model's context. An answer of a target the config
marks untrusted (`untrusted`: the open web through egress, by default), or one in which
the instructions reader (interpret/instructions.py) found words aimed at the model, can
steer the agent's next calls on any protocol. Such an answer is noted in the store
*before* it reaches the agent (`received`: one write, awaited), under the identity
(`sub:S`) and, where the agent propagates a trace, under its run (`run:T`). A store that
does not take the note refuses the answer: it would reach the agent unnoted, and the
decisions after it would not know. Every worker and replica reads the same notes.

A decision reads them (`read`: one query; on SQLite made on the loop, where it never
waits) only where the request can act on what was read (`acts`): a write, a tool call, a
request leaving through egress, a prompt to a model, a command. Any other request's
`input.flow.status` is "unread", at no cost: the readings are never kept (a note another
process wrote a moment ago counts at once).
Notes older than `retention_seconds` no longer count and are deleted now and then.

The protected values an answer carried that reached the agent unmasked (`kept`) are kept
as keyed fingerprints (masking/fingerprints.py), per scope and origin target, at most
`fingerprints_kept` per scope (the oldest go first). A reading given the fingerprints of
what a request carries out (`read`'s `carried`) says which of them the identity or run
received, from where: `input.flow.carries`.
Nothing here holds content: target names, the reader's kinds, fingerprints, trace ids
and times.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from extproc.activity.live import open_store
from extproc.store import Connection, StoreError, connect

if TYPE_CHECKING:
    from extproc.config import Flow as Settings

log = logging.getLogger("tollgate.flow")

SHOWN_MOST = 8  # notes of each scope the policy sees, newest first
UNREAD = b'{"status":"unread"}'
UNKNOWN = b'{"status":"unknown"}'
_PRUNE_EVERY = 300.0
# Effects of SQL statements that act on nothing (interpret/sql's effects): reading, and
# the session's own settings and transactions.
_INERT_SQL = frozenset({"read", "session"})
_READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# MCP requests that act on nothing: a session's start, listings, a ping.
_MCP_READS = frozenset({"initialize", "notifications/initialized", "ping", "tools/list",
                        "resources/list", "resources/templates/list", "prompts/list"})
_NOTE = ("INSERT INTO flow_received (scope, at_us, target, cause, kinds, trace_id) "
         "VALUES (?, ?, ?, ?, ?, ?)")
_KEEP = ("INSERT INTO flow_values (scope, digest, target, kind, at_us, trace_id) "
         "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, digest, target) "
         "DO UPDATE SET at_us = excluded.at_us, trace_id = excluded.trace_id")
# A scope's fingerprints past the bound: those older than its newest `fingerprints_kept`.
_OVER_BOUND = ("DELETE FROM flow_values WHERE scope = ? AND at_us < (SELECT at_us FROM "
               "flow_values WHERE scope = ? ORDER BY at_us DESC LIMIT 1 OFFSET ?)")


@functools.cache
def _select(scopes: int) -> str:
    """The newest notes of each scope within the retention; then, in the same round trip,
    a row of NULLs if the scopes were given any protected value (so a request is read
    for fingerprints only where there is something it could carry out)."""
    one = ("SELECT * FROM (SELECT scope, at_us, target, cause, kinds, trace_id"
           " FROM flow_received WHERE scope = ? AND at_us > ?"
           f" ORDER BY at_us DESC LIMIT {SHOWN_MOST}) AS s{{i}}")
    given = ("SELECT NULL, NULL, NULL, NULL, NULL, NULL WHERE EXISTS (SELECT 1 FROM"
             f" flow_values WHERE scope IN ({', '.join('?' * scopes)}) AND at_us > ?)")
    return " UNION ALL ".join([*(one.format(i=i) for i in range(scopes)), given])


@functools.cache
def _select_carried(scopes: int, digests: int) -> str:
    """Which of a request's fingerprints the scopes received, from where."""
    return ("SELECT digest, kind, target, at_us, trace_id FROM flow_values WHERE scope IN ("
            + ", ".join("?" * scopes) + ") AND at_us > ? AND digest IN ("
            + ", ".join("?" * digests) + ") ORDER BY at_us DESC")


def _scopes(identity: str, run: str | None) -> list[str]:
    """Where notes are kept and read: the identity's key, and the run's where there is one."""
    return [identity, *([f"run:{run}"] if run else [])]


def acts(protocol: str, meaning: Any, method: str) -> bool:
    """Whether a request can act on what its agent read: anything but a read (`method`:
    the HTTP method, where there is one)."""
    if protocol in ("egress", "llm", "ssh"):
        return True
    if protocol == "mcp":
        return not isinstance(meaning, dict) or meaning.get("method") not in _MCP_READS
    if protocol in ("postgres", "mysql", "sql-http"):
        statements = meaning.get("statements") if isinstance(meaning, dict) else None
        if not isinstance(statements, list):
            return True
        return any(not isinstance(s, dict) or not isinstance(s.get("effects"), list)
                   or not _INERT_SQL.issuperset(s["effects"]) for s in statements)
    return method.upper() not in _READING_METHODS


class Flow:
    def __init__(self, settings: Settings, url: str) -> None:
        self._settings = settings
        self._store = open_store(url, settings.timeout_seconds)
        self._pruned = time.monotonic()
        self._pruning: asyncio.Task[None] | None = None
        # On SQLite, the notes are read on the loop by a connection that never waits
        # (busy_timeout 0: WAL readers do not wait on writers; a lock that would make it
        # wait sends the reading to the store's thread instead): 8 µs of CPU where the
        # thread's round trip took 170 (bench/flow.py).
        self._url = url
        self._inline: Connection | None = None
        self._grown: set[str] = set()  # scopes given fingerprints since the last pruning

    async def start(self) -> None:
        await self._store.open()
        if self._url.startswith("sqlite:///"):
            with contextlib.suppress(StoreError):  # not there: every reading takes the thread
                inline = await asyncio.to_thread(connect, self._url)
                inline.execute("PRAGMA busy_timeout = 0")
                inline.execute("PRAGMA query_only = 1")
                self._inline = inline

    async def received(self, identity: str, run: str | None, target: str, cause: str,
                       kinds: Iterable[str], trace_id: str) -> None:
        """Note that an answer is untrusted content (`cause`: `untrusted`, of a target so
        marked; `instructions`, words to the model found in it, `kinds`) under the
        identity's key (tracker.keys_of) and the run's; StoreError if the store does not
        take it in time."""
        row = (int(time.time() * 1_000_000), target, cause, ",".join(kinds), trace_id)
        try:
            await asyncio.wait_for(self._store.write(
                _NOTE, [(scope, *row) for scope in _scopes(identity, run)]),
                self._settings.timeout_seconds)
        except TimeoutError:
            raise StoreError("no answer in time") from None
        self._prune_now_and_then()

    async def kept(self, identity: str, run: str | None, target: str, trace_id: str,
                   found: dict[str, str]) -> None:
        """Keep the fingerprints of values an answer of `target` carried to the agent
        unmasked (`found`: digest -> detector name); StoreError if the store does not
        take them in time."""
        at_us = int(time.time() * 1_000_000)
        scopes = _scopes(identity, run)
        rows = [(scope, digest, target, kind, at_us, trace_id)
                for scope in scopes for digest, kind in found.items()]
        try:
            await asyncio.wait_for(self._store.write(_KEEP, rows),
                                   self._settings.timeout_seconds)
        except TimeoutError:
            raise StoreError("no answer in time") from None
        self._grown.update(scopes)
        self._prune_now_and_then()

    async def read(self, identity: str, run: str | None,
                   carried: Callable[[], Collection[str]] = tuple) -> bytes:
        """`input.flow` as JSON: what the identity (and the run: the agent's trace, None
        where it sent none) received within the retention, newest first; and which of
        the fingerprints of what the request carries out (`carried()`, called only if
        the identity or run was given protected values) it received."""
        since = int((time.time() - self._settings.retention_seconds) * 1_000_000)
        wanted = _scopes(identity, run)
        try:
            rows = await self._rows(_select(len(wanted)), [
                *(v for scope in wanted for v in (scope, since)), *wanted, since])
            given = bool(rows) and rows[-1][0] is None
            digests = carried() if given else ()
            values = await self._rows(_select_carried(len(wanted), len(digests)),
                                      [*wanted, since, *digests]) if digests else []
        except (StoreError, TimeoutError) as exc:
            log.error("flow: the store gives no notes of what agents received: %s",
                      str(exc) or "no answer in time")
            return UNKNOWN
        by_scope: dict[str, list[dict[str, Any]]] = {scope: [] for scope in wanted}
        for scope, at_us, target, cause, kinds, trace_id in rows[:-1] if given else rows:
            by_scope[scope].append({
                "at": at_us / 1_000_000, "target": target, "cause": cause,
                "kinds": kinds.split(",") if kinds else [], "trace_id": trace_id})
        return orjson.dumps({
            "status": "known", "run": run,
            "identity": {"untrusted": by_scope[wanted[0]]},
            "this_run": None if run is None else {"untrusted": by_scope[wanted[1]]},
            "carries": _carries(values),
        })

    async def _rows(self, select: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """A reading's rows: on the loop where it need not wait, else the store's thread."""
        inline = self._read_inline(select, params)
        if inline is not None:
            return inline
        return await asyncio.wait_for(self._store.read(select, params, []),
                                      self._settings.timeout_seconds)

    def _read_inline(self, select: str, params: list[Any]) -> list[tuple[Any, ...]] | None:
        """The rows, read on the loop without waiting (None: not so read)."""
        if self._inline is None:
            return None
        try:
            return self._inline.execute(select, params)
        except StoreError:  # busy, or gone: the store's thread reads it
            return None

    def _prune_now_and_then(self) -> None:
        if time.monotonic() - self._pruned < _PRUNE_EVERY or self._pruning is not None:
            return
        self._pruned = time.monotonic()
        self._pruning = asyncio.create_task(self._prune())

    async def _prune(self) -> None:
        since = int((time.time() - self._settings.retention_seconds) * 1_000_000)
        grown, self._grown = self._grown, set()
        bound = self._settings.fingerprints_kept
        try:
            await self._store.write("DELETE FROM flow_received WHERE at_us < ?", [(since,)])
            await self._store.write("DELETE FROM flow_values WHERE at_us < ?", [(since,)])
            if grown:
                await self._store.write(_OVER_BOUND,
                                        [(scope, scope, bound - 1) for scope in sorted(grown)])
        except StoreError as exc:
            log.warning("flow: old notes not deleted (tried again later): %s", exc)
        finally:
            self._pruning = None

    async def close(self) -> None:
        if self._pruning is not None:
            await self._pruning
        if self._inline is not None:
            self._inline.close()
        await self._store.close()


def _carries(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """`input.flow.carries`: each value the request carries out that the identity or run
    received, its kind and where from (each origin once, newest first), never the value;
    `value` numbers the distinct values, so that two e-mails count as two."""
    numbers: dict[str, int] = {}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for digest, kind, target, at_us, trace_id in rows:
        number = numbers.setdefault(digest, len(numbers) + 1)
        out.setdefault((digest, target), {
            "value": number, "kind": kind, "from": target, "at": at_us / 1_000_000,
            "trace_id": trace_id})
    return list(out.values())
