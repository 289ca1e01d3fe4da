"""Shared helpers for the masking tests: one masker, and findings as substrings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from extproc.masking import Masker, detectors
from extproc.masking.catalog import BY_NAME
from extproc.masking.detectors import Detector, Text, scan

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


@pytest.fixture(autouse=True)
def gates_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every masking test also proves the detectors' gates and families: where a gate or
    a family says a detector cannot find anything, the detector is run all the same and
    must find nothing."""

    def checked(d: Detector, t: Text) -> bool:
        if d.gate is None or d.gate(t):
            return True
        missed = list(d.find(t))
        assert not missed, f"{d.name}'s gate refused {t.source!r}, where it finds {missed}"
        return False

    monkeypatch.setattr(detectors, "gate_passes", checked)
    monkeypatch.setattr(detectors, "admitted", _CheckedVerdict)


@pytest.fixture(scope="session")
def masker() -> Masker:
    return Masker(KEY)


def found(detector: str, text: str) -> list[str]:
    """What `detector` alone finds in `text`, as substrings."""
    raw = text.encode()
    return [raw[s:e].decode() for s, e, _ in scan(Text(raw), [BY_NAME[detector]])]
