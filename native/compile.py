"""Compile the masking modules with Cython: `make` runs this (`python native/compile.py`).

Each module of `extproc.masking.compiled.MODULES` is compiled from its unchanged source
(no annotations added: the source stays plain Python that runs either way) into
`extproc/masking/_compiled/`, and the manifest beside them names each source's SHA-256
and the Python they were built for; the package runs them only while both still hold
(compiled.py). Cython's C and the objects stay in build/compiled, so that a later run
compiles only the modules whose source changed.

Where Cython or a C compiler is missing, this says so and exits 2, leaving the plain
form to run; `make run` goes on without it, `make test` and CI fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "compiled"


def _compiled_module() -> ModuleType:
    """masking/compiled.py read alone: importing its package would run the form chosen."""
    spec = importlib.util.spec_from_file_location(
        "tollgate_masking_compiled", ROOT / "extproc" / "masking" / "compiled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    try:
        import Cython
        from Cython.Build import cythonize
        from setuptools import Extension
        from setuptools.dist import Distribution
    except ImportError as exc:
        print(f"native/compile.py: {exc}: the masking modules run as plain Python",
              file=sys.stderr)
        return 2
    os.chdir(ROOT)
    WORK.mkdir(parents=True, exist_ok=True)
    compiled = _compiled_module()
    digests = compiled.source_digests()  # before compiling: a file edited meanwhile is stale
    # No debug symbols (a tenth the size), and no warnings: they are about Cython's C.
    extensions = [Extension(f"extproc.masking.{name}", [f"extproc/masking/{name}.py"],
                            extra_compile_args=["-g0", "-w"]) for name in compiled.MODULES]
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
    shutil.rmtree(compiled.FOLDER, ignore_errors=True)
    compiled.FOLDER.mkdir()
    for path in built:
        shutil.copy2(path, compiled.FOLDER / path.name)
    compiled.MANIFEST.write_text(json.dumps({
        "python": sys.implementation.cache_tag, "cython": Cython.__version__,
        "modules": digests}, indent=1) + "\n")
    print(f"native/compile.py: {len(built)} masking modules compiled into "
          f"{compiled.FOLDER.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
