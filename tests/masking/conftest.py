"""Shared helpers for the masking tests: one masker, and findings as substrings."""

from __future__ import annotations

import pytest

from extproc.masking import Masker
from extproc.masking.detectors import BY_NAME, Text, scan

KEY = b"tollgate-test-hmac-key-0123456789"


@pytest.fixture(scope="session")
def masker() -> Masker:
    return Masker(KEY)


def found(detector: str, text: str) -> list[str]:
    """What `detector` alone finds in `text`, as substrings."""
    raw = text.encode()
    return [raw[s:e].decode() for s, e, _ in scan(Text(raw), [BY_NAME[detector]])]
