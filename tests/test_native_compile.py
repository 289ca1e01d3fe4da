"""The masking modules' build cache (native/compile.py): a build kept under a key of
everything that shapes it is found again by that key, only whole and only where the
user alone may write it; `--keep` keeps this work tree's build, never a stale one."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def compile_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tollgate_native_compile",
                                                  REPO / "native" / "compile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def native(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("TOLLGATE_CACHE", str(tmp_path / "cache"))
    return compile_script()


def built(tmp_path: Path, names: tuple[str, ...]) -> list[Path]:
    (tmp_path / "built").mkdir()
    paths = [tmp_path / "built" / f"{name}.cpython-311-x86_64-linux-gnu.so" for name in names]
    for path in paths:
        path.write_bytes(b"\x7fELF " + path.name.encode())
    return paths


def test_a_kept_build_is_found_by_its_key_and_no_other(native: ModuleType,
                                                      tmp_path: Path) -> None:
    names = ("body", "masker")
    key = native.cache_key({"body": "1", "masker": "2"}, "3.3.1")
    assert native.from_cache(key, names) is None
    native.keep(key, built(tmp_path, names))
    found = native.from_cache(key, names)
    assert found is not None and [p.read_bytes() for p in found] == [
        p.read_bytes() for p in sorted((tmp_path / "built").iterdir())]
    # Another source, another Cython: another key.
    assert native.cache_key({"body": "1", "masker": "3"}, "3.3.1") != key
    assert native.cache_key({"body": "1", "masker": "2"}, "3.3.2") != key
    assert native.from_cache(key, (*names, "rows")) is None  # a module missing: not whole


@pytest.mark.parametrize("loosened", ["cache", "build", "module"])
def test_a_build_others_may_write_is_not_taken(native: ModuleType, tmp_path: Path,
                                                loosened: str) -> None:
    names = ("body",)
    key = native.cache_key({"body": "1"}, "3.3.1")
    native.keep(key, built(tmp_path, names))
    folder = native.cache_folder()
    path = {"cache": folder, "build": folder / key,
            "module": next((folder / key).iterdir())}[loosened]
    path.chmod(path.stat().st_mode | 0o002)
    assert native.from_cache(key, names) is None


def test_the_oldest_builds_go_beyond_the_few_kept(native: ModuleType, tmp_path: Path) -> None:
    paths = built(tmp_path, ("body",))
    keys = [native.cache_key({"body": str(n)}, "3.3.1") for n in range(native.CACHE_KEPT + 2)]
    for n, key in enumerate(keys):
        native.keep(key, paths)
        os.utime(native.cache_folder() / key, (n, n))
    assert sorted(p.name for p in native.cache_folder().iterdir()) == sorted(
        keys[-native.CACHE_KEPT:])


def test_keep_keeps_this_work_tree_s_build(tmp_path: Path) -> None:
    """`make test` built the compiled form from the current sources: --keep keeps it,
    under the key a compile of these sources looks for."""
    done = subprocess.run([sys.executable, "native/compile.py", "--keep"], cwd=REPO,
                          env={**os.environ, "TOLLGATE_CACHE": str(tmp_path)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    (key,) = [p.name for p in (tmp_path / "compiled").iterdir()]
    native = compile_script()
    compiled = native._compiled_module()
    manifest = json.loads(compiled.MANIFEST.read_text())
    assert key == native.cache_key(compiled.source_digests(), manifest["cython"])


def test_keep_refuses_a_build_of_other_sources(tmp_path: Path) -> None:
    """A copy of the tree whose build's manifest names another source: nothing kept."""
    masking = tmp_path / "tree" / "extproc" / "masking"
    shutil.copytree(REPO / "extproc" / "masking", masking,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "tree" / "native").mkdir()
    shutil.copy(REPO / "native" / "compile.py", tmp_path / "tree" / "native")
    manifest = json.loads((masking / "_compiled" / "manifest.json").read_text())
    manifest["modules"]["body"] = "0" * 64
    (masking / "_compiled" / "manifest.json").write_text(json.dumps(manifest))
    done = subprocess.run([sys.executable, "native/compile.py", "--keep"],
                          cwd=tmp_path / "tree", capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TOLLGATE_CACHE": str(tmp_path / "cache")},
                          check=False)
    assert done.returncode == 1
    assert "not those of the current sources" in done.stderr
    assert not (tmp_path / "cache").exists()
