"""The user's cache (codecs/user_cache.py): where entries go, written whole, and read only
where the folder and the file are the user's own and writable by no one else."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.codecs import user_cache


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOLLGATE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_an_entry_written_is_read_back_from_the_kind_s_folder(cache: Path) -> None:
    assert user_cache.read("kind", "k1") is None
    user_cache.write("kind", "k1", b"value")
    assert user_cache.read("kind", "k1") == b"value"
    assert (cache / "kind" / "k1").stat().st_mode & 0o777 == 0o600
    assert (cache / "kind").stat().st_mode & 0o777 == 0o700
    assert [p.name for p in (cache / "kind").iterdir()] == ["k1"]  # nothing half written left


def test_without_tollgate_cache_it_is_the_xdg_cache_then_the_home_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOLLGATE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache.folder("kind") == tmp_path / "xdg" / "tollgate" / "kind"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache.folder("kind") == tmp_path / "home" / ".cache" / "tollgate" / "kind"


@pytest.mark.parametrize("loosened", ["file", "folder"])
def test_an_entry_others_may_write_is_not_read(cache: Path, loosened: str) -> None:
    user_cache.write("kind", "k1", b"value")
    path = cache / "kind" / "k1" if loosened == "file" else cache / "kind"
    path.chmod(path.stat().st_mode | 0o020)  # group-writable: another account could choose it
    assert user_cache.read("kind", "k1") is None


def test_a_cache_that_cannot_be_written_costs_nothing_but_the_entry(cache: Path) -> None:
    cache.write_text("a file where the folder would be")
    user_cache.write("kind", "k1", b"value")  # no error
    assert user_cache.read("kind", "k1") is None
