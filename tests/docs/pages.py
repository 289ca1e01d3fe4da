"""The pages the documentation is made of, and the Markdown reading they share with the
site's build (docs/hooks/markdown_links.py, loaded from its file: it is no package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
HOOKS = DOCS / "hooks"


def _load(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HOOKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the hook imports it by this name
    spec.loader.exec_module(module)
    return module


markdown_links = _load("markdown_links")
repo_links = _load("repo_links")


def pages(repo: Path = REPO) -> list[Path]:
    """README.md and every page under docs/ (the hooks' folder is no page)."""
    docs = repo / "docs"
    return [repo / "README.md", *sorted(p for p in docs.rglob("*.md")
                                        if not p.is_relative_to(docs / "hooks"))]
