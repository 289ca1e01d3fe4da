"""The cancel keys every PostgreSQL front process shares, in the store.

Ctrl+C in psql opens a connection of its own and sends a CancelRequest with the key the
session got at login. Envoy may hand that connection to any worker of any replica, so
the key is registered in the store (the record's, which replicas share) with the
address of the front holding the session; the front that receives a key it does not
hold looks it up and hands the request on. The database's own key never leaves the
front that holds the session.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time

from extproc.store import StoreError
from extproc.store.aio import AsyncStore

log = logging.getLogger("tollgate.postgres")


class CancelKeys:
    def __init__(self, store: AsyncStore) -> None:
        self._store = store

    async def new(self, address: str) -> tuple[int, bytes]:
        """A key no other session holds, registered for the front at `address`. The
        process id is random (a cancel names nothing else), never 0."""
        secret = secrets.token_bytes(4)
        for _ in range(8):
            process_id = secrets.randbelow(2**31 - 1) + 1
            taken = not await self._store.execute(
                "INSERT INTO postgres_cancel_keys (process_id, secret, address, created_us) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (process_id) DO NOTHING RETURNING process_id",
                (process_id, secret.hex(), address, time.time_ns() // 1000))
            if not taken:
                return process_id, secret
        raise StoreError("no free cancel key after 8 tries")

    async def holder(self, process_id: int, secret: bytes) -> str | None:
        """The address of the front holding the session the key names (None: no such
        session, or the secret is wrong)."""
        found = await self._store.execute(
            "SELECT secret, address FROM postgres_cancel_keys WHERE process_id = ?",
            (process_id,))
        if not found or not hmac.compare_digest(bytes.fromhex(found[0][0]), secret):
            return None
        return str(found[0][1])

    async def drop_older(self, address: str, before_us: int) -> None:
        """Keys an earlier process at `address` left behind (it ended without forgetting
        them): their sessions ended with it."""
        await self._store.execute(
            "DELETE FROM postgres_cancel_keys WHERE address = ? AND created_us < ?",
            (address, before_us))

    async def forget(self, process_id: int) -> None:
        await self._store.execute("DELETE FROM postgres_cancel_keys WHERE process_id = ?",
                                  (process_id,))
