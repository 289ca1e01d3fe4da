"""Throwaway databases on this machine's PostgreSQL (127.0.0.1:5432, trust auth, user
postgres): each made for one test (or benchmark) and dropped afterwards, connections
and all."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def throwaway_database(prefix: str = "tollgate_test") -> Iterator[str]:
    """The URL of a new, empty database, dropped on leaving."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Each process's connection, by the process that opened it: a forked child opens its own
# and leaves its parent's alone (dropping that object would close the shared socket).
_ADMIN: dict[int, psycopg.Connection[tuple[object, ...]]] = {}
_ADMIN_LOCK = threading.Lock()


def _admin(statement: str) -> None:
    """`statement` on one administrative connection kept by this process: a connection
    is a server process started and warmed (~15 ms of CPU), and the suite makes and drops
    hundreds of databases. One the server has closed is opened again."""
    with _ADMIN_LOCK:
        for last in (False, True):
            admin = _ADMIN.get(os.getpid())
            if admin is None or admin.closed:
                admin = _ADMIN[os.getpid()] = psycopg.connect(PG_ADMIN, autocommit=True)
            try:
                admin.execute(statement)
                return
            except psycopg.OperationalError:
                if last or not admin.closed:
                    raise
