"""The record's tables: writing chained rows and checkpoints, reading them back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from extproc.recording.chain import Checkpoint, Signer
from extproc.store import Connection, StoreError

_COLUMNS = ("writer", "seq", "id", "kind", "started_us", "trace_id", "session_id", "identity",
            "target", "action", "status", "content", "prev_hash", "hash")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM records"
_CHECKPOINT_COLUMNS = ("writer", "seq", "kind", "hash", "signed_us", "key_id", "signature")


@dataclass(frozen=True, slots=True)
class Row:
    """A stored record: its place in its writer's chain, the columns searches use (copies
    of fields of `content`), and `content`, the canonical JSON the hash covers."""

    writer: str
    seq: int
    id: str
    kind: str
    started_us: int
    trace_id: str
    session_id: str
    identity: str | None
    target: str | None
    action: str
    status: int | None
    content: str
    prev_hash: str
    hash: str

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in _COLUMNS)

    def document(self) -> dict[str, Any]:
        """The content as JSON values; the standard library's parser, since orjson would
        turn integers beyond 64 bits (which a client's JSON may carry) into floats."""
        return json.loads(self.content)


def projections(content: dict[str, Any]) -> dict[str, Any]:
    """The searchable columns a record's content gives (verify checks them against it)."""
    identity = content.get("identity") or {}
    target = content.get("target") or {}
    return {
        "kind": content["kind"],
        "trace_id": content["trace_id"],
        "session_id": content["session_id"],
        "identity": identity.get("sub") if identity.get("authenticated") else None,
        "target": target.get("name"),
        "action": content["outcome"]["action"],
        "status": content["outcome"]["status"],
    }


def record_id(writer: str, seq: int) -> str:
    return f"{writer}:{seq}"


def insert(connection: Connection, rows: list[Row], checkpoints: list[Checkpoint]) -> None:
    """Rows and checkpoints in one transaction: a checkpoint never names an unwritten row."""
    with connection.transaction():
        connection.executemany(
            f"INSERT INTO records ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_COLUMNS))})",
            [row.values() for row in rows])
        add_checkpoints(connection, checkpoints)


def add_checkpoints(connection: Connection, checkpoints: list[Checkpoint]) -> None:
    connection.executemany(
        f"INSERT INTO checkpoints ({', '.join(_CHECKPOINT_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(_CHECKPOINT_COLUMNS))}) ON CONFLICT DO NOTHING",
        [tuple(getattr(c, name) for name in _CHECKPOINT_COLUMNS) for c in checkpoints])


@dataclass(frozen=True, slots=True)
class Registration:
    """A writer's start: where its chain (re)began and the anchor log it writes to."""

    writer: str
    registered_us: int
    seq: int
    anchor: str | None


def register(connection: Connection, registration: Registration) -> None:
    connection.execute(
        "INSERT INTO writers (writer, registered_us, seq, anchor) VALUES (?, ?, ?, ?)",
        (registration.writer, registration.registered_us, registration.seq,
         registration.anchor))


def registrations(connection: Connection) -> list[Registration]:
    """Every writer's starts, oldest first; none in a store from before registration."""
    (version,) = connection.execute(
        "SELECT version FROM tollgate_schema WHERE component = 'recording'")[0]
    if version < 2:
        return []
    return [Registration(*values) for values in connection.execute(
        "SELECT writer, registered_us, seq, anchor FROM writers ORDER BY registered_us")]


def last_of(connection: Connection, writer: str) -> tuple[int, str] | None:
    """The newest record of `writer`'s chain: (seq, hash)."""
    found = connection.execute(
        "SELECT seq, hash FROM records WHERE writer = ? ORDER BY seq DESC LIMIT 1", (writer,))
    return (found[0][0], found[0][1]) if found else None


def chain_rows(connection: Connection) -> Iterator[Row]:
    """Every record, chain by chain, in order: what verification walks."""
    for values in connection.stream(f"{_SELECT} ORDER BY writer, seq"):
        yield Row(*values)


def checkpoints(connection: Connection) -> list[Checkpoint]:
    return [Checkpoint(*values) for values in connection.execute(
        f"SELECT {', '.join(_CHECKPOINT_COLUMNS)} FROM checkpoints ORDER BY writer, seq, kind")]


def search(
    connection: Connection, *, identity: str | None = None, target: str | None = None,
    action: str | None = None, since_us: int | None = None, limit: int = 100,
) -> list[Row]:
    """Records matching every filter given, newest first."""
    where, params = _filters(identity=identity, target=target, action=action)
    if since_us is not None:
        where.append("started_us >= ?")
        params.append(since_us)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = connection.execute(
        f"{_SELECT}{clause} ORDER BY started_us DESC, writer, seq DESC LIMIT ?",
        (*params, limit))
    return [Row(*values) for values in rows]


def by_id(connection: Connection, key: str) -> list[Row]:
    """The record with this id; or, given a trace id, every record of that trace."""
    rows = connection.execute(f"{_SELECT} WHERE id = ? OR trace_id = ? "
                              "ORDER BY started_us, writer, seq", (key, key))
    return [Row(*values) for values in rows]


def session(connection: Connection, session_id: str) -> list[Row]:
    """Every record of one agent run (its x-session-id, or its trace), oldest first."""
    rows = connection.execute(f"{_SELECT} WHERE session_id = ? OR trace_id = ? "
                              "ORDER BY started_us, writer, seq", (session_id, session_id))
    return [Row(*values) for values in rows]


def since(connection: Connection, since_us: int | None) -> Iterator[Row]:
    """Records from `since_us` on, oldest first (what-if replays them)."""
    if since_us is None:
        yield from (Row(*v) for v in connection.stream(f"{_SELECT} ORDER BY started_us"))
    else:
        yield from (Row(*v) for v in connection.stream(
            f"{_SELECT} WHERE started_us >= ? ORDER BY started_us", (since_us,)))


def _filters(**columns: str | None) -> tuple[list[str], list[Any]]:
    where, params = [], []
    for column, value in columns.items():
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params


def prune(connection: Connection, signer: Signer, cutoff_us: int) -> dict[str, int]:
    """Delete records that started before `cutoff_us`, oldest first per chain; each
    chain keeps a signed `prune` statement naming the last deleted record's hash, which
    the first remaining record links to (so the chain still verifies). Returns records
    deleted per writer."""
    deleted: dict[str, int] = {}
    with connection.transaction():
        keys = {k for (k,) in connection.execute("SELECT DISTINCT key_id FROM checkpoints")}
        if keys - {signer.public.key_id}:
            # Pruning deletes evidence: only with the key the chain was signed with, or
            # what remains would no longer verify.
            raise StoreError(
                f"{connection.where}: its checkpoints are signed with key "
                f"{', '.join(sorted(keys))}, not {signer.public.key_id}: not pruning")
        writers = connection.execute(
            "SELECT writer, MAX(seq) FROM records WHERE started_us < ? GROUP BY writer",
            (cutoff_us,))
        for writer, _ in writers:
            # A chain is pruned up to its first record that is recent enough (records are
            # numbered as exchanges end, so start times are not quite in order).
            young = connection.execute(
                "SELECT MIN(seq) FROM records WHERE writer = ? AND started_us >= ?",
                (writer, cutoff_us))[0][0]
            bounds = connection.execute(
                "SELECT MIN(seq), MAX(seq) FROM records WHERE writer = ?", (writer,))[0]
            last = young - 1 if young is not None else bounds[1]
            if last < bounds[0]:
                continue
            (last_hash,) = connection.execute(
                "SELECT hash FROM records WHERE writer = ? AND seq = ?", (writer, last))[0]
            marker = signer.sign("prune", writer, last, last_hash, int(time.time() * 1e6))
            connection.execute("DELETE FROM records WHERE writer = ? AND seq <= ?",
                               (writer, last))
            # Statements about what is gone go too; the new prune statement replaces them.
            connection.execute("DELETE FROM checkpoints WHERE writer = ? AND seq <= ?",
                               (writer, last))
            add_checkpoints(connection, [marker])
            deleted[writer] = last - bounds[0] + 1
    return deleted
