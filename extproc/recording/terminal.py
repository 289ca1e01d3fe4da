"""Terminal recordings in the store: an interactive session's output, chunk by chunk.

A shell's recording (cast.py) grows for as long as the session lasts, far past what a
record keeps of a body, so it goes to a table of its own (`terminal_recordings`) in
chunks as it is written: a session that ends without warning loses at most the last
one. The record vouches for it: the SHELL exchange's record keeps its size and SHA-256
(its response body capture is the recording), and `tollgate audit replay` checks them.
A recording is named by that exchange's trace id.

Retention follows the record (recording/retention.py calls `prune_with_records` and
`prune_unrecorded` in its transaction): a recording goes with the last record of its
trace, so a legal hold, which keeps the records, keeps it too; one no record vouches for
(tollgate stopped mid-session) goes once its last chunk is past every retention the
config sets, unless its session is held.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from extproc.store import Connection
from extproc.store.aio import AsyncStore


class TerminalRecordings:
    """The front's writer (every worker and replica writes its own sessions' chunks)."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store

    async def append(self, session_id: str, recording_id: str, seq: int,
                     data: bytes) -> None:
        """Chunk `seq` (0, 1, ... in order) of the recording `recording_id` (the trace id
        of the exchange whose record vouches for it) of session `session_id` (as its
        records name it). `data` is whole cast lines (UTF-8). StoreError when the store
        cannot take it; a chunk already stored is refused, never overwritten."""
        await self._store.execute(
            "INSERT INTO terminal_recordings (recording_id, chunk, session_id, data, "
            "written_us) VALUES (?, ?, ?, ?, ?)",
            (recording_id, seq, session_id, data.decode("utf-8"), time.time_ns() // 1000))


@dataclass(frozen=True)
class Stored:
    """A recording as the store holds it: its chunks joined, and which are missing."""

    recording_id: str
    session_id: str
    data: bytes
    chunks: int
    missing: tuple[int, ...]  # numbers below the last chunk with no chunk stored
    first_us: int  # when its first and last chunk were written
    last_us: int


def available(connection: Connection) -> bool:
    """Whether the store has the table (the audit commands read stores a tollgate older
    than terminal recordings left, without migrating them)."""
    return bool(connection.execute(
        "SELECT version FROM tollgate_schema WHERE component = 'terminal'"))


def load(connection: Connection, session_id: str) -> list[Stored]:
    """The recordings of a session (as `store.session` finds its records: a session id,
    or a trace id), oldest first."""
    if not available(connection):
        return []
    found: dict[str, list[tuple[Any, ...]]] = {}
    for row in connection.stream(
            "SELECT recording_id, chunk, session_id, data, written_us FROM terminal_recordings "
            "WHERE session_id = ? OR recording_id = ? OR recording_id IN "
            "(SELECT trace_id FROM records WHERE session_id = ?) ORDER BY recording_id, chunk",
            (session_id, session_id, session_id)):
        found.setdefault(row[0], []).append(row)
    return sorted((_stored(rows) for rows in found.values()), key=lambda s: s.first_us)


def _stored(rows: Sequence[tuple[Any, ...]]) -> Stored:
    chunks = {int(row[1]) for row in rows}
    written = [int(row[4]) for row in rows]
    return Stored(
        recording_id=str(rows[0][0]), session_id=str(rows[0][2]),
        data="".join(str(row[3]) for row in rows).encode("utf-8"), chunks=len(rows),
        missing=tuple(n for n in range(max(chunks)) if n not in chunks),
        first_us=min(written), last_us=max(written))


def prune_with_records(connection: Connection, where: str, params: Sequence[Any]) -> int:
    """Delete the recordings whose trace has records only among those `where` selects
    (which are being deleted, in the caller's transaction); how many."""
    if not available(connection):
        return 0
    gone = [recording for (recording,) in connection.execute(
        "SELECT DISTINCT recording_id FROM terminal_recordings WHERE recording_id IN "
        f"(SELECT trace_id FROM records WHERE {where}) AND NOT EXISTS (SELECT 1 FROM records "
        f"WHERE records.trace_id = terminal_recordings.recording_id AND NOT ({where}))",
        (*params, *params))]
    return _delete(connection, gone)


def prune_unrecorded(connection: Connection, before_us: int, held: set[str]) -> int:
    """Delete the recordings no record vouches for whose last chunk was written before
    `before_us`, unless `held` names their session or trace; how many."""
    if not available(connection):
        return 0
    gone = [recording for recording, session in connection.execute(
        "SELECT recording_id, session_id FROM terminal_recordings WHERE NOT EXISTS "
        "(SELECT 1 FROM records WHERE records.trace_id = terminal_recordings.recording_id) "
        "GROUP BY recording_id, session_id HAVING MAX(written_us) < ?", (before_us,))
        if session not in held and recording not in held]
    return _delete(connection, gone)


def _delete(connection: Connection, recordings: list[str]) -> int:
    connection.executemany("DELETE FROM terminal_recordings WHERE recording_id = ?",
                           [(recording,) for recording in recordings])
    return len(recordings)
