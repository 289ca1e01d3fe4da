"""Throwaway databases on this machine's PostgreSQL (127.0.0.1:5432, trust auth, user
postgres): each made for one test (or benchmark) and dropped afterwards, connections
and all."""

from __future__ import annotations

import atexit
import os
import queue
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import psycopg

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def throwaway_database(prefix: str = "tollgate_test") -> Iterator[str]:
    """The URL of a new, empty database, dropped on leaving.

    Its sessions commit without waiting for the disk (synchronous_commit off, set on the
    database itself, so every client of it, tollgate's included, has it): a commit waited
    ~1.4 ms for the WAL's flush on a quiet machine, many times that on a busy one, and a
    throwaway database need not outlive a crash of the server. The drop is a checkpoint
    (50-100 ms): it is left to a thread of this process (`_Dropper`), not waited for.
    Nor is the making (30-270 ms, most of it the server's writes): the next database of
    the prefix is made ahead on another (`_Maker`) while the test that took this one runs.
    """
    name = _maker().take(prefix)
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        _dropper().drop(name)


def _make(prefix: str) -> str:
    name = f"{prefix}_{secrets.token_hex(4)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        _admin(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    except BaseException:
        _admin(f'DROP DATABASE "{name}"')
        raise
    return name


# Each process's connections, by the process that opened them (a forked child opens its
# own and leaves its parent's alone: dropping that object would close the shared socket)
# and by use: one makes databases, the dropper's thread drops them, neither waits on the
# other.
_ADMIN: dict[tuple[int, str], psycopg.Connection[tuple[object, ...]]] = {}
_ADMIN_LOCKS = {"make": threading.Lock(), "drop": threading.Lock()}


def _admin(statement: str, use: str = "make") -> None:
    """`statement` on an administrative connection kept by this process for `use`: a
    connection is a server process started and warmed (~15 ms of CPU), and the suite
    makes and drops hundreds of databases. One the server has closed is opened again."""
    with _ADMIN_LOCKS[use]:
        key = (os.getpid(), use)
        for last in (False, True):
            admin = _ADMIN.get(key)
            if admin is None or admin.closed:
                admin = _ADMIN[key] = psycopg.connect(PG_ADMIN, autocommit=True)
                admin.execute("SET synchronous_commit = off")
            try:
                admin.execute(statement)
                return
            except psycopg.OperationalError:
                if last or not admin.closed:
                    raise


def wait_for_drops() -> None:
    """Drop the databases made ahead and not taken, and wait until every database this
    process asked to drop is dropped (the suite's end calls it; a process's exit waits
    too): raises naming any that could not be."""
    maker = _MAKERS.pop(os.getpid(), None)
    if maker is not None:
        maker.finish()
    dropper = _DROPPERS.get(os.getpid())
    if dropper is not None:
        dropper.finish()


def _maker() -> _Maker:
    """This process's maker (a forked child starts its own), started at its first take."""
    with _DROPPERS_LOCK:
        maker = _MAKERS.get(os.getpid())
        if maker is None:
            maker = _MAKERS[os.getpid()] = _Maker()
        return maker


class _Maker:
    """Makes the next database of each prefix asked for on a thread of its own, while the
    test holding the last one runs: a test's set-up then waits for none of the server's
    writes. What was made ahead and never taken is dropped at the end (wait_for_drops,
    or the process's exit)."""

    def __init__(self) -> None:
        self._ahead: dict[str, Future[str]] = {}
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="database-maker")
        atexit.register(self.finish)

    def take(self, prefix: str) -> str:
        with self._lock:
            ahead = self._ahead.pop(prefix, None)
        name = ahead.result() if ahead is not None else _make(prefix)
        with self._lock:
            if prefix not in self._ahead:
                self._ahead[prefix] = self._thread.submit(_make, prefix)
        return name

    def finish(self) -> None:
        with self._lock:
            ahead, self._ahead = list(self._ahead.values()), {}
        self._thread.shutdown()
        for future in ahead:
            if future.exception() is None:
                _admin(f'DROP DATABASE IF EXISTS "{future.result()}" WITH (FORCE)', "drop")


def _dropper() -> _Dropper:
    """This process's dropper (a forked child starts its own: threads do not survive a
    fork), started at its first drop."""
    with _DROPPERS_LOCK:
        dropper = _DROPPERS.get(os.getpid())
        if dropper is None or dropper.finished:
            dropper = _DROPPERS[os.getpid()] = _Dropper()
        return dropper


class _Dropper:
    """Drops this process's databases one after another on a thread of its own, and
    waits for the last as the process exits: nothing is left behind, and no test waits
    for a checkpoint. A drop that fails is reported then (a database left over is
    named), never silently."""

    def __init__(self) -> None:
        self._names: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._failed: list[str] = []
        self.finished = False
        self._thread = threading.Thread(target=self._run, name="database-dropper",
                                        daemon=True)
        self._thread.start()
        atexit.register(self.finish)

    def drop(self, name: str) -> None:
        self._names.put(name)

    def finish(self) -> None:
        """Wait for every drop asked for; name any that failed."""
        if self.finished:
            return
        self.finished = True
        self._names.put(None)
        self._thread.join()
        if self._failed:
            raise RuntimeError("throwaway databases not dropped: " + "; ".join(self._failed))

    def _run(self) -> None:
        while (name := self._names.get()) is not None:
            try:
                _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', "drop")
            except psycopg.Error as exc:
                self._failed.append(f"{name}: {exc}")


_DROPPERS: dict[int, _Dropper] = {}
_MAKERS: dict[int, _Maker] = {}
_DROPPERS_LOCK = threading.Lock()
