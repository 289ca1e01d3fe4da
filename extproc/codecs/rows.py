"""A result's rows as the record keeps them, whatever the database's protocol."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# A result's rows as they travel: each value its column's bytes in the protocol's format,
# None for NULL.
Rows = list[list[bytes | None]]


def rows_sample(names: list[str], rows: Iterable[list[Any]], count: int, limit: int) -> bytes:
    """JSON `{"columns", "rows", "rows_left_out"}` within `limit` bytes: the first of the
    `count` rows (each a list of JSON values, as the record shows them) that fit."""
    kept: list[list[Any]] = []
    size = len(json.dumps(names)) + 64
    for shown in rows:
        cost = len(json.dumps(shown, ensure_ascii=False).encode()) + 2  # and its ", "
        if size + cost > limit:
            break
        kept.append(shown)
        size += cost
    return json.dumps({"columns": names, "rows": kept, "rows_left_out": count - len(kept)},
                      ensure_ascii=False).encode()
