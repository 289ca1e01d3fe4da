"""store/retry.py: a blip is ridden out, an outage is answered at once, a probe finds
the store back."""

from __future__ import annotations

import asyncio

import pytest

from extproc.store import StoreError
from extproc.store.retry import Retrying


class _Store:
    """A read that fails its first `failures` times (StoreError, or TimeoutError)."""

    def __init__(self, failures: int, error: type[Exception] = StoreError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def read(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("down")
        return "rows"


@pytest.mark.parametrize("error", [StoreError, TimeoutError])
def test_a_blip_is_ridden_out(error: type[Exception]) -> None:
    store, retrying = _Store(3, error), Retrying(budget=5.0, first_delay=0.001)
    assert asyncio.run(retrying(store.read)) == "rows"
    assert store.calls == 4 and not retrying.out


def test_an_outage_spends_the_budget_once_then_fails_at_once_until_a_probe() -> None:
    store = _Store(10**6)
    retrying = Retrying(budget=0.02, probe_seconds=60.0, first_delay=0.001)
    with pytest.raises(StoreError):
        asyncio.run(retrying(store.read))
    assert retrying.out and store.calls > 1
    tried = store.calls
    with pytest.raises(StoreError, match="has not answered"):
        asyncio.run(retrying(store.read))
    assert store.calls == tried  # not asked again before the probe is due


def test_a_probe_tries_once_and_finds_the_store_back() -> None:
    store = _Store(10**6)
    retrying = Retrying(budget=0.02, probe_seconds=0.0, first_delay=0.001)
    with pytest.raises(StoreError):
        asyncio.run(retrying(store.read))
    tried = store.calls
    with pytest.raises(StoreError):
        asyncio.run(retrying(store.read))
    assert store.calls == tried + 1  # one try, no budget spent again
    store.failures = 0
    assert asyncio.run(retrying(store.read)) == "rows"
    assert not retrying.out
