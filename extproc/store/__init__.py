"""tollgate's state store: SQLite (one file, zero set-up) or PostgreSQL (several replicas).

One small synchronous connection type serves both backends, so the code above it (the
recording writer's thread, the `tollgate audit` commands) writes one SQL dialect: `?`
placeholders, standard SQL otherwise. Each component's tables come with numbered
migrations, applied when a connection opens (`schema.py`).

Layer: foundation (pyproject.toml's import contract): imports its own package and the layers
below it.
"""

from __future__ import annotations

from extproc.store.connection import Connection, connect
from extproc.store.errors import StoreError

__all__ = ["Connection", "StoreError", "connect"]
