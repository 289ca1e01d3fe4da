"""The record's tables: writing chained rows and checkpoints, reading them back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from extproc.recording.chain import Checkpoint
from extproc.store import Connection, StoreError

_COLUMNS = ("writer", "seq", "id", "kind", "started_us", "trace_id", "session_id", "identity",
            "target", "action", "status", "content", "prev_hash", "hash")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM records"
_CHECKPOINT_COLUMNS = ("writer", "seq", "kind", "hash", "signed_us", "key_id", "signature",
                       "from_seq", "store_id")
# The recording tables' version from which checkpoints have `from_seq` (cut statements).
CUTS = 4
# The version from which the store has an id, and checkpoints name it (`store_id`).
STORE_IDS = 5


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


def content_of(content: str) -> dict[str, Any]:
    """A record's content as `Row.document` reads it, or {} where it is not a JSON object
    (an edited store, which `tollgate audit verify` names): a listing or a page built
    from many records still shows the others."""
    try:
        document = json.loads(content)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


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
    """Statements naming no store (a prune, a cut) are written without the column, so a
    store whose tables predate store ids (`audit prune` does not migrate) takes them."""
    columns = _CHECKPOINT_COLUMNS if any(c.store_id for c in checkpoints) \
        else _CHECKPOINT_COLUMNS[:-1]
    connection.executemany(
        f"INSERT INTO checkpoints ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))}) ON CONFLICT DO NOTHING",
        [tuple(getattr(c, name) for name in columns) for c in checkpoints])


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
    if version(connection) < 2:
        return []
    return [Registration(*values) for values in connection.execute(
        "SELECT writer, registered_us, seq, anchor FROM writers ORDER BY registered_us")]


def version(connection: Connection) -> int:
    """The migration the store's recording tables have reached (the audit commands read
    stores without migrating them)."""
    (found,) = connection.execute(
        "SELECT version FROM tollgate_schema WHERE component = 'recording'")[0]
    return int(found)


def store_ids(connection: Connection) -> list[str] | None:
    """What the store's id table holds: its one id (made with the store, or on its first
    start since ids came), or anything else its writer made of it; None: its tables
    predate store ids (the audit commands read stores without migrating them)."""
    if version(connection) < STORE_IDS:
        return None
    return [found for (found,) in connection.execute("SELECT id FROM store_id ORDER BY id")]


def store_id(connection: Connection) -> str | None:
    """The store's id (None: its tables predate ids). Raises StoreError when the table
    holds none, or several: it was edited, and the writer signs nothing for it."""
    found = store_ids(connection)
    if found is None or len(found) == 1:
        return found[0] if found else None
    raise StoreError(f"{connection.where}: its store_id table holds "
                     f"{', '.join(found) or 'no id'}, where it holds one id, made with the "
                     "store and never changed: it was edited (tollgate audit verify names "
                     "what that hides)")


def last_of(connection: Connection, writer: str) -> tuple[int, str] | None:
    """The newest record of `writer`'s chain: (seq, hash)."""
    found = connection.execute(
        "SELECT seq, hash FROM records WHERE writer = ? ORDER BY seq DESC LIMIT 1", (writer,))
    return (found[0][0], found[0][1]) if found else None


def chain_rows(connection: Connection) -> Iterator[Row]:
    """Every record, chain by chain, in order: what verification walks."""
    for values in connection.stream(f"{_SELECT} ORDER BY writer, seq"):
        yield Row(*values)


def checkpoints(connection: Connection, writers: list[str] | None = None) -> list[Checkpoint]:
    """Every signed statement (or those about `writers`), by writer, seq and kind."""
    found = version(connection)
    columns: tuple[str, ...] = _CHECKPOINT_COLUMNS
    columns = columns[:-1] if found < STORE_IDS else columns
    columns = columns[:-1] if found < CUTS else columns
    where = f" WHERE writer IN ({', '.join('?' * len(writers))})" if writers else ""
    return [Checkpoint(*values) for values in connection.execute(
        f"SELECT {', '.join(columns)} FROM checkpoints{where} ORDER BY writer, seq, kind",
        writers or ())]


def search(
    connection: Connection, *, identity: str | None = None, target: str | None = None,
    action: str | None = None, kind: str | None = None, since_us: int | None = None,
    text: str | None = None, limit: int = 100,
) -> list[Row]:
    """Records matching every filter given, newest first (`text`: see `containing`)."""
    where, params = _filters(identity=identity, target=target, action=action, kind=kind)
    if text is not None:
        condition, pattern = containing(text)
        where.append(condition)
        params.append(pattern)
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
    """Every record of one agent run (a session id, or a trace id), oldest first, with
    the records that share a trace with them: a grouped session's alerts and approvals
    are in their exchange's trace, not its session."""
    rows = connection.execute(
        f"{_SELECT} WHERE session_id = ? OR trace_id = ? OR trace_id IN "
        "(SELECT trace_id FROM records WHERE session_id = ?) "
        "ORDER BY started_us, writer, seq", (session_id, session_id, session_id))
    return [Row(*values) for values in rows]


def since(connection: Connection, since_us: int | None) -> Iterator[Row]:
    """Records from `since_us` on, oldest first (what-if replays them)."""
    if since_us is None:
        yield from (Row(*v) for v in connection.stream(f"{_SELECT} ORDER BY started_us"))
    else:
        yield from (Row(*v) for v in connection.stream(
            f"{_SELECT} WHERE started_us >= ? ORDER BY started_us", (since_us,)))


def period(connection: Connection, since_us: int, until_us: int,
           target: str | None = None) -> Iterator[Row]:
    """Records started in [since_us, until_us) (of one target), chain by chain, in order:
    what an export carries, each next to its predecessor where both are in it."""
    where, params = _filters(target=target)
    for values in connection.stream(
            f"{_SELECT} WHERE started_us >= ? AND started_us < ?"
            f"{''.join(f' AND {w}' for w in where)} ORDER BY writer, seq",
            (since_us, until_us, *params)):
        yield Row(*values)


def containing(text: str) -> tuple[str, str]:
    """A condition on `records` (and its parameter) keeping those whose content holds
    `text`, any case: what was stored, so masked (a search for a secret's value finds
    nothing; one for its mask, `[REDACTED:AWS_ACCESS_KEY]`, finds where it passed). A
    scan of the records the other conditions leave, not an index: bound it by time."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "lower(content) LIKE ? ESCAPE '\\'", f"%{escaped}%"


def _filters(**columns: str | None) -> tuple[list[str], list[Any]]:
    where, params = [], []
    for column, value in columns.items():
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params
