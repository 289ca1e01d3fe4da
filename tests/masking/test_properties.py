"""Properties: a detectable secret placed anywhere, in text or JSON, cut anywhere, never survives.

Each secret stands on its own line, so the random text around it cannot make it part
of something longer (which, by design, is then not that secret).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.masking import Masker, MaskSpec
from tests.masking.conftest import KEY

MASKER = Masker(KEY)
SPEC = MaskSpec()
SECRETS = [
    "4111 1111 1111 1111", "5500-0000-0000-0004", "123-45-6789",
    "DE89 3704 0044 0532 0130 00", "jo.doe@example.com", "AKIAIOSFODNN7EXAMPLE",
    "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "xoxb-1234567890-0987654321-AbCdEf",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV",
    "-----BEGIN PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5\n"
    "-----END PRIVATE KEY-----",
]
PASSWORD = "Tr0ub4dor&3xyz"
SETTINGS = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

filler = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
secret = st.sampled_from([*SECRETS, f"postgres://app:{PASSWORD}@db.example.com/x"])


def planted(before: str, value: str, after: str) -> str:
    return f"{before}\n{value}\n{after}"


def visible(value: str) -> str:
    """What must not be seen of a planted value: for a connection string, its password."""
    return PASSWORD if value.startswith("postgres://") else value


@SETTINGS
@given(before=filler, value=secret, after=filler, cuts=st.lists(st.integers(0, 400), max_size=6))
def test_text_cut_anywhere(before: str, value: str, after: str, cuts: list[int]) -> None:
    text = planted(before, value, after)
    expected, _ = MASKER.mask_text(text, SPEC)
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    stream = MASKER.stream(SPEC)
    out = "".join(stream.feed(text[a:b]) for a, b in itertools.pairwise(bounds))
    out += stream.finish()
    assert visible(value) not in expected
    assert out == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | filler,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(filler, inner, max_size=4),
    max_leaves=12,
)


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


@SETTINGS
@given(doc=json_values, value=secret, before=filler, after=filler, where=st.integers(0, 10**6))
def test_json_anywhere(doc: Any, value: str, before: str, after: str, where: int) -> None:
    holder = [doc]
    containers = _containers(holder)
    target = containers[where % len(containers)]
    text = planted(before, value, after)
    if isinstance(target, dict):
        target[f"k{where}"] = text
    else:
        target.insert(where % (len(target) + 1), text)
    masked, _ = MASKER.mask_json(holder[0], SPEC)
    assert not any(visible(value) in s for s in strings(masked))
    assert json.loads(json.dumps(masked)) == masked


def _containers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *(c for v in value.values() for c in _containers(v))]
    if isinstance(value, list):
        return [value, *(c for v in value for c in _containers(v))]
    return []
