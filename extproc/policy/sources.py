"""Policy sources on disk: which files a policy directory holds, their revision, and
the wait between two looks at them (which the signing keys' files share)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from pathlib import Path

from extproc.policy.errors import PolicyLoadError

Modules = list[tuple[str, str]]
"""(file path, Rego source) pairs, in a stable order."""


def rego_files(policy_dir: Path) -> list[Path]:
    """Every .rego file below the directory, hidden files and folders excepted.

    Hidden paths are skipped: a Kubernetes ConfigMap volume holds every file twice,
    once in a hidden `..<timestamp>` folder.
    """
    return sorted(
        p for p in policy_dir.rglob("*.rego")
        if not any(part.startswith(".") for part in p.relative_to(policy_dir).parts)
    )


def read_modules(policy_dir: Path) -> Modules:
    """The policy modules of a directory, test files (`*_test.rego`) excluded."""
    return _read(policy_dir, tests=False)


def read_pack(policy_dir: Path) -> Modules:
    """Every .rego file of a directory, its tests too, each read once: what a reload
    checks and then serves, whatever the directory holds by then. `modules_of` tells
    its policy modules; PolicyLoadError as read_modules."""
    return _read(policy_dir, tests=True)


def modules_of(pack: Modules) -> Modules:
    """The policy modules of a pack (`read_pack`), its tests left out."""
    return [(name, source) for name, source in pack if not _is_test(Path(name))]


def _read(policy_dir: Path, tests: bool) -> Modules:
    if not policy_dir.is_dir():
        raise PolicyLoadError(f"policy directory {policy_dir} does not exist")
    files = rego_files(policy_dir)
    if not any(not _is_test(p) for p in files):
        raise PolicyLoadError(f"no .rego files in {policy_dir}")
    return [(str(p), read_source(p)) for p in files if tests or not _is_test(p)]


def _is_test(path: Path) -> bool:
    return path.name.endswith("_test.rego")


def read_source(path: Path) -> str:
    """One Rego file's text, or PolicyLoadError naming the file and why."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyLoadError(f"{path}: not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise PolicyLoadError(f"{path}: cannot read: {exc.strerror}") from None


def fingerprint(policy_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when a policy file is added, removed or rewritten: cheap to poll."""
    try:
        return tuple(
            (str(p), stat.st_mtime_ns, stat.st_size)
            for p in rego_files(policy_dir) if not p.name.endswith("_test.rego")
            for stat in (p.stat(),)
        )
    except OSError:
        return ()


def revision_of(modules: Modules) -> str:
    """A short hash of the sources, so a decision can name the policies that made it."""
    digest = hashlib.sha256()
    for name, source in modules:
        digest.update(Path(name).name.encode() + b"\0" + source.encode() + b"\0")
    return digest.hexdigest()[:12]


async def asked_or_due(requested: asyncio.Event, seconds: float) -> bool:
    """Wait until `requested` is set (SIGHUP) or `seconds` pass (0: only when asked);
    whether it was asked. The event is cleared for the next wait."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(requested.wait(), seconds or None)
    asked = requested.is_set()
    requested.clear()
    return asked
