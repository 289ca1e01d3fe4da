"""Compile the masking modules with Cython: `make` runs this (`python native/compile.py`).

Each module of `extproc.masking.compiled.MODULES` is compiled from its unchanged source
(no annotations added: the source stays plain Python that runs either way) into
`extproc/masking/_compiled/`, and the manifest beside them names each source's SHA-256
and the Python they were built for; the package runs them only while both still hold
(compiled.py). Cython's C and the objects stay in build/compiled, so that a later run
compiles only the modules whose source changed.

A build is also kept in the user's cache (`$TOLLGATE_CACHE/compiled`, else
`${XDG_CACHE_HOME:-~/.cache}/tollgate/compiled`), under a key made of everything that
shapes it: the sources' digests, this script, Cython's version, the Python and the
machine. A second checkout of the same sources (a clean clone, `make clean`, the suite's
newcomer tour) then takes its modules from there in a second instead of compiling 27 MB
of C for minutes. A cached folder is used only when it holds every module and is the
user's own, written by no one else.

Where Cython or a C compiler is missing, this says so and exits 2, leaving the plain
form to run; `make run` goes on without it, `make test` and CI fail.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import shutil
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "compiled"
# Builds kept in the cache: the newest few (a build is ~10 MB).
CACHE_KEPT = 4
# No debug symbols (a tenth the size), and no warnings: they are about Cython's C. -O1,
# not the -O3 Python was built with: gcc's time on Cython's C is mostly in the passes
# -O2 adds, and the generated code spends its time in CPython's API, which they do not
# speed up. On 2026-11-29's two cores: 97 s of CPU (53 s) at -O1, 163 s (87 s) at -O2;
# a megabyte of JSON masked in 184-236 ms at -O1, 199-239 ms at -O2, a 2 KB text in
# 269-403 us and 253-415 us (interleaved runs); -O0 compiled in 44 s but masked a third
# slower (241-286 ms, 524-670 us).
C_FLAGS = ["-g0", "-w", "-O1"]

# The user's cache, as tollgate keeps it (this runs before the package is installed).
sys.path.insert(0, str(ROOT))
from extproc.codecs import user_cache  # noqa: E402


def _compiled_module() -> ModuleType:
    """masking/compiled.py read alone: importing its package would run the form chosen."""
    spec = importlib.util.spec_from_file_location(
        "tollgate_masking_compiled", ROOT / "extproc" / "masking" / "compiled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cache_folder() -> Path:
    """Where builds are kept across checkouts (codecs/user_cache.py's folder for them)."""
    return user_cache.folder("compiled")


def cache_key(digests: dict[str, str], cython_version: str) -> str:
    """Everything a build depends on, hashed: the same key, the same modules."""
    shaping = {"modules": digests, "cython": cython_version, "flags": C_FLAGS,
               "python": sys.implementation.cache_tag, "abi": sys.abiflags,
               "machine": platform.machine(), "libc": platform.libc_ver(),
               "script": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:32]


def from_cache(key: str, names: tuple[str, ...]) -> list[Path] | None:
    """The cached build of `key`, when it holds a module for every name; else None."""
    folder = cache_folder() / key
    # Only the user's own, writable by no one else: a cache another account could write
    # would let it choose the code masking runs.
    if not (user_cache.owned(folder.parent) and user_cache.owned(folder)):
        return None
    found = [next(iter(sorted(folder.glob(f"{name}.*.so"))), None) for name in names]
    if any(path is None or not user_cache.owned(path) for path in found):
        return None
    return [path for path in found if path is not None]


def keep(key: str, built: list[Path]) -> None:
    """Best effort: a build the cache cannot take only costs the next checkout its
    compile. Written beside, then renamed into place whole; the oldest builds go."""
    root = cache_folder()
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (root / key).exists():
            return
        partial = root / f".{key}.{os.getpid()}"
        partial.mkdir(mode=0o700)
        for path in built:
            shutil.copy2(path, partial / path.name)
        partial.rename(root / key)
        builds = sorted((p for p in root.iterdir() if not p.name.startswith(".")),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        for old in builds[CACHE_KEPT:]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        print(f"native/compile.py: the build was not kept in {root}: {exc}", file=sys.stderr)


def install(compiled: ModuleType, built: list[Path], digests: dict[str, str],
            cython_version: str) -> None:
    """The modules into the package's _compiled/, with the manifest that lets them run."""
    shutil.rmtree(compiled.FOLDER, ignore_errors=True)
    compiled.FOLDER.mkdir()
    for path in built:
        shutil.copy2(path, compiled.FOLDER / path.name)
    compiled.MANIFEST.write_text(json.dumps({
        "python": sys.implementation.cache_tag, "cython": cython_version,
        "modules": digests}, indent=1) + "\n")


def keep_installed() -> int:
    """`--keep`: the build this checkout runs, kept in the cache as a compile keeps its
    own (a second checkout on this machine then takes it: the suite's newcomer tour);
    nothing is compiled. Refused where that build is not of the current sources."""
    compiled = _compiled_module()
    digests = compiled.source_digests()
    try:
        manifest = json.loads(compiled.MANIFEST.read_text())
    except (OSError, ValueError):
        manifest = {}
    if (manifest.get("modules") != digests
            or manifest.get("python") != sys.implementation.cache_tag):
        print("native/compile.py --keep: the compiled modules are not those of the current "
              "sources: run `make` first", file=sys.stderr)
        return 1
    built = [next(iter(sorted(compiled.FOLDER.glob(f"{name}.*.so")))) for name in
             compiled.MODULES]
    keep(cache_key(digests, manifest["cython"]), built)
    return 0


def main() -> int:
    if sys.argv[1:] == ["--keep"]:
        return keep_installed()
    try:
        import Cython
    except ImportError as exc:
        print(f"native/compile.py: {exc}: the masking modules run as plain Python",
              file=sys.stderr)
        return 2
    os.chdir(ROOT)
    compiled = _compiled_module()
    digests = compiled.source_digests()  # before compiling: a file edited meanwhile is stale
    key = cache_key(digests, Cython.__version__)
    cached = from_cache(key, compiled.MODULES)
    if cached is not None:
        install(compiled, cached, digests, Cython.__version__)
        print(f"native/compile.py: {len(cached)} masking modules, compiled from these "
              f"sources before, taken from {cached[0].parent}")
        return 0
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
        from setuptools.dist import Distribution
    except ImportError as exc:
        print(f"native/compile.py: {exc}: the masking modules run as plain Python",
              file=sys.stderr)
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    extensions = [Extension(f"extproc.masking.{name}", [f"extproc/masking/{name}.py"],
                            extra_compile_args=C_FLAGS) for name in compiled.MODULES]
    directives = {"language_level": 3, "binding": True}
    try:
        modules = cythonize(extensions, build_dir=str(WORK / "c"),
                            compiler_directives=directives, nthreads=2, quiet=True)
    except Exception as exc:  # Cython's CompileError: what it said is printed above
        print(f"native/compile.py: Cython could not compile the masking modules ({exc})",
              file=sys.stderr)
        return 1
    dist = Distribution({"name": "tollgate-masking", "ext_modules": modules})
    # Kept from run to run: a module whose C is unchanged is not compiled again.
    dist.script_args = ["--quiet", "build_ext", "--build-lib", str(WORK / "lib"),
                        "--build-temp", str(WORK / "objects"), "--parallel", "2"]
    dist.parse_command_line()
    try:
        dist.run_commands()
    except Exception as exc:  # distutils' CompileError and LinkError, and the like
        print(f"native/compile.py: the C compiler failed ({exc}): the masking modules run "
              "as plain Python", file=sys.stderr)
        return 2
    built = [next((WORK / "lib" / "extproc" / "masking").glob(f"{name}.*.so"))
             for name in compiled.MODULES]
    install(compiled, built, digests, Cython.__version__)
    keep(key, built)
    print(f"native/compile.py: {len(built)} masking modules compiled into "
          f"{compiled.FOLDER.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
