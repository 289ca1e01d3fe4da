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
"""

from __future__ import annotations

from collections import defaultdict

from extproc.recording.record import (
    Evidence,
    Session,
    grouped_by,
    grouped_session,
    session_of,
    started_us,
)
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
