"""What tollgate can rebuild but need not rebuild at every start, kept in the user's cache:
the Rego tests a pack passed (policy/smoke.py) and masking's compiled Hyperscan databases
(masking/prefilter.py). `$TOLLGATE_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/tollgate`.

Everything kept is keyed by a digest of all it was made from, so a changed input misses
rather than reads a stale entry. It is a cache, never a store: a file that cannot be read
or written only costs the rebuild, and an entry is read only from a folder and a file that
are the user's own and writable by no one else (what is read here decides what masking
finds and which pack starts: another account must not be able to choose it).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from extproc.codecs import private_file


def folder(kind: str) -> Path:
    """Where entries of `kind` are kept (not made until one is written)."""
    if base := os.environ.get("TOLLGATE_CACHE"):
        return Path(base) / kind
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "tollgate" / kind


def _own(info: os.stat_result) -> bool:
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def owned(path: Path) -> bool:
    """`path` (not followed if a link) is the user's own and writable by no one else."""
    try:
        return _own(path.lstat())
    except OSError:
        return False


def read(kind: str, key: str) -> bytes | None:
    """The entry `key` of `kind`; None when there is none, or it is not the user's own."""
    where = folder(kind)
    try:
        with open(where / key, "rb") as entry:
            if not (_own(os.fstat(entry.fileno())) and owned(where)):
                return None
            return entry.read()
    except OSError:
        return None


def write(kind: str, key: str, data: bytes) -> None:
    """Keep `data` as the entry `key` of `kind`, written whole (a reader never sees half),
    the user's alone; best effort."""
    with contextlib.suppress(OSError):
        private_file.write(folder(kind) / key, data)
