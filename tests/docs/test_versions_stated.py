"""The versions known to work with AutoGen's McpWorkbench are stated where a user looks
for them (the README's MCP section, docs/getting-started/mcp.md), and they are the
ones the agent examples install and the tests run: examples/autogen/requirements.txt,
whose MCP SDK is the one tollgate's own environment (the demo MCP server) runs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.docs.pages import DOCS, REPO

REQUIREMENTS = REPO / "examples" / "autogen" / "requirements.txt"


def pins() -> dict[str, str]:
    """Each requirement's name (without extras) -> its pinned version."""
    found = {}
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", line.strip())
        if match:
            found[match.group(1).lower()] = match.group(3)
    return found


def stated() -> list[str]:
    """The requirements as the pages state them (autogen-ext with the extra McpWorkbench
    needs)."""
    pinned = pins()
    return [f"autogen-agentchat=={pinned['autogen-agentchat']}",
            f"autogen-ext[mcp]=={pinned['autogen-ext']}", f"mcp=={pinned['mcp']}"]


@pytest.mark.parametrize("page", [REPO / "README.md", DOCS / "getting-started" / "mcp.md"],
                         ids=["README", "getting-started-mcp"])
def test_the_mcp_workbench_versions_are_stated(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "McpWorkbench" in text
    missing = [pin for pin in stated() if f"`{pin}`" not in text]
    assert missing == [], f"{page}: state {missing} (examples/autogen/requirements.txt)"


def test_the_examples_mcp_sdk_is_the_demo_servers() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert f"mcp=={pins()['mcp']}" in project["project"]["dependencies"]
