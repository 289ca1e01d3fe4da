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


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
