"""Which form of the masking modules runs: compiled by Cython, or the plain Python source.

Masking a 2 KB text is ~150 µs of Python spread over some fifty detectors, each already
down to a few C calls (Hyperscan, `re`, `bytes` methods); what remains is the
interpreter's own work between them, which Cython's compilation of the same source
removes (~30%: bench/masking.py). The source stays the one truth: `make` compiles the
modules of `MODULES` into `_compiled/` (native/compile.py), with a manifest naming each
source's SHA-256 and the Python it was built for, and the package puts that folder first
on its `__path__` only while every one of those sources is unchanged and every module is
there. A module edited since it was compiled would otherwise run its old code, and what
the tests pass would not be what runs; stale, the whole package runs plain until `make`
compiles it again. native/compile.py writes the manifest last, so a build under way (or
cut short) has none and runs plain; one missing a module runs plain too, never a mix.

Cython compiles the source as Python runs it but for one thing the modules avoid: a bytes
literal, or a tuple of one-byte literals, iterated in place (`for c in b"ab"`) is read as
C chars, which reach Python code as ints or one-byte strings by how they are used; a
literal given a name and iterated by it is a Python object like any other. The tests run
on the compiled form, the plain form's smoke set beside them, and
tests/masking/test_compiled.py compares the two forms' masking text by text.

`TOLLGATE_MASKING=plain` runs the plain form where the compiled one is built (the other
form's tests, a profile of the Python source). This module itself always runs plain: it
decides which form the others run in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

# The modules compiled: those that run per text or per JSON value. The model (ner.py),
# images (images.py, all in ONNX Runtime and Pillow) and the package's entry points gain
# nothing.
MODULES = (
    "body", "catalog", "checks", "decoding", "detectors", "generic_secrets", "id_checks",
    "key_rules", "keys", "literals", "log_lines", "masker", "national_ids", "people",
    "phone_context", "phone_regions", "phones", "policy_mask", "prefilter", "record_mask",
    "rows", "server_text", "shadow", "strategies", "stream", "vendor_rules",
)
HERE = Path(__file__).parent
# The modules' data files: beside their source, wherever their code runs from (a compiled
# module's `__file__` is in `_compiled/`).
DATA = HERE / "data"
FOLDER = HERE / "_compiled"
MANIFEST = FOLDER / "manifest.json"
PLAIN = "plain Python"

log = logging.getLogger("tollgate.masking")


def source_digests() -> dict[str, str]:
    """Each compiled module's source, by SHA-256: what a build was made from."""
    return {name: hashlib.sha256((HERE / f"{name}.py").read_bytes()).hexdigest()
            for name in MODULES}


def choose(path: list[str]) -> str:
    """Put the compiled modules first on the package's `path` where they may run; what
    runs, in words (`tollgate --version`). `TOLLGATE_MASKING`: `plain` runs the plain
    form; `compiled` requires the compiled one (the tests: a build that cannot run fails
    them rather than passing them on the plain form); unset, whichever may run."""
    asked = os.environ.get("TOLLGATE_MASKING", "")
    if asked not in ("", "plain", "compiled"):
        raise ImportError(f"TOLLGATE_MASKING={asked!r}: plain or compiled (unset: the "
                          "compiled form where it is built from the current source)")
    if asked == "plain":
        return f"{PLAIN} (TOLLGATE_MASKING=plain)"
    why = _why_not(_manifest())
    if why is None:
        path.insert(0, str(FOLDER))
        return f"compiled by Cython {_manifest().get('cython')} ({len(MODULES)} modules)"
    if asked == "compiled":
        raise ImportError(f"TOLLGATE_MASKING=compiled, and the compiled masking modules "
                          f"cannot run: {why}; build them with `make` (native/compile.py)")
    if why.startswith("the modules changed"):
        log.warning("the masking modules changed since they were compiled: running the "
                    "plain Python form until `make` compiles them again")
        return f"{PLAIN} (the compiled form is stale: make compiles it again)"
    return PLAIN if why == _NOT_BUILT else f"{PLAIN} ({why})"


_NOT_BUILT = "they are not built"


def built() -> dict[str, object] | None:
    """The manifest of the build in `FOLDER` where it may run; None where it may not."""
    manifest = _manifest()
    return manifest if _why_not(manifest) is None else None


def _manifest() -> dict[str, object]:
    """The build's manifest ({}: none; a manifest that cannot be read: `_BROKEN`)."""
    try:
        manifest = json.loads(MANIFEST.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        return {_BROKEN: str(exc)}
    return manifest if isinstance(manifest, dict) else {_BROKEN: "not a JSON object"}


_BROKEN = "unreadable"


def _why_not(manifest: dict[str, object]) -> str | None:
    """Why the compiled form may not run (None: it may)."""
    if not manifest:
        return _NOT_BUILT
    if _BROKEN in manifest:
        return f"their manifest cannot be read ({manifest[_BROKEN]})"
    if manifest.get("python") != sys.implementation.cache_tag:
        return f"compiled for {manifest.get('python')}, this is {sys.implementation.cache_tag}"
    if manifest.get("modules") != source_digests():
        return "the modules changed since they were compiled (stale)"
    missing = _missing()
    if missing:
        return f"their build lacks {', '.join(missing)}"
    return None


def _missing() -> list[str]:
    """The modules of `MODULES` with no compiled file in `FOLDER` for this Python."""
    try:
        present = set(os.listdir(FOLDER))
    except OSError:
        present = set()
    return [name for name in MODULES
            if not any(name + suffix in present for suffix in EXTENSION_SUFFIXES)]
