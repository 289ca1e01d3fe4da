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


# This process's connection, once opened, and the process it was opened in (a forked
# child opens its own rather than share the socket).
_ADMIN: list[psycopg.Connection[tuple[object, ...]]] = []
_ADMIN_PID = [0]
_ADMIN_LOCK = threading.Lock()


def _admin(statement: str) -> None:
    """`statement` on one administrative connection kept by this process: a connection
    is a server process started and warmed (~15 ms of CPU), and the suite makes and drops
    hundreds of databases. One the server has closed is opened again."""
    with _ADMIN_LOCK:
        if _ADMIN and (_ADMIN[0].closed or _ADMIN_PID[0] != os.getpid()):
            _ADMIN.clear()
        if not _ADMIN:
            _ADMIN.append(psycopg.connect(PG_ADMIN, autocommit=True))
            _ADMIN_PID[0] = os.getpid()
        try:
            _ADMIN[0].execute(statement)
        except psycopg.OperationalError:
            if not _ADMIN[0].closed:
                raise
            _ADMIN[:] = [psycopg.connect(PG_ADMIN, autocommit=True)]
            _ADMIN[0].execute(statement)
