"""Shared helpers for the masking tests: one masker, and findings as substrings."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from extproc.masking import Masker, detectors
from extproc.masking.catalog import BY_NAME
from extproc.masking.detectors import Detector, Member, Runs, Text, scan

KEY = b"tollgate-test-hmac-key-0123456789"


class _CheckedVerdict:
    """A family's verdict on a text that, asked about a member it rules out, runs that
    member's finder all the same and fails if it finds anything."""

    def __init__(self, family: Callable[[Text], frozenset[str]], t: Text) -> None:
        self._names, self._t = family(t), t

    def __contains__(self, name: object) -> bool:
        if name in self._names:
            return True
        assert isinstance(name, str)
        missed = list(BY_NAME[name].find(self._t))
        assert not missed, f"{name}'s family refused {self._t.source!r}, where it finds {missed}"
        return False


def _refused(d: Detector, t: Text) -> bool:
    """False, once `d` is found to find nothing in `t`, which its gate refused."""
    missed = list(d.find(t))
    assert not missed, f"{d.name}'s gate refused {t.source!r}, where it finds {missed}"
    return False


def _checked_member(member: Member) -> Member:
    """A member of `scan`'s runs whose gate, read as `scan` reads it (the pass's ids, then
    its call), runs the finder where it refuses."""
    i, d, ids, more = member

    def gate(t: Text) -> bool:
        passes = ids is None or not ids.isdisjoint(t.hits) or (more is not None and more(t))
        return passes or _refused(d, t)

    return i, d, frozenset(), gate


@pytest.fixture(autouse=True)
def gates_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every masking test also proves the detectors' gates and families: where a gate or
    a family says a detector cannot find anything, the detector is run all the same and
    must find nothing."""
    runs_of = detectors.runs_of

    def checked_runs(chosen: tuple[Detector, ...]) -> Runs:
        return tuple((None if family is None else partial(_CheckedVerdict, family),
                      tuple(map(_checked_member, members))) for family, members in runs_of(chosen))

    def checked(d: Detector, t: Text) -> bool:
        return d.gate is None or d.gate(t) or _refused(d, t)

    monkeypatch.setattr(detectors, "runs_of", checked_runs)
    monkeypatch.setattr(detectors, "gate_passes", checked)


@pytest.fixture(scope="session")
def masker() -> Masker:
    return Masker(KEY)


def found(detector: str, text: str) -> list[str]:
    """What `detector` alone finds in `text`, as substrings."""
    raw = text.encode()
    return [raw[s:e].decode() for s, e, _ in scan(Text(raw), [BY_NAME[detector]])]
