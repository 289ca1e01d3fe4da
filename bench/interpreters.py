"""Protocol interpreters: µs to read a request (or a model's answer) and µs to decide on it.

Run from the repository root: `python -m bench.interpreters` (`make bench` does).

Each row is one kind of exchange as the servicer meets it: the request (or answer) read
by the target's interpreter (`extproc.interpret`), then the policy input encoded and
decided by the embedded engine on the default pack. SQL is measured twice: a text seen
before (agents repeat their queries; the interpreter's cache answers) and a text never
seen (each sample differs by a literal, so the parser runs every time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from extproc import config
from extproc.codecs.message import decode_request_body, request_view
from extproc.interpret import Interpreter, Llm, interpreter_for
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.input import InputEncoder
from extproc.policy.sources import read_modules

REPO = Path(__file__).resolve().parent.parent
IDENTITY = {"authenticated": True, "sub": "svc-autogen", "iss": "https://tollgate.dev.local",
            "aud": ["tollgate"], "email": None, "groups": ["agents"], "jti": "j-1"}
JOIN = ("SELECT c.id, c.name, sum(o.total) AS spent FROM customers c JOIN orders o "
        "ON o.customer_id = c.id WHERE o.created_at > now() - interval '30 days' "
        "AND c.tier IN ('gold', 'silver') GROUP BY c.id, c.name HAVING sum(o.total) > {n} "
        "ORDER BY spent DESC LIMIT 50")
CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "You are an operations assistant. " * 20},
                 {"role": "user", "content": "Free some disk space on the database host."}],
    "tools": [{"type": "function", "function": {"name": name, "description": "runs it",
                                                "parameters": {"type": "object"}}}
              for name in ("run_shell", "run_sql", "read_file", "send_email")],
}


def target(protocol: str, **settings: Any) -> config.Target:
    spec = {"name": protocol, "match": {"route": protocol}, "protocol": protocol, **settings}
    return config.parse({"targets": [spec]}).targets[0]


def http_request(method: str, path: str, body: Any = None, **headers: str) -> dict[str, Any]:
    """input.request as the servicer builds it from Envoy's headers and body."""
    envoy = {":method": method, ":path": path, "user-agent": "agent/1.0", **headers}
    raw = json.dumps(body).encode() if body is not None else b""
    if raw:
        envoy["content-type"] = "application/json"
    request = request_view(envoy, ())
    if raw:
        request["body"] = decode_request_body(envoy, raw)
    return request


def tool_answer(command: str) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None, "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "run_shell",
                                 "arguments": json.dumps({"command": command})}}]}}]}


def streamed_answer(command: str, pieces: int = 20) -> bytes:
    """A tool call streamed in `pieces` argument deltas, as OpenAI streams one."""
    arguments = json.dumps({"command": command})
    step = max(1, len(arguments) // pieces)
    deltas = [{"index": 0, "id": "call_1", "type": "function",
               "function": {"name": "run_shell", "arguments": ""}}]
    deltas += [{"index": 0, "function": {"arguments": arguments[i:i + step]}}
               for i in range(0, len(arguments), step)]
    events = [{"choices": [{"index": 0, "delta": {"tool_calls": [d]}, "finish_reason": None}]}
              for d in deltas]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


Case = tuple[str, config.Target, Callable[[int], tuple[str, Any]]]
"""(name, target, sample n -> (phase, what to read)) — a request, or an LLM answer."""


def cases() -> list[Case]:
    postgres, sqlite = target("sql-http"), target("sql-http", sql={"dialect": "sqlite"})
    k8s = target("k8s", k8s={"namespace_labels": {"prod": {"environment": "production"}}})
    llm = target("llm")
    select = "SELECT id, name, email FROM customers WHERE id > 0 ORDER BY name LIMIT 10"
    exec_path = ("/api/v1/namespaces/prod/pods/web-1/exec?command=sh&command=-c"
                 "&command=rm%20-rf%20%2Fdata&container=app&stdin=true&tty=true")
    return [
        ("sql postgres, select, seen before", postgres,
         lambda _n: ("request", http_request("POST", "/sql", {"sql": select}))),
        ("sql postgres, select, new text", postgres,
         lambda n: ("request", http_request("POST", "/sql", {"sql": f"{select} OFFSET {n}"}))),
        ("sql postgres, 4-table join, new text", postgres,
         lambda n: ("request", http_request("POST", "/sql", {"sql": JOIN.format(n=n)}))),
        ("sql postgres, stacked DROP, new text", postgres,
         lambda n: ("request", http_request("POST", "/sql", {
             "sql": f"SELECT {n}; DROP TABLE customers"}))),
        ("sql sqlite (sqlglot), select, new text", sqlite,
         lambda n: ("request", http_request("GET", f"/db.json?sql=select+*+from+t+limit+{n}"))),
        ("k8s, list pods", k8s,
         lambda _n: ("request", http_request("GET", "/api/v1/namespaces/prod/pods?limit=50"))),
        ("k8s, websocket exec", k8s,
         lambda _n: ("request", http_request("GET", exec_path, connection="Upgrade",
                                            upgrade="websocket"))),
        ("llm, 2 KB chat request", llm,
         lambda _n: ("request", http_request("POST", "/v1/chat/completions", CHAT))),
        ("llm, whole answer with a tool call", llm,
         lambda n: ("response", tool_answer(f"du -sh /var/lib/postgresql/{n} | sort -h"))),
        ("llm, streamed tool call (20 deltas)", llm,
         lambda n: ("response", streamed_answer(f"tar czf /tmp/logs-{n}.tgz /var/log/app"))),
    ]


def read(interpreter: Interpreter, request: dict[str, Any], phase: str, what: Any) -> Any:
    """What the servicer's interpreter call gives for this sample."""
    if phase == "request":
        return interpreter.request(what)
    assert isinstance(interpreter, Llm)
    meaning = interpreter.request(request)
    if isinstance(what, bytes):
        stream = interpreter.stream()
        stream.feed(what)
        stream.finish()
        return interpreter.streamed(meaning, stream)
    return interpreter.response(meaning, what)


def measure(case: Case, engine: EmbeddedEngine, seconds: float) -> dict[str, Any]:
    name, tgt, sample = case
    interpreter = interpreter_for(tgt)
    assert interpreter is not None
    encoder = InputEncoder(tgt, interpreter.key)
    chat = http_request("POST", "/v1/chat/completions", CHAT)
    reading: list[float] = []
    deciding: list[float] = []
    actions: set[str] = set()
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end or n < 50:
        n += 1
        phase, what = sample(n)
        request = chat if phase == "response" else what
        started = time.perf_counter_ns()
        meaning = read(interpreter, request, phase, what)
        read_done = time.perf_counter_ns()
        response = {"status": 200, "headers": {}, "body": None} if phase == "response" else None
        decision = engine.decide_now(
            encoder.encode(phase, IDENTITY, request, response, meaning))
        decided = time.perf_counter_ns()
        if n > 20:  # warm-up: caches, first regorus run
            reading.append((read_done - started) / 1e3)
            deciding.append((decided - read_done) / 1e3)
        actions.add(decision.action)
    return {"case": name, "samples": len(reading),
            "read_p50_us": statistics.median(reading),
            "read_p99_us": statistics.quantiles(reading, n=100)[98],
            "decide_p50_us": statistics.median(deciding), "actions": sorted(actions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per case (default 2)")
    parser.add_argument("--json", action="store_true", help="rows as JSON lines")
    args = parser.parse_args()
    engine = EmbeddedEngine(read_modules(REPO / "policies"), "data.tollgate.decision")
    rows = [measure(case, engine, args.seconds) for case in cases()]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print("| exchange | read p50 µs | read p99 µs | decide p50 µs | decision |")
    print("| --- | ---: | ---: | ---: | --- |")
    for row in rows:
        print(f"| {row['case']} | {row['read_p50_us']:,.0f} | {row['read_p99_us']:,.0f} "
              f"| {row['decide_p50_us']:,.0f} | {', '.join(row['actions'])} |")


if __name__ == "__main__":
    main()
