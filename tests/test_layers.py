"""The layers of extproc/ (pyproject.toml's import contract) hold, say why when broken, and
every package says which layer it is in.

Run as `make lint` runs it: `lint-imports` on the repository; and on a copy with one wrong
import, which must fail naming the rule it breaks.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
LAYERS: list[str] = CONTRACTS["contracts"][0]["layers"]
# What each of the contract's layers is called in the docs and in packages' docstrings.
LABELS = (["entry points"] * 4 + ["fronts and surfaces"] * 3 + ["the exchange pipeline"]
          + ["services"] * 3 + ["foundation"] * 4)
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache", "--no-logo"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _packages() -> list[tuple[int, str]]:
    """The contract's packages (its modules, such as server.py, have docstrings of their own)."""
    return [(i, name.strip()) for i, layer in enumerate(LAYERS)
            for name in re.split(r"[|:]", layer)
            if (ROOT / "extproc" / name.strip() / "__init__.py").exists()]


def test_labels_cover_every_layer() -> None:
    assert len(LABELS) == len(LAYERS)


def test_the_code_obeys_the_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and " 0 broken" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("module", "line", "rule"), [
    # The foundation importing a service: the layers.
    ("codecs/jsonenc.py", "from extproc import masking", "Layers:"),
    # The record reaching for a front.
    ("recording/chain.py", "from extproc.ssh import front", "The audit record knows no front"),
    # A reader of meaning driving the pipeline.
    ("interpret/shell.py", "from extproc.exchange import pipeline",
     "The readers of meaning (interpret)"),
    # A cycle inside a package.
    ("masking/checks.py", "from extproc.masking import masker", "No import cycle inside"),
    # The MCP interpreter reaching for the lister it is given (approvals/self_listing.py).
    ("interpret/mcp_interpreter.py", "from extproc.approvals import self_listing",
     "Layers:"),
])
def test_a_wrong_import_fails_naming_its_rule(tmp_path: Path, module: str, line: str,
                                              rule: str) -> None:
    shutil.copytree(ROOT / "extproc", tmp_path / "extproc",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "extproc" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    broken = result.stdout[result.stdout.index("Broken contracts"):]
    assert rule in broken, result.stdout
    # The chain names the module (in full, or relative to its package for a cycle).
    assert "." + module.removesuffix(".py").rsplit("/", 1)[-1] + " -> " in broken


# Modules that reach the network: what a reader of meaning is given, never imports.
_NETWORK = {"aiohttp", "asyncio.streams", "http.client", "httpx", "socket", "ssl",
            "urllib.request"}


def test_the_readers_of_meaning_reach_no_network() -> None:
    """An interpreter that needs an upstream asked (an MCP server's tools) is given what
    asks it (approvals/self_listing.py), as it is given the pins."""
    found = []
    for path in (ROOT / "extproc" / "interpret").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: {n}" for n in names
                      if n in _NETWORK or n.split(".")[0] in _NETWORK]
    assert found == []


@pytest.mark.parametrize(("index", "package"), _packages())
def test_every_package_says_its_layer(index: int, package: str) -> None:
    init = ROOT / "extproc" / package / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    assert f"Layer: {LABELS[index]} (" in " ".join(doc.split()), package


def diagram() -> str:
    """The contract's layers as docs/architecture.md draws them, top to bottom."""
    rows, previous = [], None
    for label, layer in zip(LABELS, LAYERS, strict=True):
        shown = " | ".join(name.strip() for name in re.split(r"[|:]", layer))
        rows.append(f"{'' if label == previous else label:<23} {shown}")
        previous = label
    return "\n".join(rows)


def test_the_architecture_page_draws_the_contract() -> None:
    """docs/architecture.md's layer diagram is the contract's, so the two cannot drift."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    assert f"```text\n{diagram()}\n```" in page, diagram()
