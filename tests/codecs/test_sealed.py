"""Sealed bytes (extproc/codecs/sealed.py): what one key seals, only that key opens, under
the same bound, whole."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.codecs.sealed import OVERHEAD, Sealer

KEY = b"k" * 32


@given(st.binary(max_size=4096), st.binary(max_size=32))
def test_what_is_sealed_opens_as_it_was_and_hides_it(data: bytes, bound: bytes) -> None:
    sealer = Sealer(KEY)
    sealed = sealer.seal(data, bound)
    assert len(sealed) == len(data) + OVERHEAD
    assert sealer.open(sealed, bound) == data
    if len(data) >= 8:
        assert data not in sealed


def test_each_seal_draws_its_own_nonce() -> None:
    sealer = Sealer(KEY)
    assert sealer.seal(b"same") != sealer.seal(b"same")


@pytest.mark.parametrize("change", ["another key", "another bound", "a byte flipped",
                                    "cut short", "empty"])
def test_anything_but_what_was_sealed_opens_to_none(change: str) -> None:
    sealed = Sealer(KEY).seal(b"the evidence", b"frame 7")
    sealer, bound = Sealer(KEY), b"frame 7"
    if change == "another key":
        sealer = Sealer(b"o" * 32)
    elif change == "another bound":
        bound = b"frame 8"
    elif change == "a byte flipped":
        sealed = sealed[:15] + bytes([sealed[15] ^ 1]) + sealed[16:]
    elif change == "cut short":
        sealed = sealed[:-1]
    else:
        sealed = b""
    assert sealer.open(sealed, bound) is None


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Sealer(b"short")
