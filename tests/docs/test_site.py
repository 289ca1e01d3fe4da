"""The documentation site builds as `make docs` builds it, with MkDocs' --strict: a
warning (a broken link or anchor, a page left out of the nav) fails it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.pages import DOCS, REPO


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TOLLGATE_REPO_URL"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site)],
        capture_output=True, text=True, timeout=120, env={**env, "NO_MKDOCS_2_WARNING": "1"},
        check=False)


@pytest.mark.slow
def test_the_site_builds_without_a_warning(tmp_path: Path) -> None:
    result = build(REPO / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    built = {p.relative_to(tmp_path / "site").as_posix()
             for p in (tmp_path / "site").rglob("index.html")}
    for page in DOCS.rglob("*.md"):
        if page.is_relative_to(DOCS / "hooks"):
            continue
        name = page.relative_to(DOCS).with_suffix("").as_posix()
        html = "index.html" if name == "index" else (
            f"{name.removesuffix('/index').removesuffix('index')}/index.html".lstrip("/"))
        assert html in built, f"{page} was not built"
    assert not (tmp_path / "site" / "hooks").exists()


@pytest.mark.slow
def test_a_broken_anchor_fails_the_build(tmp_path: Path) -> None:
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with (tmp_path / "docs" / "index.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [masking](masking.md#no-such-heading).\n")
    result = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "does not contain an anchor '#no-such-heading'" in result.stderr, result.stderr
