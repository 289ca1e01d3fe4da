"""MCP frameworks as agents and servers use them, through a real Envoy and tollgate, in
both protocol generations.

The server: FastMCP (the standalone framework, 4.x, on the SDK's 2.x generation: it
speaks the stateless 2026-07-28 revision and the 2025 session form; tests/mcp2/
fastmcp_server.py, in .venv-mcp2). The agents: the SDK's 2.x client in each revision,
and AutoGen AgentChat's McpWorkbench (the SDK's 1.x generation, in .venv-autogen: the
2025 session form only, which the 2.x server speaks to it). Every time the tools are
listed, a file's card number reaches the agent masked, and `rm -rf /` is refused before
the server.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc.quickstart import stack
from tests.e2e.test_mcp_e2e import mcp_route
from tests.e2e.test_mcp_generations_e2e import AGENT, CARD, PYTHON, SCRIPTS, agent_2x, recorded
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.processes import listening

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
AUTOGEN_PYTHON = REPO / ".venv-autogen" / "bin" / "python"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    assert PYTHON.exists(), f"{PYTHON} is missing: `make test` makes .venv-mcp2"
    port = stack.free_port()
    with listening([str(PYTHON), str(SCRIPTS / "fastmcp_server.py"), str(port)], port,
                   tmp_path_factory.mktemp("fastmcp") / "server.log",
                   "the FastMCP server listening") as listening_port:
        yield listening_port


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, server: int) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "mcp-frameworks",
                        targets=[{"name": "tools", "match": {"route": "mcp"},
                                  "protocol": "mcp", "mcp": {"shell_tools": ["run_shell"]}}],
                        routes=[mcp_route("mcp", "/mcp", "mcp")],
                        clusters={"mcp": server}) as running:
        yield running


@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"),
                                               ("legacy", "2025-11-25")])
def test_a_2x_agent_and_a_fastmcp_server_through_tollgate_in_each_generation(
        gw: Gateway, server: int, mode: str, version: str) -> None:
    direct = agent_2x(f"http://127.0.0.1:{server}/mcp", mode)
    assert direct["version"] == version and CARD in direct["read"]
    assert direct["shell"] == "ran rm -rf /"  # the server runs what reaches it
    seen = agent_2x(f"http://127.0.0.1:{gw.ports.listener}/mcp", mode)
    assert seen["version"] == version
    assert seen["tools"] == ["read_file", "run_shell"]
    assert seen["read"].startswith("contents of notes.txt: card ") and CARD not in seen["read"]
    assert "shell" not in seen, seen
    assert "tollgate refused" in seen["refused"] and "rm -rf /" in seen["refused"]
    stack.wait_until(lambda: {"tools/list", "tools/call"} <= recorded(gw, version), 15,
                     f"the exchanges of {version} recorded")


def test_mcp_workbench_reaches_the_fastmcp_server_through_tollgate(gw: Gateway) -> None:
    assert AUTOGEN_PYTHON.exists(), f"{AUTOGEN_PYTHON} is missing: `make test` makes it"
    run = subprocess.run([str(AUTOGEN_PYTHON), str(SCRIPTS / "workbench_client.py"),
                          f"http://127.0.0.1:{gw.ports.listener}/mcp",
                          tokens.token(AGENT, ["agents"])],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["tools"] == ["read_file", "run_shell"]
    assert not seen["read_error"]
    assert seen["read"].startswith("contents of notes.txt: card ") and CARD not in seen["read"]
    # Refused: McpWorkbench hands the agent the gateway's JSON-RPC error as a failed result.
    assert seen["shell_error"] and "tollgate refused" in seen["shell"]
    assert "rm -rf /" in seen["shell"] and "ran rm -rf /" not in seen["shell"]
