"""Approvals for the approvals tests. The stores (`store_url`: a SQLite file and a real
PostgreSQL database of the test's own) are tests/conftest.py's. Tests drive the store from
their own event loop (`asyncio.run`), so stores are opened inside it (`opened`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from extproc.approvals.model import Approval
from extproc.approvals.store import ApprovalStore

REQUESTER = "svc-autogen"
IDENTITY = {"authenticated": True, "sub": REQUESTER, "iss": "https://issuer.test",
            "aud": ["tollgate"], "email": None, "groups": ["agents"], "jti": "j-1"}


@asynccontextmanager
async def opened(url: str, poll_seconds: float = 30.0, **options: Any,
                 ) -> AsyncIterator[ApprovalStore]:
    """An ApprovalStore on `url`, closed afterwards. Polling is slow by default (30 s), so
    a waiter that returns early was woken, not found by its own polling."""
    store = await ApprovalStore.open(url, poll_seconds, **options)
    try:
        yield store
    finally:
        await store.close()


async def create(store: ApprovalStore, **overrides: Any) -> Approval:
    """A pending approval as Holds.ask creates one (`overrides`: any of its fields)."""
    fields: dict[str, Any] = {
        "fingerprint": "f" * 64, "requester": REQUESTER, "identity": IDENTITY,
        "target": "orders", "summary": "DELETE FROM orders WHERE id = 7",
        "request": {"method": "POST", "path": "/sql", "query": {}, "body": {"sql": "..."}},
        "approvers": ("group:dba",), "rules": ("sql.delete_needs_approval",),
        "reasons": ("deletes in prod need a DBA",), "grant_mode": "once",
        "grant_minutes": None, "trace_id": "ab" * 16, "span_id": "cd" * 8,
        "held_by": "replica-a", "expire_seconds": 300, "max_pending": 1000,
    }
    return await store.create(**{**fields, **overrides})


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     timeout: float = 10.0) -> None:
    """Wait until `check` holds, with a deadline (fails the test naming `what`)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)
