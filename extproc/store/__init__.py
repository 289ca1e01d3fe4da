"""tollgate's state store: SQLite (one file, zero set-up) or PostgreSQL (several replicas).

One small synchronous connection type serves both backends, so the code above it (the
recording writer's thread, the `tollgate audit` commands) writes one SQL dialect: `?`
placeholders, standard SQL otherwise. Each component's tables come with numbered
migrations, applied when a connection opens (`schema.py`).
"""

from __future__ import annotations

from extproc.store.connection import Connection, StoreError, connect

__all__ = ["Connection", "StoreError", "connect"]
