"""A checkout of this repository for tests that run `make` as a newcomer would, on a
clean clone: what a clone of the work tree holds, its changes not yet committed included,
and nothing `make` ever made."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def work_tree_copy(into: Path) -> Path:
    """The work tree's files (tracked, and new ones not ignored) copied into `into`, their
    modes and times kept (so that `make` finds what this work tree made from them, named
    by a variable such as AGENTS, up to date); a file deleted but not yet committed is
    left out."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=REPO, capture_output=True, check=True,
                            timeout=120)
    for name in listed.stdout.decode().split("\0"):
        source = REPO / name
        if name and source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into
