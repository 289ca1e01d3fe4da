"""Sessions of agents that name none: their exchanges grouped by token, else by identity.

AutoGen and AG2 send no `x-session-id` and begin a trace per model call, so one agent run
would be as many unrelated traces. An exchange that names no session of its own (no
header, no MCP session) is grouped by its token's id (`jti`), else by its subject
(`record.grouped_by`): its exchanges no more than `session_idle_minutes` apart are one
session, named after the token (or subject) and the time of the first of them
(`record.grouped_session`).

The writer process resolves them, off the request path, a batch at a time, through the
store (`session_marks`: each key's latest session, the first and last exchange it holds):
every worker and replica's writer sharing a store name one session alike. A key's
exchanges in a batch, sorted by start and cut at each gap, make runs; every key's run is
upserted atomically, all in one statement (a key's second run, seldom, in a second), in
the keys' order (two writers' transactions cannot deadlock). A run within the gap of the
mark's session joins it and widens it; a later one begins a new session; an earlier one
(a batch that waited longer than the gap) is a session of its own, the mark left as it
is. The upsert is idempotent, so a batch whose transaction failed resolves to the same
sessions when retried. Its cost (bench/sessions.py), per record in batches of 50: ~1 µs
without a grouped exchange; with 1 to 50 tokens a batch, 8-21 µs on SQLite and 12-36 µs
on PostgreSQL (two runs on a shared 2-CPU machine), as much as masking a record.

Read back (`listing`, for `tollgate audit sessions`; `page_query`, `records_query` and
`fold` for any reader, sync or async): a page of sessions chosen on the indexed columns,
then each summed up from its records (whose, which targets and protocols, when, how its
exchanges ended). On SQLite, 20,000 records in 2,000 sessions over a week: a page of 50
in ~0.5 s, nearly all of it choosing the page (a shared 2-CPU machine under load).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from extproc.recording.record import (
    _GROUPED_KINDS,
    Evidence,
    Session,
    grouped_by,
    grouped_session,
    session_of,
    started_us,
)
from extproc.recording.store import containing, content_of
from extproc.store import Connection

# The mark's session is kept (and widened) unless the run began more than the gap after
# its last exchange; a run that ended more than the gap before its first is left out.
_UPSERT = """INSERT INTO session_marks (key, session_id, first_us, last_us) VALUES {values}
ON CONFLICT (key) DO UPDATE SET
    session_id = CASE WHEN excluded.first_us > session_marks.last_us + ?
        THEN excluded.session_id ELSE session_marks.session_id END,
    first_us = CASE WHEN excluded.first_us > session_marks.last_us + ?
        OR excluded.first_us < session_marks.first_us
        THEN excluded.first_us ELSE session_marks.first_us END,
    last_us = CASE WHEN excluded.last_us > session_marks.last_us
        THEN excluded.last_us ELSE session_marks.last_us END
WHERE excluded.last_us >= session_marks.first_us - ?
RETURNING key, session_id"""
# A key's mark is forgotten once it has been idle this long (and longer than the gap): a
# later exchange would begin a session of its own anyway; the table stays as small as
# the set of tokens and identities active in a day.
REMEMBERED_US = 86_400_000_000
# Keys per statement (four parameters each: SQLite takes 32,766 in one).
_CHUNK = 500

# A run: its exchanges' (start, position in the batch), in order of start.
Run = list[tuple[int, int]]


def resolve(connection: Connection, evidences: list[Evidence], idle_us: int) -> list[Session]:
    """Each evidence's session, by position: grouped ones through the store (one
    transaction; raises StoreError, when nothing of it counts), the others as
    `session_of` says."""
    found = [session_of(evidence) for evidence in evidences]
    starts: dict[tuple[str, str], Run] = defaultdict(list)
    for n, evidence in enumerate(evidences):
        if group := grouped_by(evidence):
            starts[group].append((started_us(evidence.started), n))
    if not starts:
        return found
    # The first run of every key in one statement, the second (a gap inside the batch,
    # seldom) in the next: a statement may not upsert one key twice.
    levels: list[list[tuple[tuple[str, str], Run]]] = []
    for group in sorted(starts):
        for level, run in enumerate(_runs(sorted(starts[group]), idle_us)):
            if level == len(levels):
                levels.append([])
            levels[level].append((group, run))
    with connection.transaction():
        for level_runs in levels:
            for at in range(0, len(level_runs), _CHUNK):
                chunk = level_runs[at:at + _CHUNK]
                sessions = _upsert(connection, chunk, idle_us)
                for ((rule, _), run), session in zip(chunk, sessions, strict=True):
                    for _, n in run:
                        found[n] = Session(session, rule)
    return found


def _runs(times: Run, idle_us: int) -> list[Run]:
    """(start, position)s sorted by start, cut where one began more than the gap after
    the one before."""
    runs = [[times[0]]]
    for each in times[1:]:
        if each[0] - runs[-1][-1][0] > idle_us:
            runs.append([])
        runs[-1].append(each)
    return runs


def _upsert(connection: Connection, runs: list[tuple[tuple[str, str], Run]],
            idle_us: int) -> list[str]:
    """One statement for runs of distinct keys (in the keys' order: two writers lock
    them alike); each run's session id, by position."""
    new, params = [], []
    for (rule, name), run in runs:
        first, last = run[0][0], run[-1][0]
        new.append(grouped_session(rule, name, first).id)
        params += [f"{rule}:{name}", new[-1], first, last]
    joined = dict(connection.execute(
        _UPSERT.format(values=", ".join(["(?, ?, ?, ?)"] * len(runs))),
        [*params, idle_us, idle_us, idle_us]))
    return [joined.get(key, session) for key, session in zip(params[::4], new, strict=True)]


def forget(connection: Connection, before_us: int) -> None:
    """Forget the marks of keys whose last exchange began before `before_us`."""
    connection.execute("DELETE FROM session_marks WHERE last_us < ?", (before_us,))


# -- reading sessions back ---------------------------------------------------------------

# The records a session is made of (those a token or identity groups): an exchange, a
# strict target's decision before it, a tunnel's end; approvals and alerts join a session
# by their exchange's trace, and are not counted.
_OF_SESSIONS = f"kind IN ({', '.join(repr(kind) for kind in sorted(_GROUPED_KINDS))})"
# A session's records as `fold` reads them: (session_id, kind, started_us, identity,
# action, content).
Folded = tuple[str, str, int, str | None, str, str]


@dataclass
class Summary:
    """One session, as its records tell it: whose, on which targets (and their
    protocols), when, and how its exchanges ended. `ended_us`: the end of the exchange
    that ended last (a shell's exchange lasts as long as the shell). The counts are of
    exchange records: `held` ones went to an approver (whatever came of it), `masked`
    ones had values masked on their way; held and masked ones are also allowed or
    refused."""

    session_id: str
    first_us: int
    ended_us: int
    identities: set[str | None] = field(default_factory=set)
    protocols: set[str] = field(default_factory=set)
    targets: set[str] = field(default_factory=set)
    exchanges: int = 0
    allowed: int = 0
    refused: int = 0
    held: int = 0
    masked: int = 0

    @property
    def duration_us(self) -> int:
        return self.ended_us - self.first_us

    def named_identities(self) -> list[str | None]:
        """Authenticated subjects, sorted; None (an anonymous exchange) last."""
        return sorted(i for i in self.identities if i is not None) + (
            [None] if None in self.identities else [])

    def as_json(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "identities": self.named_identities(),
                "protocols": sorted(self.protocols), "targets": sorted(self.targets),
                "first_us": self.first_us, "ended_us": self.ended_us,
                "duration_ms": self.duration_us / 1000, "exchanges": self.exchanges,
                "allowed": self.allowed, "refused": self.refused, "held": self.held,
                "masked": self.masked}


def fold(rows: Iterable[Folded]) -> list[Summary]:
    """The sessions of `rows` (records of any kind; those a session is not made of are
    passed over), by first start, newest first."""
    found: dict[str, Summary] = {}
    for session_id, kind, started, identity, action, content in rows:
        if kind not in _GROUPED_KINDS:
            continue
        document = content_of(content)
        ended = started + int(float(document.get("duration_ms") or 0) * 1000)
        summary = found.get(session_id)
        if summary is None:
            summary = found[session_id] = Summary(session_id, started, ended)
        summary.first_us = min(summary.first_us, started)
        summary.ended_us = max(summary.ended_us, ended)
        summary.identities.add(identity)
        target = document.get("target") or {}
        if target.get("name"):
            summary.targets.add(str(target["name"]))
        if isinstance(target.get("protocol"), str):
            summary.protocols.add(target["protocol"])
        if kind != "exchange":
            continue
        summary.exchanges += 1
        summary.allowed += action == "allow"
        summary.refused += action == "deny"
        summary.held += action == "hold" or document.get("approval") is not None
        summary.masked += bool(document.get("masked"))
    return sorted(found.values(), key=lambda s: (s.first_us, s.session_id), reverse=True)


def listing(connection: Connection, *, since_us: int, until_us: int,
            identity: str | None = None, target: str | None = None,
            protocols: Collection[str] | None = None, text: str | None = None,
            limit: int = 50) -> list[Summary]:
    """The sessions with records in [since_us, until_us) (and of `identity`, `target`, a
    target of one of `protocols` there, holding `text`: store.containing), the latest
    begun first, at most `limit`: the page chosen on the indexed columns, then only its
    sessions' records read whole. The next page: `until_us` the last one's start."""
    where: list[str] = ["started_us >= ?", "started_us < ?"]
    params: list[Any] = [since_us, until_us]
    for column, value in (("identity", identity), ("target", target)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if text is not None:
        condition, pattern = containing(text)
        where.append(condition)
        params.append(pattern)
    if protocols is not None:
        targets = _targets_of(connection, protocols, since_us, until_us)
        if not targets:
            return []
        where.append(f"target IN ({', '.join('?' * len(targets))})")
        params += targets
    page = connection.execute(*page_query(where, params, limit))
    found = summaries(connection, [session_id for (session_id,) in page])
    return [s for s in found if protocols is None or not s.protocols.isdisjoint(protocols)]


def page_query(where: list[str], params: list[Any], limit: int) -> tuple[str, list[Any]]:
    """The ids of the sessions with a record matching `where` (conditions on `records`),
    the latest begun first, at most `limit`. Grouped again over all their records: a
    session begun before the first record `where` keeps is ordered by its own start."""
    return (f"SELECT session_id FROM records WHERE {_OF_SESSIONS} AND session_id IN "
            f"(SELECT session_id FROM records WHERE {_OF_SESSIONS} AND "
            f"{' AND '.join(where)}) GROUP BY session_id "
            "ORDER BY MIN(started_us) DESC, session_id DESC LIMIT ?", [*params, limit])


def records_query(session_ids: list[str]) -> tuple[str, list[Any]]:
    """The records `fold` reads of these sessions (at most `_CHUNK` of them)."""
    return ("SELECT session_id, kind, started_us, identity, action, content FROM records "
            f"WHERE {_OF_SESSIONS} AND session_id IN ({', '.join('?' * len(session_ids))})",
            list(session_ids))


def summaries(connection: Connection, session_ids: list[str]) -> list[Summary]:
    """These sessions, each from all its records, newest first."""
    found: list[Summary] = []
    for at in range(0, len(session_ids), _CHUNK):
        found += fold(connection.stream(*records_query(session_ids[at:at + _CHUNK])))
    return sorted(found, key=lambda s: (s.first_us, s.session_id), reverse=True)


def _targets_of(connection: Connection, protocols: Collection[str], since_us: int,
                until_us: int) -> list[str]:
    """The targets of the exchanges in [since_us, until_us) that speak one of
    `protocols`, as each target's latest record there says (the records have no protocol
    column)."""
    found = []
    for name, latest in connection.execute(
            "SELECT target, MAX(started_us) FROM records WHERE kind = 'exchange' AND "
            "target IS NOT NULL AND started_us >= ? AND started_us < ? GROUP BY target",
            (since_us, until_us)):
        contents = connection.execute(
            "SELECT content FROM records WHERE kind = 'exchange' AND target = ? AND "
            "started_us = ? LIMIT 1", (name, latest))
        protocol = (content_of(contents[0][0]).get("target") or {}).get("protocol") \
            if contents else None
        if protocol in protocols:
            found.append(name)
    return sorted(found)
