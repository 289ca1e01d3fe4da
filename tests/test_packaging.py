"""`pip install` of the project prints no warning of the project's own: setuptools reads
pyproject.toml's metadata without a deprecation (a `project.license` table is one since
setuptools 77, which wants an SPDX expression)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # pip fetches the build backend and builds the wheel
def test_the_build_reads_the_metadata_without_a_warning(tmp_path: Path) -> None:
    """The metadata is all the warning is about: pyproject.toml and the README it names,
    with an empty package, build as `pip install .` would (in isolation, with the
    setuptools the build-system table asks for)."""
    source = tmp_path / "src"
    (source / "extproc").mkdir(parents=True)
    (source / "extproc" / "__init__.py").write_text("")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "--no-cache-dir",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300, check=False)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert "project.license" not in said, said[-3000:]
    assert not [line for line in said.splitlines()
                if "DeprecationWarning" in line or "BuildBackendWarning" in line]
    (wheel,) = (tmp_path / "dist").glob("tollgate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
