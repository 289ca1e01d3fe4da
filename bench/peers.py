"""Peers: tollgate beside LiteLLM's proxy on the same fast model, in one run (issue 60).

Run from the repository root: `python -m bench.peers [--json-out PATH]` (`make bench` does;
LiteLLM runs from its own venv, `make .venv-litellm/.deps`: its pins cannot share
tollgate's, bench/litellm-requirements.txt says why).

One fast OpenAI-shaped upstream (bench/openai_upstream.py: every POST answered with the same
~1.4 KB `chat.completion`, whose text holds a customer's e-mail and SSN) and the paths to it,
each sending `POST /v1/chat/completions` with a short question:

    upstream          client ─► upstream                          (what the others add to)
    envoy             client ─► Envoy ─► upstream: the quickstart bootstrap's /v1/ route
                      without the ext_proc filter (jwt_authn still verifies the token)
    tollgate          client ─► Envoy ─ext_proc─► tollgate (2 workers), then the upstream:
                      the quickstart's `llm` target and pack (its limit on personal values
                      an hour raised, as in bench/load.py), the chat request and the answer
                      read and masked, every exchange recorded (SQLite, signed) and its
                      span exported to a real OTLP receiver
    litellm           client ─► LiteLLM's proxy (2 uvicorn workers, a master key, no
                      guardrail, no database), then the upstream
    litellm-presidio  the same with LiteLLM's Presidio guardrail masking the request
                      (pre_call) and the answer (apply_to_output), Presidio served by
                      bench/presidio_service.py: the analyzer's pattern recognizers on a
                      blank spaCy pipeline (its NER model is a download from outside PyPI,
                      which cannot run here, so names go unmasked on this path; e-mails and
                      SSNs are patterns and are masked), and Presidio's anonymizer

Before anything is timed each path answers once, and its answer is checked: the upstream's
e-mail and SSN come back as they are from the upstream, Envoy alone and LiteLLM, and masked
from tollgate and LiteLLM with Presidio (else the run stops).

Two phases per path, with bench/load.py's load generator (its own process, raw keep-alive
HTTP/1.1, closed loop): 1 client (latency of one request at a time: p50 and p99, and what
each path adds to the upstream's own) and 16 clients (throughput and p99). The paths take
turns phase by phase, round after round, and the rounds are pooled, so a shared machine's
drift falls on all alike. CPU per request counts each process and its descendants (tollgate's
workers and writer, LiteLLM's workers, Presidio's service) from /proc.

`--breakdown` adds Envoy's own timing of each request at 1 client (an access log: from
the client's request to the upstream, the upstream, from its answer to the client's, and
the ext_proc filter's gRPC round trip per phase: request headers, request body, response
headers, response body), as medians, and one more path to read tollgate's against: Envoy
with bench/passthrough_extproc.py, the do-nothing Python ext_proc, asked for the request
headers and, as for a target whose answers are read, the response headers and buffered
body (the floor of any Python ext_proc here). Where tollgate's added milliseconds go.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.load import (
    EXT_PROC,
    GENERATOR,
    Measured,
    Phase,
    bench_pack,
    drive,
    figures,
    http_request,
    prioritise,
    recorded_config,
)
from bench.openai_upstream import MODEL, PERSONAL
from extproc import envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import stack
from tests.standins.otlp_receiver import OtlpReceiver

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
LITELLM = REPO / ".venv-litellm" / "bin" / "litellm"
PATHS = ("upstream", "envoy", "passthrough", "tollgate", "litellm", "litellm-presidio")
# Measured unless --paths leaves them out; `passthrough` with --breakdown only.
OPTIONAL = ("envoy", "tollgate", "litellm", "litellm-presidio")
MASKING = {"tollgate", "litellm-presidio"}  # the paths whose answers must come back masked
WORKERS = 2
MASTER_KEY = "sk-bench-master"  # LiteLLM's: a key of its own, checked on every request
CHAT = "/v1/chat/completions"
STARTED = "Application startup complete."  # what each of LiteLLM's workers logs when ready
BODY = json.dumps({"model": MODEL, "messages": [
    {"role": "user", "content": "Who is customer c-1001? Summarise the account in a paragraph."},
]}).encode()
PHASES = {"1 client": 1, "16 clients": 16}
PRESIDIO_NOTE = (
    "litellm-presidio: Presidio's analyzer with its pattern recognizers only, on a blank "
    "spaCy pipeline (its NER model is a download from outside PyPI, which cannot run here), "
    "and its anonymizer, served by bench/presidio_service.py; so e-mails, SSNs, cards, "
    "phones, IBANs and IPs are masked on that path, names and places are not")

# The goals of issue 60 for tollgate: added ms at 1 client over the upstream alone, and
# throughput at 16 clients against LiteLLM without a guardrail.
GOAL_ADDED_P50_MS = 4.0
GOAL_ADDED_P99_MS = 10.0
GOAL_VS_LITELLM = 5.0

# Envoy's timing of each request on the tollgate path (--breakdown): the ext_proc filter's
# state has each phase's gRPC round trip in µs.
EXT_PROC_FIELDS = ("request_header_latency_us", "request_body_total_latency_us",
                   "response_header_latency_us", "response_body_total_latency_us",
                   "request_body_call_count", "response_body_call_count")
FILE_ACCESS_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
# Envoy's time points, in µs: received from the client, sent upstream, the upstream's
# first byte back, the first and last byte to the client.
SEGMENTS = {
    "request_us": "DS_RX_BEG:US_TX_BEG",  # jwt_authn, ext_proc on request headers and body
    "upstream_us": "US_TX_BEG:US_RX_BEG",  # the upstream's own time (and the way there)
    "response_us": "US_RX_BEG:DS_TX_BEG",  # ext_proc on the answer (headers held, body read)
    "to_client_us": "DS_TX_BEG:DS_TX_END",
    "total_us": "DS_RX_BEG:DS_TX_END",
}
ACCESS_LOG_FORMAT = {
    **{key: f"%COMMON_DURATION({span}:us)%" for key, span in SEGMENTS.items()},
    **{field: f"%FILTER_STATE(envoy.filters.http.ext_proc:FIELD:{field})%"
       for field in EXT_PROC_FIELDS},
}


@dataclass(frozen=True)
class Path_:
    """Where a path takes requests, the request it is sent, and its processes by role."""

    port: int
    request: bytes
    pids: dict[str, int]
    access_log: Path | None = None  # Envoy's timing of each request (--breakdown)


# ---- The processes under test ----------------------------------------------------------------


def _stopped_on_exit(process: stack.Process, cleanup: contextlib.ExitStack) -> stack.Process:
    cleanup.callback(process.stop)
    return process


def http_ok(port: int, path: str) -> Callable[[], bool]:
    """Readiness: GET `path` answers 200."""
    def check() -> bool:
        with contextlib.suppress(OSError), urllib.request.urlopen(
                f"http://127.0.0.1:{port}{path}", timeout=1) as reply:
            return reply.status == 200
        return False

    return check


def with_access_log(bootstrap: dict[str, Any], path: Path) -> dict[str, Any]:
    """The bootstrap with a JSON access log of each request's timings on every HTTP
    listener (--breakdown)."""
    for manager in envoy_bootstrap.connection_managers(bootstrap):
        manager["access_log"] = [*manager.get("access_log", ()), {
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": FILE_ACCESS_LOG,
                "path": str(path),
                "log_format": {"json_format": ACCESS_LOG_FORMAT},
            },
        }]
    return bootstrap


def start_envoy(work: Path, name: str, upstream: int, cleanup: contextlib.ExitStack,
                otlp_endpoint: str, breakdown: bool) -> Path_:
    """Envoy from the quickstart bootstrap, its demo cluster pointed at the upstream, with
    what path `name` puts behind its ext_proc filter: nothing (`envoy`), tollgate's workers
    (`tollgate`), or the do-nothing ext_proc (`passthrough`, one process: the floor)."""
    logs = work / name
    logs.mkdir()
    workers = WORKERS if name == "tollgate" else 1
    ports = envoy_bootstrap.Ports(listener=stack.free_port(), admin=stack.free_port(),
                                  ext_proc=stack.free_ports(workers), upstream=upstream)
    bootstrap = envoy_bootstrap.with_ports(envoy_bootstrap.load(), ports, workers)
    access_log = logs / "access.jsonl" if breakdown else None
    if access_log is not None:
        bootstrap = with_access_log(bootstrap, access_log)
    if name == "envoy":
        bootstrap = envoy_bootstrap.without_ext_proc(bootstrap)
    envoy_yaml = envoy_bootstrap.write(bootstrap, logs / "envoy.yaml")
    pids = {}
    if name == "tollgate":
        quickstart = yaml.safe_load(QUICKSTART_CONFIG.read_text(encoding="utf-8"))
        (llm,) = [t for t in quickstart["targets"] if t["name"] == "llm"]
        config = {**recorded_config(ports.ext_proc, WORKERS, envoy_yaml, otlp_endpoint, logs,
                                    bench_pack()), "targets": [llm]}
        config_path = logs / "tollgate.yaml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        pids[EXT_PROC] = _stopped_on_exit(stack.start_tollgate(
            config_path, ports.ext_proc, logs, workers=WORKERS), cleanup).pid
    elif name == "passthrough":
        floor = _stopped_on_exit(stack.Process.spawn(name, [
            sys.executable, str(REPO / "bench" / "passthrough_extproc.py"),
            "--listen", f"127.0.0.1:{ports.ext_proc}", "--response-body", str(logs / "count"),
        ], logs), cleanup)
        floor.ready_or_fail(stack.grpc_serving(ports.ext_proc), 20, "gRPC health SERVING")
        pids[EXT_PROC] = floor.pid
    pids["envoy"] = _stopped_on_exit(stack.start_envoy(envoy_yaml, ports.admin, logs),
                                     cleanup).pid
    return Path_(ports.listener, http_request("POST", CHAT, BODY), pids, access_log)


def litellm_config(upstream: int, presidio_port: int | None) -> dict[str, Any]:
    """The model at the upstream, a master key, no database; with `presidio_port`, the
    Presidio guardrail on the request and on the answer, for every request."""
    config: dict[str, Any] = {
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": f"openai/{MODEL}", "api_base": f"http://127.0.0.1:{upstream}/v1",
            "api_key": "sk-upstream"}}],
        "general_settings": {"master_key": MASTER_KEY},
        "litellm_settings": {"telemetry": False},
    }
    if presidio_port is not None:
        base = f"http://127.0.0.1:{presidio_port}"
        config["guardrails"] = [{"guardrail_name": "presidio-pii", "litellm_params": {
            "guardrail": "presidio", "mode": "pre_call", "default_on": True,
            "apply_to_output": True,
            "presidio_analyzer_api_base": base, "presidio_anonymizer_api_base": base}}]
    return config


def start_litellm(work: Path, name: str, upstream: int, litellm: Path,
                  cleanup: contextlib.ExitStack, presidio: bool) -> Path_:
    """LiteLLM's proxy with WORKERS uvicorn workers (and Presidio's service, `presidio`)."""
    logs = work / name
    logs.mkdir()
    pids = {}
    presidio_port = None
    if presidio:
        presidio_port = stack.free_port()
        service = _stopped_on_exit(stack.Process.spawn(
            "presidio", [sys.executable, "-m", "bench.presidio_service",
                         "--port", str(presidio_port)], logs), cleanup)
        service.ready_or_fail(stack.tcp_accepts(presidio_port), 60, "accepting")
        pids["presidio"] = service.pid
    config = logs / "litellm.yaml"
    config.write_text(yaml.safe_dump(litellm_config(upstream, presidio_port)),
                      encoding="utf-8")
    port = stack.free_port()
    # The model cost map from the package, not fetched from the network at start. A
    # worker takes ~20 s to import the proxy on a busy 2-core machine: uvicorn's default
    # health-check timeout (5 s) kills and restarts it, for ever.
    proxy = _stopped_on_exit(stack.Process.spawn(
        "litellm", [str(litellm), "--config", str(config), "--host", "127.0.0.1",
                    "--port", str(port), "--num_workers", str(WORKERS),
                    "--timeout_worker_healthcheck", "120"],
        logs, env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"}), cleanup)
    proxy.ready_or_fail(lambda: proxy.tail(1000).count(STARTED) >= WORKERS and http_ok(
        port, "/health/liveliness")(), 300, f"{WORKERS} workers started")
    pids["litellm"] = proxy.pid
    return Path_(port, http_request("POST", CHAT, BODY, token=MASTER_KEY), pids)


def start(args: argparse.Namespace, work: Path, cleanup: contextlib.ExitStack,
          otlp_endpoint: str) -> dict[str, Path_]:
    """Every path of `args.paths`, with the upstream they share."""
    upstream = stack.free_port()
    process = _stopped_on_exit(stack.Process.spawn(
        "upstream", [sys.executable, "-m", "bench.openai_upstream", "--port", str(upstream)],
        work), cleanup)
    process.ready_or_fail(stack.tcp_accepts(upstream), 30, f"accepting on {upstream}")
    paths = {"upstream": Path_(upstream, http_request("POST", CHAT, BODY, token="sk-upstream"),
                               {})}
    for name in [*args.paths, *(["passthrough"] if args.breakdown else [])]:
        if not name.startswith("litellm"):
            paths[name] = start_envoy(work, name, upstream, cleanup, otlp_endpoint,
                                      args.breakdown)
        else:
            paths[name] = start_litellm(work, name, upstream, args.litellm, cleanup,
                                        name == "litellm-presidio")
    for path in paths.values():
        path.pids["upstream"] = process.pid
    return {name: paths[name] for name in PATHS if name in paths}


def answer(path: Path_) -> tuple[int, dict[str, str], str]:
    """One request as a client sends it: the status, headers and text of the answer."""
    head, _, body = path.request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    connection = http.client.HTTPConnection("127.0.0.1", path.port, timeout=30)
    try:
        connection.request("POST", CHAT, body, headers)
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read().decode()
    finally:
        connection.close()


def check(paths: dict[str, Path_]) -> dict[str, dict[str, Any]]:
    """Each path's first answer: 200, a completion, and the upstream's e-mail and SSN
    masked where the path masks and as they were elsewhere; stops the run otherwise."""
    checks, problems = {}, []
    for name, path in paths.items():
        status, headers, text = answer(path)
        content = ""
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            content = json.loads(text)["choices"][0]["message"]["content"]
        left = [value for value in PERSONAL if value in content]
        checks[name] = {"status": status, "chars": len(text), "personal_left": left,
                        "trace_id": "x-tollgate-trace-id" in headers}
        if status != 200 or not content:
            problems.append(f"{name}: answered {status}: {text[:300]}")
        elif name in MASKING and left:
            problems.append(f"{name}: the answer holds {left}: not masked")
        elif name not in MASKING and len(left) < len(PERSONAL):
            problems.append(f"{name}: the answer is masked; it should not be")
    if problems:
        raise SystemExit("bench.peers: " + "; ".join(problems))
    return checks


# ---- Measuring -------------------------------------------------------------------------------


def breakdown_lines(access_log: Path, start: int) -> list[dict[str, Any]]:
    """The access log's records written from byte `start` on."""
    with access_log.open("rb") as log:
        log.seek(start)
        return [json.loads(line) for line in log.read().splitlines() if line.strip()]


def run(args: argparse.Namespace, work: Path) -> tuple[dict[str, Any], dict[str, Any],
                                                       dict[str, list[dict[str, Any]]]]:
    """Start the paths, check their answers, measure each phase of each in turn; with
    --breakdown, Envoy's timings of each request at 1 client too."""
    rounds: dict[str, dict[str, list[Measured]]] = {}
    timings: dict[str, list[dict[str, Any]]] = {}
    spawn = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as cleanup:
        generator = cleanup.enter_context(ProcessPoolExecutor(
            1, mp_context=spawn, initializer=prioritise))
        otlp = cleanup.enter_context(OtlpReceiver())
        paths = start(args, work, cleanup, otlp.endpoint)
        checks = check(paths)
        rounds = {name: {phase: [] for phase in PHASES} for name in paths}
        for round_, (phase, clients), (name, path) in itertools.product(
                range(args.rounds), PHASES.items(), paths.items()):
            print(f"  {name}: {phase} (round {round_ + 1}/{args.rounds}) ...",
                  file=sys.stderr, flush=True)
            log = path.access_log if clients == 1 else None
            offset = log.stat().st_size if log is not None and log.exists() else 0
            rounds[name][phase].append(generator.submit(drive, Phase(
                path.port, path.request, clients, args.warmup, args.seconds, None, path.pids,
            )).result())
            if log is not None:
                timings.setdefault(name, []).extend(breakdown_lines(log, offset))
    results = {name: {phase: figures(Measured.pooled(measured))
                      for phase, measured in by_phase.items()}
               for name, by_phase in rounds.items()}
    return results, checks, timings


def summarise_breakdown(timings: dict[str, list[dict[str, Any]]]
                        ) -> dict[str, dict[str, float | None]]:
    """Per path, the median of each of Envoy's timings in ms (call counts as they are)
    over the requests of its 1-client phases, warm-ups included."""
    summary: dict[str, dict[str, float | None]] = {}
    for name, lines in timings.items():
        row: dict[str, float | None] = {"requests": len(lines)}
        for key in ACCESS_LOG_FORMAT:
            values = [float(line[key]) for line in lines
                      if isinstance(line.get(key), int | float)
                      or str(line.get(key, "")).isdigit()]
            counted = key.endswith("_count")
            median = statistics.median(values) if values else None
            row[key if counted else key.removesuffix("_us") + "_ms"] = (
                median if counted or median is None else median / 1000)
        summary[name] = row
    return summary


# ---- Figures and table -----------------------------------------------------------------------


def gateway_cpu_us(row: dict[str, Any]) -> float | None:
    """The CPU per request of every process of the path but the upstream and the generator."""
    cpu = row["cpu_us_per_request"]
    mine = [v for role, v in cpu.items()
            if role not in ("upstream", GENERATOR, "gateway") and v is not None]
    return sum(mine) if mine else None


def summary(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per path: 1 client p50/p99 and their excess over the upstream alone; 16 clients
    req/s, p99, and the ratio against LiteLLM's req/s; the gateway's CPU per request."""
    base = results["upstream"]["1 client"]
    litellm = results.get("litellm", {}).get("16 clients", {}).get("rps")
    rows = {}
    for name, phases in results.items():
        one, many = phases["1 client"], phases["16 clients"]
        rows[name] = {
            "p50_ms": one["p50_ms"], "p99_ms": one["p99_ms"],
            "added_p50_ms": one["p50_ms"] - base["p50_ms"],
            "added_p99_ms": one["p99_ms"] - base["p99_ms"],
            "rps_16": many["rps"], "p99_ms_16": many["p99_ms"],
            "vs_litellm_16": many["rps"] / litellm if litellm else None,
            "cpu_us_per_request_16": gateway_cpu_us(many),
            "errors": one["errors"] + many["errors"],
        }
    return rows


def goals(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 60's goals for tollgate, each with its verdict (None: not measured)."""
    row = rows.get("tollgate")
    if row is None:
        return []
    checks = (("added p50 at 1 client (ms)", row["added_p50_ms"], "<=", GOAL_ADDED_P50_MS),
              ("added p99 at 1 client (ms)", row["added_p99_ms"], "<=", GOAL_ADDED_P99_MS),
              ("req/s at 16 clients vs LiteLLM", row["vs_litellm_16"], ">=", GOAL_VS_LITELLM))
    return [{"goal": goal, "value": value, "op": op, "limit": limit,
             "met": None if value is None else value <= limit if op == "<=" else value >= limit}
            for goal, value, op, limit in checks]


def _ms(value: float | None, sign: bool = False) -> str:
    return "-" if value is None else f"{value:+.2f}" if sign else f"{value:.2f}"


def table(rows: dict[str, dict[str, Any]], checks: dict[str, dict[str, Any]]) -> str:
    """The markdown table of the run."""
    lines = [
        "| path | 1 client p50 ms | +p50 | p99 ms | +p99 | 16 clients req/s | x LiteLLM "
        "| p99 ms | gateway CPU µs/req | errors | answer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, row in rows.items():
        left = checks[name]["personal_left"]
        shown = "e-mail, SSN masked" if not left else "as sent" if len(left) == len(
            PERSONAL) else f"{', '.join(left)} left"
        base = name == "upstream"
        ratio = row["vs_litellm_16"]
        cpu = row["cpu_us_per_request_16"]
        lines.append(
            f"| {name} | {_ms(row['p50_ms'])} | {'' if base else _ms(row['added_p50_ms'], True)} "
            f"| {_ms(row['p99_ms'])} | {'' if base else _ms(row['added_p99_ms'], True)} "
            f"| {row['rps_16']:,.0f} | {'-' if ratio is None else f'{ratio:.2f}x'} "
            f"| {_ms(row['p99_ms_16'])} | {'' if cpu is None else f'{cpu:,.0f}'} "
            f"| {row['errors']} | {shown} |")
    return "\n".join(lines)


def report(rows: dict[str, dict[str, Any]], checks: dict[str, dict[str, Any]],
           goal_lines: list[dict[str, Any]],
           breakdown: dict[str, dict[str, float | None]] | None,
           args: argparse.Namespace, presidio_note: str | None) -> str:
    verdict = {True: "MET", False: "NOT MET", None: "not measured"}
    lines = [
        f"{args.rounds} round(s) per phase, each {args.warmup:g} s warm-up then "
        f"{args.seconds:g} s measured, paths in turn; closed loop, keep-alive; +p50/+p99: "
        "over the upstream alone at 1 client; gateway CPU: every process of the path but "
        "the upstream's, at 16 clients",
        "",
        table(rows, checks),
        "",
    ]
    if presidio_note:
        lines += [presidio_note, ""]
    if goal_lines:
        lines.append("goals (issue 60), tollgate:")
        lines += [f"  {g['goal']}: {_ms(g['value'])} {g['op']} {g['limit']:g}  "
                  f"{verdict[g['met']]}" for g in goal_lines]
    if breakdown:
        keys = [key for key in next(iter(breakdown.values())) if key != "requests"]
        lines += ["", "Envoy's timing at 1 client, median per request, ms (request: received "
                  "to sent upstream; upstream: sent to its first byte back; response: that "
                  "to the first byte to the client; ext_proc: each phase's gRPC round trip "
                  "to tollgate; a streamed answer's body is timed within its headers'):",
                  "| path | requests | " + " | ".join(keys) + " |",
                  "| --- | ---: |" + " ---: |" * len(keys)]
        lines += [f"| {name} | {row['requests']:.0f} | " + " | ".join(
                      "-" if row[key] is None else f"{row[key]:.3f}" if key.endswith("_ms")
                      else f"{row[key]:g}" for key in keys) + " |"
                  for name, row in breakdown.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window a phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured lead a phase")
    parser.add_argument("--rounds", type=int, default=2, help="each phase of each path in "
                        "turn this many times, pooled")
    parser.add_argument("--paths", nargs="+", choices=OPTIONAL, default=list(OPTIONAL),
                        help="the paths besides the upstream alone (always measured)")
    parser.add_argument("--litellm", type=Path, default=LITELLM,
                        help="LiteLLM's proxy command (make .venv-litellm/.deps)")
    parser.add_argument("--breakdown", action="store_true",
                        help="Envoy's timing of each phase on the tollgate path at 1 client")
    parser.add_argument("--json-out", type=Path,
                        help="default: bench/results/peers-<timestamp>.json")
    args = parser.parse_args(argv)
    if any(p.startswith("litellm") for p in args.paths) and not args.litellm.exists():
        raise SystemExit(f"bench.peers: no LiteLLM at {args.litellm}: make .venv-litellm/.deps")

    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="tollgate-peers-") as work:
        results, checks, timings = run(args, Path(work))
    rows = summary(results)
    goal_lines = goals(rows)
    breakdown = summarise_breakdown(timings) if args.breakdown else None
    print(report(rows, checks, goal_lines, breakdown, args,
                 PRESIDIO_NOTE if "litellm-presidio" in rows else None))
    out = args.json_out or RESULTS / f"peers-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "started": started.isoformat(), "machine": platform.node(), "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "request": BODY.decode(), "checks": checks, "results": results, "summary": rows,
        "goals": goal_lines, "breakdown": breakdown,
    }, indent=2), encoding="utf-8")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
