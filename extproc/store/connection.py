"""One synchronous connection to the store, SQLite or PostgreSQL, with one SQL dialect."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from extproc.store import schema
from extproc.store.errors import StoreError

# Seconds a SQLite writer waits for another's lock before giving up (busy_timeout).
_SQLITE_BUSY_SECONDS = 5.0


class Connection:
    """A connection whose SQL uses `?` placeholders on both backends.

    `transaction()` wraps work in one transaction; every backend error comes out as
    StoreError with a one-line message, so callers handle one exception.
    """

    def __init__(self, url: str, raw: Any, backend: str,
                 errors: tuple[type[Exception], ...] = (sqlite3.Error,)) -> None:
        self.url, self.backend = url, backend
        self._raw = raw
        self._backend_errors = errors  # what the backend raises, to be said as StoreError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._errors():
            cursor = self._raw.execute(self._sql(sql), params)
            return cursor.fetchall() if cursor.description else []

    def stream(self, sql: str, params: Sequence[Any] = (), size: int = 1000,
               ) -> Iterator[tuple[Any, ...]]:
        """Rows fetched `size` at a time: a whole chain does not have to fit in memory
        (on PostgreSQL, a server-side cursor, which lives in a transaction)."""
        with self._errors():
            if self.backend == "sqlite":
                cursor = self._raw.execute(self._sql(sql), params)
                while rows := cursor.fetchmany(size):
                    yield from rows
                return
            with self._raw.transaction(), self._raw.cursor(name="tollgate_stream") as cursor:
                cursor.execute(self._sql(sql), params)
                while rows := cursor.fetchmany(size):
                    yield from rows

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self._errors():
            if self.backend == "sqlite":
                self._raw.executemany(self._sql(sql), rows)
            else:
                with self._raw.cursor() as cursor:
                    cursor.executemany(self._sql(sql), rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together, or not at all. (Outside one, each
        statement commits on its own: both backends run in autocommit mode.)"""
        with self._errors():
            if self.backend == "postgresql":
                with self._raw.transaction():
                    yield
                return
            # IMMEDIATE: the write lock is taken now, not at the first write, so two
            # writers wait for each other (busy_timeout) instead of failing mid-way.
            self._raw.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._raw.in_transaction:
                    self._raw.execute("ROLLBACK")
                raise
            self._raw.execute("COMMIT")

    def close(self) -> None:
        with suppress(*self._backend_errors):
            self._raw.close()

    def _sql(self, sql: str) -> str:
        return sql if self.backend == "sqlite" else postgres_sql(sql)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._backend_errors as exc:
            raise StoreError(f"{self.where}: {one_line(exc)}") from None

    @property
    def where(self) -> str:
        """The store, for messages: a SQLite path, or PostgreSQL's host and database
        (never a password)."""
        if self.backend == "sqlite":
            return self.url
        info = self._raw.info
        return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"


def connect(url: str, *, migrate: bool = True) -> Connection:
    """Open the store at `url` (a resolved sqlite:///PATH, or postgresql://...) and bring
    its tables up to date."""
    if url.startswith("sqlite:///"):
        connection = _sqlite(url)
    elif url.startswith(("postgresql://", "postgres://")):
        connection = _postgres(url)
    else:
        raise StoreError(f"unknown store URL {url!r}: expected sqlite:///PATH or postgresql://")
    if migrate:
        try:
            schema.migrate(connection)
        except StoreError:
            connection.close()
            raise
    return connection


def _sqlite(url: str) -> Connection:
    path = Path(url.removeprefix("sqlite:///"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = sqlite3.connect(path, timeout=_SQLITE_BUSY_SECONDS, isolation_level=None,
                              check_same_thread=False)
        # WAL: readers (`tollgate audit`) never block the writer; FULL: a committed
        # record survives a power cut, not only a crash of tollgate.
        _wal(raw)
        raw.execute("PRAGMA synchronous=FULL")
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"{url}: {one_line(exc)}") from None
    return Connection(url, raw, "sqlite")


def _wal(raw: sqlite3.Connection) -> None:
    """The file in WAL mode. Turning a new file to WAL takes its lock without SQLite's
    busy handler: two processes opening a new store at once (workers starting) saw
    "database is locked" at once about one time in a hundred. So this statement waits
    for the other as every other does, up to busy_timeout."""
    deadline = time.monotonic() + _SQLITE_BUSY_SECONDS
    while True:
        try:
            raw.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _postgres(url: str) -> Connection:
    # Imported here: psycopg takes ~0.45 s of CPU to import, which every process on a
    # SQLite store (a worker, its recording writer, a command) would pay for nothing.
    import psycopg

    try:
        raw = psycopg.connect(url, connect_timeout=5, autocommit=True)
    except psycopg.Error as exc:
        # psycopg's message names host and port, never the password.
        raise StoreError(f"PostgreSQL store: {one_line(exc)}") from None
    return Connection(url, raw, "postgresql", (psycopg.Error,))


def postgres_sql(sql: str) -> str:
    """The `?` dialect as psycopg takes it (`%s` placeholders, literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def one_line(exc: BaseException) -> str:
    """A backend's error as one line (psycopg's span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
