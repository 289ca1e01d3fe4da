"""Both MCP generations on one route, end to end through a real Envoy and tollgate.

The SDK's 2.x generation (in .venv-mcp2, `make test` makes it: tests/mcp2/) speaks the
stateless 2026-07-28 revision (no initialize, no session; each request names its method
and tool in `Mcp-Method`/`Mcp-Name`) and, asked to, the 2025 session form; 1.x (tollgate's
own .venv) only the session form. Each client generation against each server
generation where the protocol lets them meet: a 2.x agent and server in 2026-07-28 and in
2025, a 1.x agent (the SDK's client, and AutoGen AgentChat's McpWorkbench, in
.venv-autogen) against the 2.x server; each server built twice, on the SDK's MCPServer
and on FastMCP 4 (the standalone framework). Every time the tools are listed, a file's
card number reaches the agent masked, and `rm -rf /` is refused before the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import McpError

from extproc.quickstart import stack
from tests.e2e.test_mcp_e2e import mcp_route, session
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.processes import listening

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "tests" / "mcp2"
PYTHON = Path(os.environ.get("TOLLGATE_MCP2_VENV", REPO / ".venv-mcp2")) / "bin" / "python"
AUTOGEN_PYTHON = REPO / ".venv-autogen" / "bin" / "python"
AGENT = "svc-generations"
CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module", params=["server.py", "fastmcp_server.py"],
                ids=["sdk-server", "fastmcp-server"])
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A 2.x server, built on the SDK's MCPServer or on FastMCP (the same tools)."""
    assert PYTHON.exists(), f"{PYTHON} is missing: `make test` makes .venv-mcp2"
    port = stack.free_port()
    with listening([str(PYTHON), str(SCRIPTS / request.param), str(port)], port,
                   tmp_path_factory.mktemp("mcp2") / "server.log",
                   f"{request.param} listening") as listening_port:
        yield listening_port


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, server: int) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "mcp-generations",
                        targets=[{"name": "tools", "match": {"route": "mcp"},
                                  "protocol": "mcp", "mcp": {"shell_tools": ["run_shell"]}}],
                        routes=[mcp_route("mcp", "/mcp", "mcp")],
                        clusters={"mcp": server}) as running:
        yield running


def agent_2x(url: str, mode: str) -> dict[str, Any]:
    run = subprocess.run([str(PYTHON), str(SCRIPTS / "client.py"), url,
                          tokens.token(AGENT, ["agents"]), mode],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"),
                                               ("legacy", "2025-11-25")])
def test_a_2x_agent_through_tollgate_in_each_generation(
        gw: Gateway, server: int, mode: str, version: str) -> None:
    direct = agent_2x(f"http://127.0.0.1:{server}/mcp", mode)
    assert direct["version"] == version and CARD in direct["read"]
    seen = agent_2x(f"http://127.0.0.1:{gw.ports.listener}/mcp", mode)
    assert seen["version"] == version
    assert seen["tools"] == ["read_file", "run_shell"]
    assert seen["read"].startswith("contents of notes.txt: card ") and CARD not in seen["read"]
    assert "shell" not in seen, seen  # never ran
    assert "tollgate refused" in seen["refused"] and "rm -rf /" in seen["refused"]
    # Recorded as read, in the revision the agent spoke (its MCP-Protocol-Version).
    stack.wait_until(lambda: {"tools/list", "tools/call"} <= recorded(gw, version), 15,
                     f"the exchanges of {version} recorded")


def recorded(gw: Gateway, version: str) -> set[str]:
    """The MCP methods recorded of requests in protocol revision `version`."""
    return {((r.get("meaning") or {}).get("mcp") or {}).get("method") for r in gw.records()
            if ((r.get("request") or {}).get("headers") or {}).get("mcp-protocol-version")
            == version}


def test_a_1x_agent_reaches_the_2x_server_through_tollgate(gw: Gateway) -> None:
    async def main() -> tuple[list[str], str, str]:
        async with session(gw, tokens.token(AGENT, ["agents"])) as agent:
            listed = sorted(t.name for t in (await agent.list_tools()).tools)
            read = await agent.call_tool("read_file", {"path": "notes.txt"})
            with pytest.raises(McpError) as refused:
                await agent.call_tool("run_shell", {"command": "rm -rf /"})
        return listed, " ".join(c.text for c in read.content), str(refused.value)  # type: ignore[union-attr]

    listed, read, refused = asyncio.run(main())
    assert listed == ["read_file", "run_shell"]
    assert read.startswith("contents of notes.txt: card ") and CARD not in read
    assert "rm -rf /" in refused


def test_mcp_workbench_reaches_the_2x_server_through_tollgate(gw: Gateway) -> None:
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
