"""MCP benchmark, both protocol generations: what tollgate adds to a tool call in the
stateless 2026-07-28 revision and in the 2025 session form, with one SDK and one server.

Run from the repository root: `python -m bench.mcp_generations [--calls N]` (`make bench`
does; it needs .venv-mcp2, the MCP SDK's 2.x generation, which `make bench` makes).

The SDK's 2.x generation on both ends: tests/mcp2/server.py (MCPServer, streamable HTTP;
its read_file answers with a card number) and bench/mcp2_client.py, each run by
.venv-mcp2's Python in a process of its own. The paths are bench/mcp_calls.py's (direct,
Envoy alone, Envoy and tollgate with the quickstart's `tools` target, recording and
exporting spans). The client runs twice, once per revision (the SDK's `auto` mode
speaks 2026-07-28: no handshake, each request carrying `Mcp-Method` and `Mcp-Name`;
`legacy`, the 2025 initialize and session), each time listing the tools first (tollgate
pins them), then measuring rounds of every operation on every path in rotating order:

    read_file   tools/call; its card number masked through tollgate (checked: the
                benchmark stops if tollgate's answer holds it, or another path's lacks it)
    tools/list  the server's two tools, each probed by a policy decision
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import TOKEN
from bench.mcp_calls import (
    GATEWAY,
    REPO,
    RESULTS,
    figures,
    gateway_paths,
    machine,
    parsed_rounds,
    rounds_parser,
    table,
)
from extproc.quickstart import stack
from tests.standins.otlp_receiver import OtlpReceiver

MCP2_PYTHON = REPO / ".venv-mcp2" / "bin" / "python"
SERVER = REPO / "tests" / "mcp2" / "server.py"
CLIENT = REPO / "bench" / "mcp2_client.py"
CARD = "4111 1111 1111 1111"
MODES = {"2026-07-28": "auto", "2025 session": "legacy"}


def run_client(urls: dict[str, str], mode: str, calls: int, warmup: int) -> dict[str, Any]:
    """The client's run in one revision: what bench/mcp2_client.py prints."""
    asked = {"urls": urls, "token": TOKEN, "mode": mode, "calls": calls, "warmup": warmup}
    done = subprocess.run([str(MCP2_PYTHON), str(CLIENT)], input=json.dumps(asked),
                          capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench.mcp_generations: the {mode} client failed:\n{done.stderr}")
    return json.loads(done.stdout)


def check(revision: str, measured: dict[str, Any]) -> None:
    """Each path spoke the revision asked for; tollgate's read_file masked, the others' not."""
    problems = [f"{path} spoke {version}" for path, version in measured["versions"].items()
                if (version == "2026-07-28") != (revision == "2026-07-28")]
    problems += [f"{path}: read_file {'holds' if path == GATEWAY else 'lacks'} the card"
                 for path, text in measured["read"].items()
                 if (CARD in text) == (path == GATEWAY)]
    if problems:
        raise SystemExit(f"bench.mcp_generations ({revision}): " + "; ".join(problems))


def main(argv: list[str] | None = None) -> None:
    args = parsed_rounds(rounds_parser(__doc__.splitlines()[0], "mcp-generations"), argv)
    if not MCP2_PYTHON.exists():
        raise SystemExit("bench.mcp_generations: no .venv-mcp2 (make .venv-mcp2/.deps)")
    started, load_at_start = datetime.now(UTC), os.getloadavg()[0]
    results, versions = {}, {}
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-mcp2-") as work, \
            contextlib.ExitStack() as cleanup:
        otlp = cleanup.enter_context(OtlpReceiver())
        port = stack.free_port()
        server = stack.Process.spawn("mcp2-server", [str(MCP2_PYTHON), str(SERVER), str(port)],
                                     Path(work))
        cleanup.callback(server.stop)
        server.ready_or_fail(stack.tcp_accepts(port), 30, f"accepting on port {port}")
        urls = gateway_paths(port, Path(work), cleanup, otlp.endpoint)
        for revision, mode in MODES.items():
            print(f"  {revision}: {args.warmup} + {args.calls} rounds ...", file=sys.stderr,
                  flush=True)
            measured = run_client(urls, mode, args.calls, args.warmup)
            check(revision, measured)
            results[revision], versions[revision] = figures(measured), measured["versions"]
    print(f"MCP tool calls, both protocol generations: the SDK's 2.x client and server; "
          f"{args.warmup} warm-up round(s), then {args.calls} rounds per revision")
    print(machine(load_at_start))
    for revision, figured in results.items():
        print(f"\n{revision}\n{table(figured)}")
    added = {revision: figured["read_file"][GATEWAY]["added_vs_envoy_ms"]
             for revision, figured in results.items()}
    print("\ntollgate adds per read_file call (masked) over Envoy alone: " + "; ".join(
        f"{revision} {a['p50']:.2f} ms p50 / {a['p99']:.2f} ms p99"
        for revision, a in added.items()))
    out = args.json_out or RESULTS / f"mcp-generations-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "started": started.isoformat(), "machine": platform.node(), "cpus": os.cpu_count(),
        "load_at_start": load_at_start, "load_at_end": os.getloadavg()[0],
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "versions": versions, "results": results}, indent=2), encoding="utf-8")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
