"""One identity's share of the record's queue: it is refused alone, others still pass, and
its places free as its records are written (a real SQLite store and writer thread)."""

from __future__ import annotations

import asyncio
import timeit

import pytest

from extproc.recording import Recorder, RecordingQuota, RecordingUnavailable
from extproc.recording.chain import Signer
from tests.recording.conftest import MASKER, evidence, settings, wait_until
from tests.recording.test_writer import count


async def test_an_identity_beyond_its_share_is_refused_while_others_pass(
    sqlite_url: str, signer: Signer,
) -> None:
    recorder = Recorder(sqlite_url, settings(queue_size=8, identity_share=0.25), signer,
                        MASKER)
    recorder.start()
    recorder.admit("flooder")
    recorder.admit("flooder")  # in flight: its share (2 of 8) is taken
    with pytest.raises(RecordingQuota, match=r"flooder has 2 records waiting .* \(2 of 8\)"):
        recorder.admit("flooder")
    for n in range(2):  # another identity, and requests counted in no share, pass
        recorder.admit("other")
        recorder.submit(evidence(n, sub="other"), "other")
    recorder.admit()
    recorder.submit(evidence(2))
    recorder.submit(evidence(3, sub="flooder"), "flooder")
    await asyncio.to_thread(wait_until, lambda: recorder.written == 4, "four written")
    recorder.admit("flooder")  # a place of its share is free again
    recorder.submit(evidence(4, sub="flooder"), "flooder")
    recorder.submit(evidence(5, sub="flooder"), "flooder")
    await recorder.close()
    assert recorder.refused == 1
    assert count(sqlite_url) == 6


def test_a_full_queue_is_still_refused_as_unavailable(sqlite_url: str, signer: Signer) -> None:
    """The whole queue full is everyone's refusal (503), not one identity's (429)."""
    recorder = Recorder(sqlite_url, settings(queue_size=2, identity_share=1.0), signer, MASKER)
    recorder.admit("a")
    recorder.admit("b")
    with pytest.raises(RecordingUnavailable, match="queue is full") as refused:
        recorder.admit("c")
    assert not isinstance(refused.value, RecordingQuota)


@pytest.mark.timing
def test_the_bookkeeping_costs_about_a_microsecond(sqlite_url: str, signer: Signer) -> None:
    """admit with an identity: a lock, two counters (~0.5 µs measured; the bound leaves
    room for a loaded host)."""
    recorder = Recorder(sqlite_url, settings(queue_size=10**9), signer, MASKER)
    names = [f"agent-{n}" for n in range(1000)]

    def admit_all() -> None:
        for name in names:
            recorder.admit(name)

    per_admit = min(timeit.repeat(admit_all, number=10, repeat=3)) / (10 * len(names))
    assert per_admit < 5e-6, f"{per_admit * 1e6:.2f} µs per admit"
