"""What the suite may not change on the machine it runs on, beyond its own temporary
folders: the names in the home folder, in ~/.ssh, ~/.config and ~/.cache (a test that forgot to
give the code under test a home of its own leaves a dotfile there; ~/.tollgate, the
quickstart's documented place, aside), and the files under /etc (a test that ran a command as root
where it meant a demo host's). tests/conftest.py takes one before the run and compares
after it; the devices are its own check."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

# The quickstart's documented place in the home folder.
ALLOWED_IN_HOME = frozenset({".tollgate"})
# The home's folders whose names are watched as the home's own are (Chromium's crash
# reports and matplotlib's font cache went to ~/.config before the suite gave its run a
# config home of its own, onnxruntime's id file and matplotlib's font list to ~/.cache
# before it gave it a cache home: tests/conftest.py).
WATCHED = (".ssh", ".config", ".cache")


@dataclass(frozen=True)
class Footprint:
    home: frozenset[str]  # the names at the top of the home folder
    inside: dict[str, frozenset[str]]  # the names in each WATCHED folder
    etc: dict[str, tuple[int, int]]  # every file under /etc: (inode, mtime in ns)


def _names(folder: Path) -> frozenset[str]:
    try:
        return frozenset(os.listdir(folder))
    except OSError:  # absent, or not readable: nothing to compare
        return frozenset()


def _files(top: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for folder, _, names in os.walk(top):
        for name in names:
            path = os.path.join(folder, name)
            try:
                status = os.lstat(path)
            except OSError:  # gone meanwhile
                continue
            found[path] = (status.st_ino, status.st_mtime_ns)
    return found


def take(home: Path, etc: Path = Path("/etc")) -> Footprint:
    return Footprint(_names(home), {name: _names(home / name) for name in WATCHED},
                     _files(etc))


def changes(before: Footprint, after: Footprint, home: Path) -> list[str]:
    """What differs, a line each, naming the path."""
    said = [f"{home / name} {_how(name, before.home, after.home)}"
            for name in sorted((before.home ^ after.home) - ALLOWED_IN_HOME)]
    for folder in WATCHED:
        was, now = before.inside[folder], after.inside[folder]
        said += [f"{home / folder / name} {_how(name, was, now)}"
                 for name in sorted(was ^ now)]
    said += [f"{path} {_how(path, before.etc, after.etc)}"
             for path in sorted(before.etc.keys() | after.etc.keys())
             if before.etc.get(path) != after.etc.get(path)]
    return said


def _how(name: str, before: Collection[str], after: Collection[str]) -> str:
    if name not in before:
        return "appeared"
    return "changed" if name in after else "went"
