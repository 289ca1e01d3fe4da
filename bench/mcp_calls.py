"""MCP benchmark: the latency tollgate adds to each MCP call, against the server direct and
against Envoy alone, in the same run.

Run from the repository root: `python -m bench.mcp_calls [--calls N] [--json]` (`make bench`
does, with the defaults).

One demo MCP server (extproc/quickstart/demo_mcp.py, a process of its own) and three
paths to it:

    direct    client ─► demo MCP server
    envoy     client ─► Envoy ─► server         envoy/quickstart.yaml's /mcp route with the
                                                ext_proc filter removed (jwt_authn still
                                                verifies the token), as bench/load.py's
                                                Envoy alone
    tollgate  client ─► Envoy ─ext_proc─► tollgate, then the server: the quickstart's
                                                `tools` target (every JSON-RPC message read,
                                                tool calls judged, tools/list filtered by a
                                                probe decision per tool, results masked),
                                                recording every exchange and exporting its
                                                spans to a real OTLP receiver, as shipped

The client is the `mcp` SDK's (streamable HTTP over an httpx.AsyncClient carrying a
signed token, a ClientSession), in a process of its own so that nothing else in the
benchmark's process (the OTLP receiver) takes its GIL. One session per path, all three
open at once; after one tools/list each (tollgate pins the tools it lists: a call to a
tool never listed is refused) and the warm-up, each round makes every operation once on
every path, the paths in a rotating order, so a shared machine's drift falls on all
three alike. Calls are sequential: the latency of one call, not throughput (that is
bench/load.py's). Operations:

    query       tools/call of `query` with a SELECT (tollgate parses the SQL)
    read_file   tools/call of `read_file` on customers.csv (~400 characters), whose card
                numbers and other personal data tollgate masks (checked: the benchmark
                stops if the gateway's answer holds a card number, or the others' do not)
    tools/list  the server's five tools (tollgate probes each with a policy decision and
                hides rotate_keys from an agent)

Answers come as the SDK server's default, an event stream per POST (SSE); `--json` starts
the server answering JSON instead. Latency is from the client's call to its result, SDK
included; the added latency is a difference of percentiles (p50 of tollgate minus p50 of
Envoy alone, ...), as bench/load.py reports it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from mcp import ClientSession, McpError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ListToolsResult

from bench.load import SQL, TOKEN, bench_pack, percentile, prioritise
from extproc import envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import stack
from extproc.quickstart.demo_mcp import MCP_PATH
from extproc.quickstart.demo_upstream import CUSTOMERS
from tests.standins.otlp_receiver import OtlpReceiver

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PATHS = ("direct", "envoy", "tollgate")
GATEWAY = "tollgate"
TRACE_HEADER = "x-tollgate-trace-id"
MASKED_FILE = "customers.csv"
# Every card number of the demo's customers: in customers.csv as the server reads it, and
# in no answer through tollgate.
CARDS = tuple(c["card_number"] for c in CUSTOMERS)

Result = CallToolResult | ListToolsResult
OPERATIONS: dict[str, Callable[[ClientSession], Awaitable[Result]]] = {
    "query": lambda s: s.call_tool("query", {"sql": SQL}),
    "read_file": lambda s: s.call_tool("read_file", {"path": MASKED_FILE}),
    "tools/list": lambda s: s.list_tools(),
}


# ---- The client: runs in its own process ----------------------------------------------------


def text_of(result: CallToolResult) -> str:
    return "".join(part.text for part in result.content if part.type == "text")


async def _open(url: str, cleanup: contextlib.AsyncExitStack,
                trace_ids: dict[str, int], path: str) -> ClientSession:
    """An initialized session of the SDK's client on `url`, counting the responses that
    carry tollgate's trace id."""

    async def count_trace_id(response: httpx.Response) -> None:
        if TRACE_HEADER in response.headers:
            trace_ids[path] += 1

    http = await cleanup.enter_async_context(httpx.AsyncClient(
        headers={"authorization": f"Bearer {TOKEN}"}, timeout=httpx.Timeout(30, read=300),
        event_hooks={"response": [count_trace_id]}))
    read, write, _ = await cleanup.enter_async_context(
        streamable_http_client(url, http_client=http))
    session = await cleanup.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def _call(session: ClientSession, operation: str) -> tuple[float, bool, Result | None]:
    """One call: its latency in ms, whether it succeeded, and its result."""
    start = time.perf_counter_ns()
    try:
        result = await OPERATIONS[operation](session)
    except McpError:  # a JSON-RPC error: tollgate's refusal, or the server's
        return (time.perf_counter_ns() - start) / 1e6, False, None
    elapsed = (time.perf_counter_ns() - start) / 1e6
    return elapsed, not getattr(result, "isError", False), result


async def _measure(urls: dict[str, str], calls: int, warmup: int) -> dict[str, Any]:
    trace_ids = dict.fromkeys(urls, 0)
    samples: dict[str, dict[str, list[float]]] = {op: {p: [] for p in urls} for op in OPERATIONS}
    errors = {op: dict.fromkeys(urls, 0) for op in OPERATIONS}
    async with contextlib.AsyncExitStack() as cleanup:
        sessions = {path: await _open(url, cleanup, trace_ids, path)
                    for path, url in urls.items()}
        listed = {path: sorted(t.name for t in (await s.list_tools()).tools)
                  for path, s in sessions.items()}
        files = {}
        for path, session in sessions.items():
            _, ok, result = await _call(session, "read_file")
            files[path] = text_of(result) if ok and isinstance(result, CallToolResult) else None
        for round_ in range(warmup + calls):
            order = [*urls][round_ % len(urls):] + [*urls][:round_ % len(urls)]
            for operation, path in itertools.product(OPERATIONS, order):
                elapsed, ok, _ = await _call(sessions[path], operation)
                if round_ >= warmup:
                    samples[operation][path].append(elapsed)
                    errors[operation][path] += not ok
    return {"samples": samples, "errors": errors, "listed": listed, "files": files,
            "trace_ids": trace_ids}


def measure(urls: dict[str, str], calls: int, warmup: int) -> dict[str, Any]:
    """The client's whole run (in the client process): latencies in ms by operation and
    path, errors, what each path listed and read, and how many answers carried a trace id.
    A failure comes back as its traceback's text: httpx's errors do not pickle."""
    try:
        return asyncio.run(_measure(urls, calls, warmup))
    except BaseException:
        raise RuntimeError(f"the MCP client failed:\n{traceback.format_exc()}") from None


# ---- The processes under test ----------------------------------------------------------------


def tollgate_config(grpc_port: int, otlp_endpoint: str) -> dict[str, Any]:
    """One worker (calls are sequential: one would serve them all; and `auto`, one per
    core, would listen on ports after `grpc_port` nobody reserved), the default pack, and
    the quickstart's own `tools` target."""
    quickstart = yaml.safe_load(QUICKSTART_CONFIG.read_text(encoding="utf-8"))
    (tools,) = [t for t in quickstart["targets"] if t["name"] == "tools"]
    return {
        "listen": {"grpc": f"127.0.0.1:{grpc_port}", "drain_seconds": 5, "workers": 1},
        "policy": {"engine": "embedded", "dir": str(bench_pack())},
        "telemetry": {"service_name": "tollgate-bench", "otlp_endpoint": otlp_endpoint},
        "targets": [tools],
    }


def start(json_response: bool, work: Path, cleanup: contextlib.ExitStack,
          otlp_endpoint: str) -> dict[str, str]:
    """The server, Envoy alone and Envoy with tollgate: the MCP URL of each path."""
    server_port = stack.free_port()
    cleanup.callback(stack.start_demo_mcp(server_port, work / "mcp-files", work,
                                          json_response).stop)
    return gateway_paths(server_port, work, cleanup, otlp_endpoint)


def gateway_paths(server_port: int, work: Path, cleanup: contextlib.ExitStack,
                  otlp_endpoint: str) -> dict[str, str]:
    """The three paths to the MCP server on `server_port` (its endpoint at MCP_PATH):
    direct, through Envoy alone, and through Envoy and tollgate, started here."""

    def stopped_on_exit(process: stack.Process) -> stack.Process:
        cleanup.callback(process.stop)
        return process

    urls = {"direct": f"http://127.0.0.1:{server_port}{MCP_PATH}"}
    for path in ("envoy", GATEWAY):
        ports = envoy_bootstrap.Ports(
            listener=stack.free_port(), admin=stack.free_port(), ext_proc=stack.free_port(),
            upstream=stack.free_port(),  # the demo upstream's cluster: nothing routes there
            mcp=server_port)
        logs = work / path
        logs.mkdir()
        bootstrap = envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports)
        if path == GATEWAY:
            config = logs / "tollgate.yaml"
            config.write_text(yaml.safe_dump(tollgate_config(ports.ext_proc, otlp_endpoint)),
                              encoding="utf-8")
            stopped_on_exit(stack.start_tollgate(config, ports.ext_proc, logs))
        else:
            bootstrap = envoy_bootstrap.without_ext_proc(bootstrap)
        envoy_yaml = envoy_bootstrap.write(bootstrap, logs / "envoy.yaml")
        stopped_on_exit(stack.start_envoy(envoy_yaml, ports.admin, logs))
        urls[path] = f"http://127.0.0.1:{ports.listener}{MCP_PATH}"
    return urls


def check(measured: dict[str, Any]) -> dict[str, Any]:
    """What each path's answers show: the gateway's read_file masked and the others' not,
    tollgate's trace id on the gateway's answers only. Stops the benchmark on a path that
    did not carry the calls as it should."""
    files, listed = measured["files"], measured["listed"]
    cards = {path: text is not None and any(card in text for card in CARDS)
             for path, text in files.items()}
    checks = {
        "read_file_masked": {path: text is not None and not cards[path]
                             for path, text in files.items()},
        "read_file_chars": {path: None if text is None else len(text)
                            for path, text in files.items()},
        "tools_listed": listed,
        "trace_id_answers": measured["trace_ids"],
    }
    problems = [f"{path}: read_file failed" for path, text in files.items() if text is None]
    problems += [f"{path}: the read_file answer is masked, it should not be"
                 for path in PATHS if path != GATEWAY and checks["read_file_masked"][path]]
    if files[GATEWAY] is not None and cards[GATEWAY]:
        problems.append(f"{GATEWAY}: a card number in the read_file answer: not masked")
    if not measured["trace_ids"][GATEWAY]:
        problems.append(f"{GATEWAY}: no answer carried {TRACE_HEADER}: tollgate not asked")
    problems += [f"{path}: {TRACE_HEADER} on its answers" for path in PATHS
                 if path != GATEWAY and measured["trace_ids"][path]]
    if problems:
        raise SystemExit("bench.mcp_calls: " + "; ".join(problems))
    return checks


# ---- Figures and table -----------------------------------------------------------------------

QUANTILES = (50, 90, 99)


def figures(measured: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per operation and path: calls, errors, p50/p90/p99 and mean in ms, and the added
    ms at each percentile against the direct path and against Envoy alone."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for operation, by_path in measured["samples"].items():
        rows = results[operation] = {}
        for path, values in by_path.items():
            rows[path] = {"calls": len(values), "errors": measured["errors"][operation][path],
                          **{f"p{q}_ms": percentile(values, q) for q in QUANTILES},
                          "mean_ms": sum(values) / len(values) if values else float("nan")}
        for path, row in rows.items():
            for base in PATHS[:PATHS.index(path)]:
                row[f"added_vs_{base}_ms"] = {
                    f"p{q}": row[f"p{q}_ms"] - rows[base][f"p{q}_ms"] for q in QUANTILES}
    return results


COLUMNS = (("operation", 11), ("path", 9), ("p50 ms", 7), ("p90 ms", 7), ("p99 ms", 7),
           ("+ vs direct p50/p90/p99", 24), ("+ vs envoy p50/p90/p99", 23), ("err", 4))


def _line(cells: tuple[str, ...]) -> str:
    return " ".join(f"{cell:<{width}}" if i < 2 else f"{cell:>{width}}"
                    for i, (cell, (_, width)) in enumerate(zip(cells, COLUMNS, strict=True)))


def _added(row: dict[str, Any], base: str) -> str:
    added = row.get(f"added_vs_{base}_ms")
    return "-" if added is None else "/".join(f"{added[f'p{q}']:+.2f}" for q in QUANTILES)


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [_line(tuple(title for title, _ in COLUMNS))]
    for operation, rows in results.items():
        for i, (path, row) in enumerate(rows.items()):
            lines.append(_line((
                operation if i == 0 else "", path,
                *(f"{row[f'p{q}_ms']:.2f}" for q in QUANTILES),
                _added(row, "direct"), _added(row, "envoy"), str(row["errors"]),
            )))
    return "\n".join(lines)


def machine(load_at_start: float) -> str:
    """The machine, and how busy it was: its 1-minute load average at the start and now."""
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
                  if line.startswith("model name")), platform.machine())
    return (f"machine: {platform.node()}, {os.cpu_count()} cores ({model}), load average "
            f"{load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
            f"Python {sys.version.split()[0]}")


def report(results: dict[str, dict[str, dict[str, Any]]], checks: dict[str, Any],
           args: argparse.Namespace, load_at_start: float) -> str:
    answers = "JSON answers (--json)" if args.json else "event-stream (SSE) answers"
    tools = {path: len(names) for path, names in checks["tools_listed"].items()}
    query, read = results["query"][GATEWAY], results["read_file"][GATEWAY]
    return "\n".join([
        f"MCP tool calls, demo MCP server with {answers}: one SDK client session per path; "
        f"{args.warmup} warm-up round(s), then {args.calls} rounds, each every operation "
        "once on every path (sequential calls, paths in rotating order)",
        machine(load_at_start),
        "",
        table(results),
        "",
        "+ vs X: added ms over path X at p50/p90/p99 (difference of the percentiles); "
        "envoy = Envoy alone (jwt_authn, no ext_proc); tollgate = Envoy + tollgate "
        "(the quickstart's `tools` target, recording and span export on)",
        f"read_file {MASKED_FILE}: {checks['read_file_chars']['direct']} chars direct, "
        f"masked through tollgate ({checks['read_file_chars'][GATEWAY]} chars); tools listed: "
        + ", ".join(f"{path} {n}" for path, n in tools.items()),
        f"tollgate adds per tools/call over Envoy alone: query (SQL parsed) "
        f"{query['added_vs_envoy_ms']['p50']:.2f} ms p50 / "
        f"{query['added_vs_envoy_ms']['p99']:.2f} ms p99, read_file (masked) "
        f"{read['added_vs_envoy_ms']['p50']:.2f} ms p50 / "
        f"{read['added_vs_envoy_ms']['p99']:.2f} ms p99",
    ])


# ---- Orchestration ---------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start the server and both Envoys (and tollgate), measure from the client process,
    stop everything (also on error)."""
    with contextlib.ExitStack() as cleanup:
        client = cleanup.enter_context(ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=prioritise))
        otlp = cleanup.enter_context(OtlpReceiver())
        urls = start(args.json, work, cleanup, otlp.endpoint)
        print(f"  {args.warmup} + {args.calls} rounds on {', '.join(urls)} ...",
              file=sys.stderr, flush=True)
        return client.submit(measure, urls, args.calls, args.warmup).result()


def rounds_parser(description: str, results: str) -> argparse.ArgumentParser:
    """The arguments of an MCP benchmark's rounds (bench/mcp_generations.py's too), and
    where its results go (`results`: the file name's start in bench/results/)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--calls", type=int, default=200, metavar="N",
                        help="measured calls of each operation on each path (default 200)")
    parser.add_argument("--warmup", type=int, default=20, metavar="N",
                        help="unmeasured rounds first (default 20)")
    parser.add_argument("--json-out", type=Path,
                        help=f"default: bench/results/{results}-<timestamp>.json")
    return parser


def parsed_rounds(parser: argparse.ArgumentParser, argv: list[str] | None
                  ) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.calls < 1 or args.warmup < 0:
        parser.error("--calls must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> None:
    parser = rounds_parser(__doc__.splitlines()[0], "mcp")
    parser.add_argument("--json", action="store_true",
                        help="the server answers JSON, not an event stream")
    args = parsed_rounds(parser, argv)

    started, load_at_start = datetime.now(UTC), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-mcp-") as work:
        measured = run(args, Path(work))
    checks = check(measured)
    results = figures(measured)
    print(report(results, checks, args, load_at_start))
    out = args.json_out or RESULTS / f"mcp-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "started": started.isoformat(), "machine": platform.node(), "cpus": os.cpu_count(),
        "load_at_start": load_at_start, "load_at_end": os.getloadavg()[0],
        "python": sys.version.split()[0],
        "answers": "json" if args.json else "sse",
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": results, "checks": checks,
    }, indent=2), encoding="utf-8")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
