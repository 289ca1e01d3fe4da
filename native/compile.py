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

Each module is a job of its own, on a pool of as many processes as the machine gives
this one cores, the largest sources first; a line says each module compiled as it ends,
and the last the whole compile's time. One compile at a time: a second one (`make test`
beside `make run`'s) waits for the first's lock, then finds its build current and
compiles nothing. Into `_compiled/`, the manifest goes first and comes back last, written
whole: a build under way, or cut short, runs the plain form (compiled.py).

`--background LOG` is `make run`'s: where the modules are compiled from the current
sources already, or the cache holds them, they are there at once; else it starts the
compile in a session of its own (its lines in LOG), says so, and returns, so that
`tollgate up` starts on the plain form meanwhile and the next start runs the compiled one.

Where Cython or a C compiler is missing, this says so and exits 2, leaving the plain
form to run; `make run` goes on without it, `make test` and CI fail.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "compiled"
# Held by the compile under way; a compile that finds it held waits (`--background`
# says so and returns).
LOCK = WORK / "lock"
SAY = "native/compile.py:"
# The background compile's (`nice`): the gateway starting beside it, and answering the
# first requests, come first.
NICENESS = 10
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
DIRECTIVES = {"language_level": 3, "binding": True}

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


def install(manifest: Path, built: list[Path], content: dict[str, object]) -> None:
    """The modules beside `manifest` (the package's), and the manifest that lets them run. The
    manifest goes first and comes back last, written whole: meanwhile the package runs
    plain, never a mix of two builds. Each module is renamed into place, so a process
    that loaded the one before keeps running it."""
    folder = manifest.parent
    folder.mkdir(exist_ok=True)
    manifest.unlink(missing_ok=True)
    for path in built:
        partial = folder / f".{path.name}.{os.getpid()}"
        shutil.copy2(path, partial)
        partial.replace(folder / path.name)
    names = {path.name for path in built}
    for stray in folder.iterdir():  # the modules of an older MODULES, a copy cut short
        if stray.name not in names:
            stray.unlink()
    partial = folder / f".{manifest.name}.{os.getpid()}"
    partial.write_text(json.dumps(content, indent=1) + "\n")
    partial.replace(manifest)


def current(compiled: ModuleType, key: str) -> bool:
    """Whether the build in the package is of `key` and may run."""
    manifest = compiled.built()
    return manifest is not None and manifest.get("key") == key


def keep_installed() -> int:
    """`--keep`: the build this checkout runs, kept in the cache as a compile keeps its
    own (a second checkout on this machine then takes it: the suite's newcomer tour);
    nothing is compiled. Refused where that build is not of the current sources."""
    compiled = _compiled_module()
    manifest = compiled.built()
    if manifest is None:
        print("native/compile.py --keep: the compiled modules are not those of the current "
              "sources: run `make` first", file=sys.stderr)
        return 1
    built = [next(iter(sorted(compiled.FOLDER.glob(f"{name}.*.so")))) for name in
             compiled.MODULES]
    keep(cache_key(compiled.source_digests(), str(manifest["cython"])), built)
    return 0


def cores() -> int:
    """The cores this process may run on (its affinity, which a container may narrow)."""
    return len(os.sched_getaffinity(0)) or 1


class Failed(Exception):
    """A module that did not compile: the exit status to end with, and why."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(status, why)
        self.status, self.why = status, why


def build_module(name: str) -> float:
    """One module from its source to its object in `WORK/lib` (a job of the pool, in the
    repository's root): its C by Cython, then its object by the C compiler; the seconds
    taken. Cython's C and the objects are kept, so that an unchanged module is not
    compiled again."""
    started = time.monotonic()
    from Cython.Build import cythonize
    from setuptools import Extension
    from setuptools.dist import Distribution

    extension = Extension(f"extproc.masking.{name}", [f"extproc/masking/{name}.py"],
                          extra_compile_args=C_FLAGS)
    try:
        modules = cythonize([extension], build_dir=str(WORK / "c"),
                            compiler_directives=DIRECTIVES, quiet=True)
    except Exception as exc:  # Cython's CompileError: what it said is printed above
        raise Failed(1, f"Cython could not compile {name} ({exc})") from None
    dist = Distribution({"name": "tollgate-masking", "ext_modules": modules})
    dist.script_args = ["--quiet", "build_ext", "--build-lib", str(WORK / "lib"),
                        "--build-temp", str(WORK / "objects")]
    dist.parse_command_line()
    try:
        dist.run_commands()
    except Exception as exc:  # distutils' CompileError and LinkError, and the like
        raise Failed(2, f"the C compiler failed on {name} ({exc}): the masking modules "
                        "run as plain Python") from None
    return time.monotonic() - started


def compile_all(names: Sequence[str], job: Callable[[str], float], workers: int) -> float:
    """`job` on each name, `workers` at a time in processes of their own, in the order
    given; a line as each ends; the seconds taken in all. The first job to fail ends it
    (its Failed raised, the jobs not started yet dropped)."""
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(job, name): name for name in names}
        try:
            for count, future in enumerate(as_completed(futures), 1):
                seconds = future.result()
                print(f"{SAY} compiled {count}/{len(names)} masking modules "
                      f"({futures[future]}, {seconds:.0f} s)", flush=True)
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return time.monotonic() - started


@contextmanager
def locked(wait: bool) -> Iterator[bool]:
    """The compile's lock, held for the block: whether it is (without `wait`, not when
    another compile holds it)."""
    WORK.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            print(f"{SAY} waiting for the compile under way to end", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield True


def missing_compiler() -> str | None:
    """The C compiler Python's build would run (CC, else the one Python was built with),
    where it is not installed."""
    command = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    return None if command and shutil.which(command[0]) else " ".join(command)


def compile_here(compiled: ModuleType, digests: dict[str, str], key: str, version: str,
                 workers: int) -> int:
    """Every module compiled, side by side, and installed with its manifest."""
    names = sorted(compiled.MODULES, reverse=True,
                   key=lambda name: (compiled.HERE / f"{name}.py").stat().st_size)
    print(f"{SAY} compiling {len(names)} masking modules, {workers} at a time", flush=True)
    try:
        seconds = compile_all(names, build_module, workers)
    except Failed as failed:
        print(f"{SAY} {failed.why}", file=sys.stderr)
        return failed.status
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    built = [WORK / "lib" / "extproc" / "masking" / f"{name}{suffix}"
             for name in compiled.MODULES]
    install(compiled.MANIFEST, built, manifest(digests, version, key))
    keep(key, built)
    print(f"{SAY} {len(built)} masking modules compiled into "
          f"{compiled.FOLDER.relative_to(ROOT)} in {seconds:.0f} s", flush=True)
    return 0


def manifest(digests: dict[str, str], version: str, key: str) -> dict[str, object]:
    return {"python": sys.implementation.cache_tag, "cython": version, "key": key,
            "modules": digests}


def in_background(log: Path, modules: int, workers: int) -> None:
    """The compile started in a session of its own (Ctrl-C on `make run` leaves it be), at
    a lower priority than the gateway starting beside it, its lines appended to `log`;
    said in one line."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--jobs", str(workers)]
    nice = shutil.which("nice")
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        subprocess.Popen([nice, "-n", str(NICENESS), *command] if nice else command,
                         cwd=ROOT, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                         start_new_session=True)
    finally:
        os.close(output)
    print(f"{SAY} masking runs on its plain form while its compiled form builds ({modules} "
          f"modules, {workers} at a time; log: {shown(log)}); the next start uses it",
          flush=True)


def shown(path: Path) -> str:
    """`path` as the repository's root names it, where it is under it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="native/compile.py", description=(
        "Compile the masking modules with Cython into extproc/masking/_compiled/."))
    asked = parser.add_mutually_exclusive_group()
    asked.add_argument("--keep", action="store_true", help=(
        "keep the build this checkout runs in the user's cache; compile nothing"))
    asked.add_argument("--background", metavar="LOG", type=Path, help=(
        "where the modules need compiling, compile them in the background, their lines "
        "in LOG, and return at once (make run)"))
    parser.add_argument("--jobs", type=int, default=cores(), help=(
        "modules compiled at a time (default: the cores this process may use)"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.keep:
        return keep_installed()
    try:  # imported once, here: each job's process is forked with them
        import Cython
        import Cython.Build
        import setuptools.dist  # noqa: F401
    except ImportError as exc:
        print(f"{SAY} {exc}: the masking modules run as plain Python", file=sys.stderr)
        return 2
    compiler = missing_compiler()
    if compiler is not None:
        print(f"{SAY} no C compiler ({compiler}): the masking modules run as plain Python",
              file=sys.stderr)
        return 2
    os.chdir(ROOT)
    compiled = _compiled_module()
    digests = compiled.source_digests()  # before compiling: a file edited meanwhile is stale
    key = cache_key(digests, Cython.__version__)
    with locked(wait=args.background is None) as holding:
        if not holding:
            print(f"{SAY} masking runs on its plain form while its compiled form builds "
                  "(another compile is under way); the start after it ends uses it")
            return 0
        if current(compiled, key):
            compiled.MANIFEST.touch()  # newer than the sources again, for make
            return 0
        cached = from_cache(key, compiled.MODULES)
        if cached is not None:
            install(compiled.MANIFEST, cached, manifest(digests, Cython.__version__, key))
            print(f"{SAY} {len(cached)} masking modules, compiled from these sources "
                  f"before, taken from {cached[0].parent}")
            return 0
        if args.background is None:
            return compile_here(compiled, digests, key, Cython.__version__, args.jobs)
    in_background(args.background, len(compiled.MODULES), args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
