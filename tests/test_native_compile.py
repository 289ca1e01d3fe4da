"""The masking modules' build (native/compile.py): its modules compiled side by side, each
said as it ends; put in place under no manifest until the last, one compile at a time,
and `--background` (make run's) returning at once. Its cache: a build kept under a key
of everything that shapes it is found again by that key, only whole and only where the
user alone may write it; `--keep` keeps this work tree's build, never a stale one."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from extproc.quickstart import stack

REPO = Path(__file__).resolve().parents[1]
# Where make puts Cython for the compile (the Makefile's COMPILE_TOOLS).
TOOLS = REPO / "build" / "compiled" / "tools"


def loaded(name: str, path: Path) -> ModuleType:
    """The module at `path`, importable by `name` (the pool pickles jobs and errors so)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def compile_script() -> ModuleType:
    return loaded("tollgate_native_compile", REPO / "native" / "compile.py")


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


# -- the compile ---------------------------------------------------------------------

def meeting(name: str) -> float:
    """A job that ends only once another has started beside it (run one at a time, the
    first waits in vain and fails)."""
    folder = Path(os.environ["TOLLGATE_TEST_MEETING"])
    (folder / name).touch()
    stack.wait_until(lambda: len(list(folder.iterdir())) >= 2, 60, "a job beside this one")
    return 0.0


def failing(name: str) -> float:
    if name == "b":
        raise sys.modules["tollgate_native_compile"].Failed(2, "b did not compile")
    return 0.0


PROGRESS = re.compile(r"native/compile\.py: compiled (\d+/\d+) masking modules \((\w+), \d+ s\)")


def progress(lines: list[str]) -> tuple[list[str], list[str]]:
    """What progress lines say: their counts in order, and the modules they name, sorted."""
    said = [PROGRESS.fullmatch(line) for line in lines]
    assert all(said), lines
    return [m[1] for m in said if m], sorted(m[2] for m in said if m)


def test_modules_compile_side_by_side_each_said_as_it_ends(
        native: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TOLLGATE_TEST_MEETING", str(tmp_path))
    native.compile_all(("a", "b", "c", "d"), meeting, 2)
    assert progress(capsys.readouterr().out.splitlines()) == (
        ["1/4", "2/4", "3/4", "4/4"], ["a", "b", "c", "d"])


def test_a_module_that_fails_ends_the_compile_with_its_status(native: ModuleType) -> None:
    with pytest.raises(native.Failed) as failed:
        native.compile_all(("a", "b"), failing, 2)
    assert (failed.value.status, failed.value.why) == (2, "b did not compile")


def test_a_build_goes_in_under_no_manifest_which_comes_back_last(
        native: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Meanwhile the package runs plain, never half of one build and half of another; a
    module loaded before (a gateway running) keeps its file; an older build's extra goes."""
    folder = tmp_path / "_compiled"
    folder.mkdir()
    manifest = folder / "manifest.json"
    manifest.write_text('{"key": "older"}')
    (folder / "gone.cpython-311-x86_64-linux-gnu.so").write_bytes(b"a module no longer built")
    paths = built(tmp_path, ("body", "masker"))
    (folder / paths[0].name).write_bytes(b"the body loaded before")
    copied, copy = [], shutil.copy2

    def copying(source: Path, target: Path) -> object:
        copied.append(manifest.exists())
        return copy(source, target)

    with (folder / paths[0].name).open("rb") as loaded:
        monkeypatch.setattr(native.shutil, "copy2", copying)
        native.install(manifest, paths, {"key": "newer"})
        monkeypatch.undo()
        assert loaded.read() == b"the body loaded before"
    assert copied == [False, False]
    assert json.loads(manifest.read_text()) == {"key": "newer"}
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [manifest.name, *(p.name for p in paths)])
    assert [(folder / p.name).read_bytes() for p in paths] == [p.read_bytes() for p in paths]


def tiny_tree(tmp_path: Path) -> Path:
    """A checkout whose compiled modules are two small ones of its own: seconds to build."""
    tree = tmp_path / "tree"
    masking = tree / "extproc" / "masking"
    masking.mkdir(parents=True)
    shutil.copy2(REPO / "extproc" / "masking" / "compiled.py", masking)
    shutil.copy2(REPO / "extproc" / "__init__.py", tree / "extproc")
    shutil.copytree(REPO / "extproc" / "codecs", tree / "extproc" / "codecs",
                    ignore=shutil.ignore_patterns("__pycache__"))  # the cache's folder
    (tree / "native").mkdir()
    shutil.copy2(REPO / "native" / "compile.py", tree / "native")
    for name in ("tiny_a", "tiny_b"):
        (masking / f"{name}.py").write_text("def twice(x):\n    return 2 * x\n")
    text = (masking / "compiled.py").read_text()
    tiny = re.sub(r"\nMODULES = \(.*?\)\n", '\nMODULES = ("tiny_a", "tiny_b")\n', text,
                  count=1, flags=re.DOTALL)
    assert tiny != text
    (masking / "compiled.py").write_text(tiny)
    return tree


def tree_compiled(tree: Path) -> ModuleType:
    """The tree's masking/compiled.py, which judges its build."""
    return loaded("tollgate_tree_compiled", tree / "extproc" / "masking" / "compiled.py")


@pytest.mark.slow
def test_one_compile_at_a_time_and_make_run_s_returns_at_once(tmp_path: Path) -> None:
    """Under way, a second compile waits and `--background` says so and returns; alone,
    `--background` starts it in a session of its own, says so in one line and returns before
    it ends; once the build is current, it does nothing."""
    tree = tiny_tree(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(TOOLS), "TOLLGATE_CACHE": str(tmp_path / "cache")}
    log = tree / "build" / "compiled" / "compile.log"

    def compile_py(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "native/compile.py", *args], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=300, check=False)

    log.parent.mkdir(parents=True)
    waited = tmp_path / "waited.txt"
    with (log.parent / "lock").open("a") as lock, waited.open("w") as out:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a compile under way
        said = compile_py("--background", str(log))
        assert (said.returncode, said.stdout) == (0, (
            "native/compile.py: masking runs on its plain form while its compiled form "
            "builds (another compile is under way); the start after it ends uses it\n"))
        waiting = subprocess.Popen([sys.executable, "native/compile.py"], cwd=tree, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, text=True)
        stack.wait_until(lambda: "waiting for the compile under way" in waited.read_text(),
                         60, "the second compile to wait")
        assert not log.exists() and waiting.poll() is None
    assert waiting.wait(300) == 0, waited.read_text()
    cores = len(os.sched_getaffinity(0))
    lines = waited.read_text().splitlines()
    assert lines[1] == f"native/compile.py: compiling 2 masking modules, {cores} at a time"
    assert progress(lines[2:4]) == (["1/2", "2/2"], ["tiny_a", "tiny_b"])
    assert re.fullmatch(r"native/compile\.py: 2 masking modules compiled into "
                        r"extproc/masking/_compiled in \d+ s", lines[4]), lines
    compiled = tree_compiled(tree)
    assert compiled.built() is not None

    (tree / "extproc" / "masking" / "tiny_b.py").write_text("def twice(x):\n    return x + x\n")
    assert compiled.built() is None  # stale
    started = compile_py("--background", str(log))
    assert (started.returncode, started.stdout) == (0, (
        f"native/compile.py: masking runs on its plain form while its compiled form builds "
        f"(2 modules, {cores} at a time; log: build/compiled/compile.log); the next start "
        f"uses it\n")), started.stderr
    assert "compiled into" not in log.read_text()  # returned while it compiles
    stack.wait_until(lambda: "compiled into" in log.read_text(), 300, "the compile")
    assert compiled.built() is not None
    assert compile_py("--background", str(log)).stdout == ""
    assert log.read_text().count("compiled into") == 1  # nothing started again
