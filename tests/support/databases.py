"""Throwaway databases on this machine's PostgreSQL (127.0.0.1:5432, trust auth, user
postgres): each made for one test (or benchmark) and dropped afterwards, connections
and all."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def throwaway_database(prefix: str = "tollgate_test") -> Iterator[str]:
    """The URL of a new, empty database, dropped on leaving."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
