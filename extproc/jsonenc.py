"""JSON encoding for the request path: orjson (~20x faster than json), exact when it cannot.

orjson refuses integers beyond 64 bits, which a client's JSON body may hold;
those values fall back to the standard library, so nothing is ever rounded.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> str:
    """Compact JSON text of `value`."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # ASCII escapes: whatever orjson refused reaches the engine as valid JSON text.
        return json.dumps(value, separators=(",", ":"))
