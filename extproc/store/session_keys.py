"""The ids protocol fronts give their clients' sessions, shared by every process in the store.

A client may name its session from another connection: psql's Ctrl+C sends a
CancelRequest with the key its session got at login, the mariadb client's sends
`KILL QUERY <id>` with the connection id its handshake announced. Envoy may hand that
connection to any worker of any replica, so each id is registered here (the record's
store, which replicas share) with the address of the front holding the session, a
secret, and once someone logged in, its target and subject: the front that gets an id it
does not hold looks it up and hands the request to that address. Ids are never 0, below
2^31 (clients read them signed or not), and unique per front among the sessions of every
process: the one a front asks for where it is free (PostgreSQL's backend pid, so that
the pid a client holds is the one pg_terminate_backend, NOTIFY and pg_stat_activity
name), else random. The secret is always the front's own: what the database would take
to cancel a statement never leaves the front holding it.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

from extproc.store.aio import AsyncStore
from extproc.store.errors import StoreError

log = logging.getLogger("tollgate.store")

_TRIES = 8


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a session, as the store says: the front's address (host:port), the
    session's secret, and its target and subject (None until someone logged in)."""

    address: str
    secret: bytes
    target: str | None
    subject: str | None


class SessionKeys:
    """One front's ids (`front`: "postgres", "mysql"), in the store."""

    def __init__(self, store: AsyncStore, front: str) -> None:
        self._store, self._front = store, front
        # When this process started: ids an earlier process left at one of its addresses
        # (it ended without forgetting them) are dropped.
        self._started_us = time.time_ns() // 1000
        # The addresses clients reached this front at, registered with its ids.
        self._addresses: set[str] = set()
        # The ids given out here and not yet forgotten, registered or not.
        self._live: set[int] = set()

    def here(self, address: str) -> bool:
        """Whether `address` is this process's (an id the store says is held here, but
        is not, is a session that ended)."""
        return address in self._addresses

    async def new(self, address: str, secret_bytes: int,
                  wanted: int | None = None) -> tuple[int, bytes]:
        """An id no other session holds (`wanted`, where it is free and a valid id) and
        its secret, registered for the front at `address`. A store that cannot take it
        leaves an id unique in this process only, unregistered: the session is found
        from connections reaching this process alone (a warning), and has its
        statements all the same."""
        secret = secrets.token_bytes(secret_bytes)
        try:
            if address not in self._addresses:
                await self._store.execute(
                    "DELETE FROM session_keys WHERE front = ? AND address = ? "
                    "AND created_us < ?", (self._front, address, self._started_us))
                self._addresses.add(address)
            key = await self._registered(address, secret, wanted)
        except StoreError as exc:
            log.warning("%s session id not shared (%s): a request naming it that reaches "
                        "another worker or replica will not find the session", self._front,
                        exc)
            key = self._unregistered(wanted)
        self._live.add(key)
        return key, secret

    async def _registered(self, address: str, secret: bytes, wanted: int | None) -> int:
        for attempt in range(_TRIES + 1):
            key = wanted if attempt == 0 and _valid(wanted) else _random()
            if key is None or key in self._live:
                continue
            if await self._store.execute(
                    "INSERT INTO session_keys (front, id, secret, address, created_us) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (front, id) DO NOTHING RETURNING id",
                    (self._front, key, secret.hex(), address, time.time_ns() // 1000)):
                return key
        raise StoreError(f"no free id after {_TRIES} tries")

    def _unregistered(self, wanted: int | None) -> int:
        if wanted is not None and _valid(wanted) and wanted not in self._live:
            return wanted
        while True:
            key = _random()
            if key not in self._live:
                return key

    async def bind(self, key: int, target: str | None, subject: str) -> str | None:
        """Whose session `key` is now (at login, and again when it changes user): None,
        or why the store could not say so (it keeps the last binding). Never raises: a
        front goes on with its session, unshared."""
        try:
            await self._store.execute(
                "UPDATE session_keys SET target = ?, subject = ? WHERE front = ? AND id = ?",
                (target, subject, self._front, key))
        except StoreError as exc:
            return str(exc)
        return None

    async def holder(self, key: int) -> Holder | None:
        """Who holds the session `key` names (None: no such session, or a store that
        cannot answer, logged: a front then holds what it holds itself, no more)."""
        try:
            found = await self._store.execute(
                "SELECT address, secret, target, subject FROM session_keys "
                "WHERE front = ? AND id = ?", (self._front, key))
        except StoreError as exc:
            log.warning("%s session id %d looked for in vain: %s", self._front, key, exc)
            return None
        if not found:
            return None
        address, secret, target, subject = found[0]
        return Holder(str(address), bytes.fromhex(secret), target, subject)

    async def forget(self, key: int) -> None:
        """The session ended; never raises (a row the store keeps is dropped when this
        front's address is next registered by a later process, and names no session)."""
        self._live.discard(key)
        try:
            await self._store.execute("DELETE FROM session_keys WHERE front = ? AND id = ?",
                                      (self._front, key))
        except StoreError as exc:
            log.debug("%s session id %d not forgotten in the store: %s", self._front, key,
                      exc)


def _valid(key: int | None) -> bool:
    return key is not None and 0 < key < 2**31


def _random() -> int:
    return secrets.randbelow(2**31 - 1) + 1
