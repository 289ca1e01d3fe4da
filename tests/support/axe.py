"""axe-core's accessibility check of a page the tests opened (Deque's engine, from the
npm registry: `make test` installs it into build/npm, at the Makefile's AXE_CORE version).

The engine is evaluated in the page through the browser's protocol, which a page's
content security policy does not govern: nothing is added to what the page itself loads.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "build" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
# The impacts a page may not have: axe's two highest.
SERIOUS = ("serious", "critical")


@functools.cache
def _engine() -> str:
    return AXE.read_text(encoding="utf-8")


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page as it stands, each
    as {id, impact, help, targets}."""
    if not AXE.exists():
        pytest.fail(f"no {AXE}: `make test` installs axe-core there (npm install --prefix "
                    "build/npm axe-core)")
    if not page.evaluate("typeof axe !== 'undefined'"):  # once per document, not per check
        page.evaluate(_engine())
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "targets": [n["target"] for n in v["nodes"]]}
            for v in found if v["impact"] in SERIOUS]
