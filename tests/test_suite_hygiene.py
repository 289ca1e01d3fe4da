"""The suite's own guard: a run that leaves a device other than it found it fails
(tests/conftest.py checks at the session's start and end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import conftest


def test_the_machines_devices_are_character_devices() -> None:
    assert conftest.broken_devices() == []


def test_a_regular_file_where_a_device_should_be_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    impostor = tmp_path / "null"
    impostor.write_bytes(b"")
    monkeypatch.setattr(conftest, "DEVICES", ("/dev/null", str(impostor)))
    assert conftest.broken_devices() == [str(impostor)]
